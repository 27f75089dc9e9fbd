"""The hand-off plan: a draft laid out in whole frames, before any timeline library is involved.

Pure functions over a parsed `Draft` (see `nemo_mcp.timeline.model`), so every rule is tested
without files or the network:

- Times: each segment's start and end (ms) become frames at the draft's rate separately, so
  clips that meet in the draft meet in the editor and no rounding drifts along a track. The
  rate is the draft's `m.fps` (or `m.frame_rate`) when it is a usable number, else 30.
- Video and audio tracks keep their clips in time order with gaps between them. A segment that
  overlaps the one before it on the same track goes onto a second track of the same kind
  ("Video 2"), as an editor would stack it. Tracks of another type are not carried, and say so.
- Text tracks (titles, captions) become markers over the same frames, named by their text.
- A clip's media is its segment's `url` (or `m.url`) when that is an http(s) link; the draft
  gives no in point, so a clip starts at the start of its media. A clip without a link keeps
  its place (how, each format says: see `timeline.not_carried`).
- Volume: the segment's, else its track's; none means 100%.

Whatever a format cannot hold is a sentence in `Plan.not_carried`, for the answer and the
README beside the timeline file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from nemo_mcp.timeline.model import Draft, Segment, Track, number

DEFAULT_FPS = 30.0
#: Rates an editor's timeline can be set to; a draft's rate outside them reads as none.
_LOWEST_FPS, _HIGHEST_FPS = 1.0, 240.0

Kind = Literal["video", "audio"]


@dataclass(frozen=True)
class Clip:
    """One clip: `start` and `duration` in frames on its track; its media from frame 0."""

    name: str
    start: int
    duration: int
    url: str | None
    volume: float | None
    media_type: str | None = None


@dataclass(frozen=True)
class Lane:
    """One track of the hand-off, its clips in time order and never overlapping."""

    kind: Kind
    name: str
    clips: tuple[Clip, ...]


@dataclass(frozen=True)
class Mark:
    """A title or caption: its text over frames `start` to `start + duration`."""

    text: str
    start: int
    duration: int
    track: str


@dataclass(frozen=True)
class Plan:
    title: str
    fps: float
    duration: int
    lanes: tuple[Lane, ...]
    marks: tuple[Mark, ...]
    not_carried: tuple[str, ...] = field(default=())

    @property
    def urls(self) -> list[str]:
        """Every distinct media link, in the order the clips use them."""
        seen: dict[str, None] = {}
        for lane in self.lanes:
            for clip in lane.clips:
                if clip.url is not None:
                    seen.setdefault(clip.url)
        return list(seen)


def frame_rate(draft: Draft) -> float:
    """The draft's frame rate (`m.fps`, `m.frame_rate`, or the same keys on the draft), else 30."""
    raw = draft.raw or {}
    meta = raw.get("m") if isinstance(raw.get("m"), dict) else {}
    for source in (meta, raw):
        for key in ("fps", "frame_rate"):
            found = number(source.get(key)) if isinstance(source, dict) else None
            if found is not None and _LOWEST_FPS <= found <= _HIGHEST_FPS:
                return found
    return DEFAULT_FPS


def to_frames(ms: int, fps: float) -> int:
    """Milliseconds to the nearest whole frame at `fps`."""
    return round(ms * fps / 1000)


def media_url(segment: Segment) -> str | None:
    """The segment's media link when it is an http(s) URL (the only links fetched)."""
    meta = segment.raw.get("m")
    for source in (meta if isinstance(meta, dict) else {}, segment.raw):
        value = source.get("url")
        if isinstance(value, str):
            parts = urlsplit(value.strip())
            if parts.scheme in ("http", "https") and parts.netloc:
                return value.strip()
    return None


def _media_type(segment: Segment) -> str | None:
    meta = segment.raw.get("m")
    value = meta.get("type") if isinstance(meta, dict) else None
    return value if isinstance(value, str) else None


def _ends(segment: Segment, after: int | None, total_ms: int) -> tuple[int, bool]:
    """A segment's end in ms, and whether it was known (else: the next start or the end)."""
    if segment.end_ms is not None:
        return segment.end_ms, True
    return max(segment.start_ms, after if after is not None else total_ms), False


