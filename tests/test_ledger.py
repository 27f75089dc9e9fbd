"""The ledger's rules, one at a time, on both stores (a real SQLite file, a real Redis):
submissions, claims, fencing generations, leases, order, idempotence, the bound, the
cancelled end, what is kept, the store's own clock, and leases for once-per-home work.
The one rule they differ on, by design: the SQLite ledger takes a dead local owner's
claim over at once; the Redis ledger (replicas on other machines) by lease only.

Time is driven through the clock each store is given (`Clock`), never per call."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import cast

import pytest

from nemo_mcp.hosted.local import RedisClusterServers, RedisServer
from nemo_mcp.ledger import (
    FINAL,
    KEEP_HANDLES,
    KEEP_RENDERS,
    KEEP_SECONDS,
    MAX_WAITING,
    Kind,
    Ledger,
    owner_is_dead_here,
)
from nemo_mcp.ledger.sqlite import SqliteLedger

NOW = 1_000_000.0


class Clock:
    """A store's clock that tests move by hand."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


P1, P2 = "elsewhere:1:a", "elsewhere:2:b"  # not this host: only leases decide

#: Makes one ledger; two calls with the same name share one store (as two processes do).
Opener = Callable[[str], Ledger]


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
async def open_ledger(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[Opener]:
    opened: list[Ledger] = []
    clients = []
    namespace = uuid.uuid4().hex
    if request.param.startswith("redis"):
        from nemo_mcp.hosted.redis_client import connect
        from nemo_mcp.ledger.redis import RedisLedger
        from nemo_mcp.scale import Scale

        cluster = request.param == "redis-cluster"
        server: RedisServer | RedisClusterServers = request.getfixturevalue(
            "redis_cluster" if cluster else "redis_server"
        )

        def opener(name: str) -> Ledger:
            client = connect(server.url, Scale(redis_cluster=cluster))
            clients.append(client)
            opened.append(RedisLedger(client, f"test:{{{namespace}}}:{name}", clock=clock))
            return opened[-1]

    else:

        def opener(name: str) -> Ledger:
            opened.append(SqliteLedger(tmp_path / f"{name}.sqlite3", clock=clock))
            return opened[-1]

    yield opener
    for ledger in opened:
        await ledger.close()
    for client in clients:
        await client.aclose()


@pytest.fixture
def ledger(open_ledger: Opener) -> Ledger:
    return open_ledger("ledger")


async def ask(ledger: Ledger, key: str, kind: Kind = "message") -> str:
    submission = await ledger.submit(
        user="u", kind=kind, key=key, session_id="s", request={"message": key}
    )
    assert submission.entry is not None
    return submission.entry.id


async def run(ledger: Ledger, entry_id: str, **ending: object) -> None:
    """Claim `entry_id` (the head) as P1 and finish it (`done` unless `ending` says)."""
    claimed = await ledger.claim_head("u", P1, lease=20)
    assert claimed is not None and claimed.id == entry_id
    ending.setdefault("state", "done")
    done = await ledger.finish(
        entry_id,
        P1,
        generation=claimed.generation,
        **ending,  # type: ignore[arg-type]
    )
    assert done is not None and done.finished


async def test_the_same_key_is_one_entry_until_it_is_forgotten(
    ledger: Ledger, clock: Clock
) -> None:
    first = await ledger.submit(user="u", kind="message", key="k", session_id="s", request={})
    clock.now = NOW + 1
    again = await ledger.submit(user="u", kind="message", key="k", session_id="s", request={})
    assert first.how == "new" and again.how == "unfinished"
    assert first.entry and again.entry and first.entry.id == again.entry.id
    clock.now = NOW
    await run(ledger, first.entry.id, outcome={"x": 1}, reusable=True)
    done = await ledger.get(first.entry.id)
    assert done is not None and done.owner is None and done.finished_at == NOW
    clock.now = NOW + KEEP_SECONDS
    found = await ledger.submit(user="u", kind="message", key="k", session_id="s", request={})
    assert found.how == "finished" and found.entry and found.entry.outcome == {"x": 1}
    clock.now = NOW + KEEP_SECONDS + 1
    later = await ledger.submit(user="u", kind="message", key="k", session_id="s", request={})
    assert later.how == "new"  # kept 30 minutes, then the same words are a new request


async def test_a_failure_before_sending_is_not_reused(ledger: Ledger, clock: Clock) -> None:
    entry_id = await ask(ledger, "k")
    await run(ledger, entry_id, state="failed", error={"m": "no credits"})
    clock.now = NOW + 1
    again = await ledger.submit(user="u", kind="message", key="k", session_id="s", request={})
    assert again.how == "new"


async def test_a_cancel_ends_only_queued_work_as_cancelled_and_its_holder_cannot_send_it(
    ledger: Ledger, clock: Clock
) -> None:
    first, second = await ask(ledger, "a"), await ask(ledger, "b")
    claimed = await ledger.claim_head("u", P1, lease=20)  # claimed, still queued
    assert claimed is not None and claimed.id == first
    clock.now = NOW + 1
    dropped = await ledger.drop(first, error={"message": "cancelled"})
    assert dropped is not None and dropped.state == "cancelled" and "cancelled" in FINAL
    assert dropped.finished and dropped.finished_at == NOW + 1
    assert dropped.error == {"message": "cancelled"} and dropped.owner is None
    # The runner that claimed it records `sending` before sending: refused, so never sent.
    gen = claimed.generation
    assert await ledger.save(first, P1, generation=gen, lease=20, state="sending") is None
    assert (await ledger.head("u")).id == second  # type: ignore[union-attr]
    taken = await ledger.claim_head("u", P1, lease=20)
    assert taken is not None and taken.id == second
    await ledger.save(second, P1, generation=taken.generation, lease=20, state="sending")
    assert await ledger.drop(second, error={}) is None  # it may have left
    assert await ledger.drop(first, error={}) is None  # already over
    assert [e.id for e in await ledger.unfinished("u")] == [second]
    # A cancelled request is not an answer: the same words are new work.
    again = await ledger.submit(user="u", kind="message", key="a", session_id="s", request={})
    assert again.how == "new"


async def test_only_the_head_runs_and_only_its_holder_changes_it(
    ledger: Ledger, clock: Clock
) -> None:
    first, second = await ask(ledger, "a"), await ask(ledger, "b")
    claimed = await ledger.claim_head("u", P1, lease=20)
    assert claimed is not None and claimed.id == first  # the oldest, never the second
    gen = claimed.generation
    clock.now = NOW + 19
    assert await ledger.claim_head("u", P2, lease=20) is None  # P1's lease holds
    assert await ledger.save(first, P2, generation=gen, lease=20, state="sending") is None
    assert (await ledger.get(first)).state == "queued"  # type: ignore[union-attr]
    renewed = await ledger.save(first, P1, generation=gen, lease=20, state="sending")
    assert renewed is not None and renewed.lease_until == NOW + 39
    clock.now = NOW + 38
    assert await ledger.claim_head("u", P2, lease=20) is None
    clock.now = NOW + 40
    taken = await ledger.claim_head("u", P2, lease=20)  # P1 stopped renewing
    assert taken is not None and taken.owner == P2 and taken.state == "sending"
    assert await ledger.finish(first, P1, generation=gen, state="done") is None
    clock.now = NOW + 41
    await ledger.finish(first, P2, generation=taken.generation, state="done")
    assert (await ledger.head("u")).id == second  # type: ignore[union-attr]


async def test_every_change_of_owner_bumps_the_generation_and_stale_saves_are_refused(
    ledger: Ledger, clock: Clock
) -> None:
    entry_id = await ask(ledger, "k")
    one = await ledger.claim_head("u", P1, lease=20)
    assert one is not None and one.generation == 1
    renewed = await ledger.claim_head("u", P1, lease=20)  # the same owner: the same claim
    assert renewed is not None and renewed.generation == 1
    clock.now = NOW + 21
    two = await ledger.claim_head("u", P2, lease=20)  # P1 paused past its lease
    assert two is not None and two.generation == 2
    saved = await ledger.save(entry_id, P2, generation=2, lease=20, memo={"by": "P2"})
    assert saved is not None and saved.generation == 2
    clock.now = NOW + 42
    # P2 paused too, and a new run of P1 claimed it again: P1's owner name holds it, but
    # only under the new generation; the old run's saves are refused (nothing changes).
    three = await ledger.claim_head("u", P1, lease=20)
    assert three is not None and three.owner == P1 and three.generation == 3
    assert await ledger.save(entry_id, P1, generation=1, lease=20, memo={"by": "old"}) is None
    assert await ledger.finish(entry_id, P2, generation=2, state="done") is None
    kept = await ledger.get(entry_id)
    assert kept is not None and kept.memo == {"by": "P2"} and not kept.finished
    assert kept.version == three.version  # the refused saves changed nothing at all
    done = await ledger.finish(entry_id, P1, generation=3, state="done")
    assert done is not None and done.state == "done" and done.generation == 3


async def test_giving_a_claim_up_lets_another_take_it_at_once(ledger: Ledger, clock: Clock) -> None:
    await ask(ledger, "k")
    claimed = await ledger.claim_head("u", P1, lease=20)
    assert claimed is not None
    given_up = await ledger.save(claimed.id, P1, generation=claimed.generation, lease=0)
    assert given_up is not None and given_up.lease_until == 0
    taken = await ledger.claim_head("u", P2, lease=20)
    assert taken is not None and taken.owner == P2 and taken.generation == 2


async def test_the_queue_is_bounded(ledger: Ledger) -> None:
    ids = [await ask(ledger, f"k{n}") for n in range(1 + MAX_WAITING)]
    full = await ledger.submit(user="u", kind="message", key="one more", session_id="s", request={})
    assert full.how == "full" and full.entry and full.entry.id == ids[0]
    assert [e.id for e in await ledger.unfinished("u")] == ids
    other_user = await ledger.submit(user="v", kind="message", key="k", session_id="s", request={})
    assert other_user.how == "new"  # users have their own queues


async def test_asks_and_deliveries(ledger: Ledger) -> None:
    entry_id = await ask(ledger, "k")
    assert await ledger.ask(entry_id, "call-1") is False
    assert await ledger.ask(entry_id, "call-2") is False
    await ledger.deliver(entry_id, "call-1")
    assert await ledger.ask(entry_id, "call-2") is True  # answered before, to call-1
    assert await ledger.ask(entry_id, "call-1") is False  # only others count


async def test_named_leases(ledger: Ledger, clock: Clock) -> None:
    assert await ledger.lease("token", P1, seconds=30)
    clock.now = NOW + 10
    assert not await ledger.lease("token", P2, seconds=30)
    assert await ledger.lease("token", P1, seconds=30)  # renewed by its holder
    await ledger.release("token", P1)
    clock.now = NOW + 11
    assert await ledger.lease("token", P2, seconds=30)
    clock.now = NOW + 42
    assert await ledger.lease("token", P1, seconds=30)  # P2's ran out


async def test_a_dead_local_owner(ledger: Ledger, clock: Clock) -> None:
    """SQLite: taken over at once. Redis: only when its lease runs out, since a replica
    cannot tell a process elsewhere (or in another container) from a dead one."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"{socket.gethostname()}:{child.pid}:x"
    live = f"{socket.gethostname()}:{os.getpid()}:y"
    assert owner_is_dead_here(dead) and not owner_is_dead_here(live)
    assert not owner_is_dead_here(P1)
    await ask(ledger, "k")
    assert await ledger.claim_head("u", dead, lease=20)
    assert await ledger.lease("token", dead, seconds=20)
    clock.now = NOW + 1
    taken = await ledger.claim_head("u", live, lease=20)
    leased = await ledger.lease("token", live, seconds=20)
    if isinstance(ledger, SqliteLedger):
        assert taken is not None and taken.owner == live  # no wait for the lease
        assert leased
        return
    assert taken is None and not leased
    clock.now = NOW + 21
    taken = await ledger.claim_head("u", live, lease=20)
    assert taken is not None and taken.owner == live
    assert await ledger.lease("token", live, seconds=20)


async def test_two_ledgers_on_one_store_agree(open_ledger: Opener) -> None:
    """Two connections (as two processes or replicas have) see one queue and one claim."""
    one, two = open_ledger("shared"), open_ledger("shared")
    entry_id = await ask(one, "k")
    again = await two.submit(user="u", kind="message", key="k", session_id="s", request={})
    assert again.entry and again.entry.id == entry_id
    assert await one.claim_head("u", P1, lease=20)
    assert await two.claim_head("u", P2, lease=20) is None
    assert (await two.get(entry_id)).owner == P1  # type: ignore[union-attr]


async def test_renders_history_and_what_is_kept(ledger: Ledger, clock: Clock) -> None:
    for n in range(3):
        clock.now = NOW + n
        entry_id = await ask(ledger, "render|mp4|high", kind="render")
        await run(ledger, entry_id, memo={"n": n})
    clock.now = NOW
    old = await ask(ledger, "old message")
    await run(ledger, old, reusable=True)
    other = await ask(ledger, "a hand-off", kind=cast(Kind, "handoff"))  # a kind to come
    await run(ledger, other)
    assert [e.memo["n"] for e in await ledger.renders("u")] == [0, 1, 2]
    clock.now = NOW + 3 * KEEP_SECONDS
    assert await ledger.prune() == 0  # a handle is kept 24 hours
    clock.now = NOW + KEEP_HANDLES - 1
    assert await ledger.prune() == 0
    assert (await ledger.get(old)) is not None and (await ledger.get(other)) is not None
    clock.now = NOW + KEEP_HANDLES + 1
    assert await ledger.prune() == 2  # the message and the other kind; renders kept
    assert await ledger.get(old) is None and await ledger.get(other) is None
    assert len(await ledger.renders("u")) == 3


async def test_the_latest_entry_of_a_key_in_any_state(ledger: Ledger, clock: Clock) -> None:
    assert await ledger.latest(user="u", kind="message", key="k") is None
    assert await ledger.last_seq("u") == 0
    first = await ask(ledger, "k")
    await run(ledger, first, state="failed", error={"m": "x"})
    found = await ledger.latest(user="u", kind="message", key="k")
    assert found is not None and found.id == first and found.state == "failed"
    clock.now = NOW + 1
    second = await ask(ledger, "k")  # not reusable: a new entry
    newest = await ledger.latest(user="u", kind="message", key="k")
    assert newest is not None and newest.id == second != first
    assert await ledger.latest(user="u", kind="render", key="k") is None
    assert await ledger.last_seq("u") == newest.seq


async def test_a_submission_with_ask_knows_an_earlier_delivery(ledger: Ledger) -> None:
    first = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, ask="call-1"
    )
    assert first.entry is not None and not first.delivered_before
    await ledger.deliver(first.entry.id, "call-1")
    again = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, ask="call-2"
    )
    assert again.how == "unfinished" and again.delivered_before
    mine = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, ask="call-1"
    )
    assert not mine.delivered_before  # its own delivery does not count


async def test_only_the_newest_renders_are_kept_once_past_a_day(
    ledger: Ledger, clock: Clock
) -> None:
    ids = []
    for n in range(KEEP_RENDERS + 2):
        ids.append(await ask(ledger, f"render|{n}", kind="render"))
        await run(ledger, ids[-1])
    running = await ask(ledger, "running", kind="render")
    assert await ledger.prune() == 0  # past the newest kept, but each still a day's handle
    clock.now = NOW + KEEP_HANDLES + 1
    assert await ledger.prune() == 3  # the oldest finished ones; never the running one
    kept = [e.id for e in await ledger.renders("u", limit=KEEP_RENDERS + 3)]
    assert kept == [*ids[3:], running]
    assert await ledger.get(ids[0]) is None
    assert [e.id for e in await ledger.renders("u", limit=2)] == [ids[-1], running]


async def test_the_store_takes_its_own_time(open_ledger: Opener, tmp_path: Path) -> None:
    """With no clock given, SQLite records this machine's wall clock and Redis its own
    `TIME`; a caller passes no time at all, so leases are judged by one clock."""
    probe = open_ledger("probe")
    if isinstance(probe, SqliteLedger):
        ledger: Ledger = SqliteLedger(tmp_path / "own-clock.sqlite3")
        before = time.time()
    else:
        from nemo_mcp.ledger.redis import RedisLedger

        assert isinstance(probe, RedisLedger)
        ledger = RedisLedger(probe.redis, probe.prefix + ":own")

        async def redis_time() -> float:
            seconds, micros = await probe.redis.time()
            return int(seconds) + int(micros) / 1e6

        before = await redis_time()
    try:
        entry_id = await ask(ledger, "k")
        claimed = await ledger.claim_head("u", P1, lease=20)
        after = time.time() if isinstance(probe, SqliteLedger) else await redis_time()
        assert claimed is not None and claimed.id == entry_id
        assert before <= claimed.created_at <= claimed.updated_at <= after
        assert before + 20 <= claimed.lease_until <= after + 20
    finally:
        await ledger.close()


def test_a_new_file_opened_by_many_at_once_opens_for_all(tmp_path: Path) -> None:
    # Two processes started together on an empty home open a new ledger together: SQLite
    # answers the loser of the WAL switch "database is locked" without waiting. Threads
    # with their own connections race the same way; every one of them must get the ledger.
    failures: list[str] = []
    for attempt in range(20):
        path = tmp_path / f"try{attempt}" / "ledger.sqlite3"
        barrier = threading.Barrier(4)

        def open_it(path: Path = path, barrier: threading.Barrier = barrier) -> None:
            ledger = SqliteLedger(path)
            barrier.wait()
            try:
                ledger._connect()
            except sqlite3.Error as err:
                failures.append(str(err))

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []


async def test_a_call_meeting_another_connections_lock_waits_it_out(tmp_path: Path) -> None:
    """A quick call finds the file locked (another process writes): it is not refused but
    waits in a worker thread, the event loop free meanwhile, and lands once it is free."""
    import anyio

    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(path, clock=Clock())
    try:
        first = await ask(ledger, "a")  # opened: later calls try the quick way first
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        ticks = 0
        second: str | None = None

        async def submit() -> None:
            nonlocal second
            second = await ask(ledger, "b")

        async def tick() -> None:
            nonlocal ticks
            while second is None:
                ticks += 1
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(submit)
            tasks.start_soon(tick)
            await anyio.sleep(0.3)
            assert second is None  # waiting, not refused
            holder.execute("ROLLBACK")
            holder.close()
        assert ticks >= 10  # the loop ran while the call waited
        assert [e.id for e in await ledger.unfinished("u")] == [first, second]
    finally:
        await ledger.close()


async def test_a_file_from_before_generations_is_opened_and_fenced(tmp_path: Path) -> None:
    from nemo_mcp.ledger.sqlite import SCHEMA

    path = tmp_path / "ledger.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(SCHEMA.replace("    generation INTEGER NOT NULL DEFAULT 0,\n", ""))
    old.execute(
        "INSERT INTO work (id, user, kind, key, session_id, state, request, created_at, "
        "updated_at) VALUES ('e1', 'u', 'message', 'k', 's', 'queued', '{}', 1, 1)"
    )
    old.close()
    ledger = SqliteLedger(path, clock=Clock())
    try:
        found = await ledger.get("e1")
        assert found is not None and found.generation == 0
        claimed = await ledger.claim_head("u", P1, lease=20)
        assert claimed is not None and claimed.generation == 1
        assert await ledger.save("e1", P1, generation=0, lease=20, state="sending") is None
    finally:
        await ledger.close()


async def test_the_write_ahead_log_is_checkpointed_off_the_loop(tmp_path: Path) -> None:
    """Commits on the loop never checkpoint (autocheckpoint is off); every
    CHECKPOINT_EVERY calls one does, in a worker thread, so the log stops growing."""
    from nemo_mcp.ledger.sqlite import CHECKPOINT_EVERY

    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(path, clock=Clock())
    wal = Path(f"{path}-wal")
    try:
        await ledger.prune()  # opened (call 1)
        for n in range(CHECKPOINT_EVERY - 2):
            await ledger.deliver(f"e{n}", "call")  # one write each
        before_any = wal.stat().st_size
        for n in range(2 * CHECKPOINT_EVERY):
            await ledger.deliver(f"f{n}", "call")
        assert wal.stat().st_size <= before_any * 1.2  # reused from its start, not grown 3x
    finally:
        await ledger.close()
