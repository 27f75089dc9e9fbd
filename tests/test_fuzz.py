"""Hostile input from the backend: arbitrary bytes, frames, envelopes, statuses and drafts.

Each reader promises something about any input: the SSE decoder and the
draft model never raise, the envelope reader and the client raise only
`NemoError`s, the render status parser always gives a known phase and a
progress in [0, 1]. Hypothesis checks the promises with modest example counts.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.envelope import parse_retry_after, read_envelope
from nemo_mcp.backend.events import (
    ErrorEvent,
    HeartbeatEvent,
    OpenedEvent,
    ReplyAssembler,
    StateDeltaEvent,
    TextEvent,
    ThoughtEvent,
    ToolCallEvent,
    ToolResultEvent,
    UnknownEvent,
    decode_sse,
)
from nemo_mcp.backend.models import normalize_progress, parse_render_status
from nemo_mcp.backend.stream import StreamLimits, event_source, send_message
from nemo_mcp.errors import NemoError
from nemo_mcp.identity import load_identity
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore
from nemo_mcp.timeline import describe, diff, parse_draft, summarize, view

from mcp_harness import connect, make_settings, text_of

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EVENT_TYPES = (
    ErrorEvent,
    HeartbeatEvent,
    StateDeltaEvent,
    TextEvent,
    ThoughtEvent,
    ToolCallEvent,
    ToolResultEvent,
    UnknownEvent,
)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=25,
)


def keyed(keys: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects over the format's own keys (plus a stray one), so the readers go deep."""
    return st.dictionaries(st.sampled_from([*keys, "x"]), values, max_size=len(keys))


# SSE -----------------------------------------------------------------------------------
adk_frames = st.builds(
    json.dumps,
    keyed(
        [
            "content",
            "partial",
            "author",
            "errorCode",
            "errorMessage",
            "actions",
            "invocationId",
            "type",
            "error",
        ],
        json_values
        | keyed(
            ["parts", "role"],
            st.lists(
                keyed(["text", "functionCall", "functionResponse", "thought"], json_values),
                max_size=3,
            ),
        )
        | keyed(["stateDelta"], keyed(["draft"], json_values)),
    ),
)
sse_data = st.text(max_size=200) | adk_frames


@FUZZ
@given(
    event=st.sampled_from(["", "message", "heartbeat", "ping", "error", "x"])
    | st.text(max_size=10),
    data=sse_data,
)
def test_decode_sse_never_raises(event: str, data: str) -> None:
    events = decode_sse(event, data)
    assert all(isinstance(e, EVENT_TYPES) for e in events)
    assembler = ReplyAssembler()
    texts = [item for item in events if isinstance(item, TextEvent)]
    for item in texts:
        assembler.add(item)
    # Whatever the frame, the reply holds only text the events carried...
    for message in assembler.messages:
        assert any(message.strip() in t.text for t in texts)
    # ...and, without partial chunks, each final text once (a repeat in a row is shown once).
    if all(not t.partial for t in texts):
        once = [t.text for n, t in enumerate(texts) if n == 0 or texts[n - 1].text != t.text]
        assert assembler.messages == [m for m in once if m.strip()]
    if not texts:
        assert assembler.text == ""


def _chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in pairwise(points) if b > a]


class _Chunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        for chunk in self.chunks:
            yield chunk


async def _read_stream(chunks: list[bytes]) -> list[tuple[str, str]]:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, stream=_Chunks(chunks)
        )

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http,
        http.stream("GET", "http://backend.test/run_sse") as response,
    ):
        return [(sse.event, sse.data) async for sse in event_source(response).aiter_sse()]


frame_bytes = st.lists(
    st.builds(lambda d: f"data: {d}\n\n".encode(), adk_frames)
    | st.sampled_from(
        [
            b": keep-alive\n\n",
            b"event: heartbeat\ndata:\n\n",
            b"data:\n\n",
            b"\r\n",
            b"\xff\xfe",
            b"data: \xe2\x82",
        ]
    )
    | st.binary(max_size=40),
    max_size=8,
).map(b"".join)


