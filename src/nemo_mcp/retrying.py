"""How often, and how far apart, something is tried again: one module of named policies.

A `Policy` is data: how many attempts, the first wait, how the wait grows, its cap and
its jitter. `Policy.waits()` yields the wait before each attempt after the first; the
loops that retry (a render start that went unclear, a status read that failed, a
download, a lease held by another process) take their policy from here, so a change
of pace is made in one place. It imports nothing of `backend` or `ledger` (only `errors`): both use it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from nemo_mcp.errors import NemoError, ServerError, TransportError


@dataclass(frozen=True)
class Policy:
    """`attempts` tries in all; before try n+1 wait `first * factor**(n-1)`, capped at
    `cap`, spread by +-`jitter` (a fraction) so processes do not retry in step."""

    name: str
    attempts: int
    first: float
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.0

    def wait(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based)."""
        base = min(self.cap, self.first * self.factor ** (retry - 1))
        if self.jitter:
            base *= 1 - self.jitter + 2 * self.jitter * random.random()
        return base

    def waits(self) -> Iterator[float]:
        """The wait before each retry, in order (`attempts - 1` of them)."""
        for retry in range(1, self.attempts):
            yield self.wait(retry)

    def tries(self) -> Iterator[float]:
        """The wait before each try, the first one's 0: `for wait in policy.tries()`."""
        yield 0.0
        yield from self.waits()


#: Backend calls safe to repeat (reads, polls, token requests): 3 tries, 0.5 s doubling.
BACKEND_CALL = Policy("backend call", attempts=3, first=0.5, cap=8.0, jitter=0.25)
#: A render start whose answer was unclear: sent again under the same id (the backend
#: refuses a known id, which then proves it exists), checking its status between.
RENDER_START = Policy("render start", attempts=5, first=1.0, cap=8.0, jitter=0.25)
#: A render's status read that failed while following it: unknown, so keep checking.
RENDER_STATUS = Policy("render status", attempts=5, first=1.0, cap=8.0, jitter=0.25)
#: A finished render's download.
DOWNLOAD = Policy("download", attempts=3, first=0.0, factor=1.0)
#: After an interrupted send: looks for its arrival, one recovery delay apart (the
#: delay comes from the settings: see `every`).
ARRIVAL = Policy("arrival", attempts=2, first=30.0, factor=1.0, cap=float("inf"))
#: Waiting for a lease another process holds (once-per-home work); the caller bounds
#: the whole wait.
LEASE = Policy("lease", attempts=10_000, first=0.1, factor=1.0)
#: Opening a database another process is creating (short waits with jitter); the caller
#: bounds the whole wait.
OPEN = Policy("open", attempts=10_000, first=0.0275, factor=1.0, jitter=0.8)


def every(policy: Policy, seconds: float) -> Policy:
    """`policy` with its first wait set to `seconds` (a pace taken from the settings)."""
    return Policy(
        policy.name,
        attempts=policy.attempts,
        first=seconds,
        factor=policy.factor,
        cap=max(policy.cap, seconds),
        jitter=policy.jitter,
    )


def unclear(err: NemoError) -> bool:
    """Whether a failed non-idempotent send may still have done its work: any 5xx (a
    gateway's 502/503/504 too), an unreadable answer, a timeout after the body left, a
    dropped connection. Such a send is resolved by evidence, never sent again blindly;
    a clean refusal (the backend answered, and said no) is not unclear."""
    if isinstance(err, (ServerError, TransportError)):
        return True
    return err.http_status is not None and 500 <= err.http_status < 600


__all__ = [
    "ARRIVAL",
    "BACKEND_CALL",
    "DOWNLOAD",
    "LEASE",
    "OPEN",
    "RENDER_START",
    "RENDER_STATUS",
    "Policy",
    "every",
    "unclear",
]
