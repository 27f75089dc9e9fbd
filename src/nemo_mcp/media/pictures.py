"""Drawing the pictures of a render: text layers, and one source per shot that gives the
picture at any time within it (a card's drifting pattern, a photo's zoom or pan, a video's
frames decoded one at a time)."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from functools import lru_cache
from typing import TYPE_CHECKING

from nemo_mcp.media.probing import picture_stream, register_heif, upright_picture
from nemo_mcp.media.scene import Card, Footage, Shot, Still

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.reformatter import VideoReformatter
    from PIL import Image, ImageFont

_ZOOM = 1.15


#: The font's file inside its package (`font-source-sans-pro`, a dependency): letters with
#: accents draw as themselves, where Pillow's bundled font has ASCII only. No system font.
FONT_PACKAGE, FONT_FILE = "font_source_sans_pro", "files/SourceSansPro-Regular.ttf"


@lru_cache(maxsize=1)
def _font_bytes() -> bytes:
    from importlib.resources import files

    return files(FONT_PACKAGE).joinpath(FONT_FILE).read_bytes()


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.FreeTypeFont:
    """The bundled font at `size` pixels (loaded once per size)."""
    from PIL import ImageFont

    return ImageFont.truetype(io.BytesIO(_font_bytes()), size=size)


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


Source = _CardSource | _StillSource | _FootageSource


def open_source(shot: Shot, size: tuple[int, int]) -> Source:
    seconds = shot.duration_ms / 1000
    visual = shot.visual
    if isinstance(visual, Card):
        return _CardSource(visual, size, seconds)
    if isinstance(visual, Still):
        return _StillSource(visual, size, seconds)
    return _FootageSource(visual, size)


__all__ = ["Source", "font", "open_source", "text_layer"]