@FUZZ
@given(body=frame_bytes, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_sse_bytes_decode_the_same_however_they_are_split(body: bytes, cuts: list[int]) -> None:
    whole = anyio.run(_read_stream, [body] if body else [])
    split = anyio.run(_read_stream, _chunked(body, cuts))
    assert split == whole
    for event, data in split:
        assert all(isinstance(e, EVENT_TYPES) for e in decode_sse(event, data))


# the client over hostile answers ----------------------------------------------------------
def _client(home: Path, answer: Any) -> NemoClient:
    config = Settings(
        api_url="http://backend.test",
        web_url="https://web.test",
        token=SecretStr("fuzz-token-123456"),
        home=home,
        output_dir=home / "out",
        upload_dirs=(home,),
    )
    store = StateStore(home, config.api_url)
    return NemoClient(
        config, load_identity(), store, transport=httpx.MockTransport(answer), sleep=_no_wait
    )


async def _no_wait(_seconds: float) -> None:
    return None  # retries are part of what is fuzzed, their waits are not


SESSION = {
    "code": 0,
    "message": "ok",
    "data": {"session_id": "1000000000000001", "task_id": "task_1"},
}


@FEW
@given(
    status=st.sampled_from([200, 200, 201, 400, 401, 404, 429, 500, 502]),
    content_type=st.sampled_from(
        ["text/event-stream", "text/event-stream; charset=latin-1", "application/json", "text/html"]
    ),
    body=frame_bytes,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6),
)
def test_send_message_raises_only_nemo_errors(
    status: int, content_type: str, body: bytes, cuts: list[int]
) -> None:
    calls = {"run_sse": 0}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/run_sse":
            calls["run_sse"] += 1
            return httpx.Response(
                status, headers={"content-type": content_type}, stream=_Chunks(_chunked(body, cuts))
            )
        return httpx.Response(200, json=SESSION)

    seen: list[Any] = []

    async def main(home: Path) -> None:
        async with _client(home, answer) as client:
            with contextlib.suppress(NemoError):
                await send_message(
                    client, "hello", seen.append, limits=StreamLimits(total=5, idle=5, read=5)
                )

    with tempfile.TemporaryDirectory() as home:
        anyio.run(main, Path(home))
    # The stream's opening, once and first, then only decoded events.
    opened = [e for e in seen if isinstance(e, OpenedEvent)]
    assert seen[: len(opened)] == opened and len(opened) <= 1
    assert all(isinstance(e, EVENT_TYPES) for e in seen[len(opened) :])
    assert calls["run_sse"] <= 2  # at most one retry, and only for a refusal before the stream


bodies = (
    st.binary(max_size=200)
    | st.builds(lambda v: json.dumps(v).encode(), json_values)
    | st.builds(
        lambda v: json.dumps(v).encode(),
        keyed(
            ["code", "message", "msg", "data", "success", "error", "detail"],
            json_values | st.integers(-5, 5000),
        ),
    )
)


@FUZZ
@given(
    status=st.integers(min_value=100, max_value=599),
    body=bodies,
    request_id=st.none() | st.text(max_size=10),
    retry_after=st.none() | st.text(max_size=8),
)
def test_read_envelope_raises_only_nemo_errors(
    status: int, body: bytes, request_id: str | None, retry_after: str | None
) -> None:
    seconds = parse_retry_after(retry_after)
    assert seconds is None or 0 <= seconds <= 30 * 24 * 3600
    try:
        read_envelope(status, body, request_id=request_id, retry_after=seconds)
    except NemoError as err:
        assert isinstance(err.message, str)
        assert len(err.message) < 1000


