"""Local state: client id, token and session, validated on every read, written atomically.

Layout under `NEMO_HOME` (default `~/.config/nemovideo`, shared with the upstream skill):

    client_id                          the X-Client-Id (a UUID), as upstream keeps it
    nemo-mcp/<backend>/auth.json       token, user id, expiry           (0600)
    nemo-mcp/<backend>/session.json    task id and session id           (0600)
    nemo-mcp/<backend>/ledger.sqlite3  the work ledger (`nemo_mcp.ledger`)

`<backend>` is derived from the API URL, so a sandbox never overwrites the state of the
real service. Every write goes to a temporary file in the same folder, is flushed to
disk, then renamed over the old one: a crash leaves the old file or the new one, never
half of either. The client id is created with a link that fails if one exists, so two
processes starting together agree on one.

A file that cannot be read as what it should be (cut short, not JSON, the wrong shape,
not text, absurdly large) is **damaged**: it is moved aside as `<name>.damaged-<time>`,
never silently treated as absent, and a notice says once, in words, what was lost and
what happens next (`take_notices`). A file holding a secret is set back to 0600
whenever it is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from nemo_mcp.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

PRIVATE = 0o600
#: State files are a few hundred bytes; anything past this is not one of ours.
MAX_STATE_BYTES = 64 * 1024
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_SALVAGE = {
    **{
        key: re.compile(rf'"{key}"\s*:\s*"?([0-9A-Za-z_-]{{1,64}})')
        for key in ("session_id", "task_id")
    },
    # A token's expiry says when a new free one can be had (one per 7 days).
    "expires_at": re.compile(r'"expires_at"\s*:\s*"([0-9T:.+Z-]{10,40})"'),
}


def backend_key(api_url: str) -> str:
    """A folder name for one backend: readable host plus a short hash of the URL."""
    parts = urlsplit(api_url)
    host = re.sub(r"[^A-Za-z0-9.-]+", "_", parts.netloc or "backend")[:60]
    digest = hashlib.sha256(api_url.rstrip("/").encode()).hexdigest()[:8]
    return f"{host}-{digest}"


def atomic_write(path: Path, data: bytes, *, mode: int = PRIVATE) -> None:
    """Write `data` to `path` atomically with permissions `mode`."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows has no mode bits to set
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def create_once(path: Path, data: bytes, *, mode: int) -> bool:
    """Create `path` with `data` unless it exists; True if this call created it.

    The file appears whole or not at all, and of two processes racing exactly one wins."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def valid_client_id(value: str) -> bool:
    """The UUID form the upstream skill writes."""
    return bool(_UUID.match(value))


class AuthRecord(BaseModel):
    token: str
    user_id: str | None = None
    expires_at: str | None = None
    anonymous: bool = True


class SessionRecord(BaseModel):
    session_id: str
    task_id: str | None = None
    user_id: str | None = None


class Damaged(BaseModel):
    """What a damaged file held that could still be read, and where it went."""

    path: str
    moved_to: str | None
    problem: str
    salvaged: dict[str, str] = {}


Stamp = tuple[int, int, int]


class StateStore:
    """Reads and writes the persisted state of one backend for one home."""

    def __init__(self, home: Path, api_url: str) -> None:
        self.home = home
        self.folder = home / "nemo-mcp" / backend_key(api_url)
        self._notices: list[str] = []
        #: The last damaged token file moved aside, for messages about the missing token.
        self.damaged_auth: Damaged | None = None
        #: The last damaged session file moved aside (what it held, if readable).
        self.damaged_session: Damaged | None = None

    @property
    def ledger_path(self) -> Path:
        return self.folder / "ledger.sqlite3"

    # notices -----------------------------------------------------------------------
    def note(self, sentence: str) -> None:
        """A sentence for the user, given out once with the next result."""
        self._notices.append(sentence)

    def take_notices(self) -> list[str]:
        """One-time sentences about damaged state, each given out once."""
        notices, self._notices = self._notices, []
        return notices

    def _damaged(self, path: Path, problem: str, raw: bytes | None) -> Damaged:
        """Move a damaged file aside and describe it."""
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}")
        moved: Path | None = aside
        try:
            os.replace(path, aside)
        except OSError:
            moved = None
        salvaged: dict[str, str] = {}
        if raw:
            text = raw[:MAX_STATE_BYTES].decode("utf-8", "replace")
            for key, pattern in _SALVAGE.items():
                if found := pattern.search(text):
                    salvaged[key] = found.group(1)
        return Damaged(
            path=str(path),
            moved_to=str(moved) if moved else None,
            problem=problem,
            salvaged=salvaged,
        )

    # client id ---------------------------------------------------------------------
    @property
    def client_id_file(self) -> Path:
        return self.home / "client_id"

    def client_id(self, configured: str | None = None, *, token_exists: bool = False) -> str:
        """The configured client id, else the persisted one, else a new persisted UUID.

        A client id is made once per home: the backend allows one anonymous token per
        client per 7 days. A damaged one is replaced only when no token belongs to it.
        """
        if configured:
            return configured
        path = self.client_id_file
        for _ in range(3):
            try:
                raw = _read_small(path)
            except FileNotFoundError:
                new = str(uuid.uuid4())
                try:
                    if create_once(path, (new + "\n").encode(), mode=0o644):
                        return new
                except OSError as err:
                    raise ConfigError(f"cannot write {path}: {err.strerror}") from err
                continue  # another process made it first: use theirs
            except OSError as err:
                raise ConfigError(f"cannot read {path}: {err.strerror}") from err
            problem = "too large" if raw is None else _client_id_problem(raw)
            if problem is None and raw is not None:
                return raw.decode("ascii").strip()
            problem = problem or "unreadable"
            if token_exists:
                raise ConfigError(
                    f"The client id in {path} is damaged ({problem}), and this computer's "
                    "NemoVideo token belongs to it, so it was not replaced. Restore the file "
                    "from a backup, or set NEMO_TOKEN to your token; deleting the file starts "
                    "over with a new anonymous account (the current project stays in the old one)."
                )
            damaged = self._damaged(path, problem, None)
            self._notices.append(
                f"The client id in {path} was damaged ({problem}) and no token belonged to it, "
                f"so a new one was made (the old file was moved to {damaged.moved_to})."
            )
        raise ConfigError(f"cannot settle the client id in {path}; check the folder")

    # records -----------------------------------------------------------------------
    def _load(self, name: str, model: type[M], *, secret: bool) -> M | Damaged | None:
        path = self.folder / name
        try:
            raw = _read_small(path, secret=secret)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from err
        if raw is None:
            return self._damaged(path, f"larger than {MAX_STATE_BYTES // 1024} KB", None)
        try:
            return model.model_validate(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError:
            problem = "not text"
        except json.JSONDecodeError:
            problem = "cut short or not JSON" if raw.strip() else "empty"
        except ValidationError:
            problem = "not the expected record"
        return self._damaged(path, problem, raw)

    def _save(self, name: str, record: BaseModel) -> None:
        path = self.folder / name
        try:
            atomic_write(path, record.model_dump_json(indent=2).encode())
        except OSError as err:
            raise ConfigError(f"cannot write {path}: {err.strerror}") from err

    def stamp(self, name: str) -> Stamp | None:
        """A cheap fingerprint of a state file: another process's write changes it."""
        try:
            info = (self.folder / name).stat()
        except OSError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def load_auth(self) -> AuthRecord | None:
        found = self._load("auth.json", AuthRecord, secret=True)
        if isinstance(found, Damaged):
            self.damaged_auth = found  # said with what happens next (see `note`)
            return None
        return found

    def save_auth(self, record: AuthRecord) -> None:
        self._save("auth.json", record)

    def clear_auth(self) -> None:
        (self.folder / "auth.json").unlink(missing_ok=True)

    def has_auth_file(self) -> bool:
        return (self.folder / "auth.json").is_file()

    def load_session(self) -> SessionRecord | None:
        found = self._load("session.json", SessionRecord, secret=False)
        if isinstance(found, Damaged):
            self.damaged_session = found
            return None
        return found

    def save_session(self, record: SessionRecord) -> None:
        self._save("session.json", record)

    def clear_session(self) -> None:
        (self.folder / "session.json").unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        """What is stored, with no secret in it (for `doctor`)."""
        auth = self._peek("auth.json", AuthRecord)
        session = self._peek("session.json", SessionRecord)
        return {
            "folder": str(self.folder),
            "client_id_file": str(self.client_id_file),
            "has_token": isinstance(auth, AuthRecord),
            "token_expires_at": auth.expires_at if isinstance(auth, AuthRecord) else None,
            "session_id": session.session_id if isinstance(session, SessionRecord) else None,
            "damaged": [
                name
                for name, found in (("auth.json", auth), ("session.json", session))
                if found == "damaged"
            ],
        }

    def _peek(self, name: str, model: type[M]) -> M | str | None:
        """Read without moving anything (for reports): the record, "damaged", or None."""
        try:
            raw = _read_small(self.folder / name)
        except OSError:
            return None
        try:
            return model.model_validate(json.loads((raw or b"").decode("utf-8")))
        except (ValueError, ValidationError):
            return "damaged"


def _read_small(path: Path, *, secret: bool = False) -> bytes | None:
    """The bytes of a small state file; None if it is too large to be one.

    A secret file found readable by others is set back to 0600 first."""
    with path.open("rb") as handle:
        if secret and hasattr(os, "fchmod"):
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode != PRIVATE:
                with contextlib.suppress(OSError):
                    os.fchmod(handle.fileno(), PRIVATE)
        raw = handle.read(MAX_STATE_BYTES + 1)
    return None if len(raw) > MAX_STATE_BYTES else raw


def _client_id_problem(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return "not plain text"
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return "empty"
    if len(lines) > 1 or text.strip() != lines[0].strip():
        return "more than one line"
    if not valid_client_id(lines[0].strip()):
        return "not a UUID"
    return None
