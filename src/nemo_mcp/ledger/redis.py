"""The ledger in Redis, shared by every replica of a hosted server.

Every change is one Lua script, which Redis runs atomically: no other client's command
runs between its reads and its writes, so submissions, claims, leases and updates are
as atomic as SQLite's `BEGIN IMMEDIATE` transactions, with nothing locked by hand.
Reads of several keys (the head, the queue, the renders) are scripts too, so each sees
one moment.

Keys, under one prefix per user and backend (`nemo:{<user key>}:<backend>`: the braces
make it a Redis Cluster hash tag, so all of a user's keys live in one slot):

    <p>:seq               counter: the next entry's `seq`
    <p>:e:<id>            hash: one entry (JSON for request/progress/memo/outcome/error;
                          '' for a missing owner, session, finish time, outcome, error)
    <p>:q:<user>          sorted set: the user's unfinished entries by `seq` (the queue)
    <p>:r:<user>          sorted set: the user's render entries by `seq` (the history)
    <p>:latest            hash: sha256(user, kind, key) -> the newest entry for that key
    <p>:done              sorted set: finished messages by finish time (for pruning)
    <p>:users             set: the users with entries (for pruning renders)
    <p>:d:<id>            set: the calls (ask ids) given the entry's outcome
    <p>:lease:<name>      hash: a named lease's owner and end (expires an hour after)

Liveness is by lease only: a claim is taken over when its lease has run out, never on a
guess that its owner died. Replicas run on other machines, or in containers whose
process ids mean nothing here, so the same-host shortcut of the SQLite ledger
(`owner_is_dead_here`) is not used.

Durability is Redis's: with `appendonly yes` and `appendfsync always`
(`deploy/redis.conf`) a write is on disk before Redis answers, so an entry recorded as
`sending` is recorded before the request leaves, as with SQLite.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import TYPE_CHECKING, Any

from nemo_mcp.ledger import (
    FINAL,
    KEEP_HANDLES,
    KEEP_SECONDS,
    MAX_WAITING,
    Entry,
    Kind,
    State,
    Submission,
    changed_fields,
    dump_json,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Render entries kept for history and reuse, per user (as the SQLite ledger keeps).
KEEP_RENDERS = 200

_ENTRY = """
local function entry(p, id)
  local fields = redis.call('HGETALL', p .. ':e:' .. id)
  if #fields == 0 then return false end
  return fields
end
"""

_SUBMIT = (
    _ENTRY
    + """
local p, user, kind, key, kf = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local new_id, session, request, now = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local keep, most, ask = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12]
local queue = p .. ':q:' .. user
local how, id, ahead
local latest = redis.call('HGET', p .. ':latest', kf)
if latest then
  local found = redis.call('HMGET', p .. ':e:' .. latest, 'finished_at', 'reusable', 'seq')
  if found[3] then
    if found[1] == '' then
      how, id = 'unfinished', latest
      ahead = redis.call('ZCOUNT', queue, '-inf', '(' .. found[3])
    elseif found[2] == '1' and tonumber(found[1]) >= now - keep then
      how, id, ahead = 'finished', latest, 0
    end
  end
end
if not how then
  local waiting = redis.call('ZCARD', queue)
  if waiting >= 1 + most then
    local head = redis.call('ZRANGE', queue, 0, 0)[1]
    return {'full', waiting, 0, head and entry(p, head) or false}
  end
  local seq = redis.call('INCR', p .. ':seq')
  id, how, ahead = new_id, 'new', waiting
  redis.call('HSET', p .. ':e:' .. id, 'id', id, 'user', user, 'seq', seq, 'kind', kind,
    'key', key, 'kf', kf, 'session_id', session, 'state', 'queued', 'request', request,
    'created_at', ARGV[9], 'updated_at', ARGV[9], 'version', 0, 'owner', '',
    'lease_until', 0, 'finished_at', '', 'reusable', 0, 'progress', '{}', 'memo', '{}',
    'outcome', '', 'error', '')
  redis.call('ZADD', queue, seq, id)
  redis.call('HSET', p .. ':latest', kf, id)
  redis.call('SADD', p .. ':users', user)
  if kind == 'render' then redis.call('ZADD', p .. ':r:' .. user, seq, id) end
end
local delivered = 0
if ask ~= '' then
  local given = p .. ':d:' .. id
  delivered = redis.call('SCARD', given) - redis.call('SISMEMBER', given, ask)
end
return {how, ahead, delivered, entry(p, id)}
"""
)

#: Claim the head (ARGV[2] == '') or the entry ARGV[2] if it is the head.
_CLAIM = (
    _ENTRY
    + """
local p, id, user, owner = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local now, lease_until = tonumber(ARGV[5]), ARGV[6]
if id == '' then
  id = redis.call('ZRANGE', p .. ':q:' .. user, 0, 0)[1]
  if not id then return false end
else
  local found = redis.call('HMGET', p .. ':e:' .. id, 'finished_at', 'user')
  if not found[2] or found[1] ~= '' then return false end
  if redis.call('ZRANGE', p .. ':q:' .. found[2], 0, 0)[1] ~= id then return false end
