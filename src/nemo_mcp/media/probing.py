"""Probing a local file before upload: what it is, how long, how big, which way up.

`probe(path)` reads the file's head (to check the content against the extension), the
container's headers, one decoded frame (to prove the pictures or sound decode), and a few
packets near the end (to catch a file cut short). It never decodes a whole file. Photos:
a JPEG is decoded at an eighth of its size, a very large PNG only has its chunks checked,
and a HEIC only its boxes (decoding one takes seconds; `heic_to_jpeg` does it).
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_mcp.media.errors import (
    DamagedFileError,
    MediaError,
    MislabelledFileError,
    MissingMediaError,
    UnsupportedMediaError,
)
from nemo_mcp.media.formats import (
    EXTENSIONS,
    HEAD_BYTES,
    Format,
    Kind,
    agrees,
    expected_format,
    extension,
    mismatch_sentence,
    riff_size,
    sniff,
)

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.stream import Stream
    from av.video.frame import VideoFrame
    from av.video.reformatter import VideoReformatter
    from av.video.stream import VideoStream
    from PIL import Image

#: Tail check: a file whose packets stop this much before its declared end is cut short.
_TAIL_SLACK = 1.0
_TAIL_PACKETS = 20_000
_TAIL_BYTES = 64 * 1024 * 1024
#: Packets read at most to get one decoded frame.
_FIRST_FRAME_PACKETS = 600
#: Beyond this many pixels a PNG is checked without decoding its pixels.
_DECODE_PIXELS = 64_000_000
_MAX_BOXES = 10_000
_EXIF_ORIENTATION = 0x0112
#: EXIF orientation -> (counter-clockwise degrees to show it upright, mirrored).
_ORIENTATION: dict[int, tuple[int, bool]] = {
    1: (0, False),
    2: (0, True),
    3: (180, False),
    4: (180, True),
    5: (270, True),
    6: (270, False),
    7: (90, True),
    8: (90, False),
}


@dataclass(frozen=True)
class MediaInfo:
    """What a probe found. Sizes are the stored picture's; `rotation` says how to show it.

    `rotation` is 0, 90, 180 or 270: counter-clockwise degrees that turn the stored picture
    upright (FFmpeg's display matrix for videos, EXIF orientation for photos).
    `display_width`/`display_height` are the size as shown, rotation applied.
    """

    path: Path
    kind: Kind
    container: str  # the format's usual extension: mp4, mov, m4a, webm, mkv, jpg, heic...
    size: int
    duration: float | None  # seconds; None for still images
    width: int | None
    height: int | None
    rotation: int = 0
    fps: float | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    frames: int | None = None  # images: frames of an animation (1 for a still)

    @property
    def display_width(self) -> int | None:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int | None:
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None


def _name(path: Path) -> str:
    return path.name or str(path)


def damaged(path: Path, what: str) -> DamagedFileError:
    """The refusal for a file that cannot be read as `what` ("an MP4 video")."""
    return DamagedFileError(
        f"{_name(path)} cannot be read as {what}: it looks damaged or incomplete; "
        "download or export it again."
    )


def check_file(path: Path) -> int:
    """The size of the regular file at `path`; MissingMediaError when there is none."""
    try:
        info = path.stat()
    except OSError:
        raise MissingMediaError(f"There is no readable file at {path}; check the path.") from None
    if not stat.S_ISREG(info.st_mode):
        raise MissingMediaError(f"{path} is not a regular file; give the path of a media file.")
    if not os.access(path, os.R_OK):
        raise MissingMediaError(f"{_name(path)} cannot be opened (permission denied).")
    return info.st_size


def identify(path: Path) -> tuple[Format, Format, int]:
    """(format the extension promises, format found, size); refuses what disagrees."""
    size = check_file(path)
    name = _name(path)
    expected = expected_format(name)
    if expected is None:
        kinds = ", ".join(sorted(EXTENSIONS))
        raise UnsupportedMediaError(
            f"{name}: .{extension(name) or '(no extension)'} files are not media nemo-mcp reads; "
            f"Accepted: {kinds}."
        )
    if size == 0:
        raise DamagedFileError(f"{name} is empty (0 bytes); choose the original file.")
    with path.open("rb") as file:
        head = file.read(HEAD_BYTES)
    actual = sniff(head)
    if actual is None or not agrees(expected, actual):
        raise MislabelledFileError(mismatch_sentence(name, expected, actual))
    declared = riff_size(head)
    if actual.family in ("isobmff", "heif", "avif"):
        declared = boxes_end(path, size)
    if declared is not None and declared > size:
        raise DamagedFileError(
            f"{name} is incomplete: it is {size} bytes but says it has {declared} (an unfinished "
            "download or copy?); get the whole file again."
        )
    return expected, actual, size


def boxes_end(path: Path, size: int) -> int | None:
    """Where an ISO base media file's top-level boxes say it ends (past `size`: cut short).

    Reads only the box headers; None when a header is unreadable."""
    pos = 0
    with path.open("rb") as file:
        for _ in range(_MAX_BOXES):
            if pos + 8 > size:
                return pos if pos > size else None
            file.seek(pos)
            header = file.read(16)
            length = int.from_bytes(header[:4], "big")
            if length == 1 and len(header) >= 16:
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:
                return None  # "to the end of the file"
            if length < 8:
                return None
            pos += length
    return None


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Probe a local video, image or audio file; raises a `MediaError` with one sentence."""
    where = Path(path)
    expected, actual, size = identify(where)
    if expected.kind == "image":
        return _probe_image(where, actual, size)
    return _probe_av(where, expected, actual, size)


# images ----------------------------------------------------------------------------------
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "heif": "HEIF"}


