"""SKILL.md: a valid Agent Skills file, and an honest guide to the five tools.

The frontmatter is read with the server's own parser and, when installed, with
the Agent Skills reference validator (`skills-ref`). The body is checked for
the facts an agent needs, kept in step with the skills in `identity.py`.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from nemo_mcp.identity import (
    SCRIPT_TYPES,
    SKILLS,
    UPLOAD_TYPES,
    frontmatter_name_version,
    parse_frontmatter,
)

ROOT = Path(__file__).resolve().parents[1]
SKILL = ROOT / "SKILL.md"
TOOLS = ("generate", "upload", "export", "credits", "timeline")
#: The Agent Skills specification's frontmatter fields.
SPEC_FIELDS = {"name", "description", "license", "compatibility", "metadata", "allowed-tools"}
#: Beyond the spec: `version`, which the backend attribution and skill hubs read.
EXTRA_FIELDS = {"version"}


def text() -> str:
    return SKILL.read_text(encoding="utf-8")


def front() -> dict[str, Any]:
    data: dict[str, Any] = parse_frontmatter(text())
    return data


def body() -> str:
    return re.split(r"^---[ \t]*$", text(), maxsplit=2, flags=re.MULTILINE)[2]


# Frontmatter ----------------------------------------------------------------------------
def test_name_and_version_as_the_server_reads_them() -> None:
    data = front()
    assert frontmatter_name_version(data) == ("ai-video-generation-online", "1.0.0")
    assert data["version"] == data["metadata"]["version"] == "1.0.0"
    assert data["name"] in SKILLS


def test_fields_are_the_spec_fields_plus_version() -> None:
    assert set(front()) <= SPEC_FIELDS | EXTRA_FIELDS


def test_name_within_agent_skills_limits() -> None:
    name = front()["name"]
    assert len(name) <= 64
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name)


def test_description_and_compatibility_within_limits() -> None:
    data = front()
    assert isinstance(data["description"], str) and data["description"].strip()
    assert len(data["description"]) <= 1024
    assert isinstance(data["compatibility"], str) and 1 <= len(data["compatibility"]) <= 500
    for tool in TOOLS:
        assert tool in data["description"], tool


def test_frontmatter_reads_the_same_with_a_naive_split() -> None:
    """Loaders that split the file on the first two `---` must see the same mapping."""
    naive = yaml.safe_load(text().split("---", 2)[1])
    assert naive == front()


def test_frontmatter_uses_block_style_only() -> None:
    """Strict YAML loaders (the reference validator's strictyaml) refuse flow style."""
    raw = text().split("---", 2)[1]
    flow = [line for line in raw.splitlines() if re.search(r"(:|^\s*-)\s*[\[{]", line)]
    assert flow == []


def test_reference_validator_finds_only_the_version_field(tmp_path: Path) -> None:
    validator = pytest.importorskip(
        "skills_ref.validator",
        reason="skills-ref (the Agent Skills reference validator) is not installed: "
        "pip install skills-ref",
    )
    folder = tmp_path / front()["name"]
    folder.mkdir()
    shutil.copy(SKILL, folder / "SKILL.md")
    errors = validator.validate(folder)
    assert len(errors) == 1, errors
    assert "Unexpected fields in frontmatter: version." in errors[0]


# Body -----------------------------------------------------------------------------------
def test_body_names_all_five_tools() -> None:
    for tool in TOOLS:
        assert f"`{tool}`" in body(), tool


def test_tools_match_the_extension_manifest() -> None:
    manifest = json.loads((ROOT / "manifests" / "mcpb" / "manifest.json").read_text("utf-8"))
    table = re.findall(r"^\| `([a-z]+)` \|", body(), re.MULTILINE)
    assert sorted(table) == sorted(TOOLS)
    assert {t["name"] for t in manifest["tools"]} == set(table)


@pytest.mark.parametrize(
    "forbidden", ["curl", "/api/", "run_sse", "authorization", "bearer", "x-skill", "x-client-id"]
)
def test_body_has_no_raw_http(forbidden: str) -> None:
    assert forbidden not in text().lower()


def test_body_names_no_http_methods() -> None:
    assert not re.search(r"\b(GET|POST|PUT|DELETE|PATCH)\s+/", text())


def test_body_states_costs() -> None:
    b = body()
    assert "about 100 credits a new clip" in b
    assert "about 50 an edit" in b
    assert re.search(r"export.{0,80}free|free.{0,80}export", b, re.IGNORECASE | re.DOTALL)


def test_body_says_to_call_again_while_work_runs() -> None:
    b = body()
    assert "call `generate` again with the **same** request" in b
    assert "call `export` again" in b
    assert "never sent or charged twice" in b


@pytest.mark.parametrize(
    "phrase",
    [
        "registration link",
        "top up",
        "plan limit, not credits",
        "Session gone",
        "aspect ratio",
        "YouTube and Spotify links are not fetched",
        "slideshow",
        "never make up a link",
    ],
)
def test_body_covers_errors_and_limits(phrase: str) -> None:
    assert phrase in body()


def test_accepted_types_match_the_skills() -> None:
    flat = " ".join(body().split())
    found = re.search(
        r"Accepted: ([a-z0-9, ]+) \(scripts: ([a-z0-9, ]+), through `generate`\)", flat
    )
    assert found is not None
    assert found.group(1).split(", ") == list(UPLOAD_TYPES)
    assert found.group(2).split(", ") == list(SCRIPT_TYPES)


def test_upload_limits_match_the_skills() -> None:
    for skill in SKILLS.values():
        assert skill.max_upload_label in body(), skill.name


def test_body_fits_the_recommended_size() -> None:
    assert len(text().splitlines()) < 500