end
local key = p .. ':e:' .. id
local held = redis.call('HMGET', key, 'owner', 'lease_until')
if held[1] ~= '' and held[1] ~= owner and tonumber(held[2]) >= now then return false end
redis.call('HSET', key, 'owner', owner, 'lease_until', lease_until, 'updated_at', ARGV[5])
redis.call('HINCRBY', key, 'version', 1)
return entry(p, id)
"""
)

#: Change an entry its owner holds; ARGV[6] == '1' finishes it (releasing the claim).
_UPDATE = (
    _ENTRY
    + """
local p, id, owner, now, lease_until, final = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local key = p .. ':e:' .. id
local found = redis.call('HMGET', key, 'owner', 'finished_at', 'user', 'kind')
if found[1] ~= owner or found[2] ~= '' then return false end
redis.call('HSET', key, 'updated_at', now, 'lease_until', lease_until)
for n = 7, #ARGV, 2 do redis.call('HSET', key, ARGV[n], ARGV[n + 1]) end
if final == '1' then
  redis.call('HSET', key, 'finished_at', now, 'owner', '', 'lease_until', 0)
  redis.call('ZREM', p .. ':q:' .. found[3], id)
  if found[4] == 'message' then redis.call('ZADD', p .. ':done', now, id) end
end
redis.call('HINCRBY', key, 'version', 1)
return entry(p, id)
"""
)

#: The entries of the sorted set ARGV[2] from rank ARGV[3] to ARGV[4], in one moment.
_RANGE = (
    _ENTRY
    + """
local p = ARGV[1]
local out = {}
for _, id in ipairs(redis.call('ZRANGE', ARGV[2], ARGV[3], ARGV[4])) do
  local found = entry(p, id)
  if found then out[#out + 1] = found end
end
return out
"""
)

#: The newest entry for a key (ARGV[2]: its field in `latest`), if any.
_LATEST = (
    _ENTRY
    + """
local id = redis.call('HGET', ARGV[1] .. ':latest', ARGV[2])
if not id then return false end
return entry(ARGV[1], id)
"""
)

_LEASE = """
local key, owner, now, lease_until, ttl = KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4]
local held = redis.call('HMGET', key, 'owner', 'until')
if held[1] and held[1] ~= owner and tonumber(held[2]) >= now then return 0 end
redis.call('HSET', key, 'owner', owner, 'until', lease_until)
redis.call('EXPIRE', key, ttl)
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

_PRUNE = """
local p, before, keep = ARGV[1], ARGV[2], tonumber(ARGV[3])
local gone = 0
local function forget(id)
  local key = p .. ':e:' .. id
  local kf = redis.call('HGET', key, 'kf')
  if kf and redis.call('HGET', p .. ':latest', kf) == id then
    redis.call('HDEL', p .. ':latest', kf)
  end
  redis.call('DEL', key, p .. ':d:' .. id)
  gone = gone + 1
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. ':done', '-inf', '(' .. before)) do
  forget(id)
end
redis.call('ZREMRANGEBYSCORE', p .. ':done', '-inf', '(' .. before)
for _, user in ipairs(redis.call('SMEMBERS', p .. ':users')) do
  local renders = p .. ':r:' .. user
  for _, id in ipairs(redis.call('ZRANGE', renders, 0, -(keep + 1))) do
    if redis.call('HGET', p .. ':e:' .. id, 'finished_at') ~= '' then
      forget(id)
      redis.call('ZREM', renders, id)
    end
  end
end
return gone
"""


def _optional_json(raw: str) -> Any:
    return json.loads(raw) if raw else None


def _entry(fields: list[str] | None) -> Entry | None:
    """An entry from a hash's flat field/value list (as HGETALL gives it in a script)."""
    if not fields:
        return None
    row = dict(zip(fields[::2], fields[1::2], strict=True))
    return Entry(
        id=row["id"],
        user=row["user"],
        seq=int(row["seq"]),
        kind=row["kind"],  # type: ignore[arg-type]
        key=row["key"],
        session_id=row["session_id"] or None,
        state=row["state"],  # type: ignore[arg-type]
        request=json.loads(row["request"]),
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        version=int(row["version"]),
        owner=row["owner"] or None,
        lease_until=float(row["lease_until"]),
        finished_at=float(row["finished_at"]) if row["finished_at"] else None,
        reusable=row["reusable"] == "1",
        progress=json.loads(row["progress"]),
        memo=json.loads(row["memo"]),
        outcome=_optional_json(row["outcome"]),
        error=_optional_json(row["error"]),
    )


def _key_field(user: str, kind: str, key: str) -> str:
    """The field of `latest` naming the newest entry for (user, kind, key)."""
    return hashlib.sha256(f"{user}\0{kind}\0{key}".encode()).hexdigest()


def _number(value: float) -> str:
    return repr(float(value))


