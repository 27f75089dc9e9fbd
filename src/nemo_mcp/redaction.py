"""Keeping secrets out of every output: tool results, errors and log lines.

Bearer tokens and claim tokens are registered here as soon as they are known;
`redact` replaces them, and anything shaped like one, in any text. The logging
filter applies it to every record, so a token cannot reach a log line even by
way of an exception message.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "[redacted]"

# Shapes of the backend's secrets, caught even before they are registered.
_BEARER = re.compile(r"\bnmv_usr_[A-Za-z0-9_\-.]{6,}|(?i:bearer)\s+[A-Za-z0-9_\-.=]{8,}")
# Claim tokens are meant for one place only: the browser link a user opens.
_CLAIM = re.compile(r"\bclm_[A-Za-z0-9_\-.]{6,}")

_lock = threading.Lock()
_known: set[str] = set()


def register(secret: str | None) -> None:
    """Remember `secret` so that `redact` removes it from any text."""
    if secret and len(secret) >= 6:
        with _lock:
            _known.add(secret)


def forget_all() -> None:
    """Forget every registered secret (the token shapes are still masked): a test starts
    with none, so what one test registered never hides a leak in another."""
    with _lock:
        _known.clear()


def redact(text: str, *, claims: bool = True) -> str:
    """`text` with every registered secret and every token-shaped string masked.

    With `claims=False`, claim tokens are left in place: a tool result may
    carry the browser link built from one, which is its purpose. Bearer
    tokens are always masked.
    """
    if not text:
        return text
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _BEARER.sub(MASK, text)
    return _CLAIM.sub(MASK, text) if claims else text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the formatted message and any exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the record
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True