@pytest.mark.parametrize("call", ["credits", "state", "claim_link"])
@FEW
@given(status=st.sampled_from([200, 200, 404, 500]), body=bodies)
@example(status=200, body=b"true")  # a JSON answer that is not an object, every run
@example(status=200, body=b"")
def test_client_calls_raise_only_nemo_errors(call: str, status: int, body: bytes) -> None:
    """What the tools call: any answer is a model or a `NemoError`, never a raw exception."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/api/tasks/"):
            return httpx.Response(200, json=SESSION)
        return httpx.Response(status, content=body, headers={"content-type": "application/json"})

    async def main(home: Path) -> None:
        async with _client(home, answer) as client:
            with contextlib.suppress(NemoError):
                await getattr(client, call)()

    with tempfile.TemporaryDirectory() as home:
        anyio.run(main, Path(home))


# render status ------------------------------------------------------------------------------
status_bodies = json_values | keyed(
    [
        "status",
        "progress",
        "output",
        "url",
        "outputUrl",
        "error",
        "taskId",
        "id",
        "size",
        "duration",
        "data",
    ],
    json_values
    | st.sampled_from(["completed", "processing", "failed", "queued", "100", "1", "50%"])
    | st.floats()
    | keyed(["url", "size", "duration"], json_values),
)


@FUZZ
@given(body=status_bodies)
def test_render_status_parsing_is_total(body: Any) -> None:
    status = parse_render_status(body, render_id="render_1")
    assert status.status in ("pending", "processing", "completed", "failed", "cancelled", "unknown")
    assert 0.0 <= status.progress <= 1.0
    assert status.url is None or isinstance(status.url, str)
    assert isinstance(status.id, str) and status.id


@pytest.mark.parametrize(
    "text",
    ['{"status": "completed", "size": 1e999}', '{"status": "completed", "output": {"size": NaN}}'],
)
def test_render_status_with_non_finite_size(text: str) -> None:
    """JSON allows 1e999 and NaN; a size that is no finite number reads as unknown."""
    status = parse_render_status(json.loads(text), render_id="render_1")
    assert status.status == "completed" and status.size is None


@FUZZ
@given(value=json_values, status=st.sampled_from(["completed", "processing", "pending"]))
def test_progress_is_a_fraction(value: Any, status: str) -> None:
    assert 0.0 <= normalize_progress(value, status=status) <= 1.0


# drafts -----------------------------------------------------------------------------------
segments = keyed(
    ["s", "st", "start", "d", "duration", "e", "end", "m", "name", "text", "volume", "id"],
    json_values,
)
tracks = keyed(
    ["tt", "sg", "m", "name", "title", "volume", "id"],
    json_values | st.lists(segments | json_values, max_size=4),
)
drafts = json_values | keyed(
    ["t", "d", "m", "title"], json_values | st.lists(tracks | json_values, max_size=4)
)


@FUZZ
@given(before=drafts, after=drafts)
def test_draft_model_never_raises(before: Any, after: Any) -> None:
    old, new = parse_draft(before), parse_draft(after)
    for draft in (old, new):
        assert summarize(draft).startswith("Timeline (")
        described = describe(draft)
        shown = view(draft)
        json.dumps(shown.model_dump(mode="json"))
        # The three forms agree: one line per track after the header, the same count.
        assert shown.track_count == len(draft.tracks) == len(shown.tracks)
        assert described.count("\n") >= min(len(draft.tracks), 1) or not draft.tracks
    assert diff(old, old) == []
    assert all(isinstance(c.text, str) for c in diff(old, new))
    assert summarize(parse_draft(json.dumps(before))) == summarize(old) or isinstance(before, str)


@pytest.mark.parametrize("text", ["", "null", "[]", "{", "\x00", '{"t": 5}', "1e999"])
def test_draft_text_forms(text: str) -> None:
    assert summarize(parse_draft(text)).startswith("Timeline (")


# tool arguments ------------------------------------------------------------------------------
hostile_text = (
    st.text(max_size=40)
    | st.sampled_from(
        [
            "",
            " ",
            "..",
            "/",
            "/dev/zero",
            "/proc/self/environ",
            "~",
            "C:\\x.mp4",
            "file:///etc/passwd",
            "http://",
            "https://",
            "javascript:x",
            "\x00",
            "\n",
            "-",
            "%2e%2e/",
            "\\\\host\\share\\a.mp4",
        ]
    )
    | st.builds(
        lambda a, b: a + b,
        st.sampled_from(["/", "http://", "file://", "../", "~/"]),
        st.text(max_size=20),
    )
)
TOOL_CALLS = st.one_of(
    st.builds(lambda s: ("upload", {"sources": s}), st.lists(hostile_text, max_size=22)),
    st.builds(lambda s: ("upload", {"sources": s}), json_values),
    st.builds(
        lambda f, q, r: ("export", {"format": f, "quality": q, "fresh": r}),
        hostile_text,
        hostile_text,
        json_values,
    ),
    st.builds(
        lambda m, f: ("generate", {"message": m, "script_file": f}),
        st.text(max_size=30) | json_values,
        st.text(min_size=1, max_size=40) | hostile_text.filter(bool),
    ),
    st.builds(
        lambda a: ("credits", a), st.dictionaries(st.text(max_size=5), json_values, max_size=2)
    ),
)


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(call=TOOL_CALLS)
def test_hostile_tool_arguments_get_clear_answers(
    tmp_path: Path, sandbox: Any, call: tuple[str, Any]
) -> None:
    """Any arguments: an answer or a clear refusal, never a traceback, and the server lives on."""
    name, args = call
    before = sandbox.control.stats()["requests"]

    async def main() -> tuple[Any, Any]:
        async with connect(
            make_settings(tmp_path, sandbox.url), roots=[tmp_path / "uploads"]
        ) as session:
            result = await session.client.call_tool(name, args)
            after = await session.client.call_tool("credits", {})
            return result, after

    result, after = anyio.run(main)
    text = text_of(result)
    assert "Traceback" not in text and 'File "' not in text, text
    assert not after.is_error, text_of(after)
    now = sandbox.control.stats()["requests"]
    assert now.get("run_sse", 0) == before.get("run_sse", 0)  # no hostile call reaches the agent
    if name == "upload" and result.is_error:
        assert now.get("upload", 0) <= before.get("upload", 0) + 1
