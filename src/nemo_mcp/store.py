"""Local state: client id, token, session and render records, written atomically.

Layout under `NEMO_HOME` (default `~/.config/nemovideo`, shared with the
upstream skill):

    client_id                      the X-Client-Id, plain text, as upstream keeps it
    nemo-mcp/<backend>/auth.json   token, user id, expiry           (0600)
    nemo-mcp/<backend>/session.json  task id and session id          (0600)
    nemo-mcp/<backend>/renders.json  render jobs, newest last         (0600)
    nemo-mcp/<backend>/generation.json  the message in flight, if any (0600)

`<backend>` is derived from the API URL, so a sandbox never overwrites the
state of the real service. Every write goes to a temporary file in the same
folder, is flushed to disk, then renamed over the old one: a crash leaves the
old file or the new one, never half of either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import uuid
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from nemo_mcp.errors import ConfigError

M = TypeVar("M", bound=BaseModel)

PRIVATE = 0o600


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


class AuthRecord(BaseModel):
    token: str
    user_id: str | None = None
    expires_at: str | None = None
    anonymous: bool = True


class SessionRecord(BaseModel):
    session_id: str
    task_id: str | None = None
    user_id: str | None = None


class RenderRecord(BaseModel):
    id: str
    session_id: str
    status: str = "pending"
    progress: float = 0.0
    format: str = "mp4"
    quality: str = "high"
    started_at: float
    finished_at: float | None = None
    url: str | None = None
    file: str | None = None
    size: int | None = None
    error: str | None = None
    draft_hash: str | None = None
    title: str | None = None


class GenerationRecord(BaseModel):
    """A message sent (or about to be) whose outcome was not yet reported."""

    message: str
    session_id: str
    started_at: float
    before: Any = None


class RenderHistory(BaseModel):
    renders: list[RenderRecord] = []


class StateStore:
    """Reads and writes the persisted state of one backend."""

    def __init__(self, home: Path, api_url: str) -> None:
        self.home = home
        self.folder = home / "nemo-mcp" / backend_key(api_url)

    # client id -----------------------------------------------------------
    @property
    def client_id_file(self) -> Path:
        return self.home / "client_id"

    def client_id(self, configured: str | None = None) -> str:
        """The configured client id, else the persisted one, else a new persisted UUID.

        A client id is made once: the backend allows one anonymous token per
        client per 7 days, and a fresh id to dodge that would be abuse.
        """
        if configured:
            return configured
        try:
            existing = self.client_id_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            existing = ""
        except OSError as err:
            raise ConfigError(f"cannot read {self.client_id_file}: {err.strerror}") from err
        if existing:
            return existing
        new = str(uuid.uuid4())
        try:
            atomic_write(self.client_id_file, (new + "\n").encode(), mode=0o644)
        except OSError as err:
            raise ConfigError(f"cannot write {self.client_id_file}: {err.strerror}") from err
        return new

    # records ---------------------------------------------------------------
    def _load(self, name: str, model: type[M]) -> M | None:
        path = self.folder / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise ConfigError(f"cannot read {path}: {err.strerror}") from err
        try:
            return model.model_validate(json.loads(raw))
        except (ValueError, ValidationError):
            # A damaged file is treated as absent; atomic writes make this rare.
            return None

    def _save(self, name: str, record: BaseModel) -> None:
        path = self.folder / name
        try:
            atomic_write(path, record.model_dump_json(indent=2).encode())
        except OSError as err:
            raise ConfigError(f"cannot write {path}: {err.strerror}") from err

    def _delete(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)

    def load_auth(self) -> AuthRecord | None:
        return self._load("auth.json", AuthRecord)

    def save_auth(self, record: AuthRecord) -> None:
        self._save("auth.json", record)

    def clear_auth(self) -> None:
        self._delete("auth.json")

    def load_session(self) -> SessionRecord | None:
        return self._load("session.json", SessionRecord)

    def save_session(self, record: SessionRecord) -> None:
        self._save("session.json", record)

    def clear_session(self) -> None:
        self._delete("session.json")

    def load_generation(self) -> GenerationRecord | None:
        return self._load("generation.json", GenerationRecord)

    def save_generation(self, record: GenerationRecord) -> None:
        self._save("generation.json", record)

    def clear_generation(self) -> None:
        self._delete("generation.json")

    def load_renders(self) -> RenderHistory:
        return self._load("renders.json", RenderHistory) or RenderHistory()

    def save_render(self, record: RenderRecord, *, keep: int = 200) -> None:
        """Insert or replace the render with `record.id`; keep the newest `keep`."""
        history = self.load_renders()
        others = [r for r in history.renders if r.id != record.id]
        history.renders = [*others, record][-keep:]
        self._save("renders.json", history)

    def describe(self) -> dict[str, Any]:
        """What is stored, with no secret in it (for `doctor`)."""
        auth = self.load_auth()
        session = self.load_session()
        return {
            "folder": str(self.folder),
            "client_id_file": str(self.client_id_file),
            "has_token": auth is not None,
            "token_expires_at": auth.expires_at if auth else None,
            "session_id": session.session_id if session else None,
            "renders": len(self.load_renders().renders),
        }
