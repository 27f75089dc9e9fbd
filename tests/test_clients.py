"""How long a call waits, by client: the rules alone, and through the SDK's `Client` with the
client's identity sent at `initialize` (or in the 2026-07-28 request envelope)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import Implementation

from nemo_mcp.server import create_server
from nemo_mcp.server.clients import Caller, known_client, wait_budget
from nemo_mcp.settings import Settings, settings_from_env

from mcp_harness import make_settings, text_of

SETTINGS = Settings(tool_timeout=45.0, long_tool_timeout=600.0)


@pytest.mark.parametrize(
    ("name", "progress", "budget"),
    [
        ("Visual Studio Code", False, 600.0),  # no timer at all
        ("Visual Studio Code - Insiders", True, 600.0),
        ("visual studio code", False, 600.0),
        ("inspector-tui", True, 600.0),  # its timer restarts with each progress notification
        ("inspector-tui", False, 45.0),  # ... so only with a progress token
        ("inspector-cli", True, 45.0),  # the CLI turns progress off: its timer never restarts
        ("mcp-inspector", True, 45.0),  # the web Inspector can cap the total
        ("goose", False, 240.0),  # 4/5 of its own 300 s
        ("claude-ai", True, 45.0),  # Claude Desktop: about 60 s whatever is sent
        ("claude-code", True, 45.0),
        ("cursor-vscode", True, 45.0),
        ("mcp", True, 45.0),
        (None, True, 45.0),
    ],
)
def test_wait_budget(name: str | None, progress: bool, budget: float) -> None:
    assert wait_budget(Caller(name=name, version="1", progress=progress), SETTINGS) == budget


def test_wait_budget_settings() -> None:
    vscode = Caller(name="Visual Studio Code", version="1.99.0", progress=True)
    goose = Caller(name="goose", version="1.9.0", progress=True)
    off = Settings(tool_timeout=45.0, long_tool_timeout=0.0)
    assert wait_budget(vscode, off) == wait_budget(goose, off) == 45.0
    short = Settings(tool_timeout=45.0, long_tool_timeout=30.0)
    assert wait_budget(vscode, short) == 45.0  # never less than NEMO_TOOL_TIMEOUT
    assert wait_budget(goose, Settings(tool_timeout=10.0, long_tool_timeout=120.0)) == 120.0
    assert known_client("GOOSE") is not None and known_client("gooseberry") is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("0", 0.0), ("off", 0.0), ("OFF", 0.0), ("900", 900.0), ("1.5", 1.5)]
)
def test_long_tool_timeout_setting(value: str, seconds: float) -> None:
    assert settings_from_env({"NEMO_LONG_TOOL_TIMEOUT": value}).long_tool_timeout == seconds
    assert settings_from_env({}).long_tool_timeout == 600.0


# Through the client ---------------------------------------------------------------------------
async def first_answer(
    settings: Settings, mode: str, name: str, *, progress: bool
) -> tuple[str, int]:
    """The status of one `generate` call by a client called `name`, and how many progress
    notifications it saw."""
    seen: list[float] = []

    async def on_progress(value: float, _total: float | None, _message: str | None) -> None:
        seen.append(value)

    info = Implementation(name=name, version="1.0.0")
    async with Client(create_server(settings), mode=mode, client_info=info) as client:
        result = await client.call_tool(
            "generate",
            {"message": "a 10-second video of a city at night"},
            progress_callback=on_progress if progress else None,
        )
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return str(result.structured_content["status"]), len(seen)


def quick(tmp_path: Path, sandbox: Any, **overrides: Any) -> Settings:
    # The budget also bounds each backend call made inline (opening the project): it must
    # stay well above a loaded machine's request time, and well below the generation.
    sandbox.control.set(generation_seconds=1.6)
    tmp_path.mkdir(parents=True, exist_ok=True)
    return make_settings(
        tmp_path, sandbox.url, **{"tool_timeout": 0.5, "long_tool_timeout": 10.0, **overrides}
    )


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_client_that_keeps_calls_open_waits_for_the_result(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    settings = quick(tmp_path, sandbox)
    status, _ = await first_answer(settings, mode, "Visual Studio Code", progress=True)
    assert status == "completed"  # one turn


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_other_clients_keep_the_short_budget(tmp_path: Path, sandbox: Any, mode: str) -> None:
    status, _ = await first_answer(quick(tmp_path, sandbox), mode, "claude-ai", progress=True)
    assert status == "running"


async def test_the_inspector_waits_only_while_progress_reaches_it(
    tmp_path: Path, sandbox: Any
) -> None:
    # On the old handshake over JSON-RPC the progress token is on the request, as it is
    # over stdio and HTTP in either era.
    with_progress, notified = await first_answer(
        quick(tmp_path / "a", sandbox), "legacy", "inspector-tui", progress=True
    )
    without, _ = await first_answer(
        quick(tmp_path / "b", sandbox), "legacy", "inspector-tui", progress=False
    )
    assert (with_progress, without) == ("completed", "running")
    assert notified >= 1  # progress reached it while the call stayed open


async def test_long_waits_can_be_turned_off(tmp_path: Path, sandbox: Any) -> None:
    settings = quick(tmp_path, sandbox, long_tool_timeout=0.0)
    status, _ = await first_answer(settings, "legacy", "Visual Studio Code", progress=True)
    assert status == "running"
