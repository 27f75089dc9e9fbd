"""The ledger's rules, one at a time, on both stores (a real SQLite file, a real Redis):
submissions, claims, leases, order, idempotence, the bound, and leases for once-per-home
work. The one rule they differ on, by design: the SQLite ledger takes a dead local
owner's claim over at once; the Redis ledger (replicas on other machines) by lease only."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from nemo_mcp.hosted.local import RedisClusterServers, RedisServer
from nemo_mcp.ledger import KEEP_HANDLES, KEEP_SECONDS, MAX_WAITING, Ledger, owner_is_dead_here
from nemo_mcp.ledger.sqlite import SqliteLedger

NOW = 1_000_000.0
P1, P2 = "elsewhere:1:a", "elsewhere:2:b"  # not this host: only leases decide

#: Makes one ledger; two calls with the same name share one store (as two processes do).
Opener = Callable[[str], Ledger]


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
async def open_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
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
            opened.append(RedisLedger(client, f"test:{{{namespace}}}:{name}", server_clock=False))
            return opened[-1]

    else:

        def opener(name: str) -> Ledger:
            opened.append(SqliteLedger(tmp_path / f"{name}.sqlite3"))
            return opened[-1]

    yield opener
    for ledger in opened:
        await ledger.close()
    for client in clients:
        await client.aclose()


@pytest.fixture
def ledger(open_ledger: Opener) -> Ledger:
    return open_ledger("ledger")


async def ask(ledger: Ledger, key: str, now: float = NOW) -> str:
    submission = await ledger.submit(
        user="u", kind="message", key=key, session_id="s", request={"message": key}, now=now
    )
    assert submission.entry is not None
    return submission.entry.id


async def test_the_same_key_is_one_entry_until_it_is_forgotten(ledger: Ledger) -> None:
    first = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW
    )
    again = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW + 1
    )
    assert first.how == "new" and again.how == "unfinished"
    assert first.entry and again.entry and first.entry.id == again.entry.id
    assert await ledger.claim(first.entry.id, P1, now=NOW, lease=20)
    done = await ledger.update(
        first.entry.id, P1, now=NOW, lease=20, state="done", outcome={"x": 1}, reusable=True
    )
    assert done is not None and done.owner is None and done.finished_at == NOW
    found = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW + KEEP_SECONDS
    )
    assert found.how == "finished" and found.entry and found.entry.outcome == {"x": 1}
    later = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW + KEEP_SECONDS + 1
    )
    assert later.how == "new"  # kept 30 minutes, then the same words are a new request


async def test_a_failure_before_sending_is_not_reused(ledger: Ledger) -> None:
    entry_id = await ask(ledger, "k")
    assert await ledger.claim(entry_id, P1, now=NOW, lease=20)
    await ledger.update(entry_id, P1, now=NOW, lease=20, state="failed", error={"m": "no credits"})
    again = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW + 1
    )
    assert again.how == "new"


async def test_a_cancel_drops_only_queued_work_and_its_holder_cannot_send_it(
    ledger: Ledger,
) -> None:
    first, second = await ask(ledger, "a"), await ask(ledger, "b")
    assert await ledger.claim(first, P1, now=NOW, lease=20) is not None  # claimed, still queued
    dropped = await ledger.drop(first, now=NOW + 1, error={"message": "cancelled"})
    assert dropped is not None and dropped.state == "failed" and dropped.finished
    assert dropped.error == {"message": "cancelled"} and dropped.owner is None
    # The runner that claimed it records `sending` before sending: refused, so never sent.
    assert await ledger.update(first, P1, now=NOW + 2, lease=20, state="sending") is None
    assert (await ledger.head("u")).id == second  # type: ignore[union-attr]
    assert await ledger.claim(second, P1, now=NOW + 2, lease=20) is not None
    await ledger.update(second, P1, now=NOW + 2, lease=20, state="sending")
    assert await ledger.drop(second, now=NOW + 3, error={}) is None  # it may have left
    assert await ledger.drop(first, now=NOW + 3, error={}) is None  # already over
    assert [e.id for e in await ledger.unfinished("u")] == [second]


async def test_only_the_head_runs_and_only_its_holder_changes_it(ledger: Ledger) -> None:
    first, second = await ask(ledger, "a"), await ask(ledger, "b")
    assert await ledger.claim(second, P1, now=NOW, lease=20) is None  # not its turn
    assert await ledger.claim(first, P1, now=NOW, lease=20) is not None
    assert await ledger.claim(first, P2, now=NOW + 19, lease=20) is None  # P1's lease holds
    assert await ledger.update(first, P2, now=NOW + 19, lease=20, state="sending") is None
    assert (await ledger.get(first)).state == "queued"  # type: ignore[union-attr]
    renewed = await ledger.update(first, P1, now=NOW + 19, lease=20, state="sending")
    assert renewed is not None and renewed.lease_until == NOW + 39
    assert await ledger.claim(first, P2, now=NOW + 38, lease=20) is None
    taken = await ledger.claim(first, P2, now=NOW + 40, lease=20)  # P1 stopped renewing
    assert taken is not None and taken.owner == P2 and taken.state == "sending"
    assert await ledger.update(first, P1, now=NOW + 40, lease=20, state="done") is None
    await ledger.update(first, P2, now=NOW + 41, lease=20, state="done", outcome={})
    assert (await ledger.head("u")).id == second  # type: ignore[union-attr]


async def test_the_queue_is_bounded(ledger: Ledger) -> None:
    ids = [await ask(ledger, f"k{n}") for n in range(1 + MAX_WAITING)]
    full = await ledger.submit(
        user="u", kind="message", key="one more", session_id="s", request={}, now=NOW
    )
    assert full.how == "full" and full.entry and full.entry.id == ids[0]
    assert [e.id for e in await ledger.unfinished("u")] == ids
    other_user = await ledger.submit(
        user="v", kind="message", key="k", session_id="s", request={}, now=NOW
    )
    assert other_user.how == "new"  # users have their own queues


async def test_asks_and_deliveries(ledger: Ledger) -> None:
    entry_id = await ask(ledger, "k")
    assert await ledger.ask(entry_id, "call-1", now=NOW) is False
    assert await ledger.ask(entry_id, "call-2", now=NOW) is False
    await ledger.deliver(entry_id, "call-1", now=NOW)
    assert await ledger.ask(entry_id, "call-2", now=NOW) is True  # answered before, to call-1
    assert await ledger.ask(entry_id, "call-1", now=NOW) is False  # only others count


async def test_named_leases(ledger: Ledger) -> None:
    assert await ledger.lease("token", P1, now=NOW, seconds=30)
    assert not await ledger.lease("token", P2, now=NOW + 10, seconds=30)
    assert await ledger.lease("token", P1, now=NOW + 10, seconds=30)  # renewed by its holder
    await ledger.release("token", P1)
    assert await ledger.lease("token", P2, now=NOW + 11, seconds=30)
    assert await ledger.lease("token", P1, now=NOW + 42, seconds=30)  # P2's ran out


async def test_a_dead_local_owner(ledger: Ledger) -> None:
    """SQLite: taken over at once. Redis: only when its lease runs out, since a replica
    cannot tell a process elsewhere (or in another container) from a dead one."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"{socket.gethostname()}:{child.pid}:x"
    live = f"{socket.gethostname()}:{os.getpid()}:y"
    assert owner_is_dead_here(dead) and not owner_is_dead_here(live)
    assert not owner_is_dead_here(P1)
    entry_id = await ask(ledger, "k")
    assert await ledger.claim(entry_id, dead, now=NOW, lease=20)
    assert await ledger.lease("token", dead, now=NOW, seconds=20)
    taken = await ledger.claim(entry_id, live, now=NOW + 1, lease=20)
    leased = await ledger.lease("token", live, now=NOW + 1, seconds=20)
    if isinstance(ledger, SqliteLedger):
        assert taken is not None and taken.owner == live  # no wait for the lease
        assert leased
        return
    assert taken is None and not leased
    taken = await ledger.claim(entry_id, live, now=NOW + 21, lease=20)
    assert taken is not None and taken.owner == live
    assert await ledger.lease("token", live, now=NOW + 21, seconds=20)


