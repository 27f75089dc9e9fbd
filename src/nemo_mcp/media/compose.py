"""Composing a simple timeline into an H.264/AAC MP4 (the sandbox's renders).

A `Composition` is plain data: shots (synthesized cards, photos that zoom or pan, video
files shown as they are), captions over time ranges, and tones standing in for music. `render`
draws it frame by frame at a fixed size and rate, streams every frame straight into the
encoder (memory stays flat whatever the length), and writes the file only when it is whole.
The same composition always gives the same bytes.
"""

from __future__ import annotations

import array
import colorsys
import hashlib
import json
import math
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, is_dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from nemo_mcp.media.convert import replacing
from nemo_mcp.media.probing import picture_stream, register_heif, upright_picture

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import InputContainer, OutputContainer
    from av.video.frame import VideoFrame
    from av.video.reformatter import VideoReformatter
    from PIL import Image, ImageFont

#: Changes whenever the same composition would be drawn differently.
RENDERER_VERSION = 1
SAMPLE_RATE = 48_000
_CHUNK = 1024
_BEAT = SAMPLE_RATE // 2  # one chord strike every half second
_FADE = SAMPLE_RATE // 40
#: Chords for the music stand-in, in whole even hertz so one beat loops without a seam.
CHORDS: tuple[tuple[int, ...], ...] = (
    (220, 262, 330),
    (196, 246, 294),
    (262, 330, 392),
    (174, 220, 262),
    (246, 294, 370),
)
_ZOOM = 1.15

Motion = Literal["zoom_in", "zoom_out", "pan_left", "pan_right"]


@dataclass(frozen=True)
class Card:
    """A synthesized clip: `text` on a drifting pattern of `colour`."""

    text: str
    colour: tuple[int, int, int]
    drift: int = 1  # pattern direction and speed: +-1, +-2


@dataclass(frozen=True)
class Still:
    """A photo, slowly zoomed or panned across the shot."""

    path: Path
    motion: Motion = "zoom_in"


@dataclass(frozen=True)
class Footage:
    """A video file from its start, fitted into the frame (rotation applied)."""

    path: Path


Visual = Card | Still | Footage


@dataclass(frozen=True)
class Shot:
    """A visual over a time range; where shots overlap, the higher `layer` shows."""

    start_ms: int
    duration_ms: int
    visual: Visual
    layer: int = 0


@dataclass(frozen=True)
class Caption:
    """Text drawn over the picture during a time range."""

    start_ms: int
    duration_ms: int
    text: str


@dataclass(frozen=True)
class Tone:
    """An audible stand-in for music: chord `CHORDS[chord]` struck twice a second."""

    start_ms: int
    duration_ms: int
    volume: float  # 1.0: full level
    chord: int = 0


