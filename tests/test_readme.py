"""The README stays true: its commands are the ones CI runs, its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path

from nemo_mcp.identity import PROFILES

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_lines() -> list[str]:
    return [line.strip() for block in re.findall(r"```\n(.*?)```", README, re.S) for line in block.splitlines()]


def test_ci_runs_the_readme_test_command() -> None:
    tests = [line for line in code_lines() if line.endswith("python -m pytest")]
    assert len(tests) == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests[0] in [line.strip() for line in ci]


def test_readme_demo_command_uses_the_real_subcommand() -> None:
    demo = [line for line in code_lines() if line.endswith("nemo-mcp demo")]
    assert len(demo) == 1


def test_every_setting_is_documented() -> None:
    source = (ROOT / "src" / "nemo_mcp" / "settings.py").read_text(encoding="utf-8")
    source += (ROOT / "src" / "nemo_mcp" / "cli.py").read_text(encoding="utf-8")
    names = set(re.findall(r'"((?:NEMO|SKILL)_[A-Z_]+)"', source))
    assert names, "no variables found"
    for name in names:
        assert f"`{name}`" in README, f"{name} is not in the README's configuration table"


def test_tools_and_profiles_are_documented() -> None:
    for tool in ("generate", "upload", "export", "credits", "timeline"):
        assert f"| `{tool}` |" in README
    for slug in PROFILES:
        assert slug in README
