"""Decoding the agent stream (`/run_sse`) into typed events, and assembling its text.

Pure functions over SSE fields: no I/O. Accepts every documented frame form:
ADK events (camelCase, parts of text / functionCall / functionResponse /
thought, `partial` chunks, `errorCode`, `actions.stateDelta`), the older typed
frames (`{"type": "text" | "tool_call" | "tool_result" | "heartbeat"}`),
gateway heartbeats (`event: heartbeat`, empty `data:`; comment lines never
reach us), and `{"error": ...}` failure frames. Nothing here raises on input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

_RAW_LIMIT = 200


@dataclass(frozen=True, slots=True)
class TextEvent:
    text: str
    partial: bool = False
    author: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallEvent:
    name: str
    args: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ToolResultEvent:
    name: str
    result: Any = None
    call_id: str | None = None


@dataclass(frozen=True, slots=True)
class ThoughtEvent:
    text: str


@dataclass(frozen=True, slots=True)
class StateDeltaEvent:
    delta: dict[str, Any]


@dataclass(frozen=True, slots=True)
class HeartbeatEvent:
    pass


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    message: str
    code: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    raw: str


StreamEvent = (
    TextEvent
    | ToolCallEvent
    | ToolResultEvent
    | ThoughtEvent
    | StateDeltaEvent
    | HeartbeatEvent
    | ErrorEvent
    | UnknownEvent
)

HEARTBEAT = HeartbeatEvent()


@dataclass(frozen=True, slots=True)
class OpenedEvent:
    """The backend answered the message with an event stream: it has the message. Given
    once by `stream.send_message`, before any event is read (never decoded from a frame)."""

    session_id: str


def is_meaningful(event: StreamEvent) -> bool:
    """Whether an event shows the agent doing something (heartbeats do not)."""
    return not isinstance(event, (HeartbeatEvent, UnknownEvent))


def _name(value: Any) -> str:
    return value if isinstance(value, str) and value else "unknown"


def _args(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return {"value": value}
        return parsed if isinstance(parsed, dict) else {"value": parsed}
    return {} if value is None else {"value": value}


def _error_text(value: Any) -> str:
    if isinstance(value, dict):
        value = value.get("message") or value.get("error") or value.get("detail") or value
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return " ".join(text.split())[:500] or "the agent reported an error"


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _typed(obj: dict[str, Any]) -> list[StreamEvent]:
    kind = obj.get("type")
    if kind == "text":
        text = obj.get("content", obj.get("text"))
        if isinstance(text, str) and text:
            return [TextEvent(text=text, partial=obj.get("partial") is True)]
        return []
    if kind == "tool_call":
        return [ToolCallEvent(name=_name(obj.get("name")), args=_args(obj.get("args")))]
    if kind == "tool_result":
        return [ToolResultEvent(name=_name(obj.get("name")), result=obj.get("result"))]
    if kind == "heartbeat":
        return [HEARTBEAT]
    if kind == "error":
        return [
            ErrorEvent(_error_text(obj.get("error", obj.get("content"))), _opt_str(obj.get("code")))
        ]
    return [UnknownEvent(json.dumps(obj, default=str)[:_RAW_LIMIT])]


def _adk(obj: dict[str, Any]) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    partial = obj.get("partial") is True
    author = obj.get("author") if isinstance(obj.get("author"), str) else None
    content = obj.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        text = part.get("text")
        if isinstance(text, str) and text:
            if part.get("thought") is True:
                events.append(ThoughtEvent(text))
            else:
                events.append(TextEvent(text=text, partial=partial, author=author))
        call = part.get("functionCall") or part.get("function_call")
        if isinstance(call, dict):
            events.append(
                ToolCallEvent(
                    _name(call.get("name")), _args(call.get("args")), _opt_str(call.get("id"))
                )
            )
        response = part.get("functionResponse") or part.get("function_response")
        if isinstance(response, dict):
            events.append(
                ToolResultEvent(
                    _name(response.get("name")),
                    response.get("response"),
                    _opt_str(response.get("id")),
                )
            )
    actions = obj.get("actions")
    delta = (
        actions.get("stateDelta", actions.get("state_delta")) if isinstance(actions, dict) else None
    )
    if isinstance(delta, dict) and delta:
        events.append(StateDeltaEvent(delta))
    code = obj.get("errorCode", obj.get("error_code"))
    message = obj.get("errorMessage", obj.get("error_message"))
    if code or message:
        events.append(ErrorEvent(_error_text(message or code), _opt_str(code)))
    return events


def decode_sse(event: str, data: str) -> list[StreamEvent]:
    """Turn one SSE event (its `event` name and `data`) into stream events."""
    if event == "heartbeat" or event == "ping":
        return [HEARTBEAT]
    if not data.strip():
        return [HEARTBEAT]
    try:
        obj = json.loads(data)
    except ValueError:
        return [UnknownEvent(data[:_RAW_LIMIT])]
    if not isinstance(obj, dict):
        return [UnknownEvent(data[:_RAW_LIMIT])]
    if isinstance(obj.get("type"), str):
        return _typed(obj)
    if "error" in obj and "content" not in obj:
        return [ErrorEvent(_error_text(obj["error"]), _opt_str(obj.get("code")))]
    events = _adk(obj)
    if not events and not ("content" in obj or "actions" in obj or "invocationId" in obj):
        return [UnknownEvent(data[:_RAW_LIMIT])]
    return events


class ReplyAssembler:
    """Joins the agent's text so nothing is shown twice.

    ADK streams a message as `partial` chunks and then one final event that
    repeats the whole text; the final replaces the chunks. Chunks that are
    cumulative (each repeating the ones before) are handled too, as is a stream
    that ends with chunks and no final event.
    """

    def __init__(self) -> None:
        self._messages: list[str] = []
        self._pending = ""

    def add(self, event: TextEvent) -> None:
        if event.partial:
            if self._pending and event.text.startswith(self._pending):
                self._pending = event.text
            else:
                self._pending += event.text
            return
        self._pending = ""
        if not self._messages or self._messages[-1] != event.text:
            self._messages.append(event.text)

    @property
    def messages(self) -> list[str]:
        pending = [self._pending] if self._pending.strip() else []
        return [m for m in self._messages if m.strip()] + pending

    @property
    def text(self) -> str:
        return "\n\n".join(m.strip() for m in self.messages)
