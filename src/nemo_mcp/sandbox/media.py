"""Media facts: accepted types, upload limits, what the media kit reads of a received file,
and the synthetic stream served for renders of a configured size.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VIDEO_TYPES = ("mp4", "mov", "avi", "webm", "mkv")
IMAGE_TYPES = ("jpg", "jpeg", "png", "gif", "webp")
AUDIO_TYPES = ("mp3", "wav", "m4a", "aac")
ACCEPTED = VIDEO_TYPES + IMAGE_TYPES + AUDIO_TYPES
ACCEPTED_LABEL = "mp4, mov, avi, webm, mkv, jpg, png, gif, webp, mp3, wav, m4a, aac"

MB = 1000 * 1000
#: Skills whose users bring big sources (text prompts, scripts) get the larger limit.
LARGE_UPLOAD_SKILLS = frozenset({"ai-generator-generator", "free-video-generator-from-script"})


def extension(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def file_type(ext: str) -> str | None:
    """ "video", "image" or "audio" for an accepted extension, else None."""
    if ext in VIDEO_TYPES:
        return "video"
    if ext in IMAGE_TYPES:
        return "image"
    if ext in AUDIO_TYPES:
        return "audio"
    return None


def upload_limit(skill_source: str | None) -> int:
    """Bytes allowed per file for the skill named in `X-Skill-Source`."""
    return (500 if skill_source in LARGE_UPLOAD_SKILLS else 200) * MB


def limit_label(limit: int) -> str:
    return f"{limit / MB:g} MB"


def read_facts(path: Path) -> dict[str, Any] | None:
    """The upload answer's facts of a received file (duration in seconds, width and height as
    shown, fps), by the media kit's probe; None when the kit cannot read it. Blocking."""
    from nemo_mcp.media.errors import MediaError
    from nemo_mcp.media.probing import probe

    try:
        info = probe(path)
    except MediaError:
        return None
    facts: dict[str, Any] = {}
    if info.kind != "image" and info.duration is not None:
        facts["duration"] = round(info.duration, 3)
    if info.kind != "audio" and info.display_width and info.display_height:
        facts["width"], facts["height"] = info.display_width, info.display_height
    if info.fps:
        facts["fps"] = round(info.fps, 3)
    return facts


# served files ------------------------------------------------------------------------
def synthetic_stream(total: int, chunk: int = 1024 * 1024) -> Iterator[bytes]:
    """`total` bytes shaped like an MP4 (`ftyp`, then one `mdat`), made as they are sent."""
    ftyp = struct.pack(">I4s4sI", 24, b"ftyp", b"isom", 0x200) + b"isomavc1"
    head = ftyp + struct.pack(">I4s", max(0, total - len(ftyp)), b"mdat")
    yield head[:total]
    left = total - min(total, len(head))
    block = bytes(chunk)
    while left > 0:
        piece = block if left >= chunk else block[:left]
        left -= len(piece)
        yield piece


__all__ = [
    "ACCEPTED",
    "ACCEPTED_LABEL",
    "MB",
    "extension",
    "file_type",
    "limit_label",
    "read_facts",
    "synthetic_stream",
    "upload_limit",
]
