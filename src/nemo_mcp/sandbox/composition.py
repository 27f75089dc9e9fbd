"""What a render of a draft shows: the draft (read by `parse_draft`'s tolerant rules) turned
into a `nemo_mcp.media.compose.Composition`. Pure: files are found by a resolver the caller
gives.

- Video tracks (`tt` 0) become shots, later tracks on top. A segment whose `m.url` names an
  upload that was kept shows it: a photo slowly zooming or panning, a video as it is. An
  upload that was not kept (a link, or over the caps) becomes a card with its file name. Any
  other segment is a generated clip: a card showing its `m.prompt` (else its label), in a
  colour of its own; without words when a caption over its time shows those very words (a
  script's scene and its line), so each line is on screen once.
- Text tracks (`tt` 7) become captions over their time ranges.
- Audio tracks (`tt` 1) become a chord, chosen by the music's name, at the segment's volume
  (else the track's, else full).
- A segment of unknown length runs to the end of the draft. The length is the draft's.

Library music (the BGM the agent adds by name) is served as a file too, so a hand-off to an
editor can carry it: `music_name` names it `<slug>-<seconds>s.wav` (long enough for the
draft it was added to), and `music_wav` makes it, the same chord struck twice a second.
"""

from __future__ import annotations

import array
import hashlib
import io
import math
import re
import sys
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nemo_mcp.media.compose import (
    CHORDS,
    Caption,
    Card,
    Composition,
    Footage,
    Motion,
    Shot,
    Still,
    Tone,
    Visual,
    palette,
)
from nemo_mcp.timeline.model import Segment, Track, parse_draft, words

WIDTH, HEIGHT, FPS = 640, 360, 24
_MOTIONS: tuple[Motion, ...] = ("zoom_in", "pan_right", "zoom_out", "pan_left")


@dataclass(frozen=True)
class Upload:
    """An uploaded file a segment points at; `path` is None when its bytes were not kept."""

    name: str
    kind: str  # "video", "image" or "audio"
    path: Path | None


Resolver = Callable[[Segment], Upload | None]


def meta(segment: Segment) -> dict[str, Any]:
    found = segment.raw.get("m")
    return found if isinstance(found, dict) else {}


def segment_url(segment: Segment) -> str | None:
    """The segment's media link: `m.url`, else `url`."""
    for value in (meta(segment).get("url"), segment.raw.get("url")):
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def prompt_of(segment: Segment) -> str | None:
    """What a generated clip was made from: `m.prompt`, else `prompt`."""
    for value in (meta(segment).get("prompt"), segment.raw.get("prompt")):
        text = words(value)
        if text:
            return text
    return None


def _chord(name: str | None) -> int:
    digest = hashlib.sha256((name or "").encode()).digest()
    return digest[0] % len(CHORDS)


#: A library music file's rate (its chords are below 400 Hz) and its longest length.
MUSIC_RATE = 8_000
MUSIC_SECONDS = 600
_MUSIC_NAME = re.compile(r"(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)-(?P<seconds>[1-9][0-9]{0,2})s\.wav")


def music_name(name: str, length_ms: int) -> str:
    """The file name of the library music `name` for a draft `length_ms` long."""
    slug = "-".join(re.findall(r"[a-z0-9]+", name.lower())) or "music"
    seconds = min(MUSIC_SECONDS, max(1, math.ceil(length_ms / 1000)))
    return f"{slug}-{seconds}s.wav"


def music_wav(file_name: str) -> bytes | None:
    """The WAV file (16-bit mono) a `music_name` names; None for any other name."""
    from nemo_mcp.media.tones import SAMPLE_RATE, Sound

    found = _MUSIC_NAME.fullmatch(file_name)
    if found is None or int(found["seconds"]) > MUSIC_SECONDS:
        return None
    half = SAMPLE_RATE // 2  # one strike: a beat of the render's own sound, whole
    beat = array.array("f")
    beat.frombytes(Sound((Tone(0, 2000, 1.0, _chord(found["slug"])),)).chunk(half, half))
    step = SAMPLE_RATE // MUSIC_RATE
    pcm = array.array("h", (round(max(-1.0, min(1.0, x)) * 32767) for x in beat[::step]))
    if sys.byteorder == "big":
        pcm.byteswap()  # WAV samples are little-endian
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(MUSIC_RATE)
        wav.writeframes(pcm.tobytes() * (2 * int(found["seconds"])))
    return out.getvalue()


def _visual(
    segment: Segment, upload: Upload | None, index: int, captioned: Callable[[str], bool]
) -> Visual:
    if upload is not None and upload.path is not None and upload.kind == "image":
        return Still(upload.path, _MOTIONS[index % len(_MOTIONS)])
    if upload is not None and upload.path is not None and upload.kind == "video":
        return Footage(upload.path)
    if upload is not None:
        return Card(upload.name, palette(f"{upload.name}|{index}"), drift=1 if index % 2 else -1)
    text = prompt_of(segment) or segment.label or "generated clip"
    shown = "" if captioned(text) else text
    return Card(shown, palette(f"{text}|{index}"), drift=1 if index % 2 else -1)


def _captions(tracks: Sequence[Track], end: int) -> list[Caption]:
    """The text tracks' segments with text, over their time ranges (cut at `end`)."""
    captions = []
    for track in tracks:
        if track.kind != "text":
            continue
        for segment in track.segments:
            length = _length(segment, end)
            text = segment.text or segment.label
            if text and length > 0:
                captions.append(Caption(segment.start_ms, length, text))
    return captions


def _length(segment: Segment, end: int) -> int:
    """How long a segment shows: to the draft's end when unknown, and never past it."""
    length = segment.duration_ms
    if length is None:
        length = end - segment.start_ms
    return min(length, end - segment.start_ms)


def composition_of(draft: object, resolve: Resolver) -> Composition:
    """The composition a render of `draft` draws."""
    parsed = parse_draft(draft)
    end = parsed.duration_ms
    shots: list[Shot] = []
    captions = _captions(parsed.tracks, end)
    tones: list[Tone] = []
    clip = 0
    for layer, track in enumerate(parsed.tracks):
        for segment in track.segments:
            length = _length(segment, end)
            if length <= 0:
                continue
            if track.kind == "video":
                start, stop = segment.start_ms, segment.start_ms + length

                def captioned(text: str, start: int = start, stop: int = stop) -> bool:
                    return any(
                        c.text == text and c.start_ms < stop and start < c.start_ms + c.duration_ms
                        for c in captions
                    )

                visual = _visual(segment, resolve(segment), clip, captioned)
                shots.append(Shot(segment.start_ms, length, visual, layer))
                clip += 1
            elif track.kind == "audio":
                level = segment.volume if segment.volume is not None else track.volume
                tones.append(
                    Tone(
                        segment.start_ms,
                        length,
                        1.0 if level is None else level,
                        _chord(segment.label),
                    )
                )
    return Composition(
        duration_ms=end,
        shots=tuple(shots),
        captions=tuple(captions),
        tones=tuple(tones),
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
    )


def clip_composition(prompt: str, duration_ms: int) -> Composition:
    """A generated clip alone, as its own URL serves it."""
    return Composition(
        duration_ms=duration_ms,
        shots=(Shot(0, duration_ms, Card(prompt, palette(f"{prompt}|0"), drift=-1)),),
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
    )


__all__ = [
    "FPS",
    "HEIGHT",
    "WIDTH",
    "Resolver",
    "Upload",
    "clip_composition",
    "composition_of",
    "music_name",
    "music_wav",
    "prompt_of",
    "segment_url",
]
