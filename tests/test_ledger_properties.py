"""The ledger's promise as a property: random interleavings of asking, running, finishing,
crashing and restarting across two processes never send a message twice, run a user's
work in the order asked, and give every caller its own request's outcome.

Each simulated process follows the runner's rules (`server/work.py` and the message
executor): only the head of the queue may be claimed; `sending` is recorded before the
message leaves; a process that takes over an entry left in `sending` sends it only when
nothing shows it arrived, and one left in `streaming` is never sent again. The backend
here records exactly what arrived, so the model's evidence is perfect; what is tested is
the ledger: atomic submissions and claims, leases, order, idempotence; on both stores.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from nemo_mcp.hosted.local import RedisServer
from nemo_mcp.ledger import FINAL, LEASE_SECONDS, Ledger
from nemo_mcp.ledger.sqlite import SqliteLedger

T = TypeVar("T")
KEYS = ["a", "b", "c", "d"]
USER = "u"


@dataclass
class Process:
    """One server process: its current life's owner name, and its messages on the wire."""

    name: str
    life: int = 0
    alive: bool = True
    #: Entries this life recorded as `sending` itself (it may send them).
    marked: set[str] = field(default_factory=set)
    #: Messages sent by this life that have not reached the backend yet: entry id -> key.
    wire: dict[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> str:
        # Not this host: only leases (never a pid check) decide who may take over.
        return f"simulated-{self.name}:{self.life}:x"


@dataclass
class Backend:
    received: Counter[str] = field(default_factory=Counter)
    arrived: set[str] = field(default_factory=set)  # entry ids whose message arrived

    def receive(self, entry_id: str, key: str) -> None:
        self.received[key] += 1
        self.arrived.add(entry_id)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        # In memory where there is a memory file system: the commits' fsyncs are not the test.
        shm = Path("/dev/shm")
        self.folder = tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None)
        self.now = 1_000_000.0
        self.ledger = self.open_ledger()
        self.processes = [Process("p0"), Process("p1")]
        self.backend = Backend()
        self.asks: list[tuple[str, str]] = []  # (entry id, the key its caller asked for)
        self.finished_order: list[int] = []
        self.counter = itertools.count()

    def open_ledger(self) -> Ledger:
        return SqliteLedger(Path(self.folder.name) / "ledger.sqlite3", clock=self.clock)

    def clock(self) -> float:
        """The stores' time: moved by `time_passes` only."""
        return self.now

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.ledger.close())
        self.loop.close()
        self.folder.cleanup()

    # the callers --------------------------------------------------------------------
    @rule(key=st.sampled_from(KEYS))
    def ask(self, key: str) -> None:
        submission = self.run(
            self.ledger.submit(
                user=USER,
                kind="message",
                key=key,
                session_id="s",
                request={"message": key},
            )
        )
        if submission.how == "full":
            return
        assert submission.entry is not None
        assert submission.entry.key == key
        self.asks.append((submission.entry.id, key))

    # the runners --------------------------------------------------------------------
    @rule(which=st.integers(0, 1))
    def step(self, which: int) -> None:
        """One step of a live process's runner on the head of the queue."""
        process = self.processes[which]
        if not process.alive:
            return
        entry = self.run(self.ledger.claim_head(USER, process.owner, lease=LEASE_SECONDS))
        if entry is None:
            return  # none, or another live process holds it
        owner, generation = process.owner, entry.generation

        def update(**changes: Any) -> bool:
            if changes.get("state") in FINAL:
                saved = self.ledger.finish(entry.id, owner, generation=generation, **changes)
            else:
                saved = self.ledger.save(
                    entry.id, owner, generation=generation, lease=LEASE_SECONDS, **changes
                )
            return self.run(saved) is not None

        if entry.state == "queued":
            if update(state="sending"):  # durable before anything leaves
                process.marked.add(entry.id)
        elif entry.state == "sending":
            if entry.id in self.backend.arrived:
                update(state="streaming")  # the backend has it: recover, never resend
            elif entry.id not in process.wire:
                # Ours to send, or taken over with nothing showing it arrived: send once.
                process.marked.add(entry.id)
                process.wire[entry.id] = entry.key
        elif entry.state == "streaming" and update(
            state="done", outcome={"answer": entry.key}, reusable=True
        ):
            self.finished_order.append(entry.seq)

    @rule(which=st.integers(0, 1))
    def arrive(self, which: int) -> None:
        """A message on the wire reaches the backend."""
        process = self.processes[which]
        for entry_id, key in list(process.wire.items()):
            del process.wire[entry_id]
            self.backend.receive(entry_id, key)

    @rule(which=st.integers(0, 1), delivered=st.booleans())
    def crash(self, which: int, delivered: bool) -> None:
        """SIGKILL: what was on the wire arrives or is lost; claims lapse after the lease."""
        process = self.processes[which]
        for entry_id, key in process.wire.items():
            if delivered:
                self.backend.receive(entry_id, key)
        process.wire.clear()
        process.marked.clear()
        process.alive = False

    @rule(which=st.integers(0, 1))
    def restart(self, which: int) -> None:
        process = self.processes[which]
        if not process.alive:
            process.alive = True
            process.life += 1

    @rule(seconds=st.sampled_from([0.5, 5.0, LEASE_SECONDS + 1]))
    def time_passes(self, seconds: float) -> None:
        """Time passes; a live process renews the claim it works on (its keep-alive)."""
        self.now += seconds
        head = self.run(self.ledger.head(USER))
        for process in self.processes:
            if process.alive and head is not None and head.owner == process.owner:
                self.run(
                    self.ledger.save(
                        head.id, process.owner, generation=head.generation, lease=LEASE_SECONDS
                    )
                )

    @precondition(lambda self: bool(self.asks))
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        entry_id, key = data.draw(st.sampled_from(self.asks))
        entry = self.run(self.ledger.get(entry_id))
        assert entry is not None
        if entry.finished:
            assert entry.outcome == {"answer": key}, "a caller got another request's outcome"

    # the promise --------------------------------------------------------------------
    @invariant()
    def sent_at_most_once(self) -> None:
        # Within the time a finished entry is kept, the same key is one request.
        assert all(count <= 1 for count in self.backend.received.values()), self.backend

    @invariant()
    def finished_in_the_order_asked(self) -> None:
        assert self.finished_order == sorted(self.finished_order)


class RedisLedgerMachine(LedgerMachine):
    """The same interleavings on the Redis ledger (a fresh namespace each example)."""

    url = ""

    def open_ledger(self) -> Ledger:
        from redis.asyncio import Redis

        from nemo_mcp.ledger.redis import RedisLedger

        client = Redis.from_url(self.url, decode_responses=True)
        return RedisLedger(
            client, f"test:{{{uuid.uuid4().hex}}}", owns_client=True, clock=self.clock
        )


SETTINGS = settings(max_examples=250, stateful_step_count=20, deadline=None)
LedgerMachine.TestCase.settings = SETTINGS
test_ledger_interleavings = LedgerMachine.TestCase


def test_ledger_interleavings_in_redis(redis_server: RedisServer) -> None:
    RedisLedgerMachine.url = redis_server.url
    run_state_machine_as_test(RedisLedgerMachine, settings=SETTINGS)
