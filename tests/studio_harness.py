"""The studio view: an SDK client that negotiates MCP Apps, render history written straight
into the ledger, and the view in a real browser (a host page, the MCP server over HTTP,
headless Chromium).

    server  the nemo-mcp server with the studio, over streamable HTTP on loopback
    site    the host page (tests/browser/host.ts, built at test time) on another loopback
            port, forwarding `/mcp` to `server`, so the page and its MCP client share an
            origin, as a real host's backend would
    Browser headless system Chromium, driven by tests/browser/driver.mjs (puppeteer-core)

Nothing is downloaded: the browser is `/usr/bin/chromium` (or `$CHROMIUM`) and the Node
packages come from `npm ci`.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from mcp.client import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from nemo_mcp.ledger import Entry
from nemo_mcp.ledger.sqlite import SqliteLedger
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
NODE_MODULES = ROOT / "node_modules"
DRIVER = ROOT / "tests" / "browser" / "driver.mjs"
ARTIFACTS = Path(os.environ.get("NEMO_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "studio"
STARTUP_SECONDS = 15.0

# The request and answer headers the MCP streamable HTTP transport uses.
_TO_SERVER = ("accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id")
_TO_PAGE = ("content-type", "mcp-session-id", "mcp-protocol-version", "cache-control")


#: What an MCP Apps host advertises (SEP-2133 `capabilities.extensions`).
APPS = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})


async def seed_render(
    settings: Settings, *, url: str, session_id: str = "s", render_id: str = "render_1"
) -> Entry:
    """A finished render in the local user's ledger, as an earlier process would have left
    it (`url` is where the backend said the video is)."""
    ledger = SqliteLedger(StateStore(settings.home, settings.api_url).ledger_path)
    try:
        submitted = await ledger.submit(
            user="",
            kind="render",
            key="render|mp4|high",
            session_id=session_id,
            request={"format": "mp4", "quality": "high", "fresh": False},
        )
        assert submitted.entry is not None
        claimed = await ledger.claim_head("", "seed", lease=10)
        assert claimed is not None and claimed.id == submitted.entry.id
        outcome = {"status": "completed", "render_id": render_id, "url": url, "file": None}
        done = await ledger.finish(
            claimed.id,
            "seed",
            generation=claimed.generation,
            state="done",
            memo={"render_id": render_id, "url": url},
            outcome=outcome,
        )
        assert done is not None
        return done
    finally:
        await ledger.close()


async def renders_in(settings: Settings) -> list[Entry]:
    """The local user's render entries, newest last."""
    ledger = SqliteLedger(StateStore(settings.home, settings.api_url).ledger_path)
    try:
        return await ledger.renders("")
    finally:
        await ledger.close()


def missing_browser_parts() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    if shutil.which("node") is None:
        return "node is not installed"
    for package in ("puppeteer-core", "esbuild", "@modelcontextprotocol/ext-apps"):
        if not (NODE_MODULES / package / "package.json").exists():
            return f"node_modules/{package} is missing: run `npm ci` in the repository"
    return None


