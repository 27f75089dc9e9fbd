"""Which upload sources are allowed: http(s) URLs, and regular files in the caller's folders.

A `FilePolicy` says where one caller's local files may come from. For the
person at this computer that is the client's MCP roots when it gives any,
else `NEMO_UPLOAD_DIRS`; paths are resolved (symlinks followed, `..` folded)
before the check, so a link cannot lead outside. For a caller on another
machine (`remote`) it is their own upload folder, or nothing: the path is
checked as written before the disk is touched (so a refusal says nothing
about which files exist), then again once resolved. Every refusal happens
before any request and says what to do instead.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from nemo_mcp.errors import InputError, PathNotAllowedError

_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_NOT_FETCHED = ("youtube.com", "youtu.be", "spotify.com")

#: What a local file is for: something to upload, or a script read into a request.
Kind = Literal["upload", "script"]
#: What a remote caller does instead of naming a file on the server's disk.
INSTEAD: dict[Kind, str] = {
    "upload": "give an http(s) URL of the file",
    "script": "paste the script's text into the message",
}


@dataclass(frozen=True)
class Source:
    """One upload source: a checked local path, or an http(s) URL."""

    given: str
    path: Path | None = None
    url: str | None = None


@dataclass(frozen=True)
class FilePolicy:
    """Where one caller's local files may come from.

    `remote`: the caller is on another machine, so `folders` (their own upload
    folder, or none) is all there is, and nothing outside it is even looked at.
    """

    folders: tuple[Path, ...]
    remote: bool = False

    def outside(self, text: str, kind: Kind, *, via: str = "") -> PathNotAllowedError:
        """The refusal for a file outside the allowed folders: why, and what to do instead."""
        if not self.remote:
            where = ", ".join(str(f) for f in self.folders) or "(none)"
            return PathNotAllowedError(
                f"{text}: outside the folders uploads may come from{via}. Allowed: {where}. "
                "Move the file there, or add its folder to the client's roots or NEMO_UPLOAD_DIRS."
            )
        instead = INSTEAD[kind]
        if not self.folders:
            return PathNotAllowedError(
                f"{text}: this server is reached over the network and reads no files from its "
                f"own disk, so {instead} instead."
            )
        return PathNotAllowedError(
            f"{text}: not in your upload folder on this server{via}, so {instead}, or put the "
            f"file in your upload folder {self.folders[0]}{os.sep} and give its path there."
        )


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


def _regular(text: str, resolved: Path) -> Path:
    mode = resolved.stat().st_mode
    if stat.S_ISDIR(mode):
        raise PathNotAllowedError(f"{text}: a folder; upload the files in it one by one")
    if not stat.S_ISREG(mode):
        raise PathNotAllowedError(f"{text}: not a regular file (a device, socket or pipe)")
    return resolved


def _resolve(text: str, raw: Path, *, missing: str = "no such file") -> Path:
    try:
        return raw.resolve(strict=True)
    except FileNotFoundError:
        raise PathNotAllowedError(f"{text}: {missing}") from None
    except (OSError, RuntimeError) as err:
        raise PathNotAllowedError(f"{text}: cannot be resolved ({err})") from None


def _check_remote(text: str, policy: FilePolicy, kind: Kind) -> Path:
    """A remote caller's path: inside their folder as written, and again once resolved."""
    if not policy.folders:
        raise policy.outside(text, kind)
    folder = policy.folders[0]
    raw = Path(text)  # never `~`: that would be this server's home, not the caller's
    if not raw.is_absolute():
        raise PathNotAllowedError(
            f"{text}: give an absolute path in your upload folder (e.g. {folder / 'clip.mp4'})"
        )
    if not _inside(Path(os.path.normpath(raw)), folder):
        raise policy.outside(text, kind)
    resolved = _resolve(text, raw, missing="no such file in your upload folder")
    if not _inside(resolved, folder):
        raise policy.outside(text, kind, via=" (it is a link pointing elsewhere)")
    return _regular(text, resolved)


def check_path(text: str, policy: FilePolicy, kind: Kind = "upload") -> Path:
    """Resolve `text` and check it is a regular file `policy` allows."""
    if "\x00" in text:
        raise PathNotAllowedError("the path contains a NUL character")
    if policy.remote:
        return _check_remote(text, policy, kind)
    if _WINDOWS_DRIVE.match(text) and not Path(text).anchor:
        raise PathNotAllowedError(f"{text}: a Windows path, but this server runs on another system")
    raw = Path(text).expanduser()
    if not raw.is_absolute():
        raise PathNotAllowedError(f"{text}: give an absolute path (e.g. /home/me/clip.mp4)")
    resolved = _resolve(text, raw)
    folders = []
    for folder in policy.folders:
        try:
            folders.append(folder.expanduser().resolve())
        except (OSError, RuntimeError):
            continue
    if not any(_inside(resolved, f) for f in folders):
        via = " (it is a link pointing there)" if resolved != raw.absolute() else ""
        raise FilePolicy(tuple(folders)).outside(text, kind, via=via)
    return _regular(text, resolved)


def classify(sources: Sequence[str], policy: FilePolicy) -> list[Source]:
    """Check every source; the first refusal raises before anything is sent."""
    checked: list[Source] = []
    for given in sources:
        text = given.strip()
        if not text:
            raise InputError("an empty upload source was given")
        scheme = urlsplit(text).scheme.lower()
        if scheme and len(scheme) > 1:  # 'c' in 'c:\\x' is a drive, not a scheme
            if scheme == "file":
                if policy.remote:
                    raise policy.outside(text, "upload")
                raise InputError(f"{text}: give the file's path, not a file:// URL")
            checked.append(Source(given=given, url=check_url(text)))
        else:
            checked.append(Source(given=given, path=check_path(text, policy)))
    return checked
