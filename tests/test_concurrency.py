"""Calls at once on one session, and shutting down while work runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult

from mcp_harness import Session, connect, make_settings, text_of


async def together(
    session: Session, calls: list[tuple[str, dict[str, Any]]]
) -> list[CallToolResult]:
    """Run the tool calls concurrently on one client; results in call order."""
    results: list[CallToolResult | None] = [None] * len(calls)

    async def one(n: int, name: str, args: dict[str, Any]) -> None:
        results[n] = await session.call(name, args)

    async with anyio.create_task_group() as tasks:
        for n, (name, args) in enumerate(calls):
            tasks.start_soon(one, n, name, args)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


@pytest.mark.parametrize("second", ["a video of a canyon at dawn", "add a drum beat"])
async def test_two_generates_at_once_send_one_message(
    tmp_path: Path, sandbox: Any, second: str
) -> None:
    sandbox.control.set(generation_seconds=0.5)
    first = "a video of a canyon at dawn"
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        results = await together(
            session, [("generate", {"message": first}), ("generate", {"message": second})]
        )
    stats = sandbox.control.stats()
    assert [m["text"] for m in stats["messages"]] in ([first], [second])
    assert stats["requests"]["run_sse"] == 1
    for result in results:
        assert not result.is_error, text_of(result)
        assert result.structured_content["status"] == "completed"  # type: ignore[index]
    notes = [r for r in results if "NOT sent" in text_of(r)]
    assert len(notes) == (0 if second == first else 1)


async def test_two_exports_at_once_start_one_render(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.5)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a waterfall"})
        results = await together(session, [("export", {}), ("export", {})])
    ids = {r.structured_content["render_id"] for r in results}  # type: ignore[index]
    assert all(not r.is_error for r in results) and len(ids) == 1
    assert sandbox.control.stats()["renders_started"] == 1


async def test_fifty_parallel_credits_calls(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        results = await together(session, [("credits", {})] * 50)
    for result in results:
        assert not result.is_error, text_of(result)
        assert result.structured_content["available"] == 100  # type: ignore[index]
    stats = sandbox.control.stats()
    assert stats["requests"]["credits"] == 50
    assert stats["tokens_issued"] == 1 and stats["requests"]["anonymous_token"] == 1


def _whole(home: Path) -> dict[str, Any]:
    """Every JSON state file, parsed (a half-written one fails here)."""
    files = {p.name: json.loads(p.read_text()) for p in home.rglob("*.json")}
    assert not [
        p for p in home.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".part")
    ]
    return files


async def test_shutdown_while_work_runs_leaves_state_whole(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(
        generation_seconds=0.2, edit_seconds=1.5, render_seconds=1.5, initial_credits=500
    )
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=0.3)
    async with connect(settings) as session:
        made = await session.call("generate", {"message": "a video of a meadow"})
        for _ in range(20):
            if made.structured_content["status"] == "completed":  # type: ignore[index]
                break
            made = await session.call("generate", {"message": "a video of a meadow"})
        rendering = await session.call("export")
        assert rendering.structured_content["status"] == "rendering"  # type: ignore[index]
        edit = await session.call("generate", {"message": "add birdsong"})
        assert edit.structured_content["status"] == "running"  # type: ignore[index]
    # The server has shut down with a render and an edit in flight.
    files = _whole(settings.home)
    assert {"auth.json", "session.json", "renders.json"} <= set(files)
    (record,) = files["renders.json"]["renders"]
    assert record["id"] == rendering.structured_content["render_id"]  # type: ignore[index]
    assert record["status"] in ("pending", "processing")
    assert record["session_id"] == files["session.json"]["session_id"]

    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        resumed = await session.call("export")
    assert resumed.structured_content["render_id"] == record["id"]  # type: ignore[index]
    assert sandbox.control.stats()["renders_started"] == 1
    assert _whole(settings.home)["renders.json"]["renders"][0]["status"] == "completed"
