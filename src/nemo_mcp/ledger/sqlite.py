"""The ledger in one SQLite file, shared by every process using the same state folder.

WAL mode lets readers run beside one writer; every change is a transaction begun with
`BEGIN IMMEDIATE`, so two processes never interleave a read-then-write (claims and
submissions are atomic). SQLite's own locking does the cross-process work; nothing here
hand-makes a lock.

Durability: every commit is in the WAL before the call returns, so a process killed at
any point loses nothing (`synchronous=NORMAL`). The commits that guard a request leaving
(an entry entering `sending` or `starting`) are also flushed to the disk itself
(`synchronous=FULL`, which syncs every earlier commit with them), so not even a power
cut can hide that a message may have left. The rest skip the flush: about 0.2 ms a
commit instead of several.

Time is the store's own (`clock`, the wall clock unless a test gives one): one file is
one machine's, so every lease in it is judged by one clock.

A call is one short transaction. It runs on the event loop's thread when the file is
free at once (no other connection holds its write lock, no commit must be flushed to
the disk, no other call of this process is running): the common case, a fraction of a
millisecond. Otherwise it runs in a worker thread, which waits out a lock held by another
process, so a busy database never blocks the event loop. The write-ahead log is copied
into the file (a checkpoint, flushed to the disk) in a worker thread every
`CHECKPOINT_EVERY` calls, never by a commit on the loop.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio.to_thread

from nemo_mcp.ledger import (
    HISTORY,
    KEEP_HANDLES,
    KEEP_RENDERS,
    MAX_WAITING,
    Clock,
    Entry,
    Kind,
    Ledger,
    Save,
    Submission,
    dump_json,
    entry_of,
    healing,
    lease_end,
    owner_is_dead_here,
)

OPEN_SECONDS = 30.0

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS work (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    session_id TEXT,
    state TEXT NOT NULL,
    request TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    version INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    generation INTEGER NOT NULL DEFAULT 0,
    lease_until REAL NOT NULL DEFAULT 0,
    finished_at REAL,
    reusable INTEGER NOT NULL DEFAULT 0,
    progress TEXT NOT NULL DEFAULT '{}',
    memo TEXT NOT NULL DEFAULT '{}',
    outcome TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS work_queue ON work (user, finished_at, seq);
CREATE INDEX IF NOT EXISTS work_key ON work (user, kind, key, seq);
CREATE TABLE IF NOT EXISTS asks (
    entry TEXT NOT NULL,
    ask TEXT NOT NULL,
    asked_at REAL NOT NULL,
    delivered_at REAL,
    PRIMARY KEY (entry, ask)
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until REAL NOT NULL
);
"""

#: Columns added since the first schema, added to an older file when it is opened.
ADDED = {"generation": "INTEGER NOT NULL DEFAULT 0"}

_UNFINISHED = "finished_at IS NULL"
#: Every this many calls, one runs in a worker thread and first copies the write-ahead
#: log into the file (a passive checkpoint: it waits for no one), keeping the log short.
CHECKPOINT_EVERY = 1000


