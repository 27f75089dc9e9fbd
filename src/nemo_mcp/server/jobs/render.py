"""A render job: one export, as the ledger holds it, typed; the one reader of its record.

Its phases and the moves between them (each saved before the step it guards acts):

    queued -> starting         the render id is recorded; the start is about to be sent
    queued -> downloading      an earlier render of this timeline was never saved: fetch it
    starting -> starting       a lost earlier render is replaced by a new one
    starting -> rendering      the backend has the render (started, or its id refused as known)
    rendering -> downloading   the render finished: its file is fetched, never rendered again
    downloading -> starting    the earlier render's file is gone from the backend too
    any -> done | failed       the saved file, or the failure, is recorded
    queued -> cancelled        dropped by a cancel before it started (`Ledger.drop`)

Every reader of a render (the export tool's answers, the `nemo://renders` resource, the
studio, the running-work lines) reads it through `RenderJob`.
"""

from __future__ import annotations

from typing import Any, Literal

from nemo_mcp.server.jobs.common import JobFacts
from nemo_mcp.server.outputs import ExportOutput

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


__all__ = ["RENDER_MOVES", "RenderJob", "RenderPhase"]
