"""A render job: one export, as the ledger holds it, typed; the one reader of its record.

Its phases and the moves between them (each saved before the step it guards acts):

    queued -> starting         the render id is recorded; the start is about to be sent
    queued -> downloading      an earlier render of this timeline was never saved: fetch it
    starting -> starting       a new id the backend refused is replaced by another, once
    starting -> rendering      the backend has the render (started, or its id refused as known)
    rendering -> downloading   the render finished: its file is fetched, never rendered again
    downloading -> starting    the earlier render's file is gone from the backend too
    any -> done | failed       the saved file, or the failure, is recorded
    queued -> cancelled        dropped by a cancel before it started (`Ledger.drop`)

Every reader of a render (the export tool's answers, the `nemo://renders` resource, the
studio, the running-work lines) reads it through `RenderJob`.

The moves are written out below, each returning once it is durable. `prepare` makes
the render id and records it, with all the start sends; only then does `start` send
it. A run that stops anywhere after `prepare` resumes in `starting` and sends the same
id again (the backend's refusal of a known id then means it exists): one render,
whatever happens. The backend (`backend.render`) records nothing; it answers.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from nemo_mcp.backend import render as renders
from nemo_mcp.backend.models import RenderStatus
from nemo_mcp.errors import RenderError
from nemo_mcp.ledger import Entry
from nemo_mcp.server.jobs.common import JobFacts, Journal
from nemo_mcp.server.outputs import ExportOutput

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient

log = logging.getLogger(__name__)

RenderPhase = Literal[
    "queued", "starting", "rendering", "downloading", "done", "failed", "cancelled"
]

#: The moves a render may make (the two ends are reachable from every phase).
RENDER_MOVES: dict[str, frozenset[str]] = {
    "queued": frozenset({"starting", "downloading"}),
    "starting": frozenset({"starting", "rendering"}),
    "rendering": frozenset({"downloading"}),
    "downloading": frozenset({"starting", "downloading"}),
}

_RECORD_STATUS = {"done": "completed", "starting": "rendering"}
#: What a saved download adds to a render's facts (and what fetching it again leaves out).
SAVED = ("file", "size", "sha256", "finished_at", "resumed", "reused_from", "from_earlier")


class RenderJob(JobFacts):
    """What is known of one export: what was asked, the render, and the saved file."""

    kind: Literal["render"] = "render"
    phase: RenderPhase
    format: str = "mp4"
    quality: str = "high"
    fresh: bool = False
    render_id: str | None = None
    digest: str | None = None
    title: str | None = None
    started_at: float | None = None
    draft: Any = None
    url: str | None = None
    expected_size: int | None = None
    rendered: bool = False
    file: str | None = None
    size: int | None = None
    sha256: str | None = None
    resumed: bool = False
    reused_from: str | None = None
    from_earlier: str | None = None
    percent: float | None = None
    error: str | None = None

    def output(self, *, link: str | None, elapsed: float, reused: bool) -> ExportOutput:
        """The finished export this job describes."""
        return ExportOutput(
            status="completed",
            render_id=self.render_id or "",
            progress_percent=100,
            url=self.url,
            file=self.file,
            size_bytes=self.size,
            browser_link=link,
            reused=reused,
            resumed=self.resumed and not reused,
            elapsed_seconds=round(elapsed, 1),
            next_steps=[
                "Share or open the saved MP4."
                if self.file
                else "Download the MP4 from its URL, or open the project in the browser."
            ],
            request_id=self.handle,
        )

    def record(self) -> dict[str, Any]:
        """The render as the `nemo://renders` resource shows it."""
        return {
            "id": self.render_id,
            "session_id": self.session_id,
            "status": _RECORD_STATUS.get(self.phase, self.phase),
            "progress": self.percent,
            "format": self.format,
            "quality": self.quality,
            "url": self.url,
            "file": self.file,
            "size": self.size,
            "reused": self.reused_from is not None,
            "asked_at": self.created_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "request_id": self.handle,
        }


def render_of(run: Journal) -> RenderJob:
    """The render as `run` knows it now (its newest facts)."""
    job = run.job
    assert isinstance(job, RenderJob), type(job).__name__
    return job


async def prepare(run: Journal, draft: Any, *, session_id: str, digest: str, title: str) -> str:
    """queued | downloading -> starting, or starting -> starting (a new id for one the
    backend refused): a new render id, recorded with everything its start sends, before
    it is sent."""
    render_id = renders.new_render_id()
    await run.save(
        state="starting",
        session_id=session_id,
        render_id=render_id,
        digest=digest,
        title=title,
        started_at=time.time(),
        draft=draft,
    )
    return render_id


async def start(run: Journal, client: NemoClient, *, sent_before: bool) -> None:
    """starting -> rendering: send the recorded start (`sent_before`: this id may have
    left before, in a run that stopped); record `rendering` once the backend has it.

    A clean refusal of a new id is answered as the contract says: a new id, recorded
    (`prepare`), started once."""
    job = render_of(run)
    assert job.phase == "starting" and job.render_id, job.phase
    run.phase("starting the render", 0)
    for renamed in (False, True):
        try:
            await renders.start_render(
                client,
                job.draft,
                render_id=job.render_id,
                session_id=job.session_id or "",
                output={"format": job.format, "quality": job.quality},
                sent_before=sent_before,
            )
            break
        except renders.StartRefusedError as refused:
            if renamed:
                raise RenderError(
                    f"the render could not be started: {refused.message}", code=refused.code
                ) from refused
            log.warning("render start refused (%s); retrying once with a new id", refused)
            await prepare(
                run,
                job.draft,
                session_id=job.session_id or "",
                digest=job.digest or "",
                title=job.title or "",
            )
            job = render_of(run)
    run.memo.pop("draft", None)  # the backend has it: no later run sends it again
    await run.save(state="rendering")


async def rendered(run: Journal, status: RenderStatus) -> None:
    """starting | rendering -> downloading: the render finished; from now on its file is
    fetched, and it is never rendered again."""
    await run.save(state="downloading", url=status.url, expected_size=status.size, rendered=True)


async def download_earlier(run: Journal, earlier: Entry, *, session_id: str, draft: Any) -> None:
    """queued -> downloading: an earlier render of this timeline finished, but its file was
    never saved (or is gone or changed): fetched again, never rendered again."""
    kept = {k: v for k, v in earlier.memo.items() if k not in SAVED}
    await run.save(
        state="downloading", session_id=session_id, from_earlier=earlier.id, draft=draft, **kept
    )


async def reuse(run: Journal, earlier: Entry) -> None:
    """(queued, then done) An earlier export of exactly this timeline, still saved, is
    this one's answer: nothing is rendered or downloaded."""
    await run.save(**{**earlier.memo, "reused_from": earlier.id})


__all__ = [
    "RENDER_MOVES",
    "SAVED",
    "RenderJob",
    "RenderPhase",
    "download_earlier",
    "prepare",
    "render_of",
    "rendered",
    "reuse",
    "start",
]
