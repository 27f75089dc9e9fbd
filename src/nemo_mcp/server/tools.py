"""The five tools: thin adapters from MCP calls to the service, and back to readable text."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resolve import ListRoots, Resolve
from mcp_types import CallToolResult, ListRootsResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from nemo_mcp import redaction
from nemo_mcp.errors import NemoError
from nemo_mcp.server.edge import tool_error
from nemo_mcp.server.jobs import Job
from nemo_mcp.server.outputs import (
    CreditsOutput,
    ExportOutput,
    GenerateOutput,
    TimelineOutput,
    UploadedItem,
    UploadOutput,
)
from nemo_mcp.server.paths import check_path, classify, roots_from_uris
from nemo_mcp.server.http import bearer, identity_key
from nemo_mcp.server.service import NemoService, Services

log = logging.getLogger(__name__)

GENERATION_COST = 100
EDIT_COST = 50


async def service_of(ctx: Context) -> NemoService:
    """The caller's service: per bearer token when serving several HTTP users."""
    services: Services = ctx.request_context.lifespan_context["services"]
    if not services.multi_user:
        return await services.get(None)
    token = bearer(ctx.headers)
    if token is None:  # the HTTP gate lets no such request through; stdio has no users
        return await services.get(None)
    return await services.get(identity_key(token))


def _route(text: str) -> str:
    from nemo_mcp.replies.routing import route  # loaded on first use, not at start-up

    return route(text)


