"""Which upload sources are allowed: http(s) URLs, and regular files inside the roots.

Local files must lie inside the client's MCP roots when it gives any, else
inside `NEMO_UPLOAD_DIRS`. Paths are resolved (symlinks followed, `..`
folded) before the check, so a link cannot lead outside. Every refusal
happens before any request and says why.
"""

from __future__ import annotations

import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from nemo_mcp.errors import InputError, PathNotAllowedError

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_NOT_FETCHED = ("youtube.com", "youtu.be", "spotify.com")


@dataclass(frozen=True)
class Source:
    """One upload source: a checked local path, or an http(s) URL."""

    given: str
    path: Path | None = None
    url: str | None = None


def roots_from_uris(uris: Sequence[str]) -> list[Path]:
    """Folders from MCP root URIs (`file://` only; others are ignored)."""
    folders: list[Path] = []
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme != "file":
            continue
        raw = unquote(parts.path)
        if re.match(r"^/[A-Za-z]:/", raw):  # file:///C:/x on Windows
            raw = raw[1:]
        folders.append(Path(raw))
    return folders


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def check_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InputError(f"{text!r}: only http:// and https:// links can be uploaded")
    host = (parts.hostname or "").lower()
    if any(host == h or host.endswith("." + h) for h in _NOT_FETCHED):
        raise InputError(
            f"{text}: YouTube and Spotify links are not fetched. Download the file and upload "
            "it, or ask for a similar style from the built-in library."
        )
    return text


def check_path(text: str, allowed: Sequence[Path]) -> Path:
    """Resolve `text` and check it is a regular file inside one of `allowed`."""
    if "\x00" in text:
        raise PathNotAllowedError("the path contains a NUL character")
    if _WINDOWS_DRIVE.match(text) and not Path(text).anchor:
        raise PathNotAllowedError(f"{text}: a Windows path, but this server runs on another system")
    raw = Path(text).expanduser()
    if not raw.is_absolute():
        raise PathNotAllowedError(f"{text}: give an absolute path (e.g. /home/me/clip.mp4)")
    try:
        resolved = raw.resolve(strict=True)
    except FileNotFoundError:
        raise PathNotAllowedError(f"{text}: no such file") from None
    except (OSError, RuntimeError) as err:
        raise PathNotAllowedError(f"{text}: cannot be resolved ({err})") from None
    folders = []
    for folder in allowed:
        try:
            folders.append(folder.expanduser().resolve())
        except (OSError, RuntimeError):
            continue
    if not any(_inside(resolved, f) for f in folders):
        where = ", ".join(str(f) for f in folders) or "(none)"
        via = " (it is a link pointing there)" if resolved != raw.absolute() else ""
        raise PathNotAllowedError(
            f"{text}: outside the folders uploads may come from{via}. Allowed: {where}. "
            "Move the file there, or add its folder to the client's roots or NEMO_UPLOAD_DIRS."
        )
    mode = resolved.stat().st_mode
    if stat.S_ISDIR(mode):
        raise PathNotAllowedError(f"{text}: a folder; upload the files in it one by one")
    if not stat.S_ISREG(mode):
        raise PathNotAllowedError(f"{text}: not a regular file (a device, socket or pipe)")
    return resolved


def classify(sources: Sequence[str], allowed: Sequence[Path]) -> list[Source]:
    """Check every source; the first refusal raises before anything is sent."""
    checked: list[Source] = []
    for given in sources:
        text = given.strip()
        if not text:
            raise InputError("an empty upload source was given")
        scheme = urlsplit(text).scheme.lower()
        if scheme and len(scheme) > 1:  # 'c' in 'c:\\x' is a drive, not a scheme
            if scheme == "file":
                raise InputError(f"{text}: give the file's path, not a file:// URL")
            checked.append(Source(given=given, url=check_url(text)))
        else:
            checked.append(Source(given=given, path=check_path(text, allowed)))
    return checked
