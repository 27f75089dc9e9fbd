"""Serving the sandbox for tests, demos and benchmarks: `SandboxServer`.

    with SandboxServer(SandboxConfig(generation_seconds=0.5)) as sandbox:
        sandbox.url                       # http://127.0.0.1:<port>
        sandbox.control.fault("slow", route="credits", delay=0.2)

The server runs uvicorn in a background thread on a loopback port chosen by
the system; entering returns once it accepts connections. It also works as
an async context manager, and `acontrol` offers the control calls as
coroutines.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import anyio
import httpx
import uvicorn
from typing_extensions import Self

from nemo_mcp.sandbox.app import create_app
from nemo_mcp.sandbox.config import SandboxConfig

STARTUP_TIMEOUT = 15.0


class _Server(uvicorn.Server):
    """uvicorn that says when it is listening."""

    def __init__(self, config: uvicorn.Config, started: threading.Event) -> None:
        super().__init__(config)
        self._started_event = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._started_event.set()


def _fault_body(name: str, route: str, times: int | None, params: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "route": route, "times": times, **params}


def _checked(response: httpx.Response) -> dict[str, Any]:
    """The control answer, or ValueError with the sandbox's reason."""
    if response.status_code >= 400:
        raise ValueError(f"sandbox control refused: {response.text}")
    body: dict[str, Any] = response.json()
    return body


class SandboxControl:
    """Synchronous calls to the control endpoints of a running sandbox."""

    def __init__(self, url: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10.0)

    def set(self, **fields: Any) -> dict[str, Any]:
        """Merge config fields; returns the whole config."""
        return _checked(self._http.post("/_sandbox/config", json=fields))

    def config(self) -> dict[str, Any]:
        return _checked(self._http.get("/_sandbox/config"))

    def fault(
        self, name: str, route: str = "*", times: int | None = 1, **params: Any
    ) -> dict[str, Any]:
        """Queue a fault (`times=None`: every matching request)."""
        return _checked(
            self._http.post("/_sandbox/faults", json=_fault_body(name, route, times, params))
        )

    def clear_faults(self) -> None:
        _checked(self._http.delete("/_sandbox/faults"))

    def reset(self) -> None:
        _checked(self._http.post("/_sandbox/reset"))

    def stats(self) -> dict[str, Any]:
        return _checked(self._http.get("/_sandbox/stats"))

    def requests(self) -> list[dict[str, Any]]:
        return list(_checked(self._http.get("/_sandbox/requests"))["requests"])

    def user(self, credits: int | None = None) -> dict[str, Any]:
        """A registered user: `{"token", "user_id", "expires_at"}`."""
        body = {} if credits is None else {"credits": credits}
        return _checked(self._http.post("/_sandbox/users", json=body))

    def close(self) -> None:
        self._http.close()


class AsyncSandboxControl:
    """The same control calls as coroutines (a fresh connection each, so any loop will do)."""

    def __init__(self, url: str) -> None:
        self._url = url

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self._url, timeout=10.0) as http:
            return _checked(await http.request(method, path, json=body))

    async def set(self, **fields: Any) -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/config", fields)

    async def config(self) -> dict[str, Any]:
        return await self._call("GET", "/_sandbox/config")

    async def fault(
        self, name: str, route: str = "*", times: int | None = 1, **params: Any
    ) -> dict[str, Any]:
        return await self._call("POST", "/_sandbox/faults", _fault_body(name, route, times, params))

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/_sandbox/faults")

    async def reset(self) -> None:
        await self._call("POST", "/_sandbox/reset")

    async def stats(self) -> dict[str, Any]:
        return await self._call("GET", "/_sandbox/stats")

    async def requests(self) -> list[dict[str, Any]]:
        return list((await self._call("GET", "/_sandbox/requests"))["requests"])

    async def user(self, credits: int | None = None) -> dict[str, Any]:
        return await self._call(
            "POST", "/_sandbox/users", {} if credits is None else {"credits": credits}
        )


class SandboxServer:
    """The sandbox backend served on 127.0.0.1 in a background thread."""

    def __init__(self, config: SandboxConfig | None = None, *, host: str = "127.0.0.1") -> None:
        self.config = config or SandboxConfig()
        self.host = host
        self.port = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._control: SandboxControl | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox is not running; use 'with SandboxServer() as sandbox'")
        return f"http://{self.host}:{self.port}"

    @property
    def control(self) -> SandboxControl:
        if self._control is None:
            self._control = SandboxControl(self.url)
        return self._control

    @property
    def acontrol(self) -> AsyncSandboxControl:
        return AsyncSandboxControl(self.url)

    def start(self) -> Self:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it,
        # and without it every keep-alive answer waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        started = threading.Event()
        config = uvicorn.Config(
            create_app(self.config),
            log_config=None,
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config, started)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="nemo-sandbox", daemon=True
        )
        self._thread.start()
        # Wait for the startup event; a thread that ends first has failed to start.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not started.wait(0.05):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                sock.close()
                self._server = None
                raise RuntimeError("the sandbox server failed to start")
        return self

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(STARTUP_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await anyio.to_thread.run_sync(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await anyio.to_thread.run_sync(self.stop)


__all__ = ["AsyncSandboxControl", "SandboxControl", "SandboxServer"]
