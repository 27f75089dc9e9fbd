"""The studio view: an MCP App showing the project's video, timeline, credits and running work.

Hosts that support MCP Apps render `ui://nemovideo/studio` (one self-contained HTML file,
built from `app/studio/` by `npm run build:studio`) in a sandboxed iframe next to the result
of a tool that names it (`generate`, `export`, `timeline`: `STUDIO_TOOL_META`). The view asks
for everything through the app-only `studio_state` tool and calls `export` itself.

    studio = studio_for(settings)
    NemoServer(..., extensions=[studio.apps], middleware=[studio.middleware])

`studio_state` reads the work ledger: running work with its phase and percent, the newest
render of the current session, the credits and the timeline. The view's CSP allows media
from the API's origin and from the media origins of the caller's own renders in the
ledger, nothing else and never `*`; the middleware writes it into the answer each time
the view is listed or read (nothing is kept between requests, nothing is shared by users).
Clients that did not negotiate MCP Apps are not shown the view or `studio_state`; their
tools answer exactly as without the studio.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import json
import logging
import re
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from mcp.server.apps import Apps, ResourceCsp, client_supports_apps
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from nemo_mcp import redaction
from nemo_mcp.backend.budget import time_bound
from nemo_mcp.errors import NemoError
from nemo_mcp.ledger import Entry, clock
from nemo_mcp.server import calls
from nemo_mcp.server.boundary import message_for, tool_boundary
from nemo_mcp.server.calls import STUDIO_TOOL_META, STUDIO_URI
from nemo_mcp.server.jobs import render_job
from nemo_mcp.server.outputs import ExportOutput, TimelineOutput

if TYPE_CHECKING:
    from nemo_mcp.server.service import NemoService, Services
    from nemo_mcp.settings import Settings

log = logging.getLogger(__name__)

#: The largest contact sheet sent to the view (it travels base64 in every `studio_state`).
POSTER_MAX_BYTES: Final = 1_500_000
#: Media origins kept in the CSP, newest last; older ones drop out beyond this.
MAX_MEDIA_ORIGINS: Final = 32
#: Contact sheets kept in memory (by file, size and modification time).
SHEETS_KEPT: Final = 8
#: The longest the view's state waits for a contact sheet (made in a worker thread).
POSTER_SECONDS: Final = 20.0

ServiceOf = Callable[[Context], Awaitable["NemoService"]]
#: The contact sheet (JPEG bytes) of a completed export, or None when there is none.
PosterSource = Callable[[ExportOutput], Awaitable[bytes | None]]

_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# The payload ------------------------------------------------------------------------------
class RunningWork(BaseModel):
    kind: Literal["generation", "render", "handoff"]
    phase: str = Field(description="What the work is doing, in words")
    percent: float | None = Field(None, description="0-100 when known")
    elapsed_seconds: float


class StudioCredits(BaseModel):
    available: float
    frozen: float = Field(description="Held for work in progress")
    total: float
    anonymous: bool


class StudioExport(ExportOutput):
    playable_url: str | None = Field(
        None,
        description="The URL the player may load: the video's URL, unless it can only be "
        "fetched with the account's token",
    )
    poster: str | None = Field(
        None, description="The contact sheet, as a data:image/jpeg;base64 URI, when there is one"
    )


class StudioState(BaseModel):
    """Everything the studio shows, in one answer."""

    timeline: TimelineOutput | None = Field(description="As the `timeline` tool gives it")
    credits: StudioCredits | None
    running: list[RunningWork] = Field(default_factory=list)
    export: StudioExport | None = Field(description="The newest export of this project")
    problems: list[str] = Field(
        default_factory=list, description="What could not be read, for the user"
    )


def poster_uri(jpeg: bytes) -> str:
    """`jpeg` as a data URI; ValueError when it is not a JPEG or is too large to send."""
    if not jpeg.startswith(b"\xff\xd8\xff"):
        raise ValueError("the contact sheet is not a JPEG image")
    if len(jpeg) > POSTER_MAX_BYTES:
        raise ValueError(
            f"the contact sheet is too large to show ({len(jpeg)} bytes, "
            f"at most {POSTER_MAX_BYTES})"
        )
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def studio_state(
    *,
    timeline: TimelineOutput | None,
    credits: StudioCredits | None,
    running: Sequence[RunningWork] = (),
    export: ExportOutput | None,
    playable: str | None = None,
    poster: bytes | None = None,
    problems: Sequence[str] = (),
) -> StudioState:
    """The `studio_state` payload from plain values. A poster that cannot be shown becomes
    a problem; a poster or playable URL without a completed export is dropped."""
    found = list(problems)
    shown: StudioExport | None = None
    if export is not None:
        uri = None
        completed = export.status == "completed"
        if poster is not None and completed:
            try:
                uri = poster_uri(poster)
            except ValueError as err:
                found.append(f"Poster: {err}.")
        shown = StudioExport(
            **export.model_dump(), playable_url=playable if completed else None, poster=uri
        )
    return StudioState(
        timeline=timeline, credits=credits, running=list(running), export=shown, problems=found
    )


def running_work(entries: Iterable[Entry], now: float) -> list[RunningWork]:
    """The ledger's unfinished entries, as the studio shows them (queued ones too)."""
    from nemo_mcp.server.work import phase_words

    found = []
    for entry in entries:
        if entry.finished:
            continue
        percent = entry.progress.get("percent")
        found.append(
            RunningWork(
                kind="generation" if entry.kind == "message" else entry.kind,
                phase=phase_words(entry),
                percent=round(float(percent), 1) if isinstance(percent, (int, float)) else None,
                elapsed_seconds=round(max(now - entry.created_at, 0.0), 1),
            )
        )
    return found


