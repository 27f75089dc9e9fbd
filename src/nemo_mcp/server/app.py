"""`create_server(settings)`: the MCP server, its lifespan, resources and prompts.

Nothing happens at import time. The backend client opens when the server
starts (the lifespan), together with the task group that runs long work.
Resources show the caller's own state: served to others, the caller is the
request's bearer token (or OAuth subject), as for the tools.

Each user's state is kept in files under NEMO_HOME (a SQLite ledger beside them),
or, hosted, in Redis under keys derived from the user's key, shared by every replica.
`GET /healthz` answers 200 while the server runs (and, hosted, reaches Redis); `GET
/readyz` answers 200 when it is ready for traffic (started, and Redis answers within
NEMO_REDIS_TIMEOUT). With NEMO_METRICS, Prometheus metrics (`nemo_mcp.metrics`).
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
from nemo_mcp.hosted.redis_client import answers
from nemo_mcp.hosted.serving import (
    SharedKeyCodec,
    oauth_resource_server,
    redis_user,
    shared_request_state,
)
from nemo_mcp.identity import SkillIdentity, load_identity
from nemo_mcp.ledger import Ledger, new_owner
from nemo_mcp.metrics import Metrics
from nemo_mcp.scale import answering_by
from nemo_mcp.server import tools
from nemo_mcp.server.boundary import NemoServer, message_for
from nemo_mcp.server.exposure import Exposure
from nemo_mcp.server.icons import icon
from nemo_mcp.server.jobs import render_job
from nemo_mcp.server.service import NemoService, Services
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
    from redis.asyncio import Redis
    from starlette.requests import Request
    from starlette.responses import Response

    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.client_state import ClientState
    from nemo_mcp.hosted.notify import Notifier
    from nemo_mcp.server.studio import PosterSource

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
same tool with the request_id it gives to wait for it; nothing is sent or charged
twice. The user never needs a GUI: do not tell them to click anything.
"""


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


#: Tool results that mean "call again to wait" (a call answered, its work not yet done).
_WAITING = frozenset({"running", "queued", "rendering"})