#: Most decoding threads for a HEIC's tiles (a 12 MP phone photo has 48).
MAX_HEIF_THREADS = 8


def register_heif() -> None:
    """Let Pillow open HEIC/HEIF (pillow-heif applies the container's rotation on decode),
    decoding a photo's tiles on as many threads as this process has cores: pillow-heif's
    default of 4 over-subscribes a 2-core machine and leaves a larger one idle."""
    import pillow_heif

    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may run on
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    pillow_heif.options.DECODE_THREADS = max(1, min(cores, MAX_HEIF_THREADS))
    pillow_heif.register_heif_opener()


def _probe_image(path: Path, actual: Format, size: int) -> MediaInfo:
    from PIL import Image

    if actual.family == "heif":
        register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path, formats=[_PIL_FORMATS[actual.family]]) as img:
                width, height = img.size
                orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
                frames = int(getattr(img, "n_frames", 1))
                if img.format == "JPEG":
                    img.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                    img.load()
                elif img.format == "PNG" and width * height > _DECODE_PIXELS:
                    img.verify()  # chunk by chunk, without the pixels
                elif img.format != "HEIF":
                    img.load()
                # A HEIC is not decoded here (seconds for a phone photo): `identify` checked
                # that its boxes are whole, and converting it decodes it.
    except Image.DecompressionBombError:
        raise MediaError(
            f"{_name(path)} has too many pixels to read safely; scale it down and try again."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
        raise damaged(path, actual.label) from None
    rotation, _ = _ORIENTATION.get(orientation if isinstance(orientation, int) else 1, (0, False))
    return MediaInfo(
        path=path,
        kind="image",
        container=actual.ext,
        size=size,
        duration=None,
        width=width,
        height=height,
        rotation=rotation,
        frames=frames,
    )


# video and audio -------------------------------------------------------------------------
def open_input(path: Path, what: str) -> InputContainer:
    """The file opened by PyAV; a damaged one is refused in a sentence."""
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, OSError, ValueError, UnicodeDecodeError):
        raise damaged(path, what) from None


