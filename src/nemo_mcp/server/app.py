"""`create_server(settings)`: the MCP server, its lifespan, resources and prompts.

Nothing happens at import time. The backend client opens when the server
starts (the lifespan), together with the task group that runs long work.
Resources show the caller's own state: served to others, the caller is the
request's bearer token (or OAuth subject), as for the tools.

Each user's state is kept in files under NEMO_HOME (a SQLite ledger beside them),
or, hosted, in Redis under keys derived from the user's key, shared by every replica.
`GET /healthz` answers 200 while the server runs (and, hosted, reaches Redis).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import anyio
from mcp.server.mcpserver import MCPServer

from nemo_mcp import __version__
from nemo_mcp.errors import ConfigError, NemoError
from nemo_mcp.hosted.serving import (
    SharedKeyCodec,
    oauth_resource_server,
    redis_user,
    shared_request_state,
)
from nemo_mcp.identity import SkillIdentity, load_identity
from nemo_mcp.ledger import Entry, Ledger, clock
from nemo_mcp.redaction import RedactingFilter
from nemo_mcp.server import tools
from nemo_mcp.server.boundary import NemoServer, message_for
from nemo_mcp.server.exposure import Exposure
from nemo_mcp.server.icons import icon
from nemo_mcp.server.service import NemoService, Services
from nemo_mcp.settings import Settings
from nemo_mcp.store import StateStore

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from redis.asyncio import Redis
    from starlette.requests import Request
    from starlette.responses import Response

    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.server.studio import PosterSource
    from nemo_mcp.state import ClientState

log = logging.getLogger(__name__)

INSTRUCTIONS = """\
NemoVideo makes and edits 1080p MP4 videos from text prompts, images and scripts.

