"""Deadlines: every call ends within its attempt and total deadlines, and a tool's inline
work within its budget, whatever the backend does; the retry policy holds inside them.

The backend is faked at the transport with handlers that never answer or drip; the
client's waits between retries are recorded, not slept, so the clock only runs while
a request is really out.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from nemo_mcp.backend.budget import time_bound, timeout_message
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.retry import Deadlines, stream_open_deadlines, transfer_deadlines
from nemo_mcp.backend.stream import StreamLimits, send_message
from nemo_mcp.errors import (
    BackendTimeoutError,
    RateLimitError,
    ServerError,
    StreamBrokenError,
)
from nemo_mcp.identity import load_identity
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

from fakes import API, FakeBackend, Sleeps, fail

CREDITS = "/api/credits/balance/simple"
Answer = Callable[[httpx.Request], Awaitable[httpx.Response]]


def client_with(
    tmp_path: Path, routes: dict[str, Answer], sleeps: Sleeps
) -> tuple[NemoClient, FakeBackend]:
    """A client on the fake backend, with `routes` answering their paths; every
    request is counted by the backend."""
    backend = FakeBackend()

    async def handle(request: httpx.Request) -> httpx.Response:
        answer = routes.get(request.url.path)
        if answer is None:
            return backend.handle(request)
        backend.requests.append(request)
        return await answer(request)

    settings = Settings(api_url=API, home=tmp_path / "home", output_dir=tmp_path / "out")
    client = NemoClient(
        settings,
        load_identity(),
        StateStore(settings.home, API),
        transport=httpx.MockTransport(handle),
        sleep=sleeps,
    )
    return client, backend


async def never(request: httpx.Request) -> httpx.Response:
    await anyio.sleep_forever()
    raise AssertionError("unreachable")


def dripping(head: bytes, content_type: str = "application/json") -> Answer:
    """Headers at once, then `head`, then one byte every 20 ms, forever."""

    async def answer(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield head
            while True:
                await anyio.sleep(0.02)
                yield b" "

        return httpx.Response(200, headers={"content-type": content_type}, content=body())

    return answer


async def timed(work: Awaitable[Any]) -> tuple[float, BaseException | None]:
    start = time.monotonic()
    try:
        await work
    except Exception as err:
        return time.monotonic() - start, err
    return time.monotonic() - start, None


async def test_a_read_that_never_answers_is_retried_then_ends(tmp_path: Path) -> None:
    sleeps = Sleeps()
    client, backend = client_with(tmp_path, {CREDITS: never}, sleeps)
    async with client:
        await client.token()
        took, err = await timed(
            client.request(
                "GET",
                CREDITS,
                idempotent=True,
                deadlines=Deadlines(attempt=0.2, total=5.0),
                what="reading the credits",
            )
        )
    assert isinstance(err, BackendTimeoutError)
    assert backend.count(CREDITS) == 3 and len(sleeps.calls) == 2  # the policy, inside the limit
    assert 0.55 <= took < 2.0
    assert str(err).startswith("NemoVideo at api.test did not answer within 0.")
    assert "(reading the credits). Check the network or NEMO_API_URL and try again." in str(err)


async def test_a_call_that_may_have_arrived_is_never_sent_again(tmp_path: Path) -> None:
    sleeps = Sleeps()
    client, backend = client_with(tmp_path, {"/api/auth/claim-token": never}, sleeps)
    async with client:
        await client.token()
        took, err = await timed(
            client.request(
                "POST",
                "/api/auth/claim-token",
                json={},
                idempotent=False,
                deadlines=Deadlines(attempt=0.3, total=5.0),
                what="creating a claim link",
            )
        )
    assert isinstance(err, BackendTimeoutError)
    assert backend.count("/api/auth/claim-token") == 1 and not sleeps.calls
    assert 0.25 <= took < 1.5
    assert "may have reached it, so it was not sent again" in str(err)


async def test_a_drip_cannot_hold_an_attempt(tmp_path: Path) -> None:
    """Each byte restarts httpx's read timeout (30 s); the attempt's deadline does not move."""
    client, backend = client_with(tmp_path, {CREDITS: dripping(b'{"code":0')}, Sleeps())
    async with client:
        await client.token()
        took, err = await timed(
            client.request(
                "GET",
                CREDITS,
                idempotent=False,
                deadlines=Deadlines(attempt=0.3, total=5.0),
                what="reading the credits",
            )
        )
    assert isinstance(err, BackendTimeoutError), err
    assert 0.25 <= took < 1.5
    assert backend.count(CREDITS) == 1


async def test_the_whole_call_bounds_retries_and_backoff(tmp_path: Path) -> None:
    async def server_error(request: httpx.Request) -> httpx.Response:
        return fail(500, "boom", status=500)

    sleeps = Sleeps()
    client, backend = client_with(tmp_path, {CREDITS: server_error}, sleeps)
    async with client:
        await client.token()
        # Backoff of about 0.5 s and 1 s would fit in 5 s but not in 0.3 s.
        with pytest.raises(ServerError):
            await client.request(
                "GET", CREDITS, idempotent=True, deadlines=Deadlines(attempt=0.3, total=0.3)
            )
        assert backend.count(CREDITS) == 1 and not sleeps.calls
    # and with room for them, the policy's three attempts
    sleeps2 = Sleeps()
    client, backend = client_with(tmp_path / "b", {CREDITS: server_error}, sleeps2)
    async with client:
        await client.token()
        with pytest.raises(ServerError):
            await client.request(
                "GET", CREDITS, idempotent=True, deadlines=Deadlines(attempt=1.0, total=30.0)
            )
    assert backend.count(CREDITS) == 3 and len(sleeps2.calls) == 2


async def test_a_rate_limit_wait_that_does_not_fit_is_not_started(tmp_path: Path) -> None:
    async def limited(request: httpx.Request) -> httpx.Response:
        return fail(429, "slow down", status=429, **{"Retry-After": "20"})

    sleeps = Sleeps()
    client, backend = client_with(tmp_path, {CREDITS: limited}, sleeps)
    async with client:
        await client.token()
        with pytest.raises(RateLimitError):
            await client.request(
                "GET", CREDITS, idempotent=True, deadlines=Deadlines(attempt=1.0, total=10.0)
            )
        assert not sleeps.calls and backend.count(CREDITS) == 1
        with pytest.raises(RateLimitError):  # 20 s fits in 60: one wait, one more try
            await client.request(
                "GET", CREDITS, idempotent=True, deadlines=Deadlines(attempt=1.0, total=60.0)
            )
    assert sleeps.calls == [20.0] and backend.count(CREDITS) == 3


async def test_a_tool_budget_ends_the_work_inside_it(tmp_path: Path) -> None:
    client, backend = client_with(tmp_path, {CREDITS: never}, Sleeps())
    async with client:
        await client.token()
        start = time.monotonic()
        with (
            pytest.raises(BackendTimeoutError) as caught,
            time_bound(0.3, api_url=client.api_url, what="reading the credits"),
        ):
            await client.credits()  # its own deadlines are 30 s and 60 s
        took = time.monotonic() - start
        assert 0.25 <= took < 1.0
        assert str(caught.value) == (
            "NemoVideo at api.test did not answer within 0.3 s (reading the credits). Check the "
            "network or NEMO_API_URL and try again."
        )
        with time_bound(5.0, api_url=client.api_url, what="reading the state"):
            state = await client.state()  # work that fits is untouched
        assert state.session_id == "1001001"
    assert backend.count(CREDITS) == 1


def test_timeout_words() -> None:
    assert timeout_message("https://api.test", 45.0, "reading the timeline", sent=False) == (
        "NemoVideo at api.test did not answer within 45 s (reading the timeline). Check the "
        "network or NEMO_API_URL and try again."
    )
    sent = timeout_message("http://127.0.0.1:9", 2.04, "uploading the URLs", sent=True)
    assert sent.startswith("NemoVideo at 127.0.0.1:9 did not answer within 2 s (uploading")
    assert "may have reached it" in sent and "`timeline`" in sent
    assert stream_open_deadlines(10.0) == Deadlines(attempt=10.0, total=30.0)


def test_an_upload_gets_the_time_its_size_needs_on_a_slow_link() -> None:
    assert transfer_deadlines(0) == Deadlines(attempt=120.0, total=180.0)
    # 500 MB at 64 KiB/s: about two hours and ten minutes, then the upload is abandoned.
    assert transfer_deadlines(500 * 1_000_000).attempt == pytest.approx(7749.4, abs=0.1)


# -- the message stream ------------------------------------------------------------------------


async def test_a_stream_that_never_opens_ends_at_its_open_deadline(tmp_path: Path) -> None:
    sleeps = Sleeps()
    client, backend = client_with(tmp_path, {"/run_sse": never}, sleeps)
    async with client:
        took, err = await timed(
            send_message(client, "hello", lambda e: None, limits=StreamLimits(open=0.3))
        )
    assert isinstance(err, BackendTimeoutError)
    assert 0.25 <= took < 1.5
    assert backend.count("/run_sse") == 1  # a message is never sent twice
    assert "(sending the message)" in str(err) and "may have reached it" in str(err)


async def test_a_dripping_stream_is_dropped_after_the_read_limit(tmp_path: Path) -> None:
    head = b': ping\n\ndata: {"type":"text","content":"hel'
    client, backend = client_with(
        tmp_path, {"/run_sse": dripping(head, "text/event-stream")}, Sleeps()
    )
    async with client:
        took, err = await timed(
            send_message(client, "hello", lambda e: None, limits=StreamLimits(read=0.4, idle=30.0))
        )
    assert isinstance(err, StreamBrokenError), err
    assert "sent part of an event and then only a trickle for 0.4 s" in str(err)
    assert 0.35 <= took < 1.5  # far below the 30 s of heartbeats-only, and each byte kept it alive
    assert backend.count("/run_sse") == 1
