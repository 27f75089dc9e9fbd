"""The ledger's rules, one at a time, on a real SQLite file: submissions, claims, leases,
order, idempotence, the bound, and leases for once-per-home work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from nemo_mcp.ledger import KEEP_SECONDS, MAX_WAITING, owner_is_dead_here
from nemo_mcp.ledger.sqlite import SqliteLedger

NOW = 1_000_000.0
P1, P2 = "elsewhere:1:a", "elsewhere:2:b"  # not this host: only leases decide


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[SqliteLedger]:
    store = SqliteLedger(tmp_path / "ledger.sqlite3")
    yield store
    await store.close()


async def ask(ledger: SqliteLedger, key: str, now: float = NOW) -> str:
    submission = await ledger.submit(
        user="u", kind="message", key=key, session_id="s", request={"message": key}, now=now
    )
    assert submission.entry is not None
    return submission.entry.id


async def test_the_same_key_is_one_entry_until_it_is_forgotten(ledger: SqliteLedger) -> None:
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


async def test_a_failure_before_sending_is_not_reused(ledger: SqliteLedger) -> None:
    entry_id = await ask(ledger, "k")
    assert await ledger.claim(entry_id, P1, now=NOW, lease=20)
    await ledger.update(entry_id, P1, now=NOW, lease=20, state="failed", error={"m": "no credits"})
    again = await ledger.submit(
        user="u", kind="message", key="k", session_id="s", request={}, now=NOW + 1
    )
    assert again.how == "new"


async def test_only_the_head_runs_and_only_its_holder_changes_it(ledger: SqliteLedger) -> None:
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


async def test_the_queue_is_bounded(ledger: SqliteLedger) -> None:
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


async def test_asks_and_deliveries(ledger: SqliteLedger) -> None:
    entry_id = await ask(ledger, "k")
    assert await ledger.ask(entry_id, "call-1", now=NOW) is False
    assert await ledger.ask(entry_id, "call-2", now=NOW) is False
    await ledger.deliver(entry_id, "call-1", now=NOW)
    assert await ledger.ask(entry_id, "call-2", now=NOW) is True  # answered before, to call-1
    assert await ledger.ask(entry_id, "call-1", now=NOW) is False  # only others count


async def test_named_leases(ledger: SqliteLedger) -> None:
    assert await ledger.lease("token", P1, now=NOW, seconds=30)
    assert not await ledger.lease("token", P2, now=NOW + 10, seconds=30)
    assert await ledger.lease("token", P1, now=NOW + 10, seconds=30)  # renewed by its holder
    await ledger.release("token", P1)
    assert await ledger.lease("token", P2, now=NOW + 11, seconds=30)
    assert await ledger.lease("token", P1, now=NOW + 42, seconds=30)  # P2's ran out


async def test_a_dead_local_owner_is_taken_over_at_once(ledger: SqliteLedger) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = f"{socket.gethostname()}:{child.pid}:x"
    live = f"{socket.gethostname()}:{os.getpid()}:y"
    assert owner_is_dead_here(dead) and not owner_is_dead_here(live)
    assert not owner_is_dead_here(P1)
    entry_id = await ask(ledger, "k")
    assert await ledger.claim(entry_id, dead, now=NOW, lease=20)
    taken = await ledger.claim(entry_id, live, now=NOW + 1, lease=20)  # no wait for the lease
    assert taken is not None and taken.owner == live


async def test_two_ledgers_on_one_file_agree(tmp_path: Path) -> None:
    """Two connections (as two processes have) see one queue and one claim."""
    one, two = SqliteLedger(tmp_path / "l.sqlite3"), SqliteLedger(tmp_path / "l.sqlite3")
    try:
        entry_id = await ask(one, "k")
        again = await two.submit(
            user="u", kind="message", key="k", session_id="s", request={}, now=NOW
        )
        assert again.entry and again.entry.id == entry_id
        assert await one.claim(entry_id, P1, now=NOW, lease=20)
        assert await two.claim(entry_id, P2, now=NOW, lease=20) is None
    finally:
        await one.close()
        await two.close()


async def test_renders_history_and_pruning(ledger: SqliteLedger) -> None:
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
    assert await ledger.prune(now=NOW + 3 * KEEP_SECONDS) == 1  # the message; renders kept
    assert await ledger.get(old) is None and len(await ledger.renders("u")) == 3
