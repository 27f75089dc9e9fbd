"""`NemoClient`: every endpoint of the NemoVideo contract over one `httpx.AsyncClient`.

Who the client is (NEMO_TOKEN, or an anonymous token fetched once per client id and
persisted) lives apart, in `auth.py`, which sends through this client's one request
path. This client owns the HTTP: the current session (persisted, replaced on 1002;
kept beside the token in a `ClientState`, files or Redis when hosted), the attribution
headers, and the retry rules: 429 waits and retries once; GETs, polls and the
creation of a session (free, and empty until a message goes to it) retry 5xx and
connection failures with bounded backoff; a request that may have reached the server is
never sent again unless it is safe to repeat. Idle connections are dropped before
servers commonly close them (`KEEPALIVE_SECONDS`). Every answer is read under a size
cap (`body.py`) and every call within deadlines (`retry.py`). Its failures are typed
errors with their facts (`SessionDamagedError`, `SessionReplacedError`): the server's
boundary words them. The agent stream and renders live in `stream.py` and `render.py`;
they use `request`/`authorized_headers` from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx

from nemo_mcp import __version__
from nemo_mcp.backend.auth import Credentials, HomeLeases, Leases
from nemo_mcp.backend.body import (
    ACCEPTED_ENCODINGS,
    ANSWER_LIMIT,
    SMALL_ANSWER_LIMIT,
    read_answer,
)
from nemo_mcp.backend.models import (
    ClaimToken,
    Credits,
    Session,
    StateSnapshot,
    UploadResult,
    parse_wire,
)
from nemo_mcp.backend.retry import (
    CALL_DEADLINES,
    CALL_TIMEOUT,
    TRANSFER_TIMEOUT,
    Deadlines,
    send_with_retries,
    transfer_deadlines,
)
from nemo_mcp.backend.upload import LocalFile, MultipartBody, OnProgress, check_file
from nemo_mcp.client_state import ClientState, FileState, Record
from nemo_mcp.errors import (
    InputError,
    SessionDamagedError,
    SessionNotFoundError,
    SessionReplacedError,
)
from nemo_mcp.identity import Skill, SkillIdentity
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import Damaged, SessionRecord, StateStore

log = logging.getLogger(__name__)

#: Idle connections are dropped after this long, sooner than servers commonly close theirs
#: (5 s for uvicorn and Node): a request then never goes out on a connection the server is
#: closing at that moment, whose answer would be lost.
KEEPALIVE_SECONDS = 2.0

Sleep = Callable[[float], Awaitable[None]]


class NemoClient:
    """The NemoVideo backend, as typed async calls. Use as an async context manager."""

    def __init__(
        self,
        settings: Settings,
        identity: SkillIdentity,
        store: ClientState | StateStore,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep | None = None,
        leases: Leases | None = None,
        owner: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.store: ClientState = FileState(store) if isinstance(store, StateStore) else store
        self.api_url = settings.api_url.rstrip("/")
        self._transport = transport
        self._sleep: Sleep = sleep or anyio.sleep
        self._http: httpx.AsyncClient | None = None
        self.home = HomeLeases(leases, self.store, owner)
        #: Who this client is: its token (`clock`: the wall clock its expiry is read against).
        self.credentials = Credentials(
            settings, self.store, self.home, self._ask_token, clock=clock
        )
        self._session: SessionRecord | None = None
        self._session_stamp: Hashable = None
        self._session_lock = anyio.Lock()

    async def sleep(self, seconds: float) -> None:
        """Wait between retries (tests pass a recorder instead of sleeping)."""
        await self._sleep(seconds)

    # lifecycle -------------------------------------------------------------
    async def __aenter__(self) -> NemoClient:
        self._http = httpx.AsyncClient(
            base_url=self.api_url,
            timeout=CALL_TIMEOUT,
            transport=self._transport,
            headers={
                **self.identity.headers(),
                "User-Agent": f"nemo-mcp/{__version__}",
                "Accept-Encoding": ACCEPTED_ENCODINGS,
            },
            follow_redirects=False,
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise RuntimeError("NemoClient is not open; use 'async with NemoClient(...)'")
        return self._http

    # authentication (`auth.Credentials`) -----------------------------------------
    @property
    def anonymous(self) -> bool:
        return self.credentials.anonymous

    @property
    def user_id(self) -> str | None:
        if self.credentials.user_id:
            return self.credentials.user_id
        return self._session.user_id if self._session else None

    @property
    def session_id(self) -> str | None:
        """The current session's id, if one is open (no request is made)."""
        return self._session.session_id if self._session else None

    async def client_id(self) -> str:
        return await self.credentials.client_id()

    async def token(self) -> str:
        """The bearer token (`Credentials.token`)."""
        return await self.credentials.token()

    async def renew(self, stale: str) -> None:
        """Replace a token the backend refused (1001), once (`Credentials.renew`)."""
        await self.credentials.renew(stale)

    async def _ask_token(self, client_id: str) -> Any:
        return await self.request(
            "POST",
            "/api/auth/anonymous-token",
            headers={"X-Client-Id": client_id},
            idempotent=True,
            auth=False,
            # The 7-day rule: no wait inside a tool call clears it (the contract's
            # "wait 30 s and retry once" is for the other 429s); the next call may ask again.
            wait_on_429=False,
        )

    async def _stamp(self, record: Record) -> Hashable:
        return await self.store.stamp(record)

    async def authorized_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token()}"}

    # the one request path ------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        body: MultipartBody | None = None,
        headers: dict[str, str] | None = None,
        idempotent: bool,
        auth: bool = True,
        timeouts: httpx.Timeout | None = None,
        deadlines: Deadlines | None = None,
        max_bytes: int = ANSWER_LIMIT,
        what: str | None = None,
        wait_on_429: bool = True,
    ) -> Any:
        """Send one call and return its `data`, under the retry policy (`retry.py`).

        The answer is read as a stream and refused past `max_bytes`; the call is
        bounded by `deadlines` (by default a short call's, or a transfer's for
        `body`'s size); `wait_on_429=False` says a 429 at once instead of waiting.
        """
        label = what or f"{method} {path.split('?')[0]}"

        async def attempt(token: str | None) -> Any:
            sent_headers = dict(headers or {})
            if token:
                sent_headers["Authorization"] = f"Bearer {token}"
            content = None
            if body is not None:
                sent_headers["Content-Type"] = body.content_type
                sent_headers["Content-Length"] = str(body.length)
                content = body.stream()
            async with self.http.stream(
                method,
                path,
                json=json,
                content=content,
                headers=sent_headers,
                timeout=timeouts or CALL_TIMEOUT,
            ) as response:
                return await read_answer(response, limit=max_bytes, what=label)

        if deadlines is None:
            deadlines = transfer_deadlines(body.length) if body is not None else CALL_DEADLINES
        return await send_with_retries(
            self,
            attempt,
            what=label,
            idempotent=idempotent,
            auth=auth,
            deadlines=deadlines,
            wait_on_429=wait_on_429,
        )

    # sessions ------------------------------------------------------------------
    async def session(self) -> SessionRecord:
        """The current session: the saved one (re-read when another process changed it),
        else a new one, made once per home."""
        cached = self._session
        if cached is not None and self._session_stamp == await self._stamp("session"):
            return cached
        async with self._session_lock:
            stored = await self._reload_session()
            if stored is not None:
                return stored
            async with self.home.hold("session"):
                stored = await self._reload_session()
                if stored is None:
                    stored = await self._create_session()
                return stored

    async def _reload_session(self) -> SessionRecord | None:
        stamp = await self._stamp("session")
        record = await self.store.load_session()
        damaged = self.store.damaged_session
        if record is None and damaged is not None:
            self.store.damaged_session = None  # said once; the next call starts afresh
            raise self._damaged_session_error(damaged)
        if record is not None:
            self._session, self._session_stamp = record, stamp
        return record

    def _damaged_session_error(self, damaged: Damaged) -> SessionDamagedError:
        return SessionDamagedError(
            "the saved project was damaged",
            detail={
                "path": damaged.path,
                "problem": damaged.problem,
                "moved_to": damaged.moved_to,
                "session_id": damaged.salvaged.get("session_id"),
            },
        )

    async def new_session(self) -> SessionRecord:
        """Start a fresh project explicitly; the previous one stays on the server."""
        async with self._session_lock, self.home.hold("session"):
            return await self._create_session()

    async def _create_session(self) -> SessionRecord:
        # Safe to ask again when its answer is lost: a session is free and nothing happens
        # in it until a message is sent (at worst an empty project is left behind).
        data = await self.request(
            "POST",
            "/api/tasks/me/with-session/nemo_agent",
            json={"task_name": "project", "language": self.settings.language},
            idempotent=True,
            what="creating a session",
        )
        session = parse_wire(Session, data, what="creating a session")
        record = SessionRecord(
            session_id=session.session_id,
            task_id=session.task_id,
            user_id=session.user_id or self.credentials.user_id,
        )
        await self.store.save_session(record)
        self._session, self._session_stamp = record, await self._stamp("session")
        log.info("started NemoVideo session %s", record.session_id)
        return record

    async def replace_lost_session(self, lost: SessionRecord) -> SessionRecord:
        """After a 1002: forget `lost` and start a new session (once, however many callers
        and processes)."""
        async with self._session_lock, self.home.hold("session"):
            stored = await self.store.load_session()
            if stored is not None and stored.session_id != lost.session_id:
                self._session, self._session_stamp = stored, await self._stamp("session")
                return stored
            await self.store.clear_session()
            return await self._create_session()

    async def session_lost(
        self, lost: SessionRecord, err: SessionNotFoundError
    ) -> SessionReplacedError:
        """After a 1002 on `lost`: a new session, and the error that names it."""
        new = await self.replace_lost_session(lost)
        return SessionReplacedError(
            "the session is gone; a new one was started",
            code=1002,
            http_status=err.http_status,
            detail={"session_id": new.session_id},
        )

    async def session_request(self, method: str, path: str, **kwargs: Any) -> Any:
        """A call on the current session (`{sid}` in `path`); 1002 replaces the session."""
        current = await self.session()
        try:
            return await self.request(method, path.format(sid=quote(current.session_id)), **kwargs)
        except SessionNotFoundError as err:
            raise await self.session_lost(current, err) from err

    # plain calls ---------------------------------------------------------------
    async def credits(self) -> Credits:
        data = await self.request(
            "GET",
            "/api/credits/balance/simple",
            idempotent=True,
            max_bytes=SMALL_ANSWER_LIMIT,
            what="reading the credits",
        )
        return parse_wire(Credits, data, what="reading the credits")

    async def state(self) -> StateSnapshot:
        data = await self.session_request(
            "GET",
            "/api/state/nemo_agent/me/{sid}/latest",
            idempotent=True,
            what="reading the state",
        )
        return parse_wire(StateSnapshot, data, what="reading the state")

    async def claim_link(self) -> str:
        """A browser link to open the current project; built from a short-lived claim
        token, never from the bearer token."""
        session = await self.session()
        data = await self.request(
            "POST",
            "/api/auth/claim-token",
            json={"task_id": session.task_id, "session_id": session.session_id},
            idempotent=True,
            what="creating a claim link",
        )
        claim = parse_wire(ClaimToken, data, what="creating a claim link")
        return f"{self.settings.web_url.rstrip('/')}/workspace/claim?ct={quote(claim.claim_token)}"

    def registration_link(self) -> str:
        """Where an anonymous user registers to keep going (`?bind=<user id>`)."""
        base = f"{self.settings.web_url.rstrip('/')}/register"
        return f"{base}?bind={quote(self.user_id)}" if self.user_id else base

    # uploads ---------------------------------------------------------------------
    @property
    def upload_skill(self) -> Skill:
        """The active skill, its upload limit lowered by NEMO_UPLOAD_LIMIT_MB if set."""
        return self.identity.skill.limited_to(self.settings.upload_limit_bytes)

    def check_files(self, paths: Sequence[Path]) -> list[LocalFile]:
        """Check every file against the active skill before anything is sent."""
        return [check_file(p, self.upload_skill) for p in paths]

    async def upload_files(
        self,
        paths: Sequence[Path],
        *,
        on_progress: OnProgress | None = None,
    ) -> UploadResult:
        """Upload local files in one multipart request, streamed from disk."""
        if not paths:
            raise InputError("no files to upload")
        body = MultipartBody(self.check_files(paths), on_progress=on_progress)
        data = await self.session_request(
            "POST",
            "/api/upload-video/nemo_agent/me/{sid}",
            body=body,
            idempotent=False,
            timeouts=TRANSFER_TIMEOUT,
            what="uploading files",
        )
        return parse_wire(UploadResult, data, what="the upload")

    async def upload_urls(self, urls: Sequence[str]) -> UploadResult:
        """Have the backend fetch files from http(s) URLs."""
        if not urls:
            raise InputError("no URLs to upload")
        data = await self.session_request(
            "POST",
            "/api/upload-video/nemo_agent/me/{sid}",
            json={"urls": list(urls), "source_type": "url"},
            idempotent=False,
            what="uploading URLs",
        )
        return parse_wire(UploadResult, data, what="the upload")
