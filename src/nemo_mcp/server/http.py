"""Serving MCP over streamable HTTP: loopback by default, bearer tokens otherwise.

On every bind, Host and Origin are checked against DNS rebinding (`hostcheck`).
With `NEMO_HTTP_TOKENS` (required on any other address, unless OAuth is on) the
server is served to others (see `exposure`): every request must carry one of the
tokens as a bearer token (`BearerGate`), each token is its own user, and an MCP
session answers only to the token that opened it (`SessionOwners`). With OAuth the
SDK does both: its bearer middleware asks `hosted.oauth.JwtVerifier`, answers 401
with the `resource_metadata` pointer, serves the RFC 9728 metadata, and binds each
session to the principal that opened it.

Across replicas: the 2026-07-28 protocol has no sessions, so any replica answers
any request (a sealed `requestState` opens on every replica: its key is shared in
Redis). An older client's session lives in the memory of the replica that opened
it, together with its owner; the load balancer keeps the session's requests on
that replica (`deploy/haproxy.cfg` sticks on `Mcp-Session-Id`), and any other
replica answers 404 for it, as for any unknown session, whoever asks, so the client
opens a new one. `GET /healthz`, `/readyz` and `/metrics` (NEMO_METRICS=/metrics) are
open to the load balancer and the metrics scraper.
"""

from __future__ import annotations

import hmac
import socket
import sys
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from mcp.server.transport_security import TransportSecuritySettings
from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nemo_mcp.errors import ConfigError
from nemo_mcp.listening import bind, url_of
from nemo_mcp.server.exposure import Exposure, bearer, identity_key, is_loopback, known_token
from nemo_mcp.server.hostcheck import OPEN_PATHS, HostCheck, HostRule, respond

SESSION_HEADER = b"mcp-session-id"
#: Sessions remembered per bearer token; opening more forgets that token's least recently used.
SESSIONS_PER_USER = 256


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class BearerGate:
    """ASGI middleware refusing every HTTP request without one of `tokens`."""

    def __init__(self, app: ASGIApp, tokens: Sequence[SecretStr]) -> None:
        self.app = app
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    def allowed(self, token: str | None) -> bool:
        return token is not None and known_token(token, self._tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        if self.allowed(bearer(_headers(scope))):
            await self.app(scope, receive, send)
            return
        await respond(
            send,
            401,
            {"error": "missing or invalid bearer token (see NEMO_HTTP_TOKENS)"},
            (b"www-authenticate", b'Bearer realm="nemo-mcp"'),
        )


class SessionOwners:
    """ASGI middleware: an MCP session answers only to the bearer token that opened it.

    The SDK's session manager knows sessions, not users: any valid bearer could
    use, or `DELETE`, a session id it learnt. This records the owner (a hash of
    the bearer, never the bearer) of every `Mcp-Session-Id` the server hands
    out, and answers a request naming a session with another bearer, or one it
    never handed out, exactly as the SDK answers an unknown session: 404
    "Session not found". A session is forgotten when its owner deletes it or
    the SDK says it is gone; each owner keeps at most `per_owner` (the least
    recently used goes first), so memory is bounded by the number of tokens.
    """

    def __init__(self, app: ASGIApp, *, per_owner: int = SESSIONS_PER_USER) -> None:
        self.app = app
        self.per_owner = per_owner
        self._owner_of: dict[str, str] = {}
        self._by_owner: dict[str, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._owner_of)

    def _record(self, session: str, owner: str) -> None:
        sessions = self._by_owner.setdefault(owner, OrderedDict())
        sessions[session] = None
        self._owner_of[session] = owner
        while len(sessions) > self.per_owner:
            oldest, _ = sessions.popitem(last=False)
            self._owner_of.pop(oldest, None)

    def _forget(self, session: str) -> None:
        owner = self._owner_of.pop(session, None)
        if owner is None:
            return
        sessions = self._by_owner[owner]
        sessions.pop(session, None)
        if not sessions:
            del self._by_owner[owner]

    def _owns(self, session: str, owner: str) -> bool:
        known = self._owner_of.get(session)
        if known is None or not hmac.compare_digest(known, owner):
            return False
        self._by_owner[owner].move_to_end(session)
        return True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        token = bearer(headers)
        owner = identity_key(token) if token is not None else ""
        session = headers.get(SESSION_HEADER.decode())
        if session is None:
            await self.app(scope, receive, self._opening(send, owner))
            return
        if not self._owns(session, owner):
            await respond(
                send,
                404,
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "Session not found"},
                },
            )
            return
        deleting = scope.get("method") == "DELETE"

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                if status == 404 or (deleting and status < 300):
                    self._forget(session)
            await send(message)

        await self.app(scope, receive, watch)

    def _opening(self, send: Send, owner: str) -> Send:
        """`send`, recording the owner of any session id the response hands out."""

        async def watch(message: Message) -> None:
            if message["type"] == "http.response.start" and int(message["status"]) < 400:
                for name, value in message.get("headers", []):
                    if name.lower() == SESSION_HEADER:
                        self._record(value.decode("latin-1"), owner)
            await send(message)

        return watch


def host_rule(exposure: Exposure, public_url: str | None, bind: str) -> HostRule:
    """Loopback Hosts only when local, or on a loopback bind; served: loopback and the
    public host, or, on another bind without NEMO_PUBLIC_URL, any Host (see `hostcheck`)."""
    public = urlsplit(public_url).netloc if public_url and exposure.served else None
    return HostRule(public, checked=public is not None or is_loopback(bind) or not exposure.served)


def http_app(
    server: Any,
    exposure: Exposure,
    tokens: Sequence[SecretStr],
    *,
    host: str,
    public_url: str | None = None,
) -> ASGIApp:
    """The ASGI app serving `server` at /mcp: Host and Origin checked on every bind
    (`hostcheck`), gated and session-bound when served (by the SDK's own auth when OAuth
    is on)."""
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path="/mcp",
        json_response=False,
        host=host,
        # The SDK checks only three spellings of loopback; `HostCheck` checks every bind.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    if exposure.served and not exposure.oauth:
        app = BearerGate(SessionOwners(app), tokens)
    return HostCheck(app, host_rule(exposure, public_url, host))


def serve_http(
    server: Any,
    exposure: Exposure,
    tokens: Sequence[SecretStr],
    *,
    host: str,
    port: int,
    public_url: str | None = None,
) -> int:
    """Run the server over streamable HTTP until interrupted; returns the exit code.

    The socket is bound first, so a port in use ends with one sentence (exit code 2), and
    the URL is printed once the server listens (the app started: it answers at once)."""
    import uvicorn

    print(f"nemo-mcp: serving MCP over HTTP, {exposure.describe()}", file=sys.stderr)
    try:
        sock = bind(host, port)
    except ConfigError as err:
        print(f"nemo-mcp: {err}", file=sys.stderr)
        return 2
    url = url_of(sock, "/mcp")

    class Announcing(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                print(f"nemo-mcp: listening at {url}", file=sys.stderr, flush=True)

    config = uvicorn.Config(
        http_app(server, exposure, tokens, host=host, public_url=public_url),
        host=host,
        port=port,
        log_level="warning",
    )
    with sock:
        Announcing(config).run(sockets=[sock])
    return 0
