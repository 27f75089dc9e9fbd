"""The tolerant draft model: the backend's short-key draft JSON read into typed, read-only values.

`parse_draft` takes any JSON value (or None, or a JSON text of one) and never raises. What it
cannot read it counts or names, and it never guesses. The reading rules:

- Keys: `t` tracks, `tt` track type, `sg` segments, `d` duration in ms, `m` metadata. `t` and
  `sg` may be lists or objects (then their values in order, each key a fallback id).
- Track type: 0 video, 1 audio, 7 text (numbers, numeric strings, or the words "video",
  "audio", "text"); any other value, or none, makes an "other" track, shown as "Track".
- Numbers are JSON numbers or numeric strings (" 1500 ", "2.5e3"). Booleans, NaN, infinities,
  negative times and times past 10^12 ms (about 31 years) are not usable times.
  Times are kept in whole milliseconds.
- Segment start: the first usable of `s`, `st`, `start`; else the end of the previous segment
  on the track (its start when its length is unknown); 0 for the first segment.
  Length: `d`, else `duration`, else `e` / `end` minus the start; else unknown.
- A track's segments are kept in time order (ties by length, label, text, volume, id), so the
  order of `sg` matters only through starts it leaves to be inferred.
- Metadata is looked up in `m` first, then on the item itself. Label: the first of `name`,
  `title`, `text`, `prompt` that is a non-empty string or a number, whitespace collapsed to
  single spaces. Text: `text`. Volume: `volume`. Id: the item's `id`, else `m.id`.
  Track name: `name`, else `title`.
- Draft title: the title shown on screen, which a retitle changes: the text of the earliest
  segment with text on a text track named "Title" (any case). Without one, the draft's own
  `title`, else `name` (the project's first title, which a retitle leaves as it was).
- Volume: up to 1 is a fraction, above 1 a percentage (0.35 and 35 are both 35%); a string may
  end in "%". Negative volumes and volumes above 1000% are ignored.
- Total duration: the draft's `d` when it is a usable time above zero, else the latest
  segment end (or start, for segments of unknown length); 0 without segments.
- Ready for export: at least one track has a readable (object) segment.
- Entries of `t` or `sg` that are not objects are skipped and counted as unreadable.

How a draft reads as text is in `wording.py`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

TrackKind = Literal["video", "audio", "text", "other"]

MAX_MS = 10**12
_MAX_VOLUME = 10.0
_NUMERIC = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
_CODES: dict[int, TrackKind] = {0: "video", 1: "audio", 7: "text"}
_WORDS: dict[str, TrackKind] = {"video": "video", "audio": "audio", "text": "text"}
KIND_LABELS: dict[TrackKind, str] = {
    "video": "Video",
    "audio": "Audio",
    "text": "Text",
    "other": "Track",
}
_LABEL_KEYS = ("name", "title", "text", "prompt")
#: The name (case-folded) of the text track holding the on-screen title.
TITLE_TRACK = "title"
_START_KEYS = ("s", "st", "start")
_LENGTH_KEYS = ("d", "duration")
_END_KEYS = ("e", "end")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Segment:
    """One clip, sound or caption on a track; times in whole milliseconds. `index` is the
    position on the track in time order (ties by content), not in the draft's `sg`."""

    index: int
    start_ms: int
    duration_ms: int | None
    label: str | None
    text: str | None
    volume: float | None
    id: str | None
    raw: dict[str, Any]
    # The keys the fields above came from ("s", "m.name"...): a change report names the rest.
    read: tuple[str, ...]

    @property
    def end_ms(self) -> int | None:
        return None if self.duration_ms is None else self.start_ms + self.duration_ms


@dataclass(frozen=True, slots=True)
class Track:
    """One track of the timeline with its readable segments, in time order."""

    index: int
    kind: TrackKind
    type_code: int | None
    name: str | None
    volume: float | None
    id: str | None
    segments: tuple[Segment, ...]
    end_ms: int | None
    unreadable: int
    raw: dict[str, Any]
    read: tuple[str, ...]

    @property
    def label(self) -> str:
        """The name shown for the track: its own, else its type's."""
        return self.name or KIND_LABELS[self.kind]


