"""Media facts: accepted types, upload limits, reading dimensions and durations from a
stream of bytes, and the files the sandbox serves (the sample MP4 or a synthetic stream).

`MediaProbe` is fed an upload chunk by chunk and keeps at most the first
64 KB plus an MP4 `moov` box of a few MB, so it never holds a whole file.
"""

from __future__ import annotations

import hashlib
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

SAMPLE = Path(__file__).parent / "assets" / "sample.mp4"
_HEAD_KEEP = 64 * 1024
_MOOV_KEEP = 8 * MB


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


class MediaProbe:
    """Hash, count and read what can be read of one file as it streams past."""

    def __init__(self, ext: str) -> None:
        self.ext = ext
        self.size = 0
        self._sha = hashlib.sha256()
        self._head = bytearray()
        self._mp4 = ext in ("mp4", "mov", "m4a")
        self._next_box = 0  # offset of the next top-level box header
        self._pending = bytearray()  # a box header split across chunks
        self._moov: bytearray | None = None
        self._moov_left = 0
        self._moov_done: bytes | None = None

    def feed(self, data: bytes) -> None:
        self._sha.update(data)
        if len(self._head) < _HEAD_KEEP:
            self._head += data[: _HEAD_KEEP - len(self._head)]
        if self._mp4 and self._moov_done is None:
            self._scan(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def _scan(self, data: bytes) -> None:
        """Walk top-level MP4 boxes; keep the `moov` box when it is small enough."""
        view = memoryview(data)
        pos = 0
        while pos < len(data) and self._mp4:
            if self._moov is not None:
                take = view[pos : pos + self._moov_left]
                self._moov += take
                self._moov_left -= len(take)
                pos += len(take)
                if self._moov_left == 0:
                    self._moov_done, self._moov = bytes(self._moov), None
                    return
                continue
            here = self.size + pos
            if here < self._next_box:  # inside a box that is skipped
                pos += min(len(data) - pos, self._next_box - here)
                continue
            # `_pending` holds the bytes from `_next_box` on: read a 16-byte header.
            piece = view[pos : pos + 16 - len(self._pending)]
            self._pending += piece
            pos += len(piece)
            if len(self._pending) < 16:
                return
            size, kind = struct.unpack(">I4s", self._pending[:8])
            header = 8
            if size == 1:
                size, header = struct.unpack(">Q", self._pending[8:16])[0], 16
            if size < header:  # size 0 (box runs to the end) or garbage: stop looking
                self._mp4 = False
                return
            start = self._next_box
            if kind == b"moov" and 16 <= size <= _MOOV_KEEP:
                self._moov, self._moov_left = bytearray(self._pending), size - 16
                self._pending = bytearray()
                if self._moov_left == 0:
                    self._moov_done, self._moov = bytes(self._moov), None
                    return
                continue
            self._next_box = start + size
            # A box shorter than the 16 bytes read: the rest begins the next header.
            self._pending = bytearray(self._pending[size:]) if size < 16 else bytearray()

    def facts(self) -> dict[str, Any]:
        """Whatever could be read: duration (s), width, height, fps."""
        head = bytes(self._head)
        if self._moov_done is not None:
            return _mp4_facts(self._moov_done)
        if self.ext == "png" and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack(">II", head[16:24])
            return {"width": w, "height": h}
        if self.ext == "gif" and head[:4] == b"GIF8" and len(head) >= 10:
            w, h = struct.unpack("<HH", head[6:10])
            return {"width": w, "height": h}
        if self.ext in ("jpg", "jpeg") and head[:2] == b"\xff\xd8":
            return _jpeg_facts(head)
        if self.ext == "wav" and head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            return _wav_facts(head, self.size)
        return {}


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in `data[start:end]`."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        header = 8
        if size == 1 and pos + 16 <= end:
            size, header = struct.unpack(">Q", data[pos + 8 : pos + 16])[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def _full_box_times(data: bytes, s: int) -> tuple[int, int]:
    """(timescale, duration) from an `mvhd`/`mdhd` payload, version 0 or 1."""
    if data[s] == 1:
        timescale, duration = struct.unpack(">IQ", data[s + 20 : s + 32])
    else:
        timescale, duration = struct.unpack(">II", data[s + 12 : s + 20])
    return timescale, duration


def _mp4_facts(moov: bytes) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    try:
        mvhd = _child(moov, 8, len(moov), b"mvhd")
        if mvhd:
            timescale, duration = _full_box_times(moov, mvhd[0])
            if timescale:
                facts["duration"] = round(duration / timescale, 3)
        for kind, s, e in _boxes(moov, 8):
            if kind != b"trak":
                continue
            mdia = _child(moov, s, e, b"mdia")
            hdlr = _child(moov, *mdia, b"hdlr") if mdia else None
            if not mdia or not hdlr or moov[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
                continue
            tkhd = _child(moov, s, e, b"tkhd")
            if tkhd:
                w, h = struct.unpack(">II", moov[tkhd[1] - 8 : tkhd[1]])
                facts["width"], facts["height"] = w >> 16, h >> 16
            mdhd = _child(moov, *mdia, b"mdhd")
            minf = _child(moov, *mdia, b"minf")
            stbl = _child(moov, *minf, b"stbl") if minf else None
            stts = _child(moov, *stbl, b"stts") if stbl else None
            if mdhd and stts:
                timescale, duration = _full_box_times(moov, mdhd[0])
                (count,) = struct.unpack(">I", moov[stts[0] + 4 : stts[0] + 8])
                samples = sum(
                    struct.unpack(">I", moov[stts[0] + 8 + 8 * i : stts[0] + 12 + 8 * i])[0]
                    for i in range(count)
                )
                if duration and timescale:
                    facts["fps"] = round(samples * timescale / duration, 3)
            break
    except (struct.error, IndexError, TypeError):
        pass  # a damaged box leaves what was read so far
    return facts


def _jpeg_facts(head: bytes) -> dict[str, Any]:
    pos = 2
    while pos + 9 < len(head):
        if head[pos] != 0xFF:
            return {}
        marker = head[pos + 1]
        (length,) = struct.unpack(">H", head[pos + 2 : pos + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", head[pos + 5 : pos + 9])
            return {"width": w, "height": h}
        pos += 2 + length
    return {}


def _wav_facts(head: bytes, size: int) -> dict[str, Any]:
    """Duration from the RIFF chunks (little-endian, unlike MP4 boxes)."""
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        kind = head[pos : pos + 4]
        (length,) = struct.unpack("<I", head[pos + 4 : pos + 8])
        if kind == b"fmt " and pos + 20 <= len(head):
            (byte_rate,) = struct.unpack("<I", head[pos + 16 : pos + 20])
        elif kind == b"data":
            audio = min(length, size - pos - 8)
            return {"duration": round(audio / byte_rate, 3)} if byte_rate else {}
        pos += 8 + length + (length & 1)
    return {}


# served files ------------------------------------------------------------------------
def sample_size() -> int:
    return SAMPLE.stat().st_size


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
    "SAMPLE",
    "MediaProbe",
    "extension",
    "file_type",
    "limit_label",
    "sample_size",
    "synthetic_stream",
    "upload_limit",
]
