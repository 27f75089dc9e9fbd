"""`export`: render the timeline once, save the MP4, return the file and links."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult
from pydantic import Field

from nemo_mcp.server.jobs import Job
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.server.tools.common import guarded, hints, reporter, result, service_of

NAME = "export"
TITLE = "Export the video as an MP4"
DESCRIPTION = (
    "Render the current timeline to a video file and save it on this computer. Free (no "
    "credits). Starts exactly one render per request; if the result says 'rendering', "
    "call export again to keep waiting on the same render (it is never started twice). "
    "Returns the saved file path, the video URL and a link to open the project in the "
    "browser. Call after `generate`."
)

# One value reads as `const` in JSON Schema; `enum` is what clients show as a choice.
Format = Annotated[
    Literal["mp4"], Field(description="Container", json_schema_extra={"enum": ["mp4"]})
]
Quality = Annotated[Literal["high", "medium", "low"], Field(description="Render quality")]
Fresh = Annotated[
    bool, Field(description="Render again even if this exact timeline was already exported")
]


def rendering_output(job: Job[ExportOutput]) -> ExportOutput:
    """What a caller gets while the render is still running."""
    return ExportOutput(
        status="rendering",
        render_id=job.key,
        progress_percent=int(job.percent or 0),
        progress=job.status_line(),
        elapsed_seconds=round(job.elapsed, 1),
        next_steps=["Call `export` again to keep waiting on this render."],
    )


def export_text(out: ExportOutput, *, resumed: bool = False) -> str:
    """The agent's text for an `export` result."""
    if out.status == "rendering":
        return (
            f"Rendering: {out.progress}. The render {out.render_id} continues on NemoVideo; "
            "call `export` again to wait for it (no second render is started)."
        )
    size = f" ({out.size_bytes / 1_000_000:.1f} MB)" if out.size_bytes else ""
    lines = [
        ("Already exported this exact timeline: " if out.reused else "Video ready: ")
        + f"{out.file}{size}",
    ]
    if out.url:
        lines.append(f"URL: {out.url}")
    if out.browser_link:
        lines.append(f"Open the project in the browser: {out.browser_link}")
    if resumed:
        lines.append(f"(Resumed render {out.render_id} started earlier; no new render.)")
    return "\n".join(lines)


@guarded("Exporting the video")
async def export(
    ctx: Context,
    format: Format = "mp4",
    quality: Quality = "high",
    fresh: Fresh = False,
) -> Annotated[CallToolResult, ExportOutput]:
    service = await service_of(ctx)
    job, how = await service.submit_export(fmt=format, quality=quality, fresh=fresh)
    finished = await job.wait(service.settings.tool_timeout, reporter(ctx))
    if not finished:
        out = rendering_output(job)
        return result(export_text(out), out)
    job.delivered = True
    if job.error is not None:
        raise job.error
    assert job.result is not None
    return result(export_text(job.result, resumed=how == "resumed"), job.result)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        export,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=False, idempotent=True),
    )