class SqliteLedger(Ledger):
    """`Ledger` on a SQLite file (created with 0600 permissions).

    `busy_seconds`: how long a lock held by another connection is waited out before the
    call is answered that the file is locked (about half the tool's budget). A damaged
    file is healed (`healing`): moved aside, a fresh one started, the call told."""

    def __init__(
        self, path: Path, *, busy_seconds: float = OPEN_SECONDS, clock: Clock = time.time
    ) -> None:
        self.path = path
        self.busy_seconds = busy_seconds
        #: Where every time the ledger records comes from.
        self.clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._opened: tuple[int, int] | None = None  # (device, inode) of what _db has open
        self._broken: sqlite3.Connection | None = None  # a damaged file's, kept until moved
        self._calls = 0

    # plumbing ---------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if self._db is not None and healing.identity(self.path) != self._opened:
            self._drop()  # replaced under us (healed by another process): reopen
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path.touch(mode=0o600, exist_ok=True)
            self._opened = healing.identity(self.path)
            self._db = self._open()
        return self._db

    def _drop(self) -> None:
        for db in (self._db, self._broken):
            if db is not None:
                db.close()
        self._db, self._broken, self._opened = None, None, None

    def _open(self) -> sqlite3.Connection:
        """Open the file and make sure of its schema, waiting out other processes doing so.

        Two processes opening a new file together race to switch it to WAL and create the
        tables; SQLite answers the loser "database is locked" at once, without its busy
        handler, so the opening is retried (with a little jitter) for up to `busy_seconds`
        in all, each wait bounded by what is left.
        """
        deadline = time.monotonic() + self.busy_seconds
        while True:
            left = max(0.05, deadline - time.monotonic())
            db = sqlite3.connect(
                self.path, timeout=left, isolation_level=None, check_same_thread=False
            )
            try:
                db.row_factory = sqlite3.Row
                db.execute(f"PRAGMA busy_timeout={int(left * 1000)}")
                if db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                # Checkpoints (which flush the file to the disk) are made in a worker
                # thread every CHECKPOINT_EVERY calls, never by a commit on the loop.
                db.execute("PRAGMA wal_autocheckpoint=0")
                with _transaction(db):
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            db.execute(statement)
                    have = {row["name"] for row in db.execute("PRAGMA table_info(work)")}
                    for name, declared in ADDED.items():
                        if name not in have:
                            db.execute(f"ALTER TABLE work ADD COLUMN {name} {declared}")
                db.execute("PRAGMA busy_timeout=0")  # calls on the loop never wait
                return db
            except sqlite3.OperationalError as err:
                db.close()
                if not healing.busy(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(random.uniform(0.005, 0.05))
            except sqlite3.DatabaseError as err:
                if healing.damaged(err):
                    self._broken = db  # closed once moved aside: closing deletes its -wal
                else:
                    db.close()
                raise

    def _heal(self, err: Exception) -> NoReturn:
        """Raise the sentence for `err`: the file moved aside when damaged (unless another
        process did it already), locked or full named as such, anything else as it is."""
        if isinstance(err, sqlite3.DatabaseError) and healing.damaged(err):
            # Moved while still open: closing the last connection deletes the -wal and
            # -shm files, which are moved aside with it, as they were.
            aside = None
            try:
                if self._opened is None or healing.identity(self.path) == self._opened:
                    aside = healing.move_aside(self.path)
            except OSError as moving:
                raise healing.named(moving, self.path, self.busy_seconds) or err from moving
            finally:
                self._drop()
            raise healing.damaged_error(self.path, aside) from err
        raise healing.named(err, self.path, self.busy_seconds) or err

    async def _run(self, work: Callable[[sqlite3.Connection], T], *, quick: bool = True) -> T:
        """`work` in one go: here and now when `quick` and the file is free at once (see
        the module's docstring), else in a worker thread that waits a lock out."""
        self._calls += 1
        if self._calls % CHECKPOINT_EVERY == 0:
            quick = False  # this one copies the log into the file first, off the loop
        if quick and self._db is not None and self._lock.acquire(blocking=False):
            try:
                return work(self._connect())
            except sqlite3.OperationalError as err:
                if not healing.busy(err):
                    self._heal(err)
                # Locked by another connection: nothing was changed; wait in a thread.
            except (sqlite3.Error, OSError) as err:
                self._heal(err)
            finally:
                self._lock.release()

        def call() -> T:
            with self._lock:
                try:
                    db = self._connect()
                    if self._calls % CHECKPOINT_EVERY == 0:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")  # never waits
                    db.execute(f"PRAGMA busy_timeout={int(self.busy_seconds * 1000)}")
                    try:
                        return work(db)
                    finally:
                        if self._db is db:
                            db.execute("PRAGMA busy_timeout=0")
                except (sqlite3.Error, OSError) as err:
                    self._heal(err)

        return await anyio.to_thread.run_sync(call)

    def _row(self, db: sqlite3.Connection, entry_id: str) -> Entry | None:
        row = db.execute("SELECT * FROM work WHERE id = ?", (entry_id,)).fetchone()
        return entry_of(row) if row is not None else None

    @staticmethod
    def _head(db: sqlite3.Connection, user: str) -> Entry | None:
        row = db.execute(
            f"SELECT * FROM work WHERE user = ? AND {_UNFINISHED} ORDER BY seq LIMIT 1", (user,)
        ).fetchone()
        return entry_of(row) if row is not None else None

    # the ledger -------------------------------------------------------------------
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
        def work(db: sqlite3.Connection) -> Submission:
            with _transaction(db):
                now = self.clock()
                found = self._find_or_add(db, user, kind, key, session_id, request, now)
                if found.entry is None or ask is None or found.how == "full":
                    return found
                delivered = _ask(db, found.entry.id, ask, now)
                return Submission(found.how, found.entry, found.ahead, delivered)

        return await self._run(work)

    def _find_or_add(
        self,
        db: sqlite3.Connection,
        user: str,
        kind: Kind,
        key: str,
        session_id: str | None,
        request: dict[str, Any],
        now: float,
    ) -> Submission:
        found = _latest(db, user, kind, key)
        if found is not None and found.answers_again(now):
            if found.finished:
                return Submission("finished", found)
            (ahead,) = db.execute(
                f"SELECT count(*) FROM work WHERE user = ? AND {_UNFINISHED} AND seq < ?",
                (user, found.seq),
            ).fetchone()
            return Submission("unfinished", found, int(ahead))
        (waiting,) = db.execute(
            f"SELECT count(*) FROM work WHERE user = ? AND {_UNFINISHED}", (user,)
        ).fetchone()
        if waiting >= 1 + MAX_WAITING:
            return Submission("full", self._head(db, user), waiting)
        entry_id = uuid.uuid4().hex
        db.execute(
            "INSERT INTO work (id, user, kind, key, session_id, state, request, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
            (entry_id, user, kind, key, session_id, dump_json(request), now, now),
        )
        entry = self._row(db, entry_id)
        assert entry is not None
        return Submission("new", entry, waiting)

    async def latest(self, *, user: str, kind: Kind, key: str) -> Entry | None:
        return await self._run(lambda db: _latest(db, user, kind, key))

    async def last_seq(self, user: str) -> int:
        def work(db: sqlite3.Connection) -> int:
            (seq,) = db.execute("SELECT max(seq) FROM work WHERE user = ?", (user,)).fetchone()
            return int(seq or 0)

        return await self._run(work)

    async def get(self, entry_id: str) -> Entry | None:
        return await self._run(lambda db: self._row(db, entry_id))

    async def head(self, user: str) -> Entry | None:
        return await self._run(lambda db: self._head(db, user))

    async def unfinished(self, user: str) -> list[Entry]:
        def work(db: sqlite3.Connection) -> list[Entry]:
            rows = db.execute(
                f"SELECT * FROM work WHERE user = ? AND {_UNFINISHED} ORDER BY seq", (user,)
            ).fetchall()
            return [entry_of(r) for r in rows]

        return await self._run(work)

    async def claim_head(self, user: str, owner: str, *, lease: float) -> Entry | None:
        def work(db: sqlite3.Connection) -> Entry | None:
            with _transaction(db):
                now = self.clock()
                head = self._head(db, user)
                if head is None or not head.claimable_by(owner, now):
                    return None
                db.execute(
                    "UPDATE work SET owner = ?, lease_until = ?, version = version + 1, "
                    "generation = generation + ?, updated_at = ? WHERE id = ?",
                    (owner, lease_end(now, lease), head.owner != owner, now, head.id),
                )
                return self._row(db, head.id)

        return await self._run(work)

    async def _save(self, save: Save) -> Entry | None:
        changes = save.changes
        assignments = "".join(f"{name} = ?, " for name in changes)
        # The commit that guards a request leaving is flushed to the disk: in a thread.
        durable = changes.get("state") in ("sending", "starting")

        def work(db: sqlite3.Connection) -> Entry | None:
            with _transaction(db, durable=durable):
                now = self.clock()
                ending = (
                    (now, None, 0.0)
                    if save.final
                    else (None, save.owner, lease_end(now, save.lease))
                )
                cursor = db.execute(
                    f"UPDATE work SET {assignments}updated_at = ?, finished_at = ?, owner = ?, "
                    "lease_until = ?, version = version + 1 "
                    f"WHERE id = ? AND owner = ? AND generation = ? AND {_UNFINISHED}",
                    (*changes.values(), now, *ending, save.entry_id, save.owner, save.generation),
                )
                if cursor.rowcount != 1:
                    return None
                return self._row(db, save.entry_id)

        return await self._run(work, quick=not durable)

    async def drop(self, entry_id: str, *, error: dict[str, Any]) -> Entry | None:
        def work(db: sqlite3.Connection) -> Entry | None:
            with _transaction(db):
                now = self.clock()
                cursor = db.execute(
                    "UPDATE work SET state = 'cancelled', error = ?, finished_at = ?, "
                    "updated_at = ?, owner = NULL, lease_until = 0, version = version + 1 "
                    f"WHERE id = ? AND state = 'queued' AND {_UNFINISHED}",
                    (dump_json(error), now, now, entry_id),
                )
                return self._row(db, entry_id) if cursor.rowcount == 1 else None

        return await self._run(work)

    async def ask(self, entry_id: str, ask_id: str) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                return _ask(db, entry_id, ask_id, self.clock())

        return await self._run(work)

    async def deliver(self, entry_id: str, ask_id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):
                now = self.clock()
                db.execute(
                    "INSERT INTO asks (entry, ask, asked_at, delivered_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (entry, ask) DO UPDATE SET delivered_at = excluded.delivered_at",
                    (entry_id, ask_id, now, now),
                )

        await self._run(work)

    async def renders(self, user: str, *, limit: int = KEEP_RENDERS) -> list[Entry]:
        def work(db: sqlite3.Connection) -> list[Entry]:
            rows = db.execute(
                "SELECT * FROM (SELECT * FROM work WHERE user = ? AND kind = ? "
                "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
                (user, HISTORY, limit),
            ).fetchall()
            return [entry_of(r) for r in rows]

        return await self._run(work)

    async def lease(self, name: str, owner: str, *, seconds: float) -> bool:
        def work(db: sqlite3.Connection) -> bool:
            with _transaction(db):
                now = self.clock()
                row = db.execute(
                    "SELECT owner, until FROM leases WHERE name = ?", (name,)
                ).fetchone()
                held = row is not None and row["owner"] != owner and row["until"] >= now
                if held and not owner_is_dead_here(row["owner"]):
                    return False
                db.execute(
                    "INSERT INTO leases (name, owner, until) VALUES (?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, "
                    "until = excluded.until",
                    (name, owner, lease_end(now, seconds)),
                )
                return True

        return await self._run(work)

    async def release(self, name: str, owner: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            with _transaction(db):
                db.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner))

        await self._run(work)

    async def prune(self) -> int:
        def work(db: sqlite3.Connection) -> int:
            with _transaction(db):
                now = self.clock()
                # Anything finished before this is past KEEP_HANDLES; of the history
                # kind, only what is also older than the newest KEEP_RENDERS.
                gone = db.execute(
                    "DELETE FROM work WHERE finished_at < ? AND (kind != ? OR seq NOT IN "
                    "(SELECT seq FROM work w WHERE w.kind = work.kind AND w.user = work.user "
                    "ORDER BY seq DESC LIMIT ?))",
                    (now - KEEP_HANDLES, HISTORY, KEEP_RENDERS),
                ).rowcount
                db.execute("DELETE FROM asks WHERE entry NOT IN (SELECT id FROM work)")
                db.execute("DELETE FROM leases WHERE until < ?", (now - 3600,))
                return gone

        return await self._run(work, quick=False)

    async def close(self) -> None:
        def work() -> None:
            with self._lock:
                if self._db is not None:
                    self._db.close()
                    self._db = None

        await anyio.to_thread.run_sync(work)


