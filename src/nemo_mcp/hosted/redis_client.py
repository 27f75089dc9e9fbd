"""The replica's one Redis client: a bounded pool, short timeouts, errors named as Redis.

- **Bounded.** One pool of at most `NEMO_REDIS_MAX_CONNECTIONS` connections per
  replica. When every connection is in use a command waits for one, up to
  `NEMO_REDIS_TIMEOUT` (a blocking pool), instead of failing at once. On a Redis
  Cluster (`NEMO_REDIS_CLUSTER=1`) the same bound holds for the commands in flight.
- **Short.** Connecting, each command and the wait for a free connection are bounded
  by `NEMO_REDIS_TIMEOUT`; a lost connection is tried again once, a timeout never
  (a stalled Redis must not hold a call for several timeouts).
- **Named.** Every failure (refused, unreachable, stalled, the pool busy) is raised as
  `SharedStateError`, one sentence naming Redis, never a library's words or "an
  unexpected problem"; the original is kept as its cause for the log.

The password, if the URL has one, is kept out of every log line and message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nemo_mcp.errors import SharedStateError
from nemo_mcp.scale import Scale

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.exceptions import RedisError


def redis_problem(err: RedisError, timeout: float) -> SharedStateError:
    """`err` as one sentence naming Redis and what to do."""
    from redis.exceptions import ConnectionError as Unreachable
    from redis.exceptions import TimeoutError as Stalled

    if isinstance(err, Stalled):
        what = f"Redis (this server's shared state) did not answer within {timeout:g} s"
    elif isinstance(err, Unreachable) and "No connection available" in str(err):
        what = f"every Redis connection of this server stayed busy for {timeout:g} s"
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


def _named(timeout: float, noted: Problem) -> tuple[type[Redis], Any]:
    """A `Redis` (and its pipeline) raising `SharedStateError` for every Redis failure
    (each one `noted`, for the metrics)."""
    from redis.asyncio import Redis
    from redis.asyncio.client import Pipeline
    from redis.exceptions import NoScriptError, RedisError

    class NamedPipeline(Pipeline):
        async def execute(self, raise_on_error: bool = True) -> list[Any]:
            try:
                return await super().execute(raise_on_error)
            except RedisError as err:
                noted()
                raise redis_problem(err, timeout) from err

    class NamedRedis(Redis):
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            try:
                return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
            except NoScriptError:
                raise  # the script is loaded and run again by its caller
            except RedisError as err:
                noted()
                raise redis_problem(err, timeout) from err

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            return NamedPipeline(
                self.connection_pool, self.response_callbacks, transaction, shard_hint
            )

    return NamedRedis, NamedPipeline


def _named_cluster(scale: Scale, noted: Problem) -> Any:
    """A `RedisCluster` raising `SharedStateError`, its commands bounded like the pool.

    The cluster client keeps a pool per node that refuses (never waits) when full; a
    semaphore makes every command wait up to the timeout for one of
    `redis_max_connections` places instead, which also bounds each node's pool."""
    import anyio
    from redis.asyncio.cluster import ClusterPipeline, RedisCluster
    from redis.exceptions import NoScriptError, RedisError

    timeout = scale.redis_timeout
    places = anyio.Semaphore(scale.redis_max_connections)

    async def bounded(call: Any) -> Any:
        try:
            with anyio.fail_after(timeout):
                await places.acquire()
        except TimeoutError:
            from redis.exceptions import ConnectionError as Unreachable

            noted()
            raise redis_problem(Unreachable("No connection available."), timeout) from None
        try:
            return await call()
        except NoScriptError:
            raise
        except RedisError as err:
            noted()
            raise redis_problem(err, timeout) from err
        finally:
            places.release()

    class NamedClusterPipeline(ClusterPipeline):
        async def execute(
            self, raise_on_error: bool = True, allow_redirections: bool = True
        ) -> Any:
            parent = super().execute
            return await bounded(lambda: parent(raise_on_error, allow_redirections))

    class NamedCluster(RedisCluster):
        async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
            parent = super().execute_command
            return await bounded(lambda: parent(*args, **kwargs))

        def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
            return NamedClusterPipeline(self, transaction)  # type: ignore[abstract]

    return NamedCluster


def _nothing() -> None:
    return None


def connect(url: str, scale: Scale | None = None, *, noted: Problem = _nothing) -> Redis:
    """The replica's Redis client (one bounded pool, shared by every user); `noted` is
    called at each failure."""
    from urllib.parse import unquote, urlsplit

    from redis.asyncio import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as Unreachable

    from nemo_mcp import redaction

    scale = scale or Scale()
    password = urlsplit(url).password
    redaction.register(unquote(password) if password else None)
    timeout = scale.redis_timeout
    if scale.redis_cluster:
        cluster: Redis = _named_cluster(scale, noted).from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            max_connections=scale.redis_max_connections,
            retry=Retry(NoBackoff(), 1, supported_errors=(Unreachable,)),
        )
        return cluster
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=scale.redis_max_connections,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(Unreachable,)),
        retry_on_timeout=False,
    )
    named, _ = _named(timeout, noted)
    return named.from_pool(pool)


__all__ = ["connect", "redis_problem"]
