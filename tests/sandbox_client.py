"""A plain HTTP client on the sandbox backend, and readers of its raw SSE answers.

Shared by the `test_sandbox*` modules; the `backend` and `other` fixtures in
`conftest.py` hand out `Backend`s.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import httpx

SKILL = {
    "X-Skill-Source": "ai-generator-generator",
    "X-Skill-Version": "1.2.0",
    "X-Skill-Platform": "unknown",
}
SSE = {"Accept": "text/event-stream"}


class Backend:
    """A plain httpx client on the sandbox, with the steps most tests repeat."""

    def __init__(self, url: str, source: str = "ai-generator-generator") -> None:
        self.http = httpx.Client(
            base_url=url, headers={**SKILL, "X-Skill-Source": source}, timeout=30
        )
        self.client_id = f"client-{os.urandom(6).hex()}"
        self.token = ""
        self.user_id = ""

    def login(self, client_id: str | None = None) -> dict[str, Any]:
        r = self.http.post(
            "/api/auth/anonymous-token", headers={"X-Client-Id": client_id or self.client_id}
        )
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        self.token, self.user_id = data["token"], data["user_id"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        return data

    def session(self) -> str:
        r = self.http.post(
            "/api/tasks/me/with-session/nemo_agent", json={"task_name": "project", "language": "en"}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["data"]["session_id"])

    def ready(self) -> str:
        self.login()
        return self.session()

    def send(self, sid: str, text: str, headers: dict[str, str] | None = None) -> httpx.Response:
        """Send a message and read the whole answer (stream or refusal)."""
        body = {
            "app_name": "nemo_agent",
            "user_id": "me",
            "session_id": sid,
            "new_message": {"parts": [{"text": text}]},
        }
        with self.http.stream(
            "POST", "/run_sse", json=body, headers={**SSE, **(headers or {})}
        ) as r:
            r.read()
        return r

    def state(self, sid: str) -> dict[str, Any]:
        r = self.http.get(f"/api/state/nemo_agent/me/{sid}/latest")
        assert r.status_code == 200, r.text
        return dict(r.json()["data"])

    def draft(self, sid: str) -> dict[str, Any]:
        return dict(self.state(sid)["state"]["draft"] or {})

    def credits(self) -> dict[str, Any]:
        return dict(self.http.get("/api/credits/balance/simple").json()["data"])

    def render(
        self, sid: str, draft: dict[str, Any], render_id: str | None = None, **kw: Any
    ) -> httpx.Response:
        body = {
            "id": render_id or f"render_{time.time_ns()}",
            "sessionId": sid,
            "draft": draft,
            "output": {"format": "mp4", "quality": "high"},
        }
        return self.http.post("/api/render/proxy/lambda", json=body, **kw)

    def close(self) -> None:
        self.http.close()


def sse_blocks(raw: bytes) -> list[dict[str, Any]]:
    """Raw SSE bytes as blocks: {"comment": [...], "event": str|None, "data": str|None}."""
    blocks = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        item: dict[str, Any] = {"comment": [], "event": None, "data": None}
        for line in block.split("\n"):
            if line.startswith(":"):
                item["comment"].append(line[1:].strip())
            elif line.startswith("event:"):
                item["event"] = line[6:].strip()
            elif line.startswith("data:"):
                item["data"] = (item["data"] + "\n" if item["data"] else "") + line[
                    5:
                ].removeprefix(" ")
        blocks.append(item)
    return blocks


def payloads(raw: bytes) -> list[dict[str, Any]]:
    """The JSON objects of the non-empty data frames."""
    return [json.loads(b["data"]) for b in sse_blocks(raw) if b["data"]]


def texts(raw: bytes) -> list[str]:
    return [
        p["text"]
        for e in payloads(raw)
        if "content" in e and not e.get("partial")
        for p in e["content"]["parts"]
        if "text" in p and not p.get("thought")
    ]


def generate(
    backend: Backend, sid: str, text: str = "generate a video of a city timelapse"
) -> dict[str, Any]:
    """A finished generation, made instant for tests that only need a timeline."""
    r = backend.send(sid, text, headers={"X-Sandbox-Variant": "generation_seconds=0"})
    assert r.status_code == 200, r.text
    return backend.draft(sid)


def poll(check: Callable[[], Any], seconds: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (the way clients poll renders)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")
