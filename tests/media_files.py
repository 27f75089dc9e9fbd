"""Media files made at test time with PyAV, Pillow and pillow-heif (nothing downloaded).

Every picture differs from the last (its colour moves with time and a square marks the top
left corner), so a test can tell frames, times and orientations apart.
"""

from __future__ import annotations

import functools
import math
import tempfile
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageDraw

RATE = 48_000


def picture(size: tuple[int, int], index: int, fps: float = 24) -> Image.Image:
    """Frame `index`: a hue that turns with time, a white square top left, the number."""
    width, height = size
    shade = int(index * 255 / max(1, fps * 4)) % 256
    image = Image.new("RGB", size, (shade, 96, 255 - shade))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width // 4, height // 4), fill=(255, 255, 255))
    draw.text((width // 2, height // 2), str(index), fill=(0, 0, 0))
    return image


def noisy(size: tuple[int, int], index: int) -> Image.Image:
    """A hard-to-compress frame (for shrinking)."""
    return Image.effect_noise(size, 60 + index % 7).convert("RGB")


def video(
    path: Path,
    *,
    seconds: float = 2.0,
    size: tuple[int, int] = (320, 180),
    fps: int = 24,
    codec: str = "libx264",
    audio: str | None = "aac",
    rotation: int = 0,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    noise: bool = False,
) -> Path:
    """A video of `seconds` at `fps`; `rotation`: display matrix, counter-clockwise degrees."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=fps, options=options or {})
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=RATE) if audio else None
        assert sound is None or isinstance(sound, av.audio.stream.AudioStream)
        frames = round(seconds * fps)
        for index in range(frames):
            image = noisy(size, index) if noise else picture(size, index, fps)
            frame = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            _sound(out, sound, seconds)
    return path


def _sound(
    out: av.container.OutputContainer, stream: av.audio.stream.AudioStream, seconds: float
) -> None:
    total = round(seconds * RATE)
    done = 0
    layout = stream.layout.name
    fmt = stream.format.name
    frame_size = stream.codec_context.frame_size or 1024
    while done < total:
        count = min(frame_size, total - done)
        frame = av.AudioFrame(format="s16", layout=layout, samples=count)
        channels = len(frame.layout.channels)
        samples = bytearray()
        for n in range(done, done + count):
            value = int(8000 * math.sin(2 * math.pi * 440 * n / RATE))
            samples += value.to_bytes(2, "little", signed=True) * channels
        frame.planes[0].update(bytes(samples))
        frame.sample_rate, frame.pts, frame.time_base = RATE, done, Fraction(1, RATE)
        if fmt != "s16":
            for piece in av.AudioResampler(format=fmt, layout=layout, rate=RATE).resample(frame):
                out.mux(stream.encode(piece))
        else:
            out.mux(stream.encode(frame))
        done += count
    out.mux(stream.encode(None))


def sound(path: Path, *, seconds: float = 1.0, codec: str, container: str | None = None) -> Path:
    """An audio file: a 440 Hz tone."""
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=RATE, layout="stereo")
        assert isinstance(stream, av.audio.stream.AudioStream)
        _sound(out, stream, seconds)
    return path


def image(
    path: Path, *, size: tuple[int, int] = (64, 48), orientation: int | None = None, frames: int = 1
) -> Path:
    """A still (or an animated GIF/WebP with `frames`); `orientation`: EXIF orientation."""
    pictures = [picture(size, i) for i in range(frames)]
    kwargs: dict[str, object] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    if frames > 1:
        kwargs.update(save_all=True, append_images=pictures[1:], duration=100)
    pictures[0].save(path, **kwargs)  # type: ignore[arg-type]
    return path


def heic(path: Path, *, size: tuple[int, int] = (64, 48), orientation: int = 1) -> Path:
    """A HEIC photo: left half blue, right half red, and the EXIF orientation given."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo = Image.new("RGB", size, (230, 20, 20))
    photo.paste((20, 20, 230), (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    exif[0x0112] = orientation
    photo.save(path, format="HEIF", exif=exif.tobytes(), quality=90)
    return path


_made = tempfile.TemporaryDirectory(prefix="nemo-test-media-")  # removed at exit


@functools.cache
def sample_mp4() -> Path:
    """A small real MP4 (1 s, 320x180, H.264 + AAC), made once per test process."""
    return video(Path(_made.name) / "sample.mp4", seconds=1, options={"preset": "ultrafast"})


def truncated(source: Path, target: Path, keep: float = 0.5) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * keep)])
    return target


def frames_at(path: Path, times: list[float]) -> list[Image.Image]:
    """The pictures shown at `times` (seconds), decoding the file once from the start."""
    wanted = sorted(times)
    found: dict[float, Image.Image] = {}
    with av.open(str(path)) as container:
        previous: Image.Image | None = None
        for frame in container.decode(container.streams.video[0]):
            moment = frame.time or 0.0
            while wanted and moment > wanted[0] + 1e-6:
                shown = wanted.pop(0)
                if previous is not None:
                    found[shown] = previous
            previous = frame.to_image()  # type: ignore[no-untyped-call]
            if not wanted:
                break
        for left in wanted:
            if previous is not None:
                found[left] = previous
    return [found[t] for t in times]


def mean_colour(
    image: Image.Image, box: tuple[int, int, int, int] | None = None
) -> tuple[float, float, float]:
    region = image.crop(box) if box else image
    small = region.convert("RGB").resize((1, 1), Image.Resampling.BOX)
    pixel = small.getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return float(pixel[0]), float(pixel[1]), float(pixel[2])


def difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, 0-255."""
    from PIL import ImageChops

    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(mean_colour(diff)) / 3
