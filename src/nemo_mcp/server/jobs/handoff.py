"""A hand-off job: one timeline handed to an editor (`export` with format otio, fcpxml or
xml), as the ledger holds it, typed. It is its own kind of work: it renders nothing and
spends nothing, so no render count, render list or render rule ever sees it, and a render
never answers it (nor it a render).

Its phases and the moves between them (each saved before the step it guards acts), named
by the ledger's states:

    queued -> downloading        the draft is read and kept, and its folder made: the media
                                 is fetched into it, then the timeline file and README are
                                 written (`progress` says which)
    downloading -> downloading   taken up again after a stop: the files still the ones
                                 saved are kept, the rest fetched, the timeline written anew
    any -> done | failed         the folder, or the failure, is recorded
    queued -> cancelled          dropped by a cancel before it started (`Ledger.drop`)

`queued -> done` is the same timeline handed off before, its folder still whole (reused).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from nemo_mcp.server.jobs.common import JobFacts
from nemo_mcp.server.outputs import ExportOutput

HandoffPhase = Literal["queued", "downloading", "done", "failed", "cancelled"]

#: The moves a hand-off may make (the two ends are reachable from every phase).
HANDOFF_MOVES: dict[str, frozenset[str]] = {
    "queued": frozenset({"downloading"}),
    "downloading": frozenset({"downloading"}),
}


class HandoffJob(JobFacts):
    """What is known of one hand-off: what was asked, its folder and the files in it."""

    kind: Literal["handoff"] = "handoff"
    phase: HandoffPhase
    format: str
    fresh: bool = False
    earlier: str | None = Field(
        None, description="The newest hand-off in this format when this one was asked"
    )
    after: int = Field(0, description="The user's newest entry when this one was asked")
    digest: str | None = None
    draft: Any = None
    folder: str | None = None
    media: dict[str, dict[str, Any]] = Field(default_factory=dict)
    file: str | None = None
    written: list[dict[str, Any]] = Field(default_factory=list)
    size: int | None = None
    not_carried: list[str] = Field(default_factory=list)
    started_at: float | None = None
    reused_from: str | None = None
    percent: float | None = None
    error: str | None = None

    def output(self, *, elapsed: float, reused: bool) -> ExportOutput:
        """The finished hand-off this job describes."""
        return ExportOutput(
            status="completed",
            render_id="",
            progress_percent=100,
            file=self.file,
            folder=self.folder,
            handoff_format=self.format,
            size_bytes=self.size,
            not_carried=self.not_carried,
            reused=reused,
            elapsed_seconds=round(0.0 if reused else elapsed, 1),
            next_steps=[f"Open the folder {self.folder} in the editor (its README says how)."],
            request_id=self.handle,
        )


__all__ = ["HANDOFF_MOVES", "HandoffJob", "HandoffPhase"]
