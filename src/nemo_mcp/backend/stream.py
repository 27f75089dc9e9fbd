"""Sending one message to the backend agent and reading its event stream.

A message is sent at most once. Before the stream opens, errors the backend
answers with mean it did not take the message, so 1001 (new token) and 429
(wait) are retried once, and a connection that never opened is retried; once
the stream has opened, any failure is reported, never retried: re-sending
would duplicate the work and charge twice. Recovery after a broken stream is
the caller's (read the state, compare).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
import httpx
from httpx_sse import EventSource

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.envelope import parse_retry_after, read_envelope
from nemo_mcp.backend.events import StreamEvent, decode_sse, is_meaningful
from nemo_mcp.backend.retry import (
    STREAM_IDLE_SECONDS,
    STREAM_READ_TIMEOUT,
    STREAM_TOTAL_SECONDS,
    send_with_retries,
    stream_timeout,
)
from nemo_mcp.errors import (
    BackendTimeoutError,
    ServerError,
    SessionNotFoundError,
    StreamBrokenError,
)

log = logging.getLogger(__name__)

OnEvent = Callable[[StreamEvent], Awaitable[None] | None]


@dataclass(frozen=True)
class StreamLimits:
    """How long a stream may run: in all, and with nothing but heartbeats."""

    total: float = STREAM_TOTAL_SECONDS
    idle: float = STREAM_IDLE_SECONDS
    read: float = STREAM_READ_TIMEOUT


@dataclass
class StreamOutcome:
    session_id: str
    events: int = 0
    meaningful: int = 0


def message_body(session_id: str, text: str) -> dict[str, object]:
    return {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": session_id,
        "new_message": {"parts": [{"text": text}]},
    }


async def send_message(
    client: NemoClient,
    text: str,
    on_event: OnEvent,
    *,
    limits: StreamLimits | None = None,
    on_open: Callable[[], Awaitable[None]] | None = None,
) -> StreamOutcome:
    """Send `text` once to the current session and feed each event to `on_event`.

    `on_open` runs once the backend has answered with an event stream (it has the
    message), before the first event is read.

    Returns when the stream closes. Raises `StreamBrokenError` if it breaks,
    `BackendTimeoutError` past the limits, the mapped `BackendError` when the
    backend refuses the message before the stream, and `SessionNotFoundError`
    (after starting a new session) on 1002. Retries before the stream opens
    follow the one policy (`retry.py`); once it has opened, nothing is re-sent.
    """
    limits = limits or StreamLimits()
    session = await client.session()
    outcome = StreamOutcome(session_id=session.session_id)
    timeout = stream_timeout(limits.read)

    async def attempt(token: str | None) -> StreamOutcome:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
        }
        async with client.http.stream(
            "POST",
            "/run_sse",
            json=message_body(session.session_id, text),
            headers=headers,
            timeout=timeout,
        ) as response:
            content_type = response.headers.get("content-type", "")
            if response.status_code != 200 or "text/event-stream" not in content_type:
                # Refused before any event: the backend did not take the message.
                read_envelope(
                    response.status_code,
                    await response.aread(),
                    retry_after=parse_retry_after(response.headers.get("retry-after")),
                )
                raise ServerError(
                    "the backend answered the message without an event stream",
                    http_status=response.status_code,
                )
            if on_open is not None:
                await on_open()
            await _consume(response, on_event, outcome, limits)
            return outcome

    try:
        return await send_with_retries(
            client, attempt, what="sending the message", idempotent=False
        )
    except SessionNotFoundError as err:
        raise await client.session_lost(session, err) from err


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


def event_source(response: httpx.Response) -> EventSource:
    """An SSE reader over `response`, decoding UTF-8 as the SSE format requires
    (httpx would otherwise guess an encoding when the header names none)."""
    response.encoding = "utf-8"
    return EventSource(response)


async def _consume(
    response: httpx.Response,
    on_event: OnEvent,
    outcome: StreamOutcome,
    limits: StreamLimits,
) -> None:
    started = anyio.current_time()
    total_deadline = started + limits.total
    with anyio.CancelScope(deadline=min(started + limits.idle, total_deadline)) as scope:
        try:
            async for sse in event_source(response).aiter_sse():
                for event in decode_sse(sse.event, sse.data):
                    outcome.events += 1
                    if is_meaningful(event):
                        outcome.meaningful += 1
                        deadline = min(anyio.current_time() + limits.idle, total_deadline)
                        if deadline - scope.deadline > 1.0:  # moving it costs; a second is plenty
                            scope.deadline = deadline
                    result = on_event(event)
                    if inspect.isawaitable(result):
                        await result
        except httpx.ReadTimeout as err:
            raise StreamBrokenError(
                f"the agent stream went silent for {limits.read:.0f} s and was dropped"
            ) from err
        except httpx.HTTPError as err:
            raise StreamBrokenError(
                f"the agent stream broke after {outcome.events} events ({type(err).__name__})"
            ) from err
    if scope.cancelled_caught:
        elapsed = anyio.current_time() - started
        if anyio.current_time() >= total_deadline:
            raise BackendTimeoutError(f"the agent did not finish within {_span(limits.total)}")
        raise BackendTimeoutError(
            f"the agent sent only heartbeats for {_span(limits.idle)} ({elapsed:.0f} s in all)"
        )
    log.debug("stream closed after %d events", outcome.events)


__all__ = ["StreamLimits", "StreamOutcome", "message_body", "send_message"]
