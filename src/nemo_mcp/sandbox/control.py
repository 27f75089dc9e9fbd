"""The control endpoints under `/_sandbox/` (no auth): config, faults, reset, stats, logs.

They answer plain JSON (no backend envelope); a refused change answers 400
`{"error": "..."}`. Tokens never appear in what they return, except the one
`POST /_sandbox/users` hands out for a registered test user.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nemo_mcp.sandbox.config import Fault
from nemo_mcp.sandbox.protocol import Json
from nemo_mcp.sandbox.world import World, iso


def _world(request: Request) -> World:
    world: World = request.app.state.world
    return world


def _refuse(message: str) -> Response:
    return Json({"error": message}, status_code=400)


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    value = json.loads(raw) if raw.strip() else {}
    if not isinstance(value, dict):
        raise TypeError("expected a JSON object")
    return value


def _config_view(world: World) -> dict[str, Any]:
    view = world.config.model_dump(mode="json", exclude={"faults"})
    view["faults"] = world.active_faults()
    return view


async def config(request: Request) -> Response:
    """GET: the current config and queued faults. POST: merge a partial config."""
    world = _world(request)
    if request.method == "POST":
        try:
            changes = await _body(request)
            if "faults" in changes:
                raise ValueError("faults are added with POST /_sandbox/faults")
            world.config = world.config.merged(changes)
        except (ValueError, TypeError) as err:
            return _refuse(str(err))
    return Json(_config_view(world))


async def faults(request: Request) -> Response:
    """POST: queue one fault `{"name", "route", "times", ...params}`. DELETE: clear them."""
    world = _world(request)
    if request.method == "DELETE":
        world.faults.clear()
    elif request.method == "POST":
        try:
            world.add_fault(Fault.model_validate(await _body(request)))
        except (ValueError, TypeError, ValidationError) as err:
            return _refuse(str(err))
    return Json({"faults": world.active_faults()})


async def reset(request: Request) -> Response:
    """Everything back to the initial config and an empty world."""
    _world(request).reset()
    return Json({"ok": True})


async def stats(request: Request) -> Response:
    return Json(_world(request).stats())


async def requests(request: Request) -> Response:
    """The recent request log, oldest first (header values, never the token)."""
    return Json({"requests": list(_world(request).request_log)})


async def users(request: Request) -> Response:
    """A registered (not anonymous) user with `credits`, and a bearer token for it."""
    world = _world(request)
    try:
        body = await _body(request)
        credits = int(body.get("credits", world.config.initial_credits))
    except (ValueError, TypeError) as err:
        return _refuse(str(err))
    record, user = world.register_user(credits, world.config.token_ttl)
    return Json(
        {"token": record.token, "user_id": user.user_id, "expires_at": iso(record.expires_at)}
    )


ROUTES = [
    Route("/_sandbox/config", config, methods=["GET", "POST"]),
    Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"]),
    Route("/_sandbox/reset", reset, methods=["POST"]),
    Route("/_sandbox/stats", stats, methods=["GET"]),
    Route("/_sandbox/requests", requests, methods=["GET"]),
    Route("/_sandbox/users", users, methods=["POST"]),
]

__all__ = ["ROUTES"]
