"""Host and Origin checked on every HTTP bind, against DNS rebinding.

A web page on evil.example can make the browser reach this computer's loopback server
under its own name (DNS rebinding): the request then says `Host: evil.example` and, for a
script's request, `Origin: http://evil.example`. The SDK checks those only when the bind
is spelt exactly `127.0.0.1`, `localhost` or `::1`; `--host 127.0.0.2`, `LOCALHOST` or
`[::1]` went unchecked. So the SDK's check is replaced by `HostCheck`, on every bind:

- every request's `Host` must name this computer's loopback (any spelling of
  `localhost`, any 127.0.0.0/8 address, `::1`, IPv4-mapped forms; any port), or the
  configured public host (`NEMO_PUBLIC_URL`) when the server is served;
- an `Origin`, when a browser sends one, must be an http(s) origin on one of those
  hosts (`null` never is);
- a served bind on a non-loopback address without `NEMO_PUBLIC_URL` cannot know its
  public name: its `Host` is not checked (the bearer token is what keeps others out),
  but an `Origin` must still be the request's own host or loopback.

Refused: 421 for a wrong Host, 403 for a wrong Origin, as the SDK answers. `/healthz`
(the load balancer's checks) is open.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from nemo_mcp.server.exposure import is_loopback

#: Paths answered whatever the Host, and without a bearer token: the load balancer's
#: health and readiness checks, and the operator's metrics (when served on this port).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def host_name(authority: str) -> str | None:
    """The host of a `Host` header or URL authority (`[::1]:8000` -> `::1`), lowercased,
    without a trailing dot; None when it is malformed."""
    try:
        parts = urlsplit(f"//{authority.strip()}")
        name = parts.hostname
        _ = parts.port  # a port that is not a number is malformed
    except ValueError:
        return None
    if not name or "@" in authority:
        return None
    return name.lower().rstrip(".")


class HostRule:
    """Which hosts a bind answers to: loopback always, and `public` (a host name) if set.

    `checked`: False for a served bind without a public URL (its Host is not checked)."""

    def __init__(self, public: str | None = None, *, checked: bool = True) -> None:
        self.public = host_name(public) if public else None
        self.checked = checked

    def host_ok(self, host: str | None) -> bool:
        if not self.checked:
            return True
        name = host_name(host) if host else None
        return name is not None and (is_loopback(name) or name == self.public)

    def origin_ok(self, origin: str | None, host: str | None) -> bool:
        if origin is None:
            return True  # not a browser's cross-origin request
        try:
            parts = urlsplit(origin.strip())
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # `null`, file:, extensions
        name = host_name(parts.netloc)
        if name is None:
            return False
        if is_loopback(name) or (self.public is not None and name == self.public):
            return True
        own = host_name(host) if host else None
        return not self.checked and own is not None and name == own


async def respond(
    send: Send, status: int, body: dict[str, Any], *extra: tuple[bytes, bytes]
) -> None:
    """Answer an HTTP request with `body` as JSON (and any `extra` headers), unserved."""
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


async def _refuse(send: Send, status: int, message: str) -> None:
    await respond(send, status, {"error": message})


class HostCheck:
    """ASGI middleware refusing a request whose Host or Origin `rule` does not allow."""

    def __init__(self, app: ASGIApp, rule: HostRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            if name in ("host", "origin"):
                if name in headers:  # two Host headers: which one the client meant is unknown
                    await _refuse(send, 421, f"more than one {name} header")
                    return
                headers[name] = value.decode("latin-1")
        host = headers.get("host")
        if not self.rule.host_ok(host):
            await _refuse(send, 421, "this server does not answer to that Host")
            return
        if not self.rule.origin_ok(headers.get("origin"), host):
            await _refuse(send, 403, "requests from that Origin are not allowed")
            return
        await self.app(scope, receive, send)


__all__ = ["HostCheck", "HostRule", "host_name"]
