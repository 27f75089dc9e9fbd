"""The replica's one Redis client: bounded, short timeouts, errors named as Redis.

- **Bounded.** At most `NEMO_REDIS_MAX_CONNECTIONS` commands (or pipelines) of a
  replica are in flight at once, on a Redis or a Cluster alike: each takes a place in
  one first-come-first-served gate (`Gate`) before it takes a connection, so the pool
  beneath never runs out, and a connection handed back is never lost to a cancelled
  caller (the hand-back is shielded from cancellation). The subscription and the health
  check use spare connections of their own, never a command's place.
- **Waiting within the budget.** A command that finds every place taken waits for one
  until shortly before the call it answers is due (`scale.answering_by`), at least
  `LEAST_WAIT` (or `NEMO_REDIS_TIMEOUT` if longer); work no caller waits for (a job's
  runner) waits up to `BACKGROUND_WAIT`. Load makes calls slower, never failed.
- **Short.** Connecting and each command are bounded by `NEMO_REDIS_TIMEOUT`; a lost
  connection is tried again once, a timeout never (a stalled Redis must not hold a
  call for several timeouts).
- **Named.** Every failure (refused, unreachable, stalled, no place in time) is raised
  as `SharedStateError`, one sentence naming Redis, never a library's words or "an
  unexpected problem"; the original is kept as its cause for the log.

The password, if the URL has one, is kept out of every log line and message.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from nemo_mcp.errors import SharedStateError
from nemo_mcp.scale import Scale, answer_due

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

#: How long a command no caller waits for (a job's runner) may wait for a place.
BACKGROUND_WAIT = 30.0
#: A call's wait for a place ends this long before the call is due, so that the
#: refusal, naming Redis, is its answer.
ANSWER_MARGIN = 1.0
#: The shortest wait for a place, even for a call at the end of its budget (its last
#: write, recording that it was answered): a few seconds late beats failed.
LEAST_WAIT = 5.0
#: Connections beyond the commands' places: the subscription and health checks.
SPARE_CONNECTIONS = 4


def redis_problem(err: RedisError, timeout: float) -> SharedStateError:
    """`err` as one sentence naming Redis and what to do."""
    from redis.exceptions import ConnectionError as Unreachable
    from redis.exceptions import TimeoutError as Stalled

    if isinstance(err, Stalled):
        what = f"Redis (this server's shared state) did not answer within {timeout:g} s"
    elif isinstance(err, Unreachable) and "No connection available" in str(err):
        what = f"every Redis connection of this server stayed busy for {timeout:.1f} s"
    elif isinstance(err, Unreachable):
        what = "Redis (this server's shared state) could not be reached"
    else:
        word = (str(err).split() or ["an error"])[0]
        what = f"Redis (this server's shared state) refused a command ({word[:20]})"
    return SharedStateError(
        f"{what}, so this call stopped; what was recorded is kept and nothing is sent "
        "twice. Try again in a moment."
    )


Problem = Callable[[], None]


class Gate:
    """The replica's places for Redis commands: at most `places` in flight, the rest
    waiting in arrival order (an anyio semaphore: a waiter cancelled after being
    handed a place gives it back)."""

    def __init__(self, places: int, timeout: float, noted: Problem) -> None:
        self.places = anyio.Semaphore(places)
        self.timeout = timeout
        self.noted = noted
        #: When Redis last answered a command (anyio's clock).
        self.answered = -math.inf
        #: Health checks ask Redis one at a time (each on a spare connection).
        self.probe = anyio.Lock()

    def wait_seconds(self) -> float:
        """How long a command may wait for a place now: until shortly before the call it
        answers is due (or its cancel scope's deadline), at least the Redis timeout."""
        due = answer_due()
        end = min(math.inf if due is None else due, anyio.current_effective_deadline())
        least = max(self.timeout, LEAST_WAIT)
        if math.isinf(end):
            return max(least, BACKGROUND_WAIT)
        return max(least, end - ANSWER_MARGIN - anyio.current_time())

    async def run(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """`call` (one command or pipeline) in a place, its failures named as Redis."""
        from redis.exceptions import ConnectionError as Unreachable
        from redis.exceptions import NoScriptError, RedisError

        wait = self.wait_seconds()
        try:
            with anyio.fail_after(wait):
                await self.places.acquire()
        except TimeoutError:
            self.noted()
            raise redis_problem(Unreachable("No connection available."), wait) from None
        try:
            answer = await call()
            self.answered = anyio.current_time()
            return answer
        except NoScriptError:
            self.answered = anyio.current_time()
            raise  # the script is loaded and run again by its caller
        except RedisError as err:
            self.noted()
            raise redis_problem(err, self.timeout) from err
        finally:
            self.places.release()


def _named(gate: Gate) -> type[Redis]:
    """A `Redis` whose commands and pipelines run in `gate`'s places, on a pool whose
    hand-back cannot be cancelled."""
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline

    class NamedPipeline(Pipeline):
        async def execute(self, raise_on_error: bool = True) -> list[Any]:
            parent = super().execute
            return list(await gate.run(lambda: parent(raise_on_error)))

    class NamedRedis(Redis):
        places = gate

        async def execute_command(self, *args: Any, **options: Any) -> Any:
            parent = super().execute_command
            return await gate.run(lambda: parent(*args, **options))  # type: ignore[no-untyped-call]

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            return NamedPipeline(
                self.connection_pool, self.response_callbacks, transaction, shard_hint
            )

        async def ping_outside(self) -> Any:
            """PING on a spare connection, never waiting for a command's place."""
            return await super().execute_command("PING")  # type: ignore[no-untyped-call]

    return NamedRedis


def _named_cluster(gate: Gate) -> Any:
    """A `RedisCluster` whose commands and pipelines run in `gate`'s places (the cluster
    client's per-node pools refuse when full; the gate keeps them from filling)."""
    from redis.asyncio.cluster import ClusterPipeline, RedisCluster

    class NamedClusterPipeline(ClusterPipeline):
        async def execute(
            self, raise_on_error: bool = True, allow_redirections: bool = True
        ) -> Any:
            parent = super().execute
            return await gate.run(lambda: parent(raise_on_error, allow_redirections))

    class NamedCluster(RedisCluster):
        places = gate

        async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            parent = super().execute_command
            return await gate.run(lambda: parent(*args, **kwargs))

        def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
            return NamedClusterPipeline(self, transaction)  # type: ignore[abstract]

        async def ping_outside(self) -> Any:
            return await super().execute_command("PING")

    return NamedCluster


def _shielded_pool() -> Any:
    """redis-py's pool, its hand-back shielded: a caller cancelled while giving its
    connection back (the pool's lock taken by another) would keep it out of the pool
    for good."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio.connection import AbstractConnection

    class ShieldedPool(ConnectionPool):
        async def release(self, connection: AbstractConnection) -> None:
            with anyio.CancelScope(shield=True):
                await super().release(connection)

    return ShieldedPool


async def answers(redis: Redis, seconds: float, *, lately: bool = True) -> bool:
    """Whether Redis answers within `seconds`: it answered a command that recently (if
    `lately`), or a PING asked on a spare connection, one check at a time (a health
    check judges Redis, not how busy this replica's commands are, and adds no load)."""
    gate: Gate | None = getattr(redis, "places", None)
    if gate is None:  # a plain client (tests): its own PING
        try:
            with anyio.fail_after(seconds):
                await redis.ping()
        except Exception:
            return False
        return True
    try:
        with anyio.fail_after(seconds):
            async with gate.probe:
                if lately and anyio.current_time() - gate.answered < seconds:
                    return True  # answered lately (maybe to the check before this one)
                await redis.ping_outside()  # type: ignore[attr-defined]
                gate.answered = anyio.current_time()
    except Exception:
        return False
    return True


def _nothing() -> None:
    return None


def connect(url: str, scale: Scale | None = None, *, noted: Problem = _nothing) -> Redis:
    """The replica's Redis client (one bounded pool, shared by every user); `noted` is
    called at each failure."""
    from urllib.parse import unquote, urlsplit

    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as Unreachable

    from nemo_mcp import redaction

    scale = scale or Scale()
    password = urlsplit(url).password
    redaction.register(unquote(password) if password else None)
    timeout = scale.redis_timeout
    gate = Gate(scale.redis_max_connections, timeout, noted)
    connections = scale.redis_max_connections + SPARE_CONNECTIONS
    if scale.redis_cluster:
        cluster: Redis = _named_cluster(gate).from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=connections,
            retry=Retry(NoBackoff(), 1, supported_errors=(Unreachable,)),
        )
        return cluster
    pool = _shielded_pool().from_url(
        url,
        max_connections=connections,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(Unreachable,)),
        retry_on_timeout=False,
    )
    return _named(gate).from_pool(pool)


__all__ = ["Gate", "answers", "connect", "redis_problem"]
