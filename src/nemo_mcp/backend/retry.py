"""Time limits, in one place, and the one retry policy every backend call follows.

Every call is bounded four ways, so no backend, however it misbehaves, holds
one for long:

- httpx's per-operation timeouts (`CALL_TIMEOUT`): connect, each write, each
  read. A read timeout restarts with every byte, so alone it bounds nothing;
- a deadline on each attempt (`Deadlines.attempt`): connecting, sending and
  reading the whole answer. A backend that drips one byte a second, or never
  answers, loses the attempt there;
- a deadline on the whole call (`Deadlines.total`): every attempt, backoff and
  wait. A wait that would not fit is not started: the error is reported instead;
- for the calls a tool makes while its caller waits, the tool's budget
  (`time_bound`, `NEMO_TOOL_TIMEOUT`).

The agent stream has its own documented limits (`STREAM_*`); opening it
(connect, send, the answer's headers) is bounded like a call.

The policy, for a call that carries the bearer token:

- 1001 (token expired or invalid): renew the token once, with the same client
  id, and send again: the backend refused the call, so nothing happened;
- 429 (rate limited): wait once (`Retry-After`, else 30 s) and send again,
  when the wait fits what is left of the call's time (the tool's budget
  included); else the 429 is said at once. The anonymous token's 429 (the
  7-day rule, which no wait inside a call can clear) is said at once too;
- a connection that never opened: send again, with backoff (it never left);
- 5xx, broken connections and attempts out of time: send again with backoff
  only when the call is idempotent (reads, polls, token requests); a message or
  a render start that may have reached the backend is never sent twice, and a
  deadline hit on one is reported as "may have arrived".

`send_with_retries` applies it to one attempt function; `NemoClient.request`,
the message stream and the render start all go through it. httpx exceptions
become ours in `translate`, and only there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import anyio
import httpx

from nemo_mcp import retrying
from nemo_mcp.backend.budget import host_of, timeout_message
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


@dataclass(frozen=True)
class Deadlines:
    """How long one attempt (connect, send, the whole answer) and the whole call
    (every attempt, backoff and wait) may take, in seconds."""

    attempt: float
    total: float


#: Short calls: connect fast, each read within 30 s.
CALL_TIMEOUT = httpx.Timeout(connect=10.0, read=30.0, write=60.0, pool=10.0)
#: Short calls: an attempt within 30 s, the call with its retries within 60 s.
CALL_DEADLINES = Deadlines(attempt=30.0, total=60.0)
#: Uploads and downloads: long writes/reads of big bodies.
TRANSFER_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=120.0, pool=10.0)
#: The slowest link a transfer is allowed (512 kbit/s): below it, an upload is abandoned.
MIN_TRANSFER_RATE = 64 * 1024
#: The agent stream: gateways send heartbeats, so two silent minutes mean it is dead.
#: An event begun and not finished within this long (a drip) ends it too.
STREAM_READ_TIMEOUT = 120.0
#: Opening the agent stream: connect, send the message, receive the answer's headers.
STREAM_OPEN_SECONDS = 30.0
#: The documented ceiling for one message stream.
STREAM_TOTAL_SECONDS = 15 * 60
#: The documented rule: ten minutes of heartbeats and nothing else is a timeout.
STREAM_IDLE_SECONDS = 10 * 60


def transfer_deadlines(size: int) -> Deadlines:
    """Deadlines for sending `size` bytes: two minutes, plus the time the slowest
    allowed link needs for them."""
    attempt = 120.0 + size / MIN_TRANSFER_RATE
    return Deadlines(attempt=attempt, total=attempt + CALL_DEADLINES.total)


def stream_timeout(read: float = STREAM_READ_TIMEOUT) -> httpx.Timeout:
    """The agent stream's timeouts: `read` is the longest silence between chunks."""
    return httpx.Timeout(connect=10.0, read=read, write=30.0, pool=10.0)


def stream_open_deadlines(seconds: float = STREAM_OPEN_SECONDS) -> Deadlines:
    """Opening the stream: each attempt within `seconds`; room for one renewal or wait."""
    return Deadlines(attempt=seconds, total=3 * seconds)


MAX_ATTEMPTS = retrying.BACKEND_CALL.attempts
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
    return retrying.BACKEND_CALL.wait(attempt)