class RedisLedger:
    """`Ledger` in Redis under `prefix` (one user's namespace), on a shared client.

    The client is the server's (one connection pool per replica); `close` leaves it
    open unless `owns_client`.
    """

    def __init__(self, redis: Redis, prefix: str, *, owns_client: bool = False) -> None:
        self.redis = redis
        self.prefix = prefix
        self._owns = owns_client
        self._submit = redis.register_script(_SUBMIT)
        self._claim = redis.register_script(_CLAIM)
        self._update = redis.register_script(_UPDATE)
        self._range = redis.register_script(_RANGE)
        self._latest = redis.register_script(_LATEST)
        self._lease = redis.register_script(_LEASE)
        self._release = redis.register_script(_RELEASE)
        self._prune = redis.register_script(_PRUNE)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def _entries(self, zset: str, start: int, stop: int) -> list[Entry]:
        found = await self._range(args=[self.prefix, zset, start, stop])
        return [entry for fields in found if (entry := _entry(fields)) is not None]

    # the ledger -------------------------------------------------------------------
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
        key_field = _key_field(user, kind, key)
        how, ahead, delivered, fields = await self._submit(
            args=[
                self.prefix,
                user,
                kind,
                key,
                key_field,
                uuid.uuid4().hex,
                session_id or "",
                dump_json(request),
                _number(now),
                KEEP_SECONDS,
                MAX_WAITING,
                ask or "",
            ]
        )
        entry = _entry(fields)
        if how == "full":
            return Submission("full", entry, int(ahead))
        return Submission(how, entry, int(ahead), int(delivered) > 0)

    async def latest(self, *, user: str, kind: Kind, key: str) -> Entry | None:
        return _entry(await self._latest(args=[self.prefix, _key_field(user, kind, key)]))

    async def last_seq(self, user: str) -> int:
        # One counter per prefix (one user, hosted): its value is the newest entry's seq.
        return int(await self.redis.get(self._key("seq")) or 0)

    async def find(self, *, user: str, kind: Kind, key: str, now: float) -> Entry | None:
        found = await self.latest(user=user, kind=kind, key=key)
        if found is None or not found.finished:
            return found
        recent = (found.finished_at or 0) >= now - KEEP_SECONDS
        return found if found.reusable and recent else None

    async def get(self, entry_id: str) -> Entry | None:
        fields = await self.redis.hgetall(self._key("e", entry_id))
        return _entry([str(x) for pair in fields.items() for x in pair]) if fields else None

    async def head(self, user: str) -> Entry | None:
        found = await self._entries(self._key("q", user), 0, 0)
        return found[0] if found else None

    async def unfinished(self, user: str) -> list[Entry]:
        return await self._entries(self._key("q", user), 0, -1)

    async def claim(self, entry_id: str, owner: str, *, now: float, lease: float) -> Entry | None:
        return _entry(
            await self._claim(
                args=[self.prefix, entry_id, "", owner, _number(now), _number(now + lease)]
            )
        )

    async def claim_head(self, user: str, owner: str, *, now: float, lease: float) -> Entry | None:
        return _entry(
            await self._claim(
                args=[self.prefix, "", user, owner, _number(now), _number(now + lease)]
            )
        )

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
        changes: list[str] = []
        for name, value in changed_fields(
            state=state,
            session_id=session_id,
            progress=progress,
            memo=memo,
            outcome=outcome,
            error=error,
            reusable=reusable,
        ).items():
            changes += [name, ("1" if value else "0") if isinstance(value, bool) else value]
        final = "1" if state in FINAL else "0"
        return _entry(
            await self._update(
                args=[
                    self.prefix,
                    entry_id,
                    owner,
                    _number(now),
                    _number(now + lease),
                    final,
                    *changes,
                ]
            )
        )

    async def ask(self, entry_id: str, ask_id: str, *, now: float) -> bool:
        given = self._key("d", entry_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.scard(given)
            pipe.sismember(given, ask_id)
            count, mine = await pipe.execute()
        return int(count) - int(mine) > 0

    async def deliver(self, entry_id: str, ask_id: str, *, now: float) -> None:
        await self.redis.sadd(self._key("d", entry_id), ask_id)

    async def renders(self, user: str, *, limit: int = KEEP_RENDERS) -> list[Entry]:
        return await self._entries(self._key("r", user), -limit, -1)

    async def lease(self, name: str, owner: str, *, now: float, seconds: float) -> bool:
        taken = await self._lease(
            keys=[self._key("lease", name)],
            args=[owner, _number(now), _number(now + seconds), int(seconds) + 3600],
        )
        return bool(taken)

    async def release(self, name: str, owner: str) -> None:
        await self._release(keys=[self._key("lease", name)], args=[owner])

    async def prune(self, *, now: float) -> int:
        return int(await self._prune(args=[self.prefix, _number(now - KEEP_HANDLES), KEEP_RENDERS]))

    async def close(self) -> None:
        if self._owns:
            await self.redis.aclose()


__all__ = ["KEEP_RENDERS", "RedisLedger"]
