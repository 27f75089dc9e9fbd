"""`timeline`: the current project's tracks, readiness for export, and work still running."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.server.icons import icon
from nemo_mcp.server.outputs import TimelineOutput
from nemo_mcp.server.tools.common import STUDIO_TOOL_META, guarded, hints, result, service_of

if TYPE_CHECKING:
    from nemo_mcp.backend.models import StateSnapshot

NAME = "timeline"
TITLE = "Show the timeline"
DESCRIPTION = (
    "Show the current project's timeline: a one-line summary, every track and segment, "
    "whether it is ready to export, uploads, generated media, and any work still running. "
    "Free and read-only; use it to check status at any time."
)


def records(value: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The objects in a state field that may be a list, a mapping of objects, or one object."""
    if isinstance(value, dict):
        objects = all(isinstance(v, dict) for v in value.values())
        value = list(value.values()) if objects else [value]
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)][:limit]


def timeline_output(
    snapshot: StateSnapshot, *, running: list[str], session_id: str | None
) -> TimelineOutput:
    """The structured timeline of a state snapshot."""
    from nemo_mcp.timeline import describe, parse_draft, summarize, view

    draft = parse_draft(snapshot.state.draft)
    dumped = view(draft).model_dump(mode="json")
    return TimelineOutput(
        summary=summarize(draft),
        detail=describe(draft),
        ready_for_export=draft.ready,
        duration_seconds=round(draft.duration_ms / 1000, 3) if draft.duration_ms else 0.0,
        tracks=list(dumped.get("tracks", [])),
        uploads=records(snapshot.state.video_infos),
        generated_media=records(snapshot.state.generated_media),
        running=running,
        session_id=snapshot.session_id or session_id,
    )


#: The hand-off (nemo_mcp.handoff), said wherever the timeline is ready.
HANDOFF_LINE = (
    "To finish it by hand in an editor: `export` with format 'otio' (DaVinci Resolve), "
    "'fcpxml' (Final Cut Pro, Resolve) or 'xml' (Premiere Pro) saves the timeline and its "
    "media in a folder (no render, no credits)."
)


def timeline_text(out: TimelineOutput) -> str:
    """The agent's text for a `timeline` result."""
    lines = [out.detail]
    lines.append(
        "Ready to export."
        if out.ready_for_export
        else "Not ready to export yet: call `generate` first."
    )
    if out.ready_for_export:
        lines.append(HANDOFF_LINE)
    if out.uploads:
        lines.append(f"Uploads: {len(out.uploads)}.")
    if out.generated_media:
        lines.append(f"Generated media: {len(out.generated_media)}.")
    lines.extend(f"Running: {line}" for line in out.running)
    return "\n".join(lines)


@guarded("Reading the timeline")
async def timeline(ctx: Context) -> Annotated[CallToolResult, TimelineOutput]:
    service = await service_of(ctx)
    budget = service.settings.tool_timeout
    with time_bound(budget, api_url=service.client.api_url, what="reading the timeline"):
        snapshot = await service.client.state()
    running = await service.running()
    out = timeline_output(snapshot, running=running, session_id=service.client.session_id)
    return result(timeline_text(out), out, notices=service.take_notices())


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        timeline,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=True, idempotent=True),
        icons=[icon("timeline")],
        meta=STUDIO_TOOL_META,
    )
