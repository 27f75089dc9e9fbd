"""`upload`: local files (inside the allowed folders) or http(s) URLs into the current project."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import Resolve
from mcp_types import CallToolResult, ListRootsResult
from pydantic import Field

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.server.icons import icon
from nemo_mcp.server.outputs import UploadedItem, UploadOutput
from nemo_mcp.server.paths import Source, classify, close_all, copy_opened
from nemo_mcp.server.scratch import scratch_folder
from nemo_mcp.server.tools.common import (
    byte_progress,
    file_policy,
    get_roots,
    guarded,
    hints,
    reporter,
    result,
    service_of,
)

if TYPE_CHECKING:
    from nemo_mcp.backend.models import UploadedFile
    from nemo_mcp.server.service import NemoService
    from nemo_mcp.server.uploading import Prepared

log = logging.getLogger(__name__)

NAME = "upload"
TITLE = "Upload files or links"
DESCRIPTION = (
    "Upload local files (absolute paths) or http(s) URLs to the current NemoVideo project: "
    "videos (mp4, mov, avi, webm, mkv), images (jpg, png, gif, webp) or audio (mp3, wav, "
    "m4a, aac). Free. Local files must be inside the client's roots (or NEMO_UPLOAD_DIRS); "
    "a server reached over the network takes http(s) URLs, or files in the user's upload "
    "folder there. Every local file is checked before anything is sent: content that does "
    "not match its extension, or a damaged file, is refused; HEIC photos are sent as JPEG "
    "and M4V videos as MP4 (the originals are untouched). A video over the upload limit is "
    "refused unless `shrink` is true, which sends a re-encoded copy that fits. Next: "
    "`generate` to use them (e.g. 'animate this image into a 5-second video')."
)

Sources = Annotated[
    list[str],
    Field(min_length=1, max_length=20, description="Absolute file paths and/or http(s) URLs"),
]


Shrink = Annotated[
    bool,
    Field(
        description="Re-encode a video over the upload limit into a smaller copy that fits "
        "(H.264; the original is unchanged). Off: such a video is refused"
    ),
]


def items_for(
    given: Sequence[str],
    files: Sequence[UploadedFile],
    prepared: Sequence[Prepared | None] = (),
) -> list[UploadedItem]:
    """One item per source given, with what the backend said of it (in order), and what
    was done to it before it was sent."""
    items = []
    for n, source in enumerate(given):
        info = files[n] if n < len(files) else None
        made = prepared[n] if n < len(prepared) else None
        items.append(
            UploadedItem(
                source=source,
                name=(info.filename if info else None) or Path(source).name,
                type=info.file_type if info else None,
                duration_seconds=info.duration if info else None,
                width=info.width if info else None,
                height=info.height if info else None,
                url=info.cdn_url if info else None,
                converted=made.done if made else None,
                note=made.note if made else None,
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
        if item.note:
            lines.append(f"  {item.note} The original file is unchanged.")
    lines.extend(f"Next: {step}" for step in out.next_steps[:1])
    return "\n".join(lines)


@guarded("Uploading")
async def upload(
    ctx: Context,
    sources: Sources,
    shrink: Shrink = False,
    roots: Annotated[ListRootsResult | None, Resolve(get_roots)] = None,
) -> Annotated[CallToolResult, UploadOutput]:
    service = await service_of(ctx)
    checked = classify(sources, file_policy(ctx, service, roots))
    local = [s for s in checked if s.opened is not None]
    links = [s for s in checked if s.url is not None]
    items: list[UploadedItem] = []
    try:
        if local:
            # Every local file is probed (and converted or shrunk) before any request
            # leaves, the URLs' included.
            items += await _upload_paths(
                ctx, service, local, shrink=shrink or service.settings.shrink_videos
            )
    finally:
        close_all(checked)
    if links:
        items += await _upload_urls(service, links)
    out = UploadOutput(
        files=items,
        next_steps=["Call `generate` and describe what to make with the uploads."],
    )
    return result(upload_text(out), out, notices=service.take_notices())


async def _upload_paths(
    ctx: Context, service: NemoService, local: Sequence[Source], *, shrink: bool
) -> list[UploadedItem]:
    # the media kit's side: on first use
    from nemo_mcp.server.uploading import check_size, prepare

    client = service.client
    async with scratch_folder("nemo-upload-") as scratch:  # only this process's user reads it
        # Every later step (probe, conversion, shrinking, sending) reads a private copy
        # made from the descriptor opened once, never the caller's path again.
        for source in local:  # type and size first: nothing too large is copied
            assert source.opened is not None
            check_size(source.opened.path, source.opened.size, client.upload_skill, shrink=shrink)
        paths = await anyio.to_thread.run_sync(_private_copies, local, Path(scratch))
        ready = await prepare(
            paths, client.upload_skill, Path(scratch), shrink=shrink, report=reporter(ctx)
        )
        sent = [item.path for item in ready]
        client.check_files(sent)
        uploaded = await client.upload_files(sent, on_progress=byte_progress(ctx, "uploading"))
    log.info("uploaded %d files", len(paths))
    return items_for([s.given for s in local], uploaded.files, ready)


def _private_copies(local: Sequence[Source], scratch: Path) -> list[Path]:
    copies = []
    for index, source in enumerate(local):
        assert source.opened is not None
        folder = scratch / f"{index:02d}-opened"
        folder.mkdir()
        copies.append(copy_opened(source.opened, folder / source.opened.path.name))
    return copies


async def _upload_urls(service: NemoService, links: Sequence[Source]) -> list[UploadedItem]:
    client = service.client
    urls = [s.url for s in links if s.url is not None]
    # NemoVideo fetches the URLs itself: the caller waits, so the tool's budget bounds it.
    # (Local files are streamed from disk and take the time their size needs.)
    with time_bound(
        service.settings.tool_timeout,
        api_url=client.api_url,
        what="uploading the URLs",
        idempotent=False,
    ):
        uploaded = await client.upload_urls(urls)
    return items_for([s.given for s in links], uploaded.files)


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        upload,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=False, idempotent=False),
        icons=[icon("upload")],
    )
