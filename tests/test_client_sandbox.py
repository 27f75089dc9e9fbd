"""NemoClient against the sandbox over a real loopback socket, in every documented variant."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.backend import render as renders
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.events import (
    ReplyAssembler,
    StateDeltaEvent,
    StreamEvent,
    TextEvent,
    ToolCallEvent,
)
from nemo_mcp.backend.stream import send_message
from nemo_mcp.errors import (
    CreditsError,
    FileTooLargeError,
    PlanError,
    RateLimitError,
    SessionReplacedError,
    TokenRefusedError,
    UnsupportedFileError,
)
from nemo_mcp.identity import load_identity
from nemo_mcp.ledger import Entry
from nemo_mcp.server.jobs import render
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

from fakes import Recorded


@asynccontextmanager
async def nemo(tmp_path: Path, url: str, **overrides: Any) -> AsyncIterator[NemoClient]:
    settings = Settings(
        api_url=url, home=tmp_path / "home", output_dir=tmp_path / "out", **overrides
    )
    client = NemoClient(
        settings, load_identity(skill="ai-generator-generator"), StateStore(settings.home, url)
    )
    async with client:
        yield client


async def generate(client: NemoClient, text: str) -> tuple[ReplyAssembler, list[StreamEvent]]:
    reply, seen = ReplyAssembler(), []

    def on_event(event: StreamEvent) -> None:
        seen.append(event)
        if isinstance(event, TextEvent):
            reply.add(event)

    await send_message(client, text, on_event)
    return reply, seen


@pytest.mark.parametrize("envelope", ["code", "success"])
@pytest.mark.parametrize("error_status", ["http", "ok"])
async def test_every_endpoint_in_each_envelope(
    tmp_path: Path, sandbox: Any, envelope: str, error_status: str
) -> None:
    sandbox.control.set(envelope=envelope, error_status=error_status, initial_credits=500)
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    async with nemo(tmp_path, sandbox.url) as client:
        assert (await client.credits()).available == 500
        session = await client.session()
        assert session.session_id.isdigit()
        uploaded = await client.upload_files([clip])
        assert uploaded.files[0].filename == "clip.mp4"
        by_url = await client.upload_urls(["https://example.com/photo.png"])
        assert by_url.files[0].file_type
        await generate(client, "a video of a lake")
        state = await client.state()
        assert state.state.draft["t"] and state.state.video_infos
        link = await client.claim_link()
        assert "/workspace/claim?ct=clm_" in link
        with pytest.raises(UnsupportedFileError):
            await client.upload_urls(["https://www.youtube.com/watch?v=abc"])
        sandbox.control.fault("out_of_credits", route="run_sse")
        with pytest.raises(CreditsError):
            await generate(client, "add music")
        sandbox.control.fault("export_blocked", route="render_start")
        with pytest.raises(PlanError):
            await start(client, state.state.draft, session.session_id)
        sandbox.control.set(upload_limit_bytes=10)
        with pytest.raises(FileTooLargeError):
            await client.upload_files([clip])


async def start(client: NemoClient, draft: Any, session_id: str, **output: str) -> str:
    """One render of `draft` started under a new id (what a render job's first start sends)."""
    render_id = renders.new_render_id()
    await renders.start_render(
        client,
        draft,
        render_id=render_id,
        session_id=session_id,
        output=output,
        sent_before=False,
    )
    return render_id


@pytest.mark.parametrize("shape", ["bare", "success", "code"])
@pytest.mark.parametrize("progress", ["percent", "fraction"])
async def test_render_in_every_status_shape(
    tmp_path: Path, sandbox: Any, shape: str, progress: str
) -> None:
    sandbox.control.set(render_status=shape, progress=progress)
    async with nemo(tmp_path, sandbox.url, render_shortest=0.3) as client:
        await generate(client, "a video of a bridge")
        draft = (await client.state()).state.draft
        session = await client.session()
        render_id = await start(client, draft, session.session_id, format="mp4", quality="high")
        seen: list[float] = []

        async def on_status(status: Any) -> None:
            seen.append(status.progress)

        final = await renders.wait_render(
            client, render_id, started_at=time.time(), on_status=on_status, shortest=0.3
        )
        assert final.status == "completed" and final.url and final.progress == 1.0
        assert all(0.0 <= p <= 1.0 for p in seen) and seen == sorted(seen)
        saved = await renders.download(client, final, tmp_path / "out", stem="v")
        assert saved.path.read_bytes()[4:8] == b"ftyp" and not saved.used_fallback
    assert sandbox.control.stats()["renders_started"] == 1


async def test_broken_output_url_falls_back_to_the_download_endpoint(
    tmp_path: Path, sandbox: Any
) -> None:
    async with nemo(tmp_path, sandbox.url) as client:
        await generate(client, "a video of a fox")
        draft = (await client.state()).state.draft
        session = await client.session()
        render_id = await start(client, draft, session.session_id)
        final = await renders.wait_render(client, render_id, started_at=time.time(), shortest=0.3)
        sandbox.control.fault("output_url_broken", route="file")
        saved = await renders.download(client, final, tmp_path / "out", stem="v")
    assert saved.used_fallback and saved.path.read_bytes()[4:8] == b"ftyp"


async def test_reused_render_id_gets_a_new_id_once(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sandbox refuses an id it knows (a clean refusal of a new id, to the backend
    module: `StartRefusedError`); the render job then records a new id and starts that."""
    ids = iter(["render_1", "render_1", "render_2"])
    monkeypatch.setattr(renders, "new_render_id", lambda: next(ids))
    async with nemo(tmp_path, sandbox.url) as client:
        await generate(client, "a video of a kite")
        draft = (await client.state()).state.draft
        session = await client.session()
        first = await start(client, draft, session.session_id)
        log: list[tuple[str, ...]] = []
        run = Recorded(job_entry(), log)
        await render.prepare(run, draft, session_id=session.session_id, digest="d", title="t")
        await render.start(run, client, sent_before=False)
    assert first == "render_1" and render.render_of(run).render_id == "render_2"
    assert log == [
        ("saved", "starting", "render_1"),
        ("saved", "starting", "render_2"),
        ("saved", "rendering", "render_2"),
    ]
    assert sandbox.control.stats()["renders_started"] == 2


def job_entry() -> Entry:
    return Entry(
        id="e1",
        user="",
        seq=1,
        kind="render",
        key="render|mp4|high",
        session_id=None,
        state="queued",
        request={"format": "mp4", "quality": "high"},
        created_at=0.0,
        updated_at=0.0,
    )


@pytest.mark.parametrize("sse", ["adk", "adk_partial", "typed"])
@pytest.mark.parametrize("heartbeat", ["comment", "empty_data", "event", "mixed"])
async def test_stream_in_every_form(tmp_path: Path, sandbox: Any, sse: str, heartbeat: str) -> None:
    sandbox.control.set(sse=sse, heartbeat=heartbeat)
    async with nemo(tmp_path, sandbox.url) as client:
        reply, seen = await generate(client, "a video of a garden")
    assert any(isinstance(e, ToolCallEvent) for e in seen)
    text = reply.text
    assert "raw clip is ready" in text.lower()
    for message in reply.messages:
        assert text.count(message) == 1, "text shown twice"
    if sse != "typed":
        assert any(isinstance(e, StateDeltaEvent) for e in seen)


async def test_trailing_temporary_issue_and_silent_edits(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(initial_credits=500, trailing_issue=True)
    async with nemo(tmp_path, sandbox.url) as client:
        reply, _ = await generate(client, "a video of a market")
        assert reply.messages[-1].lower().startswith("i encountered a temporary issue")
        sandbox.control.set(silent_edits=True, trailing_issue=False)
        silent, seen = await generate(client, "add upbeat music")
    assert silent.text == "" and any(isinstance(e, ToolCallEvent) for e in seen)


async def test_token_renewal_session_loss_and_rate_limit(tmp_path: Path, sandbox: Any) -> None:
    async with nemo(tmp_path, sandbox.url) as client:
        await client.credits()
        sandbox.control.fault("token_expired", route="credits")
        await client.credits()
        assert sandbox.control.stats()["tokens_issued"] == 2
        old = await client.session()
        sandbox.control.fault("session_lost", route="state")
        with pytest.raises(SessionReplacedError) as lost:
            await client.state()
        new = await client.session()
        assert (
            new.session_id != old.session_id and lost.value.detail["session_id"] == new.session_id
        )
        sandbox.control.fault("rate_limited", route="credits", times=2, retry_after="0")
        with pytest.raises(RateLimitError):
            await client.credits()
    # A revoked token for an explicit NEMO_TOKEN is not renewed behind the user's back.
    from pydantic import SecretStr

    async with nemo(
        tmp_path / "b", sandbox.url, token=SecretStr("nmv_usr_not_a_real_token")
    ) as client:
        with pytest.raises(TokenRefusedError):
            await client.credits()


async def test_second_instance_reuses_client_id_token_and_session(
    tmp_path: Path, sandbox: Any
) -> None:
    async with nemo(tmp_path, sandbox.url) as first:
        await first.state()
        ids = (await first.client_id(), (await first.session()).session_id)
    async with nemo(tmp_path, sandbox.url) as second:
        await second.state()
        assert (await second.client_id(), (await second.session()).session_id) == ids
    stats = sandbox.control.stats()
    assert stats["tokens_issued"] == 1 and stats["sessions_created"] == 1
