"""NemoClient rules, over an injected transport: auth, headers, retries, never twice."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import anyio
import httpx
import pytest
from pydantic import SecretStr

from nemo_mcp.backend import render as renders
from nemo_mcp.backend.events import OpenedEvent, TextEvent
from nemo_mcp.backend.models import RenderStatus
from nemo_mcp.backend.stream import StreamLimits, send_message
from nemo_mcp.errors import (
    AuthError,
    BackendTimeoutError,
    BackendUnreachableError,
    CreditsError,
    FileTooLargeError,
    PathNotAllowedError,
    RateLimitError,
    RenderError,
    ServerError,
    SessionNotFoundError,
    SessionReplacedError,
    StreamBrokenError,
    TokenRefusedError,
    UnsupportedFileError,
)
from nemo_mcp.server.boundary import message_for, token_replaced
from nemo_mcp.state_files import Damaged

from fakes import FakeBackend, Sleeps, data_frame, fail, make_client, ok, sse

SSE = "/run_sse"


async def test_every_request_carries_token_and_attribution(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with make_client(tmp_path, backend) as client:
        await client.credits()
        await client.state()
    token_req, *rest = backend.requests
    assert token_req.url.path == "/api/auth/anonymous-token"
    assert token_req.headers["X-Client-Id"]
    assert "authorization" not in token_req.headers
    for request in backend.requests:
        assert request.headers["X-Skill-Source"] == "ai-video-generation-online"
        assert request.headers["X-Skill-Version"] == "1.0.0"
        assert request.headers["X-Skill-Platform"] == "unknown"
        # Only the codings the body reader decodes a bounded step at a time.
        assert request.headers["Accept-Encoding"] == "gzip, deflate"
    for request in rest:
        assert request.headers["Authorization"] == "Bearer nmv_usr_tok000001"


async def test_token_client_id_and_session_persist_across_instances(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with make_client(tmp_path, backend) as first:
        await first.state()
        client_id = await first.client_id()
    async with make_client(tmp_path, backend) as second:
        await second.state()
        assert await second.client_id() == client_id
    assert backend.count("/api/auth/anonymous-token") == 1
    assert backend.count("/api/tasks/me/with-session/nemo_agent") == 1
    folder = next((tmp_path / "home" / "nemo-mcp").iterdir())
    for name in ("auth.json", "session.json"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    assert (tmp_path / "home" / "client_id").read_text().strip() == client_id


async def test_configured_client_id_is_sent(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with make_client(tmp_path, backend, client_id="my-client") as client:
        await client.credits()
    assert backend.requests[0].headers["X-Client-Id"] == "my-client"


async def test_a_token_near_its_expiry_is_replaced_before_use(tmp_path: Path) -> None:
    """Read against the client's clock (injected): an hour before the expiry the saved token
    is used; within the margin before it, a new one is asked for first."""
    token_path = "/api/auth/anonymous-token"
    expiry = datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    now = expiry - 3600
    backend = FakeBackend(token_expires_at="2030-01-01T00:00:00Z")
    async with make_client(tmp_path, backend, clock=lambda: now) as client:
        await client.credits()
        await client.credits()
        assert backend.count(token_path) == 1  # still an hour to go: kept
        now = expiry - 200  # within the 300 s margin
        await client.credits()
    assert backend.count(token_path) == 2
    assert backend.requests[-1].headers["Authorization"] == "Bearer nmv_usr_tok000002"


async def test_1001_renews_once_with_same_client_id(tmp_path: Path) -> None:
    backend = FakeBackend()
    refused = []

    def expire_first(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/simple") and not refused:
            refused.append(request)
            return fail(1001, "token expired", status=401)
        return None

    backend.script.append(expire_first)
    async with make_client(tmp_path, backend) as client:
        credits = await client.credits()
    assert credits.available == 80
    token_requests = [r for r in backend.requests if r.url.path == "/api/auth/anonymous-token"]
    assert len(token_requests) == 2
    assert token_requests[0].headers["X-Client-Id"] == token_requests[1].headers["X-Client-Id"]
    assert backend.requests[-1].headers["Authorization"] == "Bearer nmv_usr_tok000002"


async def test_1001_twice_is_an_auth_error(tmp_path: Path) -> None:
    backend = FakeBackend(script=[lambda r: fail(1001) if r.url.path.endswith("/simple") else None])
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(AuthError):
            await client.credits()
    assert backend.count("/api/credits/balance/simple") == 2


async def test_explicit_token_refused_says_what_to_do(tmp_path: Path) -> None:
    backend = FakeBackend(script=[lambda r: fail(1001, status=401)])
    async with make_client(tmp_path, backend, token=SecretStr("nmv_usr_secret_abcdef")) as client:
        with pytest.raises(TokenRefusedError) as info:
            await client.credits()
        said = message_for(info.value, client)
    assert "NEMO_TOKEN was refused" in said and "unset NEMO_TOKEN" in said
    assert "nmv_usr_secret_abcdef" not in str(info.value) + said
    assert backend.count("/api/auth/anonymous-token") == 0


async def test_a_damaged_token_replaced_is_given_as_a_fact_once(tmp_path: Path) -> None:
    """The backend keeps what was replaced; the notice's words are the server's."""
    damaged = Damaged(path="/h/auth.json", moved_to="/h/auth.json.damaged-1", problem="not JSON")
    async with make_client(tmp_path, FakeBackend()) as client:
        client.store.damaged_auth = damaged
        await client.token()
        assert client.credentials.take_replaced() == [damaged]
        assert client.credentials.take_replaced() == [] and client.store.take_notices() == []
    assert token_replaced(damaged) == (
        "The saved NemoVideo token (/h/auth.json) was damaged (not JSON) and was moved aside "
        "to /h/auth.json.damaged-1; a new free token was fetched for this computer with its "
        "client id."
    )


async def test_429_waits_retry_after_then_retries_once(tmp_path: Path) -> None:
    sleeps = Sleeps()
    backend = FakeBackend()
    hits = []

    def limited(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/simple") and len(hits) < 1:
            hits.append(1)
            return fail(429, "slow down", status=429, **{"Retry-After": "7"})
        return None

    backend.script.append(limited)
    async with make_client(tmp_path, backend, sleeps=sleeps) as client:
        await client.credits()
    assert sleeps.calls == [7.0]


async def test_429_without_retry_after_waits_30s_and_gives_up_after_one_retry(
    tmp_path: Path,
) -> None:
    sleeps = Sleeps()
    backend = FakeBackend(
        script=[lambda r: fail(429, status=429) if r.url.path.endswith("/simple") else None]
    )
    async with make_client(tmp_path, backend, sleeps=sleeps) as client:
        with pytest.raises(RateLimitError):
            await client.credits()
    assert sleeps.calls == [30.0]
    assert backend.count("/api/credits/balance/simple") == 2


async def test_gets_retry_5xx_with_bounded_backoff(tmp_path: Path) -> None:
    sleeps = Sleeps()
    backend = FakeBackend(
        script=[
            lambda r: (
                httpx.Response(502, text="<html>bad gateway</html>")
                if r.url.path.endswith("/simple")
                else None
            )
        ]
    )
    async with make_client(tmp_path, backend, sleeps=sleeps) as client:
        with pytest.raises(ServerError, match="502"):
            await client.credits()
    assert backend.count("/api/credits/balance/simple") == 3
    assert len(sleeps.calls) == 2 and all(0 < s <= 8 for s in sleeps.calls)


async def test_a_session_is_asked_for_again_after_a_5xx(tmp_path: Path) -> None:
    """Unlike a message, a session is safe to ask for again (free, and empty until a
    message is sent to it); a message never is (test_handles.py, defect 3)."""
    answers = iter([httpx.Response(500, json={"code": 500, "message": "x"})])
    backend = FakeBackend(
        script=[lambda r: next(answers, None) if "with-session" in r.url.path else None]
    )
    async with make_client(tmp_path, backend) as client:
        record = await client.session()
    assert record.session_id == "1001001"
    assert backend.count("/api/tasks/me/with-session/nemo_agent") == 2


async def test_unreachable_backend_is_clear(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    backend = FakeBackend(script=[refuse])
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(
            BackendUnreachableError, match=r"cannot reach the NemoVideo backend at api\.test"
        ):
            await client.credits()
    assert len(backend.requests) == 3


async def test_session_lost_starts_new_session_and_says_so(tmp_path: Path) -> None:
    backend = FakeBackend()
    sessions = iter(["111", "222"])
    backend.script.append(
        lambda r: (
            ok({"task_id": "t", "session_id": next(sessions)})
            if "with-session" in r.url.path
            else None
        )
    )
    backend.script.append(
        lambda r: (
            fail(1002, "session not found")
            if r.url.path == "/api/state/nemo_agent/me/111/latest"
            else None
        )
    )
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(SessionReplacedError) as lost:
            await client.state()
        assert lost.value.detail == {"session_id": "222"}  # the fact; the words are the server's
        assert "timeline is gone" in message_for(lost.value, client)
        assert "(session 222)" in message_for(lost.value, client)
        assert (await client.session()).session_id == "222"
        await client.state()
    assert (await client.store.load_session()).session_id == "222"  # type: ignore[union-attr]


# messages -----------------------------------------------------------------------------
def adk_text(text: str) -> str:
    return data_frame(
        {"content": {"parts": [{"text": text}], "role": "model"}, "author": "nemo_agent"}
    )


async def test_message_stream_events_and_body(tmp_path: Path) -> None:
    backend = FakeBackend(
        script=[lambda r: sse(": ping\n\n", adk_text("Done!")) if r.url.path == SSE else None]
    )
    seen = []
    async with make_client(tmp_path, backend) as client:
        outcome = await send_message(client, "make a video", seen.append)
    # The stream's opening comes first, as an event: the caller records it if it likes.
    assert seen == [OpenedEvent(session_id="1001001"), TextEvent("Done!", author="nemo_agent")]
    assert outcome.meaningful == 1
    request = next(r for r in backend.requests if r.url.path == SSE)
    assert request.headers["Accept"] == "text/event-stream"
    import json

    assert json.loads(request.content) == {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": "1001001",
        "new_message": {"parts": [{"text": "make a video"}]},
    }


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (lambda: fail(2001, "no credits", status=402), CreditsError),
        (lambda: httpx.Response(500, json={"code": 500, "message": "x"}), ServerError),
        (lambda: httpx.Response(422, json={"detail": [{"msg": "field required"}]}), Exception),
    ],
)
async def test_refused_message_is_sent_once(tmp_path: Path, answer, error) -> None:  # type: ignore[no-untyped-def]
    backend = FakeBackend(script=[lambda r: answer() if r.url.path == SSE else None])
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(error):
            await send_message(client, "hi", lambda e: None)
    assert backend.count(SSE) == 1


async def test_message_1001_before_stream_renews_and_sends_again(tmp_path: Path) -> None:
    answers = iter([fail(1001, status=401), sse(adk_text("ok"))])
    backend = FakeBackend(script=[lambda r: next(answers) if r.url.path == SSE else None])
    async with make_client(tmp_path, backend) as client:
        await send_message(client, "hi", lambda e: None)
    assert backend.count(SSE) == 2
    assert backend.count("/api/auth/anonymous-token") == 2


async def test_message_session_not_found_detail(tmp_path: Path) -> None:
    backend = FakeBackend(
        script=[
            lambda r: (
                httpx.Response(404, json={"detail": "Session not found: 1001001"})
                if r.url.path == SSE
                else None
            )
        ]
    )
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(SessionNotFoundError):
            await send_message(client, "hi", lambda e: None)
    assert backend.count(SSE) == 1


async def test_broken_stream_is_reported_never_resent(tmp_path: Path) -> None:
    def broken(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != SSE:
            return None

        async def body():  # type: ignore[no-untyped-def]
            yield adk_text("Working").encode()
            yield b'data: {"content": {"par'
            raise httpx.RemoteProtocolError("peer closed connection", request=request)

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    backend = FakeBackend(script=[broken])
    seen = []
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(StreamBrokenError):
            await send_message(client, "hi", seen.append)
    assert backend.count(SSE) == 1
    assert seen == [OpenedEvent(session_id="1001001"), TextEvent("Working", author="nemo_agent")]


async def test_a_session_whose_answer_was_lost_is_asked_for_again(tmp_path: Path) -> None:
    """Creating a session is free and does nothing until a message is sent to it: when the
    connection drops before its answer (a keep-alive connection the server had just
    closed), it is asked for again instead of failing the user's message."""
    tries = []

    def dropped_once(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.endswith("/with-session/nemo_agent"):
            tries.append(1)
            if len(tries) == 1:
                raise httpx.RemoteProtocolError("Server disconnected", request=request)
        return None

    backend = FakeBackend(script=[dropped_once])
    async with make_client(tmp_path, backend) as client:
        record = await client.session()
    assert len(tries) == 2 and record.session_id == "1001001"


async def test_connect_failure_before_sending_is_retried(tmp_path: Path) -> None:
    tries = []

    def flaky(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == SSE:
            tries.append(1)
            if len(tries) == 1:
                raise httpx.ConnectError("refused", request=request)
            return sse(adk_text("ok"))
        return None

    backend = FakeBackend(script=[flaky])
    async with make_client(tmp_path, backend) as client:
        await send_message(client, "hi", lambda e: None)
    assert len(tries) == 2


async def test_heartbeats_only_hits_the_idle_limit(tmp_path: Path) -> None:
    import anyio

    def forever(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != SSE:
            return None

        async def body():  # type: ignore[no-untyped-def]
            while True:
                yield b"data:\n\n"
                await anyio.sleep(0.01)

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    backend = FakeBackend(script=[forever])
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(BackendTimeoutError, match="only heartbeats"):
            await send_message(client, "hi", lambda e: None, limits=StreamLimits(idle=0.2, total=5))
    assert backend.count(SSE) == 1


# uploads --------------------------------------------------------------------------------
async def test_upload_refused_before_any_request(tmp_path: Path) -> None:
    backend = FakeBackend()
    big = tmp_path / "big.mp4"
    with open(big, "wb") as handle:
        handle.truncate(200 * 1000 * 1000 + 1)
    bad = tmp_path / "notes.exe"
    bad.write_bytes(b"x")
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(FileTooLargeError, match="200 MB"):
            await client.upload_files([big])
        with pytest.raises(UnsupportedFileError, match="Accepted: mp4"):
            await client.upload_files([bad])
        with pytest.raises(PathNotAllowedError, match="no such file"):
            await client.upload_files([tmp_path / "missing.mp4"])
        with pytest.raises(PathNotAllowedError, match="folder"):
            (tmp_path / "dir.mp4").mkdir()
            await client.upload_files([tmp_path / "dir.mp4"])
    assert backend.requests == []


async def test_upload_multipart_body(tmp_path: Path) -> None:
    clip = tmp_path / 'my "clip".mp4'
    clip.write_bytes(b"\x00\x01video-bytes")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"png-bytes")
    backend = FakeBackend(
        script=[
            lambda r: (
                ok(
                    {
                        "files": [
                            {"filename": "a.mp4", "file_type": "video"},
                            {"filename": "photo.png"},
                        ],
                        "session_state_applied": True,
                    }
                )
                if r.url.path.startswith("/api/upload-video/")
                else None
            )
        ]
    )
    async with make_client(tmp_path, backend) as client:
        result = await client.upload_files([clip, photo])
    assert [f.filename for f in result.files] == ["a.mp4", "photo.png"]
    request = next(r for r in backend.requests if r.url.path.startswith("/api/upload-video/"))
    assert request.url.path == "/api/upload-video/nemo_agent/me/1001001"
    body = request.content
    assert int(request.headers["Content-Length"]) == len(body)
    assert body.count(b'name="files"') == 2
    assert b'filename="my \\"clip\\".mp4"' in body and b"\x00\x01video-bytes" in body
    assert request.headers["Content-Type"].startswith("multipart/form-data; boundary=")


# renders ----------------------------------------------------------------------------------
async def test_a_refused_render_start_is_said_and_not_renamed_here(tmp_path: Path) -> None:
    """A clean refusal of a new id is `StartRefusedError`: the job records a new id and
    starts that (tests/test_jobs.py); the backend neither renames nor records."""
    starts = []

    def refused(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/render/proxy/lambda":
            starts.append(request)
            return fail(409, "render id already exists", status=409)
        return None

    backend = FakeBackend(script=[refused])
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(renders.StartRefusedError):
            await renders.start_render(
                client,
                {"t": [1]},
                render_id="render_1_ab",
                session_id="1",
                output={"format": "mp4", "quality": "high"},
                sent_before=False,
            )
    import json

    assert [json.loads(r.content)["id"] for r in starts] == ["render_1_ab"]
    assert json.loads(starts[0].content)["sessionId"] == "1"


async def test_render_start_5xx_that_did_start_is_not_started_again(tmp_path: Path) -> None:
    def half(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/api/render/proxy/lambda":
            return httpx.Response(504, text="<html>gateway timeout</html>")
        if request.url.path.startswith("/api/render/proxy/lambda/"):
            return httpx.Response(200, json={"taskId": "r", "status": "processing", "progress": 10})
        return None

    backend = FakeBackend(script=[half])
    async with make_client(tmp_path, backend) as client:
        await renders.start_render(
            client, {}, render_id="render_1_ab", session_id="1", output={}, sent_before=False
        )
    assert backend.count("/api/render/proxy/lambda") == 1


async def test_render_start_plan_error_is_final(tmp_path: Path) -> None:
    from nemo_mcp.errors import PlanError

    backend = FakeBackend(
        script=[
            lambda r: (
                fail(402, "free plan", status=402)
                if r.url.path == "/api/render/proxy/lambda"
                else None
            )
        ]
    )
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(PlanError):
            await renders.start_render(
                client, {}, render_id="render_1_ab", session_id="1", output={}, sent_before=False
            )
    assert backend.count("/api/render/proxy/lambda") == 1


async def test_download_falls_back_and_keeps_token_off_foreign_hosts(tmp_path: Path) -> None:
    def files(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "cdn.test":
            return httpx.Response(404, text="gone")
        if request.url.path == "/api/render/proxy/r1/download":
            return httpx.Response(200, headers={"content-type": "video/mp4"}, content=b"MP4DATA")
        return None

    backend = FakeBackend(script=[files])
    status = RenderStatus(id="r1", status="completed", progress=1, url="https://cdn.test/r1.mp4")
    async with make_client(tmp_path, backend) as client:
        first = await renders.download(client, status, tmp_path / "out", stem="video")
        second = await renders.download(client, status, tmp_path / "out", stem="video")
    cdn = next(r for r in backend.requests if r.url.host == "cdn.test")
    assert "authorization" not in cdn.headers
    assert first.used_fallback and first.path.read_bytes() == b"MP4DATA" and first.size == 7
    assert first.path.name == "video.mp4" and second.path.name == "video-2.mp4"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["video-2.mp4", "video.mp4"]


async def test_download_failure_is_clear_and_leaves_no_partial(tmp_path: Path) -> None:
    backend = FakeBackend(
        script=[
            lambda r: (
                httpx.Response(500, text="x")
                if "download" in r.url.path or r.url.host == "cdn.test"
                else None
            )
        ]
    )
    status = RenderStatus(id="r1", status="completed", progress=1, url="https://cdn.test/r1.mp4")
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(RenderError, match="could not be downloaded"):
            await renders.download(client, status, tmp_path / "out", stem="video")
    assert list((tmp_path / "out").iterdir()) == []


async def test_wait_render_polls_until_done(tmp_path: Path) -> None:
    states = iter([("processing", 40), ("processing", 80), ("completed", 100)])

    def poll(request: httpx.Request) -> httpx.Response | None:
        if request.url.path.startswith("/api/render/proxy/lambda/"):
            status, progress = next(states)
            return httpx.Response(
                200,
                json={
                    "taskId": "r",
                    "status": status,
                    "progress": progress,
                    "output": {"url": "https://cdn.test/r.mp4"},
                },
            )
        return None

    backend = FakeBackend(script=[poll])
    seen: list[float] = []

    async def on_status(status: RenderStatus) -> None:
        seen.append(status.progress)

    async with make_client(tmp_path, backend) as client:
        final = await renders.wait_render(
            client, "r", started_at=0.0, on_status=on_status, clock=lambda: 1.0
        )
    assert final.status == "completed" and seen == [0.4, 0.8, 1.0]


class Trickle(httpx.AsyncByteStream):
    """`piece` bytes every `every` seconds, `count` times."""

    def __init__(self, piece: int, every: float, count: int) -> None:
        self.piece, self.every, self.count = piece, every, count

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            await anyio.sleep(self.every)
            yield b"v" * self.piece


@pytest.mark.parametrize(("piece", "finishes"), [(10, False), (400, True)])
async def test_a_download_is_held_to_a_least_average_speed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int, finishes: bool
) -> None:
    # Scaled down: a 0.3 s grace, then 1000 bytes/s on average; pieces every 50 ms.
    monkeypatch.setattr(renders, "DOWNLOAD_GRACE", 0.3)
    monkeypatch.setattr(renders, "MIN_TRANSFER_RATE", 1000)

    def files(request: httpx.Request) -> httpx.Response | None:
        if request.url.host == "cdn.test" or request.url.path.endswith("/download"):
            body = Trickle(piece, 0.05, 40)  # 2 s in all: 200 or 8000 bytes/s
            return httpx.Response(200, headers={"content-type": "video/mp4"}, stream=body)
        return None

    status = RenderStatus(id="r1", status="completed", progress=1, url="https://cdn.test/r1.mp4")
    async with make_client(tmp_path, FakeBackend(script=[files])) as client:
        if finishes:
            saved = await renders.download(client, status, tmp_path / "out", stem="video")
            assert saved.size == 40 * piece
            return
        with pytest.raises(RenderError, match=r"slowed below .* on average"):
            await renders.download(client, status, tmp_path / "out", stem="video")
    # Unbounded, both bodies would have ended whole after 2 s and been saved.
    assert list((tmp_path / "out").iterdir()) == []