def newest_export(
    renders: Sequence[Entry], queue: Sequence[Entry], session_id: str | None, now: float
) -> ExportOutput | None:
    """The export to show: a render still to finish, else the newest render of the session
    that finished or failed (`renders` newest last, `queue` the unfinished work in order)."""
    from nemo_mcp.handoff import FORMATS
    from nemo_mcp.server.export import pending_output

    # A hand-off to an editor (an export with a timeline format) is no video to show.
    renders = [e for e in renders if e.request.get("format") not in FORMATS]
    order = [entry.id for entry in queue]
    for entry in reversed(renders):
        if not entry.finished:
            ahead = order.index(entry.id) if entry.id in order else 0
            return pending_output(entry, ahead=ahead, now=now)
    for entry in reversed(renders):
        if session_id is not None and entry.session_id != session_id:
            continue
        if entry.state == "done" and entry.outcome is not None:
            return ExportOutput.model_validate(entry.outcome)
        job = render_job(entry)
        if entry.state == "failed" and job.render_id:
            # (A request refused before any render started, e.g. nothing to export, is not
            # a render: the export tool said why, and older renders stay shown.)
            return ExportOutput(
                status="failed",
                render_id=job.render_id,
                progress=str((entry.error or {}).get("message") or "the render failed"),
                elapsed_seconds=round((entry.finished_at or now) - entry.created_at, 1),
                next_steps=["Call `export` again to retry (exports are free)."],
            )
    return None


# The view's origins ----------------------------------------------------------------------
def media_origin(url: str | None) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, or None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if parts.username is not None or parts.password is not None:
        return None
    if ":" in host:  # an IPv6 literal
        try:
            import ipaddress

            host = f"[{ipaddress.IPv6Address(host).compressed}]"
        except ValueError:
            return None
    elif not _HOST.fullmatch(host):
        return None
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}:{port}"
    return f"{scheme}://{host}"


def media_csp(api_url: str, media_urls: Sequence[str | None]) -> ResourceCsp:
    """A CSP allowing media from the API's origin and from the origins of `media_urls`
    (oldest first): the `MAX_MEDIA_ORIGINS` most recently seen."""
    recent: dict[str, None] = {}  # insertion-ordered, oldest first
    for origin in map(media_origin, media_urls):
        if origin is not None:
            recent.pop(origin, None)
            recent[origin] = None  # now the most recent
    kept = list(recent)[-MAX_MEDIA_ORIGINS:]
    return ResourceCsp(resource_domains=resource_domains(api_url, kept))


