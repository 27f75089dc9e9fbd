"""Typed jobs: the one reader of a ledger entry's columns, and each kind's moves."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from nemo_mcp.backend.events import OpenedEvent
from nemo_mcp.backend.stream import send_message
from nemo_mcp.ledger import Entry
from nemo_mcp.server.jobs import (
    IllegalMoveError,
    MessageJob,
    RenderJob,
    check_move,
    handle_of,
    job_of,
    message,
    render,
)

from fakes import FakeBackend, Recorded, data_frame, fail, make_client, ok, sse


def entry(kind: str, key: str = "k", **values: Any) -> Entry:
    fields: dict[str, Any] = dict(
        id="e1",
        user="",
        seq=1,
        kind=kind,
        key=key,
        session_id="s1",
        state="queued",
        request={},
        created_at=10.0,
        updated_at=10.0,
    )
    fields.update(values)
    return Entry(**fields)


def test_a_render_entry_reads_as_one_typed_job() -> None:
    job = job_of(
        entry(
            "render",
            key="id:mine",
            state="downloading",
            request={"format": "mp4", "quality": "low", "fresh": True},
            memo={"render_id": "render_1_ab", "expected_size": 123, "rendered": True},
            progress={"percent": 40.0},
        )
    )
    assert isinstance(job, RenderJob)
    assert (job.handle, job.phase, job.quality, job.fresh) == ("mine", "downloading", "low", True)
    assert (job.render_id, job.expected_size, job.rendered, job.percent) == (
        "render_1_ab",
        123,
        True,
        40.0,
    )
    record = job.record()
    assert record["id"] == "render_1_ab" and record["request_id"] == "mine"
    assert record["status"] == "downloading" and record["quality"] == "low"


def test_a_message_entry_and_its_handle() -> None:
    found = entry("message", request={"message": "hi", "new_project": True}, memo={"unclear": "x"})
    job = job_of(found)
    assert isinstance(job, MessageJob)
    assert job.message == "hi" and job.new_project and job.unclear == "x"
    assert handle_of(found) == "e1"  # no request_id given: the entry's own id


@pytest.mark.parametrize(
    ("kind", "old", "new"),
    [
        ("message", "queued", "sending"),
        ("message", "sending", "recovering"),
        ("message", "streaming", "failed"),
        ("render", "queued", "starting"),
        ("render", "downloading", "starting"),
        ("render", "rendering", "done"),
    ],
)
def test_listed_moves_pass(kind: str, old: str, new: str) -> None:
    check_move(kind, old, new)


@pytest.mark.parametrize(
    ("kind", "old", "new"),
    [
        ("message", "streaming", "sending"),  # a message the backend has is never sent again
        ("message", "recovering", "streaming"),
        ("render", "rendering", "starting"),  # a started render is never started again
        ("render", "queued", "rendering"),
    ],
)
def test_other_moves_are_refused(kind: str, old: str, new: str) -> None:
    with pytest.raises(IllegalMoveError):
        check_move(kind, old, new)


# the transitions, each recorded before it acts ---------------------------------------------
class Renders:
    """The render start of the contract: a known id is refused as a duplicate (409)."""

    def __init__(self, log: list[tuple[str, ...]], refuse_first: bool = False) -> None:
        self.started: list[str] = []
        self.log = log
        self.refuse_first = refuse_first

    def __call__(self, request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/api/render/proxy/lambda":
            return None
        render_id = json.loads(request.content)["id"]
        self.log.append(("sent", "start", render_id))
        if self.refuse_first:
            self.refuse_first = False
            return fail(400, "render refused", status=400)
        if render_id in self.started:
            return fail(409, "render id already exists", status=409)
        self.started.append(render_id)
        return ok({"id": render_id})


DRAFT = {"t": [{"tt": 0, "sg": [{"m": {"url": "https://cdn.test/a.mp4"}}]}]}


async def _prepared(tmp_path: Path, renders_: Renders, log: list[tuple[str, ...]]) -> Recorded:
    run = Recorded(entry("render", request={"format": "mp4", "quality": "high"}), log)
    await render.prepare(run, DRAFT, session_id="s1", digest="d", title="t")
    return run


async def test_the_render_id_is_recorded_before_its_start_is_sent(tmp_path: Path) -> None:
    log: list[tuple[str, ...]] = []
    renders_ = Renders(log)
    async with make_client(tmp_path, FakeBackend(script=[renders_])) as client:
        run = await _prepared(tmp_path, renders_, log)
        await render.start(run, client, sent_before=False)
    [render_id] = renders_.started
    assert log == [
        ("saved", "starting", render_id),
        ("sent", "start", render_id),
        ("saved", "rendering", render_id),
    ]
    assert "draft" not in run.durable.memo  # the backend has it: never sent again


async def test_a_refused_start_gets_a_new_id_recorded_before_it_is_sent(tmp_path: Path) -> None:
    log: list[tuple[str, ...]] = []
    renders_ = Renders(log, refuse_first=True)
    async with make_client(tmp_path, FakeBackend(script=[renders_])) as client:
        run = await _prepared(tmp_path, renders_, log)
        await render.start(run, client, sent_before=False)
    first, second = (row[2] for row in log if row[0] == "sent")
    assert first != second and renders_.started == [second]
    assert log == [
        ("saved", "starting", first),
        ("sent", "start", first),
        ("saved", "starting", second),
        ("sent", "start", second),
        ("saved", "rendering", second),
    ]


@pytest.mark.parametrize("start_arrived", [False, True])
async def test_a_run_killed_after_prepare_resumes_under_the_same_id_and_starts_once(
    tmp_path: Path, start_arrived: bool
) -> None:
    """Killed right after `prepare` (before the start left, or after it arrived with its
    answer lost): the next run reads the recorded id and starts that render, once."""
    log: list[tuple[str, ...]] = []
    renders_ = Renders(log)
    async with make_client(tmp_path, FakeBackend(script=[renders_])) as client:
        killed = await _prepared(tmp_path, renders_, log)
        render_id = str(render.render_of(killed).render_id)
        if start_arrived:
            renders_.started.append(render_id)  # the start reached the backend; no answer
        resumed = Recorded(killed.durable, log)  # a new process reads the durable entry
        await render.start(resumed, client, sent_before=True)
    assert renders_.started == [render_id]
    assert render.render_of(resumed).render_id == render_id
    assert resumed.durable.state == "rendering"
    assert [row for row in log if row[0] == "saved"] == [
        ("saved", "starting", render_id),
        ("saved", "rendering", render_id),
    ]


async def test_the_stream_opening_is_recorded_before_its_first_event_is_read(
    tmp_path: Path,
) -> None:
    log: list[tuple[str, ...]] = []
    run = Recorded(entry("message", request={"message": "hi"}), log)

    def stream(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/run_sse":
            return None
        log.append(("sent", "message", ""))
        return sse(data_frame({"type": "text", "text": "Done", "author": "nemo_agent"}))

    async def on_event(event: Any) -> None:
        if isinstance(event, OpenedEvent):
            await message.opened(run)
        else:
            log.append(("read", type(event).__name__, ""))

    async with make_client(tmp_path, FakeBackend(script=[stream])) as client:
        await message.sending(run, session_id="s1", before=None, credits=None)
        await send_message(client, "hi", on_event)
    assert [row[:2] for row in log] == [
        ("saved", "sending"),
        ("sent", "message"),
        ("saved", "streaming"),
        ("read", "TextEvent"),
    ]
    assert run.sticky  # the backend has it: a failure now is never re-sent
