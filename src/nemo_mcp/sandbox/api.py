"""The account and session routes: anonymous token, session, claim link, credits, state."""

from __future__ import annotations

import secrets
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from nemo_mcp.sandbox.protocol import ApiError, DetailError, validation_detail
from nemo_mcp.sandbox.routing import Call, endpoint
from nemo_mcp.sandbox.world import iso

CLAIM_SECONDS = 600


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SessionBody(_Body):
    task_name: str = "project"
    language: str = "en"


class ClaimBody(_Body):
    task_id: str
    session_id: str


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], body: Any) -> M:
    """`body` read as `model`, or FastAPI's 422 with the reasons."""
    try:
        return model.model_validate(body if body is not None else {})
    except ValidationError as err:
        raise DetailError(422, validation_detail(err.errors(include_url=False))) from None


@endpoint("anonymous_token", auth=False)
async def anonymous_token(call: Call) -> dict[str, Any]:
    """A free token for a client id: one live token per client, 7 days, 100 credits."""
    client_id = call.header("x-client-id")
    if client_id is None:
        raise ApiError(400, "X-Client-Id header is required: send a UUID identifying this client")
    record, user = call.world.issue_anonymous_token(
        client_id, call.config.token_ttl, retry_after=call.config.token_retry_after
    )
    return {
        "token": record.token,
        "user_id": user.user_id,
        "expires_at": iso(record.expires_at),
        "credits": user.available,
    }


@endpoint("session")
async def create_session(call: Call) -> dict[str, Any]:
    """A new agent session (a project with an empty timeline) for the caller."""
    body = validated(SessionBody, await call.json(required=False))
    session = call.world.new_session(call.user, body.task_name, body.language)
    answer = {"task_id": session.task_id, "session_id": session.session_id}
    if call.config.session_user_id:
        answer["user_id"] = call.user.user_id
    return answer


@endpoint("claim_token")
async def claim_token(call: Call) -> dict[str, Any]:
    """A short-lived token that opens the caller's project in the web app."""
    body = validated(ClaimBody, await call.json())
    session = call.session(body.session_id)
    if body.task_id != session.task_id:
        raise ApiError(1002, f"task {body.task_id} has no session {body.session_id}")
    claim = f"clm_{secrets.token_urlsafe(24)}"
    call.world.claims[claim] = session.session_id
    return {"claim_token": claim, "expires_in": CLAIM_SECONDS}


@endpoint("credits")
async def credits(call: Call) -> dict[str, Any]:
    """The caller's balance; `frozen` is held by work still running."""
    return call.user.balance()


@endpoint("state")
async def state(call: Call) -> dict[str, Any]:
    """The latest state of one of the caller's sessions."""
    return call.session(call.request.path_params["session_id"]).snapshot()


__all__ = ["anonymous_token", "claim_token", "create_session", "credits", "state"]
