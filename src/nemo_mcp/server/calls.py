"""What every handler knows of its call, the tools' and the studio's alike: the caller's
service and client, honest annotations, and the view the tools name.

It sits below both `tools` and `studio`, so the studio takes nothing from the tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations

from nemo_mcp.errors import NemoError

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.server.service import NemoService, Services

#: The studio view (`server/studio.py`): an MCP App hosts show beside the results of the
#: tools that name it.
STUDIO_URI: Final = "ui://nemovideo/studio"
#: `meta=` of a tool whose results the studio shows.
STUDIO_TOOL_META: Final[dict[str, Any]] = {"ui": {"resourceUri": STUDIO_URI}}


def services_of(ctx: Context) -> Services:
    """Every user's services, from the server's lifespan."""
    services: Services = ctx.request_context.lifespan_context["services"]
    return services


async def service_of(ctx: Context) -> NemoService:
    """The caller's service: per bearer token when served to others."""
    services = services_of(ctx)
    return await services.get(services.exposure.user_key(ctx.headers))


def client_of(ctx: Context) -> NemoClient | None:
    """The caller's client if it is open already (for wording errors); never opens one."""
    try:
        services = services_of(ctx)
        service = services.peek(services.exposure.user_key(ctx.headers))
    except (KeyError, LookupError, AttributeError, NemoError):
        return None
    return service.client if service is not None else None


def hints(*, read_only: bool, idempotent: bool) -> ToolAnnotations:
    """Honest annotations: nothing here destroys data; everything talks to NemoVideo."""
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=False,
        idempotent_hint=idempotent,
        open_world_hint=True,
    )


__all__ = ["STUDIO_TOOL_META", "STUDIO_URI", "client_of", "hints", "service_of", "services_of"]
