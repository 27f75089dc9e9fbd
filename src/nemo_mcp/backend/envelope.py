"""Reading every documented response envelope, and mapping every error to one class.

The backend answers in three shapes: `{"code", "message", "data"}`,
`{"success", "data" | "error"}`, or a bare object; errors may also come as a
non-2xx status with such a body, as FastAPI's `{"detail": ...}`, or as a body
that is not JSON at all. `read_envelope` is the only place that knows this, and
`make_error` the only place that turns a code into an exception.
"""

from __future__ import annotations

import json
import re
from typing import Any

from nemo_mcp.errors import (
    AuthError,
    BackendError,
    ClientIdError,
    CreditsError,
    FileTooLargeError,
    NemoError,
    PlanError,
    RateLimitError,
    ServerError,
    SessionNotFoundError,
    UnsupportedFileError,
)
from nemo_mcp.redaction import redact

_MESSAGE_LIMIT = 300


def _code(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = str(value.get("message") or value.get("msg") or value.get("detail") or value)
    elif isinstance(value, list):
        text = "; ".join(_text(v) or "" for v in value[:3])
    else:
        text = str(value)
    text = " ".join(redact(text).split())
    return text[:_MESSAGE_LIMIT] or None


#: Longer than any wait worth reporting as such (the anonymous token's is 7 days).
MAX_RETRY_AFTER_SECONDS = 30 * 24 * 3600.0


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header holding seconds (dates are ignored).

    Long values are kept, so that a wait that cannot be waited out (one free token per
    7 days) is reported at once instead of being retried."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not 0 <= seconds < float("inf"):
        return None
    return min(seconds, MAX_RETRY_AFTER_SECONDS)


#: What a refusal means when it carries no code (the documented `{"success": false,
#: "error": "..."}`, perhaps with HTTP 200): its words, matched against each meaning.
_MEANINGS: tuple[tuple[int, re.Pattern[str]], ...] = tuple(
    (code, re.compile(pattern))
    for code, pattern in (
        (1002, r"\bsession\b.*\b(not found|expired|removed|gone)\b|\bno such session\b"),
        (1001, r"\btoken\b.*\b(expired|invalid|revoked|missing)\b|\b(expired|invalid) token\b"),
        (2001, r"\b(insufficient|out of|not enough|no)\b.*\bcredits?\b"),
        (4001, r"\bunsupported file type\b|\bfile type\b.*\bnot supported\b"),
        (4002, r"\btoo large\b|\bexceeds\b.*\blimit\b"),
        (402, r"\bfree plan\b|\bexport blocked\b"),
        (429, r"\brate limit|\btoo many requests\b"),
        (400, r"\bx-client-id\b"),
    )
)


def meaning_of(words: str) -> int | None:
    """The backend code a refusal's words name, if they name one."""
    low = words.lower()
    return next((code for code, pattern in _MEANINGS if pattern.search(low)), None)


def make_error(
    *,
    code: int | None,
    http_status: int | None,
    message: str | None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> NemoError:
    """The one mapping from a backend code (else the words, else the HTTP status) to an
    exception. The words count only where a status leaves the meaning open: never over a
    gateway's 429 or 5xx."""
    key = code if code not in (None, 0) else http_status
    text = message or ""
    low = text.lower()
    ctx: dict[str, Any] = {
        "code": key,
        "http_status": http_status,
        "request_id": request_id,
        "from_backend": True,
    }
    if code in (None, 0) and (http_status is None or http_status < 500) and http_status != 429:
        key = meaning_of(text) or key
    if key == 1001 or (key == 401 and code in (None, 0, 401)):
        return AuthError(text or "token expired or invalid", **ctx)
    if key == 1002 or (key == 404 and "session" in low):
        return SessionNotFoundError(text or "session not found", **ctx)
    if key == 2001:
        return CreditsError(text or "out of credits", **ctx)
    if key == 4001:
        return UnsupportedFileError(text or "unsupported file type", **ctx)
    if key in (4002, 413):
        return FileTooLargeError(text or "file too large", **ctx)
    if key == 400 and ("client" in low or not text):
        return ClientIdError(text or "X-Client-Id missing", **ctx)
    if key == 402:
        return PlanError(text or "free plan export blocked", **ctx)
    if key == 429:
        return RateLimitError(text or "rate limited", retry_after=retry_after, **ctx)
    if key is not None and 500 <= key <= 599:
        return ServerError(text or f"backend error {key}", **ctx)
    return BackendError(text or f"backend error {key}", **ctx)


def read_envelope(
    status: int,
    body: bytes,
    *,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> Any:
    """The `data` of a successful answer; raises the mapped `BackendError` otherwise."""
    ok = 200 <= status < 300
    try:
        obj = json.loads(body) if body.strip() else None
    except (ValueError, UnicodeDecodeError):
        if ok:
            raise ServerError(
                "the backend sent an answer that is not JSON",
                http_status=status,
                request_id=request_id,
            ) from None
        label = "a gateway error page" if status in (502, 503, 504) else "an error page"
        err = make_error(
            code=None,
            http_status=status,
            message=f"HTTP {status} with {label}",
            request_id=request_id,
            retry_after=retry_after,
        )
        if type(err) is BackendError:
            # A page, not the backend's JSON: a gateway's or proxy's words (its 404 says
            # nothing about whether a render exists), so a server-side failure.
            err = ServerError(err.message, http_status=status, request_id=request_id)
        raise err from None

    def fail(code: int | None, message: Any) -> NemoError:
        return make_error(
            code=code,
            http_status=status,
            message=_text(message),
            request_id=request_id,
            retry_after=retry_after,
        )

    if isinstance(obj, dict):
        if "code" in obj and _code(obj["code"]) is not None and ("data" in obj or "message" in obj):
            code = _code(obj["code"])
            if code == 0 and ok:
                return obj.get("data")
            raise fail(code if code != 0 else None, obj.get("message") or obj.get("msg"))
        if isinstance(obj.get("success"), bool):
            if obj["success"] and ok:
                return obj.get("data")
            raise fail(_code(obj.get("code")), obj.get("error") or obj.get("message"))
        if not ok:
            message = obj.get("detail") or obj.get("error") or obj.get("message")
            raise fail(_code(obj.get("code")), message)
        return obj
    if ok:
        if obj is None:
            return None
        return obj
    raise fail(None, None)
