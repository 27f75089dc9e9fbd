"""Typed job state: the one reader of what the ledger holds about a piece of work.

An entry's untyped columns (`request`, `memo`, `progress`, `error`) are read here into a
`MessageJob`, a `RenderJob` or a `HandoffJob` (a union discriminated by `kind`), each with its phase and
its facts as typed fields; nothing else in the server reads those columns by key. The
storage format is unchanged (the same JSON columns in both stores). Each kind's module
writes out its moves; `check_move` holds every recorded phase change to them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from nemo_mcp.ledger import FINAL, Entry
from nemo_mcp.server.jobs import message, render
from nemo_mcp.server.jobs.handoff import HANDOFF_MOVES, HandoffJob
from nemo_mcp.server.jobs.message import MESSAGE_MOVES, MessageJob
from nemo_mcp.server.jobs.render import RENDER_MOVES, RenderJob

AnyJob = MessageJob | RenderJob | HandoffJob
Job = Annotated[AnyJob, Field(discriminator="kind")]
_JOB: TypeAdapter[AnyJob] = TypeAdapter(Job)

#: Keys of work named by the caller's `request_id` start with this.
HANDLE = "id:"

_MOVES = {"message": MESSAGE_MOVES, "render": RENDER_MOVES, "handoff": HANDOFF_MOVES}


class IllegalMoveError(RuntimeError):
    """A run tried a phase change its kind does not allow (a bug, never input)."""


def handle_of(entry: Entry) -> str:
    """The handle of a piece of work: the caller's `request_id`, else the entry's own id."""
    return entry.key[len(HANDLE) :] if entry.key.startswith(HANDLE) else entry.id


def job_of(entry: Entry, memo: dict[str, Any] | None = None) -> AnyJob:
    """The typed job an entry holds (with `memo`, a run's newer facts, in place of its own)."""
    percent = entry.progress.get("percent")
    return _JOB.validate_python(
        {
            **entry.request,
            **(entry.memo if memo is None else memo),
            "kind": entry.kind,
            "id": entry.id,
            "handle": handle_of(entry),
            "phase": entry.state,
            "session_id": entry.session_id,
            "created_at": entry.created_at,
            "finished_at": entry.finished_at,
            "percent": percent if isinstance(percent, (int, float)) else None,
            "error": (entry.error or {}).get("message"),
        }
    )


def render_job(entry: Entry) -> RenderJob:
    job = job_of(entry)
    assert isinstance(job, RenderJob), entry.kind
    return job


def handoff_job(entry: Entry) -> HandoffJob:
    job = job_of(entry)
    assert isinstance(job, HandoffJob), entry.kind
    return job


def check_move(kind: str, old: str, new: str) -> None:
    """Refuse a phase change the job's kind does not list."""
    if new == old or new in FINAL or new in _MOVES[kind].get(old, frozenset()):
        return
    raise IllegalMoveError(f"a {kind} job cannot move from {old} to {new}")


__all__ = [
    "HANDLE",
    "AnyJob",
    "HandoffJob",
    "IllegalMoveError",
    "Job",
    "MessageJob",
    "RenderJob",
    "check_move",
    "handle_of",
    "handoff_job",
    "job_of",
    "message",
    "render",
    "render_job",
]
