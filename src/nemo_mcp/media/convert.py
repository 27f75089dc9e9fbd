"""Converting what users have into what the backend takes, cheaply and without touching
the original: HEIC/HEIF photos become JPEGs (turned upright), M4V videos are repackaged as
MP4 (streams copied, not re-encoded; rotation metadata kept).

Left as they are: MOV files, rotated or not (NemoVideo takes MOV, and its rotation metadata
travels with it; `shrink_video` writes upright pixels when a file must be re-encoded anyway),
and formats no cheap step can fix (those are refused by `probe` with what to do).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nemo_mcp.media.errors import MediaError, MislabelledFileError
from nemo_mcp.media.formats import extension
from nemo_mcp.media.probing import (
    MediaInfo,
    damaged,
    identify,
    open_input,
    picture_stream,
    probe,
    register_heif,
)

Action = Literal["heic_to_jpeg", "remux_to_mp4"]
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Conversion:
    """What was done: `output` (a new file; `source` is untouched) and a sentence saying so."""

    source: Path
    output: Path
    action: Action
    summary: str
    info: MediaInfo


_NEEDED: dict[str, Action] = {"heic": "heic_to_jpeg", "heif": "heic_to_jpeg", "m4v": "remux_to_mp4"}


def conversion_for(name: str) -> Action | None:
    """The conversion a file name needs before upload, if any (from its extension)."""
    return _NEEDED.get(extension(name))


def converted_name(name: str) -> str:
    """The name of the converted file: 'IMG_0001.HEIC' -> 'IMG_0001.jpg'."""
    base = Path(name).name
    stem = base.rsplit(".", 1)[0] if "." in base.strip(".") else base
    action = conversion_for(base)
    return f"{stem}.jpg" if action == "heic_to_jpeg" else f"{stem}.mp4"


@contextmanager
def replacing(output: Path) -> Iterator[Path]:
    """A temporary path beside `output`, moved onto it on success and removed on failure."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{output.stem}.", suffix=output.suffix, dir=output.parent)
    os.close(fd)
    partial = Path(name)
    try:
        yield partial
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)


def heic_to_jpeg(
    source: str | os.PathLike[str], output: str | os.PathLike[str], *, quality: int = JPEG_QUALITY
) -> Conversion:
    """Write the HEIC/HEIF photo `source` as a JPEG at `output`, upright, EXIF and colour
    profile kept (orientation reset, since the pixels are turned)."""
    from PIL import Image, ImageOps

    src, dst = Path(source), Path(output)
    expected, actual, _ = identify(src)
    if actual.family != "heif":
        raise MislabelledFileError(
            f"{src.name} is {actual.label}, not a HEIC photo: it needs no conversion."
        )
    register_heif()
    try:
        with Image.open(src, formats=["HEIF"]) as img:
            turned = (img.info.get("original_orientation") or 1) != 1 or (
                img.getexif().get(0x0112, 1) != 1
            )
            upright = ImageOps.exif_transpose(img)
            picture = upright if upright.mode == "RGB" else upright.convert("RGB")
            exif = upright.getexif()
            exif[0x0112] = 1
            icc = img.info.get("icc_profile")
            with replacing(dst) as partial:
                picture.save(
                    partial,
                    "JPEG",
                    quality=quality,
                    exif=exif.tobytes(),
                    icc_profile=icc or None,
                    optimize=False,
                )
    except (OSError, SyntaxError, ValueError, EOFError):
        raise damaged(src, expected.label) from None
    info = probe(dst)
    summary = (
        f"{src.name} is a HEIC photo, which NemoVideo does not take, so it was converted to "
        f"JPEG ({info.width}x{info.height}{', turned upright' if turned else ''})."
    )
    return Conversion(src, dst, "heic_to_jpeg", summary, info)


def remux_to_mp4(source: str | os.PathLike[str], output: str | os.PathLike[str]) -> Conversion:
    """Copy the video and audio streams of `source` (an M4V, or any MP4-compatible file)
    into an MP4 at `output`, without re-encoding."""
    import av

    src, dst = Path(source), Path(output)
    expected, _, _ = identify(src)
    container = open_input(src, expected.label)
    try:
        with container, replacing(dst) as partial:
            video = picture_stream(container)
            streams = [s for s in (video, *container.streams.audio[:1]) if s is not None]
            if video is None:
                raise damaged(src, expected.label)
            with av.open(str(partial), "w", format="mp4") as out:
                mapping = {s.index: out.add_stream_from_template(s) for s in streams}
                for packet in container.demux(streams):
                    if packet.dts is None:
                        continue  # demuxer flush packets
                    packet.stream = mapping[packet.stream.index]
                    out.mux(packet)
    except MediaError:
        raise
    except (av.error.FFmpegError, OSError, ValueError):
        raise MediaError(
            f"{src.name} cannot be repackaged as MP4 as it is; export it from its app as an "
            "MP4 (H.264) video."
        ) from None
    info = probe(dst)
    summary = (
        f"{src.name} ({expected.label}) was repackaged as an MP4, its streams copied "
        "unchanged, because NemoVideo takes MP4 but not that type."
    )
    return Conversion(src, dst, "remux_to_mp4", summary, info)


def convert_for_upload(
    source: str | os.PathLike[str], output_dir: str | os.PathLike[str]
) -> Conversion | None:
    """Convert `source` into `output_dir` when its type needs it (HEIC, M4V); else None.

    The output is `output_dir / converted_name(source)`, replacing a file of that name.
    """
    src = Path(source)
    action = conversion_for(src.name)
    if action is None:
        return None
    dst = Path(output_dir) / converted_name(src.name)
    if action == "heic_to_jpeg":
        return heic_to_jpeg(src, dst)
    return remux_to_mp4(src, dst)


__all__ = [
    "Action",
    "Conversion",
    "conversion_for",
    "convert_for_upload",
    "converted_name",
    "heic_to_jpeg",
    "remux_to_mp4",
]
