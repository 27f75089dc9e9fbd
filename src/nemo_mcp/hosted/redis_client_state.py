"""Each user's client id, NemoVideo token and session in Redis, shared by every replica.

Keys, beside the user's ledger (`nemo_mcp.ledger.redis`):

    nemo:{<user key>}:client_id              the X-Client-Id (a UUID), made once (SET NX)
    nemo:{<user key>}:<backend>:auth         token, user id, expiry (JSON)
    nemo:{<user key>}:<backend>:session      task id and session id (JSON)
    nemo:{<user key>}:<backend>:token-asked  the client id of a token request not yet
                                             answered (written before it leaves)

The user key is a hash of who the user is (`server.exposure`), never a token. Asking
for a token or a session happens once per user across replicas: `NemoClient` holds the
ledger's named lease (a Lua script) meanwhile, `anonymous-token` for the token, the
token request and a new client id, `session` for the session. Those writes are fenced:
each is one script that writes only while the lease is still held by the writer, on
Redis's clock, so a replica paused past its lease (another has taken it since) has its
write refused and only reads. A record that cannot be read as what it
should be is renamed `<key>:damaged-<time>` and said once, as the file store does.

`connect` (`redis_client`) opens the one client a replica shares among its users; `request_state_keys`
gives every replica the same key for the MCP SDK's sealed `requestState`, kept in Redis.
"""

from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from collections.abc import Hashable
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError

from nemo_mcp.client_state import Record, held
from nemo_mcp.errors import ConfigError, SharedStateError
from nemo_mcp.hosted.redis_client import connect
from nemo_mcp.state_files import (
    MAX_STATE_BYTES,
    AuthRecord,
    Damaged,
    SessionRecord,
    valid_client_id,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

M = TypeVar("M", bound=BaseModel)

#: The lease each fenced write is made under.
LEASE_OF = {"auth": "anonymous-token", "token-asked": "anonymous-token",
            "client_id": "anonymous-token", "session": "session"}  # fmt: skip

#: KEYS: the lease (`RedisLedger`'s `<prefix>:lease:<name>`), the key written. ARGV:
#: the writer's owner name, 'set' or 'del', the value. 1 if written; 0 (nothing
#: written) when the lease is not the writer's now, by Redis's clock.
_FENCED = """
local held = redis.call('HMGET', KEYS[1], 'owner', 'until')
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if held[1] ~= ARGV[1] or tonumber(held[2]) < now then return 0 end
if ARGV[2] == 'set' then redis.call('SET', KEYS[2], ARGV[3]) else redis.call('DEL', KEYS[2]) end
return 1
"""

#: The key sealing the SDK's multi-round-trip `requestState`, shared by every replica.
REQUEST_STATE_KEY = "nemo:request-state-key"


def user_prefix(user: str) -> str:
    """The Redis prefix of one user's keys; the braces are a Cluster hash tag."""
    return f"nemo:{{{user or 'local'}}}"


async def request_state_keys(redis: Redis) -> list[bytes]:
    """The replicas' shared key for sealed `requestState`: made by the first, kept."""
    await redis.set(REQUEST_STATE_KEY, secrets.token_hex(32), nx=True)
    value = await redis.get(REQUEST_STATE_KEY)
    if not isinstance(value, str):
        raise ConfigError("Redis lost the request-state key just written; check its memory policy")
    return [bytes.fromhex(value)]


class RedisState:
    """`ClientState` in Redis for one user and backend."""

    def __init__(self, redis: Redis, user_prefix: str, backend: str) -> None:
        self.redis = redis
        self.user_prefix = user_prefix
        self.prefix = f"{user_prefix}:{backend}"
        self.damaged_auth: Damaged | None = None
        self.damaged_session: Damaged | None = None
        self._notices: list[str] = []
        self._fenced = redis.register_script(_FENCED)

    @property
    def where(self) -> str:
        return f"the shared state (Redis keys {self.prefix}:*)"

    def note(self, sentence: str) -> None:
        self._notices.append(sentence)

    def take_notices(self) -> list[str]:
        notices, self._notices = self._notices, []
        return notices

    def _key(self, record: Record) -> str:
        return f"{self.prefix}:{record}"

    async def _write(self, key: str, what: str, value: str | None) -> None:
        """SET `key` to `value` (DEL when None), fenced by the lease `what` is written
        under when this task holds it: refused when another replica has taken it since."""
        owner = held(LEASE_OF[what])
        if owner is None:  # not under the lease (a tool or test writing directly)
            if value is None:
                await self.redis.delete(key)
            else:
                await self.redis.set(key, value)
            return
        lease = f"{self.prefix}:lease:{LEASE_OF[what]}"
        op = ["del"] if value is None else ["set", value]
        if not await self._fenced(keys=[lease, key], args=[owner, *op]):
            raise SharedStateError(
                "This server's hold on the user's shared state ran out before it wrote "
                f"({LEASE_OF[what]}: it was paused or cut off), so the write was refused "
                "and what another server recorded since is kept. Try again."
            )

    async def _damaged(self, key: str, problem: str) -> Damaged:
        aside = f"{key}:damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        moved: str | None = aside
        try:
            await self.redis.rename(key, aside)
        except Exception:  # already moved by another replica: theirs says the same
            moved = None
        return Damaged(path=f"Redis key {key}", moved_to=moved, problem=problem, salvaged={})

    # client id ---------------------------------------------------------------------
    async def client_id(self, configured: str | None = None, *, token_exists: bool = False) -> str:
        if configured:
            return configured
        key = f"{self.user_prefix}:client_id"
        for _ in range(3):
            made = str(uuid.uuid4())
            # One round trip: made unless one exists, and the one that exists (Redis 7).
            held = await self.redis.set(key, made, nx=True, get=True)
            value = made if held is None else held
            if isinstance(value, str) and valid_client_id(value):
                return value
            if token_exists:
                raise ConfigError(
                    f"The client id in Redis ({key}) is damaged (not a UUID), and this user's "
                    "NemoVideo token belongs to it, so it was not replaced. Restore it, or "
                    "delete it to start over with a new anonymous account."
                )
            damaged = await self._damaged(key, "not a UUID")
            self.note(
                f"The client id in Redis ({key}) was damaged (not a UUID) and no token belonged "
                f"to it, so a new one was made (the old value was moved to {damaged.moved_to})."
            )
        raise ConfigError(f"cannot settle the client id in Redis ({key})")

    # records -----------------------------------------------------------------------
    async def _load(self, record: Record, model: type[M]) -> M | Damaged | None:
        key = self._key(record)
        raw = await self.redis.get(key)
        if raw is None:
            return None
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if len(raw) > MAX_STATE_BYTES:
            return await self._damaged(key, f"larger than {MAX_STATE_BYTES // 1024} KB")
        try:
            return model.model_validate(json.loads(raw))
        except json.JSONDecodeError:
            problem = "cut short or not JSON" if raw.strip() else "empty"
        except ValidationError:
            problem = "not the expected record"
        return await self._damaged(key, problem)

    async def has_auth(self) -> bool:
        return bool(await self.redis.exists(self._key("auth")))

    async def load_auth(self) -> AuthRecord | None:
        found = await self._load("auth", AuthRecord)
        if isinstance(found, Damaged):
            self.damaged_auth = found
            return None
        return found

    async def save_auth(self, record: AuthRecord) -> None:
        await self._write(self._key("auth"), "auth", record.model_dump_json())

    async def clear_auth(self) -> None:
        await self._write(self._key("auth"), "auth", None)

    async def load_session(self) -> SessionRecord | None:
        found = await self._load("session", SessionRecord)
        if isinstance(found, Damaged):
            self.damaged_session = found
            return None
        return found

    async def save_session(self, record: SessionRecord) -> None:
        await self._write(self._key("session"), "session", record.model_dump_json())

    async def clear_session(self) -> None:
        await self._write(self._key("session"), "session", None)

    async def stamp(self, record: Record) -> Hashable:
        return await self.redis.get(self._key(record))

    async def token_asked(self) -> str | None:
        value = await self.redis.get(f"{self.prefix}:token-asked")
        return value if isinstance(value, str) else None

    async def note_token_asked(self, client_id: str | None) -> None:
        await self._write(f"{self.prefix}:token-asked", "token-asked", client_id)

    async def replace_client_id(self) -> str | None:
        new = str(uuid.uuid4())
        await self._write(f"{self.user_prefix}:client_id", "client_id", new)
        return new


__all__ = ["REQUEST_STATE_KEY", "RedisState", "connect", "request_state_keys", "user_prefix"]
