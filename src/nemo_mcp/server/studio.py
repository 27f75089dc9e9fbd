"""The studio view: an MCP App showing the project's video, timeline, credits and running work.

Hosts that support MCP Apps render `ui://nemovideo/studio` (one self-contained HTML file,
built from `app/studio/` by `npm run build:studio`) in a sandboxed iframe next to the result
of a tool that names it (`export`, `timeline`). The view asks for everything through the
app-only `studio_state` tool and calls `export` itself.

    studio = register_studio(mcp, settings)    # on a built server, or at construction:
    studio = studio_for(settings)
    MCPServer(..., extensions=[studio.apps])   # with meta=STUDIO_TOOL_META on the bound tools

The view's CSP allows media from the API's origin and from the media origins seen in
renders (an exported video's URL), nothing else and never `*`; the list is kept up to date
as renders come in.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal
from urllib.parse import urlsplit

import anyio
from mcp.server.apps import Apps, ResourceCsp
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.resources import Resource
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel, Field

from nemo_mcp import redaction
from nemo_mcp.errors import NemoError
from nemo_mcp.server.boundary import message_for, tool_boundary
from nemo_mcp.server.outputs import ExportOutput, TimelineOutput
from nemo_mcp.server.tools import common

if TYPE_CHECKING:
    from nemo_mcp.server.jobs import Job
    from nemo_mcp.server.service import NemoService
    from nemo_mcp.settings import Settings
    from nemo_mcp.store import RenderHistory

STUDIO_URI: Final = "ui://nemovideo/studio"
#: `meta=` for a tool whose results the studio shows.
STUDIO_TOOL_META: Final[dict[str, Any]] = {"ui": {"resourceUri": STUDIO_URI}}
#: The tools bound to the studio by default.
STUDIO_TOOLS: Final = ("export", "timeline")
#: The largest contact sheet sent to the view (it travels base64 in every `studio_state`).
POSTER_MAX_BYTES: Final = 1_500_000
#: Media origins kept in the CSP, newest last; older ones drop out beyond this.
MAX_MEDIA_ORIGINS: Final = 32

ServiceOf = Callable[[Context], Awaitable["NemoService"]]
#: The contact sheet (JPEG bytes) of a completed export, or None when there is none.
PosterSource = Callable[[ExportOutput], Awaitable[bytes | None]]

_HOST = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")
_DEFAULT_PORTS = {"http": 80, "https": 443}


# The payload ------------------------------------------------------------------------------
class RunningWork(BaseModel):
    kind: Literal["generation", "render"]
    phase: str = Field(description="What the work is doing, in words")
    percent: float | None = Field(None, description="0-100 when known")
    elapsed_seconds: float


class StudioCredits(BaseModel):
    available: float
    frozen: float = Field(description="Held for work in progress")
    total: float
    anonymous: bool


class StudioExport(ExportOutput):
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
    poster: bytes | None = None,
    problems: Sequence[str] = (),
) -> StudioState:
    """The `studio_state` payload from plain values. A poster that cannot be shown becomes
    a problem; a poster without a completed export is dropped."""
    found = list(problems)
    shown: StudioExport | None = None
    if export is not None:
        uri = None
        if poster is not None and export.status == "completed":
            try:
                uri = poster_uri(poster)
            except ValueError as err:
                found.append(f"Poster: {err}.")
        shown = StudioExport(**export.model_dump(), poster=uri)
    return StudioState(
        timeline=timeline, credits=credits, running=list(running), export=shown, problems=found
    )


def running_work(*jobs: Job[Any] | None) -> list[RunningWork]:
    """The jobs still running, as the studio shows them."""
    found = []
    for job in jobs:
        if job is None or job.finished or job.kind not in ("generation", "render"):
            continue
        found.append(
            RunningWork(
                kind="render" if job.kind == "render" else "generation",
                phase=job.phase,
                percent=None if job.percent is None else round(job.percent, 1),
                elapsed_seconds=round(job.elapsed, 1),
            )
        )
    return found


def newest_export(
    history: RenderHistory, session_id: str | None, job: Job[ExportOutput] | None
) -> ExportOutput | None:
    """The export to show: the running render, else the newest finished one of the session."""
    from nemo_mcp.server.export import output_for

    if job is not None and not job.finished:
        return ExportOutput(
            status="rendering",
            render_id=job.key,
            progress_percent=int(job.percent or 0),
            url=None,
            file=None,
            browser_link=None,
            reused=False,
            elapsed_seconds=round(job.elapsed, 1),
            next_steps=["Call `export` again to keep waiting on this render."],
        )
    if session_id is None:
        return None
    finished = ("completed", "failed", "cancelled")
    for record in reversed(history.renders):
        if record.session_id != session_id or record.status not in finished:
            continue
        delivered = job.result if job is not None and job.result is not None else None
        same = delivered is not None and delivered.render_id == record.id
        return output_for(
            record,
            link=delivered.browser_link if same and delivered else None,
            elapsed=delivered.elapsed_seconds if same and delivered else 0.0,
            reused=bool(same and delivered and delivered.reused),
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


def resource_domains(api_url: str, media_urls: Iterable[str | None] = ()) -> list[str]:
    """The origins the view may load media from: the API's and each media URL's, sorted."""
    origins = {media_origin(api_url), *(media_origin(url) for url in media_urls)}
    return sorted(o for o in origins if o is not None)


@cache
def studio_html() -> str:
    """The built view (`studio.html`, shipped inside the package)."""
    return resources.files("nemo_mcp.server").joinpath("studio.html").read_text(encoding="utf-8")


# The extension ------------------------------------------------------------------------
class Studio:
    """The studio's server side: the `Apps` extension holding the view and `studio_state`.

    `service_of` gives the caller's `NemoService` (by default the tools' own); `poster_for`
    gives a completed export's
    contact sheet. `note_media` widens the view's CSP to a media URL's origin.
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
        self._service_of = service_of or common.service_of
        self._poster_for = poster_for
        self._media: dict[str, None] = {}  # insertion-ordered, oldest first
        self.apps = Apps()
        self.apps.add_html_resource(
            STUDIO_URI,
            html if html is not None else studio_html(),
            name="studio",
            title="NemoVideo studio",
            description="The project's video, timeline, credits and running work",
            csp=self.csp(),
            prefers_border=True,
        )
        self._resource: Resource = self.apps.resources()[-1].resource
        self._register_state_tool()

    def csp(self) -> ResourceCsp:
        return ResourceCsp(resource_domains=resource_domains(self.api_url, self._media))

    def note_media(self, *urls: str | None) -> None:
        """Allow the view to load media from these URLs' origins from now on (the
        `MAX_MEDIA_ORIGINS` seen most recently)."""
        before = set(self._media)
        for origin in map(media_origin, urls):
            if origin is not None:
                self._media.pop(origin, None)
                self._media[origin] = None  # now the most recent
        for old in list(self._media)[: max(len(self._media) - MAX_MEDIA_ORIGINS, 0)]:
            del self._media[old]
        if set(self._media) == before:
            return
        meta = dict(self._resource.meta or {})
        meta["ui"] = {
            **meta.get("ui", {}),
            "csp": self.csp().model_dump(by_alias=True, exclude_none=True),
        }
        self._resource.meta = meta  # one assignment: a concurrent read sees old or new, whole

    async def gather(self, service: NemoService) -> StudioState:
        """The studio's state for one user, every part read independently."""
        from nemo_mcp.server.tools.timeline import timeline_output

        client = service.client
        problems: list[str] = []
        timeline: TimelineOutput | None = None
        credits: StudioCredits | None = None

        async def read_timeline() -> None:
            nonlocal timeline
            try:
                snapshot = await client.state()
            except NemoError as err:
                problems.append(f"Timeline: {message_for(err, client)}")
                return
            timeline = timeline_output(
                snapshot, running=service.running(), session_id=client.session_id
            )

        async def read_credits() -> None:
            nonlocal credits
            try:
                balance = await client.credits()
            except NemoError as err:
                problems.append(f"Credits: {message_for(err, client)}")
                return
            total = (
                balance.total if balance.total is not None else balance.available + balance.frozen
            )
            credits = StudioCredits(
                available=balance.available,
                frozen=balance.frozen,
                total=total,
                anonymous=client.anonymous,
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read_timeline)
            tasks.start_soon(read_credits)
        problems.sort()  # the two reads finish in any order

        session_id = timeline.session_id if timeline is not None else client.session_id
        try:
            history = client.store.load_renders()
        except NemoError as err:
            problems.append(f"Renders: {message_for(err, client)}")
            history = None
        export = None if history is None else newest_export(history, session_id, service.render)
        poster = None
        if export is not None:
            self.note_media(export.url)
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
            running=running_work(service.generation, service.render),
            export=export,
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
            annotations=common.hints(read_only=True, idempotent=True),
        )
        @tool_boundary("Reading the studio's state", common.client_of)
        async def studio_state_tool(ctx: Context) -> Annotated[CallToolResult, StudioState]:
            state = await self.gather(await self._service_of(ctx))
            return CallToolResult(
                content=[TextContent(type="text", text=redaction.redact(describe_state(state)))],
                structured_content=json.loads(
                    redaction.redact(state.model_dump_json(), claims=False)
                ),
            )


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


