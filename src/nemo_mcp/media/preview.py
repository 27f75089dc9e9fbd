"""Previews of a local video: a contact sheet (a grid of frames, each with its time drawn on
it) and a poster frame, both JPEG.

A sheet shows evenly spaced moments from 0:00, each tile the frame on screen at its moment:
decoded forward from the keyframe before it (or on from the previous tile, when no keyframe
lies between), at most `EXACT_PIXELS` of picture; never the same frames twice. Labels are
distinct (in tenths or hundredths of a second when the moments are that close). A poster
frame comes from a seek to a keyframe plus at most `POSTER_STEP_FRAMES` more.

A file whose pictures cannot be decoded raises `DamagedFileError`, one without pictures
`NoPictureError`; both are `MediaError`s a caller can turn into "preview skipped".
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_mcp.media.convert import replacing
from nemo_mcp.media.errors import DamagedFileError, NoPictureError
from nemo_mcp.media.probing import (
    MediaInfo,
    open_input,
    picture_stream,
    probe,
    register_heif,
    upright_picture,
)

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream
    from PIL import Image

#: Picture decoded at most past a keyframe to reach a tile's moment, in pixels: 15 frames of
#: 1080p, 138 of 640x360 (frames nothing refers to are skipped and not counted). Beyond it
#: (keyframes far apart for the picture's size) the tile shows the frame reached, labelled
#: with its own time: a sheet of a long 1080p video with keyframes 8 s apart decodes about
#: 12 x 15 frames, not the whole file.
EXACT_PIXELS = 32_000_000
#: The same for a poster frame, which need not be exact.
POSTER_STEP_FRAMES = 120
#: Frames before a moment from which every frame is decoded (the decoder's reordering delay
#: of B-frames, with room to spare).
_NEAR = 6
#: Times closer than this are the same moment (floating-point noise, not a frame apart).
_SAME = 1e-6
SHEET_LIMIT = 900_000  # bytes; the quality steps down until the sheet is under it
_QUALITIES = (82, 70, 55, 40)
_BACKGROUND = (18, 18, 18)
_GAP = 4


@dataclass(frozen=True)
class Preview:
    """A preview image: where, its size, and the video times it shows (seconds)."""

    path: Path
    width: int
    height: int
    size: int
    times: tuple[float, ...]
    frames_decoded: int


def clock(seconds: float, *, digits: int = 0) -> str:
    """'0:05', '1:02:03' (or '0:05.3' with one digit, '0:05.30' with two): a time as a video
    player shows it, cut (not rounded) to `digits` decimals."""
    scale = 10**digits
    units = int(max(0.0, seconds) * scale + _SAME)  # 0.29999999999999993 is the 0.3 it means
    whole, part = divmod(units, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return f"{text}.{part:0{digits}d}" if digits else text


def exact_frames(width: int, height: int) -> int:
    """Frames a tile may decode past a keyframe for pictures of this size (`EXACT_PIXELS`)."""
    return max(8, EXACT_PIXELS // max(1, width * height))


def label_digits(duration: float, count: int) -> int:
    """Decimals that tell a sheet's moments apart: none a second or more apart (and for a
    minute or more of video), else tenths, else hundredths."""
    step = (duration / count if count else duration) + _SAME
    if step >= 1 and duration >= 60:
        return 0
    return 1 if step >= 0.1 else 2


def sheet_labels(duration: float, count: int) -> list[str]:
    """The labels of a sheet of `count` moments of a video `duration` seconds long."""
    digits = label_digits(duration, count)
    return [clock(t, digits=digits) for t in sheet_times(duration, count)]


def tile_size(display_width: int, display_height: int, tile_width: int) -> tuple[int, int]:
    """A tile `tile_width` wide with the video's shape (between 21:9 and 9:16), even sizes."""
    ratio = display_height / display_width if display_width and display_height else 9 / 16
    ratio = min(16 / 9, max(9 / 21, ratio))
    return tile_width // 2 * 2, max(2, round(tile_width * ratio / 2) * 2)


def sheet_times(duration: float, count: int) -> list[float]:
    """Evenly spaced moments, the first at 0:00: the start of each share of the video."""
    return [duration * i / count for i in range(count)]


