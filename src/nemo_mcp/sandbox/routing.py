"""What every backend route does before and after its own work.

`endpoint(route)` wraps a handler: it counts and logs the request, applies
the per-request variant and fault headers, fires the gateway-level faults
(slow, never answering, 5xx, 502 page, 429, truncated JSON), checks the
bearer token, renders the handler's answer (or its `ApiError`) in the
configured envelope, and lets the answer-level faults (a huge body, a drip)
reshape a successful answer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from nemo_mcp.sandbox.config import Fault, SandboxConfig, parse_assignments, parse_fault_header
from nemo_mcp.sandbox.protocol import (
    TRUNCATED_JSON,
    ApiError,
    DetailError,
    bad_gateway_page,
    detail_response,
    error_response,
    json_invalid,
    ok_response,
)
from nemo_mcp.sandbox.world import Session, TokenRecord, User, World, iso

VARIANT_HEADER = "x-sandbox-variant"
FAULT_HEADER = "x-sandbox-fault"
SKILL_HEADERS = ("X-Skill-Source", "X-Skill-Version", "X-Skill-Platform")
_GATEWAY_FAULTS = ("bad_gateway", "server_error", "rate_limited", "malformed_json")


@dataclass
class Call:
    """One request as a handler sees it: the effective config, the caller, the faults."""

    request: Request
    world: World
    config: SandboxConfig
    route: str
    header_faults: list[Fault] = field(default_factory=list)
    token: TokenRecord | None = None
    _user: User | None = None

    @property
    def user(self) -> User:
        assert self._user is not None, "route declared without auth"
        return self._user

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")

    def header(self, name: str) -> str | None:
        value = self.request.headers.get(name)
        return value.strip() if value and value.strip() else None

    def fault(self, name: str) -> Fault | None:
        """Consume the fault `name` if one is due on this request (header first)."""
        for fault in self.header_faults:
            if fault.name == name and fault.applies_to(self.route):
                self.header_faults.remove(fault)
                self.world.faults_fired[name] += 1
                return fault
        return self.world.take_fault(self.route, name)

    def session(self, session_id: str, *, detail: bool = False) -> Session:
        """The caller's session `session_id`; 1002 (or the agent server's 404) otherwise."""
        if self.fault("session_lost"):
            owned = self.world.session_of(self.user, session_id)
            if owned is not None:
                del self.world.sessions[session_id]
        found = self.world.session_of(self.user, session_id)
        if found is None:
            if detail:
                raise DetailError(404, f"Session not found: {session_id}")
            raise ApiError(1002, f"session not found: {session_id}")
        return found

    async def json(self, *, required: bool = True) -> Any:
        """The JSON body; FastAPI's 422 when it is not JSON (or missing and required)."""
        body = await self.request.body()
        if not body.strip():
            if required:
                raise DetailError(
                    422,
                    [{"type": "missing", "loc": ["body"], "msg": "Field required", "input": None}],
                )
            return None
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as err:
            raise json_invalid(getattr(err, "pos", 0)) from None


Handler = Callable[[Call], Awaitable[Any]]


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _effective(request: Request, world: World) -> tuple[SandboxConfig, list[Fault]]:
    config = world.config
    variant = request.headers.get(VARIANT_HEADER)
    faults = request.headers.get(FAULT_HEADER)
    try:
        if variant:
            changes = parse_assignments(variant)
            if "faults" in changes:
                raise ValueError("faults are set with X-Sandbox-Fault")
            config = config.merged(changes)
        return config, parse_fault_header(faults) if faults else []
    except ValueError as err:
        raise ApiError(400, f"bad sandbox header: {err}", http_status=400) from None


def _fault_response(fault: Fault, config: SandboxConfig) -> Response:
    if fault.name == "bad_gateway":
        return bad_gateway_page()
    if fault.name == "malformed_json":
        return Response(TRUNCATED_JSON, status_code=200, media_type="application/json")
    if fault.name == "rate_limited":
        retry = fault.param("retry_after")  # none: a bare 429, as the contract allows
        return error_response(
            ApiError(
                429,
                "rate limited: too many requests",
                http_status=429,
                headers={"Retry-After": str(retry)} if retry is not None else None,
            ),
            config,
        )
    status = int(fault.param("status"))
    text = "service unavailable" if status == 503 else "internal server error"
    return error_response(ApiError(status, text, http_status=status), config)


#: A status for the log: the client left before anything was sent (nginx's word for it).
CLIENT_GONE = 499
_PADDING = b"x" * 65536


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


async def until_client_leaves(request: Request) -> None:
    """Wait, sending nothing, until the client closes the connection."""
    while (await request.receive())["type"] != "http.disconnect":
        pass  # the request body, read and dropped


def inflated(body: dict[str, Any], fault: Fault, *, status: int = 200) -> StreamingResponse:
    """`body` with a `padding` field making it `mb` MB, produced while it is sent."""
    text = json.dumps({**body, "padding": ""}, separators=(",", ":"), ensure_ascii=False).encode()
    head, tail = text[:-2], text[-2:]  # ...,"padding":"  |  "}
    size = int(float(fault.param("mb")) * 1_000_000)
    padding = max(0, size - len(text))

    async def stream() -> AsyncIterator[bytes]:
        yield head
        left = padding
        while left > 0:
            piece = _PADDING[: min(left, len(_PADDING))]
            left -= len(piece)
            yield piece
        yield tail

    headers = (
        {"Content-Length": str(len(text) + padding)} if _flag(fault.param("content_length")) else {}
    )
    return StreamingResponse(
        stream(), status_code=status, headers=headers, media_type="application/json"
    )


