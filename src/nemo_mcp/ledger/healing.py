"""The SQLite ledger's file healed like every other state file, and its failures named.

- Damaged (not a database, malformed): the file is moved aside as
  `<name>.damaged-<time>`, with its `-wal` and `-shm` beside it under the same name (so
  the three still open together for a look), and a fresh ledger is started. The call
  that found it answers one sentence naming both files, and sends nothing: work that
  was in flight may already be in the timeline, so the user looks there before asking
  again.
- Replaced under a process (another process healed it): `identity` (device, inode) of
  the path no longer matches what the process opened, so it reopens.
- Locked by another program past the budget: one sentence naming the file.
- A full disk (SQLITE_FULL, ENOSPC): named as a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import time
from pathlib import Path

from nemo_mcp.errors import DiskFullError, LedgerDamagedError, LedgerLockedError, NemoError

_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 5, 6, 11, 13, 26
#: The ledger's own files beside it, moved aside with it.
SIDE_FILES = ("-wal", "-shm", "-journal")
#: Errors that say the disk is full.
FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def _code(err: sqlite3.Error) -> int | None:
    code = getattr(err, "sqlite_errorcode", None)  # Python 3.11+
    return None if code is None else code & 0xFF


def busy(err: sqlite3.Error) -> bool:
    """Whether another connection holding the file caused `err` (worth waiting out)."""
    code = _code(err)
    if code is not None:
        return code in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return str(err) in ("database is locked", "database table is locked")  # Python 3.10


def damaged(err: sqlite3.Error) -> bool:
    code = _code(err)
    if code is not None:
        return code in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    return str(err) in ("file is not a database", "database disk image is malformed")


def full(err: BaseException) -> bool:
    if isinstance(err, OSError):
        return err.errno in FULL_ERRNOS
    if isinstance(err, sqlite3.Error):
        code = _code(err)
        return code == _SQLITE_FULL if code is not None else "disk is full" in str(err)
    return False


def identity(path: Path) -> tuple[int, int] | None:
    """(device, inode) of the file at `path` now; None when there is none."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def move_aside(path: Path) -> Path:
    """Move the ledger at `path` and its side files aside; returns where the ledger went."""
    aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
    for n in range(1, 100):  # never over an earlier one of the same second
        if not aside.exists():
            break
        aside = aside.with_name(f"{aside.name.split('~')[0]}~{n}")
    os.replace(path, aside)
    for side in SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            os.replace(f"{path}{side}", f"{aside}{side}")
    return aside


def damaged_error(path: Path, aside: Path | None) -> LedgerDamagedError:
    where = f"moved aside to {aside}" if aside else "moved aside by another nemo-mcp process"
    return LedgerDamagedError(
        f"The work ledger {path} was damaged and was {where}, with its -wal and -shm files; "
        "a fresh ledger was started and nothing was sent, but work that was in flight may "
        "already be in your project: call `timeline` and look there before asking again."
    )


def locked_error(path: Path, seconds: float) -> LedgerLockedError:
    return LedgerLockedError(
        f"The work ledger {path} is locked by another program (still after {seconds:g} s): "
        "close whatever has it open (a database browser, a backup or sync tool), then try "
        "again; nothing was sent."
    )


def full_error(path: Path | str) -> DiskFullError:
    return DiskFullError(
        f"The disk is full: {path} could not be written. Free some space on that disk, then "
        "try again."
    )


def named(err: Exception, path: Path, seconds: float) -> NemoError | None:
    """The sentence for a ledger failure (`err` raised using the file at `path`), or None
    when it is none of: locked, full (damage is healed by the caller, see `damaged`)."""
    if full(err):
        return full_error(path)
    if isinstance(err, sqlite3.Error) and busy(err):
        return locked_error(path, seconds)
    return None


__all__ = [
    "busy",
    "damaged",
    "damaged_error",
    "full",
    "full_error",
    "identity",
    "locked_error",
    "move_aside",
    "named",
]
