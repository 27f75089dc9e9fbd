"""Install manifests, checked against the code that reads them and tools written elsewhere.

The MCP Registry schema (through `jsonschema`), the MCP Bundle CLI (`mcpb`,
installed by `npm ci`), the settings module and the command line are the
judges; the manifests must agree with all of them.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemo_mcp import __version__
from nemo_mcp.cli import build_parser
from nemo_mcp.identity import SKILLS, frontmatter_name_version, load_identity, parse_frontmatter
from nemo_mcp.settings import DEFAULT_TOOL_TIMEOUT, Settings, settings_from_env

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
BUNDLE = MANIFESTS / "mcpb"
SCHEMA = Path(__file__).parent / "data" / "server.schema.json"
SERVER_NAME = "io.github.nemovideo/nemo-mcp"
ENTRY_NAME = "nemovideo"
TOOLS = {"generate", "upload", "export", "credits", "timeline"}
#: The configuration variables nemo-mcp is documented to read.
DOCUMENTED_VARS = {
    "NEMO_TOKEN", "NEMO_API_URL", "NEMO_WEB_URL", "NEMO_CLIENT_ID", "NEMO_SKILL",
    "SKILL_SOURCE", "NEMO_HOME", "NEMO_OUTPUT_DIR", "NEMO_UPLOAD_DIRS",
    "NEMO_TOOL_TIMEOUT", "NEMO_LANGUAGE",
}  # fmt: skip
STDIO_MANIFESTS = ["claude_desktop_config.json", "cursor-mcp.json"] + [
    f"profiles/{skill}.json" for skill in SKILLS
]


def load(rel: str) -> Any:
    return json.loads((MANIFESTS / rel).read_text(encoding="utf-8"))


def entry(rel: str) -> dict[str, Any]:
    """The one server entry of a Cursor/Claude Desktop style manifest."""
    servers = load(rel)["mcpServers"]
    assert list(servers) == [ENTRY_NAME], rel
    return servers[ENTRY_NAME]  # type: ignore[no-any-return]


class RecordingEnv(Mapping[str, str]):
    """An empty environment that remembers every variable asked for."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_vars() -> set[str]:
    env = RecordingEnv()
    settings_from_env(env)
    return env.asked


def manifest_vars() -> dict[str, set[str]]:
    """Every environment variable each manifest names."""
    found = {rel: set(entry(rel).get("env", {})) for rel in STDIO_MANIFESTS}
    found["cursor-mcp-http.json"] = set(entry("cursor-mcp-http.json").get("env", {}))
    found["mcpb/manifest.json"] = set(load("mcpb/manifest.json")["server"]["mcp_config"]["env"])
    found["server.json"] = {v["name"] for v in server_env()}
    return found


def server_env() -> list[dict[str, Any]]:
    (package,) = load("server.json")["packages"]
    return package["environmentVariables"]  # type: ignore[no-any-return]


def pyproject(path: Path) -> dict[str, Any]:
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11+")
    return tomllib.loads(path.read_text(encoding="utf-8"))


# The set of files -----------------------------------------------------------------------
def test_manifest_set_is_complete() -> None:
    found = {p.relative_to(MANIFESTS).as_posix() for p in MANIFESTS.rglob("*.json")}
    expected = {"cursor-mcp-http.json", "server.json", "mcpb/manifest.json", *STDIO_MANIFESTS}
    assert found == expected


@pytest.mark.parametrize(
    "path", sorted(MANIFESTS.rglob("*.json")), ids=lambda p: p.relative_to(MANIFESTS).as_posix()
)
def test_every_manifest_is_a_json_object(path: Path) -> None:
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)


# Environment variables ------------------------------------------------------------------
def test_settings_reads_the_documented_variables() -> None:
    assert settings_vars() >= DOCUMENTED_VARS


