"""Change reports: what differs between two drafts, in plain words, exactly and completely.

The server says this to the user after an edit that came back without text, so nothing that
changed may go unmentioned. Linear time in the size of both drafts.

Matching. Tracks pair up by id (`id`, else `m.id`); then by type and name; then by position
among the tracks of that type. Segments pair up by id; then by label and timing; by label; by
timing; then, among unlabelled segments, by position. Duplicates pair in order. Two items
that both carry ids pair only when the ids are equal.

Wording (`T` is the track's name, numbered "Video (track 2)" when the name is shared):

    Added BGM: Lo-fi (0-10s, 35%)                     a track, as the summary shows it
    Removed Title: "Urban Dreams" (0-3s)
    Renamed track BGM to Music
    Music track changed from audio to video           matched by id, type changed
    Moved track Title to position 1 (was 3)           order changed, not just shifted
    Added to Video: beach (10-15s)                    a segment on a kept track
    Removed from Video: beach (10-15s)
    Video: city timelapse moved to 2-12s (was 0-10s)       same length
    Video: city timelapse trimmed to 0-8s (was 0-10s)      shorter
    Video: city timelapse extended to 0-12s (was 0-10s)    longer
    Video: city timelapse now at 0-10s (was from 0s)       a length became known or unknown
    Video: city timelapse renamed to city night
    Title: text "Urban Dreams" -> "Night City"
    BGM: Lo-fi volume 35% -> 60%      (also "volume set to 60%", "volume cleared (was 35%)")
    BGM volume 35% -> 60%                             the track's own volume
    Total duration 10s -> 8s
    Video: city timelapse settings: speed 1 -> 2      anything else in the JSON, also
                                                      "speed set to 2", "speed removed (was 2)";
                                                      a link only "url changed" (never shown)

More than five changes of one kind on one track become one line: the first three, then
"+N more" (`Added 40 segments to Video: a (0-1s), b (1-2s), c (2-3s), +37 more`); segments
that all moved by the same amount read `Video: 40 segments moved 2s later: a, b, c, +37 more`.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, deque
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from nemo_mcp.timeline.model import Draft, Segment, Track
from nemo_mcp.timeline.wording import (
    clip,
    percent,
    point,
    segment_entry,
    segment_label,
    span,
    track_entry,
)

ChangeKind = Literal[
    "track_added",
    "track_removed",
    "track_renamed",
    "track_retyped",
    "track_moved",
    "segment_added",
    "segment_removed",
    "segment_moved",
    "segment_trimmed",
    "segment_extended",
    "segment_retimed",
    "label_changed",
    "text_changed",
    "volume_changed",
    "duration_changed",
    "setting_changed",
]

_LIMIT = 60
_GROUP_OVER = 5
_SHOWN = 3
_MOST_SETTINGS = 5
_ORDER: tuple[ChangeKind, ...] = (
    "segment_removed",
    "segment_added",
    "segment_moved",
    "segment_trimmed",
    "segment_extended",
    "segment_retimed",
    "label_changed",
    "text_changed",
    "volume_changed",
    "setting_changed",
)
_VERBS: dict[ChangeKind, str] = {
    "segment_moved": "moved",
    "segment_trimmed": "trimmed",
    "segment_extended": "extended",
    "segment_retimed": "retimed",
    "label_changed": "renamed",
    "text_changed": "changed text",
    "volume_changed": "changed volume",
    "setting_changed": "changed settings",
}
_MISSING: Any = object()
_SCALARS = (str, int, float, type(None))
X = TypeVar("X")


class Change(BaseModel):
    """One difference between two drafts, worded for the user."""

    model_config = ConfigDict(frozen=True)

    kind: ChangeKind
    text: str


def pair(
    before: Sequence[X],
    after: Sequence[X],
    ids: Callable[[X], str | None],
    keys: Sequence[Callable[[X], Hashable | None]],
) -> list[int | None]:
    """For each item of `after`, the index of its match in `before` (or None): first by id,
    then by each key in turn; a key of None never matches."""
    before_ids = [ids(item) for item in before]
    after_ids = [ids(item) for item in after]
    matched: list[int | None] = [None] * len(after)
    free = [True] * len(before)
    by_id: dict[str, deque[int]] = {}
    for i, ident in enumerate(before_ids):
        if ident is not None:
            by_id.setdefault(ident, deque()).append(i)
    for j, ident in enumerate(after_ids):
        queue = by_id.get(ident) if ident is not None else None
        if queue:
            matched[j] = i = queue.popleft()
            free[i] = False
    for key in keys:
        # Per key, the free items with an id and those without: an id-carrying item may only
        # take one without, since differing ids mean different things.
        groups: dict[Hashable, tuple[deque[int], deque[int]]] = {}
        for i, item in enumerate(before):
            if free[i]:
                found = key(item)
                if found is not None:
                    groups.setdefault(found, (deque(), deque()))[before_ids[i] is None].append(i)
        if not groups:
            continue
        for j, item in enumerate(after):
            if matched[j] is not None:
                continue
            found = key(item)
            group = groups.get(found) if found is not None else None
            if group is None:
                continue
            with_id, without = group
            if after_ids[j] is not None or not with_id:
                queue = without
            elif not without:
                queue = with_id
            else:
                queue = with_id if with_id[0] < without[0] else without
            if queue:
                matched[j] = i = queue.popleft()
                free[i] = False
    return matched


_TRACK_KEYS: tuple[Callable[[Track], Hashable | None], ...] = (
    lambda t: (t.kind, t.type_code, t.name) if t.name is not None else None,
    lambda t: (t.kind, t.type_code),
)
_SEGMENT_KEYS: tuple[Callable[[Segment], Hashable | None], ...] = (
    lambda s: (s.label, s.start_ms, s.duration_ms) if s.label is not None else None,
    lambda s: s.label,
    lambda s: (s.start_ms, s.duration_ms),
    # Position pairs only unlabelled segments: two different labels at two different times are
    # told as one removed and one added, not as a rename and a retime.
    lambda s: 0 if s.label is None else None,
)


def json_equal(a: object, b: object) -> bool:
    """JSON equality: 1 and 1.0 alike, NaN equal to NaN, but true never equal to 1 (Python's
    own `==` says it is); nesting too deep to compare counts as different."""
    if a is b:
        return True
    try:
        # Python's `==` and `repr` run at C speed and agree only on truly equal JSON; the walk
        # below settles the rest (1 against 1.0, NaN, true against 1).
        if a == b and repr(a) == repr(b):
            return True
        return _json_walk_equal(a, b)
    except RecursionError:
        return False


def _json_walk_equal(a: object, b: object) -> bool:
    """`json_equal` by walking the values: the slow path, for what `==` cannot settle."""
    if a is b:
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(k in b and _json_walk_equal(v, b[k]) for k, v in a.items())
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_walk_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) in _SCALARS and type(b) in _SCALARS and a == b


_LINK = re.compile(r"\s*[A-Za-z][A-Za-z0-9+.-]*://")


def _show(value: object) -> str | None:
    if isinstance(value, str) and _LINK.match(value):
        return None  # a media link: said to have changed, never shown (it may be signed)
    if isinstance(value, str):
        return " ".join(json.dumps(clip(value, 40), ensure_ascii=False).split())
    if value is None or isinstance(value, (bool, int, float)):
        try:
            return clip(json.dumps(value), 40)
        except ValueError:
            return None
    return None


def _settings(
    old: dict[Any, Any], new: dict[Any, Any], skip: Collection[str], prefix: str = ""
) -> list[str]:
    """What differs between two JSON objects outside the keys already reported on."""
    phrases: list[str] = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key, _MISSING), new.get(key, _MISSING)
        name = clip(" ".join(str(key).split()) or '""', 40)
        if not prefix and key == "m" and (isinstance(a, dict) or isinstance(b, dict)):
            phrases.extend(
                _settings(
                    a if isinstance(a, dict) else {}, b if isinstance(b, dict) else {}, skip, "m."
                )
            )
            if (isinstance(a, dict) or a is _MISSING) and (isinstance(b, dict) or b is _MISSING):
                continue
        elif f"{prefix}{key}" in skip or json_equal(a, b):
            continue
        was, now = _show(a), _show(b)
        if a is _MISSING:
            phrases.append(f"{name} set to {now}" if now else f"{name} added")
        elif b is _MISSING:
            phrases.append(f"{name} removed (was {was})" if was else f"{name} removed")
        else:
            phrases.append(f"{name} {was} -> {now}" if was and now else f"{name} changed")
    return phrases


def _setting_text(
    subject: str, old: dict[Any, Any] | None, new: dict[Any, Any] | None, skip: Collection[str]
) -> str | None:
    # Keys already reported on (a track's `sg`, the draft's `t`) are left out before comparing,
    # so that no segment is compared twice.
    old = {k: v for k, v in (old or {}).items() if k not in skip}
    new = {k: v for k, v in (new or {}).items() if k not in skip}
    if json_equal(old, new):
        return None
    phrases = _settings(old, new, skip)
    if not phrases:
        return None
    if len(phrases) > _MOST_SETTINGS:
        phrases = [*phrases[:_MOST_SETTINGS], f"+{len(phrases) - _MOST_SETTINGS} more"]
    return f"{subject} settings: {', '.join(phrases)}"


def _volume_text(subject: str, old: float | None, new: float | None) -> str | None:
    if old is None and new is None:
        return None
    if old is None:
        return f"{subject} volume set to {percent(new or 0.0)}"
    if new is None:
        return f"{subject} volume cleared (was {percent(old)})"
    if percent(old) == percent(new):
        return None
    return f"{subject} volume {percent(old)} -> {percent(new)}"


def _quoted(text: str | None) -> str:
    return f'"{clip(text, _LIMIT)}"' if text else "(none)"


def _name(segment: Segment) -> str:
    return clip(segment.label, _LIMIT) if segment.label else f"segment {segment.index + 1}"


@dataclass(slots=True)
class _Item:
    kind: ChangeKind
    brief: str
    label: str = ""
    shift: int = 0


def _unchanged(old: Segment, new: Segment) -> bool:
    """The common case, checked before any wording is built."""
    return (
        old.start_ms == new.start_ms
        and old.duration_ms == new.duration_ms
        and old.label == new.label
        and old.text == new.text
        and (old.volume is None) == (new.volume is None)
        and (
            old.volume is None
            or new.volume is None
            or round(old.volume * 10_000) == round(new.volume * 10_000)
        )
        and json_equal(old.raw, new.raw)
    )


def _segment_items(track: Track, old: Segment, new: Segment) -> list[_Item]:
    items: list[_Item] = []
    if _unchanged(old, new):
        return items
    label = segment_label(track, new, _LIMIT)
    if old.start_ms != new.start_ms or old.duration_ms != new.duration_ms:
        was, now = span(old.start_ms, old.end_ms), span(new.start_ms, new.end_ms)
        if old.duration_ms is None or new.duration_ms is None:
            items.append(_Item("segment_retimed", f"{label} now at {now} (was {was})", label))
        elif old.duration_ms == new.duration_ms:
            items.append(
                _Item(
                    "segment_moved",
                    f"{label} moved to {now} (was {was})",
                    label,
                    new.start_ms - old.start_ms,
                )
            )
        elif new.duration_ms < old.duration_ms:
            items.append(_Item("segment_trimmed", f"{label} trimmed to {now} (was {was})", label))
        else:
            items.append(_Item("segment_extended", f"{label} extended to {now} (was {was})", label))
    from_text = old.label == old.text and new.label == new.text
    if old.label != new.label and not from_text:
        items.append(_Item("label_changed", f"{_name(old)} renamed to {_name(new)}", label))
    if old.text != new.text:
        subject = "" if not new.label or new.label == new.text else f"{_name(new)} "
        items.append(
            _Item(
                "text_changed", f"{subject}text {_quoted(old.text)} -> {_quoted(new.text)}", label
            )
        )
    loud = _volume_text(label, old.volume, new.volume)
    if loud:
        items.append(_Item("volume_changed", loud, label))
    if old.raw is not new.raw:
        setting = _setting_text(label, old.raw, new.raw, {*old.read, *new.read})
        if setting:
            items.append(_Item("setting_changed", setting, label))
    return items


def _grouped(name: str, kind: ChangeKind, items: list[_Item]) -> list[Change]:
    """Items of one kind on one track, one line each, or one line for them all."""
    if len(items) <= _GROUP_OVER:
        if kind == "segment_added":
            return [Change(kind=kind, text=f"Added to {name}: {i.brief}") for i in items]
        if kind == "segment_removed":
            return [Change(kind=kind, text=f"Removed from {name}: {i.brief}") for i in items]
        return [Change(kind=kind, text=f"{name}: {i.brief}") for i in items]
    rest = f"+{len(items) - _SHOWN} more"
    if kind in ("segment_added", "segment_removed"):
        listed = ", ".join([*(i.brief for i in items[:_SHOWN]), rest])
        verb = "Added" if kind == "segment_added" else "Removed"
        where = "to" if kind == "segment_added" else "from"
        return [Change(kind=kind, text=f"{verb} {len(items)} segments {where} {name}: {listed}")]
    listed = "; ".join([*(i.brief for i in items[:_SHOWN]), rest])
    return [Change(kind=kind, text=f"{name}: {len(items)} segments {_VERBS[kind]}: {listed}")]


def _moves(name: str, items: list[_Item]) -> list[Change]:
    """Moves, those by one shared amount told once when there are many of them."""
    by_shift: dict[int, list[_Item]] = {}
    for item in items:
        by_shift.setdefault(item.shift, []).append(item)
    out: list[Change] = []
    single: list[_Item] = []
    for shift, group in by_shift.items():
        if len(group) <= _GROUP_OVER:
            single.extend(group)
            continue
        way = "later" if shift > 0 else "earlier"
        listed = ", ".join([*(i.label for i in group[:_SHOWN]), f"+{len(group) - _SHOWN} more"])
        text = f"{name}: {len(group)} segments moved {point(abs(shift))} {way}: {listed}"
        out.append(Change(kind="segment_moved", text=text))
    return out + _grouped(name, "segment_moved", single)


def _track_changes(old: Track, new: Track, old_name: str, name: str) -> list[Change]:
    out: list[Change] = []
    if (old.kind, old.type_code) != (new.kind, new.type_code):
        out.append(
            Change(
                kind="track_retyped", text=f"{name} track changed from {_type(old)} to {_type(new)}"
            )
        )
    if old.name != new.name:
        out.append(Change(kind="track_renamed", text=f"Renamed track {old_name} to {name}"))
    loud = _volume_text(name, old.volume, new.volume)
    if loud:
        out.append(Change(kind="volume_changed", text=loud))
    if old.unreadable != new.unreadable:
        out.append(
            Change(
                kind="setting_changed",
                text=f"{name} unreadable segment entries {old.unreadable} -> {new.unreadable}",
            )
        )
    setting = _setting_text(name, old.raw, new.raw, {*old.read, *new.read})
    if setting:
        out.append(Change(kind="setting_changed", text=setting))

    items: dict[ChangeKind, list[_Item]] = {kind: [] for kind in _ORDER}
    matched = pair(old.segments, new.segments, lambda s: s.id, _SEGMENT_KEYS)
    kept = {i for i in matched if i is not None}
    for segment in old.segments:
        if segment.index not in kept:
            items["segment_removed"].append(
                _Item("segment_removed", segment_entry(old, segment, _LIMIT))
            )
    for segment, i in zip(new.segments, matched, strict=True):
        if i is None:
            items["segment_added"].append(
                _Item("segment_added", segment_entry(new, segment, _LIMIT))
            )
        else:
            for item in _segment_items(new, old.segments[i], segment):
                items[item.kind].append(item)
    for kind in _ORDER:
        if kind == "segment_moved":
            out.extend(_moves(name, items[kind]))
        elif items[kind]:
            out.extend(_grouped(name, kind, items[kind]))
    return out


def _moved(sequence: Sequence[int]) -> set[int]:
    """Positions in `sequence` (distinct numbers) outside a longest increasing run of it: the
    items that moved rather than shifted as others came or went. Among the longest runs, one
    keeping the most items at their own rank, so a swap of two never moves a third."""
    count = len(sequence)
    ranks = {value: rank for rank, value in enumerate(sorted(sequence))}
    # Fenwick tree over ranks holding the best (weight, position) of a run ending below them.
    tree: list[tuple[int, int]] = [(0, -1)] * (count + 1)
    parent = [-1] * count
    best = (0, -1)
    for k, value in enumerate(sequence):
        rank = ranks[value]
        found, r = (0, -1), rank
        while r > 0:
            found = max(found, tree[r])
            r -= r & -r
        # Length counts first (count + 1 per item), staying at one's rank breaks ties.
        total = (found[0] + count + 1 + (rank == k), k)
        parent[k] = found[1]
        best = max(best, total)
        r = rank + 1
        while r <= count:
            tree[r] = max(tree[r], total)
            r += r & -r
    keep: set[int] = set()
    k = best[1]
    while k >= 0:
        keep.add(k)
        k = parent[k]
    return set(range(count)) - keep


def _type(track: Track) -> str:
    if track.kind != "other":
        return track.kind
    return "unknown type" if track.type_code is None else f"type {track.type_code}"


def _names(draft: Draft) -> list[str]:
    """Track names for a change report, numbered where two tracks share one."""
    counts = Counter(track.label for track in draft.tracks)
    return [
        track.label if counts[track.label] == 1 else f"{track.label} (track {track.index + 1})"
        for track in draft.tracks
    ]


def diff(before: Draft, after: Draft) -> list[Change]:
    """Every difference from `before` to `after`, in reading order: removed tracks, then each
    track of `after` in turn, then the total duration, then the draft's own settings."""
    out: list[Change] = []
    old_names, new_names = _names(before), _names(after)
    matched = pair(before.tracks, after.tracks, lambda t: t.id, _TRACK_KEYS)
    kept = {i for i in matched if i is not None}
    for track, name in zip(before.tracks, old_names, strict=True):
        if track.index not in kept:
            out.append(Change(kind="track_removed", text=f"Removed {track_entry(track, name)}"))
    order = [i for i in matched if i is not None]
    moved = {order[k] for k in _moved(order)}
    for track, name, i in zip(after.tracks, new_names, matched, strict=True):
        if i is None:
            out.append(Change(kind="track_added", text=f"Added {track_entry(track, name)}"))
        else:
            if i in moved:
                out.append(
                    Change(
                        kind="track_moved",
                        text=f"Moved track {name} to position {track.index + 1} (was {i + 1})",
                    )
                )
            out.extend(_track_changes(before.tracks[i], track, old_names[i], name))
    if before.duration_ms != after.duration_ms:
        out.append(
            Change(
                kind="duration_changed",
                text=f"Total duration {point(before.duration_ms)} -> {point(after.duration_ms)}",
            )
        )
    if before.problem != after.problem:
        text = f"Timeline {after.problem}" if after.problem else "Timeline readable again"
        out.append(Change(kind="setting_changed", text=text))
    if before.unreadable != after.unreadable:
        out.append(
            Change(
                kind="setting_changed",
                text=f"Timeline unreadable track entries {before.unreadable} -> {after.unreadable}",
            )
        )
    setting = _setting_text("Timeline", before.raw, after.raw, {*before.read, *after.read})
    if setting:
        out.append(Change(kind="setting_changed", text=setting))
    return out
