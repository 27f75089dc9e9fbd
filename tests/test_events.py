"""The stream decoder: every frame form, chunk boundaries anywhere, text never twice."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nemo_mcp.backend.events import (
    ErrorEvent,
    HeartbeatEvent,
    ReplyAssembler,
    StateDeltaEvent,
    TextEvent,
    ThoughtEvent,
    ToolCallEvent,
    ToolResultEvent,
    UnknownEvent,
    decode_sse,
    is_meaningful,
)
from nemo_mcp.backend.stream import event_source


def adk(parts: list[dict[str, object]], *, role: str = "model", **extra: object) -> str:
    event = {
        "content": {"parts": parts, "role": role},
        "invocationId": "e-1",
        "author": "nemo_agent",
        "actions": {"stateDelta": {}, "artifactDelta": {}, "requestedAuthConfigs": {}},
        "id": "ev1",
        "timestamp": 1750939268.2,
    }
    event.update(extra)
    return json.dumps(event)


@pytest.mark.parametrize(
    ("event", "data", "expected"),
    [
        ("", adk([{"text": "Hello"}]), [TextEvent("Hello", author="nemo_agent")]),
        (
            "",
            adk([{"text": "Hel"}], partial=True),
            [TextEvent("Hel", partial=True, author="nemo_agent")],
        ),
        ("", adk([{"text": "hmm", "thought": True}]), [ThoughtEvent("hmm")]),
        (
            "",
            adk(
                [{"functionCall": {"id": "c1", "name": "generate_video", "args": {"prompt": "x"}}}]
            ),
            [ToolCallEvent("generate_video", {"prompt": "x"}, "c1")],
        ),
        (
            "",
            adk(
                [
                    {
                        "functionResponse": {
                            "id": "c1",
                            "name": "generate_video",
                            "response": {"ok": 1},
                        }
                    }
                ],
                role="user",
            ),
            [ToolResultEvent("generate_video", {"ok": 1}, "c1")],
        ),
        (
            "",
            json.dumps({"content": None, "actions": {"stateDelta": {"draft": {"t": []}}}}),
            [StateDeltaEvent({"draft": {"t": []}})],
        ),
        (
            "",
            json.dumps(
                {"errorCode": "MODEL_ERROR", "errorMessage": "overloaded", "invocationId": "e"}
            ),
            [ErrorEvent("overloaded", "MODEL_ERROR")],
        ),
        ("", json.dumps({"type": "text", "content": "Hi"}), [TextEvent("Hi")]),
        (
            "",
            json.dumps({"type": "tool_call", "name": "add_bgm", "args": {"a": 1}}),
            [ToolCallEvent("add_bgm", {"a": 1})],
        ),
        (
            "",
            json.dumps({"type": "tool_result", "name": "add_bgm", "result": {"ok": True}}),
            [ToolResultEvent("add_bgm", {"ok": True})],
        ),
        ("", json.dumps({"type": "heartbeat"}), [HeartbeatEvent()]),
        (
            "",
            json.dumps({"error": "agent crashed", "code": 500}),
            [ErrorEvent("agent crashed", "500")],
        ),
        ("", json.dumps({"error": {"message": "bad"}}), [ErrorEvent("bad", None)]),
        ("heartbeat", "", [HeartbeatEvent()]),
        ("", "", [HeartbeatEvent()]),
        ("", "   ", [HeartbeatEvent()]),
        ("", "{not json", [UnknownEvent("{not json")]),
        ("", "[1,2]", [UnknownEvent("[1,2]")]),
        ("", json.dumps({"foo": 1}), [UnknownEvent('{"foo": 1}')]),
        ("", json.dumps({"type": "mystery"}), [UnknownEvent('{"type": "mystery"}')]),
    ],
)
def test_decode(event: str, data: str, expected: list[object]) -> None:
    assert decode_sse(event, data) == expected


def test_one_event_with_several_parts_and_a_delta() -> None:
    data = adk(
        [
            {"text": "Adding music"},
            {"functionCall": {"id": "c", "name": "add_bgm", "args": '{"v": 1}'}},
        ],
        actions={"stateDelta": {"draft": {"t": [1]}}},
    )
    assert decode_sse("", data) == [
        TextEvent("Adding music", author="nemo_agent"),
        ToolCallEvent("add_bgm", {"v": 1}, "c"),
        StateDeltaEvent({"draft": {"t": [1]}}),
    ]


def test_heartbeats_are_not_meaningful() -> None:
    assert not is_meaningful(HeartbeatEvent())
    assert not is_meaningful(UnknownEvent("x"))
    assert is_meaningful(ToolCallEvent("x"))


@given(st.text(), st.text(max_size=20))
def test_decode_never_raises_on_text(data: str, event: str) -> None:
    decode_sse(event, data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=30,
)
keys = st.sampled_from(
    [
        "content",
        "parts",
        "text",
        "partial",
        "functionCall",
        "functionResponse",
        "actions",
        "stateDelta",
        "errorCode",
        "errorMessage",
        "type",
        "error",
        "name",
        "args",
    ]
)


@given(st.dictionaries(keys, json_values, max_size=6))
def test_decode_never_raises_on_adk_like_json(obj: dict[str, object]) -> None:
    decode_sse("", json.dumps(obj))


# text assembly -----------------------------------------------------------------
def test_partial_chunks_then_final_show_once() -> None:
    reply = ReplyAssembler()
    for chunk in ("Your video ", "is ", "ready."):
        reply.add(TextEvent(chunk, partial=True))
    reply.add(TextEvent("Your video is ready."))
    assert reply.text == "Your video is ready."


def test_cumulative_partials() -> None:
    reply = ReplyAssembler()
    for chunk in ("Your", "Your video", "Your video is ready."):
        reply.add(TextEvent(chunk, partial=True))
    assert reply.text == "Your video is ready."


def test_partials_without_final_are_kept() -> None:
    reply = ReplyAssembler()
    reply.add(TextEvent("Raw clip ready."))
    reply.add(TextEvent("Adding ", partial=True))
    reply.add(TextEvent("music", partial=True))
    assert reply.messages == ["Raw clip ready.", "Adding music"]


def test_two_messages_in_one_stream() -> None:
    reply = ReplyAssembler()
    reply.add(TextEvent("Raw clip ready.", partial=True))
    reply.add(TextEvent("Raw clip ready."))
    reply.add(TextEvent("All done.", partial=True))
    reply.add(TextEvent("All done."))
    assert reply.text == "Raw clip ready.\n\nAll done."


# real bytes, split anywhere ---------------------------------------------------------
FRAMES = (
    b": ping\n\n"
    + b"data: "
    + adk([{"text": "Hel"}], partial=True).encode()
    + b"\n\n"
    + b"data:\n\n"
    + b"event: heartbeat\ndata:\n\n"
    + b"data: "
    + adk([{"text": "Hello 你好"}]).encode()
    + b"\r\n\r\n"
    + b"data: "
    + json.dumps({"type": "tool_call", "name": "add_bgm", "args": {}}).encode()
    + b"\n\n"
    + b"data: "
    + json.dumps({"error": "boom"}).encode()
    + b"\n\n"
)
EXPECTED = [
    TextEvent("Hel", partial=True, author="nemo_agent"),
    HeartbeatEvent(),
    HeartbeatEvent(),
    TextEvent("Hello 你好", author="nemo_agent"),
    ToolCallEvent("add_bgm", {}),
    ErrorEvent("boom", None),
]


async def decode_chunks(chunks: list[bytes]) -> list[object]:
    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    events: list[object] = []
    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client,
        client.stream("POST", "http://x/run_sse") as response,
    ):
        async for sse in event_source(response).aiter_sse():
            events.extend(decode_sse(sse.event, sse.data))
    return events


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64, len(FRAMES)])
async def test_fixed_chunk_sizes(size: int) -> None:
    chunks = [FRAMES[i : i + size] for i in range(0, len(FRAMES), size)]
    assert await decode_chunks(chunks) == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=len(FRAMES) - 1), max_size=12, unique=True))
def test_arbitrary_split_points(points: list[int]) -> None:
    import anyio

    cuts = [0, *sorted(points), len(FRAMES)]
    chunks = [FRAMES[a:b] for a, b in itertools.pairwise(cuts) if b > a]
    assert anyio.run(decode_chunks, chunks) == EXPECTED
