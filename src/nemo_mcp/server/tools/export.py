"""`export`: render the timeline once, save the MP4, return the file and links."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ContentBlock
from pydantic import Field

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.handoff.folder import answer, waiting
from nemo_mcp.ledger import Entry, clock
from nemo_mcp.server import tasks
from nemo_mcp.server.export import pending_output
from nemo_mcp.server.icons import icon
from nemo_mcp.server.jobs import handle_of
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.server.previews import Picture, export_preview, file_link
from nemo_mcp.server.tools.common import (
    STUDIO_TOOL_META,
    budget,
    guarded,
    hints,
    reporter,
    result,
    served,
    service_of,
)

if TYPE_CHECKING:
    from nemo_mcp.server.service import NemoService

NAME = "export"
TITLE = "Export the video as an MP4"
#: The hand-off (nemo_mcp.handoff): `format` names a timeline format instead of a video.
HANDOFF_DESCRIPTION = (
    " To finish the video by hand in an editor, `format` 'otio' (DaVinci Resolve), 'fcpxml' "
    "(Final Cut Pro, DaVinci Resolve) or 'xml' (Final Cut 7 XML, for Premiere Pro) renders "
    "nothing and costs nothing: it saves a folder with the timeline file, its media and a "
    "README, and says what the format could not hold."
)
DESCRIPTION = (
    "Render the current timeline to a video file and save it on this computer (a hosted "
    "server returns its URL instead). Free (no credits). Starts exactly one render per "
    "request; a 'rendering' result gives its request_id: call export with that request_id "
    "to keep waiting on the same render (it is never started twice). The same format and "
    "quality asked while that export is unfinished, or before its result was returned with "
    "no other work on the project since, wait for it (even with fresh), so nothing is "
    "rendered twice; for several exports at once give each its own request_id. "
    "Returns the saved file path, the video URL and a link to open the project in the "
    "browser, with a contact sheet (a grid of frames) of the video to look at and, on this "
    "computer, a link to the MP4 itself. Call after `generate`."
) + HANDOFF_DESCRIPTION

# One value reads as `const` in JSON Schema; `enum` is what clients show as a choice.
Format = Annotated[
    Literal["mp4", "otio", "fcpxml", "xml"],
    Field(
        description="mp4: render the video; otio, fcpxml or xml: hand the timeline to an "
        "editor (a folder with the timeline file and its media; no render)"
    ),
]
Quality = Annotated[Literal["high", "medium", "low"], Field(description="Render quality")]
Fresh = Annotated[
    bool,
    Field(
        description="Render again even if this exact timeline was already exported (once "
        "the earlier export's result was returned; until then the call waits for it)"
    ),
]
RequestId = Annotated[
    str | None,
    Field(
        max_length=200,
        description="Optional handle of an export: a new id names this export; the id of a "
        "'rendering' result waits for that render",
    ),
]


def export_text(out: ExportOutput) -> str:
    """The agent's text for an `export` result."""
    if out.status == "queued":
        earlier = "request runs" if out.ahead == 1 else "requests run"
        return (
            f"Queued: {out.ahead} earlier {earlier} first on this project (an edit still "
            "running is rendered with the video), then this export starts, once. Call `export` "
            f'with request_id="{out.request_id}" to wait for it.'
        )
    if out.status == "rendering":
        which = f"The render {out.render_id}" if out.render_id else "The export"
        return (
            f"Rendering: {out.progress}. {which} continues on NemoVideo; call `export` with "
            f'request_id="{out.request_id}" to wait for it (no second render is started).'
        )
    size = f" ({out.size_bytes / 1_000_000:.1f} MB)" if out.size_bytes else ""
    saved = f"{out.file}{size}" if out.file else f"rendered{size}, download it from its URL"
    lines = [("Already exported this exact timeline: " if out.reused else "Video ready: ") + saved]
    if out.url:
        lines.append(f"URL: {out.url}")
    if out.browser_link:
        lines.append(f"Open the project in the browser: {out.browser_link}")
    if out.resumed:
        lines.append(f"(Resumed render {out.render_id} started earlier; no new render.)")
    if out.request_id:
        lines.append(f'(request_id "{out.request_id}")')
    return "\n".join(lines)


def handoff_text(out: ExportOutput) -> str:
    """The agent's text for a finished hand-off (nemo_mcp.handoff)."""
    return answer(
        fmt=out.handoff_format or "",
        folder=out.folder or "",
        file=out.file or "",
        not_carried=out.not_carried,
        reused=out.reused,
    )


def handoff_waiting(out: ExportOutput, fmt: str) -> str:
    """The agent's text for a hand-off still queued or under way."""
    return waiting(
        fmt=fmt,
        queued=out.status == "queued",
        ahead=out.ahead,
        progress=out.progress,
        request_id=out.request_id,
    )


@guarded("Exporting the video")
async def export(
    ctx: Context,
    format: Format = "mp4",
    quality: Quality = "high",
    fresh: Fresh = False,
    request_id: RequestId = None,
) -> Annotated[CallToolResult, ExportOutput]:
    service = await service_of(ctx)
    waits = budget(ctx, service)  # longer for clients known to keep the call open
    end = anyio.current_time() + waits
    inline = min(waits, service.settings.tool_timeout)
    with time_bound(inline, api_url=service.client.api_url, what="preparing the export"):
        ticket = await service.submit_export(
            fmt=format, quality=quality, fresh=fresh, request_id=request_id
        )
    if (task := await tasks.offer(ctx, service, ticket, remote=served(ctx))) is not None:
        return task
    left = max(0.0, end - anyio.current_time())
    entry, ahead = await service.work.follow(ticket, left, reporter(ctx))
    now = clock()
    if not entry.finished:
        out = pending_output(entry, ahead=ahead, now=now)
        fmt = out.handoff_format  # from the entry: a wait by request_id names no format
        text = handoff_waiting(out, fmt) if fmt else export_text(out)
        return result(text, out, notices=service.take_notices())
    return await finished_result(service, entry, served(ctx), end - anyio.current_time())


async def finished_result(
    service: NemoService, entry: Entry, remote: bool, left: float
) -> CallToolResult:
    """A finished export's result (also a task's), built for its caller: `remote` callers
    get no link to this server's disk."""
    out = ExportOutput.model_validate(entry.outcome)
    out.request_id = handle_of(entry)
    if out.folder:  # a hand-off: a folder for an editor, no video to look at
        return result(handoff_text(out), out, notices=service.take_notices())
    text, blocks = await with_preview(export_text(out), out, remote=remote, left=left)
    return result(text, out, *blocks, notices=service.take_notices())


async def with_preview(
    text: str, out: ExportOutput, *, remote: bool, left: float
) -> tuple[str, list[ContentBlock]]:
    """A finished export's text and extra blocks: the saved MP4's contact sheet, made in
    what is `left` of the call's budget (or a line saying why there is none), and, for a
    caller on this computer, a link to the file."""
    if out.status != "completed" or not out.file:
        return text, []
    file = Path(out.file)
    made = await export_preview(file, left=left)
    blocks: list[ContentBlock] = []
    if isinstance(made, Picture):
        blocks.append(made.block())
    else:
        text = f"{text}\n{made}"
    if not remote:  # a remote caller cannot open this server's disk
        blocks.append(file_link(file, out.size_bytes))
    return text, blocks


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        export,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=False, idempotent=True),
        icons=[icon("export")],
        meta=STUDIO_TOOL_META,
    )
