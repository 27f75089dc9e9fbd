"""Where tasks are kept: beside the ledger whose entries they follow.

Locally, a SQLite file next to the ledger's (`tasks.sqlite3`, WAL, every change a
`BEGIN IMMEDIATE` transaction); hosted, Redis keys under the user's ledger prefix, each
with the task's time to live, changed by Lua scripts. Either way a task outlives the
process that made it (kill -9 included), and every process or replica of the user
answers for it.

Two rules hold in both stores, atomically:

- `create` makes at most one live task per ledger entry: a call that joins running
  work finds the task already following it and answers with that task;
- `save` changes only a `working` task: once a task is terminal (its result stored,
  or cancelled), it stays as it is.

Beside the tasks, each store notes the calls without a task that asked for an entry
(`wait_on`): while the entry is unfinished, none of them has been given its outcome, so
they still wait for it, and a cancel must not stop the work under them.
"""

from __future__ import annotations

import itertools
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import anyio.to_thread

from nemo_mcp.ledger import Ledger
from nemo_mcp.server.tasks.records import TTL_SECONDS, TaskRecord

#: A script refused because what it was given was read a moment too early is run again.
RETRIES = 20

if TYPE_CHECKING:
    from redis.asyncio import Redis

T = TypeVar("T")


class TaskStore(Protocol):
    async def create(self, record: TaskRecord) -> TaskRecord:
        """Keep `record`, unless a live task follows its entry already: that one is
        returned instead (and `record` is not kept)."""
        ...

    async def get(self, task_id: str) -> TaskRecord | None: ...

    async def save(self, record: TaskRecord) -> TaskRecord | None:
        """Replace a `working` task with `record`; a terminal one is left as it is and
        returned (None if the task is gone)."""
        ...

    async def wait_on(self, entry: str, ask: str, *, now: float) -> None:
        """Note that a call without a task (ask id `ask`) waits for `entry`."""
        ...

    async def waiters(self, entry: str) -> set[str]:
        """The ask ids of the calls without a task noted as waiting for `entry`."""
        ...

    async def prune(self, *, now: float) -> None:
        """Forget tasks older than their time to live."""
        ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    entry TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_entry ON tasks (entry, status);
CREATE TABLE IF NOT EXISTS waiters (
    entry TEXT NOT NULL,
    ask TEXT NOT NULL,
    asked_at REAL NOT NULL,
    PRIMARY KEY (entry, ask)
)
"""


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA.split(";"):
            db.execute(statement)
        db.execute("COMMIT")
    except BaseException:
        db.close()
        raise
    return db


class SqliteTaskStore:
    """Tasks in a SQLite file (0600), safe under concurrent processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path.touch(mode=0o600, exist_ok=True)
            # Two processes opening a new file together race to switch it to WAL, and
            # SQLite answers the loser "locked" at once: it tries again, briefly.
            for attempt in itertools.count():
                try:
                    self._db = _open(self.path)
                    break
                except sqlite3.OperationalError as err:
                    if "locked" not in str(err) or attempt >= 200:
                        raise
                    time.sleep(random.uniform(0.005, 0.05))
        assert self._db is not None
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            with self._lock:
                db = self._connect()
                db.execute("BEGIN IMMEDIATE")
                try:
                    done = work(db)
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
                return done

        return await anyio.to_thread.run_sync(call)

    async def create(self, record: TaskRecord) -> TaskRecord:
        def work(db: sqlite3.Connection) -> TaskRecord:
            row = db.execute(
                "SELECT body FROM tasks WHERE entry = ? AND status = 'working' "
                "ORDER BY created_at LIMIT 1",
                (record.entry,),
            ).fetchone()
            if row is not None:
                return TaskRecord.loads(row[0])
            db.execute(
                "INSERT INTO tasks (id, entry, status, created_at, body) VALUES (?, ?, ?, ?, ?)",
                (record.id, record.entry, record.status, record.created_at, record.dumps()),
            )
            return record

        return await self._run(work)

    async def get(self, task_id: str) -> TaskRecord | None:
        def work(db: sqlite3.Connection) -> TaskRecord | None:
            row = db.execute("SELECT body FROM tasks WHERE id = ?", (task_id,)).fetchone()
            return TaskRecord.loads(row[0]) if row is not None else None

        return await self._run(work)

    async def save(self, record: TaskRecord) -> TaskRecord | None:
        def work(db: sqlite3.Connection) -> TaskRecord | None:
            db.execute(
                "UPDATE tasks SET status = ?, body = ? WHERE id = ? AND status = 'working'",
                (record.status, record.dumps(), record.id),
            )
            row = db.execute("SELECT body FROM tasks WHERE id = ?", (record.id,)).fetchone()
            return TaskRecord.loads(row[0]) if row is not None else None

        return await self._run(work)

    async def wait_on(self, entry: str, ask: str, *, now: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT OR IGNORE INTO waiters (entry, ask, asked_at) VALUES (?, ?, ?)",
                (entry, ask, now),
            )

        await self._run(work)

    async def waiters(self, entry: str) -> set[str]:
        def work(db: sqlite3.Connection) -> set[str]:
            rows = db.execute("SELECT ask FROM waiters WHERE entry = ?", (entry,)).fetchall()
            return {str(row[0]) for row in rows}

        return await self._run(work)

    async def prune(self, *, now: float) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM tasks WHERE created_at < ?", (now - TTL_SECONDS,))
            db.execute("DELETE FROM waiters WHERE asked_at < ?", (now - TTL_SECONDS,))

        await self._run(work)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


