"""Sending one message to the backend agent and reading its event stream.

A message is sent at most once. Before the stream opens, errors the backend
answers with mean it did not take the message, so 1001 (new token) and 429
(wait) are retried once, and a connection that never opened is retried; once
the stream has opened, any failure is reported, never retried: re-sending
would duplicate the work and charge twice. Recovery after a broken stream is
the caller's (read the state, compare).

Every wait is bounded (`StreamLimits`): opening the stream (connect, send,
the answer's headers), silence, an event begun and not finished (a drip),
heartbeats only, and the stream in all. A refusal's body, and each event, are
read under a size cap.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass

import anyio
import httpx
from httpx_sse import ServerSentEvent

from nemo_mcp.backend.body import ANSWER_LIMIT, decoded_chunks, read_answer
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.events import OpenedEvent, StreamEvent, decode_sse, is_meaningful
from nemo_mcp.backend.retry import (
    STREAM_IDLE_SECONDS,
    STREAM_OPEN_SECONDS,
    STREAM_READ_TIMEOUT,
    STREAM_TOTAL_SECONDS,
    send_with_retries,
    stream_open_deadlines,
    stream_timeout,
)
from nemo_mcp.backend.sse import EventReader
from nemo_mcp.errors import (
    BackendTimeoutError,
    ServerError,
    SessionNotFoundError,
    StreamBrokenError,
)

log = logging.getLogger(__name__)

#: Takes each event: first `OpenedEvent`, once the stream opened, then the stream's own.
OnEvent = Callable[[StreamEvent | OpenedEvent], Awaitable[None] | None]


@dataclass(frozen=True)
class StreamLimits:
    """How long a stream may run: in all, with nothing but heartbeats, silent (or
    with an event begun and not finished), and before it opens; and how large
    one event may be."""

    total: float = STREAM_TOTAL_SECONDS
    idle: float = STREAM_IDLE_SECONDS
    read: float = STREAM_READ_TIMEOUT
    open: float = STREAM_OPEN_SECONDS
    event_bytes: int = ANSWER_LIMIT


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
) -> StreamOutcome:
    """Send `text` once to the current session and feed each event to `on_event`.

    The first is `OpenedEvent`, given once the backend has answered with an event
    stream (it has the message) and before the stream's first event is read: what the
    caller records of that is its own business.

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

    async def attempt(token: str | None) -> httpx.Response:
        """Send the message; the open stream, once its headers are in."""
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "text/event-stream",
            "Cache-Control": "no-store",
        }
        request = client.http.build_request(
            "POST",
            "/run_sse",
            json=message_body(session.session_id, text),
            headers=headers,
            timeout=timeout,
        )
        response = await client.http.send(request, stream=True)
        try:
            content_type = response.headers.get("content-type", "")
            if response.status_code != 200 or "text/event-stream" not in content_type:
                # Refused before any event: the backend did not take the message.
                await read_answer(response, limit=limits.event_bytes, what="sending the message")
                raise ServerError(
                    "the backend answered the message without an event stream",
                    http_status=response.status_code,
                )
        except BaseException:
            await response.aclose()
            raise
        return response

    try:
        response = await send_with_retries(
            client,
            attempt,
            what="sending the message",
            idempotent=False,
            deadlines=stream_open_deadlines(limits.open),
        )
    except SessionNotFoundError as err:
        raise await client.session_lost(session, err) from err
    try:
        await _emit(on_event, OpenedEvent(session_id=session.session_id))
        await _consume(response, on_event, outcome, limits)
    finally:
        await response.aclose()
    return outcome


def _span(seconds: float) -> str:
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


class BoundedEventSource:
    """The server-sent events of a streamed response, each under a size cap."""

    def __init__(self, response: httpx.Response, limit: int = ANSWER_LIMIT) -> None:
        self.response = response
        self.limit = limit

    async def aiter_sse(self) -> AsyncIterator[ServerSentEvent]:
        reader = EventReader(self.limit)
        chunks = decoded_chunks(self.response)
        async with aclosing(chunks):
            async for chunk in chunks:
                for sse in reader.feed(chunk):
                    yield sse
        for sse in reader.close():
            yield sse


def event_source(response: httpx.Response, limit: int = ANSWER_LIMIT) -> BoundedEventSource:
    """An SSE reader over `response`: UTF-8 as the format requires, and no line or
    event over `limit` (`StreamBrokenError` past it)."""
    return BoundedEventSource(response, limit)


async def _consume(
    response: httpx.Response,
    on_event: OnEvent,
    outcome: StreamOutcome,
    limits: StreamLimits,
) -> None:
    started = anyio.current_time()
    total_deadline = started + limits.total
    reader = EventReader(limits.event_bytes)
    begun: float | None = None  # when the event being received began
    with anyio.CancelScope(deadline=min(started + limits.idle, total_deadline)) as scope:
        try:
            chunks = decoded_chunks(response)
            async with aclosing(chunks):
                async for chunk in chunks:
                    events = reader.feed(chunk)
                    if not reader.pending:
                        begun = None
                    elif events or begun is None:
                        begun = anyio.current_time()
                    elif anyio.current_time() - begun > limits.read:
                        # Bytes keep coming and no event ends: a drip is no answer.
                        raise StreamBrokenError(
                            f"the agent stream sent part of an event and then only a trickle "
                            f"for {limits.read:g} s, so it was dropped"
                        )
                    for sse in events:
                        await _deliver(sse, on_event, outcome, limits, scope, total_deadline)
            for sse in reader.close():
                await _deliver(sse, on_event, outcome, limits, scope, total_deadline)
        except httpx.ReadTimeout as err:
            raise StreamBrokenError(
                f"the agent stream went silent for {limits.read:g} s and was dropped"
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


async def _deliver(
    sse: ServerSentEvent,
    on_event: OnEvent,
    outcome: StreamOutcome,
    limits: StreamLimits,
    scope: anyio.CancelScope,
    total_deadline: float,
) -> None:
    """Hand one frame's events to `on_event`; a meaningful one moves the idle deadline."""
    for event in decode_sse(sse.event, sse.data):
        outcome.events += 1
        if is_meaningful(event):
            outcome.meaningful += 1
            deadline = min(anyio.current_time() + limits.idle, total_deadline)
            if deadline - scope.deadline > 1.0:  # moving it costs; a second is plenty
                scope.deadline = deadline
        await _emit(on_event, event)


async def _emit(on_event: OnEvent, event: StreamEvent | OpenedEvent) -> None:
    result = on_event(event)
    if inspect.isawaitable(result):
        await result


__all__ = ["StreamLimits", "StreamOutcome", "event_source", "message_body", "send_message"]
