"""The ledger of work: every paid or slow operation on a user's projects, recorded before
any request leaves, and shared by every process (and, hosted, every replica).

An entry is one operation: a message to the agent (`message`) or a render (`render`).
It is written as `queued` when asked, and moves through its states as it runs:

    message  queued -> sending -> streaming -> (recovering) -> done | failed
    render   queued -> starting -> rendering -> downloading -> done | failed

The ledger, not any process's memory, decides what may be sent:

- **Order.** A user's entries run one at a time, in the order asked (`seq`). Only the
  head of the queue (the oldest unfinished entry) may be claimed.
- **One runner.** Running an entry needs its claim: an owner and a lease the owner
  renews while it works. A claim held by a live owner cannot be taken; one whose lease
  has expired (its process died) is taken over, and the new owner continues from the
  recorded state by recovery, never by sending again.
- **Idempotence.** Asking again for an entry's `key` (the same words in the same
  project, or the same render request) finds the existing entry instead of adding one,
  while it is unfinished, or finished and `reusable` within the time to keep it.
- **Bounded.** At most `MAX_WAITING` entries wait behind the one running.

`SqliteLedger` (`sqlite.py`) keeps it in one SQLite file per state folder, safe under
concurrent processes and crashes; the hosted mode keeps the same ledger in Redis.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Kind = Literal["message", "render", "handoff"]
State = Literal[
    "queued",
    "sending",
    "streaming",
    "recovering",
    "starting",
    "rendering",
    "downloading",
    "done",
    "failed",
]
FINAL: frozenset[str] = frozenset({"done", "failed"})

#: Entries that may wait behind the one running, per user.
MAX_WAITING = 5
#: How long a finished, reusable entry answers the same request again (seconds).
KEEP_SECONDS = 30 * 60
#: How long a finished entry (a handle and its result) can still be asked for by id.
KEEP_HANDLES = 24 * 3600
#: A claim lasts this long unless renewed; a dead owner's work is taken over after it.
LEASE_SECONDS = 20.0


def new_owner() -> str:
    """This process's owner name: host, pid, and a nonce against pid reuse."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_is_dead_here(owner: str | None) -> bool:
    """Whether `owner` was a process on this host that no longer runs.

    Lets a restarted server take over at once instead of waiting out the lease.
    Unknown hosts and live pids count as alive: the lease decides for them.
    """
    if not owner:
        return False
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


@dataclass
class Entry:
    """One operation, as the ledger holds it."""

    id: str
    user: str
    seq: int
    kind: Kind
    key: str
    session_id: str | None
    state: State
    request: dict[str, Any]
    created_at: float
    updated_at: float
    version: int = 0
    owner: str | None = None
    lease_until: float = 0.0
    finished_at: float | None = None
    reusable: bool = False
    progress: dict[str, Any] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)
    outcome: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL

    def claimable_by(self, owner: str, now: float) -> bool:
        """Free, ours, or held by an owner whose lease ran out or who died here."""
        return (
            self.owner is None
            or self.owner == owner
            or self.lease_until < now
            or owner_is_dead_here(self.owner)
        )


Submitted = Literal["new", "unfinished", "finished", "full"]


@dataclass(frozen=True)
class Submission:
    """What `submit` did: added `entry` (`new`), found it (`unfinished` / `finished`),
    or refused because the queue is full (`full`, with the entry running now)."""

    how: Submitted
    entry: Entry | None
    ahead: int = 0
    #: With `ask`: another call was given this entry's outcome before.
    delivered_before: bool = False


