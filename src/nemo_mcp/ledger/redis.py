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
    <p>:done              sorted set: finished entries but renders, by finish time
                          (for pruning; renders are pruned from the history)
    <p>:users             set: the users with entries (for pruning renders)
    <p>:d:<id>            set: the calls (ask ids) given the entry's outcome
    <p>:lease:<name>      hash: a named lease's owner and end (expires an hour after)
    <p>:changed           channel: the id of each entry changed (PUBLISH, or SPUBLISH
                          on a Cluster), waking waiters on other replicas

Every key a script touches is passed in KEYS, all under the user's one hash tag: keys
named by ids a script would find (the head of a queue, the newest entry for a key) are
read first and re-checked inside the script, which asks to be run again if they moved.

Time is Redis's own: every script reads `TIME` for what it records and the leases it
judges, so replicas' clocks never decide who holds work (a test may give the store a
`clock`, whose reading the scripts then take instead).

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
import uuid
from typing import TYPE_CHECKING, Any

from nemo_mcp.ledger import (
    HISTORY,
    KEEP_HANDLES,
    KEEP_RENDERS,
    KEEP_SECONDS,
    MAX_WAITING,
    Clock,
    Entry,
    Kind,
    Ledger,
    Save,
    Submission,
    dump_json,
    entry_of,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Lua helpers: an entry hash as a flat list; the store's clock (ARGV[1] of every script
#: that records a time: '' for Redis's own `TIME`, else a test's reading), as a number
#: and as the text it is stored as; the end of a lease.
_HEAD = """
local function entry(key)
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then return false end
  return fields
end
local function clock(given)
  if given ~= '' then return tonumber(given) end
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function text(number)
  return string.format('%.6f', number)
end
local function lease_end(now, seconds)
  if seconds <= 0 then return 0 end
  return text(now + seconds)
end
-- End the entry KEYS[1] (id, kind) at `now`: out of the queue KEYS[2], and but for the
-- history kind into the finished set KEYS[3], kept there by finish time.
local function finish(keys, id, kind, history, now)
  redis.call('HSET', keys[1], 'finished_at', text(now), 'owner', '', 'lease_until', 0)
  redis.call('ZREM', keys[2], id)
  if kind ~= history then redis.call('ZADD', keys[3], text(now), id) end
end
"""

#: KEYS: seq, latest, queue, renders, users, e:<found>, d:<found>, e:<head>, e:<new>,
#: d:<new>. ARGV: clock, user, kind, key, kf, new id, session, request, history kind,
#: keep, most, ask, found id (''), head id (''). 'retry' when `found` or `head` changed
#: since they were read.
_SUBMIT = (
    _HEAD
    + """
local user, kind, key, kf = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local new_id, session, request, history = ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local keep, most, ask, seen, seen_head = tonumber(ARGV[10]), tonumber(ARGV[11]), ARGV[12],
  ARGV[13], ARGV[14]
local now = clock(ARGV[1])
if (redis.call('HGET', KEYS[2], kf) or '') ~= seen then return {'retry'} end
if (redis.call('ZRANGE', KEYS[3], 0, 0)[1] or '') ~= seen_head then return {'retry'} end
local how, id, ahead, ekey, given
if seen ~= '' then
  local found = redis.call('HMGET', KEYS[6], 'finished_at', 'reusable', 'seq')
  if found[3] then
    if found[1] == '' then
      how, id, ekey, given = 'unfinished', seen, KEYS[6], KEYS[7]
      ahead = redis.call('ZCOUNT', KEYS[3], '-inf', '(' .. found[3])
    elseif found[2] == '1' and tonumber(found[1]) >= now - keep then
      how, id, ahead, ekey, given = 'finished', seen, 0, KEYS[6], KEYS[7]
    end
  end
end
if not how then
  local waiting = redis.call('ZCARD', KEYS[3])
  if waiting >= 1 + most then
    return {'full', waiting, 0, seen_head ~= '' and entry(KEYS[8]) or false}
  end
  local seq = redis.call('INCR', KEYS[1])
  id, how, ahead, ekey, given = new_id, 'new', waiting, KEYS[9], KEYS[10]
  redis.call('HSET', ekey, 'id', id, 'user', user, 'seq', seq, 'kind', kind,
    'key', key, 'kf', kf, 'session_id', session, 'state', 'queued', 'request', request,
    'created_at', text(now), 'updated_at', text(now), 'version', 0, 'owner', '',
    'generation', 0, 'lease_until', 0, 'finished_at', '', 'reusable', 0, 'progress', '{}',
    'memo', '{}', 'outcome', '', 'error', '')
  redis.call('ZADD', KEYS[3], seq, id)
  redis.call('HSET', KEYS[2], kf, id)
  redis.call('SADD', KEYS[5], user)
  if kind == history then redis.call('ZADD', KEYS[4], seq, id) end
end
local delivered = 0
if ask ~= '' then
  delivered = redis.call('SCARD', given) - redis.call('SISMEMBER', given, ask)
end
return {how, ahead, delivered, entry(ekey)}
"""
)

#: Claim the entry of KEYS[2] (id ARGV[2]) if it is still the head of the queue KEYS[1]
#: ('retry' if the head changed since it was read), bumping its generation when the
#: owner changes. ARGV: clock, id, owner, lease seconds.
_CLAIM = (
    _HEAD
    + """
local id, owner, seconds = ARGV[2], ARGV[3], tonumber(ARGV[4])
local found = redis.call('HMGET', KEYS[2], 'finished_at', 'owner', 'lease_until')
if redis.call('ZRANGE', KEYS[1], 0, 0)[1] ~= id then return 'retry' end
if not found[1] or found[1] ~= '' then return false end
local now = clock(ARGV[1])
if found[2] ~= '' and found[2] ~= owner and tonumber(found[3]) >= now then return false end
redis.call('HSET', KEYS[2], 'owner', owner, 'lease_until', lease_end(now, seconds),
  'updated_at', text(now))
if found[2] ~= owner then redis.call('HINCRBY', KEYS[2], 'generation', 1) end
redis.call('HINCRBY', KEYS[2], 'version', 1)
return entry(KEYS[2])
"""
)

#: Save the entry KEYS[1] its owner holds under the claim of a generation (KEYS[2]: its
#: user's queue, KEYS[3]: done); false, changing nothing, when that claim is no longer
#: its owner's. ARGV: clock, owner, generation, lease seconds, '1' to finish it
#: (releasing the claim), the history kind, the command announcing the change on the
#: channel KEYS[4] (PUBLISH, SPUBLISH on a Cluster: the channel has the user's hash tag,
#: so it is in the same slot; '': none), then field/value pairs.
_UPDATE = (
    _HEAD
    + """
local owner, generation, seconds, final = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local key = KEYS[1]
local found = redis.call('HMGET', key, 'owner', 'finished_at', 'kind', 'id', 'generation')
if found[1] ~= owner or found[2] ~= '' or (found[5] or '0') ~= generation then
  return false
end
local now = clock(ARGV[1])
redis.call('HSET', key, 'updated_at', text(now), 'lease_until', lease_end(now, seconds))
for n = 8, #ARGV, 2 do redis.call('HSET', key, ARGV[n], ARGV[n + 1]) end
if final == '1' then finish(KEYS, found[4], found[3], ARGV[6], now) end
redis.call('HINCRBY', key, 'version', 1)
if ARGV[7] ~= '' then redis.call(ARGV[7], KEYS[4], found[4]) end
return entry(key)
"""
)

#: The entries KEYS[2..] (ids ARGV[3..]) if they are still ranks ARGV[1]..ARGV[2] of the
#: sorted set KEYS[1], in one moment; 'retry' if the set changed since it was read.
_RANGE = (
    _HEAD
    + """
local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
if #ids ~= #ARGV - 2 then return 'retry' end
local out = {}
for n, id in ipairs(ids) do
  if id ~= ARGV[n + 2] then return 'retry' end
  local found = entry(KEYS[n + 1])
  if found then out[#out + 1] = found end
end
return out
"""
)

#: The newest entry for a key (field ARGV[1] of KEYS[1]), KEYS[2] being the entry read
#: for it before ('retry' if it changed since).
_LATEST = (
    _HEAD
    + """
local id = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if id ~= ARGV[2] then return 'retry' end
if id == '' then return false end
return entry(KEYS[2])
"""
)

#: KEYS[1]: the lease. ARGV: clock, owner, lease seconds, TTL.
_LEASE = (
    _HEAD
    + """
local owner, seconds = ARGV[2], tonumber(ARGV[3])
local now = clock(ARGV[1])
local held = redis.call('HMGET', KEYS[1], 'owner', 'until')
if held[1] and held[1] ~= owner and tonumber(held[2]) >= now then return 0 end
redis.call('HSET', KEYS[1], 'owner', owner, 'until', lease_end(now, seconds))
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""
)

_RELEASE = """
if redis.call('HGET', KEYS[1], 'owner') == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
"""

#: End the queued entry KEYS[1] as cancelled, whoever claims it; false if it is not
#: queued. KEYS: the entry, its user's queue, done, the change channel. ARGV: clock,
#: id, error (JSON), the history kind, the command announcing the change ('' for none).
_DROP = (
    _HEAD
    + """
local id, now = ARGV[2], clock(ARGV[1])
local found = redis.call('HMGET', KEYS[1], 'state', 'finished_at', 'kind')
if found[1] ~= 'queued' or found[2] ~= '' then return false end
redis.call('HSET', KEYS[1], 'state', 'cancelled', 'error', ARGV[3], 'updated_at', text(now))
finish(KEYS, id, found[3], ARGV[4], now)
redis.call('HINCRBY', KEYS[1], 'version', 1)
if ARGV[5] ~= '' then redis.call(ARGV[5], KEYS[4], id) end
return entry(KEYS[1])
"""
)

#: Forget entries found to be forgettable. KEYS: done, latest, then per entry its hash,
#: its delivered set and the sorted set naming it (done, or its user's renders). ARGV:
#: the finish time before which entries go, then per entry its id and 'done'/'render'
#: (a render beyond the newest kept, which goes too once finished before that time).
_PRUNE = """
local before = tonumber(ARGV[1])
local gone = 0
for n = 2, #ARGV, 2 do
  local id, why = ARGV[n], ARGV[n + 1]
  local base = 3 + (n - 2) / 2 * 3
  local key, given, set = KEYS[base], KEYS[base + 1], KEYS[base + 2]
  local finished = redis.call('HGET', key, 'finished_at')
  local ok
  if why == 'done' then
    local score = redis.call('ZSCORE', set, id)
    ok = score and tonumber(score) < before
  else
    ok = finished and finished ~= '' and tonumber(finished) < before
  end
  if ok then
    local kf = redis.call('HGET', key, 'kf')
    if kf and redis.call('HGET', KEYS[2], kf) == id then redis.call('HDEL', KEYS[2], kf) end
    redis.call('DEL', key, given)
    redis.call('ZREM', set, id)
    gone = gone + 1
  end
end
return gone
"""

#: Entries forgotten per `_PRUNE` call (each names three keys).
PRUNE_BATCH = 100
#: A script refused because what it was given was read a moment too early is run again
#: with a fresh read, this many times at most.
RETRIES = 20


def _entry(fields: list[str] | None) -> Entry | None:
    """An entry from a hash's flat field/value list (as HGETALL gives it in a script)."""
    if not fields:
        return None
    row = dict(zip(fields[::2], fields[1::2], strict=True))
    row.setdefault("generation", "0")  # entries recorded before generations
    return entry_of(row)


def _key_field(user: str, kind: str, key: str) -> str:
    """The field of `latest` naming the newest entry for (user, kind, key)."""
    return hashlib.sha256(f"{user}\0{kind}\0{key}".encode()).hexdigest()


def _number(value: float) -> str:
    return repr(float(value))


class RedisLedger(Ledger):
    """`Ledger` in Redis under `prefix` (one user's namespace), on a shared client.

    The client is the server's (one connection pool per replica); `close` leaves it
    open unless `owns_client`. Times are Redis's own (`TIME`), so replicas' clocks never
    decide who holds work; a `clock` given (tests that drive time by hand) is read
    instead.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        owns_client: bool = False,
        clock: Clock | None = None,
        announce: str = "PUBLISH",
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        #: Changes are announced on `channel` with this command ('' for none).
        self.announce = announce
        #: None: Redis's clock.
        self.clock = clock
        self._owns = owns_client
        self._submit = redis.register_script(_SUBMIT)
        self._claim = redis.register_script(_CLAIM)
        self._update = redis.register_script(_UPDATE)
        self._range = redis.register_script(_RANGE)
        self._latest = redis.register_script(_LATEST)
        self._lease = redis.register_script(_LEASE)
        self._release = redis.register_script(_RELEASE)
        self._prune = redis.register_script(_PRUNE)
        self._drop = redis.register_script(_DROP)

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    @property
    def channel(self) -> str:
        """Where every change of an entry is announced (its id), for waiters elsewhere."""
        return self._key("changed")

    def _clock(self) -> str:
        """ARGV[1] of the scripts recording a time: '' for Redis's clock, else ours."""
        return "" if self.clock is None else _number(self.clock())

    async def _now(self) -> float:
        """The store's time, outside a script."""
        if self.clock is not None:
            return self.clock()
        seconds, micros = await self.redis.time()
        return int(seconds) + int(micros) / 1_000_000

    async def _entries(self, zset: str, start: int, stop: int) -> list[Entry]:
        for _ in range(RETRIES):
            ids = [str(i) for i in await self.redis.zrange(zset, start, stop)]
            found = await self._range(
                keys=[zset, *(self._key("e", i) for i in ids)], args=[start, stop, *ids]
            )
            if found != "retry":
                return [entry for fields in found if (entry := _entry(fields)) is not None]
        raise RuntimeError(f"the ledger's {zset} kept changing while it was read")

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
        key_field = _key_field(user, kind, key)
        queue = self._key("q", user)
        new_id = uuid.uuid4().hex
        for _ in range(RETRIES):
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hget(self._key("latest"), key_field)
                pipe.zrange(queue, 0, 0)
                seen, heads = await pipe.execute()
            seen = str(seen or "")
            head = str(heads[0]) if heads else ""
            answer = await self._submit(
                keys=[
                    self._key("seq"),
                    self._key("latest"),
                    queue,
                    self._key("r", user),
                    self._key("users"),
                    self._key("e", seen),
                    self._key("d", seen),
                    self._key("e", head),
                    self._key("e", new_id),
                    self._key("d", new_id),
                ],
                args=[
                    self._clock(),
                    user,
                    kind,
                    key,
                    key_field,
                    new_id,
                    session_id or "",
                    dump_json(request),
                    HISTORY,
                    KEEP_SECONDS,
                    MAX_WAITING,
                    ask or "",
                    seen,
                    head,
                ],
            )
            if answer[0] == "retry":
                continue
            how, ahead, delivered, fields = answer
            entry = _entry(fields)
            if how == "full":
                return Submission("full", entry, int(ahead))
            return Submission(how, entry, int(ahead), int(delivered) > 0)
        raise RuntimeError("the ledger's queue kept changing while a request was recorded")

    async def latest(self, *, user: str, kind: Kind, key: str) -> Entry | None:
        key_field = _key_field(user, kind, key)
        for _ in range(RETRIES):
            seen = str(await self.redis.hget(self._key("latest"), key_field) or "")
            answer = await self._latest(
                keys=[self._key("latest"), self._key("e", seen)], args=[key_field, seen]
            )
            if answer != "retry":
                return _entry(answer)
        raise RuntimeError("the ledger's newest entry kept changing while it was read")

    async def last_seq(self, user: str) -> int:
        # One counter per prefix (one user, hosted): its value is the newest entry's seq.
        return int(await self.redis.get(self._key("seq")) or 0)

    async def get(self, entry_id: str) -> Entry | None:
        fields = await self.redis.hgetall(self._key("e", entry_id))
        return _entry([str(x) for pair in fields.items() for x in pair]) if fields else None

    async def head(self, user: str) -> Entry | None:
        found = await self._entries(self._key("q", user), 0, 0)
        return found[0] if found else None

    async def unfinished(self, user: str) -> list[Entry]:
        return await self._entries(self._key("q", user), 0, -1)

    async def claim_head(self, user: str, owner: str, *, lease: float) -> Entry | None:
        queue = self._key("q", user)
        for _ in range(RETRIES):
            heads = await self.redis.zrange(queue, 0, 0)
            if not heads:
                return None
            head = str(heads[0])
            found = await self._claim(
                keys=[queue, self._key("e", head)],
                args=[self._clock(), head, owner, _number(lease)],
            )
            if found != "retry":
                return _entry(found)
        raise RuntimeError("the ledger's queue kept changing while its head was claimed")

    def _ending_keys(self, entry_id: str, user: str) -> list[str]:
        """KEYS of the scripts that may end an entry: it, its queue, done, the channel."""
        return [self._key("e", entry_id), self._key("q", user), self._key("done"), self.channel]

    async def _user_of(self, entry_id: str) -> str | None:
        user = await self.redis.hget(self._key("e", entry_id), "user")
        return None if user is None else str(user)

    async def _save(self, save: Save) -> Entry | None:
        fields: list[str] = []
        for name, value in save.changes.items():
            fields += [name, ("1" if value else "0") if isinstance(value, bool) else value]
        user = await self._user_of(save.entry_id)
        if user is None:
            return None
        return _entry(
            await self._update(
                keys=self._ending_keys(save.entry_id, user),
                args=[
                    self._clock(),
                    save.owner,
                    str(save.generation),
                    _number(save.lease),
                    "1" if save.final else "0",
                    HISTORY,
                    self.announce,
                    *fields,
                ],
            )
        )

    async def drop(self, entry_id: str, *, error: dict[str, Any]) -> Entry | None:
        user = await self._user_of(entry_id)
        if user is None:
            return None
        found = await self._drop(
            keys=self._ending_keys(entry_id, user),
            args=[self._clock(), entry_id, dump_json(error), HISTORY, self.announce],
        )
        return _entry(found) if found else None

    async def ask(self, entry_id: str, ask_id: str) -> bool:
        given = self._key("d", entry_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.scard(given)
            pipe.sismember(given, ask_id)
            count, mine = await pipe.execute()
        return int(count) - int(mine) > 0

    async def deliver(self, entry_id: str, ask_id: str) -> None:
        await self.redis.sadd(self._key("d", entry_id), ask_id)

    async def renders(self, user: str, *, limit: int = KEEP_RENDERS) -> list[Entry]:
        return await self._entries(self._key("r", user), -limit, -1)

    async def lease(self, name: str, owner: str, *, seconds: float) -> bool:
        taken = await self._lease(
            keys=[self._key("lease", name)],
            args=[self._clock(), owner, _number(seconds), int(seconds) + 3600],
        )
        return bool(taken)

    async def release(self, name: str, owner: str) -> None:
        await self._release(keys=[self._key("lease", name)], args=[owner])

    async def prune(self) -> int:
        """Forget what may go, read first and re-checked in the script, in batches."""
        before = await self._now() - KEEP_HANDLES
        done = self._key("done")
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(done, "-inf", f"({_number(before)}")
            pipe.smembers(self._key("users"))
            old, users = await pipe.execute()
        candidates = [(str(i), "done", done) for i in old]
        if users:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user in users:
                    pipe.zrange(self._key("r", str(user)), 0, -(KEEP_RENDERS + 1))
                for user, ids in zip(users, await pipe.execute(), strict=True):
                    renders = self._key("r", str(user))
                    candidates += [(str(i), "render", renders) for i in ids]
        gone = 0
        for start in range(0, len(candidates), PRUNE_BATCH):
            batch = candidates[start : start + PRUNE_BATCH]
            keys = [done, self._key("latest")]
            args: list[str] = [_number(before)]
            for entry_id, why, where in batch:
                keys += [self._key("e", entry_id), self._key("d", entry_id), where]
                args += [entry_id, why]
            gone += int(await self._prune(keys=keys, args=args))
        return gone

    async def close(self) -> None:
        if self._owns:
            await self.redis.aclose()


__all__ = ["RedisLedger"]
