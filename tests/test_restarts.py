"""A server process killed mid-work and started again: nothing is asked twice.

The server runs as `python -m nemo_mcp` over stdio, driven by the SDK's
`Client`. It is killed with SIGKILL (no cleanup at all) while a render or a
generation runs; the next process must reuse the client id, the token and the
session, resume the render by its id, and find every state file whole.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp_types import CallToolResult

from mcp_harness import text_of
from processes import (
    assert_all_whole,
    kill,
    ledger_rows,
    needs_proc,
    server_env,
    state_files,
    stdio_server,
)

pytestmark = needs_proc


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


async def test_render_resumes_by_id_after_sigkill(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=0.2, render_seconds=1.5)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.6")
    home = Path(env["NEMO_HOME"])
    async with stdio_server(env) as (client, pid):
        for _ in range(50):  # under load the clip may take longer than one call's budget
            made = structured(
                await client.call_tool("generate", {"message": "a video of a lighthouse"})
            )
            if made["status"] != "running":
                break
        assert made["status"] == "completed"
        first = structured(await client.call_tool("export", {}))
        assert first["status"] == "rendering"
        render_id = first["render_id"]
        before = state_files(home)
        kill(pid)
    assert_all_whole(home)
    renders = [r for r in ledger_rows(home) if r["kind"] == "render"]
    assert [r["memo"]["render_id"] for r in renders] == [render_id]
    assert renders[0]["state"] == "rendering"

    async with stdio_server(env) as (client, pid2):
        assert pid2 != pid
        resumed_result = await client.call_tool("export", {})
        resumed = structured(resumed_result)
        credits = structured(await client.call_tool("credits", {}))
    assert resumed["status"] == "completed" and resumed["render_id"] == render_id
    assert "Resumed" in text_of(resumed_result)
    assert Path(resumed["file"]).stat().st_size == resumed["size_bytes"]
    assert credits["anonymous"] is True
    after = state_files(home)
    assert after["client_id"] == before["client_id"]
    auth = next(n for n in after if n.endswith("auth.json"))
    session = next(n for n in after if n.endswith("session.json"))
    assert after[auth] == before[auth] and after[session] == before[session]
    stats = sandbox.control.stats()
    assert stats["renders_started"] == 1
    assert stats["tokens_issued"] == 1 and stats["sessions_created"] == 1
    assert stats["requests"]["run_sse"] == 1
    assert_all_whole(home)


def _identity_files(files: dict[str, bytes]) -> dict[str, bytes]:
    """The client id, token and session records: what a restart must leave untouched."""
    return {
        k: v
        for k, v in files.items()
        if k == "client_id" or k.endswith(("auth.json", "session.json"))
    }


async def test_generation_in_flight_survives_sigkill(tmp_path: Path, sandbox: Any) -> None:
    """The backend finishes the work; the new process waits for it when asked the same
    request again, and sends nothing twice."""
    sandbox.control.set(generation_seconds=1.0)
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="0.4")
    home = Path(env["NEMO_HOME"])
    message = {"message": "a video of a glacier"}
    async with stdio_server(env) as (client, pid):
        first = structured(await client.call_tool("generate", message))
        assert first["status"] == "running"
        before = _identity_files(state_files(home))
        kill(pid)
    assert_all_whole(home)
    assert len(before) == 3, before.keys()
    (entry,) = ledger_rows(home)
    assert entry["state"] == "streaming" and entry["kind"] == "message"
    async with stdio_server(env) as (client, _):
        for _ in range(50):
            again = structured(await client.call_tool("generate", message))
            if again["status"] != "running":
                break
        shown = structured(await client.call_tool("timeline", {}))
    assert again["status"] == "completed" and again["raw_clip_ready"], again
    assert shown["ready_for_export"] and shown["session_id"] == first["session_id"]
    assert _identity_files(state_files(home)) == before
    stats = sandbox.control.stats()
    assert stats["requests"]["run_sse"] == 1 and len(stats["messages"]) == 1
    assert stats["tokens_issued"] == 1 and stats["sessions_created"] == 1
    assert_all_whole(home)