def with_csp(answer: HandlerResult, field: str, csp: ResourceCsp) -> HandlerResult:
    """A `resources/read` (`field` "contents") or `resources/list` ("resources") answer
    whose view carries `csp`; everything else as it was."""
    if isinstance(answer, BaseModel):
        answer = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
    if not isinstance(answer, dict) or not isinstance(answer.get(field), list):
        return answer
    shown = dict(answer)
    items = []
    for item in shown[field]:
        if isinstance(item, Mapping) and item.get("uri") == STUDIO_URI:
            meta = dict(item.get("_meta") or {})
            ui = dict(meta.get("ui") or {})
            ui["csp"] = csp.model_dump(by_alias=True, exclude_none=True)
            item = {**item, "_meta": {**meta, "ui": ui}}
        items.append(item)
    shown[field] = items
    return shown


def resource_domains(api_url: str, media_urls: Iterable[str | None] = ()) -> list[str]:
    """The origins the view may load media from: the API's and each media URL's, sorted."""
    origins = {media_origin(api_url), *(media_origin(url) for url in media_urls)}
    return sorted(o for o in origins if o is not None)


def playable_url(url: str | None, api_url: str) -> str | None:
    """`url` when a `<video>` can load it: an http(s) URL that is not the API's download
    route (`/api/render/proxy/<id>/download`), which answers only with the account's
    token, which the view never has."""
    if media_origin(url) is None:
        return None
    assert url is not None
    plain = url.strip().split("#", 1)[0].split("?", 1)[0]
    route = re.escape(api_url.rstrip("/")) + r"/api/render/proxy/[^/]+/download/?"
    if re.fullmatch(route, plain, flags=re.IGNORECASE):
        return None
    return url


@cache
def studio_html() -> str:
    """The built view (`studio.html`, shipped inside the package)."""
    return resources.files("nemo_mcp.server").joinpath("studio.html").read_text(encoding="utf-8")


# Contact sheets ---------------------------------------------------------------------------
def media_kit() -> Any:
    """The media kit (`nemo_mcp.media`), or None where this build has none."""
    if importlib.util.find_spec("nemo_mcp.media") is None:
        return None
    return importlib.import_module("nemo_mcp.media")


def _sheet_of(kit: Any, video: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="nemo-sheet-") as folder:
        out = Path(folder) / "sheet.jpg"
        kit.contact_sheet(video, out)
        return out.read_bytes()


class ContactSheets:
    """The contact sheet of a saved export, made by the media kit in a worker thread within
    `seconds` and kept in memory; None without the kit, without a saved file, or when the
    file's pictures cannot be read in time."""

    def __init__(
        self,
        kit: Callable[[], Any] = media_kit,
        *,
        kept: int = SHEETS_KEPT,
        seconds: float = POSTER_SECONDS,
    ) -> None:
        self._kit = kit
        self._kept = kept
        self._seconds = seconds
        self._sheets: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()

    async def __call__(self, export: ExportOutput) -> bytes | None:
        if not export.file or export.status != "completed":
            return None
        kit = self._kit()
        if kit is None:
            return None
        video = Path(export.file)
        try:
            info = await anyio.Path(video).stat()
        except FileNotFoundError:
            return None
        key = (str(video), info.st_size, info.st_mtime_ns)
        if key in self._sheets:
            self._sheets.move_to_end(key)
            return self._sheets[key]
        from nemo_mcp.media.errors import MediaError
        from nemo_mcp.server.previews import PreviewTimeout, in_worker

        try:
            sheet = await in_worker(_sheet_of, kit, video, seconds=self._seconds)
        except (MediaError, PreviewTimeout) as err:
            log.info("no poster for %s: %s", video.name, err)  # the player shows none
            return None
        self._sheets[key] = sheet
        while len(self._sheets) > self._kept:
            self._sheets.popitem(last=False)
        return sheet


