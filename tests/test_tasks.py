"""The MCP Tasks extension through a real server process over streamable HTTP.

The client speaks the 2026-07-28 protocol as a tasks-aware host does (`tasks_client.py`),
declaring the extension per request; each scenario counts what reached the sandbox
(messages the agent accepted, renders started and cancelled) and what the client sent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from processes import (
    end,
    http_server,
    kill,
    ledger_rows,
    needs_proc,
    run_http,
    server_env,
    until,
    wait_listening,
)
from tasks_client import TASKS, RpcError, TasksClient, text_of

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


async def test_a_task_outlives_a_killed_server(tmp_path: Path, sandbox: Any) -> None:
    """SIGKILL while the agent works; the next process answers the same task id, the work
    recovered from the ledger (never sent again), the result inlined."""
    sandbox.control.set(generation_seconds=1.5)
    env = server_env(tmp_path, sandbox)
    home = Path(env["NEMO_HOME"])
    log = tmp_path / "server.log"
    process, port = run_http(env, log)
    try:
        wait_listening(process, port, log)
        async with TasksClient(f"http://127.0.0.1:{port}/mcp") as client:
            made = await client.call("generate", A)
            await until(lambda: ledger_rows(home)[0]["state"] == "streaming")
        kill(process.pid)
    finally:
        end(process)
    with http_server(env, tmp_path / "again.log") as url:
        async with TasksClient(url) as client:
            done = await client.poll(made["taskId"])
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["status"] == "completed"
    assert sent(sandbox) == [A["message"]] and requests(sandbox, "run_sse") == 1


async def test_export_as_a_task_renders_once_saves_and_inlines_the_previews(
    tmp_path: Path, sandbox: Any
) -> None:
    env = server_env(tmp_path, sandbox)
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            made = await client.poll((await client.call("generate", A))["taskId"])
            assert made["status"] == "completed"
            task = await client.call("export", {})
            assert task["resultType"] == "task"
            done = await client.poll(task["taskId"])
    assert done["status"] == "completed", done
    result = done["result"]
    out = result["structuredContent"]
    assert out["status"] == "completed" and Path(out["file"]).stat().st_size == out["size_bytes"]
    kinds = [block["type"] for block in result["content"]]
    assert "image" in kinds and "resource_link" in kinds, kinds  # contact sheet, local file
    assert sandbox.control.stats()["renders_started"] == 1


async def test_cancel_of_a_render_stops_it_at_the_backend(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(render_seconds=20.0)
    env = server_env(tmp_path, sandbox)
    home = Path(env["NEMO_HOME"])
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            await client.poll((await client.call("generate", A))["taskId"])
            task = await client.call("export", {})
            await until(lambda: ledger_rows(home)[-1]["state"] == "rendering")
            assert await client.cancel(task["taskId"]) == {"resultType": "complete", **_meta(task)}
            done = await client.poll(task["taskId"])
    assert done["status"] == "cancelled", done
    assert "stopped at NemoVideo" in done["statusMessage"] and "result" not in done
    assert requests(sandbox, "render_cancel") == 1
    assert sandbox.control.stats()["renders_started"] == 1
    assert not list((tmp_path / "out").glob("*.mp4"))


async def test_cancel_of_a_queued_message_sends_nothing(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=1.5)
    env = server_env(tmp_path, sandbox)
    b = {"message": "add rain sounds"}
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            first = await client.call("generate", A)
            queued = await client.call("generate", b)
            assert "waiting for its turn" in queued["statusMessage"]
            await client.cancel(queued["taskId"])
            cancelled = await client.get(queued["taskId"])
            done = await client.poll(first["taskId"])
    assert cancelled["status"] == "cancelled" and "nothing was sent" in cancelled["statusMessage"]
    assert done["status"] == "completed"
    assert sent(sandbox) == [A["message"]] and requests(sandbox, "run_sse") == 1


async def test_cancel_after_the_message_left_goes_on_and_says_why(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=1.5)
    env = server_env(tmp_path, sandbox)
    home = Path(env["NEMO_HOME"])
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            task = await client.call("generate", A)
            await until(lambda: ledger_rows(home)[0]["state"] == "streaming")
            await client.cancel(task["taskId"])
            going = await client.get(task["taskId"])
            done = await client.poll(task["taskId"])
    assert going["status"] == "working" and "cannot be unsent" in going["statusMessage"]
    assert done["status"] == "completed" and "before the cancel came" in done["statusMessage"]
    assert done["result"]["structuredContent"]["status"] == "completed"
    assert sent(sandbox) == [A["message"]]


async def test_task_ids_are_their_users_own(tmp_path: Path, sandbox: Any) -> None:
    """Another bearer's task id is answered exactly as one never made: -32602."""
    alice, bob = "alice-secret-token-0123", "bob-secret-token-4567"
    env = server_env(tmp_path, sandbox, NEMO_HTTP_TOKENS=f"{alice},{bob}")
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url, token=alice) as mine, TasksClient(url, token=bob) as other:
            task = await mine.call("generate", A)
            answers = []
            for client, task_id in ((other, task["taskId"]), (mine, "no-such-task")):
                for ask in (client.get, client.cancel):
                    with pytest.raises(RpcError) as caught:
                        await ask(task_id)
                    answers.append((caught.value.code, caught.value.message))
            assert (await mine.poll(task["taskId"]))["status"] == "completed"
            exported = await mine.poll((await mine.call("export", {}))["taskId"])
    assert len(set(answers)) == 1 and answers[0][0] == -32602, answers
    assert sent(sandbox) == [A["message"]]
    # A served user's result never links to this server's disk; the contact sheet stays.
    kinds = [block["type"] for block in exported["result"]["content"]]
    assert "resource_link" not in kinds and "image" in kinds, kinds


