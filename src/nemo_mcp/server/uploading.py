"""Local files made ready for `upload`, before any request leaves.

Every file is checked (type, size, a regular readable file) and probed by the media kit
(headers, one frame, the tail): content that is not what its extension says, or a file
cut short, is refused with one sentence. Then the cheap fixes are made into a scratch
folder, the caller's files never touched: HEIC/HEIF photos become JPEGs, M4V videos are
repackaged as MP4. A video over the upload limit is re-encoded under it only when the
caller allowed it (`shrink`), in a worker thread, with progress; otherwise it is refused
with the way to allow it.

The media kit (PyAV, Pillow) is imported here only when a local file is uploaded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import anyio
import anyio.from_thread
import anyio.to_thread

from nemo_mcp.backend.upload import check_file, check_type
from nemo_mcp.errors import FileTooLargeError
from nemo_mcp.identity import Skill
from nemo_mcp.server.work import PROGRESS_EVERY

log = logging.getLogger(__name__)

MB = 1_000_000
#: Extensions taken only because the kit converts them first.
CONVERTED_TYPES: tuple[str, ...] = ("heic", "heif", "m4v")
VIDEO_TYPES: tuple[str, ...] = ("mp4", "mov", "avi", "webm", "mkv", "m4v")

#: Told (percent done, 100, a phase in words) while a video is shrunk.
Report = Callable[[float, "float | None", str], Awaitable[None]]
Done = Literal["converted", "shrunk"]


@dataclass(frozen=True)
class Prepared:
    """One local file ready to send: `path` is what is sent (the original, or a copy made in
    the scratch folder); `done` and `note` say what was made, if anything."""

    source: Path
    path: Path
    done: Done | None = None
    note: str | None = None


def _label(size: int) -> str:
    return f"{size / MB:.1f} MB"


def _suffix(path: Path) -> str:
    return path.suffix.lower().lstrip(".")


def is_video(path: Path) -> bool:
    return _suffix(path) in VIDEO_TYPES


def too_large(path: Path, size: int, skill: Skill) -> FileTooLargeError:
    """The refusal of a file over the limit; for a video, with the way to shrink it."""
    over = (
        f"{path.name} is {_label(size)}, over the {skill.max_upload_label} limit of {skill.title}."
    )
    if is_video(path):
        return FileTooLargeError(
            f"{over} Call `upload` again with `shrink: true` to send a re-encoded copy that "
            "fits (the original stays as it is), or trim it and upload again.",
            code=4002,
        )
    return FileTooLargeError(
        f"{over} Compress it (e.g. a smaller picture) and upload again.", code=4002
    )


def _accepting(skill: Skill) -> Skill:
    """`skill` taking the convertible types too, whatever their size (checked apart)."""
    return replace(
        skill,
        upload_types=(*skill.upload_types, *CONVERTED_TYPES),
        max_upload_bytes=2**63,
    )


def check_local(path: Path, skill: Skill, *, shrink: bool) -> int:
    """The checks made before any probe: type (a convertible type included), a regular
    readable file, and the size (a video may be over it when `shrink` allows). Its size."""
    size = check_file(path, _accepting(skill)).size
    check_size(path, size, skill, shrink=shrink)
    return size


def check_size(path: Path, size: int, skill: Skill, *, shrink: bool) -> None:
    """Type and size alone (of a file already opened, before it is copied)."""
    check_type(path, _accepting(skill))
    converted_photo = _suffix(path) in ("heic", "heif")  # checked once it is a JPEG
    if size > skill.max_upload_bytes and not converted_photo and not (shrink and is_video(path)):
        raise too_large(path, size, skill)


def probe_all(paths: Sequence[Path], skill: Skill, *, shrink: bool) -> None:
    """Check and probe every file (blocking: run in a worker thread); the first refusal
    is raised, before any file is converted or sent."""
    from nemo_mcp import media

    for path in paths:
        check_local(path, skill, shrink=shrink)
    for path in paths:
        media.probe(path)


def _folder(scratch: Path, index: int, step: str) -> Path:
    """A folder of its own for each file and step, so made names never collide."""
    folder = scratch / f"{index:02d}-{step}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _convert(path: Path, folder: Path) -> Prepared:
    from nemo_mcp import media

    made = media.convert_for_upload(path, folder)
    if made is None:
        return Prepared(path, path)
    log.info("converted %s for upload (%s)", path.name, made.action)
    return Prepared(path, made.output, "converted", made.summary)


def _shrink(
    item: Prepared, folder: Path, limit: int, progress: Callable[[float], None]
) -> Prepared:
    from nemo_mcp import media

    output = folder / f"{item.path.stem}.mp4"
    made = media.shrink_video(item.path, output, limit_bytes=limit, progress=progress)
    log.info("shrank %s for upload to %d bytes", item.source.name, made.size)
    note = made.summary if item.note is None else f"{item.note} {made.summary}"
    return Prepared(item.source, made.output, "shrunk", note)


async def prepare(
    paths: Sequence[Path],
    skill: Skill,
    scratch: Path,
    *,
    shrink: bool,
    report: Report | None = None,
) -> list[Prepared]:
    """Make `paths` ready to send under `skill`: probed, converted and (when `shrink`
    allows) shrunk into `scratch`. Raises the first refusal, before anything is sent."""
    await anyio.to_thread.run_sync(lambda: probe_all(paths, skill, shrink=shrink))
    ready: list[Prepared] = []
    for index, path in enumerate(paths):
        item = await anyio.to_thread.run_sync(_convert, path, _folder(scratch, index, "converted"))
        size = (await anyio.Path(item.path).stat()).st_size
        if size > skill.max_upload_bytes:
            if not (shrink and is_video(item.path)):
                raise too_large(item.source, size, skill)
            folder = _folder(scratch, index, "shrunk")
            item = await _shrunk(item, folder, skill.max_upload_bytes, report)
        ready.append(item)
    return ready


class ShrinkStopped(Exception):
    """The upload was cancelled: the shrink stops at its next frame, leaving no output."""


async def _shrunk(item: Prepared, folder: Path, limit: int, report: Report | None) -> Prepared:
    """Shrink one video in a worker thread, telling `report` how far it got (at most every
    second or so, never once per frame). A cancelled call stops the encoder too."""
    name = item.source.name
    last = [-PROGRESS_EVERY]
    stop = threading.Event()

    def progress(fraction: float) -> None:
        if stop.is_set():
            raise ShrinkStopped
        now = time.monotonic()
        if report is None or (now - last[0] < PROGRESS_EVERY / 2 and fraction < 1.0):
            return
        last[0] = now
        percent = round(fraction * 100, 1)

        async def tell() -> None:
            await report(percent, 100.0, f"shrinking {name}: {percent:g}%")

        anyio.from_thread.run(tell)

    if report is not None:
        await report(0.0, 100.0, f"shrinking {name} to fit the upload limit")
    try:
        return await anyio.to_thread.run_sync(
            _shrink, item, folder, limit, progress, abandon_on_cancel=True
        )
    finally:
        stop.set()


__all__ = [
    "CONVERTED_TYPES",
    "Prepared",
    "check_local",
    "check_size",
    "is_video",
    "prepare",
    "probe_all",
    "too_large",
]