def never_sent(err: httpx.HTTPError) -> bool:
    """Whether the request certainly never reached the server (safe to send again)."""
    return isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))


def translate(
    err: httpx.HTTPError, *, api_url: str, what: str, sent: bool = False
) -> TransportError:
    """Our exception for an httpx exception; the caller raises it `from err`.

    `sent`: the call is not safe to repeat and may have reached the backend."""
    host = host_of(api_url)
    if isinstance(err, (httpx.ConnectError, httpx.ConnectTimeout)):
        return BackendUnreachableError(
            f"cannot reach the NemoVideo backend at {host} ({what}); check the network "
            "and NEMO_API_URL, then try again"
        )
    if isinstance(err, httpx.TimeoutException):
        sent = sent and not isinstance(err, httpx.PoolTimeout)
        return BackendTimeoutError(timeout_message(api_url, None, what, sent=sent))
    return TransportError(f"the connection to {host} failed during {what}: {type(err).__name__}")


async def send_with_retries(
    client: Authority,
    attempt: Callable[[str | None], Awaitable[T]],
    *,
    what: str,
    idempotent: bool,
    auth: bool = True,
    deadlines: Deadlines = CALL_DEADLINES,
    wait_on_429: bool = True,
) -> T:
    """Run `attempt(token)` under the policy above and return its result.

    `attempt` sends the call once: it returns the answer, raises the mapped
    `NemoError` when the backend refused it, or lets an `httpx.HTTPError` out.
    Each attempt gets `deadlines.attempt`, the whole call `deadlines.total`;
    `wait_on_429=False` raises a 429 at once.
    """
    started = anyio.current_time()
    tries = 0
    renewed = rate_retried = False

    def timed_out() -> BackendTimeoutError:
        elapsed = anyio.current_time() - started
        return BackendTimeoutError(
            timeout_message(client.api_url, elapsed, what, sent=not idempotent)
        )

    with anyio.CancelScope(deadline=started + deadlines.total) as whole:

        def fits(wait: float) -> bool:
            """Whether waiting `wait` seconds still leaves time for another attempt, within
            this call's deadline and any the caller set (a tool's budget)."""
            return anyio.current_time() + wait < anyio.current_effective_deadline()

        while True:
            tries += 1
            token: str | None = None
            failure: httpx.HTTPError | AuthError | RateLimitError | ServerError | None = None
            limit = min(whole.deadline, anyio.current_time() + deadlines.attempt)
            with anyio.CancelScope(deadline=limit) as one:
                token = await client.token() if auth else None
                try:
                    return await attempt(token)
                except (httpx.HTTPError, AuthError, RateLimitError, ServerError) as err:
                    failure = err
            if one.cancelled_caught:
                # Out of time mid-attempt: it may have arrived unless it is safe to repeat.
                wait = backoff(tries)
                if not idempotent or tries >= MAX_ATTEMPTS or not fits(wait):
                    raise timed_out()
                log.info("%s: no answer within %.0f s; trying again", what, deadlines.attempt)
                await client.sleep(wait)
            elif isinstance(failure, httpx.HTTPError):
                wait = backoff(tries)
                if (idempotent or never_sent(failure)) and tries < MAX_ATTEMPTS and fits(wait):
                    await client.sleep(wait)
                    continue
                raise translate(
                    failure, api_url=client.api_url, what=what, sent=not idempotent
                ) from failure
            elif isinstance(failure, AuthError):
                if token is None or renewed:
                    raise failure
                renewed = True
                await client.renew(token)
            elif isinstance(failure, RateLimitError):
                wait = failure.retry_after if failure.retry_after is not None else RATE_LIMIT_WAIT
                if rate_retried or not wait_on_429 or not fits(wait):
                    raise failure
                rate_retried = True
                log.info("rate limited on %s; retrying once in %.0f s", what, wait)
                await client.sleep(wait)
            elif isinstance(failure, ServerError):
                wait = backoff(tries, getattr(failure, "retry_after", None))
                if not idempotent or tries >= MAX_ATTEMPTS or not fits(wait):
                    raise failure
                await client.sleep(wait)
    # Only the whole call's deadline leaves the loop: a renewal or a wait ran out of time.
    raise timed_out()
