"""`upload`: local files (inside the allowed folders) or http(s) URLs into the current project."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, ListRootsResult
from pydantic import Field

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.server.icons import icon
from nemo_mcp.server.outputs import UploadedItem, UploadOutput
from nemo_mcp.server.paths import classify
from nemo_mcp.server.tools.common import (
    byte_progress,
    file_policy,
    get_roots,
    guarded,
    hints,
    result,
    service_of,
)

if TYPE_CHECKING:
    from nemo_mcp.backend.models import UploadedFile

log = logging.getLogger(__name__)

NAME = "upload"
TITLE = "Upload files or links"
DESCRIPTION = (
    "Upload local files (absolute paths) or http(s) URLs to the current NemoVideo project: "
    "videos (mp4, mov, avi, webm, mkv), images (jpg, png, gif, webp) or audio (mp3, wav, "
    "m4a, aac). Free. Local files must be inside the client's roots (or NEMO_UPLOAD_DIRS); "
    "a server reached over the network takes http(s) URLs, or files in the user's upload "
    "folder there. Type and size are checked before anything is sent. Next: `generate` to "
    "use them (e.g. 'animate this image into a 5-second video')."
)

Sources = Annotated[
    list[str],
    Field(min_length=1, max_length=20, description="Absolute file paths and/or http(s) URLs"),
]


def items_for(given: Sequence[str], files: Sequence[UploadedFile]) -> list[UploadedItem]:
    """One item per source given, with what the backend said of it (in order)."""
    items = []
    for n, source in enumerate(given):
        info = files[n] if n < len(files) else None
        items.append(
            UploadedItem(
                source=source,
                name=(info.filename if info else None) or Path(source).name,
                type=info.file_type if info else None,
                duration_seconds=info.duration if info else None,
                width=info.width if info else None,
                height=info.height if info else None,
                url=info.cdn_url if info else None,
            )
        )
    return items


def upload_text(out: UploadOutput) -> str:
    """The agent's text for an `upload` result."""
    count = len(out.files)
    lines = [f"Uploaded {count} file{'s' if count != 1 else ''}:"]
    for item in out.files:
        facts = [item.type or "file"]
        if item.duration_seconds:
            facts.append(f"{item.duration_seconds:g}s")
        if item.width and item.height:
            facts.append(f"{item.width}x{item.height}")
        lines.append(f"- {item.name or item.source} ({', '.join(facts)})")
    lines.extend(f"Next: {step}" for step in out.next_steps[:1])
    return "\n".join(lines)


@guarded("Uploading")
async def upload(
    ctx: Context,
    sources: Sources,
    roots: Annotated[ListRootsResult | None, Resolve(get_roots)] = None,
) -> Annotated[CallToolResult, UploadOutput]:
    service = await service_of(ctx)
    client = service.client
    checked = classify(sources, file_policy(ctx, service, roots))
    paths = [s.path for s in checked if s.path is not None]
    urls = [s.url for s in checked if s.url is not None]
    client.check_files(paths)  # every local file, before any URL upload is sent
    items: list[UploadedItem] = []
    if paths:
        uploaded = await client.upload_files(paths, on_progress=byte_progress(ctx, "uploading"))
        log.info("uploaded %d files", len(paths))
        items += items_for([s.given for s in checked if s.path is not None], uploaded.files)
    if urls:
        # NemoVideo fetches the URLs itself: the caller waits, so the tool's budget bounds it.
        # (Local files are streamed from disk and take the time their size needs.)
        with time_bound(
            service.settings.tool_timeout,
            api_url=client.api_url,
            what="uploading the URLs",
            idempotent=False,
        ):
            uploaded = await client.upload_urls(urls)
        items += items_for([s.given for s in checked if s.url is not None], uploaded.files)
    out = UploadOutput(
        files=items,
        next_steps=["Call `generate` and describe what to make with the uploads."],
    )
    return result(upload_text(out), out, notices=service.take_notices())


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        upload,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=False, idempotent=False),
        icons=[icon("upload")],
    )
