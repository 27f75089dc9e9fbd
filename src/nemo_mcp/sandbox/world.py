"""The sandbox's state: tokens, users, sessions, credits, renders, faults and statistics.

Everything lives in one `World`, touched only from the server's event loop,
so no locks are needed. Rules that belong to the backend live here: one live
anonymous token per client id, sessions owned by users, credits frozen while
work runs and spent when it is done, render ids unique.
"""

from __future__ import annotations

import asyncio
import copy
import math
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nemo_mcp.sandbox.config import Fault, SandboxConfig
from nemo_mcp.sandbox.files import SandboxFiles
from nemo_mcp.sandbox.protocol import ApiError
from nemo_mcp.timeline.model import parse_draft

REQUEST_LOG_SIZE = 500
CANVAS = {"width": 1920, "height": 1080, "ratio": "16:9", "fps": 30}


def iso(moment: float) -> str:
    """An epoch time as ISO 8601 UTC with a `Z`."""
    stamp = datetime.fromtimestamp(moment, tz=timezone.utc).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


def new_id(prefix: str, nbytes: int = 6) -> str:
    return f"{prefix}{secrets.token_hex(nbytes)}"


@dataclass
class TokenRecord:
    token: str
    user_id: str
    client_id: str | None
    expires_at: float
    revoked: bool = False

    def live(self, now: float) -> bool:
        return not self.revoked and now < self.expires_at


@dataclass
class User:
    user_id: str
    available: int
    frozen: int = 0
    anonymous: bool = True

    def balance(self) -> dict[str, int]:
        return {
            "available": self.available,
            "frozen": self.frozen,
            "total": self.available + self.frozen,
        }


@dataclass
class Session:
    session_id: str
    task_id: str
    task_name: str
    language: str
    user_id: str
    draft: dict[str, Any] | None = None
    video_infos: list[dict[str, Any]] = field(default_factory=list)
    canvas_config: dict[str, Any] = field(default_factory=lambda: dict(CANVAS))
    video_analyses: list[dict[str, Any]] = field(default_factory=list)
    generated_media: list[dict[str, Any]] = field(default_factory=list)

    def snapshot(self) -> dict[str, Any]:
        """The latest-state answer: ids, name and a copy of the state."""
        return {
            "session_id": self.session_id,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "state": copy.deepcopy(
                {
                    "draft": self.draft,
                    "video_infos": self.video_infos,
                    "canvas_config": self.canvas_config,
                    "video_analyses": self.video_analyses,
                    "generated_media": self.generated_media,
                }
            ),
        }


@dataclass
class Render:
    """A render job. Its phase follows the clock (`seconds` from the start), but it is
    `completed` only once its file exists: until then it stays `processing` at 99%."""

    id: str
    user_id: str
    session_id: str
    draft: dict[str, Any]
    output: dict[str, Any]
    created_at: float
    started: float
    seconds: float
    output_bytes: int | None
    fail_error: str | None = None
    cancelled_at: float | None = None
    file: Path | None = None  # the rendered MP4, once it is written
    render_error: str | None = None  # the drawing itself failed
    finished_at: float | None = None  # wall clock time the file was ready
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def ready(self) -> bool:
        return self.output_bytes is not None or self.file is not None

    @property
    def error(self) -> str | None:
        return self.fail_error or self.render_error

    def finish(self, path: Path) -> None:
        self.file, self.finished_at = path, time.time()

    def phase(self, now: float) -> tuple[str, float]:
        """(status, progress 0-1) at monotonic time `now`."""
        if self.cancelled_at is not None:
            return "cancelled", self._fraction(self.cancelled_at)
        if now - self.started >= self.seconds:
            if self.fail_error:
                return "failed", 0.9
            if self.ready:
                return "completed", 1.0
            if self.render_error:
                return "failed", 0.9
            return "processing", 0.99
        fraction = self._fraction(now)
        return ("pending", 0.0) if fraction < 0.1 else ("processing", fraction)

    def _fraction(self, now: float) -> float:
        if self.seconds <= 0:
            return 0.99 if not self.ready else 1.0
        return max(0.0, min(0.99, (now - self.started) / self.seconds))

    def completed_at(self) -> float:
        return max(self.created_at + self.seconds, self.finished_at or 0.0)

    @property
    def duration(self) -> float:
        d = self.draft.get("d")
        if isinstance(d, (int, float)) and not isinstance(d, bool) and d > 0:
            return round(d / 1000, 3)
        return round(parse_draft(self.draft).duration_ms / 1000, 3)


