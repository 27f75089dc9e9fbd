"""How times, volumes, segments and tracks read as text.

The one-line summary, the multi-line form and the change report all word things
through these functions, so the same segment reads the same everywhere.
"""

from __future__ import annotations

from nemo_mcp.timeline.model import Segment, Track


def plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def clip(text: str, limit: int) -> str:
    """Text cut to `limit` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _clock(ms: int, level: int) -> str:
    whole, part = divmod(ms, 1000)
    tail = f".{part:03d}".rstrip("0") if part else ""
    if level == 0:
        return f"{whole}{tail}"
    minutes, seconds = divmod(whole, 60)
    if level == 1:
        return f"{minutes}:{seconds:02d}{tail}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}{tail}"


def _level(ms: int) -> int:
    return 0 if ms < 60_000 else 1 if ms < 3_600_000 else 2


def point(ms: int) -> str:
    """A moment: "1.5s", "1:05", "1:00:05"."""
    level = _level(ms)
    return _clock(ms, level) + ("s" if level == 0 else "")


def span(start: int, end: int | None) -> str:
    """A stretch of time: "0-10s", "0:50-1:05", or "from 5s" when the end is unknown."""
    if end is None:
        return f"from {point(start)}"
    level = _level(max(start, end))
    return f"{_clock(start, level)}-{_clock(end, level)}" + ("s" if level == 0 else "")


def percent(fraction: float) -> str:
    """A volume fraction as a percentage, to two decimals: "35%", "35.5%"."""
    hundredths = round(fraction * 10_000)
    whole, part = divmod(hundredths, 100)
    return f"{whole}.{part:02d}".rstrip("0").rstrip(".") + "%" if part else f"{whole}%"


def segment_label(track: Track, segment: Segment, limit: int) -> str:
    """A segment's name: the quoted text on text tracks, else its label, else its position."""
    if track.kind == "text" and segment.text:
        return f'"{clip(segment.text, limit)}"'
    if segment.label:
        return clip(segment.label, limit)
    return f"segment {segment.index + 1}"


def segment_entry(track: Track, segment: Segment, limit: int) -> str:
    """A segment as the summary shows it: `Lo-fi (0-10s, 35%)`."""
    level = segment.volume if segment.volume is not None else track.volume
    loud = "" if level is None else f", {percent(level)}"
    when = span(segment.start_ms, segment.end_ms)
    return f"{segment_label(track, segment, limit)} ({when}{loud})"


def segment_list(track: Track, most: int, keep: int, limit: int) -> str:
    """A track's segments, the first `keep` and a count when there are more than `most`."""
    segments = track.segments
    shown = segments if len(segments) <= most else segments[:keep]
    text = ", ".join(segment_entry(track, segment, limit) for segment in shown)
    rest = len(segments) - len(shown)
    if rest:
        reach = "" if track.end_ms is None else f" (to {point(track.end_ms)})"
        text += f", +{rest} more{reach}"
    return text


def track_entry(
    track: Track, name: str | None = None, *, most: int = 5, keep: int = 3, limit: int = 40
) -> str:
    """A track as the summary shows it: `BGM: Lo-fi (0-10s, 35%)`, or `BGM: empty`."""
    shown = name or track.label
    if not track.segments:
        return f"{shown}: empty"
    return f"{shown}: {segment_list(track, most, keep, limit)}"
