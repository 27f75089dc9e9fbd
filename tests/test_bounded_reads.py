"""Answers and events read under a size cap: `body.read_limited`, `read_answer`, `sse.EventReader`.

The network is faked at the transport (`httpx.MockTransport`) with bodies made
while they are read, so each test also sees how much of a body was pulled.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from nemo_mcp.backend.body import (
    ANSWER_LIMIT,
    SMALL_ANSWER_LIMIT,
    read_answer,
    read_limited,
    size_words,
)
from nemo_mcp.backend.sse import EventReader
from nemo_mcp.backend.stream import event_source
from nemo_mcp.errors import AnswerTooLargeError, RateLimitError, ServerError, StreamBrokenError

LIMIT = 1000


class Body(httpx.AsyncByteStream):
    """`total` bytes in `chunk`-sized pieces, made on demand; counts what was pulled."""

    def __init__(self, total: int, chunk: int = 100, fill: bytes = b"x") -> None:
        self.total, self.chunk, self.fill = total, chunk, fill
        self.pulled = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while self.pulled < self.total:
            size = min(self.chunk, self.total - self.pulled)
            self.pulled += size
            yield self.fill * size

    async def aclose(self) -> None:
        self.closed = True


async def read(
    body: httpx.AsyncByteStream,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    limit: int = LIMIT,
    answer: bool = False,
) -> tuple[Any, httpx.Response]:
    """Stream one response with `body` and read it under `limit`; (result, response)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers or {}, stream=body)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        http.stream("GET", "https://api.test/x") as response,
    ):
        reader = read_answer if answer else read_limited
        return await reader(response, limit=limit, what="reading the thing"), response


@pytest.mark.parametrize("size", [0, 1, LIMIT - 1, LIMIT])
@pytest.mark.parametrize("chunk", [1, 7, 100, LIMIT, LIMIT + 1])
async def test_up_to_the_cap_is_read_whole(size: int, chunk: int) -> None:
    body = Body(size, chunk)
    data, _ = await read(body)
    assert data == b"x" * size


@pytest.mark.parametrize("chunk", [1, 7, 100, LIMIT, LIMIT + 1, 64 * 1024])
async def test_one_byte_over_the_cap_is_refused_and_the_rest_never_pulled(chunk: int) -> None:
    body = Body(300 * 1_000_000, chunk)  # 300 MB, never made: the read stops at the cap

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=body)

    async with (
        httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
        http.stream("GET", "https://api.test/x") as response,
    ):
        with pytest.raises(AnswerTooLargeError) as caught:
            await read_limited(response, limit=LIMIT, what="reading the thing")
        # Dropped at once, not drained, and not left open until the caller lets go of it.
        assert response.is_closed and body.closed
    assert body.pulled <= LIMIT + chunk
    message = str(caught.value)
    assert "NemoVideo at api.test sent an answer of more than 1000 bytes" in message
    assert "(reading the thing)" in message and "NEMO_API_URL" in message
    assert isinstance(caught.value, ServerError)
    assert caught.value.http_status == 200


async def test_exact_cap_without_content_length_then_one_more_byte() -> None:
    assert (await read(Body(LIMIT, 333)))[0] == b"x" * LIMIT
    with pytest.raises(AnswerTooLargeError):
        await read(Body(LIMIT + 1, 333))


async def test_content_length_over_the_cap_is_refused_before_reading() -> None:
    body = Body(LIMIT + 1)
    with pytest.raises(AnswerTooLargeError):
        await read(body, headers={"content-length": str(LIMIT + 1)})
    assert body.pulled == 0


async def test_content_length_at_the_cap_is_read() -> None:
    data, _ = await read(Body(LIMIT), headers={"content-length": str(LIMIT)})
    assert len(data) == LIMIT


@pytest.mark.parametrize("claimed", ["10", "0", str(LIMIT), "not a number", "-5"])
async def test_a_lying_content_length_changes_nothing(claimed: str) -> None:
    body = Body(50 * LIMIT)
    with pytest.raises(AnswerTooLargeError):
        await read(body, headers={"content-length": claimed})
    assert body.pulled <= LIMIT + body.chunk