@pytest.mark.parametrize("rel", sorted(manifest_vars()))
def test_manifest_variables_are_read_by_settings(rel: str) -> None:
    unknown = manifest_vars()[rel] - settings_vars()
    assert not unknown, f"{rel} sets variables nemo-mcp never reads: {sorted(unknown)}"


def test_server_json_documents_every_setting() -> None:
    names = [v["name"] for v in server_env()]
    assert len(names) == len(set(names))
    assert set(names) == settings_vars()


def test_server_json_variables_are_described_and_optional() -> None:
    for var in server_env():
        assert var["description"].strip(), var["name"]
        assert var["isRequired"] is False, f"{var['name']}: nemo-mcp runs with no settings at all"
        secret = (
            "NEMO_TOKEN",
            "NEMO_HTTP_TOKENS",
            "NEMO_STATE_URL",
        )  # a Redis URL has its password
        assert var["isSecret"] is (var["name"] in secret), var["name"]


def test_server_json_defaults_are_the_real_defaults() -> None:
    """Setting a variable to its documented default changes nothing."""
    baseline = settings_from_env({})
    skill_name, _ = frontmatter_name_version(
        parse_frontmatter((ROOT / "SKILL.md").read_text("utf-8"))
    )
    checked = set()
    for var in server_env():
        if "default" not in var:
            continue
        checked.add(var["name"])
        if var["name"] == "NEMO_SKILL":
            assert var["default"] == skill_name
            assert var["choices"] == list(SKILLS)
            continue
        assert settings_from_env({var["name"]: var["default"]}) == baseline, var["name"]
    assert {"NEMO_API_URL", "NEMO_WEB_URL", "NEMO_TOOL_TIMEOUT", "NEMO_SKILL"} <= checked


# MCP Registry server.json ---------------------------------------------------------------
def registry_validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(
        schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def test_server_json_validates_against_the_registry_schema() -> None:
    registry_validator().validate(load("server.json"))


@pytest.mark.parametrize(
    "breakage",
    [
        lambda s: s.update(description="x" * 101),
        lambda s: s["packages"][0].pop("transport"),
        lambda s: s.update(name="nemo-mcp"),
        lambda s: s["packages"][0].update(version="latest"),
        lambda s: s["packages"][0]["environmentVariables"][0].pop("name"),
    ],
    ids=["long-description", "no-transport", "name-without-namespace", "latest", "nameless-var"],
)
def test_registry_schema_rejects_broken_copies(breakage: Any) -> None:
    broken = copy.deepcopy(load("server.json"))
    breakage(broken)
    with pytest.raises(jsonschema.ValidationError):
        registry_validator().validate(broken)


def test_server_json_describes_the_pypi_package() -> None:
    server = load("server.json")
    project = pyproject(ROOT / "pyproject.toml")["project"]
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))["definitions"]
    known = set(schema["Server"]["properties"]) | set(
        schema["ServerDetail"]["allOf"][1]["properties"]
    )
    assert set(server) <= known
    assert server["name"] == SERVER_NAME
    assert len(server["description"]) <= 100
    assert server["version"] == __version__
    (package,) = server["packages"]
    assert package["registryType"] == "pypi"
    assert package["identifier"] == project["name"]
    assert package["version"] == __version__
    assert package["runtimeHint"] == "uvx"
    assert package["transport"] == {"type": "stdio"}


def test_readme_mcp_name_matches_server_json() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert re.findall(r"^mcp-name:\s*(\S+)\s*$", readme, re.MULTILINE) == [
        load("server.json")["name"]
    ]


# Cursor and Claude Desktop entries ------------------------------------------------------
def test_stdio_entry_runs_the_published_console_script() -> None:
    project = pyproject(ROOT / "pyproject.toml")["project"]
    common = entry("cursor-mcp.json")
    assert entry("claude_desktop_config.json") == common
    assert common["command"] == "uvx"
    assert common["args"] == [project["name"]]
    assert project["name"] in project["scripts"]