def bind_tools(mcp: MCPServer[Any], names: Iterable[str]) -> None:
    """Make the named tools show the studio (`_meta.ui.resourceUri`), keeping their other meta.

    For tools registered without `meta=STUDIO_TOOL_META`; a tool that has it is unchanged.
    """
    for name in names:
        tool = mcp._tool_manager.get_tool(name)  # the SDK has no public way to amend a tool
        if tool is None:
            raise ValueError(f"no tool named {name!r} to show the studio with")
        meta = dict(tool.meta or {})
        meta["ui"] = {**meta.get("ui", {}), "resourceUri": STUDIO_URI}
        tool.meta = meta


def studio_for(
    settings: Settings,
    *,
    service_of: ServiceOf | None = None,
    poster_for: PosterSource | None = None,
    html: str | None = None,
) -> Studio:
    """The studio for `settings`, its CSP starting with the media origins of the local
    render history. Pass `studio.apps` to `MCPServer(extensions=[...])`."""
    from nemo_mcp.store import StateStore

    studio = Studio(
        api_url=settings.api_url, service_of=service_of, poster_for=poster_for, html=html
    )
    try:
        history = StateStore(settings.home, settings.api_url).load_renders()
    except NemoError:
        return studio  # an unreadable history only means no origins seen yet
    studio.note_media(*(record.url for record in history.renders))
    return studio


def register_studio(
    mcp: MCPServer[Any],
    settings: Settings,
    *,
    service_of: ServiceOf | None = None,
    poster_for: PosterSource | None = None,
    bind: Iterable[str] = STUDIO_TOOLS,
    html: str | None = None,
) -> Studio:
    """Add the studio to an already built server: the view, `studio_state`, and `bind`'s
    tools pointing at the view (see `studio_for` to pass it at construction instead)."""
    studio = studio_for(settings, service_of=service_of, poster_for=poster_for, html=html)
    # `MCPServer` takes extensions at construction; this is the same step done afterwards.
    mcp._apply_extension(studio.apps)
    bind_tools(mcp, bind)
    return studio