class Ledger(Protocol):
    """The store behind the ledger; every method is atomic."""

    async def submit(
        self,
        *,
        user: str,
        kind: Kind,
        key: str,
        session_id: str | None,
        request: dict[str, Any],
        now: float,
        ask: str | None = None,
    ) -> Submission:
        """Find the entry for `key` (unfinished, or finished, reusable and recent), else
        add a queued one at the end of the user's queue unless the queue is full; with
        `ask`, record that call as waiting for it (see `ask`), in the same transaction."""
        ...

    async def find(self, *, user: str, kind: Kind, key: str, now: float) -> Entry | None:
        """The entry `submit` would answer `key` with, without adding one; None when a
        submission would add a new entry."""
        ...

    async def latest(self, *, user: str, kind: Kind, key: str) -> Entry | None:
        """The newest entry for `key`, in whatever state (None when there is none)."""
        ...

    async def last_seq(self, user: str) -> int:
        """The `seq` of the user's newest entry (0 when none): later work has a higher one."""
        ...

    async def get(self, entry_id: str) -> Entry | None: ...

    async def head(self, user: str) -> Entry | None:
        """The user's oldest unfinished entry: the only one that may run."""
        ...

    async def unfinished(self, user: str) -> list[Entry]:
        """The user's unfinished entries, in order."""
        ...

    async def claim(self, entry_id: str, owner: str, *, now: float, lease: float) -> Entry | None:
        """Take (or renew) the claim on the head entry `entry_id`; None if another live
        owner holds it or it is not the head."""
        ...

    async def claim_head(self, user: str, owner: str, *, now: float, lease: float) -> Entry | None:
        """Take the claim on the user's head entry, whichever it is; None if there is
        none or another live owner holds it."""
        ...

    async def update(
        self,
        entry_id: str,
        owner: str,
        *,
        now: float,
        lease: float,
        state: State | None = None,
        session_id: str | None = None,
        progress: dict[str, Any] | None = None,
        memo: dict[str, Any] | None = None,
        outcome: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        reusable: bool | None = None,
    ) -> Entry | None:
        """Change an entry `owner` holds, renewing the lease; a final state releases the
        claim. None when `owner` no longer holds it (nothing is changed then)."""
        ...

    async def drop(self, entry_id: str, *, now: float, error: dict[str, Any]) -> Entry | None:
        """End a `queued` entry as failed with `error` (a cancel), whoever claims it:
        nothing of it has left, since its executor records another state before
        anything is sent, and that update then finds it finished. None when the entry
        is no longer queued (nothing is changed then)."""
        ...

    async def ask(self, entry_id: str, ask_id: str, *, now: float) -> bool:
        """Record that a call (`ask_id`) waits for `entry_id`; True if another call was
        already given its outcome (it was delivered before)."""
        ...

    async def deliver(self, entry_id: str, ask_id: str, *, now: float) -> None:
        """Record that the call `ask_id` was given the entry's outcome."""
        ...

    async def renders(self, user: str, *, limit: int = 200) -> list[Entry]:
        """The user's render entries, newest last."""
        ...

    async def lease(self, name: str, owner: str, *, now: float, seconds: float) -> bool:
        """Take or renew the named lease (e.g. asking for the one anonymous token)."""
        ...

    async def release(self, name: str, owner: str) -> None: ...

    async def prune(self, *, now: float) -> int:
        """Forget finished entries nobody can ask for again; keep recent renders."""
        ...

    async def close(self) -> None: ...


def dump_json(value: Any) -> str:
    """A JSON column or field as both stores keep it: compact, anything else as text."""
    return json.dumps(value, separators=(",", ":"), default=str)


def changed_fields(
    *,
    state: State | None,
    session_id: str | None,
    progress: dict[str, Any] | None,
    memo: dict[str, Any] | None,
    outcome: dict[str, Any] | None,
    error: dict[str, Any] | None,
    reusable: bool | None,
) -> dict[str, str | bool]:
    """The fields an `update` changes, in order: text as it is, mappings as JSON."""
    changes: dict[str, str | bool] = {}
    if state is not None:
        changes["state"] = state
    if session_id is not None:
        changes["session_id"] = session_id
    for name, value in (
        ("progress", progress),
        ("memo", memo),
        ("outcome", outcome),
        ("error", error),
    ):
        if value is not None:
            changes[name] = dump_json(value)
    if reusable is not None:
        changes["reusable"] = reusable
    return changes


def clock() -> float:
    """Wall-clock seconds: entries are compared across processes and restarts."""
    return time.time()


__all__ = [
    "FINAL",
    "KEEP_HANDLES",
    "KEEP_SECONDS",
    "LEASE_SECONDS",
    "MAX_WAITING",
    "Entry",
    "Kind",
    "Ledger",
    "State",
    "Submission",
    "changed_fields",
    "clock",
    "dump_json",
    "new_owner",
    "owner_is_dead_here",
]