def _ask(db: sqlite3.Connection, entry_id: str, ask_id: str, now: float) -> bool:
    db.execute(
        "INSERT OR IGNORE INTO asks (entry, ask, asked_at) VALUES (?, ?, ?)",
        (entry_id, ask_id, now),
    )
    row = db.execute(
        "SELECT 1 FROM asks WHERE entry = ? AND ask != ? AND delivered_at IS NOT NULL",
        (entry_id, ask_id),
    ).fetchone()
    return row is not None


def _latest(db: sqlite3.Connection, user: str, kind: Kind, key: str) -> Entry | None:
    row = db.execute(
        "SELECT * FROM work WHERE user = ? AND kind = ? AND key = ? ORDER BY seq DESC LIMIT 1",
        (user, kind, key),
    ).fetchone()
    return entry_of(row) if row is not None else None


class _transaction:
    """`BEGIN IMMEDIATE` ... `COMMIT`, or `ROLLBACK` on any exception; `durable`
    commits are flushed to the disk before they return."""

    def __init__(self, db: sqlite3.Connection, *, durable: bool = False) -> None:
        self.db = db
        self.durable = durable

    def __enter__(self) -> sqlite3.Connection:
        if self.durable:
            self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, kind: object, *rest: object) -> None:
        try:
            if kind is None:
                self.db.execute("COMMIT")
            elif self.db.in_transaction:  # SQLite ended it already on a full disk
                self.db.execute("ROLLBACK")
        finally:
            if self.durable:
                self.db.execute("PRAGMA synchronous=NORMAL")


__all__ = ["SqliteLedger"]