#: KEYS: the entry's live-task pointer, the new task, the live task read before (every
#: key in KEYS, for Redis Cluster). ARGV: the new task's id, body, ttl (ms), the live
#: task's id read before ('retry' when the pointer moved since).
_CREATE = """
local live = redis.call('GET', KEYS[1]) or ''
if live ~= ARGV[4] then return 'retry' end
if live ~= '' then
  local body = redis.call('GET', KEYS[3])
  if body and cjson.decode(body)['status'] == 'working' then return body end
end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return ARGV[2]
"""

#: KEYS: the task. ARGV: its new body. Only a working task changes; its TTL stays.
_SAVE = """
local body = redis.call('GET', KEYS[1])
if not body then return false end
if cjson.decode(body)['status'] ~= 'working' then return body end
redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
return ARGV[1]
"""


class RedisTaskStore:
    """Tasks in Redis under a user's ledger prefix (one Cluster slot, as the ledger):

    <p>:task:<id>       string: the task's JSON, expiring with the task
    <p>:task-of:<entry> string: the id of the task following the entry
    """

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._create = redis.register_script(_CREATE)
        self._save = redis.register_script(_SAVE)

    def _task(self, task_id: str) -> str:
        return f"{self.prefix}:task:{task_id}"

    async def create(self, record: TaskRecord) -> TaskRecord:
        pointer = f"{self.prefix}:task-of:{record.entry}"
        for _ in range(RETRIES):
            live = str(await self.redis.get(pointer) or "")
            body = await self._create(
                keys=[pointer, self._task(record.id), self._task(live)],
                args=[record.id, record.dumps(), TTL_SECONDS * 1000, live],
            )
            if body != "retry":
                return TaskRecord.loads(body)
        raise RuntimeError("the task of this work kept changing while one was made")

    async def get(self, task_id: str) -> TaskRecord | None:
        body = await self.redis.get(self._task(task_id))
        return TaskRecord.loads(body) if body else None

    async def save(self, record: TaskRecord) -> TaskRecord | None:
        body = await self._save(keys=[self._task(record.id)], args=[record.dumps()])
        return TaskRecord.loads(body) if body else None

    async def wait_on(self, entry: str, ask: str, *, now: float) -> None:
        key = f"{self.prefix}:waiters:{entry}"
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, ask)
            pipe.expire(key, TTL_SECONDS)
            await pipe.execute()

    async def waiters(self, entry: str) -> set[str]:
        return {str(ask) for ask in await self.redis.smembers(f"{self.prefix}:waiters:{entry}")}

    async def prune(self, *, now: float) -> None:
        """Nothing to do: Redis expires each task with its time to live."""


def store_for(ledger: Ledger) -> TaskStore:
    """The task store beside `ledger`: the same folder, or the same Redis prefix."""
    from nemo_mcp.ledger.redis import RedisLedger
    from nemo_mcp.ledger.sqlite import SqliteLedger

    if isinstance(ledger, SqliteLedger):
        return SqliteTaskStore(ledger.path.with_name("tasks.sqlite3"))
    if isinstance(ledger, RedisLedger):
        return RedisTaskStore(ledger.redis, ledger.prefix)
    raise TypeError(f"no task store for {type(ledger).__name__}")


__all__ = ["RedisTaskStore", "SqliteTaskStore", "TaskStore", "store_for"]
