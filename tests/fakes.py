"""A scriptable fake backend for unit tests, served through httpx.MockTransport."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.identity import load_identity
from nemo_mcp.ledger import Entry
from nemo_mcp.server.jobs import MessageJob, RenderJob, check_move, job_of
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

API = "https://api.test"
Handler = Callable[[httpx.Request], httpx.Response | None]


def ok(data: Any, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json={"code": 0, "message": "success", "data": data})


def fail(code: int, message: str = "nope", status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message}, headers=headers)


def sse(*frames: bytes | str) -> httpx.Response:
    async def body() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame.encode() if isinstance(frame, str) else frame

    return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())


def data_frame(obj: Any) -> str:
    return f"data: {json.dumps(obj)}\n\n"


@dataclass
class FakeBackend:
    """Default answers for every endpoint; `script` handlers take precedence, in order."""

    requests: list[httpx.Request] = field(default_factory=list)
    script: list[Handler] = field(default_factory=list)
    tokens_issued: int = 0
    #: When the anonymous tokens it gives expire.
    token_expires_at: str = "2099-01-01T00:00:00Z"

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        for handler in list(self.script):
            response = handler(request)
            if response is not None:
                return response
        path = request.url.path
        if path == "/api/auth/anonymous-token":
            self.tokens_issued += 1
            return ok(
                {
                    "token": f"nmv_usr_tok{self.tokens_issued:06d}",
                    "user_id": "anon_1",
                    "expires_at": self.token_expires_at,
                    "credits": 100,
                }
            )
        if path == "/api/tasks/me/with-session/nemo_agent":
            return ok({"task_id": "task_1", "session_id": "1001001", "user_id": "anon_1"})
        if path == "/api/credits/balance/simple":
            return ok({"available": 80, "frozen": 20, "total": 100})
        if path.startswith("/api/state/"):
            return ok({"session_id": "1001001", "state": {"draft": {"t": []}}})
        return httpx.Response(404, json={"detail": "not found"})

    def paths(self) -> list[str]:
        return [r.url.path for r in self.requests]

    def count(self, path: str) -> int:
        return sum(1 for p in self.paths() if p == path)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def make_client(
    tmp_path: Path,
    backend: FakeBackend,
    *,
    sleeps: Sleeps | None = None,
    clock: Callable[[], float] = time.time,
    **overrides: Any,
) -> NemoClient:
    settings = Settings(
        api_url=API, home=tmp_path / "home", output_dir=tmp_path / "out", **overrides
    )
    return NemoClient(
        settings,
        load_identity(),
        StateStore(settings.home, settings.api_url),
        transport=httpx.MockTransport(backend.handle),
        sleep=sleeps or Sleeps(),
        clock=clock,
    )


class Recorded:
    """A run as the transitions see it (`jobs.common.Journal`): what `save` makes durable
    goes to `log` (shared with the backend's requests), and `durable` is the entry a
    process started after a kill would read."""

    def __init__(self, durable: Entry, log: list[tuple[str, ...]]) -> None:
        self.durable = durable
        self.memo: dict[str, Any] = dict(durable.memo)
        self.sticky = False
        self.log = log

    @property
    def job(self) -> MessageJob | RenderJob:
        return job_of(self.durable, self.memo)

    async def save(self, *, state: Any = None, session_id: str | None = None, **memo: Any) -> None:
        if state is not None:
            check_move(self.durable.kind, self.durable.state, state)
        self.memo.update(memo)
        self.durable = replace(
            self.durable,
            state=state or self.durable.state,
            session_id=session_id or self.durable.session_id,
            memo=dict(self.memo),
        )
        self.log.append(("saved", self.durable.state, str(self.memo.get("render_id"))))

    def phase(self, words: str, percent: float | None = None) -> None:
        pass
