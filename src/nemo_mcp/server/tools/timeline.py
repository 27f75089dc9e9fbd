"""`timeline`: the current project's tracks, readiness for export, and work still running."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.server.icons import icon
from nemo_mcp.server.outputs import TimelineOutput
from nemo_mcp.server.snapshots import timeline_output
from nemo_mcp.server.tools.common import STUDIO_TOOL_META, guarded, hints, result, service_of

NAME = "timeline"
TITLE = "Show the timeline"
DESCRIPTION = (
    "Show the current project's timeline: a one-line summary, every track and segment, "
    "whether it is ready to export, uploads, generated media, and any work still running. "
    "Free and read-only; use it to check status at any time."
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
