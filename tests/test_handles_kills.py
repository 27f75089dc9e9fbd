"""A server killed while a message is on its way, as the property test of agent behaviour
(test_handles_properties) met it: the backend took the message, but nothing on the
timeline or in the credits shows it (an edit repeated word for word changes nothing and
costs nothing). After the restart the server does not send it again by itself: it says
no sign was seen and offers `again: true` (an agent that takes the offer sends it again,
free; so the property test's messages are new clips, which always show and cost)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import anyio
from mcp_types import CallToolResult

from mcp_harness import text_of
from processes import kill, needs_proc, server_env, stdio_server, until

pytestmark = needs_proc

EDIT = "add soft piano music"


def sent(sandbox: Any) -> list[str]:
    return [m["text"] for m in sandbox.control.stats()["messages"]]


def status(result: CallToolResult) -> str:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return str(result.structured_content["status"])


async def test_a_message_taken_unseen_before_a_kill_is_not_sent_again_by_the_server(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=0.3, edit_seconds=0.3, initial_credits=1000)
    env = server_env(tmp_path, sandbox)
    async with stdio_server(env) as (client, pid):
        for message in ("a video of a fox in the snow", EDIT):
            for _ in range(40):
                if status(await client.call_tool("generate", {"message": message})) != "running":
                    break
        # The edit again: the backend takes it, and its answer is held until the kill.
        sandbox.control.fault("hold", route="run_sse", seconds=30.0)
        async with anyio.create_task_group() as tasks:

            async def asking() -> None:
                with contextlib.suppress(Exception):  # its server dies under it
                    await client.call_tool("generate", {"message": EDIT, "again": True})

            tasks.start_soon(asking)
            await until(lambda: len(sent(sandbox)) == 3)
            kill(pid)
            tasks.cancel_scope.cancel()
    assert sent(sandbox) == ["a video of a fox in the snow", EDIT, EDIT]
    async with stdio_server(env) as (client, _):
        # The agent asks the same again, as it does when a call failed with its server.
        for _ in range(40):
            result = await client.call_tool("generate", {"message": EDIT, "again": True})
            if result.is_error or status(result) != "running":
                break
    assert sent(sandbox) == ["a video of a fox in the snow", EDIT, EDIT], text_of(result)
    assert result.is_error and "again: true" in text_of(result)