def _payload(response: Response) -> dict[str, Any] | None:
    """The JSON object a non-streamed JSON answer carries, if that is what it is."""
    if not isinstance(response, JSONResponse):
        return None
    value = json.loads(bytes(response.body))
    return value if isinstance(value, dict) else None


def dripping(response: Response, interval: float) -> StreamingResponse:
    """`response`, its status and headers at once, then its body one byte every `interval` s."""

    async def whole() -> AsyncIterator[bytes]:
        yield bytes(response.body)

    source = response.body_iterator if isinstance(response, StreamingResponse) else whole()

    async def trickle() -> AsyncIterator[bytes]:
        try:
            async for chunk in source:
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                for n in range(len(data)):
                    await asyncio.sleep(interval)
                    yield data[n : n + 1]
        finally:
            close = getattr(source, "aclose", None)
            if close is not None:  # the handler's own stream, e.g. the agent's events
                await close()

    headers = {k: v for k, v in response.headers.items() if k != "content-length"}
    return StreamingResponse(trickle(), status_code=response.status_code, headers=headers)


def _reshaped(call: Call, response: Response) -> Response:
    """A successful answer, as the answer-level faults due on this request make it."""
    huge = call.fault("huge_body") if call.route != "run_sse" else None  # fired before it
    if huge is not None:
        body = _payload(response)
        if body is not None:
            response = inflated(body, huge, status=response.status_code)
    drip = call.fault("drip")
    if drip is not None:
        response = dripping(response, float(drip.param("interval")))
    return response


async def _serve(call: Call, handler: Handler, auth: bool) -> Response:
    slow = call.fault("slow")
    if slow is not None:
        await asyncio.sleep(float(slow.param("delay")))
        if call.route != "upload":  # uploads stream their body; the rest are small
            await call.request.body()  # read first: the check below would consume it
            if await call.request.is_disconnected():
                # The client left while the request was held: it never reached the backend.
                return Response(status_code=CLIENT_GONE)
    if call.fault("never_answer") is not None:
        await until_client_leaves(call.request)
        return Response(status_code=CLIENT_GONE)  # nobody is left to receive it
    if call.route == "run_sse" and (huge := call.fault("huge_body")) is not None:
        # A stream has no JSON to pad: the gateway refuses, with an error body gone wrong.
        return inflated({"code": 503, "message": "service unavailable"}, huge, status=503)
    for name in _GATEWAY_FAULTS:
        fault = call.fault(name)
        if fault is not None:
            return _fault_response(fault, call.config)
    if auth:
        token = _bearer(call.request)
        if call.fault("token_expired") is not None:
            record = call.world.tokens.get(token or "")
            if record is not None:
                record.revoked = True
            raise ApiError(1001, "token expired")
        call.token, call._user = call.world.authenticate(token)
    # Taken before the handler runs, so a fault fires on one request, not on its retry.
    after = call.fault("gateway_after")
    hold = call.fault("hold")
    result = await handler(call)
    response = _reshaped(
        call, result if isinstance(result, Response) else ok_response(result, call.config)
    )
    if after is not None:
        return await _gateway_answer(response, int(after.param("status")), call.config)
    if hold is not None:
        await _held(call.request, float(hold.param("seconds")))
    return response


async def _gateway_answer(response: Response, status: int, config: SandboxConfig) -> Response:
    """The gateway's own answer in place of the backend's, which is dropped (a stream is
    closed, so its work goes on without a listener)."""
    if isinstance(response, StreamingResponse):
        close = getattr(response.body_iterator, "aclose", None)
        if close is not None:
            await close()
    if status in (502, 504):
        return bad_gateway_page(status)
    return error_response(ApiError(status, "service unavailable", http_status=status), config)


async def _held(request: Request, seconds: float) -> None:
    """Hold the answer `seconds`, or until the client leaves."""
    with anyio.move_on_after(seconds):
        await until_client_leaves(request)


def _log(world: World, request: Request, route: str, status: int) -> None:
    headers = request.headers
    world.request_log.append(
        {
            "time": iso(time.time()),
            "method": request.method,
            "path": request.url.path,
            "route": route,
            "status": status,
            "skill_source": headers.get("x-skill-source"),
            "skill_version": headers.get("x-skill-version"),
            "skill_platform": headers.get("x-skill-platform"),
            "authorization": "authorization" in headers,
            "client_id": "x-client-id" in headers,
        }
    )


def endpoint(
    route: str, *, auth: bool = True
) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Make a Starlette endpoint of `handler` for the backend route named `route`."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            world: World = request.app.state.world
            world.requests[route] += 1
            config = world.config
            try:
                config, faults = _effective(request, world)
                call = Call(
                    request=request, world=world, config=config, route=route, header_faults=faults
                )
                response = await _serve(call, handler, auth)
            except ApiError as err:
                response = error_response(err, config)
            except DetailError as err:
                response = detail_response(err)
            _log(world, request, route, response.status_code)
            return response

        serve.__name__ = serve.__qualname__ = handler.__name__
        serve.__doc__ = handler.__doc__
        return serve

    return wrap


__all__ = ["SKILL_HEADERS", "Call", "endpoint"]