How the tools fit together:
1. `upload` (optional): local files or http(s) URLs of images, clips or audio.
2. `generate`: any creative request or edit, in plain words ("a 10-second video of a
   city at sunset", "add lo-fi music at 40%", "add the title 'Urban Dreams'").
   About 100 credits for a new clip, about 50 for an edit. The result lists the exact
   timeline changes.
3. `timeline`: see every track, and whether the video is ready to export (free).
4. `export`: render and save the MP4, free; returns the file path and a browser link.
5. `credits`: the balance (free).

Long work continues on the server: when a result says it is still running, call the
same tool again to wait for it; nothing is sent or charged twice. The user never
needs a GUI: do not tell them to click anything.
"""


_RENDER_STATUS = {"done": "completed", "starting": "rendering"}


def render_record(entry: Entry) -> dict[str, Any]:
    """A render entry as the `nemo://renders` resource shows it."""
    memo = entry.memo
    return {
        "id": memo.get("render_id"),
        "session_id": entry.session_id,
        "status": _RENDER_STATUS.get(entry.state, entry.state),
        "progress": entry.progress.get("percent"),
        "format": entry.request.get("format"),
        "quality": entry.request.get("quality"),
        "url": memo.get("url"),
        "file": memo.get("file"),
        "size": memo.get("size"),
        "reused": bool(memo.get("reused_from")),
        "asked_at": entry.created_at,
        "finished_at": entry.finished_at,
        "error": (entry.error or {}).get("message"),
    }


#: The headers of the request being handled, for handlers the SDK gives no Context (resources).
_request_headers: ContextVar[Mapping[str, str] | None] = ContextVar(
    "nemo_request_headers", default=None
)


async def _keep_headers(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
    """Server middleware: every handler of this request can tell who is calling."""
    reset = _request_headers.set(getattr(ctx.request, "headers", None))
    try:
        return await call_next(ctx)
    finally:
        _request_headers.reset(reset)


def _short(text: str, limit: int = 80) -> str:
    """`text`, or its first whole words within `limit` characters and an ellipsis."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0].rstrip(" ,:;") + "…"


def _example_prompt(text: str) -> Callable[[], str]:
    def prompt() -> str:
        return text

    return prompt


def create_server(
    settings: Settings,
    *,
    identity: SkillIdentity | None = None,
    transport: Any = None,
    exposure: Exposure | None = None,
    poster_for: PosterSource | None = None,
) -> MCPServer[Any]:
    """Build the MCP server for `settings`, served as `exposure` says (default: local),
    with the studio view for hosts that support MCP Apps.

    `transport` (an httpx transport) and `poster_for` (the view's contact sheets, else
    the media kit's) are for tests.
    """
    from nemo_mcp.server.studio import studio_for

    exposure = exposure or Exposure.local()
    identity = identity or load_identity(
        skill=settings.skill,
        skill_source_override=settings.skill_source,
        # Hosted replicas keep nothing on their disks, this included.
        remembered=(
            None if settings.state_url else settings.home / "nemo-mcp" / "skill-identity.json"
        ),
    )
    studio = studio_for(settings, poster_for=poster_for)

    live: dict[str, Any] = {}  # static resources get no Context; they read this
    request_state = SharedKeyCodec() if exposure.hosted else None

    async def current() -> NemoService:
        """The caller's service (served: by the bearer token of the request being read)."""
        if "services" not in live:
            raise RuntimeError("the server is not running")
        services: Services = live["services"]
        return await services.get(exposure.user_key(_request_headers.get()))

    async def read_draft() -> tuple[Any, str | None]:
        """The current draft, or why it cannot be read (for the resources)."""
        from nemo_mcp.backend.budget import time_bound

        service: NemoService | None = None
        try:
            service = await current()
            # A resource answers within the tools' budget too, whatever the backend does.
            with time_bound(
                settings.tool_timeout, api_url=settings.api_url, what="reading the timeline"
            ):
                return (await service.client.state()).state.draft, None
        except NemoError as err:
            return None, message_for(err, service.client if service else None)

    @asynccontextmanager
    async def lifespan(_server: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        # Clients close after the task group has finished, never under a running job.
        async with AsyncExitStack() as clients:
            redis: Redis | None = None
            if exposure.hosted:
                from nemo_mcp.hosted.redis_state import connect, request_state_keys

                assert settings.state_url is not None and request_state is not None
                redis = connect(settings.state_url.get_secret_value())
                clients.push_async_callback(redis.aclose)
                try:
                    request_state.install(await request_state_keys(redis))
                except Exception as err:  # unreachable or refusing: said once, plainly
                    raise ConfigError(f"cannot use the Redis of NEMO_STATE_URL: {err}") from err

            async def open_user(user_settings: Settings, user: str) -> tuple[NemoClient, Ledger]:
                # The HTTP stack and the ledger load with the first call, not at start-up.
                from nemo_mcp.backend.client import NemoClient

                state: ClientState | StateStore
                if redis is not None:
                    state, ledger = redis_user(redis, user, user_settings.api_url)
                    where = "in Redis"
                else:
                    from nemo_mcp.ledger.sqlite import SqliteLedger

                    state = StateStore(user_settings.home, user_settings.api_url)
                    ledger = SqliteLedger(state.ledger_path)
                    where = str(state.ledger_path)
                clients.push_async_callback(ledger.close)
                try:
                    await ledger.prune(now=clock())
                except Exception as err:  # a ledger that cannot be opened is said plainly
                    raise ConfigError(f"cannot open the work ledger {where}: {err}") from err
                client = NemoClient(
                    user_settings, identity, state, transport=transport, leases=ledger
                )
                return await clients.enter_async_context(client), ledger

            async with anyio.create_task_group() as tasks:
                services = Services(settings, open_user, tasks, exposure)
                live["services"] = services
                live["redis"] = redis
                try:
                    yield {"services": services, "identity": identity}
                finally:
                    live.pop("services", None)
                    tasks.cancel_scope.cancel()

    mcp = NemoServer(
        "nemo-mcp",
        title="NemoVideo",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url=settings.web_url,
        icons=[icon("server")],
        lifespan=lifespan,
        log_level="WARNING",
        extensions=[studio.apps],
        middleware=[_keep_headers, studio.middleware],
        **oauth_resource_server(settings, exposure),
        request_state_security=(
            None if request_state is None else shared_request_state(request_state)
        ),
    )

    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def healthz(_request: Request) -> Response:
        """For the load balancer: 200 while this replica can serve (and reach Redis)."""
        from starlette.responses import JSONResponse

        if "services" not in live:
            return JSONResponse({"ok": False, "why": "starting or stopping"}, status_code=503)
        redis = live.get("redis")
        if redis is not None:
            try:
                with anyio.fail_after(2):
                    await redis.ping()
            except Exception:
                return JSONResponse({"ok": False, "why": "Redis does not answer"}, 503)
        return JSONResponse({"ok": True})

    # Whatever handlers exist now (ours, or the SDK's default), none may print a token.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    tools.register(mcp)

    @mcp.resource(
        "nemo://timeline",
        name="timeline",
        title="Current timeline",
        description="The current project's timeline as text",
        mime_type="text/plain",
    )
    async def timeline_text() -> str:
        from nemo_mcp.timeline import describe, parse_draft

        draft, problem = await read_draft()
        return f"Timeline unavailable: {problem}" if problem else describe(parse_draft(draft))

    @mcp.resource(
        "nemo://timeline.json",
        name="timeline-json",
        title="Current timeline (JSON)",
        description="The current project's draft and its summary",
        mime_type="application/json",
    )
    async def timeline_json() -> str:
        from nemo_mcp.timeline import parse_draft, summarize

        draft, problem = await read_draft()
        if problem:
            return json.dumps({"error": problem})
        return json.dumps({"summary": summarize(parse_draft(draft)), "draft": draft})

    @mcp.resource(
        "nemo://renders",
        name="renders",
        title="Render history",
        description="Your renders, newest last",
        mime_type="application/json",
    )
    async def render_history() -> str:
        try:
            service = await current()
        except NemoError as err:
            return json.dumps({"error": message_for(err, None)})
        renders = await service.ledger.renders(service.user)
        return json.dumps({"renders": [render_record(entry) for entry in renders]})

    for n, example in enumerate(identity.profile.try_saying, start=1):
        mcp.prompt(name=f"try-{n}", title=_short(example.text), description=example.about)(
            _example_prompt(example.text)
        )
    return mcp
