"""The sound of a render: each tone a chord struck twice a second (a quick rise, then a
decay), mixed one chunk of samples at a time. Chords are in whole even hertz, so one
half-second beat loops without a seam and the common chunk is a slice of it."""

from __future__ import annotations

import array
import math
from functools import lru_cache

from nemo_mcp.media.scene import Tone

SAMPLE_RATE = 48_000
CHUNK = 1024
_BEAT = SAMPLE_RATE // 2
_FADE = SAMPLE_RATE // 40
CHORDS: tuple[tuple[int, ...], ...] = (
    (220, 262, 330),
    (196, 246, 294),
    (262, 330, 392),
    (174, 220, 262),
    (246, 294, 370),
)


@lru_cache(maxsize=32)
def _beat(chord: int, volume: float) -> array.array[float]:
    """One half-second strike of a chord: a quick rise, then a decay to a third."""
    notes = CHORDS[chord % len(CHORDS)]
    level = 0.22 * volume  # the loudest a chord gets, at volume 1
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
    return beat.tobytes() + beat[:CHUNK].tobytes()


class Sound:
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
            if start + _FADE <= first and first + count <= end - _FADE and count <= CHUNK:
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


__all__ = ["CHORDS", "CHUNK", "SAMPLE_RATE", "Sound"]