async def test_clients_without_the_extension_get_what_they_always_got(
    tmp_path: Path, sandbox: Any
) -> None:
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="5")
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as aware, TasksClient(url, tasks=False) as plain:
            task = await aware.call("generate", A)
            with pytest.raises(RpcError) as caught:
                await plain.get(task["taskId"])
            refused = []
            for method in ("tasks/update", "tasks/cancel"):
                with pytest.raises(RpcError) as other:
                    await plain.request(method, {"taskId": task["taskId"], "inputResponses": {}})
                refused.append(other.value.code)
            update = {"taskId": task["taskId"], "inputResponses": {"none": {"action": "accept"}}}
            acknowledged = await aware.request("tasks/update", update)
            answer = await plain.call("generate", A)  # joins the same work, answered plainly
            credits = await aware.call("credits")  # a quick tool: plain even when declared
    assert caught.value.code == -32021 and refused == [-32021, -32021]
    assert acknowledged["resultType"] == "complete"  # nothing here ever waits for input
    assert caught.value.data == {"requiredCapabilities": {"extensions": {TASKS: {}}}}
    assert answer["resultType"] == "complete" and "taskId" not in answer
    assert answer["structuredContent"]["status"] == "completed"
    assert credits["resultType"] == "complete" and "taskId" not in credits
    assert sent(sandbox) == [A["message"]]


def _meta(result: dict[str, Any]) -> dict[str, Any]:
    """The server's `_meta` stamp on a 2026-07-28 result."""
    return {"_meta": result["_meta"]} if "_meta" in result else {}


async def test_the_question_before_spending_comes_before_any_task(
    tmp_path: Path, sandbox: Any
) -> None:
    """Asked on the call itself (multi round-trip): a decline makes no task and sends
    nothing; a yes is answered with the task."""
    env = server_env(tmp_path, sandbox, NEMO_CONFIRM_SPENDING="always")
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url, capabilities={"elicitation": {"form": {}}}) as client:
            answers = []
            for reply in ({"action": "decline"}, {"action": "accept", "content": {"send": True}}):
                asked = await client.call("generate", A)
                assert asked["resultType"] == "input_required", asked
                (key,) = asked["inputRequests"]
                answers.append(
                    await client.call(
                        "generate",
                        A,
                        inputResponses={key: reply},
                        requestState=asked.get("requestState"),
                    )
                )
                if reply["action"] == "decline":
                    assert sent(sandbox) == []
            declined, accepted = answers
            done = await client.poll(accepted["taskId"])
    assert declined["resultType"] == "complete" and "taskId" not in declined
    assert declined["structuredContent"]["status"] == "declined"
    assert accepted["resultType"] == "task" and done["status"] == "completed"
    assert sent(sandbox) == [A["message"]]


async def test_cancel_stops_nothing_another_call_waits_for(tmp_path: Path, sandbox: Any) -> None:
    """A render another caller (without a task) waits for goes on: only the task ends."""
    sandbox.control.set(render_seconds=3.0)
    env = server_env(tmp_path, sandbox)
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as aware, TasksClient(url, tasks=False) as plain:
            await aware.poll((await aware.call("generate", A))["taskId"])
            waiting = await plain.call("export", {})
            assert waiting["structuredContent"]["status"] == "rendering"
            task = await aware.call("export", {})  # joins the same render
            await aware.cancel(task["taskId"])
            cancelled = await aware.get(task["taskId"])
            for _ in range(60):
                saved = await plain.call("export", {})
                if saved["structuredContent"]["status"] == "completed":
                    break
    assert cancelled["status"] == "cancelled" and "another call waits" in cancelled["statusMessage"]
    assert saved["structuredContent"]["status"] == "completed"
    assert (
        requests(sandbox, "render_cancel") == 0 and sandbox.control.stats()["renders_started"] == 1
    )


async def test_a_render_the_backend_will_not_cancel_goes_on_and_says_so(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(render_seconds=3.0)
    env = server_env(tmp_path, sandbox)
    home = Path(env["NEMO_HOME"])
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            await client.poll((await client.call("generate", A))["taskId"])
            sandbox.control.fault("server_error", route="render_cancel", times=None)
            task = await client.call("export", {})
            await until(lambda: ledger_rows(home)[-1]["state"] == "rendering")
            await client.cancel(task["taskId"])
            going = await client.get(task["taskId"])
            done = await client.poll(task["taskId"])
    assert going["status"] == "working" and "could not be cancelled" in going["statusMessage"]
    assert done["status"] == "completed" and "finished before the cancel" in done["statusMessage"]
    assert done["result"]["structuredContent"]["status"] == "completed"
    assert requests(sandbox, "render_cancel") >= 1
    assert sandbox.control.stats()["renders_started"] == 1
