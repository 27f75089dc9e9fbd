"""The sandbox backend as an ASGI app: `create_app(config)` wires every route of the contract."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.routing import Route

from nemo_mcp.sandbox import api, control, renders, stream, upload, web
from nemo_mcp.sandbox.config import SandboxConfig
from nemo_mcp.sandbox.world import World

_RENDER = "/api/render/proxy"


def _routes() -> list[Route]:
    return [
        Route("/api/auth/anonymous-token", api.anonymous_token, methods=["POST"]),
        Route("/api/tasks/me/with-session/nemo_agent", api.create_session, methods=["POST"]),
        Route("/api/auth/claim-token", api.claim_token, methods=["POST"]),
        Route("/api/credits/balance/simple", api.credits, methods=["GET"]),
        Route("/api/state/nemo_agent/me/{session_id}/latest", api.state, methods=["GET"]),
        Route("/api/upload-video/nemo_agent/me/{session_id}", upload.upload, methods=["POST"]),
        Route("/run_sse", stream.run_sse, methods=["POST"]),
        Route(f"{_RENDER}/lambda", renders.render_start, methods=["POST"]),
        Route(f"{_RENDER}/lambda/{{render_id}}", renders.render_status, methods=["GET"]),
        Route(f"{_RENDER}/lambda/{{render_id}}/cancel", renders.render_cancel, methods=["POST"]),
        Route(f"{_RENDER}/{{render_id}}/download", renders.render_download, methods=["GET"]),
        Route("/files/{name}", renders.served_file, methods=["GET"]),
        Route("/files/{kind}/{name}", renders.served_file, methods=["GET"]),
        Route("/cdn/uploads/{digest}/{name}", renders.served_upload, methods=["GET"]),
        *control.ROUTES,
        *web.ROUTES,
    ]


def _quiet_cuts() -> None:
    """Deliberate stream cuts are not server errors worth a traceback."""
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, stream.QuietStreamCut) for f in logger.filters):
        logger.addFilter(stream.QuietStreamCut())


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A new sandbox backend with its own empty world."""
    world = World(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        for render in world.renders.values():
            render.stop.set()
        jobs = list(world.jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        world.files.close()

    app = Starlette(routes=_routes(), lifespan=lifespan)
    app.state.world = world
    _quiet_cuts()
    return app


__all__ = ["create_app"]