@dataclass(frozen=True, slots=True)
class Draft:
    """A whole timeline; `problem` says why nothing could be read, when that is the case.
    `raw` (here and on tracks and segments) is the caller's own object, not a copy."""

    tracks: tuple[Track, ...] = ()
    duration_ms: int = 0
    declared_ms: int | None = None
    title: str | None = None
    unreadable: int = 0
    problem: str | None = None
    raw: dict[str, Any] | None = None
    read: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return any(track.segments for track in self.tracks)

    @property
    def skipped(self) -> int:
        """Entries of `t` and of every `sg` that were not objects."""
        return self.unreadable + sum(track.unreadable for track in self.tracks)


def number(value: object) -> float | None:
    """A finite number from a JSON number or numeric string, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value) if -1e300 <= value <= 1e300 else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str) and len(value) <= 64 and _NUMERIC.fullmatch(value):
        result = float(value)
        return result if math.isfinite(result) else None
    return None


def millis(value: object) -> int | None:
    """A usable time in whole milliseconds, else None."""
    result = number(value)
    if result is None or result < 0 or result > MAX_MS:
        return None
    return round(result)


def volume(value: object) -> float | None:
    """A volume as a fraction (1.0 is 100%), from a fraction, a percentage or "35%"."""
    percent = False
    if isinstance(value, str):
        value = value.strip()
        if value.endswith("%"):
            percent, value = True, value[:-1]
    result = number(value)
    if result is None or result < 0:
        return None
    fraction = result / 100 if percent or result > 1 else result
    return fraction if fraction <= _MAX_VOLUME else None


def _numeral(value: object) -> str | None:
    """A JSON number as written, for names and ids; None for other values and absurd numbers."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 2.0 and 2 are the same JSON number
    if isinstance(value, int):
        return str(value) if -(10**30) < value < 10**30 else None
    return repr(value) if math.isfinite(value) else None


def words(value: object) -> str | None:
    """A label from a string or number, on one line; None when empty or not text."""
    text = " ".join(value.split()) if isinstance(value, str) else _numeral(value)
    return text or None


def _ident(value: object) -> str | None:
    if isinstance(value, str):
        return value if value.strip() else None
    return _numeral(value)


def _first(
    item: dict[str, Any],
    keys: tuple[str, ...],
    read: Callable[[object], T | None],
    prefix: str = "",
) -> tuple[T | None, str]:
    for key in keys:
        if key in item:
            found = read(item[key])
            if found is not None:
                return found, prefix + key
    return None, ""


def _meta(
    item: dict[str, Any],
    meta: dict[str, Any] | None,
    keys: tuple[str, ...],
    read: Callable[[object], T | None],
) -> tuple[T | None, str]:
    if meta is not None:
        found, key = _first(meta, keys, read, "m.")
        if found is not None:
            return found, key
    return _first(item, keys, read)


def _entries(value: object) -> tuple[list[tuple[dict[str, Any], str | None]], int]:
    """The object items of a `t` or `sg` list or object, with fallback ids, and a count of
    the items that are not objects."""
    if isinstance(value, list):
        pairs: Iterable[tuple[object, str | None]] = ((item, None) for item in value)
    elif isinstance(value, dict):
        pairs = ((item, _ident(key)) for key, item in value.items())
    else:
        return [], 0
    items = [(item, key) for item, key in pairs if isinstance(item, dict)]
    return items, len(value) - len(items)


_Fields = tuple[
    int,
    int | None,
    str | None,
    str | None,
    float | None,
    str | None,
    dict[str, Any],
    tuple[str, ...],
]


def _segment(raw: dict[str, Any], after: int, fallback_id: str | None) -> _Fields:
    """A segment's fields in `Segment` order, less its index (known once the track is sorted)."""
    meta = raw.get("m")
    meta = meta if isinstance(meta, dict) else None
    read: list[str] = []
    start, key = _first(raw, _START_KEYS, millis)
    if start is None:
        start = after
    else:
        read.append(key)
    length, key = _first(raw, _LENGTH_KEYS, millis)
    if length is None:
        end, key = _first(raw, _END_KEYS, millis)
        if end is not None and end >= start:
            length = end - start
    if length is not None:
        read.append(key)
    label, key = _meta(raw, meta, _LABEL_KEYS, words)
    read.append(key)
    text, key = _meta(raw, meta, ("text",), words)
    read.append(key)
    level, key = _meta(raw, meta, ("volume",), volume)
    read.append(key)
    # Ids stay out of `read`: an id that appears or goes is told as a setting change.
    ident, _ = _first(raw, ("id",), _ident)
    if ident is None and meta is not None:
        ident, _ = _first(meta, ("id",), _ident, "m.")
    ident = ident if ident is not None else fallback_id
    return start, length, label, text, level, ident, raw, tuple(read)


