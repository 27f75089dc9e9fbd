"""Reading answers under a size cap: no answer is held whole before its size is known.

A gateway gone wrong can send hundreds of megabytes where a few hundred bytes
were expected. Every JSON answer, refusal and error page is read as a stream
and counted as it comes; past its cap the connection is closed and the call
fails with `AnswerTooLargeError`. Downloads and uploads are streamed to and
from disk elsewhere and are not capped here.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, cast

import httpx

from nemo_mcp.backend.envelope import make_error, parse_retry_after, read_envelope
from nemo_mcp.errors import AnswerTooLargeError

KIB = 1024
MIB = 1024 * KIB
#: The largest answer read: the state, with its draft, is the largest the contract has.
ANSWER_LIMIT = 4 * MIB
#: Answers of a few fields (credits, render status): far below this.
SMALL_ANSWER_LIMIT = 64 * KIB


def size_words(size: int) -> str:
    """`4194304` -> "4 MiB", `65536` -> "64 KiB"."""
    if size >= MIB:
        return f"{round(size / MIB, 1):g} MiB"
    if size >= KIB:
        return f"{round(size / KIB, 1):g} KiB"
    return f"{size} bytes"


def _declared(response: httpx.Response) -> int | None:
    """The Content-Length, when it counts the bytes we will read (no content coding)."""
    coded = response.headers.get("content-encoding", "identity").replace("identity", "")
    if coded.replace(",", "").strip():
        return None
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def too_large(response: httpx.Response, limit: int, what: str) -> AnswerTooLargeError:
    host = response.url.netloc.decode("ascii", "replace") or "the backend"
    return AnswerTooLargeError(
        f"NemoVideo at {host} sent an answer of more than {size_words(limit)} ({what}); it was "
        "dropped unread. That is usually a gateway or proxy failing: check NEMO_API_URL, then "
        "try again in a minute.",
        http_status=response.status_code,
    )


#: The content codings this client accepts (`Accept-Encoding`); each is decoded by
#: `decoded_chunks` a bounded step at a time.
ACCEPTED_ENCODINGS = "gzip, deflate"
#: The most one decoding step may produce.
STEP = 64 * KIB


#: A zlib header is two bytes; a wrong one is refused within them.
_HEADER_BYTES = 2


class _Inflater:
    """gzip or deflate decoded piece by piece, never more than `room` bytes a step.

    httpx decodes each network read whole, so 64 KiB of a compression bomb can become
    64 MB in one step before anything counts it; here each step is bounded instead."""

    def __init__(self, encoding: str) -> None:
        self._deflate = encoding == "deflate"
        self._head = b""  # the first bytes, kept until a zlib header is past doubt
        # 32 + MAX_WBITS reads a zlib or a gzip header; plain deflate is retried raw.
        self._inflate = zlib.decompressobj(32 + zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> bytes:
        try:
            out = self._inflate.decompress(data, room)
        except zlib.error:
            if not self._deflate or len(self._head) >= _HEADER_BYTES:
                raise
            self._deflate = False  # "deflate" sent without its zlib header: read it raw
            self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._inflate.decompress(self._head + data, room)
        if self._deflate and len(self._head) < _HEADER_BYTES:
            self._head += data[: _HEADER_BYTES - len(self._head)]
        return out

    @property
    def pending(self) -> bytes:
        return self._inflate.unconsumed_tail


#: Codings stacked on one answer: a gateway may add one to the backend's; more is refused.
MAX_CODINGS = 2


def refused_coding(response: httpx.Response, encoding: str) -> AnswerTooLargeError:
    """The refusal of an answer in a coding never asked for, or stacked past `MAX_CODINGS`."""
    host = response.url.netloc.decode("ascii", "replace") or "the backend"
    return AnswerTooLargeError(
        f"NemoVideo at {host} sent an answer coded `{encoding}`, which was never asked for "
        f"(only {ACCEPTED_ENCODINGS}, at most {MAX_CODINGS} deep); it was dropped unread. That "
        "is usually a gateway or proxy failing: check NEMO_API_URL, then try again in a minute.",
        http_status=response.status_code,
    )


def codings(response: httpx.Response) -> list[str]:
    """The answer's content codings, outermost first (the order they are undone in);
    `AnswerTooLargeError` for one never asked for, or too many."""
    header = response.headers.get("content-encoding", "")
    listed = [c.strip().lower() for c in header.split(",") if c.strip()]
    used = [c for c in listed if c != "identity"]
    if len(used) > MAX_CODINGS or any(c not in ("gzip", "x-gzip", "deflate") for c in used):
        raise refused_coding(response, header.strip())
    return used[::-1]


async def _undone(
    pieces: AsyncGenerator[bytes, None], encoding: str, step: int, response: httpx.Response
) -> AsyncGenerator[bytes, None]:
    """One coding undone over `pieces`, never more than `step` bytes a step."""
    inflater = _Inflater(encoding)
    async with aclosing(pieces):
        async for chunk in pieces:
            data = chunk
            while data:
                try:
                    piece = inflater.feed(data, step)
                except zlib.error as err:
                    raise httpx.DecodingError(
                        f"the answer's {encoding} coding is damaged", request=response.request
                    ) from err
                if piece:
                    yield piece
                data = inflater.pending


async def decoded_chunks(response: httpx.Response, step: int = STEP) -> AsyncGenerator[bytes, None]:
    """The body of a streamed `response`, decoded, in pieces of at most `step` bytes
    (identity bodies as the network reads them, at most 64 KiB each).

    Each coding (stacked ones too, `gzip, gzip`) is undone a bounded step at a time, the
    next one reading the previous one's bounded pieces; httpx decodes nothing. A coding
    never asked for (`br`, `zstd`) is refused before a byte is read (`codings`)."""
    chain = codings(response)
    # Without a coding, httpx decodes nothing either (and an answer already read in
    # memory, as a test transport makes, is only there).
    body = response.aiter_raw() if chain else response.aiter_bytes()
    pieces = cast(AsyncGenerator[bytes, None], body)
    for encoding in chain:
        pieces = _undone(pieces, encoding, step, response)
    async with aclosing(pieces):
        async for piece in pieces:
            yield piece


async def read_limited(response: httpx.Response, *, limit: int, what: str) -> bytes:
    """The whole body of a streamed `response`, at most `limit` bytes once decoded.

    Past `limit` (or when Content-Length announces more) the response is closed,
    which drops its connection, and `AnswerTooLargeError` is raised. A
    Content-Length that understates the body changes nothing: bytes are counted,
    decoded, as they come.
    """
    declared = _declared(response)
    if declared is not None and declared > limit:
        await response.aclose()
        raise too_large(response, limit, what)
    buffer = bytearray()
    chunks = decoded_chunks(response)
    async with aclosing(chunks):
        async for chunk in chunks:
            if len(buffer) + len(chunk) > limit:
                del buffer
                await response.aclose()
                raise too_large(response, limit, what)
            buffer += chunk
    return bytes(buffer)


async def read_answer(response: httpx.Response, *, limit: int, what: str) -> Any:
    """The `data` of a streamed JSON answer read under `limit`; the mapped error otherwise.

    An error answer too large to read still fails as its HTTP status says (a 429
    stays a rate limit, a 503 a server error); a success too large to read is an
    `AnswerTooLargeError`.
    """
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    request_id = response.headers.get("x-request-id")
    try:
        body = await read_limited(response, limit=limit, what=what)
    except AnswerTooLargeError as err:
        if response.is_success:
            raise
        raise make_error(
            code=None,
            http_status=response.status_code,
            message=f"an error page of more than {size_words(limit)} ({what})",
            request_id=request_id,
            retry_after=retry_after,
        ) from err
    return read_envelope(response.status_code, body, request_id=request_id, retry_after=retry_after)


__all__ = [
    "ACCEPTED_ENCODINGS",
    "ANSWER_LIMIT",
    "MAX_CODINGS",
    "SMALL_ANSWER_LIMIT",
    "codings",
    "decoded_chunks",
    "read_answer",
    "read_limited",
    "size_words",
    "too_large",
]
