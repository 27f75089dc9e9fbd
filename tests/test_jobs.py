"""Typed jobs: the one reader of a ledger entry's columns, and each kind's moves."""

from __future__ import annotations

from typing import Any

import pytest

from nemo_mcp.ledger import Entry
from nemo_mcp.server.jobs import (
    IllegalMoveError,
    MessageJob,
    RenderJob,
    check_move,
    handle_of,
    job_of,
)


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
