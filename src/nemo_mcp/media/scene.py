"""What a render draws, as plain data: shots (synthesized cards, photos that zoom or pan,
video files shown as they are), captions over time ranges, and tones standing in for music.

`Composition.key()` names a composition's output: the same composition always gives the same
bytes, so a file can be found again by its key.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Literal

#: Changes whenever the same composition would be drawn differently.
RENDERER_VERSION = 1

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
    """An audible stand-in for music: chord number `chord` struck twice a second."""

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


__all__ = [
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
    "palette",
]
