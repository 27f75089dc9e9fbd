"""Timeouts and the one retry policy every backend call follows.

The policy, for a call that carries the bearer token:

- 1001 (token expired or invalid): renew the token once, with the same client
  id, and send again: the backend refused the call, so nothing happened;
- 429 (rate limited): wait once (`Retry-After`, else 30 s) and send again;
- a connection that never opened: send again, with backoff (it never left);
- 5xx and broken connections: send again with backoff only when the call is
  idempotent (reads, polls, token requests); a message or a render start that
  may have reached the backend is never sent twice.

`send_with_retries` applies it to one attempt function; `NemoClient.request`,
the message stream and the render start all go through it. httpx exceptions
become ours in `translate`, and only there.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from nemo_mcp.errors import (
    AuthError,
    BackendTimeoutError,
    BackendUnreachableError,
    RateLimitError,
    ServerError,
    TransportError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

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


def stream_timeout(read: float = STREAM_READ_TIMEOUT) -> httpx.Timeout:
    """The agent stream's timeouts: `read` is the longest silence between chunks."""
    return httpx.Timeout(connect=10.0, read=read, write=30.0, pool=10.0)


MAX_ATTEMPTS = 3
RATE_LIMIT_WAIT = 30.0
MAX_RETRY_AFTER = 60.0


class Authority(Protocol):
    """What the policy needs from the client: the token, its renewal, and a sleep."""

    api_url: str

    async def token(self) -> str: ...

    async def renew(self, stale: str) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


def backoff(attempt: int, retry_after: float | None = None) -> float:
    """Delay before retry number `attempt` (1-based): Retry-After when given, else
    exponential from 0.5 s with jitter, capped at 8 s."""
    if retry_after is not None:
        return float(min(retry_after, MAX_RETRY_AFTER))
    base = min(8.0, 0.5 * 2.0 ** (attempt - 1))
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
        return BackendTimeoutError(
            f"the NemoVideo backend at {host} did not answer in time ({what})"
        )
    return TransportError(f"the connection to {host} failed during {what}: {type(err).__name__}")


async def send_with_retries(
    client: Authority,
    attempt: Callable[[str | None], Awaitable[T]],
    *,
    what: str,
    idempotent: bool,
    auth: bool = True,
) -> T:
    """Run `attempt(token)` under the policy above and return its result.

    `attempt` sends the call once: it returns the answer, raises the mapped
    `NemoError` when the backend refused it, or lets an `httpx.HTTPError` out.
    """
    tries = 0
    renewed = rate_retried = False
    while True:
        tries += 1
        token = await client.token() if auth else None
        try:
            return await attempt(token)
        except httpx.HTTPError as err:
            if (idempotent or never_sent(err)) and tries < MAX_ATTEMPTS:
                await client.sleep(backoff(tries))
                continue
            raise translate(err, api_url=client.api_url, what=what) from err
        except AuthError:
            if token is None or renewed:
                raise
            renewed = True
            await client.renew(token)
        except RateLimitError as err:
            if rate_retried:
                raise
            rate_retried = True
            wait = err.retry_after if err.retry_after is not None else RATE_LIMIT_WAIT
            log.info("rate limited on %s; retrying once in %.0f s", what, wait)
            await client.sleep(wait)
        except ServerError as err:
            if not idempotent or tries >= MAX_ATTEMPTS:
                raise
            await client.sleep(backoff(tries, getattr(err, "retry_after", None)))