# The extension ------------------------------------------------------------------------
class Studio:
    """The studio's server side: the `Apps` extension holding the view and `studio_state`,
    and the middleware that keeps its CSP current and hides it from clients without Apps.

    `service_of` gives the caller's `NemoService` (by default the tools' own); `poster_for`
    gives a completed export's contact sheet. The view's CSP is each caller's own, made
    from their renders when they list or read it: nothing one user renders widens another's.
    """

    def __init__(
        self,
        *,
        api_url: str,
        service_of: ServiceOf | None = None,
        poster_for: PosterSource | None = None,
        html: str | None = None,
    ) -> None:
        self.api_url = api_url
        self._service_of = service_of or calls.service_of
        self._poster_for = poster_for
        self.apps = Apps()
        self.apps.add_html_resource(
            STUDIO_URI,
            html if html is not None else studio_html(),
            name="studio",
            title="NemoVideo studio",
            description="The project's video, timeline, credits and running work",
            csp=self.csp_for(()),  # the API's origin; each caller's read adds their media's
            prefers_border=True,
        )
        self._register_state_tool()

    def csp_for(self, renders: Sequence[Entry]) -> ResourceCsp:
        """The view's CSP for one user: the API's origin and their renders' media origins
        (playable URLs only)."""
        return media_csp(
            self.api_url, [playable_url(render_job(e).url, self.api_url) for e in renders]
        )

    async def caller_csp(
        self, services: Services | None, headers: Mapping[str, str] | None, *, open_: bool
    ) -> ResourceCsp:
        """The CSP for the caller of this request, from their own renders: `open_` opens
        their service if need be (reading the view), else only an open one counts. Without
        a caller it is the API's origin alone."""
        if services is None:
            return self.csp_for(())
        try:
            key = services.exposure.user_key(headers)
            service = await services.get(key) if open_ else services.peek(key)
            renders = await service.ledger.renders(service.user) if service else []
        except Exception:  # the tool calls will say what is wrong; no origin is added
            log.info("could not read the caller's renders for the view's CSP", exc_info=True)
            renders = []
        return self.csp_for(renders)

    async def middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """Server middleware: the caller's own CSP on the view when it is listed or read, and
        no view for clients that did not negotiate MCP Apps."""
        answer = await call_next(ctx)
        if ctx.method in ("resources/read", "resources/list"):
            lifespan = ctx.lifespan_context
            services = lifespan.get("services") if isinstance(lifespan, Mapping) else None
            reading = ctx.method == "resources/read"
            headers = getattr(ctx.request, "headers", None)
            csp = await self.caller_csp(services, headers, open_=reading)
            answer = with_csp(answer, "contents" if reading else "resources", csp)
        if ctx.method in ("tools/list", "resources/list") and not client_supports_apps(ctx):
            return without_the_view(answer)
        return answer

    async def gather(self, service: NemoService) -> StudioState:
        """The studio's state for one user, every part read independently."""
        from nemo_mcp.server.snapshots import timeline_output

        client = service.client
        problems: list[str] = []
        timeline: TimelineOutput | None = None
        credits: StudioCredits | None = None
        budget = service.settings.tool_timeout  # each read, as the tools' own reads

        async def read_timeline() -> None:
            nonlocal timeline
            try:
                with time_bound(budget, api_url=client.api_url, what="reading the timeline"):
                    snapshot = await client.state()
            except NemoError as err:
                problems.append(f"Timeline: {message_for(err, client)}")
                return
            timeline = timeline_output(
                snapshot, running=await service.running(), session_id=client.session_id
            )

        async def read_credits() -> None:
            nonlocal credits
            try:
                with time_bound(budget, api_url=client.api_url, what="reading the credits"):
                    balance = await client.credits()
            except NemoError as err:
                problems.append(f"Credits: {message_for(err, client)}")
                return
            credits = StudioCredits(
                available=balance.available,
                frozen=balance.frozen,
                total=balance.total,
                anonymous=client.anonymous,
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_timeline)
            tasks.start_soon(read_credits)
        problems.sort()  # the two reads finish in any order

        now = clock()
        session_id = timeline.session_id if timeline is not None else client.session_id
        queue = await service.work.unfinished()
        renders = await service.ledger.renders(service.user)
        export = newest_export(renders, queue, session_id, now)
        playable = playable_url(export.url, self.api_url) if export is not None else None
        poster = None
        if export is not None:
            if export.status == "failed":
                problems.append("The last render failed. Export again to retry (exports are free).")
            elif export.status == "completed" and self._poster_for is not None:
                try:
                    poster = await self._poster_for(export)
                except OSError as err:
                    problems.append(f"Poster: cannot read the contact sheet ({err.strerror}).")
                except NemoError as err:
                    problems.append(f"Poster: {message_for(err, client)}")
        return studio_state(
            timeline=timeline,
            credits=credits,
            running=running_work(queue, now),
            export=export,
            playable=playable,
            poster=poster,
            problems=problems,
        )

    def _register_state_tool(self) -> None:
        @self.apps.tool(
            resource_uri=STUDIO_URI,
            visibility=["app"],
            name="studio_state",
            title="Studio state",
            description=(
                "For the studio view: the timeline, credits, running work and newest export "
                "(with its contact sheet) in one answer. Free and read-only."
            ),
            annotations=calls.hints(read_only=True, idempotent=True),
        )
        @tool_boundary("Reading the studio's state", calls.client_of)
        async def studio_state_tool(ctx: Context) -> Annotated[CallToolResult, StudioState]:
            state = await self.gather(await self._service_of(ctx))
            return CallToolResult(
                content=[TextContent(type="text", text=redaction.redact(describe_state(state)))],
                structured_content=json.loads(
                    redaction.redact(state.model_dump_json(), claims=False)
                ),
            )