async def test_the_cap_counts_decoded_bytes() -> None:
    packed = gzip.compress(b"x" * (20 * LIMIT))  # a few dozen bytes on the wire
    assert len(packed) < LIMIT

    class Packed(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield packed

    with pytest.raises(AnswerTooLargeError):
        await read(
            Packed(), headers={"content-encoding": "gzip", "content-length": str(len(packed))}
        )


def envelope(data: Any) -> bytes:
    return json.dumps({"code": 0, "message": "success", "data": data}).encode()


class Fixed(httpx.AsyncByteStream):
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


async def test_read_answer_returns_data_and_closes() -> None:
    data, response = await read(Fixed(envelope({"available": 5})), answer=True)
    assert data == {"available": 5}
    assert response.is_closed


async def test_read_answer_too_large_success_is_answer_too_large() -> None:
    with pytest.raises(AnswerTooLargeError):
        await read(Body(LIMIT + 1), answer=True)


async def test_an_error_page_too_large_still_fails_as_its_status_says() -> None:
    with pytest.raises(RateLimitError) as limited:
        await read(Body(10 * LIMIT), status=429, headers={"retry-after": "7"}, answer=True)
    assert limited.value.retry_after == 7.0
    with pytest.raises(ServerError) as page:
        await read(Body(10 * LIMIT), status=503, answer=True)
    assert not isinstance(page.value, AnswerTooLargeError)
    assert page.value.http_status == 503
    assert "error page of more than 1000 bytes" in page.value.message


def test_size_words() -> None:
    assert size_words(ANSWER_LIMIT) == "4 MiB"
    assert size_words(SMALL_ANSWER_LIMIT) == "64 KiB"
    assert size_words(1536 * 1024) == "1.5 MiB"
    assert size_words(999) == "999 bytes"


# -- events ----------------------------------------------------------------------------------

FRAMES = (
    b": ping\r\n\r\n"
    b'data: {"type":"text","content":"caf\xc3\xa9"}\n\n'
    b"event: heartbeat\rdata:\r\r"
    b"id: 7\ndata: one\ndata: two\n\n"
    b"retry: 100\n\n"
)
EXPECTED = [
    ("message", '{"type":"text","content":"café"}', ""),
    ("heartbeat", "", ""),
    ("message", "one\ntwo", "7"),
    ("message", "", "7"),
]


def events_of(chunks: list[bytes], limit: int = ANSWER_LIMIT) -> list[tuple[str, str, str]]:
    reader = EventReader(limit)
    seen = [sse for chunk in chunks for sse in reader.feed(chunk)] + reader.close()
    return [(sse.event, sse.data, sse.id) for sse in seen]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 11, len(FRAMES)])
def test_events_survive_any_chunking(size: int) -> None:
    chunks = [FRAMES[i : i + size] for i in range(0, len(FRAMES), size)]
    assert events_of(chunks) == EXPECTED


def test_every_two_way_split() -> None:
    for cut in range(1, len(FRAMES)):
        assert events_of([FRAMES[:cut], FRAMES[cut:]]) == EXPECTED, cut


def test_an_unfinished_event_at_the_end_is_dropped_and_a_last_cr_ends_a_line() -> None:
    assert events_of([b"data: cut off"]) == []
    assert events_of([b"data: x\r\n\r"]) == [("message", "x", "")]


def test_pending_tells_an_event_begun_from_one_done() -> None:
    reader = EventReader()
    assert not reader.pending
    reader.feed(b"data: {")
    assert reader.pending
    assert reader.feed(b"}\n") == [] and reader.pending
    assert [sse.data for sse in reader.feed(b"\n")] == ["{}"]
    assert not reader.pending
    reader.feed(b": ping\n\n")
    assert not reader.pending


@pytest.mark.parametrize("chunk", [1, 9, 64, 1000])
def test_a_line_at_the_cap_is_read_and_one_over_it_is_refused(chunk: int) -> None:
    limit = 100
    line = b"data: " + b"y" * (limit - 6)  # exactly `limit` characters
    stream = line + b"\n\n"
    assert events_of([stream[i : i + chunk] for i in range(0, len(stream), chunk)], limit) == [
        ("message", "y" * (limit - 6), "")
    ]
    longer = b"data: " + b"y" * (limit - 5)
    with pytest.raises(StreamBrokenError, match="a line of more than 100 bytes"):
        events_of([longer[i : i + chunk] for i in range(0, len(longer), chunk)], limit)


def test_an_event_of_many_short_lines_is_capped_too() -> None:
    with pytest.raises(StreamBrokenError, match="an event of more than 100 bytes"):
        events_of([b"data: 123456789\n" * 11], 100)


def test_a_line_is_refused_before_its_end_arrives() -> None:
    reader = EventReader(100)
    reader.feed(b"data: " + b"z" * 90)
    with pytest.raises(StreamBrokenError):
        reader.feed(b"z" * 10)  # no newline yet: refused as soon as it is too long


async def test_a_stream_of_300_mb_without_a_newline_is_never_held() -> None:
    body = Body(300 * 1_000_000, 64 * 1024, fill=b"d")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=body)

    tracemalloc.start()
    try:
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
            http.stream("POST", "https://api.test/run_sse") as response,
        ):
            with pytest.raises(StreamBrokenError, match="more than 4 MiB"):
                async for _ in event_source(response).aiter_sse():
                    pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert body.pulled <= ANSWER_LIMIT + 64 * 1024
    assert peak < 24 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_events_cut_at_every_point_of_a_real_frame_pair() -> None:
    frame = b'data: {"content":{"parts":[{"text":"h\xc3\xa9llo"}],"role":"model"}}\n\n'
    both = frame + frame
    for a, b in itertools.combinations(range(1, len(both)), 2):
        got = events_of([both[:a], both[a:b], both[b:]])
        assert len(got) == 2 and got[0] == got[1], (a, b)


