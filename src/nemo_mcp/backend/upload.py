"""Upload checks and multipart bodies streamed from disk.

A file is checked against the active skill (type, size, that it is a
regular file) before a byte is sent, and its body is read in chunks while it
is sent, so memory stays flat whatever the file's size.
"""

from __future__ import annotations

import mimetypes
import os
import stat
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio

from nemo_mcp.errors import FileTooLargeError, PathNotAllowedError, UnsupportedFileError
from nemo_mcp.identity import Skill

CHUNK = 1024 * 1024

#: Told (bytes sent, bytes in all) after each chunk of a body.
OnProgress = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class LocalFile:
    """A file checked for upload: resolved path, size and extension."""

    path: Path
    size: int
    suffix: str


def _label(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def check_type(path: Path, skill: Skill) -> str:
    """The extension of `path` when `skill` accepts it; `UnsupportedFileError` otherwise."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in skill.upload_types:
        raise UnsupportedFileError(
            f"{path.name}: .{suffix or '(none)'} files are not accepted. "
            f"Accepted: {', '.join(skill.upload_types)}.",
            code=4001,
        )
    return suffix


def check_file(path: Path, skill: Skill) -> LocalFile:
    """Check type, kind and size of `path` for `skill`; raise an `InputError` if refused."""
    name = path.name
    suffix = check_type(path, skill)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise PathNotAllowedError(f"{name}: no such file ({path})") from None
    except OSError as err:
        raise PathNotAllowedError(f"{name}: cannot be read ({err.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise PathNotAllowedError(f"{name}: {kind}; upload a regular file")
    if info.st_size > skill.max_upload_bytes:
        raise FileTooLargeError(
            f"{name} is {_label(info.st_size)}, over the {skill.max_upload_label} limit of "
            f"{skill.title}. Compress or trim it (e.g. a lower bitrate or a shorter cut) "
            "and upload again.",
            code=4002,
        )
    if not os.access(path, os.R_OK):
        raise PathNotAllowedError(f"{name}: permission denied")
    return LocalFile(path=path, size=info.st_size, suffix=suffix)


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")


class MultipartBody:
    """A `multipart/form-data` body of files under field `files`, streamed from disk.

    Its length is known before sending; `stream()` may be called again for a
    retry and reads the files anew.
    """

    def __init__(
        self,
        files: Sequence[LocalFile],
        *,
        on_progress: OnProgress | None = None,
    ) -> None:
        self.boundary = f"nemo-{uuid.uuid4().hex}"
        self.files = list(files)
        self.on_progress = on_progress
        self._heads = [self._head(f) for f in self.files]
        self._tail = f"--{self.boundary}--\r\n".encode()
        self.length = sum(
            len(h) + f.size + 2 for h, f in zip(self._heads, self.files, strict=True)
        ) + len(self._tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, file: LocalFile) -> bytes:
        mime = mimetypes.guess_type(file.path.name)[0] or "application/octet-stream"
        return (
            f"--{self.boundary}\r\n"
            f'Content-Disposition: form-data; name="files"; filename="{_quote(file.path.name)}"\r\n'
            f"Content-Type: {mime}\r\n\r\n"
        ).encode()

    async def stream(self) -> AsyncIterator[bytes]:
        sent = 0
        for head, file in zip(self._heads, self.files, strict=True):
            yield head
            sent += len(head)
            remaining = file.size
            async with await anyio.open_file(file.path, "rb") as handle:
                while remaining > 0:
                    chunk = await handle.read(min(CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    sent += len(chunk)
                    yield chunk
                    if self.on_progress is not None:
                        await self.on_progress(sent, self.length)
            if remaining:
                raise OSError(f"{file.path.name} shrank while it was being uploaded")
            yield b"\r\n"
            sent += 2
        yield self._tail