class _Seeker:
    """Frames at (or near) given times, from keyframe seeks, decoding as little as it can."""

    def __init__(self, container: InputContainer, stream: VideoStream) -> None:
        self.container, self.stream = container, stream
        stream.codec_context.thread_type = "SLICE"  # frame threads would delay each frame
        self.base: Fraction = stream.time_base or Fraction(1, 1000)
        self.keys = sorted(
            float(e.timestamp * self.base) for e in stream.index_entries if e.is_keyframe
        )
        self.origin = float((stream.start_time or 0) * self.base)
        rate = stream.average_rate or stream.guessed_rate
        self.step = 1 / float(rate) if rate else 1 / 30  # a frame's length, in seconds
        self.decoded = 0
        self._frames: object = None
        self._last: float | None = None
        # For `at`: the frame shown at the last moment asked, and one decoded past it.
        self._shown: VideoFrame | None = None
        self._ahead: VideoFrame | None = None

    def _keys_around(self, seconds: float) -> tuple[float | None, float | None]:
        """The keyframe times (stream clock) at or before and after `seconds`."""
        at = bisect.bisect_right(self.keys, seconds)
        before = self.keys[at - 1] if at else None
        after = self.keys[at] if at < len(self.keys) else None
        return before, after

    def _next(self) -> VideoFrame | None:
        assert self._frames is not None
        frame: VideoFrame | None = next(self._frames, None)  # type: ignore[call-overload]
        if frame is not None:
            self.decoded += 1
        return frame

    def _seek(self, seconds: float) -> None:
        """Seek to the keyframe at or before `seconds` (stream clock)."""
        self.container.seek(int(seconds / self.base), stream=self.stream, backward=True)
        self._frames = self.container.decode(self.stream)
        self._shown = self._ahead = None

    def at(self, seconds: float, limit: int) -> tuple[VideoFrame | None, bool]:
        """The frame on screen at `seconds` (the last one starting at or before it) and True;
        or, when more than `limit` frames lie between the keyframe before and `seconds`, the
        frame reached and False. Decodes on from the last frame shown when no keyframe lies
        between it and `seconds` (moments asked in order decode each frame at most once)."""
        wanted = seconds + self.origin
        before, _ = self._keys_around(wanted + _SAME)
        shown = self._shown
        going_on = (
            self._frames is not None
            and shown is not None
            and self.time(shown) <= seconds + _SAME
            and (before is None or before <= self.time(shown) + self.origin + _SAME)
        )
        if not going_on:
            # To the moment itself: FFmpeg lands on the keyframe at or before it by
            # presentation time, where the index holds decoding times (earlier, with B-frames).
            self._seek(wanted)
            shown = None
        context = self.stream.codec_context
        for _ in range(limit + 1):
            # Frames no other frame refers to are skipped while the moment is still a few
            # frames off: nothing later needs them, and they are about half of a file with
            # B-frames. Near the moment every frame is decoded, so the one shown is exact.
            far = shown is not None and self.time(shown) < seconds - _NEAR * self.step
            context.skip_frame = "NONREF" if far else "DEFAULT"
            frame, self._ahead = self._ahead or self._next(), None
            if frame is None:  # the end: the last frame stays on screen
                break
            if self.time(frame) > seconds + _SAME:
                self._ahead = frame
                if shown is None:  # the first frame starts after `seconds` (an offset start)
                    shown, self._ahead = frame, None
                break
            shown = frame
        else:
            self._shown = shown
            return shown, False
        self._shown = shown
        return shown, True

    def near(self, seconds: float, tolerance: float, steps: int) -> VideoFrame | None:
        """A frame within `tolerance` of `seconds` if a keyframe is there; else the frame
        reached by decoding at most `steps` frames past the keyframe before it."""
        wanted = seconds + self.origin
        before, after = self._keys_around(wanted)
        nearest = min(
            (k for k in (before, after) if k is not None),
            key=lambda k: abs(k - wanted),
            default=None,
        )
        if nearest is not None and abs(nearest - wanted) <= tolerance:
            self._seek(nearest)
            frame = self._next()
            if frame is not None:
                self._last = self.time(frame)
            return frame
        last = self._last if self._frames is not None else None
        # Decoding on from where the last tile stopped costs less than a seek back to the
        # same keyframe.
        if last is None or before is None or before > last + self.origin or last >= seconds:
            self._seek(wanted)
        best: VideoFrame | None = None
        for _ in range(steps + 1):
            frame = self._next()
            if frame is None:
                break
            best = frame
            self._last = self.time(frame)
            if self._last >= seconds - tolerance:
                break
        return best

    def time(self, frame: VideoFrame) -> float:
        if frame.pts is None:
            return 0.0
        return float(frame.pts * (frame.time_base or self.base)) - self.origin


def _picture(frame: VideoFrame, size: tuple[int, int], rotation: int) -> Image.Image:
    """The frame as an RGB picture of `size` (as shown), turned upright."""
    return upright_picture(frame, size[0], size[1], rotation)