# Compressed answers ----------------------------------------------------------------------------
BOMB = 256 * 1024 * 1024  # decoded size: 256 MiB of zeros in about 250 KiB of gzip


class Pieces(httpx.AsyncByteStream):
    """Fixed bytes sent in `size`-byte pieces; counts what was pulled."""

    def __init__(self, data: bytes, size: int = 64 * 1024) -> None:
        self.data, self.size, self.pulled = data, size, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self.size):
            self.pulled += len(self.data[start : start + self.size])
            yield self.data[start : start + self.size]


def bomb() -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(BOMB // len(block))) + packer.flush()


async def peak_of(reading: Awaitable[Any]) -> int:
    tracemalloc.start()
    try:
        with contextlib.suppress(AnswerTooLargeError, StreamBrokenError):
            await reading
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


async def test_a_compression_bomb_never_expands_past_the_cap() -> None:
    # httpx decodes each network read whole: one 64 KiB read of this body is 64 MiB.
    packed = bomb()
    body = Pieces(packed)
    peak = await peak_of(read(body, headers={"content-encoding": "gzip"}, limit=ANSWER_LIMIT))
    assert peak < 3 * ANSWER_LIMIT, f"peak {peak / 2**20:.1f} MiB"
    assert body.pulled < len(packed) // 2  # stopped soon after the cap, not at the end


async def test_a_compressed_event_stream_is_capped_as_it_expands() -> None:
    body = Pieces(bomb())

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"content-type": "text/event-stream", "content-encoding": "gzip"}
        return httpx.Response(200, headers=headers, stream=body)

    async def consume() -> None:
        async with (
            httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http,
            http.stream("POST", "https://api.test/run_sse") as response,
        ):
            async for _ in event_source(response).aiter_sse():
                pass

    with pytest.raises(StreamBrokenError, match="more than 4 MiB"):
        await consume()
    body = Pieces(bomb())
    assert await peak_of(consume()) < 3 * ANSWER_LIMIT


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # as the standard says: zlib-wrapped
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # as some servers send it: raw
    ],
)
@pytest.mark.parametrize("piece", [1, 7, 4096])
async def test_compressed_answers_read_whole(
    encoding: str, pack: Callable[[bytes], bytes], piece: int
) -> None:
    answer = json.dumps({"code": 0, "data": {"draft": list(range(500))}}).encode()
    got, _ = await read(
        Pieces(pack(answer), piece), headers={"content-encoding": encoding}, limit=len(answer)
    )
    assert got == answer


async def test_a_damaged_compressed_answer_is_a_decoding_error() -> None:
    with pytest.raises(httpx.DecodingError, match="gzip coding is damaged"):
        await read(Pieces(b"\x1f\x8b\x08\x00not gzip at all"), headers={"content-encoding": "gzip"})


def gzip_of(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=9)


def stacked_bomb() -> bytes:
    """`gzip, gzip`: a gzip bomb gzipped again, a few KiB on the wire."""
    return gzip_of(bomb())


async def test_stacked_codings_are_each_undone_under_the_same_bound() -> None:
    packed = stacked_bomb()
    assert len(packed) < 100_000
    body = Pieces(packed)
    headers = {"content-encoding": "gzip, gzip"}
    with pytest.raises(AnswerTooLargeError, match="more than 4 MiB"):
        await read(body, headers=headers, limit=ANSWER_LIMIT)
    peak = await peak_of(read(Pieces(packed), headers=headers, limit=ANSWER_LIMIT))
    assert peak < 3 * ANSWER_LIMIT, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("encoding", ["gzip, gzip", "deflate,gzip", "gzip, identity, deflate"])
async def test_stacked_codings_read_whole(encoding: str) -> None:
    answer = json.dumps({"code": 0, "data": {"draft": list(range(500))}}).encode()
    packed = answer
    for coding in [c.strip() for c in encoding.split(",")]:
        packed = {"gzip": gzip_of, "deflate": zlib.compress, "identity": bytes}[coding](packed)
    got, _ = await read(
        Pieces(packed, 5), headers={"content-encoding": encoding}, limit=len(answer)
    )
    assert got == answer


@pytest.mark.parametrize("encoding", ["br", "zstd", "br, gzip", "gzip, gzip, gzip", "compress"])
async def test_codings_never_asked_for_are_refused_in_one_sentence_naming_the_host(
    encoding: str,
) -> None:
    body = Pieces(gzip_of(b"{}"))
    with pytest.raises(AnswerTooLargeError) as caught:
        await read(body, headers={"content-encoding": encoding}, limit=ANSWER_LIMIT)
    message = caught.value.message
    assert message.startswith("NemoVideo at api.test sent an answer coded")
    assert "never asked for" in message and "Traceback" not in message
    assert body.pulled == 0  # refused before a byte was read
