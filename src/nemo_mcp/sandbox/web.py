"""Stand-ins for the two web-app pages the client links to: the claim link and registration.

When the sandbox's own URL is used as `NEMO_WEB_URL` (as the offline demo
does), the links it prints open a page instead of a 404.
"""

from __future__ import annotations

import html

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from nemo_mcp.sandbox.world import World


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{body}</p></body></html>",
        status_code=status,
    )


async def claim(request: Request) -> HTMLResponse:
    """`/workspace/claim?ct=<claim token>`: which project the link opens."""
    world: World = request.app.state.world
    session = world.sessions.get(world.claims.get(request.query_params.get("ct", ""), ""))
    if session is None:
        return _page("Link expired", "This project link is not valid (anymore).", 404)
    tracks = len((session.draft or {}).get("t", []))
    return _page(
        "NemoVideo sandbox",
        f"This link opens project {html.escape(session.task_name)!s} "
        f"(session {html.escape(session.session_id)}, {tracks} tracks) in the web app.",
    )


async def register(request: Request) -> HTMLResponse:
    """`/register?bind=<user id>`: where an anonymous user would sign up."""
    bind = html.escape(request.query_params.get("bind", ""))
    detail = f" and keep the work of {bind}" if bind else ""
    return _page("NemoVideo sandbox", f"Here a user would register{detail}.")


ROUTES = [
    Route("/workspace/claim", claim, methods=["GET"]),
    Route("/register", register, methods=["GET"]),
]

__all__ = ["ROUTES"]
