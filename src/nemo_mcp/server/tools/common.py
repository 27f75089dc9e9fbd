"""What every tool module shares: results, roots, progress and how long a call waits; and,
from `server.calls` (which the studio shares too), the caller's service, annotations and
the view the tools name."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.resolve import ListRoots
from mcp_types import CallToolResult, ContentBlock, ListRootsResult, TextContent
from pydantic import BaseModel

from nemo_mcp import redaction
from nemo_mcp.server.boundary import tool_boundary
from nemo_mcp.server.calls import (
    STUDIO_TOOL_META,
    STUDIO_URI,
    client_of,
    hints,
    service_of,
    services_of,
)
from nemo_mcp.server.clients import caller_of, wait_budget
from nemo_mcp.server.paths import FilePolicy, roots_from_uris
from nemo_mcp.server.work import PROGRESS_EVERY

if TYPE_CHECKING:
    from nemo_mcp.server.service import NemoService

MB = 1_000_000

#: What a waiting tool reports: progress, total (None when unknown), a phase in words.
Report = Callable[[float, "float | None", str], Awaitable[None]]


def guarded(work: str) -> Callable[[Any], Any]:
    """The one error boundary (`boundary.tool_boundary`) for a tool handler doing `work`."""
    return tool_boundary(work, client_of)


def result(
    text: str, model: BaseModel, *extra: ContentBlock, notices: list[str] | None = None
) -> CallToolResult:
    """A tool result: readable text for the agent, the model as structured content.

    `notices` (said once: damaged state set aside) come first."""
    if notices:
        text = "\n".join(notices) + "\n\n" + text
    content: list[ContentBlock] = [
        TextContent(type="text", text=redaction.redact(text, claims=False)),
        *extra,
    ]
    return CallToolResult(
        content=content,
        structured_content=json.loads(redaction.redact(model.model_dump_json(), claims=False)),
    )


def served(ctx: Context) -> bool:
    """Whether callers are on other machines (the server's disk paths are not theirs)."""
    return services_of(ctx).exposure.served


async def get_roots(ctx: Context) -> ListRoots | None:
    """Ask a local client for its roots when it declares the capability.

    A served client's roots describe its own machine, so it is never asked.
    """
    if services_of(ctx).exposure.served:
        return None
    caps = ctx.client_capabilities
    if caps is None or caps.roots is None:
        return None
    return ListRoots()


def file_policy(ctx: Context, service: NemoService, roots: ListRootsResult | None) -> FilePolicy:
    """Where the caller's local files may come from, as the exposure decides."""
    folders = None if roots is None else roots_from_uris([str(r.uri) for r in roots.roots])
    return services_of(ctx).exposure.file_policy(service.settings, folders)


def byte_progress(ctx: Context, doing: str) -> Callable[[int, int], Awaitable[None]]:
    """A callback for a transfer's (done, total) bytes that reports to the client at
    most every couple of seconds, never once per chunk."""
    last = -PROGRESS_EVERY

    async def update(done: int, total: int) -> None:
        nonlocal last
        now = anyio.current_time()
        if now - last >= PROGRESS_EVERY / 2 or done >= total:
            last = now
            await ctx.report_progress(done, total or None, f"{doing}: {done / MB:.0f} MB")

    return update


def budget(ctx: Context, service: NemoService) -> float:
    """Seconds this call waits for its work before answering "still running": longer for
    clients known to keep a call open (`server/clients.py`)."""
    return wait_budget(caller_of(ctx), service.settings)


def reporter(ctx: Context) -> Report:
    async def report(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, message)

    return report


__all__ = [
    "MB",
    "STUDIO_TOOL_META",
    "STUDIO_URI",
    "Report",
    "budget",
    "byte_progress",
    "client_of",
    "file_policy",
    "get_roots",
    "guarded",
    "hints",
    "reporter",
    "result",
    "served",
    "service_of",
]
