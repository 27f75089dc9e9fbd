"""Who the client is to NemoVideo, apart from HTTP: its bearer token, and the named leases
of the home its state is kept in.

`Credentials.token()` gives NEMO_TOKEN, else the saved anonymous token (re-read when
another process changed it; replaced before it expires, read against an injected wall
clock), else a new one, asked for once per home whichever process gets there first
(`HomeLeases`). `renew` replaces a token the backend refused, once, with the same client
id. The anonymous-token request itself goes through `ask`, which `NemoClient` gives:
this module sends nothing. Its failures are typed errors with their facts (`HomeBusyError`,
`TokenRefusedError`, `OneTokenError`); the server's boundary words them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, Protocol

import anyio

from nemo_mcp import redaction, retrying
from nemo_mcp.backend.models import AnonymousToken, parse_wire
from nemo_mcp.client_state import ClientState, holding
from nemo_mcp.errors import HomeBusyError, OneTokenError, RateLimitError, TokenRefusedError
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import AuthRecord, Damaged

log = logging.getLogger(__name__)

#: Renew a stored anonymous token this long before it expires.
EXPIRY_MARGIN = 300.0
#: How long a process waits for another one asking for the token or making the session.
HOME_LEASE_WAIT = 90.0

#: Sends the anonymous-token request with this client id; the answer's `data`.
AskToken = Callable[[str], Awaitable[Any]]


class Leases(Protocol):
    """Named leases shared by every process using one user's state (the ledger's)."""

    async def lease(self, name: str, owner: str, *, seconds: float) -> bool: ...

    async def release(self, name: str, owner: str) -> None: ...


def _moment(expires_at: str | None) -> datetime | None:
    """An ISO 8601 expiry as an aware datetime (UTC when it names no zone); None if absent
    or unreadable."""
    if not expires_at:
        return None
    try:
        moment = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def expired(expires_at: str | None, now: float) -> bool:
    """Whether a token expiring at `expires_at` (ISO 8601) is due for renewal at `now`."""
    moment = _moment(expires_at)
    return moment is not None and moment.timestamp() - EXPIRY_MARGIN <= now


def free_again(expires_at: str | None, retry_after: float | None, now: float) -> str | None:
    """When this computer may have a free token again, as a UTC date, if known: the
    backend's `Retry-After`, else the old token's expiry (read from what was left of it)."""
    if retry_after is not None:
        moment: datetime | None = datetime.fromtimestamp(now + retry_after, tz=timezone.utc)
    else:
        moment = _moment(expires_at)
    if moment is None or moment.timestamp() <= now:  # unknown, or already past
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class HomeLeases:
    """The home's named leases, held under `owner` (the name the leases' store gives this
    process) while it asks for the token or starts a project; without `leases` (one
    process), holding is free."""

    def __init__(self, leases: Leases | None, store: ClientState, owner: str = "") -> None:
        if leases is not None and not owner:
            raise ValueError("shared leases are held under an owner name")
        self.leases = leases
        self.store = store
        self.owner = owner

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """Hold the named lease of this home (shared by every process using it)."""
        if self.leases is None:
            yield
            return
        deadline = anyio.current_time() + HOME_LEASE_WAIT
        held = False
        for wait in retrying.LEASE.tries():
            await anyio.sleep(wait)
            held = await self.leases.lease(name, self.owner, seconds=60.0)
            if held or anyio.current_time() > deadline:
                break
        if not held:
            raise HomeBusyError(
                f"the home's {name} lease is held by another process",
                detail={"lease": name, "waited": HOME_LEASE_WAIT, "where": self.store.where},
            )
        try:
            with holding(name, self.owner):  # the store fences its writes with it
                yield
        finally:
            with anyio.CancelScope(shield=True):
                await self.leases.release(name, self.owner)


class Credentials:
    """The bearer token of one user's client, kept in their `ClientState`."""

    def __init__(
        self,
        settings: Settings,
        store: ClientState,
        home: HomeLeases,
        ask: AskToken,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.home = home
        self._ask = ask
        #: The wall clock (seconds since the epoch) a token's expiry is read against.
        self._clock = clock
        self._auth: AuthRecord | None = None
        self._auth_stamp: Hashable = None
        self._lock = anyio.Lock()
        self._replaced: list[Damaged] = []
        if settings.token is not None:
            redaction.register(settings.token.get_secret_value())

    @property
    def anonymous(self) -> bool:
        return self.settings.token is None

    @property
    def user_id(self) -> str | None:
        """The user id the saved token was given with, if known (no request is made)."""
        return self._auth.user_id if self._auth is not None else None

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
            and self._auth_stamp == await self.store.stamp("auth")
        ):
            return cached.token
        async with self._lock:
            stored = await self._reload()
            if stored is not None and self._fresh(stored):
                return stored.token
            async with self.home.hold("anonymous-token"):
                stored = await self._reload()  # another process may have fetched it
                if stored is not None and self._fresh(stored):
                    return stored.token
                record = await self._fetch_anonymous_token(token_exists=False)
                await self._keep(record)
                return record.token

    async def renew(self, stale: str) -> None:
        """Replace a token the backend refused (1001), once, with the same client id."""
        if self.settings.token is not None:
            raise TokenRefusedError("NEMO_TOKEN was refused", code=1001)
        async with self._lock, self.home.hold("anonymous-token"):
            stored = await self._reload()
            if stored is not None and stored.token != stale and self._fresh(stored):
                return  # another call, or another process, renewed it meanwhile
            await self.store.clear_auth()
            await self._keep(await self._fetch_anonymous_token(token_exists=True))

    def _fresh(self, record: AuthRecord) -> bool:
        return not expired(record.expires_at, self._clock())

    async def _reload(self) -> AuthRecord | None:
        stamp = await self.store.stamp("auth")
        record = await self.store.load_auth()
        if record is not None:
            self._auth, self._auth_stamp = record, stamp
            redaction.register(record.token, holder=self)
        return record

    async def _keep(self, record: AuthRecord) -> None:
        self._auth, self._auth_stamp = record, await self.store.stamp("auth")
        redaction.register(record.token, holder=self)

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
            data = await self._ask(client_id)
        except RateLimitError as err:
            raise OneTokenError(
                "one free token per computer every 7 days",
                code=429,
                retry_after=err.retry_after,
                detail=self._one_token_facts(err.retry_after, refused=token_exists),
            ) from err
        token = parse_wire(AnonymousToken, data, what="the token request")
        redaction.register(token.token, holder=self)
        record = AuthRecord(
            token=token.token, user_id=token.user_id, expires_at=token.expires_at, anonymous=True
        )
        await self.store.save_auth(record)
        await self.store.note_token_asked(None)
        log.info("obtained an anonymous NemoVideo token (expires %s)", token.expires_at)
        damaged, self.store.damaged_auth = self.store.damaged_auth, None
        if damaged is not None:
            self._replaced.append(damaged)  # the server says so once (`take_replaced`)
        return record

    def take_replaced(self) -> list[Damaged]:
        """Damaged token files a new token was fetched in place of, each given out once."""
        replaced, self._replaced = self._replaced, []
        return replaced

    def _one_token_facts(self, retry_after: float | None, *, refused: bool) -> dict[str, Any]:
        """For the 7-day rule: which token is gone (refused, damaged or missing), and when
        a free one comes again, if known."""
        damaged = self.store.damaged_auth
        facts: dict[str, Any] = {"where": self.store.where}
        if refused:
            facts["gone"] = "refused"
            expires = self._auth.expires_at if self._auth is not None else None
        elif damaged is not None:
            facts.update(
                gone="damaged",
                path=damaged.path,
                problem=damaged.problem,
                moved_to=damaged.moved_to,
            )
            expires = damaged.salvaged.get("expires_at")
        else:
            facts["gone"] = "missing"
            expires = None
        facts["until"] = free_again(expires, retry_after, self._clock())
        return facts


__all__ = [
    "EXPIRY_MARGIN",
    "HOME_LEASE_WAIT",
    "Credentials",
    "HomeLeases",
    "Leases",
    "expired",
    "free_again",
]
