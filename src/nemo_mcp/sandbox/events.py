"""What the scripted agent says, and how each SSE variant puts it on the wire.

The agent emits `Say`, `Think`, `Call` and `Result` values; `encode` turns
one into SSE frames in the configured style: ADK events (whole, or text as
`partial` chunks followed by the full text), or the older typed frames.
`heartbeat_frame` makes the gateway's keep-alives in each documented form.
"""

from __future__ import annotations

import copy
import secrets
import string
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from nemo_mcp.sandbox.protocol import dumps

AUTHOR = "nemo_agent"
_ID_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Say:
    """Text for the user."""

    text: str


@dataclass(frozen=True)
class Think:
    """A thought part (shown by ADK clients as reasoning, not as the answer)."""

    text: str


@dataclass(frozen=True)
class Call:
    """One model turn calling tools: (call id, name, args) each."""

    calls: tuple[tuple[str, str, dict[str, Any]], ...]


@dataclass(frozen=True)
class Result:
    """The tools' answers, with the state they changed."""

    results: tuple[tuple[str, str, dict[str, Any]], ...]
    state_delta: dict[str, Any] = field(default_factory=dict)


AgentEvent = Say | Think | Call | Result


def call_id() -> str:
    return f"adk-{uuid.uuid4()}"


def invocation_id() -> str:
    return f"e-{uuid.uuid4()}"


def _event_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def frame(obj: Any) -> bytes:
    """One SSE frame: `data: <one-line JSON>` and a blank line."""
    return b"data: " + dumps(obj) + b"\n\n"


def adk_event(
    invocation: str,
    parts: list[dict[str, Any]],
    *,
    role: str = "model",
    state_delta: dict[str, Any] | None = None,
    partial: bool = False,
) -> dict[str, Any]:
    """An ADK event as the ADK web server serialises it (camelCase, no null fields)."""
    event: dict[str, Any] = {
        "content": {"parts": parts, "role": role},
        "invocationId": invocation,
        "author": AUTHOR,
        "actions": {
            "stateDelta": copy.deepcopy(state_delta or {}),
            "artifactDelta": {},
            "requestedAuthConfigs": {},
        },
        "id": _event_id(),
        "timestamp": round(time.time(), 6),
    }
    if partial:
        event["partial"] = True
    return event


def _chunks(text: str, words: int = 4) -> list[str]:
    """Split text into streaming pieces of a few words that join back exactly."""
    pieces = text.split(" ")
    return [
        " ".join(pieces[i : i + words]) + (" " if i + words < len(pieces) else "")
        for i in range(0, len(pieces), words)
    ]


def encode(event: AgentEvent, style: str, invocation: str) -> list[bytes]:
    """The frames for one agent event in SSE `style` ("adk", "adk_partial", "typed")."""
    if style == "typed":
        return [frame(obj) for obj in _typed(event)]
    if isinstance(event, Say):
        frames = []
        if style == "adk_partial":
            frames = [
                frame(adk_event(invocation, [{"text": piece}], partial=True))
                for piece in _chunks(event.text)
            ]
        return [*frames, frame(adk_event(invocation, [{"text": event.text}]))]
    if isinstance(event, Think):
        return [frame(adk_event(invocation, [{"text": event.text, "thought": True}]))]
    if isinstance(event, Call):
        parts = [{"functionCall": {"id": i, "name": n, "args": a}} for i, n, a in event.calls]
        return [frame(adk_event(invocation, parts))]
    parts = [{"functionResponse": {"id": i, "name": n, "response": r}} for i, n, r in event.results]
    return [frame(adk_event(invocation, parts, role="user", state_delta=event.state_delta))]


def _typed(event: AgentEvent) -> list[dict[str, Any]]:
    if isinstance(event, Say):
        return [{"type": "text", "content": event.text}]
    if isinstance(event, Think):
        return []  # the typed protocol has no reasoning frames
    if isinstance(event, Call):
        return [{"type": "tool_call", "name": n, "args": a} for _, n, a in event.calls]
    return [{"type": "tool_result", "name": n, "result": r} for _, n, r in event.results]


HEARTBEAT_FORMS = ("comment", "empty_data", "event")


def heartbeat_frame(form: str, count: int, style: str) -> bytes:
    """The `count`-th keep-alive in `form` ("mixed" rotates through all three)."""
    if style == "typed":
        return frame({"type": "heartbeat"})
    if form == "mixed":
        form = HEARTBEAT_FORMS[count % len(HEARTBEAT_FORMS)]
    if form == "comment":
        return b": ping\n\n"
    if form == "empty_data":
        return b"data: \n\n"
    return b"event: heartbeat\ndata: \n\n"


__all__ = [
    "AgentEvent",
    "Call",
    "Result",
    "Say",
    "Think",
    "adk_event",
    "call_id",
    "encode",
    "frame",
    "heartbeat_frame",
    "invocation_id",
]
