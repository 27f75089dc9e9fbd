"""The task store's rules on both stores, and the pure parts of a task's answer."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from nemo_mcp.hosted.local import RedisClusterServers, RedisServer
from nemo_mcp.ledger import Entry
from nemo_mcp.server.tasks.keeper import POLL_MAX_MS, POLL_MIN_MS, poll_interval
from nemo_mcp.server.tasks.records import TTL_SECONDS, TaskRecord, bounded, iso
from nemo_mcp.server.tasks.store import SqliteTaskStore, TaskStore

NOW = 1_800_000_000.0


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    if request.param.startswith("redis"):
        from nemo_mcp.hosted.redis_client import connect
        from nemo_mcp.scale import Scale
        from nemo_mcp.server.tasks.store import RedisTaskStore

        # On a Cluster, every key a script touches must be in KEYS, in the user's slot.
        cluster = request.param == "redis-cluster"
        server: RedisServer | RedisClusterServers = request.getfixturevalue(
            "redis_cluster" if cluster else "redis_server"
        )
        client = connect(server.url, Scale(redis_cluster=cluster))
        yield RedisTaskStore(client, f"test:{{{uuid.uuid4().hex}}}:b")
        await client.aclose()
    else:
        sqlite = SqliteTaskStore(tmp_path / "tasks.sqlite3")
        yield sqlite
        sqlite.close()


def task(entry: str = "e1", **fields: object) -> TaskRecord:
    made = TaskRecord(
        id=uuid.uuid4().hex,
        entry=entry,
        tool="generate",
        ask="ask-1",
        remote=False,
        created_at=NOW,
        updated_at=NOW,
    )
    return replace(made, **fields)  # type: ignore[arg-type]


async def test_one_live_task_per_entry(store: TaskStore) -> None:
    first = await store.create(task())
    assert (await store.create(task())).id == first.id  # a wait for the same work
    assert (await store.create(task("e2"))).id != first.id
    await store.save(replace(first, status="cancelled"))
    again = await store.create(task())
    assert again.id != first.id and again.status == "working"  # the cancelled one is over
    assert (await store.get(first.id)).status == "cancelled"  # type: ignore[union-attr]


async def test_a_terminal_task_stays_as_it_ended(store: TaskStore) -> None:
    made = await store.create(task())
    result = {"content": [{"type": "text", "text": "done"}], "isError": False}
    done = await store.save(replace(made, status="completed", result=result))
    assert done is not None and done.result == result
    late = await store.save(replace(made, status="cancelled", message="too late"))
    assert late is not None and late.status == "completed" and late.result == result
    assert await store.save(task()) is None  # never made
    assert await store.get("no-such-task") is None


async def test_waiters_are_noted_per_entry(store: TaskStore) -> None:
    await store.wait_on("e1", "a", now=NOW)
    await store.wait_on("e1", "b", now=NOW)
    await store.wait_on("e1", "a", now=NOW)
    assert await store.waiters("e1") == {"a", "b"} and await store.waiters("e2") == set()


async def test_sqlite_tasks_expire_with_their_time_to_live(tmp_path: Path) -> None:
    store = SqliteTaskStore(tmp_path / "tasks.sqlite3")
    old = await store.create(task(created_at=NOW - TTL_SECONDS - 1))
    kept = await store.create(task("e2"))
    assert old.expired(NOW) and not kept.expired(NOW)
    await store.prune(now=NOW)
    assert await store.get(old.id) is None and await store.get(kept.id) is not None
    store.close()


def test_a_large_result_keeps_its_words_and_drops_its_pictures() -> None:
    picture = {"type": "image", "data": "A" * 2_000_000, "mimeType": "image/jpeg"}
    words = {"type": "text", "text": "Video ready: /out/city.mp4"}
    result = {"content": [words, picture], "structuredContent": {"status": "completed"}}
    kept = bounded(result)
    assert len(json.dumps(kept)) < 10_000 and kept["structuredContent"] == {"status": "completed"}
    assert kept["content"][0] == words and "too large" in kept["content"][1]["text"]
    small = {"content": [words]}
    assert bounded(small) is small


def _entry(kind: str, state: str, **progress: object) -> Entry:
    return Entry(
        id="e",
        user="",
        seq=1,
        kind=kind,  # type: ignore[arg-type]
        key="k",
        session_id="s",
        state=state,  # type: ignore[arg-type]
        request={},
        created_at=NOW,
        updated_at=NOW,
        progress=dict(progress),
        memo={"started_at": time.time() - 30},  # the poller reads the wall clock
    )


def test_poll_interval_follows_the_render_and_stays_in_bounds() -> None:
    assert poll_interval(_entry("message", "streaming"), 30.0) == 1_000
    assert poll_interval(None, 30.0) == POLL_MIN_MS
    early = poll_interval(_entry("render", "rendering", percent=5.0), 30.0)
    late = poll_interval(_entry("render", "rendering", percent=95.0), 30.0)
    assert POLL_MIN_MS <= late < early <= POLL_MAX_MS
    assert late <= 2_500  # just past the predicted finish
    assert poll_interval(_entry("render", "rendering", percent=99.99), 30.0) == POLL_MIN_MS


def test_timestamps_are_iso_utc() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
