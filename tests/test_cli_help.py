"""`nemo-mcp COMMAND --help`: every option says what it is and its default, and the help says
how the server meets a sandbox."""

from __future__ import annotations

import re

import pytest

from nemo_mcp.cli import main


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width


@pytest.mark.parametrize(
    ("command", "option", "default"),
    [
        ("sandbox", "--host", "127.0.0.1"),
        ("sandbox", "--port", "8765"),
        ("serve", "--host", "127.0.0.1"),
        ("serve", "--port", "8000"),
    ],
)
def test_options_say_what_they_are_and_their_default(
    command: str, option: str, default: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = help_of(command, capsys).partition("options:")[2]
    described = re.search(rf"{option} [A-Z]+ (.+?)(?= --|$)", shown)
    assert described, shown
    words = described.group(1)
    assert f"default {default}" in words and len(words.split()) >= 4, words


@pytest.mark.parametrize("command", ["serve", "sandbox"])
def test_help_says_nemo_api_url_points_the_server_at_a_sandbox(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = help_of(command, capsys)
    assert "NEMO_API_URL" in shown and "sandbox" in shown, shown
