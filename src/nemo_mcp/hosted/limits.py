"""The operator's per-user limits, enforced across replicas in Redis (off by default).

- `NEMO_CALLS_PER_MINUTE`: calls a user may make a minute (tool calls, resources).
- `NEMO_CREDITS_PER_DAY`: credits a user may commit to a day, counted at the
  contract's estimate when a request is accepted (about 100 a new clip, 50 an edit);
  asking again for a request already accepted costs nothing, as it sends nothing.

Each counter is one Redis hash under the user's hash tag, its window (the minute or
the UTC day) computed from Redis's own clock inside the script, so replicas' clocks
never disagree on it. A refusal is one sentence, and nothing is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nemo_mcp.errors import LimitError
from nemo_mcp.scale import Scale

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: KEYS[1]: the counter. ARGV: window seconds, amount, most, TTL. Returns the count
#: after adding, or -(count before) - 1 when adding would pass `most` (nothing added).
_COUNT = """
local t = redis.call('TIME')
local window = tostring(math.floor(tonumber(t[1]) / tonumber(ARGV[1])))
local held = redis.call('HMGET', KEYS[1], 'window', 'count')
local count = 0
if held[1] == window then count = tonumber(held[2]) end
local amount, most = tonumber(ARGV[2]), tonumber(ARGV[3])
if count + amount > most then return -count - 1 end
if count + amount < 0 then amount = -count end
redis.call('HSET', KEYS[1], 'window', window, 'count', count + amount)
redis.call('EXPIRE', KEYS[1], ARGV[4])
return count + amount
"""

MINUTE = 60
DAY = 24 * 3600


def _key(user: str, what: str) -> str:
    from nemo_mcp.hosted.redis_client_state import user_prefix

    return f"{user_prefix(user)}:limit:{what}"


class Limits:
    """Per-user call rate and daily spend, shared by every replica through Redis."""

    def __init__(self, redis: Redis, scale: Scale) -> None:
        self.redis = redis
        self.calls_per_minute = scale.calls_per_minute
        self.credits_per_day = scale.credits_per_day
        self._count = redis.register_script(_COUNT)

    @property
    def spending_capped(self) -> bool:
        return self.credits_per_day is not None

    async def _add(self, key: str, window: int, amount: int, most: int) -> int:
        return int(await self._count(keys=[key], args=[window, amount, most, 2 * window]))

    async def call(self, user: str) -> None:
        """Count one call of `user`; refused (LimitError) past the rate."""
        most = self.calls_per_minute
        if most is None:
            return
        if await self._add(_key(user, "calls"), MINUTE, 1, most) < 0:
            raise LimitError(
                f"This server allows {most} calls a minute per user and they are used up, "
                "so nothing was done; wait a minute, then try again."
            )

    async def spend(self, user: str, credits: int, what: str) -> None:
        """Commit `credits` of `user`'s day (`what`: the request, in words); refused
        (LimitError) when that would pass the daily cap."""
        cap = self.credits_per_day
        if cap is None:
            return
        found = await self._add(_key(user, "credits"), DAY, credits, cap)
        if found < 0:
            used = -found - 1
            raise LimitError(
                f"This server lets each user commit {cap} credits a day; {what} (about "
                f"{credits} credits) would pass it ({used} committed today), so nothing was "
                "sent: try again tomorrow, or ask the operator to raise NEMO_CREDITS_PER_DAY."
            )

    async def refund(self, user: str, credits: int) -> None:
        """Give back `credits` committed for a request that turned out not to be new."""
        if self.credits_per_day is not None:
            await self._add(_key(user, "credits"), DAY, -credits, self.credits_per_day)


__all__ = ["Limits"]