def build_host_page(out: Path) -> str:
    """The host page, bundled from tests/browser/host.ts by the same build as the view."""
    subprocess.run(
        ["node", str(ROOT / "app" / "build.mjs"), "--host", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    return out.read_text(encoding="utf-8")


# Serving ---------------------------------------------------------------------------------
class _Uvicorn(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, started: threading.Event) -> None:
        super().__init__(config)
        self._started_event = started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._started_event.set()


@contextmanager
def serve(app: ASGIApp, name: str) -> Iterator[str]:
    """`app` on a free loopback port in a background thread; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    started = threading.Event()
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=1,
    )
    server = _Uvicorn(config, started)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_SECONDS
    while not started.wait(0.02):
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"{name} failed to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(STARTUP_SECONDS)


def host_site(upstream: str, page: str) -> Starlette:
    """The host page at `/`, and `/mcp` forwarded to `upstream` (streams included)."""
    http: dict[str, httpx.AsyncClient] = {}

    async def index(_request: Request) -> Response:
        return HTMLResponse(page)

    async def forward(request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() in _TO_SERVER}
        outgoing = http["client"].build_request(
            request.method, f"{upstream}/mcp", headers=headers, content=await request.body()
        )
        answer = await http["client"].send(outgoing, stream=True)
        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() in _TO_PAGE},
            background=BackgroundTask(answer.aclose),
        )

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None)) as client:
            http["client"] = client
            yield

    return Starlette(
        routes=[Route("/", index), Route("/mcp", forward, methods=["GET", "POST", "DELETE"])],
        lifespan=lifespan,
    )


# The browser -----------------------------------------------------------------------------
class BrowserError(AssertionError):
    """The driver could not do what was asked (the message says why)."""


class Browser:
    """Headless Chromium through the driver: `host(...)`/`view(...)` evaluate JavaScript in
    the host page or the view's frame; `wait`, `click`, `screenshot`, `log`."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            ["node", str(DRIVER)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CHROMIUM": str(CHROMIUM)},
        )
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._next = 0
        threading.Thread(target=self._read, name="browser-out", daemon=True).start()
        threading.Thread(target=self._read_errors, name="browser-err", daemon=True).start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _read_errors(self) -> None:
        assert self._process.stderr is not None
        for line in self._process.stderr:
            self._stderr.append(line)

    def request(self, op: str, *, answer_within: float = 20.0, **fields: Any) -> Any:
        assert self._process.stdin is not None
        self._next += 1
        self._process.stdin.write(json.dumps({"id": self._next, "op": op, **fields}) + "\n")
        self._process.stdin.flush()
        try:
            line = self._answers.get(timeout=answer_within)
        except queue.Empty:
            raise BrowserError(
                f"the browser did not answer {op} within {answer_within:g}s"
            ) from None
        if line is None:
            raise BrowserError(f"the browser driver exited: {''.join(self._stderr)[-2000:]}")
        answer = json.loads(line)
        assert answer["id"] == self._next, answer
        if not answer["ok"]:
            raise BrowserError(f"{op} failed: {answer['error']}")
        return answer["value"]

    def open(self, url: str) -> None:
        self.request("open", url=url)

    def host(self, expr: str, *, timeout: float = 20.0) -> Any:
        return self.request("host", expr=expr, answer_within=timeout)

    def view(self, expr: str) -> Any:
        return self.request("view", expr=expr)

    def snapshot(self) -> dict[str, Any]:
        """What the view shows (see `snapshot` in driver.mjs)."""
        return dict(self.request("snapshot"))

    def until(self, when: str, *, timeout: float = 10.0) -> Any:
        """Wait until `when`, a JavaScript expression over the view's snapshot `s`, holds;
        returns its value."""
        return self.request(
            "wait", when=when, answer_within=timeout + 5, timeout=timeout * 1000, **{"in": "view"}
        )

    def wait(self, expr: str, *, where: str = "view", timeout: float = 10.0) -> Any:
        """Wait until the JavaScript expression `expr` is truthy in the view or host page."""
        return self.request(
            "wait", expr=expr, answer_within=timeout + 5, timeout=timeout * 1000, **{"in": where}
        )

    def click(self, selector: str) -> None:
        self.request("click", selector=selector)

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.request("screenshot", path=str(path))
        return path

    def log(self) -> list[dict[str, Any]]:
        return list(self.request("log"))

    def close_page(self) -> None:
        self.request("close-page")

    def close(self) -> None:
        try:
            if self._process.poll() is None:
                self.request("close", answer_within=10)
        except BrowserError:
            pass
        finally:
            if self._process.stdin is not None:
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            for stream in (self._process.stdout, self._process.stderr):
                if stream is not None:
                    stream.close()