@dataclass(frozen=True)
class Composition:
    """Everything a render draws; times in milliseconds."""

    duration_ms: int
    shots: tuple[Shot, ...] = ()
    captions: tuple[Caption, ...] = ()
    tones: tuple[Tone, ...] = ()
    width: int = 640
    height: int = 360
    fps: int = 24

    @property
    def frames(self) -> int:
        return max(1, round(self.duration_ms * self.fps / 1000))

    def key(self) -> str:
        """A digest naming this composition's output (files by path: name them by content)."""

        def plain(value: object) -> object:
            if isinstance(value, Path):
                return str(value)
            if is_dataclass(value) and not isinstance(value, type):
                return {
                    "type": type(value).__name__,
                    **{k: plain(v) for k, v in asdict(value).items()},
                }
            if isinstance(value, (list, tuple)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        text = json.dumps([RENDERER_VERSION, plain(self)], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Rendered:
    """A finished render: the file, its size, frame count and length in seconds."""

    path: Path
    size: int
    frames: int
    duration: float


class RenderStopped(Exception):
    """`render` was asked to stop; no output was left behind."""


def palette(seed: str) -> tuple[int, int, int]:
    """A strong, pleasant colour picked by `seed` (the same seed, the same colour)."""
    digest = hashlib.sha256(seed.encode()).digest()
    hue = digest[0] / 256
    saturation = 0.55 + digest[1] / 256 * 0.3
    value = 0.55 + digest[2] / 256 * 0.25
    red, green, blue = colorsys.hsv_to_rgb(hue, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


# pictures -------------------------------------------------------------------------------
@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font (no system fonts needed)."""
    from PIL import ImageFont

    loaded = ImageFont.load_default(size=size)
    assert isinstance(loaded, ImageFont.FreeTypeFont)
    return loaded


def _wrap(text: str, face: ImageFont.FreeTypeFont, width: int, lines: int) -> list[str]:
    words, out, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if face.getlength(trial) <= width or not line:
            line = trial
        else:
            out.append(line)
            line = word
    if line:
        out.append(line)
    if len(out) > lines:
        out = out[:lines]
        out[-1] = out[-1].rstrip(".,;: ") + "..."
    return out


def text_layer(
    text: str,
    size: tuple[int, int],
    *,
    height: int,
    band: bool,
    middle: float = 0.5,
    lines: int = 3,
) -> tuple[Image.Image, tuple[int, int]]:
    """RGBA text (wrapped, centred, shadowed; on a dark band if `band`) and where it goes:
    its middle at `middle` of the frame's height."""
    from PIL import Image, ImageDraw

    width = size[0]
    face = font(height)
    wrapped = _wrap(" ".join(text.split()), face, int(width * 0.86), lines) or [""]
    spacing = height // 4
    box = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
        (0, 0), "\n".join(wrapped), font=face, spacing=spacing, align="center"
    )
    pad = height // 2
    layer = Image.new("RGBA", (width, int(box[3] - box[1]) + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if band:
        draw.rectangle((0, 0, layer.width, layer.height), fill=(0, 0, 0, 150))
    x, y = width // 2, pad - box[1]
    for dx, dy in ((2, 2), (0, 0)):
        draw.multiline_text(
            (x + dx, y + dy),
            "\n".join(wrapped),
            font=face,
            spacing=spacing,
            align="center",
            anchor="ma",
            fill=(0, 0, 0, 200) if dx else (255, 255, 255, 255),
        )
    top = round(size[1] * middle - layer.height / 2)
    return layer, (0, max(0, min(size[1] - layer.height, top)))


class _CardSource:
    def __init__(self, card: Card, size: tuple[int, int], seconds: float) -> None:
        from PIL import Image, ImageDraw

        width, height = size
        self.size, self.seconds = size, max(seconds, 1e-3)
        self.period = max(8, width // 5)
        self.speed = self.period * 0.8 * (card.drift or 1)
        strip = Image.new("RGB", (width + self.period, height), card.colour)
        draw = ImageDraw.Draw(strip)
        dark = tuple(int(c * 0.6) for c in card.colour)
        light = tuple(min(255, int(c * 1.12) + 12) for c in card.colour)
        for row in range(height):  # a vertical gradient: colour to darker
            mix = row / max(1, height - 1)
            shade = tuple(round(a + (b - a) * mix) for a, b in zip(card.colour, dark, strict=True))
            draw.line((0, row, strip.width, row), fill=shade)
        for left in range(-height, strip.width + height, self.period):
            half = self.period // 3
            draw.polygon(
                [
                    (left, height),
                    (left + half, height),
                    (left + half + height, 0),
                    (left + height, 0),
                ],
                fill=light,
            )
        self.strip = strip
        self.text, self.text_at = text_layer(
            card.text, size, height=max(12, height // 11), band=False
        )

    def frame(self, seconds: float) -> Image.Image:
        from PIL import ImageDraw

        width, height = self.size
        x = int(seconds * self.speed) % self.period
        image = self.strip.crop((x, 0, x + width, height))
        image.paste(self.text, self.text_at, self.text)
        radius = max(3, height // 40)
        cx = int(radius + (width - 2 * radius) * min(1.0, seconds / self.seconds))
        cy = height - 3 * radius
        ImageDraw.Draw(image).ellipse(
            (cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 255, 255)
        )
        return image

    def close(self) -> None:
        pass


class _StillSource:
    def __init__(self, still: Still, size: tuple[int, int], seconds: float) -> None:
        from PIL import Image, ImageOps

        width, height = size
        self.size, self.seconds, self.motion = size, max(seconds, 1e-3), still.motion
        if still.path.suffix.lower() in (".heic", ".heif"):
            register_heif()
        with Image.open(still.path) as img:
            img.draft("RGB", (width * 2, height * 2))
            picture = ImageOps.exif_transpose(img).convert("RGB")
        scale = max(width / picture.width, height / picture.height) * _ZOOM
        self.picture = picture.resize(
            (
                max(width, math.ceil(picture.width * scale)),
                max(height, math.ceil(picture.height * scale)),
            ),
            Image.Resampling.BILINEAR,
        )

    def frame(self, seconds: float) -> Image.Image:
        from PIL import Image

        width, height = self.size
        p = min(1.0, max(0.0, seconds / self.seconds))
        pw, ph = self.picture.size
        if self.motion in ("zoom_in", "zoom_out"):
            k = _ZOOM + (1 - _ZOOM) * (p if self.motion == "zoom_in" else 1 - p)
            ww, wh = width * k, height * k
            x0, y0 = (pw - ww) / 2, (ph - wh) / 2
        else:
            ww, wh = width * (_ZOOM - 0.05), height * (_ZOOM - 0.05)
            travel = pw - ww
            x0 = travel * (p if self.motion == "pan_right" else 1 - p)
            y0 = (ph - wh) / 2
        return self.picture.resize(
            (width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + ww, y0 + wh)
        )

    def close(self) -> None:
        pass


class _FootageSource:
    """Frames of a video file, one decoded at a time; the last one is held past its end."""

    def __init__(self, footage: Footage, size: tuple[int, int]) -> None:
        import av

        self.size = size
        self.container: InputContainer | None = av.open(str(footage.path))
        stream = picture_stream(self.container)
        if stream is None:
            raise ValueError("no picture stream")
        stream.codec_context.thread_type = "AUTO"
        self.base = stream.time_base or Fraction(1, 1000)
        self.origin = float((stream.start_time or 0) * self.base)
        self.frames = self.container.decode(stream)
        self.scaler = av.video.reformatter.VideoReformatter()
        self.current: VideoFrame | None = None
        self.upcoming: VideoFrame | None = self._read()
        self.image: Image.Image | None = None

    def _read(self) -> VideoFrame | None:
        import av

        if self.container is None:
            return None
        try:
            frame: VideoFrame | None = next(self.frames, None)
        except (av.error.FFmpegError, ValueError):
            frame = None
        return frame

    def _time(self, frame: VideoFrame) -> float:
        return float((frame.pts or 0) * (frame.time_base or self.base)) - self.origin

    def frame(self, seconds: float) -> Image.Image:
        from PIL import Image

        changed = False
        while self.upcoming is not None and (
            self.current is None or self._time(self.upcoming) <= seconds
        ):
            self.current, self.upcoming, changed = self.upcoming, self._read(), True
        if changed and self.current is not None:
            self.image = _fitted(self.current, self.size, self.scaler)
        if self.image is None:
            return Image.new("RGB", self.size, (0, 0, 0))
        return self.image.copy()

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _fitted(frame: VideoFrame, size: tuple[int, int], scaler: VideoReformatter) -> Image.Image:
    """`frame` upright and scaled to fit `size`, centred on black."""
    from PIL import Image

    rotation = int(getattr(frame, "rotation", 0) or 0) % 360
    shown_w, shown_h = (
        (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
    )
    scale = min(size[0] / shown_w, size[1] / shown_h)
    w, h = max(2, round(shown_w * scale)), max(2, round(shown_h * scale))
    picture = upright_picture(frame, w, h, rotation if rotation in (90, 180, 270) else 0, scaler)
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(picture, ((size[0] - picture.width) // 2, (size[1] - picture.height) // 2))
    return canvas


_Source = _CardSource | _StillSource | _FootageSource


def _open(shot: Shot, size: tuple[int, int]) -> _Source:
    seconds = shot.duration_ms / 1000
    visual = shot.visual
    if isinstance(visual, Card):
        return _CardSource(visual, size, seconds)
    if isinstance(visual, Still):
        return _StillSource(visual, size, seconds)
    return _FootageSource(visual, size)


# sound -----------------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _beat(chord: int, volume: float) -> array.array[float]:
    """One half-second strike of a chord: a quick rise, then a decay to a third."""
    notes = CHORDS[chord % len(CHORDS)]
    level = 0.22 * volume / len(notes) * 3
    rise = SAMPLE_RATE // 100
    out = array.array("f", bytes(4 * _BEAT))
    steps = [2 * math.pi * f / SAMPLE_RATE for f in notes]
    for n in range(_BEAT):
        envelope = (
            (1 / 3 + 2 / 3 * n / rise)
            if n < rise
            else (1 / 3 + 2 / 3 * math.exp(-(n - rise) / (SAMPLE_RATE * 0.12)))
        )
        out[n] = level * envelope * sum(math.sin(s * n) for s in steps) / len(steps)
    return out


@lru_cache(maxsize=32)
def _looped(chord: int, volume: float) -> bytes:
    """A beat followed by its own first chunk, so any chunk-long slice is one piece."""
    beat = _beat(chord, volume)
    return beat.tobytes() + beat[:_CHUNK].tobytes()


class _Sound:
    """The tones mixed, one chunk of samples at a time."""

    def __init__(self, tones: tuple[Tone, ...]) -> None:
        self.parts = [
            (
                round(t.start_ms * SAMPLE_RATE / 1000),
                round((t.start_ms + t.duration_ms) * SAMPLE_RATE / 1000),
                t.chord,
                round(max(0.0, min(t.volume, 2.0)), 3),
            )
            for t in tones
            if t.duration_ms > 0 and t.volume > 0
        ]

    def chunk(self, first: int, count: int) -> bytes:
        """`count` float32 samples from sample `first` on."""
        active = [p for p in self.parts if p[0] < first + count and p[1] > first]
        if not active:
            return bytes(4 * count)
        if len(active) == 1:
            start, end, chord, volume = active[0]
            if start + _FADE <= first and first + count <= end - _FADE and count <= _CHUNK:
                at = 4 * ((first - start) % _BEAT)
                return _looped(chord, volume)[at : at + 4 * count]  # the common case
        mixed = array.array("f", bytes(4 * count))
        for start, end, chord, volume in active:
            beat = _beat(chord, volume)
            for i in range(max(0, start - first), min(count, end - first)):
                n = first + i
                gain = min(1.0, (n - start) / _FADE, (end - n) / _FADE)
                mixed[i] += beat[(n - start) % _BEAT] * gain
        return mixed.tobytes()


# the render ------------------------------------------------------------------------------
def _top_shot(shots: list[Shot], ms: float) -> int | None:
    best: int | None = None
    for index, shot in enumerate(shots):
        if shot.start_ms <= ms < shot.start_ms + shot.duration_ms and (
            best is None or (shot.layer, shot.start_ms) >= (shots[best].layer, shots[best].start_ms)
        ):
            best = index
    return best


def _add_audio(out: OutputContainer) -> AudioStream:
    stream = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")  # a stand-in: one voice
    stream.bit_rate = 96_000
    stream.codec_context.options = {"aac_coder": "fast"}
    return stream


def render(
    composition: Composition,
    output: str | os.PathLike[str],
    *,
    progress: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
) -> Rendered:
    """Draw `composition` into an MP4 at `output` (H.264 + AAC, faststart).

    Blocking; run it in a worker thread. `stop` set: RenderStopped, and no file is left.
    """
    import av
    from PIL import Image

    size = (composition.width, composition.height)
    shots = sorted(composition.shots, key=lambda s: (s.start_ms, s.layer))
    captions = [
        (
            c,
            *text_layer(
                c.text,
                size,
                height=max(12, composition.height // 10),
                band=True,
                middle=0.78,
                lines=2,
            ),
        )
        for c in composition.captions
        if c.text.strip() and c.duration_ms > 0
    ]
    sound = _Sound(composition.tones)
    total = composition.frames
    samples_total = round(composition.duration_ms * SAMPLE_RATE / 1000)
    sources: dict[int, _Source] = {}
    dst = Path(output)
    try:
        with replacing(dst) as partial:
            with av.open(
                str(partial), "w", format="mp4", options={"movflags": "+faststart"}
            ) as out:
                video = out.add_stream(
                    "libx264",
                    rate=composition.fps,
                    # One thread: the same bytes every time, and a core left for everything else.
                    options={
                        "preset": "ultrafast",
                        "crf": "23",
                        "threads": "1",
                        "g": str(composition.fps * 2),
                    },
                )
                video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
                audio = _add_audio(out)
                to_yuv = av.video.reformatter.VideoReformatter()
                sample = 0
                for index in range(total):
                    if stop is not None and stop.is_set():
                        raise RenderStopped
                    ms = index * 1000 / composition.fps
                    for done in [
                        i for i in sources if shots[i].start_ms + shots[i].duration_ms <= ms
                    ]:
                        sources.pop(done).close()
                    top = _top_shot(shots, ms)
                    if top is None:
                        image = Image.new("RGB", size, (0, 0, 0))
                    else:
                        if top not in sources:
                            sources[top] = _open(shots[top], size)
                        image = sources[top].frame((ms - shots[top].start_ms) / 1000)
                    for caption, layer, at in captions:
                        if caption.start_ms <= ms < caption.start_ms + caption.duration_ms:
                            image.paste(layer, at, layer)
                    rgb = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
                    frame = to_yuv.reformat(rgb, format="yuv420p", interpolation="POINT")
                    frame.pts = index
                    out.mux(video.encode(frame))
                    until = min(samples_total, round((index + 1) * SAMPLE_RATE / composition.fps))
                    sample = _put_sound(out, audio, sound, sample, until)
                    if progress is not None and index % 12 == 0:
                        progress(index / total)
                _put_sound(out, audio, sound, sample, samples_total)
                out.mux(video.encode(None))
                out.mux(audio.encode(None))
            size_bytes = partial.stat().st_size
    finally:
        for source in sources.values():
            source.close()
    if progress is not None:
        progress(1.0)
    return Rendered(dst, size_bytes, total, total / composition.fps)


def _put_sound(
    out: OutputContainer, stream: AudioStream, sound: _Sound, sample: int, until: int
) -> int:
    import av

    while sample < until:
        count = min(_CHUNK, until - sample)
        data = sound.chunk(sample, count)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
        frame.planes[0].update(data)
        frame.sample_rate, frame.pts = SAMPLE_RATE, sample
        frame.time_base = Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
        sample += count
    return sample


__all__ = [
    "CHORDS",
    "RENDERER_VERSION",
    "Caption",
    "Card",
    "Composition",
    "Footage",
    "Motion",
    "RenderStopped",
    "Rendered",
    "Shot",
    "Still",
    "Tone",
    "Visual",
    "font",
    "palette",
    "render",
    "text_layer",
]