@dataclass
class ActiveFault:
    fault: Fault
    remaining: int | None


class World:
    """All the sandbox's state, and the backend's rules over it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.initial = config.model_copy(deep=True)
        self.jobs: set[asyncio.Task[None]] = set()
        self.files = SandboxFiles()
        self.renders: dict[str, Render] = {}
        self.reset()

    def reset(self, config: SandboxConfig | None = None) -> None:
        """Everything back to the start (running agent work and renders are stopped, kept
        uploads deleted; rendered files stay cached by content)."""
        for job in list(self.jobs):
            job.cancel()
        self.jobs.clear()
        for render in self.renders.values():
            render.stop.set()
        self.files.clear_uploads()
        self.config = (config or self.initial).model_copy(deep=True)
        self.faults: list[ActiveFault] = [ActiveFault(f, f.times) for f in self.config.faults]
        self.tokens: dict[str, TokenRecord] = {}
        self.clients: dict[str, str] = {}
        self.users: dict[str, User] = {}
        self.sessions: dict[str, Session] = {}
        self.renders = {}
        self.clips: dict[str, tuple[str, int]] = {}  # generated clip id -> (prompt, ms)
        self.claims: dict[str, str] = {}
        self.requests: Counter[str] = Counter()
        self.faults_fired: Counter[str] = Counter()
        self.messages: list[dict[str, str]] = []
        self.renders_started = 0
        self.tokens_issued = 0
        self.sessions_created = 0
        self.upload_bytes = 0
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)

    # faults ----------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        self.faults.append(ActiveFault(fault, fault.times))

    def take_fault(self, route: str, name: str) -> Fault | None:
        """Consume one firing of the first queued fault `name` that applies to `route`."""
        for active in self.faults:
            if active.fault.name == name and active.fault.applies_to(route):
                if active.remaining is not None:
                    active.remaining -= 1
                    if active.remaining <= 0:
                        self.faults.remove(active)
                self.faults_fired[name] += 1
                return active.fault
        return None

    def active_faults(self) -> list[dict[str, Any]]:
        return [{**a.fault.model_dump(), "remaining": a.remaining} for a in self.faults]

    # tokens and users ------------------------------------------------------------------
    def issue_anonymous_token(
        self, client_id: str, ttl: float, *, retry_after: bool = False
    ) -> tuple[TokenRecord, User]:
        """A new token for `client_id`, unless it already holds a live one (429).

        The 429 is bare, as the contract promises no `Retry-After` there; with
        `retry_after` it names the seconds until the client's token expires."""
        now = time.time()
        for record in self.tokens.values():
            if record.client_id == client_id and record.live(now):
                wait = max(1, math.ceil(record.expires_at - now))
                raise ApiError(
                    429,
                    "rate limited: one anonymous token per client every 7 days, and this "
                    "client already holds a valid one",
                    headers={"Retry-After": str(wait)} if retry_after else None,
                )
        user_id = self.clients.get(client_id)
        if user_id is None:
            user_id = new_id("anon_", 8)
            self.clients[client_id] = user_id
            self.users[user_id] = User(user_id, available=self.config.initial_credits)
        record = TokenRecord(
            token=f"nmv_usr_{secrets.token_urlsafe(32)}",
            user_id=user_id,
            client_id=client_id,
            expires_at=now + ttl,
        )
        self.tokens[record.token] = record
        self.tokens_issued += 1
        return record, self.users[user_id]

    def register_user(self, credits: int, ttl: float) -> tuple[TokenRecord, User]:
        """A registered (non-anonymous) user and a token for it."""
        user = User(new_id("usr_", 8), available=credits, anonymous=False)
        self.users[user.user_id] = user
        record = TokenRecord(
            token=f"nmv_usr_{secrets.token_urlsafe(32)}",
            user_id=user.user_id,
            client_id=None,
            expires_at=time.time() + ttl,
        )
        self.tokens[record.token] = record
        return record, user

    def authenticate(self, token: str | None) -> tuple[TokenRecord, User]:
        if not token:
            raise ApiError(1001, "token missing: send Authorization: Bearer <token>")
        record = self.tokens.get(token)
        if record is None or record.revoked:
            raise ApiError(1001, "token invalid or revoked")
        if not record.live(time.time()):
            raise ApiError(1001, "token expired")
        return record, self.users[record.user_id]

    # sessions ------------------------------------------------------------------------
    def new_session(self, user: User, task_name: str, language: str) -> Session:
        sid = str(secrets.randbelow(9 * 10**15) + 10**15)
        while sid in self.sessions:
            sid = str(secrets.randbelow(9 * 10**15) + 10**15)
        session = Session(
            session_id=sid,
            task_id=new_id("task_", 8),
            task_name=task_name,
            language=language,
            user_id=user.user_id,
        )
        self.sessions[sid] = session
        self.sessions_created += 1
        return session

    def session_of(self, user: User, session_id: str) -> Session | None:
        """The session if it exists and belongs to `user` (others' sessions do not exist)."""
        session = self.sessions.get(session_id)
        return session if session is not None and session.user_id == user.user_id else None

    # credits ---------------------------------------------------------------------------
    def freeze(self, user: User, cost: int) -> None:
        """Hold `cost` for work about to run; 2001 when the balance cannot cover it."""
        if cost > user.available or (cost == 0 and user.available <= 0):
            raise ApiError(
                2001,
                f"insufficient credits: {user.available} available, {cost} needed",
            )
        user.available -= cost
        user.frozen += cost

    @staticmethod
    def settle(user: User, cost: int, *, spent: bool) -> None:
        """Release a hold: spend it (work done) or give it back (work failed)."""
        user.frozen -= cost
        if not spent:
            user.available += cost

    # renders ---------------------------------------------------------------------------
    def start_render(
        self,
        user: User,
        session: Session,
        render_id: str,
        draft: dict[str, Any],
        output: dict[str, Any],
        config: SandboxConfig,
        fail_error: str | None,
    ) -> Render:
        if render_id in self.renders:
            raise ApiError(
                409, f"render id {render_id} already exists; start the render with a new id"
            )
        render = Render(
            id=render_id,
            user_id=user.user_id,
            session_id=session.session_id,
            draft=copy.deepcopy(draft),
            output=output,
            created_at=time.time(),
            started=time.monotonic(),
            seconds=config.render_seconds,
            output_bytes=config.render_output_bytes,
            fail_error=fail_error,
        )
        self.renders[render_id] = render
        self.renders_started += 1
        return render

    def files_in_use(self) -> set[Path]:
        """Rendered files that live renders serve (never evicted from the cache)."""
        return {r.file for r in self.renders.values() if r.file is not None}

    def render_of(self, user: User, render_id: str) -> Render:
        render = self.renders.get(render_id)
        if render is None or render.user_id != user.user_id:
            raise ApiError(404, f"render {render_id} not found")
        return render

    # statistics ----------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "messages": list(self.messages),
            "renders_started": self.renders_started,
            "renders": [
                {"id": r.id, "session_id": r.session_id, "draft": r.draft}
                for r in self.renders.values()
            ],
            "tokens_issued": self.tokens_issued,
            "sessions_created": self.sessions_created,
            "upload_bytes": self.upload_bytes,
            "faults_fired": dict(self.faults_fired),
            "credits": {uid: u.balance() for uid, u in self.users.items()},
        }


__all__ = ["ActiveFault", "Render", "Session", "TokenRecord", "User", "World", "iso", "new_id"]
