"""The ledger of work: every paid or slow operation on a user's projects, recorded before
any request leaves, and shared by every process (and, hosted, every replica).

An entry is one typed job: a message to the agent (`message`), a render (`render`), or
any other `Kind` (the stores know no kind by name but `render`, whose entries are kept
as history). It is written as `queued` when asked, and moves through its states as it
runs (each kind's moves are written out in `server/jobs`):

    message  queued -> sending -> streaming -> (recovering) -> done | failed
    render   queued -> starting -> rendering -> downloading -> done | failed
    any      queued -> cancelled                  (`drop`: nothing of it had left)

`done`, `failed` and `cancelled` are the ends (`FINAL`).

The ledger, not any process's memory, decides what may be sent:

- **Order.** A user's entries run one at a time, in the order asked (`seq`). Only the
  head of the queue (the oldest unfinished entry) may be claimed.
- **One runner.** Running an entry needs its claim: an owner and a lease the owner
  renews while it works. A claim held by a live owner cannot be taken; one whose lease
  has expired (its process died) is taken over, and the new owner continues from the
  recorded state by recovery, never by sending again.
- **Fenced.** Every claim that changes the owner bumps the entry's `generation` (a
  fencing token). Every save carries the generation it was claimed under and is refused,
  atomically with the check, once another claim has bumped it: an owner that was paused
  past its lease can never write over its successor. Files a run writes as it goes
  (a download's `.part`) are named by it too.
- **One clock.** Every time an entry or a lease holds is taken by the store itself (the
  SQLite ledger's process, Redis's `TIME` inside its scripts), never given by a caller,
  so no lease is ever judged by two machines' clocks. Tests give a store a `clock`.
- **Idempotence.** Asking again for an entry's `key` (the same words in the same
  project, or the same render request) finds the existing entry instead of adding one,
  while it is unfinished, or finished and `reusable` within the time to keep it.
- **Bounded.** At most `MAX_WAITING` entries wait behind the one running.
- **Kept.** A finished entry (a handle and its result) is kept `KEEP_HANDLES` (24 hours)
  at least; renders beyond the newest `KEEP_RENDERS` of a user go after that too.

`SqliteLedger` (`sqlite.py`) keeps it in one SQLite file per state folder, safe under
concurrent processes and crashes; the hosted mode keeps the same ledger in Redis.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

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
    "cancelled",
]
FINAL: frozenset[str] = frozenset({"done", "failed", "cancelled"})
#: The kind whose entries are kept as history (the newest `KEEP_RENDERS` per user).
HISTORY: Kind = "render"

#: Entries that may wait behind the one running, per user.
MAX_WAITING = 5
#: How long a finished, reusable entry answers the same request again (seconds).
KEEP_SECONDS = 30 * 60
#: How long a finished entry (a handle and its result) can still be asked for by id.
KEEP_HANDLES = 24 * 3600
#: Render entries kept for history and reuse, per user (older ones once past
#: `KEEP_HANDLES`).
KEEP_RENDERS = 200
#: A claim lasts this long unless renewed; a dead owner's work is taken over after it.
LEASE_SECONDS = 20.0

#: Seconds since the epoch, as a store reads its time (tests give a store their own).
Clock = Callable[[], float]


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
    #: Bumped by every claim that changes the owner: saves name the one they hold.
    generation: int = 0
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

    @property
    def holder(self) -> str:
        """The tag of this claim in file names (`.part` files): its generation. A paused
        process that lost the claim can only ever touch its own files."""
        return f"g{self.generation}"

    def answers_again(self, now: float) -> bool:
        """Whether this entry is what a submission of its key finds: unfinished, or
        finished, `reusable` and recent (within `KEEP_SECONDS`)."""
        return not self.finished or (self.reusable and recent(self.finished_at, now))

    def claimable_by(self, owner: str, now: float, *, dead_here: bool = True) -> bool:
        """Free, ours, or held by an owner whose lease ran out (or who died here, when
        `dead_here`: the store can see this host's processes)."""
        return (
            self.owner is None
            or self.owner == owner
            or self.lease_until < now
            or (dead_here and owner_is_dead_here(self.owner))
        )


def recent(finished_at: float | None, now: float, keep: float = KEEP_SECONDS) -> bool:
    """Whether work finished at `finished_at` is within `keep` seconds of `now`."""
    return (finished_at or 0.0) >= now - keep


def lease_end(now: float, seconds: float) -> float:
    """When a lease of `seconds` taken at `now` ends: 0 (over) for none or a negative one."""
    return now + seconds if seconds > 0 else 0.0


def _optional_json(raw: Any) -> Any:
    return json.loads(raw) if raw else None


def entry_of(row: Mapping[str, Any]) -> Entry:
    """An entry from a stored row: SQLite's typed columns or a Redis hash's text fields
    ('' for a missing owner, session, finish time, outcome, error)."""
    return Entry(
        id=str(row["id"]),
        user=str(row["user"]),
        seq=int(row["seq"]),
        kind=cast(Kind, row["kind"]),
        key=str(row["key"]),
        session_id=row["session_id"] or None,
        state=cast(State, row["state"]),
        request=json.loads(row["request"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        version=int(row["version"]),
        owner=row["owner"] or None,
        generation=int(row["generation"]),
        lease_until=float(row["lease_until"]),
        finished_at=float(row["finished_at"]) if row["finished_at"] not in (None, "") else None,
        reusable=str(row["reusable"]) == "1",
        progress=json.loads(row["progress"]),
        memo=json.loads(row["memo"]),
        outcome=_optional_json(row["outcome"]),
        error=_optional_json(row["error"]),
    )


@dataclass(frozen=True)
class Save:
    """One `save` or `finish` as a store applies it: `changes` as `changed_fields` gives them."""

    entry_id: str
    owner: str
    generation: int
    lease: float
    changes: dict[str, str | bool]

    @property
    def final(self) -> bool:
        """The save ends the entry (and releases its claim)."""
        return self.changes.get("state") in FINAL


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
    """The store behind the ledger; every method is atomic, and takes its time itself."""

    async def submit(
        self,
        *,
        user: str,
        kind: Kind,
        key: str,
        session_id: str | None,
        request: dict[str, Any],
        ask: str | None = None,
    ) -> Submission:
        """Find the entry for `key` (unfinished, or finished, reusable and recent: see
        `Entry.answers_again`), else add a queued one at the end of the user's queue
        unless the queue is full; with `ask`, record that call as waiting for it (see
        `ask`), in the same transaction."""
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

    async def claim_head(self, user: str, owner: str, *, lease: float) -> Entry | None:
        """Take (or renew) the claim on the user's head entry, whichever it is, bumping
        its `generation` when the owner changes; None if there is none or another live
        owner holds it."""
        ...

    async def save(
        self,
        entry_id: str,
        owner: str,
        *,
        generation: int,
        lease: float,
        state: State | None = None,
        session_id: str | None = None,
        progress: dict[str, Any] | None = None,
        memo: dict[str, Any] | None = None,
    ) -> Entry | None:
        """Save an unfinished entry `owner` holds under the claim of `generation`, renewing
        the lease (`lease` <= 0 gives it up). None when `owner` no longer holds that claim
        (another claim bumped the generation, or the entry ended): nothing is changed then."""
        if state in FINAL:
            raise ValueError(f"save cannot end an entry ({state}): finish does")
        changes = changed_fields(state=state, session_id=session_id, progress=progress, memo=memo)
        return await self._save(Save(entry_id, owner, generation, lease, changes))

    async def finish(
        self,
        entry_id: str,
        owner: str,
        *,
        generation: int,
        state: State,
        outcome: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        reusable: bool = False,
        progress: dict[str, Any] | None = None,
        memo: dict[str, Any] | None = None,
    ) -> Entry | None:
        """End an entry `owner` holds under the claim of `generation` with a final `state`
        and its `outcome` or `error`, releasing the claim; None (nothing changed) as for
        `save`."""
        if state not in FINAL:
            raise ValueError(f"finish needs a final state, not {state}")
        changes = changed_fields(
            state=state,
            progress=progress,
            memo=memo,
            outcome=outcome,
            error=error,
            reusable=reusable,
        )
        return await self._save(Save(entry_id, owner, generation, 0.0, changes))

    async def _save(self, save: Save) -> Entry | None:
        """`save` or `finish` in the store, all or nothing."""
        ...

    async def drop(self, entry_id: str, *, error: dict[str, Any]) -> Entry | None:
        """End a `queued` entry as `cancelled` with `error` (why), whoever claims it:
        nothing of it has left, since its executor records another state before
        anything is sent, and that save then finds it finished. None when the entry
        is no longer queued (nothing is changed then)."""
        ...

    async def ask(self, entry_id: str, ask_id: str) -> bool:
        """Record that a call (`ask_id`) waits for `entry_id`; True if another call was
        already given its outcome (it was delivered before)."""
        ...

    async def deliver(self, entry_id: str, ask_id: str) -> None:
        """Record that the call `ask_id` was given the entry's outcome."""
        ...

    async def renders(self, user: str, *, limit: int = KEEP_RENDERS) -> list[Entry]:
        """The user's render entries, newest last."""
        ...

    async def lease(self, name: str, owner: str, *, seconds: float) -> bool:
        """Take or renew the named lease (e.g. asking for the one anonymous token)."""
        ...

    async def release(self, name: str, owner: str) -> None: ...

    async def prune(self) -> int:
        """Forget finished entries nobody can ask for again (`KEEP_HANDLES`); keep the
        newest `KEEP_RENDERS` renders of each user however old."""
        ...

    async def close(self) -> None: ...


def dump_json(value: Any) -> str:
    """A JSON column or field as both stores keep it: compact, anything else as text."""
    return json.dumps(value, separators=(",", ":"), default=str)


def changed_fields(
    *,
    state: State | None = None,
    session_id: str | None = None,
    progress: dict[str, Any] | None = None,
    memo: dict[str, Any] | None = None,
    outcome: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
    reusable: bool | None = None,
) -> dict[str, str | bool]:
    """The fields a `save` or `finish` changes, in order: text as it is, mappings as JSON."""
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
    "HISTORY",
    "KEEP_HANDLES",
    "KEEP_RENDERS",
    "KEEP_SECONDS",
    "LEASE_SECONDS",
    "MAX_WAITING",
    "Clock",
    "Entry",
    "Kind",
    "Ledger",
    "Save",
    "State",
    "Submission",
    "changed_fields",
    "clock",
    "dump_json",
    "entry_of",
    "lease_end",
    "new_owner",
    "owner_is_dead_here",
    "recent",
]
