"""Serving MCP over streamable HTTP: loopback by default, bearer tokens otherwise.

On 127.0.0.1 the SDK checks Host and Origin against DNS rebinding. Any other
bind address requires `NEMO_HTTP_TOKENS`: every request must carry one of
them as a bearer token, and each token is its own user, with its own
NemoVideo identity, session and jobs (see `Services`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def identity_key(token: str) -> str:
    """A folder name for one HTTP user, from their token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:20]


def bearer(headers: Any) -> str | None:
    """The bearer token in a header mapping, if any."""
    if headers is None:
        return None
    value = headers.get("authorization") or headers.get("Authorization")
    if not isinstance(value, str) or not value.lower().startswith("bearer "):
        return None
    return value[7:].strip() or None


class BearerGate:
    """ASGI middleware refusing every HTTP request without one of `tokens`."""

    def __init__(self, app: ASGIApp, tokens: Sequence[SecretStr]) -> None:
        self.app = app
        self._tokens = [t.get_secret_value().encode() for t in tokens]

    def allowed(self, token: str | None) -> bool:
        if token is None:
            return False
        given = token.encode()
        # Compare against every token so timing says nothing about which one matched.
        return any([hmac.compare_digest(given, t) for t in self._tokens])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        if self.allowed(bearer(headers)):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"error": "missing or invalid bearer token (see NEMO_HTTP_TOKENS)"}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="nemo-mcp"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def serve_http(server: Any, tokens: Sequence[SecretStr], *, host: str, port: int) -> int:
    """Run the server over streamable HTTP until interrupted; returns the exit code."""
    import uvicorn

    if host not in LOOPBACK and not tokens:
        print(
            f"nemo-mcp: serving on {host} would expose your NemoVideo account to the network. "
            "Set NEMO_HTTP_TOKENS to one or more secret tokens (comma-separated; each is one "
            "user), or serve on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path="/mcp", json_response=False, host=host
    )
    if tokens:
        app = BearerGate(app, tokens)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
