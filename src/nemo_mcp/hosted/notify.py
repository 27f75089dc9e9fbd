"""Waking waiters when another replica changes a user's work: Redis pub/sub.

The Redis ledger announces every change of an entry on its user's channel
(`RedisLedger.channel`: PUBLISH, or SPUBLISH on a Cluster, where sharded pub/sub keeps
each message on the shard of the user's hash tag; keyspace notifications would be per
node and need configuring). `Notifier` keeps one subscription per replica and listens
to the channels of the users open here: a message wakes that user's waiters at once.

While the subscription is up, waiters look at the ledger only every
`FALLBACK_SECONDS` (a lease running out announces nothing); while it is down (Redis
restarting, say) they poll as before, every `work.POLL_SECONDS`, and it is made again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from nemo_mcp.server.work import Work

log = logging.getLogger(__name__)

#: How often a waiter looks at the ledger anyway while changes are announced.
FALLBACK_SECONDS = 2.0
#: How long one read of the subscription waits before applying (un)subscriptions.
LISTEN_SECONDS = 0.2
#: Waits before making a lost subscription again (seconds, the last repeated).
RECONNECT = (0.2, 0.5, 1.0, 2.0, 5.0)


class Notifier:
    """One replica's subscription to the channels of the users open in it."""

    def __init__(self, redis: Redis, *, sharded: bool = False) -> None:
        self.redis = redis
        self.sharded = sharded
        self.live = False
        self._works: dict[str, Work] = {}
        self._changes: list[tuple[str, bool]] = []
        #: Messages that woke a waiter (for tests and metrics).
        self.delivered = 0

    def watch(self, channel: str, work: Work) -> None:
        """Wake `work`'s waiters when `channel` announces a change."""
        self._works[channel] = work
        self._changes.append((channel, True))
        self._pace(work)

    def unwatch(self, channel: str) -> None:
        if self._works.pop(channel, None) is not None:
            self._changes.append((channel, False))

    def _pace(self, work: Work) -> None:
        from nemo_mcp.server.work import POLL_SECONDS

        work.poll = FALLBACK_SECONDS if self.live else POLL_SECONDS

    def _set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            for work in self._works.values():
                self._pace(work)

    async def run(self) -> None:
        """Listen until cancelled, making the subscription again whenever it is lost."""
        failures = 0
        while True:
            try:
                await self._listen()
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as err:  # Redis restarting, a node moving: poll meanwhile
                self._set_live(False)
                pause = RECONNECT[min(failures, len(RECONNECT) - 1)]
                failures += 1
                log.warning("the Redis subscription was lost (%s); polling for now", err)
                await anyio.sleep(pause)

    async def _listen(self) -> None:
        pubsub: Any = self.redis.pubsub()
        subscribe = pubsub.ssubscribe if self.sharded else pubsub.subscribe
        unsubscribe = pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe
        try:
            self._changes = [(channel, True) for channel in self._works]
            await subscribe("nemo:{notifier}:hello")  # one subscription before reading
            self._set_live(True)
            while True:
                changes, self._changes = self._changes, []
                added = [channel for channel, on in changes if on and channel in self._works]
                removed = [c for c, on in changes if not on and c not in self._works]
                if added:
                    await subscribe(*added)
                if removed:
                    await unsubscribe(*removed)
                if self.sharded:
                    message = await pubsub.get_sharded_message(
                        ignore_subscribe_messages=True, timeout=LISTEN_SECONDS
                    )
                else:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=LISTEN_SECONDS
                    )
                if message is None:
                    continue
                work = self._works.get(str(message.get("channel")))
                if work is not None:
                    self.delivered += 1
                    work.touch()
        finally:
            with anyio.CancelScope(shield=True):
                try:
                    await pubsub.aclose()
                except Exception:
                    log.debug("closing the Redis subscription failed", exc_info=True)


__all__ = ["FALLBACK_SECONDS", "Notifier"]