async def test_two_ledgers_on_one_store_agree(open_ledger: Opener) -> None:
    """Two connections (as two processes or replicas have) see one queue and one claim."""
    one, two = open_ledger("shared"), open_ledger("shared")
    entry_id = await ask(one, "k")
    again = await two.submit(user="u", kind="message", key="k", session_id="s", request={}, now=NOW)
    assert again.entry and again.entry.id == entry_id
    assert await one.claim(entry_id, P1, now=NOW, lease=20)
    assert await two.claim(entry_id, P2, now=NOW, lease=20) is None
    assert (await two.get(entry_id)).owner == P1  # type: ignore[union-attr]


async def test_renders_history_and_pruning(ledger: Ledger) -> None:
    for n in range(3):
        submission = await ledger.submit(
            user="u", kind="render", key="render|mp4|high", session_id="s", request={}, now=NOW + n
        )
        assert submission.entry is not None
        await ledger.claim(submission.entry.id, P1, now=NOW + n, lease=20)
        await ledger.update(
            submission.entry.id, P1, now=NOW + n, lease=20, state="done", memo={"n": n}
        )
    old = await ask(ledger, "old message")
    await ledger.claim(old, P1, now=NOW, lease=20)
    await ledger.update(old, P1, now=NOW, lease=20, state="done", reusable=True)
    assert [e.memo["n"] for e in await ledger.renders("u")] == [0, 1, 2]
    assert await ledger.prune(now=NOW + 3 * KEEP_SECONDS) == 0  # a handle is kept 24 hours
    assert await ledger.prune(now=NOW + KEEP_HANDLES + 1) == 1  # the message; renders kept
    assert await ledger.get(old) is None and len(await ledger.renders("u")) == 3


