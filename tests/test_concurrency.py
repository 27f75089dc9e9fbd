"""Calls at once on one session, and shutting down while work runs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult

from nemo_mcp.ledger import MAX_WAITING

from mcp_harness import Session, connect, make_settings, text_of
from processes import ledger_rows


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
async def test_two_generates_at_once_each_sent_once_in_order(
    tmp_path: Path, sandbox: Any, second: str
) -> None:
    sandbox.control.set(generation_seconds=0.5, initial_credits=500)
    first = "a video of a canyon at dawn"
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        results = await together(
            session, [("generate", {"message": first}), ("generate", {"message": second})]
        )
    stats = sandbox.control.stats()
    sent = [m["text"] for m in stats["messages"]]
    assert sent == ([first] if second == first else [first, second]) or (
        second != first and sent == [second, first]
    )
    assert stats["requests"]["run_sse"] == len(sent)
    for result in results:
        assert not result.is_error, text_of(result)
        assert result.structured_content["status"] == "completed"  # type: ignore[index]
    if second != first:  # each caller got its own request's result
        replies = [r.structured_content["reply"] for r in results]  # type: ignore[index]
        assert replies[0] != replies[1]
        ran_first = 0 if sent[0] == first else 1  # the one sent first made the video
        assert results[ran_first].structured_content["changes"]  # type: ignore[index]
        assert "canyon" in json.dumps(results[0].structured_content).lower()


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


def _no_leftovers(home: Path) -> None:
    assert not [
        p for p in home.rglob("*") if p.name.startswith(".") or p.suffix in (".tmp", ".part")
    ]
    for p in home.rglob("*.json"):
        json.loads(p.read_text())


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
        assert edit.structured_content["status"] == "queued"  # type: ignore[index]
    # The server has shut down with a render running and an edit waiting behind it.
    _no_leftovers(settings.home)
    rows = ledger_rows(settings.home)
    render = next(r for r in rows if r["kind"] == "render")
    assert render["memo"]["render_id"] == rendering.structured_content["render_id"]  # type: ignore[index]
    assert render["state"] == "rendering" and render["owner"] is not None
    assert render["lease_until"] < time.time()  # given up at shutdown: no wait to take over
    assert rows[-1]["request"]["message"] == "add birdsong" and rows[-1]["state"] == "queued"
    session_file = json.loads(next(settings.home.rglob("session.json")).read_text())
    assert render["session_id"] == session_file["session_id"]

    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        resumed = await session.call("export")
        edited = await session.call("generate", {"message": "add birdsong"})
    assert resumed.structured_content["render_id"] == render["memo"]["render_id"]  # type: ignore[index]
    assert resumed.structured_content["resumed"] is True  # type: ignore[index]
    assert edited.structured_content["status"] == "completed"  # type: ignore[index]
    stats = sandbox.control.stats()
    assert stats["renders_started"] == 1
    assert [m["text"] for m in stats["messages"]] == ["a video of a meadow", "add birdsong"]
    assert [r["state"] for r in ledger_rows(settings.home)] == ["done", "done", "done"]
    _no_leftovers(settings.home)


async def test_a_full_queue_counts_only_those_waiting(tmp_path: Path, sandbox: Any) -> None:
    """One request runs and MAX_WAITING wait behind it: the next is refused, nothing sent,
    and the refusal counts the waiting ones as the README does ("at most 5 wait")."""
    sandbox.control.set(generation_seconds=30, initial_credits=5000)
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=0.3)
    async with connect(settings) as session:
        answers = [
            await session.call("generate", {"message": f"a video of lake number {n}"})
            for n in range(1 + MAX_WAITING)
        ]
        assert [a.structured_content["status"] for a in answers] == (  # type: ignore[index]
            ["running"] + ["queued"] * MAX_WAITING
        )
        refused = await session.call("generate", {"message": "a video of one more lake"})
    assert refused.is_error
    said = text_of(refused)
    assert f": {MAX_WAITING} requests are already waiting" in said, said
    assert "the most this server queues" in said and "nothing was sent" in said
    assert len(sandbox.control.stats()["messages"]) == 1  # only the running one