def result(text: str, model: BaseModel) -> CallToolResult:
    """A tool result: readable text for the agent, the model as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=redaction.redact(text, claims=False))],
        structured_content=json.loads(redaction.redact(model.model_dump_json(), claims=False)),
    )


async def get_roots(ctx: Context) -> ListRoots | None:
    caps = ctx.client_capabilities
    if caps is None or caps.roots is None:
        return None
    return ListRoots()


def hints(*, read_only: bool, idempotent: bool) -> ToolAnnotations:
    """Honest annotations: nothing here destroys data; everything talks to NemoVideo."""
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=False,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


def _reporter(ctx: Context):  # type: ignore[no-untyped-def]
    async def report(progress: float, total: float | None, message: str) -> None:
        await ctx.report_progress(progress, total, message)

    return report


# generate ------------------------------------------------------------------------------
def generate_text(out: GenerateOutput, *, how: str, job: Job[GenerateOutput], asked: str) -> str:
    lines: list[str] = []
    if how == "resumed":
        lines.append(
            "This request was already sent before the server restarted, so it was not sent "
            "again; its outcome is read from the timeline."
        )
    if how == "joined" and " ".join(asked.split()).casefold() != " ".join(job.key.split()).casefold():
        lines.append(
            f"Another request is still running (\"{job.key[:80]}\"), so this one was NOT sent "
            "(that would pay twice). Its progress is below; send the new request after it finishes."
        )
    if out.status == "running":
        lines.append(
            f"Still working: {job.status_line()}. The work continues on NemoVideo and nothing more "
            "is charged. Call `generate` again with the same request to wait for the result "
            "(or `timeline` to look meanwhile)."
        )
        if out.raw_clip_ready:
            lines.append("The raw clip has already landed; music and titles are being added.")
        if out.timeline:
            lines.append(out.timeline)
        return "\n".join(lines)
    lines.append(out.reply)
    if out.changes:
        lines.append("Changes:\n" + "\n".join(f"- {c}" for c in out.changes))
    if out.timeline:
        lines.append(out.timeline)
    fresh = [s for s in out.next_steps if _tool_named(s) not in out.reply]
    if fresh:
        lines.append("Next: " + " ".join(fresh))
    return "\n\n".join(lines)


def _tool_named(step: str) -> str:
    """The backticked tool name a next-step sentence is about."""
    start = step.find("`")
    end = step.find("`", start + 1)
    return step[start : end + 1] if start >= 0 and end > start else step


def running_output(service: NemoService, job: Job[GenerateOutput]) -> GenerateOutput:
    return GenerateOutput(
        status="running",
        reply="",
        raw_clip_ready="raw_clip" in job.milestones,
        next_steps=["Call `generate` again with the same request to wait for the result."],
        elapsed_seconds=round(job.elapsed, 1),
        session_id=service.client.session_id,
    )


NOT_SENT = {
    "export": "This is an export request, so nothing was sent to the video agent (that would "
    "cost credits and do nothing). Call `export` to render and download the MP4 (free).",
    "credits": "This asks about credits, so nothing was sent to the video agent. Call `credits`.",
    "timeline": "This asks for the status, so nothing was sent to the video agent. Call `timeline`.",
    "upload": "This is an upload request, so nothing was sent to the video agent. Call `upload` "
    "with the file paths or http(s) URLs.",
}


def register(mcp: MCPServer[Any]) -> None:
    @mcp.tool(
        name="generate",
        title="Generate or edit a video",
        description=(
            "Send any creative request to the NemoVideo agent: make a new video from a prompt, "
            "animate uploaded images, turn a script into a video, or edit the current one (add "
            "music, titles, overlays, trim, change volume). Costs credits: about 100 for a new "
            "clip, about 50 for an edit. Returns the agent's reply, the exact timeline changes and "
            "the new timeline. Long work continues in the background: if the result says "
            "'running', call generate again with the same request to wait for it; it is never "
            "sent or charged twice. Do not use for export, credits, status or uploads (use those "
            "tools). Next: `export` to get the MP4."
        ),
        annotations=hints(read_only=False, idempotent=False),
    )
    async def generate(
        ctx: Context,
        message: Annotated[
            str,
            Field(
                min_length=1,
                max_length=20_000,
                description="What to make or change, in plain words, e.g. 'a 10-second video of "
                "a futuristic city at sunset' or 'add lo-fi background music at 40%'",
            ),
        ],
        script_file: Annotated[
            str | None,
            Field(
                description="Absolute path of a script (.txt, .md, .docx, .pdf) whose text is sent "
                "with the request, for script-to-video"
            ),
        ] = None,
        new_project: Annotated[
            bool,
            Field(description="Start a fresh, empty project first instead of editing the current one"),
        ] = False,
        roots: Annotated[ListRootsResult | None, Resolve(get_roots)] = None,
    ) -> Annotated[CallToolResult, GenerateOutput]:
        service = await service_of(ctx)
        try:
            text = message.strip()
            if script_file:
                from nemo_mcp.documents import read_script

                allowed = roots_from_uris([str(r.uri) for r in roots.roots]) if roots else list(
                    service.settings.upload_dirs
                )
                checked_script = check_path(script_file, allowed)
                script = await anyio.to_thread.run_sync(read_script, checked_script)
                text = f"{text}\n\nScript:\n{script}"
            elif (intent := _route(text)) != "message":
                out = GenerateOutput(status="not_sent", reply=NOT_SENT[intent], next_steps=[f"Call `{intent}`."])
                return result(out.reply, out)
            job, how = await service.submit_generation(text, new_project=new_project)
            finished = await job.wait(service.settings.tool_timeout, _reporter(ctx))
            if not finished:
                out = running_output(service, job)
                return result(generate_text(out, how=how, job=job, asked=text), out)
            if job.error is not None:
                job.delivered = True
                raise job.error
            assert job.result is not None
            job.delivered = True
            return result(generate_text(job.result, how=how, job=job, asked=text), job.result)
        except NemoError as err:
            raise tool_error(err, service.client) from None

    # upload ----------------------------------------------------------------------------
    @mcp.tool(
        name="upload",
        title="Upload files or links",
        description=(
            "Upload local files (absolute paths) or http(s) URLs to the current NemoVideo project: "
            "videos (mp4, mov, avi, webm, mkv), images (jpg, png, gif, webp) or audio (mp3, wav, "
            "m4a, aac). Free. Local files must be inside the client's roots (or NEMO_UPLOAD_DIRS); "
            "type and size are checked before anything is sent. Next: `generate` to use them "
            "(e.g. 'animate this image into a 5-second video')."
        ),
        annotations=hints(read_only=False, idempotent=False),
    )
    async def upload(
        ctx: Context,
        sources: Annotated[
            list[str],
            Field(min_length=1, max_length=20, description="Absolute file paths and/or http(s) URLs"),
        ],
        roots: Annotated[ListRootsResult | None, Resolve(get_roots)] = None,
    ) -> Annotated[CallToolResult, UploadOutput]:
        service = await service_of(ctx)
        client = service.client
        try:
            allowed = (
                roots_from_uris([str(r.uri) for r in roots.roots])
                if roots is not None
                else list(service.settings.upload_dirs)
            )
            checked = classify(sources, allowed)
            paths = [s.path for s in checked if s.path is not None]
            urls = [s.url for s in checked if s.url is not None]
            client.check_files(paths)  # every local file, before any URL upload is sent
            items: list[UploadedItem] = []
            if paths:
                uploaded = await client.upload_files(paths)
                log.info("uploaded %d files", len(paths))
                items += _items([s.given for s in checked if s.path is not None], uploaded.files)
            if urls:
                uploaded = await client.upload_urls(urls)
                items += _items([s.given for s in checked if s.url is not None], uploaded.files)
        except NemoError as err:
            raise tool_error(err, client) from None
        out = UploadOutput(
            files=items,
            next_steps=["Call `generate` and describe what to make with the uploads."],
        )
        lines = [f"Uploaded {len(items)} file{'s' if len(items) != 1 else ''}:"]
        for item in items:
            facts = [item.type or "file"]
            if item.duration_seconds:
                facts.append(f"{item.duration_seconds:g}s")
            if item.width and item.height:
                facts.append(f"{item.width}x{item.height}")
            lines.append(f"- {item.name or item.source} ({', '.join(facts)})")
        lines.append("Next: " + out.next_steps[0])
        return result("\n".join(lines), out)

    # export ----------------------------------------------------------------------------
    @mcp.tool(
        name="export",
        title="Export the video as an MP4",
        description=(
            "Render the current timeline to a video file and save it on this computer. Free (no "
            "credits). Starts exactly one render per request; if the result says 'rendering', "
            "call export again to keep waiting on the same render (it is never started twice). "
            "Returns the saved file path, the video URL and a link to open the project in the "
            "browser. Call after `generate`."
        ),
        annotations=hints(read_only=False, idempotent=True),
    )
    async def export(
        ctx: Context,
        format: Annotated[str, Field(pattern="^(mp4)$", description="Container; mp4")] = "mp4",
        quality: Annotated[
            str, Field(pattern="^(high|medium|low)$", description="Render quality")
        ] = "high",
        fresh: Annotated[
            bool,
            Field(description="Render again even if this exact timeline was already exported"),
        ] = False,
    ) -> Annotated[CallToolResult, ExportOutput]:
        service = await service_of(ctx)
        try:
            job, how = await service.submit_export(fmt=format, quality=quality, fresh=fresh)
            finished = await job.wait(service.settings.tool_timeout, _reporter(ctx))
            if not finished:
                out = ExportOutput(
                    status="rendering",
                    render_id=job.key,
                    progress_percent=int(job.percent or 0),
                    elapsed_seconds=round(job.elapsed, 1),
                    next_steps=["Call `export` again to keep waiting on this render."],
                )
                text = (
                    f"Rendering: {job.status_line()}. The render {job.key} continues on NemoVideo; "
                    "call `export` again to wait for it (no second render is started)."
                )
                return result(text, out)
            job.delivered = True
            if job.error is not None:
                raise job.error
            assert job.result is not None
            out = job.result
        except NemoError as err:
            raise tool_error(err, service.client) from None
        size = f" ({out.size_bytes / 1_000_000:.1f} MB)" if out.size_bytes else ""
        lines = [
            ("Already exported this exact timeline: " if out.reused else "Video ready: ")
            + f"{out.file}{size}",
        ]
        if out.url:
            lines.append(f"URL: {out.url}")
        if out.browser_link:
            lines.append(f"Open the project in the browser: {out.browser_link}")
        if how == "resumed":
            lines.append(f"(Resumed render {out.render_id} started earlier; no new render.)")
        return result("\n".join(lines), out)

    # credits ---------------------------------------------------------------------------
    @mcp.tool(
        name="credits",
        title="Check credits",
        description=(
            "Show the NemoVideo credit balance: available, frozen (held for work in progress) and "
            "total. Free. A new clip costs about 100 credits, an edit about 50, export nothing."
        ),
        annotations=hints(read_only=True, idempotent=True),
    )
    async def credits(ctx: Context) -> Annotated[CallToolResult, CreditsOutput]:
        service = await service_of(ctx)
        client = service.client
        try:
            balance = await client.credits()
        except NemoError as err:
            raise tool_error(err, client) from None
        notes = []
        if balance.frozen:
            notes.append(f"{balance.frozen:g} are held for work in progress and return if it fails.")
        if balance.available < EDIT_COST:
            more = f" Register at {client.registration_link()} for more." if client.anonymous else " Top up to continue."
            notes.append(f"Not enough for an edit (~{EDIT_COST}) or a new clip (~{GENERATION_COST}).{more}")
        elif balance.available < GENERATION_COST:
            notes.append(f"Enough for an edit (~{EDIT_COST}) but not a new clip (~{GENERATION_COST}).")
        out = CreditsOutput(
            available=balance.available,
            frozen=balance.frozen,
            total=balance.total if balance.total is not None else balance.available + balance.frozen,
            anonymous=client.anonymous,
            note=" ".join(notes),
        )
        text = f"Credits: {out.available:g} available, {out.frozen:g} frozen, {out.total:g} total."
        return result(f"{text} {out.note}".strip(), out)

    # timeline --------------------------------------------------------------------------
    @mcp.tool(
        name="timeline",
        title="Show the timeline",
        description=(
            "Show the current project's timeline: a one-line summary, every track and segment, "
            "whether it is ready to export, uploads, generated media, and any work still running. "
            "Free and read-only; use it to check status at any time."
        ),
        annotations=hints(read_only=True, idempotent=True),
    )
    async def timeline(ctx: Context) -> Annotated[CallToolResult, TimelineOutput]:
        from nemo_mcp.timeline import describe, parse_draft, summarize, view

        service = await service_of(ctx)
        try:
            snapshot = await service.client.state()
        except NemoError as err:
            raise tool_error(err, service.client) from None
        draft = parse_draft(snapshot.state.draft)
        shown = view(draft)
        dumped = shown.model_dump(mode="json")
        out = TimelineOutput(
            summary=summarize(draft),
            detail=describe(draft),
            ready_for_export=draft.ready,
            duration_seconds=round(draft.duration_ms / 1000, 3) if draft.duration_ms else 0.0,
            tracks=list(dumped.get("tracks", [])),
            uploads=_records(snapshot.state.video_infos),
            generated_media=_records(snapshot.state.generated_media),
            running=service.running(),
            session_id=snapshot.session_id or service.client.session_id,
        )
        lines = [out.detail]
        lines.append("Ready to export." if out.ready_for_export else "Not ready to export yet: call `generate` first.")
        if out.uploads:
            lines.append(f"Uploads: {len(out.uploads)}.")
        if out.generated_media:
            lines.append(f"Generated media: {len(out.generated_media)}.")
        for line in out.running:
            lines.append(f"Running: {line}")
        return result("\n".join(lines), out)


def _items(given: list[str], files: list[Any]) -> list[UploadedItem]:
    items = []
    for n, source in enumerate(given):
        info = files[n] if n < len(files) else None
        items.append(
            UploadedItem(
                source=source,
                name=getattr(info, "filename", None) or Path(source).name,
                type=getattr(info, "file_type", None),
                duration_seconds=getattr(info, "duration", None),
                width=getattr(info, "width", None),
                height=getattr(info, "height", None),
                url=getattr(info, "cdn_url", None),
            )
        )
    return items


def _records(value: Any, limit: int = 50) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = list(value.values()) if all(isinstance(v, dict) for v in value.values()) else [value]
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)][:limit]

