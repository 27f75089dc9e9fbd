"""The Redis ledger's own rules on a single Redis and on a real Redis Cluster (three
masters in cluster mode): leases on Redis's clock, whatever the replicas' clocks say."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest

from nemo_mcp.hosted.local import RedisClusterServers, RedisServer
from nemo_mcp.ledger.redis import RedisLedger

P1, P2 = "elsewhere:1:a", "elsewhere:2:b"  # replicas on other machines: leases decide


@pytest.fixture(params=["redis", "redis-cluster"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[RedisLedger]:
    from nemo_mcp.hosted.redis_client import connect
    from nemo_mcp.scale import Scale

    cluster = request.param == "redis-cluster"
    server: RedisServer | RedisClusterServers = request.getfixturevalue(
        "redis_cluster" if cluster else "redis_server"
    )
    client = connect(server.url, Scale(redis_cluster=cluster))
    opened = RedisLedger(
        client,
        f"nemo:{{{uuid.uuid4().hex}}}:b",
        owns_client=True,
        announce="SPUBLISH" if cluster else "PUBLISH",
    )
    yield opened
    await opened.close()


async def redis_time(ledger: RedisLedger) -> float:
    seconds, micros = await ledger.redis.time()
    return int(seconds) + int(micros) / 1e6


async def test_a_claim_is_held_by_redis_clock_not_a_replicas(ledger: RedisLedger) -> None:
    """No replica gives a time: every script reads Redis's `TIME`, so a lease is judged
    by one clock however far the replicas' clocks drift apart."""
    before = await redis_time(ledger)
    asked = await ledger.submit(user="", kind="render", key="k", session_id="s", request={})
    assert asked.entry is not None
    entry_id = asked.entry.id
    held = await ledger.claim_head("", P1, lease=20)
    assert held is not None and held.owner == P1 and held.generation == 1
    assert before <= held.created_at and before + 20 <= held.lease_until
    assert held.lease_until <= await redis_time(ledger) + 20
    assert await ledger.claim_head("", P2, lease=20) is None
    assert await ledger.lease("token", P1, seconds=20)
    assert not await ledger.lease("token", P2, seconds=20)
    renewed = await ledger.save(entry_id, P1, generation=1, lease=20, state="starting")
    assert renewed is not None and renewed.lease_until > await redis_time(ledger) + 10
    # Given up (a lease that has already run out): taken over at once.
    assert await ledger.save(entry_id, P1, generation=1, lease=0) is not None
    taken = await ledger.claim_head("", P2, lease=20)
    assert taken is not None and taken.owner == P2 and taken.generation == 2


class Waiter:
    """What `Notifier` wakes: a user's `Work` (its poll pace and its waiters' event)."""

    def __init__(self) -> None:
        self.poll = 0.25
        self.woken = anyio.Event()

    def touch(self) -> None:
        self.woken.set()


async def test_a_change_is_announced_to_the_replicas_waiting_on_it(ledger: RedisLedger) -> None:
    from nemo_mcp.hosted.notify import FALLBACK_SECONDS, Notifier

    notifier = Notifier(ledger.redis, sharded=ledger.announce == "SPUBLISH")
    waiter = Waiter()
    asked = await ledger.submit(user="", kind="message", key="k", session_id="s", request={})
    assert asked.entry is not None
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(notifier.run)
        notifier.watch(ledger.channel, waiter)  # type: ignore[arg-type]
        with anyio.fail_after(10):
            while not notifier.live:  # noqa: ASYNC110
                await anyio.sleep(0.01)  # the subscription is made in the background
        assert waiter.poll == FALLBACK_SECONDS  # announced: polling only as a fallback
        with anyio.fail_after(10):
            while not waiter.woken.is_set():
                # Claimed and changed by "another replica" until the announcement lands
                # (the subscription to this channel may be a moment behind `live`).
                claimed = await ledger.claim_head("", P1, lease=20)
                assert claimed is not None
                await ledger.save(
                    asked.entry.id, P1, generation=claimed.generation, lease=20, progress={}
                )
                with anyio.move_on_after(0.2):
                    await waiter.woken.wait()
        tasks.cancel_scope.cancel()
    assert notifier.delivered >= 1
