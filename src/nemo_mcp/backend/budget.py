"""A tool call's budget for backend work, and how running out of time is worded.

Kept apart from `retry.py` (which needs the HTTP stack) so that the tools can bound
their inline calls without loading it at start-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import anyio

from nemo_mcp.errors import BackendTimeoutError


def host_of(url: str) -> str:
    return urlsplit(url).netloc or url


def _seconds(value: float) -> str:
    return f"{max(0.0, round(value, 1)):g}"


def timeout_message(api_url: str, seconds: float | None, what: str, *, sent: bool) -> str:
    """The agent-facing words for work that ran out of time; `sent` when the request
    may have reached the backend (so it was not, and must not blindly be, sent again)."""
    within = f"within {_seconds(seconds)} s" if seconds is not None else "in time"
    head = f"NemoVideo at {host_of(api_url)} did not answer {within} ({what})"
    if sent:
        return (
            f"{head}. The request may have reached it, so it was not sent again: check "
            "`timeline` before trying again."
        )
    return f"{head}. Check the network or NEMO_API_URL and try again."


@contextmanager
def time_bound(
    seconds: float, *, api_url: str, what: str, idempotent: bool = True
) -> Iterator[None]:
    """Bound the backend work in the block by `seconds` (a tool's budget); past it,
    the work is abandoned and `BackendTimeoutError` says what to try."""
    with anyio.CancelScope(deadline=anyio.current_time() + seconds) as scope:
        yield
    if scope.cancelled_caught:
        raise BackendTimeoutError(timeout_message(api_url, seconds, what, sent=not idempotent))
