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
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal
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
class Opened:
    """A local file checked and opened once: `handle` is the only way to its bytes;
    `path` (resolved) names it in messages, and is never opened again."""

    path: Path
    handle: BinaryIO = field(repr=False)
    size: int

    def close(self) -> None:
        self.handle.close()


@dataclass(frozen=True)
class Source:
    """One upload source: a local file (checked and opened), or an http(s) URL."""

    given: str
    opened: Opened | None = None
    url: str | None = None

    @property
    def path(self) -> Path | None:
        return self.opened.path if self.opened is not None else None


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


def _check_remote(text: str, policy: FilePolicy, kind: Kind) -> tuple[Path, Path]:
    """A remote caller's path: inside their folder as written, and again once resolved;
    (the folder resolved, the file resolved)."""
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
    root = _resolve(text, folder, missing="your upload folder does not exist")
    if not _inside(resolved, root):
        raise policy.outside(text, kind, via=" (it is a link pointing elsewhere)")
    return root, _regular(text, resolved)


def check_path(text: str, policy: FilePolicy, kind: Kind = "upload") -> Path:
    """Resolve `text` and check it is a regular file `policy` allows."""
    return _checked(text, policy, kind)[1]


def _checked(text: str, policy: FilePolicy, kind: Kind) -> tuple[Path, Path]:
    """(the allowed folder it is in, resolved; the file, resolved and checked)."""
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
    inside = [f for f in folders if _inside(resolved, f)]
    if not inside:
        via = " (it is a link pointing there)" if resolved != raw.absolute() else ""
        raise FilePolicy(tuple(folders)).outside(text, kind, via=via)
    return inside[0], _regular(text, resolved)


def _changed(text: str) -> PathNotAllowedError:
    return PathNotAllowedError(
        f"{text}: the file changed while it was being opened (it was replaced, or a link was "
        "put in its way), so nothing was read; check the file and give its path again"
    )


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a pipe put in its place never blocks the open
#: Walking by descriptor needs `dir_fd` and `O_NOFOLLOW` (POSIX); elsewhere the file is
#: opened by its resolved path and the descriptor checked the same way.
_BY_DESCRIPTOR = os.open in os.supports_dir_fd and _NOFOLLOW != 0


def _open_beneath(folder: Path, parts: Sequence[str]) -> int:
    """A descriptor for `folder`/`parts`, reached one directory at a time by descriptor,
    never following a link (a link in the way fails with ELOOP or ENOTDIR)."""
    file_flags = os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK | getattr(os, "O_BINARY", 0)
    if not _BY_DESCRIPTOR:
        return os.open(folder.joinpath(*parts), file_flags)
    current = os.open(folder, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts[:-1]:
            step = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=current)
            os.close(current)
            current = step
        return os.open(parts[-1], file_flags, dir_fd=current)
    finally:
        os.close(current)


def open_path(text: str, policy: FilePolicy, kind: Kind = "upload") -> Opened:
    """Check `text` as `check_path` does, then open it once, beneath its folder and
    without following links, and check that what was opened is what was checked.

    The caller closes the result (`Opened.close`)."""
    folder, resolved = _checked(text, policy, kind)
    try:
        checked = resolved.stat()
        parts = resolved.relative_to(folder).parts
        fd = _open_beneath(folder, parts)
    except (OSError, ValueError):
        raise _changed(text) from None
    handle = os.fdopen(fd, "rb", buffering=0)
    try:
        opened = os.fstat(fd)
        same = (opened.st_dev, opened.st_ino) == (checked.st_dev, checked.st_ino)
        if not same or not stat.S_ISREG(opened.st_mode):
            raise _changed(text)
        if _NONBLOCK:
            os.set_blocking(fd, True)
    except BaseException:
        handle.close()
        raise
    return Opened(path=resolved, handle=handle, size=opened.st_size)


def copy_opened(opened: Opened, target: Path) -> Path:
    """A private copy of an opened file at `target` (a new file in a folder of the
    caller's own): its bytes as they were when opened, read from the descriptor."""
    opened.handle.seek(0)
    with open(target, "xb") as out:
        shutil.copyfileobj(opened.handle, out, 1024 * 1024)
    return target


def classify(sources: Sequence[str], policy: FilePolicy) -> list[Source]:
    """Check every source, opening each local file once (`open_path`); the first refusal
    raises before anything is sent (closing what was opened). The caller closes the
    rest (`close_all`)."""
    checked: list[Source] = []
    try:
        for given in sources:
            checked.append(_source(given, policy))
    except BaseException:
        close_all(checked)
        raise
    return checked


def _source(given: str, policy: FilePolicy) -> Source:
    text = given.strip()
    if not text:
        raise InputError("an empty upload source was given")
    scheme = urlsplit(text).scheme.lower()
    if scheme and len(scheme) > 1:  # 'c' in 'c:\\x' is a drive, not a scheme
        if scheme == "file":
            if policy.remote:
                raise policy.outside(text, "upload")
            raise InputError(f"{text}: give the file's path, not a file:// URL")
        return Source(given=given, url=check_url(text))
    return Source(given=given, opened=open_path(text, policy))


def close_all(sources: Sequence[Source]) -> None:
    for source in sources:
        if source.opened is not None:
            source.opened.close()
