"""Stream decoding: frames per second through the SSE path, and memory over a long heartbeat stream.

Throughput: N agent frames (ADK partial text chunks, then a final message) served by an
`httpx.MockTransport` as 16 KiB byte chunks, read four ways: httpx-sse's own reader alone (the
floor), the project's size-capped reader alone (`stream.event_source`), that reader +
`decode_sse` + `ReplyAssembler`, and the whole `send_message` through a MockTransport-backed
`NemoClient`. Memory: `send_message` over a heartbeat-only stream of
15 minutes at 4 heartbeats/s (3600 frames; mixed comment, named and empty-data forms),
tracemalloc peak compared with a stream a tenth as long: flat means the same peak.

    .venv/bin/python bench/bench_stream.py                 # 20000 frames, 3 runs
    .venv/bin/python bench/bench_stream.py --frames 50000 --runs 5
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
from httpx_sse import EventSource
from pydantic import SecretStr

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.events import ReplyAssembler, TextEvent, decode_sse
from nemo_mcp.backend.stream import event_source, send_message
from nemo_mcp.identity import load_identity
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, scratch, table

CHUNK = 16 * 1024
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8"}


def text_frames(count: int) -> list[bytes]:
    """`count` ADK frames: partial chunks of one reply, the last one final with the whole text."""
    frames = []
    words = []
    for i in range(count - 1):
        word = f"word{i} "
        words.append(word)
        body = {
            "author": "nemo_agent",
            "invocationId": "inv-1",
            "partial": True,
            "content": {"role": "model", "parts": [{"text": word}]},
        }
        frames.append(b"data: " + json.dumps(body).encode() + b"\n\n")
    final = {
        "author": "nemo_agent",
        "invocationId": "inv-1",
        "content": {"role": "model", "parts": [{"text": "".join(words)}]},
    }
    frames.append(b"data: " + json.dumps(final).encode() + b"\n\n")
    return frames


HEARTBEATS = (b": ping\n\n", b"event: heartbeat\ndata: {}\n\n", b"data: \n\n")


def heartbeat_frames(count: int) -> AsyncIterator[bytes]:
    """`count` heartbeats in rotating forms, made as they are sent (the source holds nothing)."""

    async def gen() -> AsyncIterator[bytes]:
        for i in range(count):
            yield HEARTBEATS[i % 3]

    return gen()


def chunked(frames: list[bytes]) -> Callable[[], AsyncIterator[bytes]]:
    blob = b"".join(frames)

    async def gen() -> AsyncIterator[bytes]:
        for start in range(0, len(blob), CHUNK):
            yield blob[start : start + CHUNK]

    return gen


def transport(body: Callable[[], AsyncIterator[bytes]]) -> httpx.MockTransport:
    """A backend: one session, and `/run_sse` answering with `body()`."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/run_sse":
            return httpx.Response(200, headers=SSE_HEADERS, content=body())
        if request.url.path.startswith("/api/tasks/"):
            return httpx.Response(
                200, json={"code": 0, "data": {"session_id": "1", "task_id": "t1"}}
            )
        return httpx.Response(404, json={"code": 404, "message": "not here"})

    return httpx.MockTransport(handler)


async def sse_only(body: Callable[[], AsyncIterator[bytes]], *, capped: bool) -> int:
    async with (
        httpx.AsyncClient(transport=transport(body), base_url="http://backend") as http,
        http.stream("POST", "/run_sse") as response,
    ):
        if capped:
            return sum([1 async for _ in event_source(response).aiter_sse()])
        response.encoding = "utf-8"
        return sum([1 async for _ in EventSource(response).aiter_sse()])


async def decoded(body: Callable[[], AsyncIterator[bytes]]) -> int:
    reply = ReplyAssembler()
    count = 0
    async with (
        httpx.AsyncClient(transport=transport(body), base_url="http://backend") as http,
        http.stream("POST", "/run_sse") as response,
    ):
        async for sse in event_source(response).aiter_sse():
            for event in decode_sse(sse.event, sse.data):
                count += 1
                if isinstance(event, TextEvent):
                    reply.add(event)
    assert reply.text, "no text assembled"
    return count


def client(body: Callable[[], AsyncIterator[bytes]], home: Path) -> NemoClient:
    settings = Settings(api_url="http://backend", token=SecretStr("bench-token"), home=home)
    return NemoClient(
        settings, load_identity(), StateStore(home, settings.api_url), transport=transport(body)
    )


async def whole(body: Callable[[], AsyncIterator[bytes]], home: Path) -> int:
    reply = ReplyAssembler()

    def on_event(event: Any) -> None:
        if isinstance(event, TextEvent):
            reply.add(event)

    async with client(body, home) as nemo:
        outcome = await send_message(nemo, "hello", on_event)
    return outcome.events


async def heartbeat_peak(count: int, home: Path) -> tuple[int, int]:
    """(events seen, tracemalloc peak bytes) for `send_message` over `count` heartbeats."""
    async with client(lambda: heartbeat_frames(count), home) as nemo:
        await nemo.session()
        gc.collect()
        tracemalloc.start()
        outcome = await send_message(nemo, "hello", lambda event: None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return outcome.events, peak


def run(frames: int, runs: int) -> str:
    body = chunked(text_frames(frames))
    rows = []
    with scratch() as home:
        paths: dict[str, Callable[[], Any]] = {
            "httpx-sse alone (floor)": lambda: sse_only(body, capped=False),
            "capped SSE reader alone": lambda: sse_only(body, capped=True),
            "capped SSE reader + decode_sse + ReplyAssembler": lambda: decoded(body),
            "send_message via NemoClient (MockTransport)": lambda: whole(body, home),
        }
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _i in range(runs):
            for name, go in paths.items():
                start = time.perf_counter()
                seen = anyio.run(go)
                times[name].append(time.perf_counter() - start)
                assert seen == frames, (name, seen)
        floor = frames / median(times["httpx-sse alone (floor)"])
        for name, values in times.items():
            rate = frames / median(values)
            rows.append((name, f"{rate:,.0f}", f"{rate / floor:.2f}"))
        long_events, long_peak = anyio.run(heartbeat_peak, 15 * 60 * 4, home)
        short_events, short_peak = anyio.run(heartbeat_peak, 15 * 6 * 4, home)
    growth = long_peak - short_peak
    flat = growth <= max(64 * 1024, short_peak // 2)
    return "\n".join(
        [
            f"{frames:,} frames, {CHUNK // 1024} KiB chunks, median of {runs} runs.",
            "",
            table(["path", "frames/s", "vs floor"], rows),
            "",
            table(
                ["heartbeat-only stream", "events", "tracemalloc peak KiB"],
                [
                    ("90 s (360 heartbeats)", short_events, f"{short_peak / 1024:.1f}"),
                    ("15 min (3600 heartbeats)", long_events, f"{long_peak / 1024:.1f}"),
                ],
            ),
            "",
            (
                f"Peak memory growth from 90 s to 15 min of heartbeats: {growth / 1024:+.1f} KiB "
                f"({'flat' if flat else 'NOT flat'})."
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(args.frames, args.runs))


if __name__ == "__main__":
    main()