def _outcome(result: Any) -> str:
    """A tool call's result as the metrics count it: ok, error or waiting."""
    if isinstance(result, dict):  # as the handler hands it on: the wire's field names
        failed, structured = result.get("isError"), result.get("structuredContent")
    else:
        failed = getattr(result, "is_error", False)
        structured = getattr(result, "structured_content", None)
    if failed:
        return "error"
    status = structured.get("status") if isinstance(structured, dict) else None
    return "waiting" if status in _WAITING else "ok"


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
    the media kit's) are for tests. The process's logging is left as it is: the entry
    point configures it (`nemo-mcp` logs through `redaction.RedactingFilter`; give your
    own handlers one too).
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
    metrics = Metrics(enabled=settings.scale.metrics is not None)
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
                from nemo_mcp.hosted.redis_client_state import connect, request_state_keys

                assert settings.state_url is not None and request_state is not None
                redis = connect(
                    settings.state_url.get_secret_value(),
                    settings.scale,
                    noted=metrics.redis_error,
                )
                clients.push_async_callback(redis.aclose)
                try:
                    request_state.install(await request_state_keys(redis))
                except Exception as err:  # unreachable or refusing: said once, plainly
                    raise ConfigError(f"cannot use the Redis of NEMO_STATE_URL: {err}") from err

            async def open_user(
                user_settings: Settings, user: str, closing: AsyncExitStack
            ) -> tuple[NemoClient, Ledger]:
                # The HTTP stack and the ledger load with the first call, not at start-up.
                from nemo_mcp.backend.client import NemoClient

                state: ClientState | StateStore
                if redis is not None:
                    state, ledger = redis_user(
                        redis, user, user_settings.api_url, cluster=settings.scale.redis_cluster
                    )
                    where = "in Redis"
                else:
                    from nemo_mcp.ledger.sqlite import SqliteLedger

                    state = StateStore(user_settings.home, user_settings.api_url)
                    # A lock held by another program is waited out for half the budget.
                    busy = max(1.0, user_settings.tool_timeout / 2)
                    ledger = SqliteLedger(state.ledger_path, busy_seconds=busy)
                    where = str(state.ledger_path)
                closing.push_async_callback(ledger.close)
                try:
                    await ledger.prune()
                except NemoError:  # damaged (healed), locked, a full disk: already one sentence
                    raise
                except Exception as err:  # a ledger that cannot be opened is said plainly
                    raise ConfigError(f"cannot open the work ledger {where}: {err}") from err
                # The home's leases are held under the ledger's name for this process.
                client = NemoClient(
                    user_settings,
                    identity,
                    state,
                    transport=transport,
                    leases=ledger,
                    owner=new_owner(),
                )
                return await closing.enter_async_context(client), ledger

            async with anyio.create_task_group() as tasks:
                notifier: Notifier | None = None
                if redis is not None:
                    from nemo_mcp.hosted.notify import Notifier

                    notifier = Notifier(redis, sharded=settings.scale.redis_cluster)
                    tasks.start_soon(notifier.run)

                def opened(service: NemoService) -> None:
                    if notifier is not None:
                        notifier.watch(getattr(service.ledger, "channel", ""), service.work)

                def closed(service: NemoService) -> None:
                    metrics.user_closed()
                    if notifier is not None:
                        notifier.unwatch(getattr(service.ledger, "channel", ""))

                limits = None
                scale = settings.scale
                if redis is not None and (scale.calls_per_minute or scale.credits_per_day):
                    from nemo_mcp.hosted.limits import Limits

                    limits = Limits(redis, scale)
                services = Services(
                    settings,
                    open_user,
                    tasks,
                    exposure,
                    on_open=opened,
                    on_close=closed,
                    limits=limits,
                    metrics=metrics,
                )
                metrics.watch_users(
                    lambda: len(services),
                    lambda: sum(1 for s in services.opened() if s.work.busy),
                )
                if isinstance(settings.scale.metrics, int):
                    clients.callback(metrics.serve(settings.scale.metrics))
                clients.push_async_callback(services.aclose)
                live["services"] = services
                live["redis"] = redis
                try:
                    yield {"services": services, "identity": identity}
                finally:
                    live.pop("services", None)
                    tasks.cancel_scope.cancel()

    async def pin_user(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Server middleware: the caller's user stays open while their request is answered."""
        services: Services | None = live.get("services")
        if services is None or not exposure.served:
            return await call_next(ctx)
        try:
            key = exposure.user_key(getattr(ctx.request, "headers", None))
        except NemoError:  # no user: the handler says so
            return await call_next(ctx)
        # Waits for shared resources (a free Redis connection) end before the call is due.
        with services.using(key), answering_by(anyio.current_time() + settings.tool_timeout):
            if ctx.method != "tools/call" or not metrics.enabled:
                return await call_next(ctx)
            tool = str((ctx.params or {}).get("name") or "unknown")
            started = anyio.current_time()
            outcome = "error"
            try:
                result = await call_next(ctx)
                outcome = _outcome(result)
                return result
            finally:
                metrics.call(tool, outcome, anyio.current_time() - started)

    mcp = NemoServer(
        "nemo-mcp",
        title="NemoVideo",
        version=__version__,
        instructions=INSTRUCTIONS,
        website_url=settings.web_url,
        icons=[icon("server")],
        lifespan=lifespan,
        log_level="WARNING",
        extensions=[studio.apps, tools.tasks_extension()],
        middleware=[_keep_headers, pin_user, studio.middleware],
        **oauth_resource_server(settings, exposure),
        request_state_security=(
            None if request_state is None else shared_request_state(request_state)
        ),
    )

    @mcp.custom_route("/readyz", methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def readyz(_request: Request) -> Response:
        """Ready for traffic: started, and (hosted) Redis answers within its timeout."""
        from starlette.responses import JSONResponse

        if "services" not in live:
            return JSONResponse({"ready": False, "why": "starting or stopping"}, 503)
        redis = live.get("redis")
        if redis is not None and not await answers(
            redis, settings.scale.redis_timeout, lately=False
        ):
            return JSONResponse({"ready": False, "why": "Redis does not answer"}, 503)
        return JSONResponse({"ready": True})

    if isinstance(settings.scale.metrics, str):

        @mcp.custom_route(settings.scale.metrics, methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
        async def metrics_page(_request: Request) -> Response:
            from starlette.responses import Response as Plain

            body, kind = metrics.text()
            return Plain(body, media_type=kind)

    @mcp.custom_route("/healthz", methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def healthz(_request: Request) -> Response:
        """For the load balancer: 200 while this replica can serve (and reach Redis)."""
        from starlette.responses import JSONResponse

        if "services" not in live:
            return JSONResponse({"ok": False, "why": "starting or stopping"}, status_code=503)
        redis = live.get("redis")
        # On a spare connection: Redis answering is the question, not how busy this
        # replica's commands are (a busy replica taken out would load the others more).
        if redis is not None and not await answers(redis, 2):
            return JSONResponse({"ok": False, "why": "Redis does not answer"}, 503)
        return JSONResponse({"ok": True})

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
        return json.dumps({"renders": [render_job(entry).record() for entry in renders]})

    for n, example in enumerate(identity.skill.try_saying, start=1):
        mcp.prompt(name=f"try-{n}", title=_short(example.text), description=example.about)(
            _example_prompt(example.text)
        )
    return mcp
