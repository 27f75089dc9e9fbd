"""Keeping secrets out of every output: tool results, errors and log lines.

Bearer tokens and claim tokens are registered here as soon as they are known;
`redact` replaces them, and anything shaped like one, in any text. A secret registered
for a holder (a served user's credentials) is forgotten when that holder is `release`d
(the user is closed), unless something else still holds it: the registry follows the
users open, not every user ever served. It is bounded too (`MAX_SECRETS`, least
recently registered forgotten first), and is arranged for lookups only when it
changes, never per line. The logging
filter applies it to every record, so a token cannot reach a log line even by
way of an exception message.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable

MASK = "[redacted]"

# Shapes of the backend's secrets, caught even before they are registered.
_BEARER = re.compile(r"\bnmv_usr_[A-Za-z0-9_\-.]{6,}|(?i:bearer)\s+[A-Za-z0-9_\-.=]{8,}")
# Claim tokens are meant for one place only: the browser link a user opens.
_CLAIM = re.compile(r"\bclm_[A-Za-z0-9_\-.]{6,}")

#: Secrets remembered at most; the least recently registered are forgotten first (a
#: served user's token is registered again whenever their client loads it).
MAX_SECRETS = 10_000
#: Up to this many secrets, `redact` tries each; beyond, it looks each position of the
#: text up in an index by the secrets' first characters (the cost of a log line no
#: longer grows with the number of users served).
SCAN_ABOVE = 64
_PREFIX = 6  # every registered secret is at least this long

_lock = threading.Lock()
_known: OrderedDict[str, None] = OrderedDict()
#: Who holds each secret registered for a holder; `_ALWAYS` for one registered without.
_holders: dict[str, set[Hashable]] = {}
#: The secrets each holder registered.
_held: dict[Hashable, set[str]] = {}
_ALWAYS: Hashable = object()
#: Built from `_known` when it changed, never per line: longest first, and by prefix.
_longest: tuple[str, ...] | None = None
_index: dict[str, tuple[str, ...]] | None = None


def register(secret: str | None, *, holder: Hashable | None = None) -> None:
    """Remember `secret` so that `redact` removes it from any text: for as long as the
    process runs, or, given a `holder`, until every holder of it is released."""
    global _longest, _index
    if secret and len(secret) >= _PREFIX:
        with _lock:
            by = _ALWAYS if holder is None else holder
            _holders.setdefault(secret, set()).add(by)
            _held.setdefault(by, set()).add(secret)
            if secret in _known:
                _known.move_to_end(secret)
                return
            _known[secret] = None
            while len(_known) > MAX_SECRETS:
                _drop(_known.popitem(last=False)[0])
            _longest = _index = None


def _drop(secret: str) -> None:
    """Forget who held `secret` (under `_lock`; it has left `_known`)."""
    for by in _holders.pop(secret, ()):
        mine = _held.get(by)
        if mine is not None:
            mine.discard(secret)
            if not mine:
                del _held[by]


def release(holder: Hashable) -> None:
    """Forget the secrets `holder` registered that nothing else holds (a served user
    closed: their token need not be looked for in every line any more)."""
    global _longest, _index
    with _lock:
        for secret in _held.pop(holder, ()):
            holders = _holders.get(secret)
            if holders is None:
                continue
            holders.discard(holder)
            if not holders:
                del _holders[secret]
                if secret in _known:
                    del _known[secret]
                    _longest = _index = None


def _rebuild() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """The secrets longest first, and indexed by their first characters (under `_lock`)."""
    global _longest, _index
    longest = tuple(sorted(_known, key=len, reverse=True))
    index: dict[str, list[str]] = {}
    for secret in longest:
        index.setdefault(secret[:_PREFIX], []).append(secret)
    _longest, _index = longest, {k: tuple(v) for k, v in index.items()}
    return _longest, _index


def _scan(text: str, index: dict[str, tuple[str, ...]]) -> str:
    """`text` with every indexed secret masked, looking each position up once."""
    out: list[str] = []
    start = n = 0
    last = len(text) - _PREFIX
    while n <= last:
        for secret in index.get(text[n : n + _PREFIX], ()):
            if text.startswith(secret, n):
                out += [text[start:n], MASK]
                n = start = n + len(secret)
                break
        else:
            n += 1
    return "".join(out) + text[start:] if out else text


def forget_all() -> None:
    """Forget every registered secret (the token shapes are still masked): a test starts
    with none, so what one test registered never hides a leak in another."""
    global _longest, _index
    with _lock:
        _known.clear()
        _holders.clear()
        _held.clear()
        _longest = _index = None


def redact(text: str, *, claims: bool = True) -> str:
    """`text` with every registered secret and every token-shaped string masked.

    With `claims=False`, claim tokens are left in place: a tool result may
    carry the browser link built from one, which is its purpose. Bearer
    tokens are always masked.
    """
    if not text:
        return text
    with _lock:
        longest, index = (_longest, _index) if _longest is not None else _rebuild()
    assert index is not None
    if len(longest) > SCAN_ABOVE:
        text = _scan(text, index)
    else:
        for secret in longest:
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