def _fit(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    scale = min(box[0] / width, box[1] / height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def _label(image: Image.Image, text: str) -> None:
    from PIL import ImageDraw, ImageFont

    size = max(11, image.height // 9)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(image, "RGBA")
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    pad = max(2, size // 4)
    x = image.width - (right - left) - 3 * pad
    y = image.height - (bottom - top) - 3 * pad
    draw.rounded_rectangle(
        (x, y, x + (right - left) + 2 * pad, y + (bottom - top) + 2 * pad),
        radius=pad,
        fill=(0, 0, 0, 170),
    )
    draw.text((x + pad - left, y + pad - top), text, font=font, fill=(255, 255, 255, 255))


def _save_jpeg(image: Image.Image, output: Path, qualities: tuple[int, ...]) -> int:
    with replacing(output) as partial:
        for quality in qualities:
            image.save(partial, "JPEG", quality=quality)
            if partial.stat().st_size <= SHEET_LIMIT:
                break
        size = partial.stat().st_size
    return size


def _video(source: Path) -> MediaInfo:
    info = probe(source)
    if info.kind != "video":
        raise NoPictureError(f"{source.name} has no picture to preview.")
    return info


def _undecodable(source: Path) -> DamagedFileError:
    return DamagedFileError(
        f"{source.name}'s pictures cannot be decoded for a preview: the file looks damaged "
        "or uses an unusual codec."
    )


def contact_sheet(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    columns: int = 4,
    rows: int = 3,
    tile_width: int = 320,
) -> Preview:
    """A JPEG grid of `columns` x `rows` frames of the video `source`, each labelled with its
    time, written to `output` (under 1 MB; 4x3 tiles 320 px wide make it 1292 px wide)."""
    import av
    from PIL import Image

    if columns < 1 or rows < 1 or tile_width < 16:
        raise ValueError("a contact sheet needs at least one 16-px tile")
    src, dst = Path(source), Path(output)
    info = _video(src)
    box = tile_size(info.display_width or 16, info.display_height or 9, tile_width)
    container = open_input(src, "a video")
    tiles: list[tuple[float, Image.Image]] = []
    with container:
        stream = picture_stream(container)
        assert stream is not None
        seeker = _Seeker(container, stream)
        duration = info.duration or 0.0
        count = columns * rows
        digits = label_digits(duration, count)
        reach = exact_frames(stream.codec_context.width, stream.codec_context.height)
        for moment in sheet_times(duration, count) if duration else [0.0]:
            try:
                frame, exact = seeker.at(moment, reach)
            except (av.error.FFmpegError, ValueError):
                frame, exact = None, False
            if frame is None:
                continue
            shown = _fit(*_frame_size(frame, info.rotation), box)
            when = moment if exact else seeker.time(frame)
            tiles.append((when, _picture(frame, shown, info.rotation)))
    if not tiles:
        raise _undecodable(src)
    sheet = Image.new(
        "RGB",
        (columns * box[0] + (columns + 1) * _GAP, rows * box[1] + (rows + 1) * _GAP),
        _BACKGROUND,
    )
    for index, (seconds, picture) in enumerate(tiles):
        tile = Image.new("RGB", box, (0, 0, 0))
        tile.paste(picture, ((box[0] - picture.width) // 2, (box[1] - picture.height) // 2))
        _label(tile, clock(seconds, digits=digits))
        row, col = divmod(index, columns)
        sheet.paste(tile, (_GAP + col * (box[0] + _GAP), _GAP + row * (box[1] + _GAP)))
    size = _save_jpeg(sheet, dst, _QUALITIES)
    return Preview(
        dst, sheet.width, sheet.height, size, tuple(round(t, 3) for t, _ in tiles), seeker.decoded
    )


def _frame_size(frame: VideoFrame, rotation: int) -> tuple[int, int]:
    return (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)


def poster_frame(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    at: float | None = None,
    max_width: int = 1280,
) -> Preview:
    """One JPEG picture for a video (the frame near `at` seconds, by default a tenth in, at
    most 5 s) or a photo (itself, upright), at most `max_width` wide."""
    import av

    src, dst = Path(source), Path(output)
    info = probe(src)
    if info.kind == "audio":
        raise NoPictureError(f"{src.name} has no picture to preview.")
    if info.kind == "image":
        return _photo_poster(src, dst, info, max_width)
    duration = info.duration or 0.0
    when = min(duration * 0.1, 5.0) if at is None else max(0.0, min(at, duration))
    container = open_input(src, "a video")
    with container:
        stream = picture_stream(container)
        assert stream is not None
        seeker = _Seeker(container, stream)
        try:
            frame = seeker.near(when, 0.0, POSTER_STEP_FRAMES)
        except (av.error.FFmpegError, ValueError):
            frame = None
        if frame is None:
            raise _undecodable(src)
        width, height = _frame_size(frame, info.rotation)
        shown = _fit(width, height, (min(max_width, width), 10**6))
        picture = _picture(frame, shown, info.rotation)
        size = _save_jpeg(picture, dst, (85,))
        return Preview(
            dst,
            picture.width,
            picture.height,
            size,
            (round(seeker.time(frame), 3),),
            seeker.decoded,
        )


def _photo_poster(src: Path, dst: Path, info: MediaInfo, max_width: int) -> Preview:
    from PIL import Image, ImageOps

    if info.container == "heic":
        register_heif()
    try:
        with Image.open(src) as img:
            img.seek(0)
            upright = ImageOps.exif_transpose(img).convert("RGB")
    except (OSError, SyntaxError, ValueError, EOFError):
        raise _undecodable(src) from None
    if upright.width > max_width:
        upright = upright.resize(_fit(upright.width, upright.height, (max_width, 10**6)))
    size = _save_jpeg(upright, dst, (85,))
    return Preview(dst, upright.width, upright.height, size, (), 1)


__all__ = [
    "EXACT_PIXELS",
    "POSTER_STEP_FRAMES",
    "Preview",
    "clock",
    "contact_sheet",
    "exact_frames",
    "label_digits",
    "poster_frame",
    "sheet_labels",
    "sheet_times",
    "tile_size",
]