async def test_the_latest_entry_of_a_key_in_any_state(ledger: Ledger) -> None:
    assert await ledger.latest(user="u", kind="message", key="k") is None
    assert await ledger.last_seq("u") == 0
    first = await ask(ledger, "k")
    assert await ledger.claim(first, P1, now=NOW, lease=20)
    await ledger.update(first, P1, now=NOW, lease=20, state="failed", error={"m": "x"})
    found = await ledger.latest(user="u", kind="message", key="k")
    assert found is not None and found.id == first and found.state == "failed"
    assert await ledger.find(user="u", kind="message", key="k", now=NOW) is None
    second = await ask(ledger, "k", now=NOW + 1)  # not reusable: a new entry
    newest = await ledger.latest(user="u", kind="message", key="k")
    assert newest is not None and newest.id == second != first
    assert await ledger.latest(user="u", kind="render", key="k") is None
    assert await ledger.last_seq("u") == newest.seq


async def test_a_submission_with_ask_knows_an_earlier_delivery(ledger: Ledger) -> None:
    first = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW, ask="call-1"
    )
    assert first.entry is not None and not first.delivered_before
    await ledger.deliver(first.entry.id, "call-1", now=NOW)
    again = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW, ask="call-2"
    )
    assert again.how == "unfinished" and again.delivered_before
    mine = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW, ask="call-1"
    )
    assert not mine.delivered_before  # its own delivery does not count


async def test_only_the_newest_renders_are_kept(ledger: Ledger) -> None:
    from nemo_mcp.ledger.sqlite import KEEP_RENDERS

    ids = []
    for n in range(KEEP_RENDERS + 2):
        submission = await ledger.submit(
            user="u", kind="render", key=f"render|{n}", session_id="s", request={}, now=NOW
        )
        assert submission.entry is not None
        ids.append(submission.entry.id)
        assert await ledger.claim(submission.entry.id, P1, now=NOW, lease=20)
        await ledger.update(submission.entry.id, P1, now=NOW, lease=20, state="done")
    running = await ledger.submit(
        user="u", kind="render", key="running", session_id="s", request={}, now=NOW
    )
    assert running.entry is not None
    assert await ledger.prune(now=NOW) == 3  # the oldest finished ones; never the running one
    kept = [e.id for e in await ledger.renders("u", limit=KEEP_RENDERS + 3)]
    assert kept == [*ids[3:], running.entry.id]
    assert await ledger.get(ids[0]) is None
    assert [e.id for e in await ledger.renders("u", limit=2)] == [ids[-1], running.entry.id]


async def test_find_answers_as_submit_would_without_adding(ledger: Ledger) -> None:
    assert await ledger.find(user="u", kind="message", key="k", now=NOW) is None
    entry_id = await ask(ledger, "k")
    found = await ledger.find(user="u", kind="message", key="k", now=NOW)
    assert found is not None and found.id == entry_id
    assert await ledger.find(user="u", kind="render", key="k", now=NOW) is None
    await ledger.claim(entry_id, P1, now=NOW, lease=20)
    await ledger.update(entry_id, P1, now=NOW, lease=20, state="done", reusable=True)
    kept = await ledger.find(user="u", kind="message", key="k", now=NOW + KEEP_SECONDS)
    assert kept is not None and kept.id == entry_id
    assert await ledger.find(user="u", kind="message", key="k", now=NOW + KEEP_SECONDS + 1) is None
    assert len(await ledger.unfinished("u")) == 0


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
