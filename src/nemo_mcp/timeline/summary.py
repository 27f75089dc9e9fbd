"""Timelines for people and agents: the one-line summary, the multi-line form, the structured view.

Pure functions over `Draft` (read by `parse_draft`, see `model.py` for the reading rules);
change reports live in `changes.py`.

The one-line summary is the backend documents' own format (here wrapped, but one line):

    Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%)
    3. Title: "Urban Dreams" (0-3s)

Its rules:

- A track reads `N. <name>: <segments>`; a track without a name goes by its type: Video,
  Audio, Text, or Track for unknown types. A track without segments reads `<name>: empty`.
- A segment reads `<label> (<start>-<end>s[, <volume>])`, segments separated by ", ". The
  label is the quoted text on text tracks (`"Urban Dreams"`), else the segment's label, else
  its position (`segment 2`); labels past 40 characters are cut with "…".
- Times: seconds below a minute, with up to three decimals and no trailing zeros (`1.5s`,
  `0-10s`); from a minute `m:ss` (`1:05`, `0:50-1:05`); from an hour `h:mm:ss`. Both ends of a
  range share one form. A segment of unknown length reads `(from 5s)`.
- Volume, when the segment or else its track has one, as a percentage with up to two
  decimals (`35%`, `35.5%`), on any track type.
- More than five segments on a track: the first three, then `+N more (to <end>)`.
- More than twelve tracks: the first ten, then `+N more tracks`.
- No tracks: `Timeline (0 tracks): no tracks yet` (also for no draft at all); a draft that is
  not an object, or whose `t` is not a list: `Timeline (0 tracks): unreadable draft: a list,
  not an object`. Skipped entries that are not objects are counted at the end:
  `(2 unreadable entries skipped)`.

`describe` gives a header line (title, track count, total duration, readiness) and one line
per track with its type, id, volume and up to thirty segments. `view` gives the same as a
pydantic model for MCP `structuredContent`, every segment included, times in seconds.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from nemo_mcp.timeline.model import Draft, Segment, Track, TrackKind, parse_draft
from nemo_mcp.timeline.wording import clip, percent, plural, point, segment_list, track_entry

__all__ = [
    "Draft",
    "Segment",
    "SegmentView",
    "TimelineView",
    "Track",
    "TrackKind",
    "TrackView",
    "describe",
    "parse_draft",
    "summarize",
    "view",
]

_MOST_TRACKS = 12
_SHOWN_TRACKS = 10


def _skipped(draft: Draft) -> str:
    count = draft.skipped
    return f" ({plural(count, 'unreadable entry', 'unreadable entries')} skipped)" if count else ""


def summarize(draft: Draft) -> str:
    """The timeline on one line, starting with "Timeline (<n> tracks):"."""
    tracks = draft.tracks
    head = f"Timeline ({plural(len(tracks), 'track')}):"
    if not tracks:
        return f"{head} {draft.problem or 'no tracks yet'}{_skipped(draft)}"
    shown = tracks if len(tracks) <= _MOST_TRACKS else tracks[:_SHOWN_TRACKS]
    body = " ".join(f"{n}. {track_entry(track)}" for n, track in enumerate(shown, 1))
    if len(shown) < len(tracks):
        body += f" +{len(tracks) - len(shown)} more tracks"
    return f"{head} {body}{_skipped(draft)}"


def _kind_words(track: Track) -> str:
    if track.kind != "other":
        return track.kind
    return "unknown type" if track.type_code is None else f"type {track.type_code}"


def describe(draft: Draft) -> str:
    """The timeline over several lines: a header, then one line per track."""
    title = f' "{clip(draft.title, 80)}"' if draft.title else ""
    if draft.problem:
        return f"Timeline{title}: {draft.problem}; not ready for export"
    tracks = plural(len(draft.tracks), "track") if draft.tracks else "no tracks yet"
    ready = "ready for export" if draft.ready else "not ready for export (no segments yet)"
    lines = [f"Timeline{title}: {tracks}, {point(draft.duration_ms)} long, {ready}"]
    for n, track in enumerate(draft.tracks, 1):
        facts = [_kind_words(track)]  # ids are the backend's; agents speak in labels
        if track.volume is not None:
            facts.append(f"volume {percent(track.volume)}")
        facts.append(plural(len(track.segments), "segment") if track.segments else "no segments")
        if track.unreadable:
            facts.append(plural(track.unreadable, "unreadable entry", "unreadable entries"))
        line = f"{n}. {clip(track.label, 80)} ({', '.join(facts)})"
        if track.segments:
            line += ": " + segment_list(track, most=30, keep=30, limit=80)
        lines.append(line)
    if draft.unreadable:
        lines.append(
            plural(draft.unreadable, "unreadable track entry", "unreadable track entries")
            + " skipped"
        )
    return "\n".join(lines)


class SegmentView(BaseModel):
    """One segment for structured output; times in seconds."""

    index: int = Field(description="Position on its track, from 1")
    id: str | None = Field(None, description="The segment's id in the draft, when it has one")
    label: str | None = Field(None, description="Name, title, text or prompt, the first set")
    text: str | None = Field(None, description="On-screen text, for text segments")
    start: float = Field(description="Start, in seconds from the beginning of the timeline")
    end: float | None = Field(None, description="End in seconds; null when the length is unknown")
    duration: float | None = Field(None, description="Length in seconds; null when unknown")
    volume: float | None = Field(None, description="Volume as a fraction, 1.0 being 100%")


class TrackView(BaseModel):
    """One track for structured output."""

    index: int = Field(description="Position in the timeline, from 1")
    id: str | None = Field(None, description="The track's id in the draft, when it has one")
    kind: TrackKind = Field(description="video, audio, text, or other")
    type_code: int | None = Field(None, description="The draft's own track type number (tt)")
    name: str | None = Field(None, description="The track's own name, when it has one")
    label: str = Field(description="The name shown: its own, else its type's")
    volume: float | None = Field(None, description="Track volume as a fraction, 1.0 being 100%")
    end: float | None = Field(None, description="Where its last segment ends, in seconds")
    segments: list[SegmentView] = Field(default_factory=list)
    unreadable_entries: int = Field(0, description="Segment entries that could not be read")


class TimelineView(BaseModel):
    """The whole timeline for MCP structuredContent."""

    summary: str = Field(description="The one-line summary")
    title: str | None = Field(None, description="The project's title, when the draft has one")
    track_count: int
    tracks: list[TrackView] = Field(default_factory=list)
    duration_seconds: float = Field(description="Total duration in seconds")
    ready_for_export: bool = Field(description="At least one track has a segment")
    problem: str | None = Field(None, description="Why the draft could not be read, if so")
    unreadable_entries: int = Field(0, description="Track and segment entries not readable")


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _segment_view(segment: Segment) -> SegmentView:
    duration = segment.duration_ms
    return SegmentView(
        index=segment.index + 1,
        id=segment.id,
        label=segment.label,
        text=segment.text,
        start=segment.start_ms / 1000,
        end=_seconds(segment.end_ms),
        duration=_seconds(duration),
        volume=segment.volume,
    )


def view(draft: Draft) -> TimelineView:
    """The timeline as a model for structured output, every segment included."""
    return TimelineView(
        summary=summarize(draft),
        title=draft.title,
        track_count=len(draft.tracks),
        tracks=[
            TrackView(
                index=track.index + 1,
                id=track.id,
                kind=track.kind,
                type_code=track.type_code,
                name=track.name,
                label=track.label,
                volume=track.volume,
                end=_seconds(track.end_ms),
                segments=[_segment_view(segment) for segment in track.segments],
                unreadable_entries=track.unreadable,
            )
            for track in draft.tracks
        ],
        duration_seconds=draft.duration_ms / 1000,
        ready_for_export=draft.ready,
        problem=draft.problem,
        unreadable_entries=draft.skipped,
    )
