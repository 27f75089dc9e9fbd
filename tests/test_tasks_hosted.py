"""Tasks on a hosted deployment: kept in Redis, so any replica answers for any task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from nemo_mcp.hosted.local import RedisServer
from nemo_mcp.sandbox.testing import SandboxServer

from hosted_harness import Replicas, replicas
from processes import needs_proc
from tasks_client import RpcError, TasksClient

pytestmark = needs_proc

ANN, BEN = "ann-hosted-task-secret-0123", "ben-hosted-task-secret-4567"


@pytest.fixture(scope="module")
def hosted(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: SandboxServer,
    redis_server: RedisServer,
) -> Iterator[Replicas]:
    tokens = f"{ANN},{BEN}"
    root = tmp_path_factory.mktemp("tasks")
    with replicas(
        root, sandbox_server, NEMO_STATE_URL=redis_server.url, NEMO_HTTP_TOKENS=tokens
    ) as running:
        yield running


async def test_a_task_made_on_one_replica_completes_through_another(
    hosted: Replicas, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=1.0)
    one, other = hosted.all[0].url, hosted.all[1].url
    message = {"message": "a kite over the dunes"}
    async with TasksClient(one, token=ANN) as first, TasksClient(other, token=ANN) as second:
        made = await first.call("generate", message)
        assert made["resultType"] == "task"
        done = await second.poll(made["taskId"])
        async with TasksClient(other, token=BEN) as stranger:
            with pytest.raises(RpcError) as caught:
                await stranger.get(made["taskId"])
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["status"] == "completed"
    assert caught.value.code == -32602
    assert [m["text"] for m in sandbox.control.stats()["messages"]] == [message["message"]]
    assert hosted.homes_hold_no_state() == []  # the task is in Redis, not on a replica's disk


async def test_a_task_outlives_the_replica_that_made_it(hosted: Replicas, sandbox: Any) -> None:
    """The replica running the job is SIGKILLed: another takes the work over from the
    shared ledger when its lease runs out, and answers the same task id; one message."""
    sandbox.control.set(generation_seconds=1.5)
    message = {"message": "a lantern festival at dusk"}
    try:
        async with (
            TasksClient(hosted.all[0].url, token=BEN) as first,
            TasksClient(hosted.all[1].url, token=BEN) as second,
        ):
            await second.call("credits")  # the user is known there already, idle
            made = await first.call("generate", message)
            hosted.kill(0)
            done = await second.poll(made["taskId"])
    finally:
        hosted.restart(0)
    assert done["status"] == "completed", done
    assert done["result"]["structuredContent"]["status"] == "completed"
    assert [m["text"] for m in sandbox.control.stats()["messages"]] == [message["message"]]