def _timed(
    track: Track, total_ms: int, fps: float, notes: list[str]
) -> list[tuple[Segment, int, int]]:
    """The track's segments with start and end frames; zero-length ones are listed."""
    timed = []
    segments = track.segments
    for n, segment in enumerate(segments):
        following = segments[n + 1].start_ms if n + 1 < len(segments) else None
        end_ms, known = _ends(segment, following, total_ms)
        start, end = to_frames(segment.start_ms, fps), to_frames(end_ms, fps)
        name = _name(track, segment)
        if not known:
            notes.append(
                f"{name} on {track.label} has no length in the draft; it runs to "
                f"{'the next one' if following is not None else 'the end'}."
            )
        if end <= start:
            notes.append(f"{name} on {track.label} is shorter than one frame; left out.")
            continue
        timed.append((segment, start, end))
    return timed


def _name(track: Track, segment: Segment) -> str:
    if segment.label:
        return f'"{segment.label}"'
    return f"{track.label} segment {segment.index + 1}"


def _lanes(track: Track, kind: Kind, total_ms: int, fps: float, notes: list[str]) -> list[Lane]:
    """One draft track as one lane, or more when its segments overlap."""
    stacks: list[list[Clip]] = []
    for segment, start, end in _timed(track, total_ms, fps, notes):
        url = media_url(segment)
        volume = segment.volume if segment.volume is not None else track.volume
        name = segment.label or f"{track.label} {segment.index + 1}"
        clip = Clip(name, start, end - start, url, volume, _media_type(segment))
        free = next((s for s in stacks if s[-1].start + s[-1].duration <= start), None)
        if free is None:
            stacks.append([clip])
        else:
            free.append(clip)
    if len(stacks) > 1:
        notes.append(
            f"{track.label} has overlapping clips; they are spread over {len(stacks)} "
            f"{kind} tracks."
        )
    return [
        Lane(kind, track.label if n == 0 else f"{track.label} {n + 1}", tuple(clips))
        for n, clips in enumerate(stacks)
    ]


def _marks(track: Track, total_ms: int, fps: float, notes: list[str]) -> list[Mark]:
    marks = []
    for segment, start, end in _timed(track, total_ms, fps, notes):
        text = segment.text or segment.label
        if text is None:
            notes.append(f"{track.label} segment {segment.index + 1} has no text; left out.")
            continue
        marks.append(Mark(text, start, end - start, track.label))
    return marks


def plan(draft: Draft, *, title: str | None = None) -> Plan:
    """The hand-off of `draft`: lanes, markers and what does not carry over."""
    fps = frame_rate(draft)
    notes: list[str] = []
    lanes: list[Lane] = []
    marks: list[Mark] = []
    for track in draft.tracks:
        if track.kind in ("video", "audio"):
            kind: Kind = "video" if track.kind == "video" else "audio"
            lanes.extend(_lanes(track, kind, draft.duration_ms, fps, notes))
        elif track.kind == "text":
            marks.extend(_marks(track, draft.duration_ms, fps, notes))
        elif track.segments:
            notes.append(
                f"{track.label} (track type {track.type_code}) is neither video, audio nor "
                f"text; its {len(track.segments)} segments are not carried over."
            )
    if draft.skipped:
        notes.append(f"{draft.skipped} unreadable entries of the draft are not carried over.")
    ends = [c.start + c.duration for lane in lanes for c in lane.clips]
    ends += [m.start + m.duration for m in marks]
    duration = max([to_frames(draft.duration_ms, fps), *ends])
    return Plan(
        title=title or draft.title or "nemovideo",
        fps=fps,
        duration=duration,
        lanes=tuple(lanes),
        marks=tuple(sorted(marks, key=lambda m: (m.start, m.duration, m.text))),
        not_carried=tuple(notes),
    )


def percent(volume: float) -> str:
    """A volume as a percentage, as the timeline tool writes it."""
    return f"{round(volume * 100, 2):g}%"


def volume_notes(lanes: Iterable[Lane]) -> list[str]:
    """Each clip's volume other than 100%, in words (for a format that cannot hold volume)."""
    return [
        f'Volume: "{clip.name}" on {lane.name} plays at {percent(clip.volume)} in NemoVideo; '
        "set it in the editor."
        for lane in lanes
        for clip in lane.clips
        if clip.volume is not None and abs(clip.volume - 1.0) > 1e-9
    ]


__all__ = [
    "DEFAULT_FPS",
    "Clip",
    "Lane",
    "Mark",
    "Plan",
    "frame_rate",
    "media_url",
    "percent",
    "plan",
    "to_frames",
    "volume_notes",
]