def picture_stream(container: InputContainer) -> VideoStream | None:
    """The first real video stream (cover art attached to an audio file does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & _attached_pic():
            return stream
    return None


def _attached_pic() -> int:
    import av

    return int(av.stream.Disposition.attached_pic)


def upright_picture(
    frame: VideoFrame,
    width: int,
    height: int,
    rotation: int,
    reformatter: VideoReformatter | None = None,
) -> Image.Image:
    """`frame` as an RGB picture `width` x `height` as shown, turned by `rotation`
    (counter-clockwise degrees, as `MediaInfo.rotation`). Pass the same `reformatter` for
    every frame of a stream: it keeps its scaler instead of making one per frame."""
    import av
    from PIL import Image

    stored = (width, height) if rotation in (0, 180) else (height, width)
    scaler = reformatter or av.video.reformatter.VideoReformatter()
    rgb = scaler.reformat(
        frame, width=stored[0], height=stored[1], format="rgb24", interpolation="BILINEAR"
    )
    picture: Image.Image = rgb.to_image()  # type: ignore[no-untyped-call]
    turn = {
        90: Image.Transpose.ROTATE_90,
        180: Image.Transpose.ROTATE_180,
        270: Image.Transpose.ROTATE_270,
    }.get(rotation)
    return picture.transpose(turn) if turn is not None else picture


def _seconds(value: int | None, base: Fraction | None) -> float | None:
    if value is None or base is None:
        return None
    return float(value * base)


def duration_of(container: InputContainer) -> float | None:
    """The container's duration in seconds, else the longest stream's."""
    if container.duration is not None and container.duration > 0:
        return container.duration / 1_000_000
    found = [_seconds(s.duration, s.time_base) for s in container.streams]
    known = [d for d in found if d]
    return max(known) if known else None


def _first_frame(container: InputContainer, stream: Stream) -> object | None:
    """The first decoded frame of `stream`, reading a bounded number of packets."""
    for count, packet in enumerate(container.demux(stream)):
        for frame in packet.decode():
            return frame
        if count >= _FIRST_FRAME_PACKETS:
            return None
    return None


def _complete(container: InputContainer, size: int, duration: float | None, family: str) -> bool:
    """False when the file stops before its own headers say it ends.

    Raw MP3 and AAC streams are not checked: their length is an estimate from the bitrate,
    and a cut one still plays to its cut."""
    for stream in container.streams:
        tail = stream.index_entries[-8:] if stream.index_entries else []
        if any(entry.pos + entry.size > size for entry in tail):
            return False
    if not duration or family in ("mp3", "aac"):
        return True
    slack = min(_TAIL_SLACK, max(0.15, duration * 0.05))
    container.seek(int(max(0.0, duration - 2 * slack) * 1_000_000), backward=True)
    reached, read = 0.0, 0
    for count, packet in enumerate(container.demux()):
        if packet.pts is not None and packet.time_base is not None:
            end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
            reached = max(reached, end)
        read += packet.size
        if reached >= duration - slack or count > _TAIL_PACKETS or read > _TAIL_BYTES:
            return True
    return reached >= duration - slack


def _probe_av(path: Path, expected: Format, actual: Format, size: int) -> MediaInfo:
    import av

    name = _name(path)
    container = open_input(path, expected.label)
    with container:
        video = picture_stream(container)
        audio = container.streams.audio[0] if container.streams.audio else None
        if expected.kind == "video" and video is None:
            if audio is not None:
                raise MislabelledFileError(
                    f"{name} holds only sound, no picture: upload it as an audio file "
                    "(M4A, MP3 or WAV) instead."
                )
            raise damaged(path, expected.label)
        if expected.kind == "audio" and audio is None:
            raise MislabelledFileError(f"{name} holds no sound: choose the audio file itself.")
        kind: Kind = "video" if expected.kind == "video" else "audio"
        checked = video if kind == "video" else audio
        assert checked is not None
        duration = duration_of(container)
        try:
            frame = _first_frame(container, checked)
            whole = _complete(container, size, duration, actual.family)
        except (av.error.FFmpegError, OSError, ValueError):
            raise damaged(path, expected.label) from None
        if frame is None:
            raise DamagedFileError(
                f"{name}'s {'pictures' if kind == 'video' else 'sound'} cannot be decoded: it "
                "is damaged or uses an unusual codec; export it again as an H.264 MP4 "
                "(or MP3 for sound)."
            )
        if not whole:
            raise DamagedFileError(
                f"{name} is incomplete: the file stops before the end of its "
                f"{'video' if kind == 'video' else 'sound'} (an unfinished download or copy?); "
                "get the whole file again."
            )
        rotation = 0
        fps = None
        if kind == "video" and video is not None:
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
            rate = video.average_rate or video.guessed_rate
            fps = round(float(rate), 3) if rate else None
        return MediaInfo(
            path=path,
            kind=kind,
            container=actual.ext,
            size=size,
            duration=round(duration, 3) if duration else None,
            width=video.codec_context.width if kind == "video" and video else None,
            height=video.codec_context.height if kind == "video" and video else None,
            rotation=rotation if rotation in (0, 90, 180, 270) else 0,
            fps=fps,
            video_codec=video.codec_context.codec.canonical_name if video is not None else None,
            audio_codec=audio.codec_context.codec.canonical_name if audio is not None else None,
        )


__all__ = [
    "MediaInfo",
    "check_file",
    "damaged",
    "duration_of",
    "identify",
    "open_input",
    "picture_stream",
    "probe",
    "register_heif",
    "upright_picture",
]
