"""Serving many users: how much one process keeps open, how it talks to Redis, and the
operator's limits and signals.

Read from the environment with the other settings (`settings.settings_from_env`):

    NEMO_MAX_USERS              users kept open per process (least recently used closed
                                first; default 1000)
    NEMO_USER_IDLE_SECONDS      a user unused this long is closed (default 600)
    NEMO_REDIS_MAX_CONNECTIONS  Redis commands in flight per process (default 64;
                                more wait their turn, within their call's budget)
    NEMO_REDIS_TIMEOUT          seconds a Redis command or connection is waited for
                                (default 2)
    NEMO_REDIS_CLUSTER          1: NEMO_STATE_URL names a node of a Redis Cluster
    NEMO_CREDITS_PER_DAY        per-user spend cap, counted at the estimate when work
                                is accepted (default off)
    NEMO_CALLS_PER_MINUTE       per-user tool calls a minute (default off)
    NEMO_METRICS                Prometheus metrics: off (default), a port, or a path
                                on the server's own port (e.g. /metrics)
    NEMO_LOG_FORMAT             text (default) or json

A user whose work is running, or whose call is being answered, is never closed; a
closed user's state is read again from its store on their next call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from nemo_mcp.envparse import positive_float as _seconds
from nemo_mcp.envparse import switch as _switch
from nemo_mcp.errors import ConfigError


@dataclass(frozen=True)
class Scale:
    """Bounds and operator controls for a server serving many users."""

    max_users: int = 1000
    user_idle_seconds: float = 600.0
    redis_max_connections: int = 64
    redis_timeout: float = 2.0
    redis_cluster: bool = False
    #: Credits a user may commit to per day (None: no cap).
    credits_per_day: int | None = None
    #: Tool calls a user may make per minute (None: no limit).
    calls_per_minute: int | None = None
    #: None: off; an int: a port of its own; a str: a path on the server's port.
    metrics: int | str | None = None
    log_format: str = "text"


#: When the call being answered is due (on anyio's clock), if this task answers one:
#: a wait for shared resources (a free Redis connection) may last until shortly before.
_answer_due: ContextVar[float | None] = ContextVar("nemo_answer_due", default=None)


@contextmanager
def answering_by(due: float | None) -> Iterator[None]:
    """Mark the block as answering a call due at `due` (None: background work, which
    no caller waits for, such as a job's runner)."""
    token = _answer_due.set(due)
    try:
        yield
    finally:
        _answer_due.reset(token)


def answer_due() -> float | None:
    """When the call this task answers is due, or None for background work."""
    return _answer_due.get()


def _whole(name: str, value: str, *, off: bool = False) -> int | None:
    if off and value.lower() in ("0", "off", "no", "none"):
        return None
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number (got {value!r})") from None
    if number < 1:
        raise ConfigError(f"{name} must be 1 or more (got {value!r})")
    return number


def _metrics(value: str) -> int | str | None:
    word = value.lower()
    if word in ("0", "off", "no", "none"):
        return None
    if value.startswith("/") and len(value) > 1 and " " not in value:
        return value
    if value.isdigit() and 0 < int(value) < 65536:
        return int(value)
    raise ConfigError(
        f"NEMO_METRICS must be off, a port or a path such as /metrics (got {value!r})"
    )


def scale_from_env(env: Mapping[str, str]) -> Scale:
    """The `Scale` the environment asks for (defaults where a variable is unset)."""
    values: dict[str, object] = {}

    def given(name: str) -> str | None:
        value = (env.get(name) or "").strip()
        return value or None

    if (users := given("NEMO_MAX_USERS")) is not None:
        values["max_users"] = _whole("NEMO_MAX_USERS", users)
    if (idle := given("NEMO_USER_IDLE_SECONDS")) is not None:
        values["user_idle_seconds"] = _seconds("NEMO_USER_IDLE_SECONDS", idle)
    if (pool := given("NEMO_REDIS_MAX_CONNECTIONS")) is not None:
        values["redis_max_connections"] = _whole("NEMO_REDIS_MAX_CONNECTIONS", pool)
    if (timeout := given("NEMO_REDIS_TIMEOUT")) is not None:
        values["redis_timeout"] = _seconds("NEMO_REDIS_TIMEOUT", timeout)
    if (cluster := given("NEMO_REDIS_CLUSTER")) is not None:
        values["redis_cluster"] = _switch("NEMO_REDIS_CLUSTER", cluster)
    if (credits := given("NEMO_CREDITS_PER_DAY")) is not None:
        values["credits_per_day"] = _whole("NEMO_CREDITS_PER_DAY", credits, off=True)
    if (calls := given("NEMO_CALLS_PER_MINUTE")) is not None:
        values["calls_per_minute"] = _whole("NEMO_CALLS_PER_MINUTE", calls, off=True)
    if (metrics := given("NEMO_METRICS")) is not None:
        values["metrics"] = _metrics(metrics)
    if (fmt := given("NEMO_LOG_FORMAT")) is not None:
        if fmt.lower() not in ("text", "json"):
            raise ConfigError(f"NEMO_LOG_FORMAT must be text or json (got {fmt!r})")
        values["log_format"] = fmt.lower()
    return Scale(**values)  # type: ignore[arg-type]


__all__ = ["Scale", "answer_due", "answering_by", "scale_from_env"]