def _app_only(tool: Any) -> bool:
    meta = tool.get("_meta") if isinstance(tool, Mapping) else None
    ui = meta.get("ui") if isinstance(meta, Mapping) else None
    return isinstance(ui, Mapping) and list(ui.get("visibility") or []) == ["app"]


def without_the_view(answer: HandlerResult) -> HandlerResult:
    """A `tools/list` or `resources/list` answer without app-only tools and `ui://`
    resources (for a client that cannot show them)."""
    if not isinstance(answer, dict):
        return answer
    shown = dict(answer)
    if isinstance(shown.get("tools"), list):
        shown["tools"] = [t for t in shown["tools"] if not _app_only(t)]
    if isinstance(shown.get("resources"), list):
        shown["resources"] = [
            r
            for r in shown["resources"]
            if not (isinstance(r, Mapping) and str(r.get("uri", "")).startswith("ui://"))
        ]
    return shown


def describe_state(state: StudioState) -> str:
    """One line for a reader without the view."""
    parts = [state.timeline.summary if state.timeline else "Timeline unavailable."]
    if state.credits is not None:
        parts.append(f"Credits: {state.credits.available:g} available.")
    for work in state.running:
        parts.append(f"Running: {work.kind} ({work.phase}).")
    if state.export is not None:
        parts.append(f"Newest export: {state.export.status}.")
    parts.extend(state.problems)
    return " ".join(parts)


def studio_for(
    settings: Settings,
    *,
    service_of: ServiceOf | None = None,
    poster_for: PosterSource | None = None,
    html: str | None = None,
) -> Studio:
    """The studio for `settings`, its posters made by the media kit unless `poster_for`
    says otherwise. Pass `studio.apps` to `MCPServer(extensions=[...])` and
    `studio.middleware` to its `middleware=[...]`."""
    return Studio(
        api_url=settings.api_url,
        service_of=service_of,
        poster_for=poster_for if poster_for is not None else ContactSheets(),
        html=html,
    )


__all__ = [
    "MAX_MEDIA_ORIGINS",
    "POSTER_MAX_BYTES",
    "STUDIO_TOOL_META",
    "STUDIO_URI",
    "ContactSheets",
    "PosterSource",
    "RunningWork",
    "Studio",
    "StudioCredits",
    "StudioExport",
    "StudioState",
    "media_csp",
    "media_origin",
    "newest_export",
    "playable_url",
    "poster_uri",
    "resource_domains",
    "running_work",
    "studio_for",
    "studio_html",
    "studio_state",
]