def test_stdio_entry_env_means_anonymous_and_downloads() -> None:
    settings = settings_from_env(entry("cursor-mcp.json")["env"])
    assert settings.token is None  # the empty placeholder: a free anonymous token
    assert settings.output_dir == Path.home() / "Downloads" / "nemovideo"


@pytest.mark.parametrize("skill", list(SKILLS))
def test_skill_entry_is_the_common_entry_plus_its_skill(skill: str) -> None:
    skilled = entry(f"profiles/{skill}.json")
    expected = copy.deepcopy(entry("cursor-mcp.json"))
    expected["env"]["NEMO_SKILL"] = skill
    assert skilled == expected
    settings = settings_from_env(skilled["env"])
    assert load_identity(skill=settings.skill).skill is SKILLS[skill]


def test_http_entry_matches_the_serve_defaults() -> None:
    args = build_parser().parse_args(["serve", "--http"])
    assert entry("cursor-mcp-http.json") == {"url": f"http://{args.host}:{args.port}/mcp"}
    assert (args.host, args.port) == ("127.0.0.1", 8000)


# Cursor install links -------------------------------------------------------------------
@functools.cache
def cursor_link_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "cursor_link", ROOT / "scripts" / "cursor-link.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def decode_link(link: str) -> tuple[str, dict[str, Any]]:
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "cursor",
        "anysphere.cursor-deeplink",
        "/mcp/install",
    )
    query = parse_qs(parts.query, strict_parsing=True)
    assert set(query) == {"name", "config"}
    (name,), (config,) = query["name"], query["config"]
    return name, json.loads(base64.b64decode(config, validate=True))


def test_readme_links_are_the_script_output() -> None:
    printed = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cursor-link.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    readme = (MANIFESTS / "README.md").read_text(encoding="utf-8")
    shown = re.findall(r"cursor://anysphere\.cursor-deeplink/\S+", readme)
    assert shown == printed
    assert len(printed) == len(cursor_link_script().README_MANIFESTS)


def test_links_decode_to_the_manifest_entries() -> None:
    script = cursor_link_script()
    for rel in script.README_MANIFESTS:
        (link,) = script.links_for(MANIFESTS / rel)
        assert decode_link(link) == (ENTRY_NAME, entry(rel)), rel


@given(st.dictionaries(st.text(min_size=1), st.text()), st.text(min_size=1))
def test_any_entry_survives_the_link_round_trip(env: dict[str, str], name: str) -> None:
    server = {"command": "uvx", "args": ["nemo-mcp"], "env": env}
    assert decode_link(cursor_link_script().cursor_link(name, server)) == (name, server)


# Claude Desktop extension bundle --------------------------------------------------------
def bundle_manifest() -> dict[str, Any]:
    return load("mcpb/manifest.json")  # type: ignore[no-any-return]


def substitute_defaults(value: str, user_config: dict[str, Any]) -> str:
    """`${user_config.KEY}` replaced by KEY's default, as the host does when the user sets nothing."""
    return re.sub(
        r"\$\{user_config\.([^}]+)\}", lambda m: str(user_config[m.group(1)]["default"]), value
    )


def test_bundle_manifest_facts() -> None:
    manifest = bundle_manifest()
    assert manifest["manifest_version"] == "0.4"
    assert manifest["version"] == __version__
    server = manifest["server"]
    assert server["type"] == "uv"
    assert (BUNDLE / server["entry_point"]).is_file()
    config = server["mcp_config"]
    assert config["command"] == "uv"
    assert config["args"] == ["run", "--directory", "${__dirname}", server["entry_point"]]
    assert {t["name"] for t in manifest["tools"]} == TOOLS


