"""The MCP Tasks extension through a real server process over streamable HTTP.

The client speaks the 2026-07-28 protocol as a tasks-aware host does (`tasks_client.py`),
declaring the extension per request; each scenario counts what reached the sandbox
(messages the agent accepted, renders started and cancelled) and what the client sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from processes import http_server, needs_proc, server_env
from tasks_client import TASKS, TasksClient, text_of

pytestmark = needs_proc

A = {"message": "a video of a lighthouse in a storm"}


def sent(sandbox: Any) -> list[str]:
    return [m["text"] for m in sandbox.control.stats()["messages"]]


def requests(sandbox: Any, name: str) -> int:
    return int(sandbox.control.stats()["requests"].get(name, 0))


async def test_discovery_lists_the_extension(tmp_path: Path, sandbox: Any) -> None:
    env = server_env(tmp_path, sandbox)
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            found = await client.request("server/discover")
    assert found["capabilities"]["extensions"][TASKS] == {}


async def test_generate_answers_a_task_completed_with_its_result(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=1.0)
    env = server_env(tmp_path, sandbox)
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            made = await client.call("generate", A)
            assert made["resultType"] == "task" and made["status"] == "working", made
            assert made["ttlMs"] == 24 * 3600 * 1000 and made["pollIntervalMs"] >= 500
            again = await client.call("generate", A)  # a wait for the same work
            done = await client.poll(made["taskId"])
    assert again["resultType"] == "task" and again["taskId"] == made["taskId"]
    assert done["status"] == "completed" and done["resultType"] == "complete", done
    result = done["result"]
    assert not result.get("isError") and result["structuredContent"]["status"] == "completed"
    assert "Video" in text_of(result) or result["structuredContent"]["changes"]
    assert sent(sandbox) == [A["message"]]
    assert client.sent["tools/call"] == 2
