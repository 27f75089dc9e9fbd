"""Exactly once, in order: the work ledger through real server processes over stdio.

Each scenario counts the sandbox's own requests: messages the agent accepted, `/run_sse`
calls, renders started, tokens issued, sessions created. Servers run as
`python -m nemo_mcp` driven by the SDK's `Client`, one or two at a time on one
`NEMO_HOME`, as two MCP clients on one computer do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client
from mcp_types import CallToolResult

from mcp_harness import text_of
from processes import (
    assert_all_whole,
    kill,
    ledger_rows,
    needs_proc,
    server_env,
    stdio_server,
    until,
)

pytestmark = needs_proc

A = {"message": "a video of a desert at noon"}
B = {"message": "add jazz music"}


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def settle(client: Client, tool: str, args: dict[str, Any]) -> CallToolResult:
    """Call `tool` again until it is neither running nor queued (as an agent does)."""
    for _ in range(120):
        result = await client.call_tool(tool, args)
        status = (result.structured_content or {}).get("status")
        if result.is_error or status not in ("running", "queued", "rendering"):
            return result
    raise AssertionError(f"{tool} never finished")


def sent(sandbox: Any) -> list[str]:
    return [m["text"] for m in sandbox.control.stats()["messages"]]


async def both(*calls: Callable[[], Awaitable[CallToolResult]]) -> list[CallToolResult]:
    """Run the calls at the same moment; results in order."""
    results: list[CallToolResult | None] = [None] * len(calls)

    async def one(n: int) -> None:
        results[n] = await calls[n]()

    async with anyio.create_task_group() as tasks:
        for n in range(len(calls)):
            tasks.start_soon(one, n)
    return [r for r in results if r is not None]


# one process -----------------------------------------------------------------------------
async def test_overlapping_requests_each_get_their_own_result(tmp_path: Path, sandbox: Any) -> None:
    """A runs past the budget; B arrives; each is sent once, in order, and each caller gets
    its own result; A asked again is answered from the ledger, never sent again."""
    sandbox.control.set(generation_seconds=1.5, initial_credits=500)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    async with stdio_server(env) as (client, _):
        first = data(await client.call_tool("generate", A))
        queued = data(await client.call_tool("generate", B))
        assert first["status"] == "running" and queued["status"] == "queued"
        assert sent(sandbox) == [A["message"]]  # B waits its turn
        b = data(await settle(client, "generate", B))
        a = data(await settle(client, "generate", A))
        again_result = await client.call_tool("generate", A)
    again = data(again_result)
    assert sent(sandbox) == [A["message"], B["message"]]
    assert any(c.startswith("Added") for c in a["changes"]) and a["reply"] != b["reply"]
    assert "jazz" in b["reply"].lower() or any("jazz" in c.lower() for c in b["changes"])
    assert again["reply"] == a["reply"] and "already answered" in text_of(again_result)
    assert sandbox.control.stats()["requests"]["run_sse"] == 2


async def test_result_finished_while_nobody_listened_is_delivered_after_restart(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=0.8)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.2")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        assert data(await client.call_tool("generate", A))["status"] == "running"
        await until(lambda: ledger_rows(home)[0]["state"] == "done")
        kill(pid)
    async with stdio_server(env) as (client, _):
        result = await client.call_tool("generate", A)
    out = data(result)
    assert out["status"] == "completed" and out["raw_clip_ready"]
    assert "finished while no call was waiting" in text_of(result)
    assert sandbox.control.stats()["requests"]["run_sse"] == 1 and sent(sandbox) == [A["message"]]
    assert_all_whole(home)


async def test_export_asked_during_an_edit_renders_the_edit(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(
        generation_seconds=0.2, edit_seconds=1.0, render_seconds=0.4, initial_credits=500
    )
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="5")
    title = {"message": "add the title 'Summer Sale'"}
    async with stdio_server(env) as (client, _):
        data(await settle(client, "generate", A))
        edited, exported = await both(
            lambda: settle(client, "generate", title), lambda: settle(client, "export", {})
        )
    assert data(edited)["status"] == "completed" and data(exported)["status"] == "completed"
    stats = sandbox.control.stats()
    assert stats["renders_started"] == 1
    (render,) = stats["renders"]
    titles = [
        seg.get("m", {}).get("text") or seg.get("text")
        for track in render["draft"]["t"]
        if track.get("tt") == 7
        for seg in track.get("sg", [])
    ]
    assert "Summer Sale" in titles, render["draft"]


# two processes on one home ----------------------------------------------------------------
async def test_two_processes_different_requests_run_in_order(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=1.2, initial_credits=500)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    async with stdio_server(env) as (one, _), stdio_server(env) as (two, _):
        assert data(await one.call_tool("generate", A))["status"] == "running"
        waiting = data(await two.call_tool("generate", B))
        assert waiting["status"] == "queued" and waiting["ahead"] == 1
        assert sent(sandbox) == [A["message"]]
        b = data(await settle(two, "generate", B))
        a = data(await settle(one, "generate", A))
    assert sent(sandbox) == [A["message"], B["message"]]
    assert a["reply"] != b["reply"] and any(c.startswith("Added") for c in a["changes"])
    rows = ledger_rows(Path(env["NEMO_HOME"]))
    assert [r["state"] for r in rows] == ["done", "done"]


async def test_two_processes_same_request_is_sent_once(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=1.0)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    async with stdio_server(env) as (one, _), stdio_server(env) as (two, _):
        assert data(await one.call_tool("generate", A))["status"] == "running"
        joined_result = await two.call_tool("generate", A)
        joined = data(joined_result)
        assert joined["status"] == "running"
        assert "restarted" not in text_of(joined_result)
        a2, a1 = await both(lambda: settle(two, "generate", A), lambda: settle(one, "generate", A))
    assert data(a1)["reply"] == data(a2)["reply"] and data(a1)["status"] == "completed"
    for result in (a1, a2):
        assert "dropped" not in text_of(result) and "restarted" not in text_of(result)
    assert sent(sandbox) == [A["message"]]
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_two_processes_same_export_starts_one_render(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.8)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    async with stdio_server(env) as (one, _), stdio_server(env) as (two, _):
        data(await settle(one, "generate", A))
        x, y = await both(lambda: settle(one, "export", {}), lambda: settle(two, "export", {}))
    assert data(x)["render_id"] == data(y)["render_id"] and data(x)["file"] == data(y)["file"]
    assert sandbox.control.stats()["renders_started"] == 1


async def test_cold_start_of_two_processes_makes_one_identity(tmp_path: Path, sandbox: Any) -> None:
    for attempt in range(3):
        sandbox.control.reset()
        sandbox.control.set(generation_seconds=0.2, initial_credits=500)
        env = server_env(tmp_path / f"try{attempt}", sandbox)
        home = Path(env["NEMO_HOME"])
        async with stdio_server(env) as (one, _), stdio_server(env) as (two, _):
            c1, c2 = await both(
                lambda: one.call_tool("credits", {}), lambda: two.call_tool("credits", {})
            )
            g1, g2 = await both(
                lambda: settle(one, "generate", A), lambda: settle(two, "generate", B)
            )
        for result in (c1, c2, g1, g2):
            data(result)
        stats = sandbox.control.stats()
        assert stats["tokens_issued"] == 1, stats
        assert stats["sessions_created"] == 1, stats
        assert stats["requests"]["anonymous_token"] == 1
        assert len(stats["messages"]) == 2
        assert (home / "client_id").read_text().count("\n") == 1
        assert not list(home.glob(".client_id.*"))
        assert_all_whole(home)


# kills --------------------------------------------------------------------------------------
async def test_kill_before_the_request_goes_out_sends_it_once_after(
    tmp_path: Path, sandbox: Any
) -> None:
    """Killed while the entry is recorded but nothing has left (held reading credits)."""
    sandbox.control.set(generation_seconds=0.3)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        await client.call_tool("credits", {})  # token and client id in place
        sandbox.control.fault("slow", route="credits", delay=3.0)
        assert data(await client.call_tool("generate", A))["status"] == "running"
        await until(lambda: sandbox.control.stats()["faults_fired"].get("slow", 0) == 1)
        assert ledger_rows(home)[0]["state"] == "queued"
        kill(pid)
    async with stdio_server(env) as (client, _):
        result = await settle(client, "generate", A)
    assert data(result)["status"] == "completed"
    assert sent(sandbox) == [A["message"]]
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_kill_while_the_message_is_held_before_the_backend_sends_it_once_after(
    tmp_path: Path, sandbox: Any
) -> None:
    """Killed after `sending` was recorded, while the backend held the request unread:
    nothing shows it arrived, so the restarted server sends it, once, and says so."""
    sandbox.control.set(generation_seconds=0.3)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        sandbox.control.fault("slow", route="run_sse", delay=1.0)
        assert data(await client.call_tool("generate", A))["status"] == "running"
        await until(lambda: sandbox.control.stats()["faults_fired"].get("slow", 0) == 1)
        assert ledger_rows(home)[0]["state"] == "sending"
        kill(pid)
    await until(lambda: sandbox.control.stats()["requests"].get("run_sse", 0) == 1)
    async with stdio_server(env) as (client, _):
        result = await settle(client, "generate", A)
    assert data(result)["status"] == "completed"
    assert "interrupted before NemoVideo received it" in text_of(result)
    assert sent(sandbox) == [A["message"]]  # the held one never reached the agent


async def test_kill_while_an_unclear_send_is_checked_never_sends_it_after(
    tmp_path: Path, sandbox: Any
) -> None:
    """Killed while the evidence for a send whose answer was lost (a 5xx) is read: the
    restarted server keeps checking and reports, and never sends it by itself."""
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3", NEMO_RECOVERY_DELAYS="0.5,0.5")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        sandbox.control.fault("server_error", route="run_sse", status=500)
        assert data(await client.call_tool("generate", A))["status"] == "running"
        await until(lambda: bool(ledger_rows(home)[0]["memo"].get("unclear")))
        kill(pid)
    async with stdio_server(env) as (client, _):
        result = await settle(client, "generate", A)
    assert result.is_error and "not sent again" in text_of(result)
    assert "again: true" in text_of(result)
    assert sent(sandbox) == []
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_kill_mid_stream_recovers_and_never_resends(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=1.2)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        assert data(await client.call_tool("generate", A))["status"] == "running"
        await until(lambda: ledger_rows(home)[0]["state"] == "streaming")
        kill(pid)
    async with stdio_server(env) as (client, _):
        out = data(await settle(client, "generate", A))
    assert out["status"] == "completed" and out["recovered"] and out["raw_clip_ready"]
    assert sent(sandbox) == [A["message"]]
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_kill_before_the_render_start_arrives_starts_it_once_after(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.4)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        data(await settle(client, "generate", A))
        sandbox.control.fault("slow", route="render_start", delay=1.0)
        assert data(await client.call_tool("export", {}))["status"] == "rendering"
        await until(lambda: sandbox.control.stats()["faults_fired"].get("slow", 0) == 1)
        render = next(r for r in ledger_rows(home) if r["kind"] == "render")
        assert render["state"] == "starting" and render["memo"]["render_id"]
        kill(pid)
    await until(lambda: sandbox.control.stats()["requests"].get("render_start", 0) == 1)
    async with stdio_server(env) as (client, _):
        out = data(await settle(client, "export", {}))
    assert out["status"] == "completed" and Path(out["file"]).stat().st_size == out["size_bytes"]
    assert sandbox.control.stats()["renders_started"] == 1


async def test_kill_mid_render_resumes_the_same_render(tmp_path: Path, sandbox: Any) -> None:
    # The render runs 3 s: long enough that a loaded machine still sees it `rendering`.
    sandbox.control.set(generation_seconds=0.2, render_seconds=3.0)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        data(await settle(client, "generate", A))
        first = data(await client.call_tool("export", {}))
        await until(
            lambda: (
                next(r for r in ledger_rows(home) if r["kind"] == "render")["state"] == "rendering"
            )
        )
        kill(pid)
    async with stdio_server(env) as (client, _):
        result = await settle(client, "export", {})
    out = data(result)
    assert out["status"] == "completed" and out["resumed"] and "Resumed" in text_of(result)
    assert out["render_id"] == (first["render_id"] or out["render_id"])
    assert sandbox.control.stats()["renders_started"] == 1
    assert_all_whole(home)


async def test_kill_mid_download_downloads_again_and_never_renders_again(
    tmp_path: Path, sandbox: Any
) -> None:
    # 20 MB at 2 MB/s: the process is killed once the first 4 MB are written.
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.2, render_output_bytes=20_000_000)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.3")
    home, out = Path(env["NEMO_HOME"]), Path(env["NEMO_OUTPUT_DIR"])

    def part_size() -> int:
        parts = list(out.glob(".nemo-*.part")) if out.exists() else []
        return parts[0].stat().st_size if parts else 0

    async with stdio_server(env) as (client, pid):
        data(await settle(client, "generate", A))
        sandbox.control.fault("download_slow", rate=2_000_000)
        data(await client.call_tool("export", {}))
        await until(lambda: part_size() >= 4_000_000)
        kill(pid)
    assert not list(out.glob("*.mp4"))  # the partial file never sits under a final name
    async with stdio_server(env) as (client, _):
        result = await settle(client, "export", {})
    out_data = data(result)
    assert out_data["status"] == "completed", text_of(result)
    assert Path(out_data["file"]).stat().st_size == 20_000_000
    assert sorted(p.name for p in out.iterdir()) == [Path(out_data["file"]).name]
    assert sandbox.control.stats()["renders_started"] == 1
    render_id = out_data["render_id"]
    downloads = [
        e
        for e in sandbox.control.requests()
        if e["path"] in (f"/files/{render_id}.mp4", f"/api/render/proxy/{render_id}/download")
    ]
    assert len(downloads) == 2  # the one cut by the kill, and the one after
    assert_all_whole(home)