def _order(fields: _Fields) -> tuple[object, ...]:
    # Time first, then content, so that the order of `sg` alone never changes a summary.
    start, length, label, text, level, ident = fields[:6]
    return (
        start,
        length is None,
        length or 0,
        label or "",
        text or "",
        level is None,
        level or 0.0,
        ident or "",
    )


def _kind(value: object) -> tuple[TrackKind, int | None]:
    code = number(value)
    if code is not None and code.is_integer() and abs(code) < 2**31:
        return _CODES.get(int(code), "other"), int(code)
    if isinstance(value, str):
        return _WORDS.get(value.strip().lower(), "other"), None
    return "other", None


def _track(raw: dict[str, Any], index: int, fallback_id: str | None) -> Track:
    meta = raw.get("m")
    meta = meta if isinstance(meta, dict) else None
    kind, code = _kind(raw.get("tt"))
    name, name_key = _meta(raw, meta, ("name", "title"), words)
    level, volume_key = _meta(raw, meta, ("volume",), volume)
    ident, _ = _first(raw, ("id",), _ident)
    if ident is None and meta is not None:
        ident, _ = _first(meta, ("id",), _ident, "m.")
    found = raw.get("sg")
    items, unreadable = _entries(found)
    # A `sg` that is neither a list nor an object is one unreadable entry, not an empty track.
    if found is not None and not isinstance(found, (list, dict)):
        unreadable += 1
    found_segments: list[_Fields] = []
    after = 0
    end: int | None = None
    for item, item_id in items:
        fields = _segment(item, after, item_id)
        found_segments.append(fields)
        start, length = fields[0], fields[1]
        after = start if length is None else start + length
        end = after if end is None or after > end else end
    found_segments.sort(key=_order)
    segments = tuple(Segment(position, *fields) for position, fields in enumerate(found_segments))
    return Track(
        index=index,
        kind=kind,
        type_code=code,
        name=name,
        volume=level,
        id=ident if ident is not None else fallback_id,
        segments=segments,
        end_ms=end,
        unreadable=unreadable,
        raw=raw,
        read=("tt", "sg", name_key, volume_key),
    )


def _shown_title(tracks: Iterable[Track]) -> str | None:
    """The title on screen: the earliest text on a text track named "Title"."""
    for track in tracks:
        if track.kind == "text" and (track.name or "").casefold() == TITLE_TRACK:
            for segment in track.segments:
                if segment.text:
                    return segment.text
    return None


def _kind_of(value: object) -> str:
    """What a JSON value is, with its article: "a list", "a number"."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} value"


def parse_draft(value: object) -> Draft:
    """Read a draft from any JSON value; never raises. None (no draft yet) reads as empty."""
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        if not value.strip():
            return Draft()
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return Draft(problem="unreadable draft: text that is not JSON")
    if value is None:
        return Draft()
    if not isinstance(value, dict):
        return Draft(problem=f"unreadable draft: {_kind_of(value)}, not an object")
    meta = value.get("m")
    meta = meta if isinstance(meta, dict) else None
    title, _ = _meta(value, meta, ("title", "name"), words)
    declared = millis(value.get("d"))
    declared = declared if declared else None
    found = value.get("t")
    items, unreadable = _entries(found)
    problem = None
    if found is not None and not isinstance(found, (list, dict)):
        problem = f"unreadable tracks: t is {_kind_of(found)}, not a list"
    tracks = [_track(item, position, item_id) for position, (item, item_id) in enumerate(items)]
    title = _shown_title(tracks) or title
    ends = [track.end_ms for track in tracks if track.end_ms is not None]
    return Draft(
        tracks=tuple(tracks),
        duration_ms=declared if declared is not None else max(ends, default=0),
        declared_ms=declared,
        title=title,
        unreadable=unreadable,
        problem=problem,
        raw=value,
        read=("t", "d") if declared is not None else ("t",),
    )
