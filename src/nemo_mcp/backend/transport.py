"""Timeouts, retry policy and the one place httpx exceptions become ours."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import httpx

from nemo_mcp.errors import BackendTimeoutError, BackendUnreachableError, TransportError

#: Short calls: connect fast, answer within 30 s.
CALL_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=60.0, pool=10.0)
#: Uploads and downloads: long writes/reads of big bodies.
TRANSFER_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=10.0)
#: The agent stream: gateways send heartbeats, so two silent minutes mean it is dead.
STREAM_READ_TIMEOUT = 120.0
#: The documented ceiling for one message stream.
STREAM_TOTAL_SECONDS = 15 * 60
#: The documented rule: ten minutes of heartbeats and nothing else is a timeout.
STREAM_IDLE_SECONDS = 10 * 60

MAX_ATTEMPTS = 3
RATE_LIMIT_WAIT = 30.0
MAX_RETRY_AFTER = 60.0


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number `attempt` (1-based): Retry-After when given, else
    exponential from 0.5 s with jitter, capped at 8 s."""
    if retry_after is not None:
        return min(retry_after, MAX_RETRY_AFTER)
    base = min(8.0, 0.5 * 2 ** (attempt - 1))
    return base * (0.75 + random.random() / 2)


def never_sent(err: httpx.HTTPError) -> bool:
    """Whether the request certainly never reached the server (safe to send again)."""
    return isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def translate(err: httpx.HTTPError, *, api_url: str, what: str) -> TransportError:
    """Our exception for an httpx exception; the caller raises it `from err`."""
    host = host_of(api_url)
    if isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)):
        return BackendUnreachableError(
            f"cannot reach the NemoVideo backend at {host} ({what}); check the network "
            "and NEMO_API_URL, then try again"
        )
    if isinstance(err, httpx.TimeoutException):
        return BackendTimeoutError(f"the NemoVideo backend at {host} did not answer in time ({what})")
    return TransportError(f"the connection to {host} failed during {what}: {type(err).__name__}")