def test_bundle_user_config() -> None:
    manifest = bundle_manifest()
    options = manifest["user_config"]
    env = manifest["server"]["mcp_config"]["env"]
    used = {m for v in env.values() for m in re.findall(r"\$\{user_config\.([^}]+)\}", v)}
    assert used == set(options)
    token = options["nemo_token"]
    assert (token["type"], token["sensitive"], token["required"]) == ("string", True, False)
    assert env["NEMO_TOKEN"] == "${user_config.nemo_token}"
    assert options["output_dir"]["type"] == "directory"
    assert env["NEMO_OUTPUT_DIR"] == "${user_config.output_dir}"
    assert options["tool_timeout"]["type"] == "number"
    assert options["tool_timeout"]["default"] == DEFAULT_TOOL_TIMEOUT
    assert env["NEMO_TOOL_TIMEOUT"] == "${user_config.tool_timeout}"


def test_bundle_defaults_mean_the_built_in_defaults() -> None:
    """Untouched settings must not reach the server as literal `${user_config...}` text."""
    manifest = bundle_manifest()
    env = {
        k: substitute_defaults(v, manifest["user_config"])
        for k, v in manifest["server"]["mcp_config"]["env"].items()
    }
    assert settings_from_env(env) == settings_from_env({}) == Settings()


def test_bundle_pyproject_installs_this_release() -> None:
    bundle = pyproject(BUNDLE / "pyproject.toml")
    root = pyproject(ROOT / "pyproject.toml")["project"]
    assert bundle["project"]["version"] == __version__
    assert bundle["project"]["dependencies"] == [f"{root['name']}=={__version__}"]
    assert bundle["project"]["requires-python"] == root["requires-python"]
    assert bundle_manifest()["compatibility"]["runtimes"]["python"] == root["requires-python"]
    assert bundle["tool"]["uv"]["package"] is False


def test_bundle_entry_point_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, str(BUNDLE / "server" / "main.py"), "--version"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"nemo-mcp {__version__}"


# The mcpb CLI (npm) -----------------------------------------------------------------------
def mcpb() -> Path:
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the mcpb CLI cannot run")
    path = ROOT / "node_modules" / ".bin" / "mcpb"
    if not path.exists():
        pytest.skip("node_modules/.bin/mcpb is missing: run `npm ci` in the repo root")
    return path


def test_mcpb_validate_passes() -> None:
    done = subprocess.run(
        [str(mcpb()), "validate", str(BUNDLE / "manifest.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validation passes" in done.stdout


def test_mcpb_validate_rejects_a_broken_copy(tmp_path: Path) -> None:
    broken = bundle_manifest()
    del broken["server"]["mcp_config"]
    (tmp_path / "manifest.json").write_text(json.dumps(broken), encoding="utf-8")
    done = subprocess.run(
        [str(mcpb()), "validate", str(tmp_path / "manifest.json")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "mcp_config" in done.stdout + done.stderr


def test_pack_script_builds_the_bundle(tmp_path: Path) -> None:
    mcpb()
    if shutil.which("npx") is None:
        pytest.skip("npx is not installed: scripts/pack-mcpb.sh runs mcpb through it")
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "pack-mcpb.sh"), str(tmp_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(tmp_path / f"nemo-mcp-{__version__}.mcpb") as bundle:
        assert set(bundle.namelist()) == {"manifest.json", "pyproject.toml", "server/main.py"}
        assert json.loads(bundle.read("manifest.json")) == bundle_manifest()


# The npm tooling itself -----------------------------------------------------------------
def test_node_tools_are_pinned_exactly() -> None:
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    pins = package["devDependencies"]
    interop = {"@modelcontextprotocol/inspector", "@anthropic-ai/mcpb"}
    studio = {  # the studio view's build and its browser tests
        "@modelcontextprotocol/ext-apps",
        "@modelcontextprotocol/client",
        "@modelcontextprotocol/core",
        "zod",
        "esbuild",
        "typescript",
        "puppeteer-core",
    }
    assert set(pins) == interop | studio
    assert "dependencies" not in package
    for name, version in pins.items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} is not pinned: {version}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    assert lock["packages"][""]["devDependencies"] == pins
