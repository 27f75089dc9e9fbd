"""The README stays true: its commands are the ones CI runs, its tables match the code."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from nemo_mcp.cli import build_parser
from nemo_mcp.identity import SKILLS
from nemo_mcp.sandbox.options import config_from

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def code_lines() -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", README, re.S)
    return [line.strip() for block in blocks for line in block.splitlines()]


def nemo_commands() -> list[list[str]]:
    """Every `nemo-mcp ...` command in the README's code blocks, as argv after the program."""
    commands = []
    for line in code_lines():
        for part in line.split("&&"):
            words = shlex.split(part)
            for n, word in enumerate(words):
                if word.endswith("nemo-mcp"):
                    commands.append(words[n + 1 :])
    return commands


def test_ci_runs_the_readme_test_command() -> None:
    tests = [line for line in code_lines() if line.endswith("python -m pytest")]
    assert len(tests) == 1
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert tests[0] in [line.strip() for line in ci]


def test_readme_demo_command_uses_the_real_subcommand() -> None:
    demo = [line for line in code_lines() if line.endswith("nemo-mcp demo")]
    assert len(demo) == 1


@pytest.mark.parametrize("argv", nemo_commands(), ids=" ".join)
def test_every_readme_command_parses(argv: list[str]) -> None:
    """The real parser accepts each command the README shows (argparse exits on an error)."""
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        config = config_from(args.settings, args.faults)  # the values themselves are valid
        assert config.faults or not args.faults


def test_readme_shows_sandbox_options() -> None:
    sandbox = [argv for argv in nemo_commands() if argv[:1] == ["sandbox"]]
    assert sandbox and any("--set" in a and "--fault" in a for a in sandbox)


def test_every_setting_is_documented() -> None:
    source = (ROOT / "src" / "nemo_mcp" / "settings.py").read_text(encoding="utf-8")
    source += (ROOT / "src" / "nemo_mcp" / "cli.py").read_text(encoding="utf-8")
    names = set(re.findall(r'"((?:NEMO|SKILL)_[A-Z_]+)"', source))
    assert names, "no variables found"
    for name in names:
        assert f"`{name}`" in README, f"{name} is not in the README's configuration table"


def test_tools_and_skills_are_documented() -> None:
    for tool in ("generate", "upload", "export", "credits", "timeline"):
        assert f"| `{tool}` |" in README
    for skill in SKILLS:
        assert skill in README
