"""Structured outputs of the five tools (each tool's `outputSchema`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class GenerateOutput(BaseModel):
    status: Literal["completed", "running", "queued", "failed", "not_sent", "declined"] = Field(
        description="completed: the agent finished; running: still working, call generate again "
        "to wait for it; queued: waiting behind earlier requests on this project, call generate "
        "again to wait; not_sent: the request belongs to another tool; declined: the user did "
        "not agree to spend the credits, nothing was sent"
    )
    reply: str = Field(description="The agent's answer, rewritten for tool use (no GUI steps)")
    changes: list[str] = Field(default_factory=list, description="Exact timeline changes")
    timeline: str = Field("", description="One-line timeline after the request")
    raw_clip_ready: bool = Field(False, description="The generated clip has landed on the timeline")
    clip_url: str | None = Field(
        None, description="The media link of the new video clip this request put on the timeline"
    )
    recovered: bool = Field(
        False, description="The stream broke and the result was read from the timeline instead"
    )
    progress: str = Field("", description="While running: the current phase, in words")
    ahead: int = Field(0, description="While queued: requests that run before this one")
    notes: list[str] = Field(
        default_factory=list, description="How this request was handled, when it matters"
    )
    next_steps: list[str] = Field(default_factory=list)
    elapsed_seconds: float = 0.0
    session_id: str | None = None
    request_id: str | None = Field(
        None,
        description="This request's handle: call generate with only this request_id to wait "
        "for it (nothing is sent again)",
    )


class UploadedItem(BaseModel):
    source: str = Field(description="The path or URL given")
    name: str | None = None
    type: str | None = None
    duration_seconds: float | None = None
    width: int | None = None
    height: int | None = None
    url: str | None = None
    converted: Literal["converted", "shrunk"] | None = Field(
        None,
        description="converted: a HEIC photo was sent as JPEG, or an M4V as MP4; shrunk: a "
        "video over the upload limit was re-encoded to fit. The original file is unchanged",
    )
    note: str | None = Field(None, description="What was done to the file before it was sent")


class UploadOutput(BaseModel):
    files: list[UploadedItem]
    next_steps: list[str] = Field(default_factory=list)


class ExportOutput(BaseModel):
    status: Literal["completed", "rendering", "queued", "failed"] = Field(
        description="completed: saved; rendering: call export again to wait; queued: waiting "
        "for earlier requests on this project (such as an edit) to finish first"
    )
    render_id: str
    progress_percent: int = 0
    progress: str = Field("", description="While rendering: the current phase, in words")
    ahead: int = Field(0, description="While queued: requests that run before this one")
    resumed: bool = Field(
        False, description="Continued a render started earlier (by a server that stopped)"
    )
    url: str | None = Field(None, description="The rendered video's URL")
    file: str | None = Field(None, description="Where the MP4 was saved")
    size_bytes: int | None = None
    browser_link: str | None = Field(None, description="Open the project in the NemoVideo web app")
    reused: bool = Field(False, description="An earlier export of this same timeline was returned")
    elapsed_seconds: float = 0.0
    next_steps: list[str] = Field(default_factory=list)
    # A hand-off (format otio, fcpxml or xml): `file` is the timeline file in `folder`.
    folder: str | None = Field(
        None, description="Hand-off: the folder holding the timeline file, its media and a README"
    )
    handoff_format: str | None = Field(None, description="Hand-off: the timeline format written")
    not_carried: list[str] = Field(
        default_factory=list, description="Hand-off: what the format could not hold, in words"
    )
    request_id: str | None = Field(
        None,
        description="This export's handle: call export with this request_id to wait for it "
        "(no second render is started)",
    )


class CreditsOutput(BaseModel):
    available: float
    frozen: float = Field(description="Held for work in progress")
    total: float
    anonymous: bool
    note: str = ""


class TimelineOutput(BaseModel):
    summary: str
    detail: str
    ready_for_export: bool
    duration_seconds: float
    tracks: list[dict[str, Any]] = Field(default_factory=list)
    uploads: list[dict[str, Any]] = Field(default_factory=list)
    generated_media: list[dict[str, Any]] = Field(default_factory=list)
    running: list[str] = Field(default_factory=list, description="Work still in progress")
    session_id: str | None = None
