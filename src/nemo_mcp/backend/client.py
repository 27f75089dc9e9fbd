"""`NemoClient`: every endpoint of the NemoVideo contract over one `httpx.AsyncClient`.

It owns authentication (NEMO_TOKEN, or an anonymous token fetched once per
client id and persisted), the current session (persisted, replaced on 1002) -
both kept in a `ClientState` (files, or Redis when hosted) -
the attribution headers, and the retry rules: 429 waits and retries once;
GETs and polls retry 5xx and connection failures with bounded backoff; a
request that may have reached the server is never sent again unless it is
safe to repeat. Every answer is read under a size cap (`body.py`) and every
call within deadlines (`retry.py`). The agent stream and renders live in
`stream.py` and `render.py`; they use `request`/`authorized_headers` from here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import anyio
import httpx

from nemo_mcp import __version__, redaction, retrying
from nemo_mcp.backend.body import (
    ACCEPTED_ENCODINGS,
    ANSWER_LIMIT,
    SMALL_ANSWER_LIMIT,
    read_answer,
)
from nemo_mcp.backend.models import (
    AnonymousToken,
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
from nemo_mcp.errors import (
    AuthError,
    ConfigError,
    InputError,
    RateLimitError,
    SessionNotFoundError,
    StateDamagedError,
)
from nemo_mcp.identity import Profile, SkillIdentity
from nemo_mcp.ledger import new_owner
from nemo_mcp.settings import Settings
from nemo_mcp.state import ClientState, FileState, Record
from nemo_mcp.store import AuthRecord, Damaged, SessionRecord, StateStore

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
#: Renew a stored anonymous token this long before it expires.
EXPIRY_MARGIN = 300.0
#: How long a process waits for another one asking for the token or making the session.
HOME_LEASE_WAIT = 90.0
_LEASE_WORDS = {"anonymous-token": "asking for the token", "session": "starting a project"}


class Leases(Protocol):
    """Named leases shared by every process using one user's state (the ledger's)."""

    async def lease(self, name: str, owner: str, *, now: float, seconds: float) -> bool: ...

    async def release(self, name: str, owner: str) -> None: ...


def _expired(expires_at: str | None, now: float) -> bool:
    if not expires_at:
        return False
    try:
        moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() - EXPIRY_MARGIN <= now


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
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.store: ClientState = FileState(store) if isinstance(store, StateStore) else store
        self.api_url = settings.api_url.rstrip("/")
        self._transport = transport
        self._sleep: Sleep = sleep or anyio.sleep
        self._http: httpx.AsyncClient | None = None
        self.leases = leases
        self._owner = new_owner()
        self._auth: AuthRecord | None = None
        self._auth_stamp: Hashable = None
        self._session: SessionRecord | None = None
        self._session_stamp: Hashable = None
        self._auth_lock = anyio.Lock()
        self._session_lock = anyio.Lock()
        if settings.token is not None:
            redaction.register(settings.token.get_secret_value())

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

    # authentication ----------------------------------------------------------
    @property
    def anonymous(self) -> bool:
        return self.settings.token is None

    @property
    def user_id(self) -> str | None:
        if self._auth is not None and self._auth.user_id:
            return self._auth.user_id
        return self._session.user_id if self._session else None

    @property
    def session_id(self) -> str | None:
        """The current session's id, if one is open (no request is made)."""
        return self._session.session_id if self._session else None

    async def client_id(self) -> str:
        return await self.store.client_id(
            self.settings.client_id, token_exists=await self.store.has_auth()
        )

    async def token(self) -> str:
        """The bearer token: NEMO_TOKEN, else the saved anonymous one, else a new one.

        The saved token is re-read when another process changed it, and a new one is
        asked for once per home, whichever process gets there first."""
        if self.settings.token is not None:
            return self.settings.token.get_secret_value()
        cached = self._auth
        if (
            cached is not None
            and self._fresh(cached)
            and self._auth_stamp == await self._stamp("auth")
        ):
            return cached.token
        async with self._auth_lock:
            stored = await self._reload_auth()
            if stored is not None and self._fresh(stored):
                return stored.token
            async with self._home_lease("anonymous-token"):
                stored = await self._reload_auth()  # another process may have fetched it
                if stored is not None and self._fresh(stored):
                    return stored.token
                record = await self._fetch_anonymous_token(token_exists=False)
                await self._keep_auth(record)
                return record.token

    async def renew(self, stale: str) -> None:
        """Replace a token the backend refused (1001), once, with the same client id."""
        if self.settings.token is not None:
            raise AuthError(
                "NEMO_TOKEN was refused by NemoVideo (expired or invalid). Set a valid token, "
                "or unset NEMO_TOKEN to use a free anonymous one.",
                code=1001,
            )
        async with self._auth_lock, self._home_lease("anonymous-token"):
            stored = await self._reload_auth()
            if stored is not None and stored.token != stale and self._fresh(stored):
                return  # another call, or another process, renewed it meanwhile
            await self.store.clear_auth()
            await self._keep_auth(await self._fetch_anonymous_token(token_exists=True))

    @staticmethod
    def _fresh(record: AuthRecord) -> bool:
        return not _expired(record.expires_at, time.time())

    async def _stamp(self, record: Record) -> Hashable:
        return await self.store.stamp(record)

    async def _reload_auth(self) -> AuthRecord | None:
        stamp = await self._stamp("auth")
        record = await self.store.load_auth()
        if record is not None:
            self._auth, self._auth_stamp = record, stamp
            redaction.register(record.token)
        return record

    async def _keep_auth(self, record: AuthRecord) -> None:
        self._auth, self._auth_stamp = record, await self._stamp("auth")
        redaction.register(record.token)

    @asynccontextmanager
    async def _home_lease(self, name: str) -> AsyncIterator[None]:
        """Hold the named lease of this home (shared by every process using it)."""
        if self.leases is None:
            yield
            return
        deadline = anyio.current_time() + HOME_LEASE_WAIT
        held = False
        for wait in retrying.LEASE.tries():
            await anyio.sleep(wait)
            held = await self.leases.lease(name, self._owner, now=time.time(), seconds=60.0)
            if held or anyio.current_time() > deadline:
                break
        if not held:
            raise ConfigError(
                f"another nemo-mcp process has been {_LEASE_WORDS.get(name, name)} for over "
                f"{HOME_LEASE_WAIT:.0f} s ({self.store.where}); try again."
            )
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                await self.leases.release(name, self._owner)

    async def _fetch_anonymous_token(self, *, token_exists: bool) -> AuthRecord:
        """Ask for an anonymous token (holding the home's lease); keep it before returning."""
        client_id = await self.store.client_id(self.settings.client_id, token_exists=token_exists)
        if not token_exists and client_id == await self.store.token_asked():
            # A process died after asking with this id and before keeping the answer:
            # the id's one token may be spent. Ask with a new id, where that is allowed.
            client_id = await self.store.replace_client_id() or client_id
            log.info("an earlier token request was never answered here; using a new client id")
        await self.store.note_token_asked(client_id)  # recorded before the request leaves
        try:
            data = await self.request(
                "POST",
                "/api/auth/anonymous-token",
                headers={"X-Client-Id": client_id},
                idempotent=True,
                auth=False,
            )
        except RateLimitError as err:
            raise RateLimitError(
                self._one_token_message(), code=429, retry_after=err.retry_after
            ) from err
        token = parse_wire(AnonymousToken, data, what="the token request")
        redaction.register(token.token)
        record = AuthRecord(
            token=token.token, user_id=token.user_id, expires_at=token.expires_at, anonymous=True
        )
        await self.store.save_auth(record)
        await self.store.note_token_asked(None)
        log.info("obtained an anonymous NemoVideo token (expires %s)", token.expires_at)
        damaged, self.store.damaged_auth = self.store.damaged_auth, None
        if damaged is not None:
            self.store.note(
                f"The saved NemoVideo token ({damaged.path}) was damaged ({damaged.problem}) and "
                f"was moved aside to {damaged.moved_to}; a new free token was fetched for this "
                "computer with its client id."
            )
        return record

    def _one_token_message(self) -> str:
        damaged = self.store.damaged_auth
        if damaged is not None:
            where = (
                f"was in {damaged.path}, which was damaged ({damaged.problem}) and moved aside to "
                f"{damaged.moved_to}"
            )
        else:
            where = f"is not in {self.store.where} (it was deleted or never kept there)"
        return (
            "NemoVideo gives one free token per computer every 7 days, and this computer's "
            f"token {where}. Set NEMO_TOKEN to your token (from your NemoVideo account), or "
            "try again after the 7 days."
        )

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
    ) -> Any:
        """Send one call and return its `data`, under the retry policy (`retry.py`).

        The answer is read as a stream and refused past `max_bytes`; the call is
        bounded by `deadlines` (by default a short call's, or a transfer's for
        `body`'s size).
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
            async with self._home_lease("session"):
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

    def _damaged_session_error(self, damaged: Damaged) -> StateDamagedError:
        sid = damaged.salvaged.get("session_id")
        where = f" (it was session {sid})" if sid else ""
        return StateDamagedError(
            f"The saved project in {damaged.path} was damaged ({damaged.problem}) and was moved "
            f"aside to {damaged.moved_to}, so its timeline cannot be reached from here{where}. "
            "Nothing was sent. Ask again to continue in a new, empty project; the old one, if "
            f"it still exists, stays in your NemoVideo account ({self.settings.web_url})."
        )

    async def new_session(self) -> SessionRecord:
        """Start a fresh project explicitly; the previous one stays on the server."""
        async with self._session_lock, self._home_lease("session"):
            return await self._create_session()

    async def _create_session(self) -> SessionRecord:
        data = await self.request(
            "POST",
            "/api/tasks/me/with-session/nemo_agent",
            json={"task_name": "project", "language": self.settings.language},
            idempotent=False,
            what="creating a session",
        )
        session = parse_wire(Session, data, what="creating a session")
        record = SessionRecord(
            session_id=session.session_id,
            task_id=session.task_id,
            user_id=session.user_id or (self._auth.user_id if self._auth else None),
        )
        await self.store.save_session(record)
        self._session, self._session_stamp = record, await self._stamp("session")
        log.info("started NemoVideo session %s", record.session_id)
        return record

    async def replace_lost_session(self, lost: SessionRecord) -> SessionRecord:
        """After a 1002: forget `lost` and start a new session (once, however many callers
        and processes)."""
        async with self._session_lock, self._home_lease("session"):
            stored = await self.store.load_session()
            if stored is not None and stored.session_id != lost.session_id:
                self._session, self._session_stamp = stored, await self._stamp("session")
                return stored
            await self.store.clear_session()
            return await self._create_session()

    async def session_lost(
        self, lost: SessionRecord, err: SessionNotFoundError
    ) -> SessionNotFoundError:
        """After a 1002 on `lost`: a new session, and the error that says so plainly."""
        new = await self.replace_lost_session(lost)
        return SessionNotFoundError(
            "The NemoVideo session expired or was removed on the server, so its timeline is "
            f"gone. A new empty project was started (session {new.session_id}); generate "
            "the video again.",
            code=1002,
            http_status=err.http_status,
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
    def upload_profile(self) -> Profile:
        """The active profile, its upload limit lowered by NEMO_UPLOAD_LIMIT_MB if set."""
        return self.identity.profile.limited_to(self.settings.upload_limit_bytes)

    def check_files(self, paths: Sequence[Path]) -> list[LocalFile]:
        """Check every file against the active profile before anything is sent."""
        return [check_file(p, self.upload_profile) for p in paths]

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
