"""Every failure nemo-mcp expects, as one exception tree.

    NemoError                      anything this package raises on purpose
    ├── ConfigError                settings, SKILL.md or the state folder are unusable
    │   ├── SkillFileError         SKILL.md missing, without frontmatter, or an unknown profile
    │   ├── HomeBusyError          another process held the home's lease past the wait
    │   └── StateDamagedError      a saved state file was damaged; said once, then moved aside
    │       └── SessionDamagedError    the saved project was: its timeline is out of reach
    ├── InputError                 the caller's input is refused before any request
    │   ├── UnsupportedFileError   (4001 too) a type the active profile does not take
    │   ├── FileTooLargeError      (4002 too) over the active profile's size limit
    │   ├── PathNotAllowedError    outside the allowed folders, a device, a folder...
    │   └── LimitError             an operator's per-user limit (calls a minute, credits a day)
    ├── BackendError               the backend answered, and said no
    │   ├── AuthError              1001 token expired or invalid
    │   │   └── TokenRefusedError  NEMO_TOKEN itself (an anonymous one is renewed instead)
    │   ├── SessionNotFoundError   1002 the session (and its timeline) is gone
    │   │   └── SessionReplacedError   ... and a new, empty one was started
    │   ├── CreditsError           2001 out of credits
    │   ├── ClientIdError          400  X-Client-Id missing
    │   ├── PlanError              402  free plan export blocked
    │   ├── RateLimitError         429  rate limited
    │   │   └── OneTokenError      the free token's 7-day rule
    │   ├── RenderError            a render failed or its file could not be fetched
    │   │   ├── RenderUnclearError whether its start arrived cannot be told yet
    │   │   └── RenderSlowError    it has not finished in the time allowed
    │   ├── ServerError            5xx, a gateway page, an answer that is not JSON
    │   │   └── AnswerTooLargeError an answer over its size cap (dropped unread)
    │   └── AgentError             the agent stream reported a failure
    ├── TransportError             the backend could not be reached or went silent
    │   ├── BackendUnreachableError connect failed, DNS, refused
    │   ├── BackendTimeoutError    no answer in time
    │   └── StreamBrokenError      the message stream closed or failed mid-way
    └── PartError                  a part on this side failed; the message names it
        ├── DiskFullError          the disk is full (ENOSPC, SQLITE_FULL), wherever we wrote
        ├── LedgerError            the work ledger cannot be used
        │   ├── LedgerDamagedError damaged: moved aside, a fresh one started
        │   └── LedgerLockedError  locked by another program past the budget
        └── SharedStateError       hosted: Redis refused, could not be reached or stalled

Context travels as keyword-only attributes, and `detail` holds the facts a class's
sentence is made of: the layers below raise data, and the server's boundary
(`server.boundary.message_for`) words it. Messages never carry a token.
`from_backend` is True when the message is the backend's own words (set by
`backend.envelope.make_error`), False when nemo-mcp wrote it for the agent:
the MCP edge wraps the former and passes the latter through.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class NemoError(Exception):
    """Base of every expected failure; `str()` is safe to show a user."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        from_backend: bool = False,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status
        self.request_id = request_id
        self.from_backend = from_backend
        #: The facts the class's sentence is made of (JSON values; kept with a failure).
        self.detail: dict[str, Any] = dict(detail or {})


class ConfigError(NemoError):
    """Settings, SKILL.md or the state folder cannot be used."""


class SkillFileError(ConfigError):
    """SKILL.md is missing, has no frontmatter, lacks `name`/`version`, or names no profile."""


class HomeBusyError(ConfigError):
    """Another process held one of the home's named leases past the wait. `detail`:
    `lease` (its name), `waited` (seconds), `where` (the home)."""


class StateDamagedError(ConfigError):
    """A saved state file was damaged: it was moved aside, and this says what was lost."""


class SessionDamagedError(StateDamagedError):
    """The saved project was damaged, so its timeline cannot be reached. `detail`:
    `path`, `problem`, `moved_to`, `session_id` (as salvaged, if it was)."""


class InputError(NemoError):
    """The caller's input is refused before anything is sent."""


class UnsupportedFileError(InputError):
    """A file type the active profile does not accept (also backend code 4001)."""


class FileTooLargeError(InputError):
    """A file over the active profile's size limit (also backend code 4002)."""


class PathNotAllowedError(InputError):
    """A path outside the allowed folders, or not a regular file."""


class LimitError(InputError):
    """An operator's per-user limit (calls a minute, credits a day) refused the call."""


class BackendError(NemoError):
    """The backend answered with an error."""


class AuthError(BackendError):
    """1001: the token is expired or invalid."""


class TokenRefusedError(AuthError):
    """1001 for NEMO_TOKEN, the user's own token (an anonymous one is renewed instead)."""


class SessionNotFoundError(BackendError):
    """1002: the session is gone, and its timeline with it."""


class SessionReplacedError(SessionNotFoundError):
    """1002, after which a new, empty session was started. `detail`: `session_id` (the new)."""


class CreditsError(BackendError):
    """2001: out of credits."""


class ClientIdError(BackendError):
    """400: the anonymous token request lacked X-Client-Id."""


class PlanError(BackendError):
    """402: the free plan cannot export; a plan issue, not credits."""


class RateLimitError(BackendError):
    """429: rate limited (one anonymous token per client per 7 days)."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: int | None = None,
        http_status: int | None = None,
        request_id: str | None = None,
        from_backend: bool = False,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            message,
            code=code,
            http_status=http_status,
            request_id=request_id,
            from_backend=from_backend,
            detail=detail,
        )
        self.retry_after = retry_after


class OneTokenError(RateLimitError):
    """429 for the anonymous token: one free token per computer every 7 days. `detail`:
    `gone` ("refused", "damaged" or "missing"), `path`, `problem`, `moved_to` (a damaged
    token's), `where` (the home), `until` (when a free token comes again, if known)."""


class RenderError(BackendError):
    """A render failed, was not found, or its file could not be downloaded."""


class RenderUnclearError(RenderError):
    """The answer to a render start was lost, and whether it started cannot be told yet.
    `detail`: `reason` (how the answer was lost)."""


class RenderSlowError(RenderError):
    """A render has not finished in the time allowed. `detail`: `render_id`, `minutes`."""


class ServerError(BackendError):
    """5xx, a gateway's HTML page, or an answer that is not the documented JSON."""


class AnswerTooLargeError(ServerError):
    """An answer larger than any the contract has: it was dropped, its connection closed."""


class AgentError(BackendError):
    """The agent stream carried an error frame or an errorCode event."""


class TransportError(NemoError):
    """The backend could not be reached, or stopped answering."""


class BackendUnreachableError(TransportError):
    """Connecting to the backend failed."""


class BackendTimeoutError(TransportError):
    """The backend did not answer in time."""


class StreamBrokenError(TransportError):
    """The message stream closed or failed before the agent finished."""


class PartError(NemoError):
    """A part on this side failed (the disk, the ledger, Redis): the message names it."""


class DiskFullError(PartError):
    """The disk is full where something had to be written; the message names the file."""


class LedgerError(PartError):
    """The work ledger cannot be used."""


class LedgerDamagedError(LedgerError):
    """The work ledger was damaged: moved aside with its -wal and -shm, a fresh one started."""


class LedgerLockedError(LedgerError):
    """Another program held the work ledger locked past the call's budget."""


class SharedStateError(PartError):
    """Hosted: the shared state store (Redis, NEMO_STATE_URL) refused, could not be
    reached, did not answer in time, or went away mid-call. What was recorded stays
    recorded: work it interrupted is resumed, never counted as failed."""
