"""Properties of the timeline: nothing raises, summaries stay one line, and every kind of change
made to a draft is reported, worded, and alone."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nemo_mcp.timeline import Change, describe, diff, parse_draft, summarize, view
from nemo_mcp.timeline.wording import percent, span

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(-(10**500), 10**500)
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["0", "1500", " 2.5 ", "35%", "1e400", "nan", "-3", "\n"])
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


def odd(likely: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly `likely`, sometimes any JSON value at all."""
    return st.one_of(likely, likely, json_values)


numbers = st.integers(0, 10**6) | st.floats(0, 10**6) | st.integers(0, 10**6).map(str)
meta = st.dictionaries(
    st.sampled_from(["name", "title", "text", "prompt", "volume", "id", "speed"]),
    odd(st.text(max_size=6) | numbers),
    max_size=4,
)
segments = st.dictionaries(
    st.sampled_from(["s", "st", "start", "d", "duration", "e", "end", "id", "m", "fx"]),
    odd(numbers | meta),
    max_size=5,
)
tracks = st.fixed_dictionaries(
    {},
    optional={
        "tt": odd(st.sampled_from([0, 1, 7, 5, "1", "audio"])),
        "m": odd(meta),
        "id": odd(st.text(max_size=2)),
        "sg": odd(
            st.lists(odd(segments), max_size=6)
            | st.dictionaries(st.text(max_size=2), segments, max_size=3)
        ),
    },
)
drafts_like = st.fixed_dictionaries(
    {},
    optional={"t": odd(st.lists(odd(tracks), max_size=5)), "d": odd(numbers), "m": odd(meta)},
)
anything = st.one_of(json_values, drafts_like, drafts_like.map(json.dumps))


@SETTINGS
@given(anything, anything)
def test_nothing_raises_and_the_summary_is_one_line(a: object, b: object) -> None:
    before, after = parse_draft(a), parse_draft(b)
    for draft in (before, after):
        line = summarize(draft)
        assert line.startswith("Timeline (") and line.splitlines() == [line]
        assert describe(draft).startswith("Timeline")
        shown = view(draft)
        assert shown.summary == line and shown.ready_for_export == draft.ready
        assert draft.ready == any(track.segments for track in draft.tracks)
        assert draft.duration_ms >= 0
        assert json.loads(shown.model_dump_json())["track_count"] == len(draft.tracks)
    assert all(isinstance(change, Change) and change.text for change in diff(before, after))


@SETTINGS
@given(anything)
def test_a_draft_has_no_changes_from_itself_or_its_copy(value: object) -> None:
    draft = parse_draft(value)
    assert diff(draft, draft) == []
    copied = json.loads(json.dumps(value)) if not isinstance(value, str) else value
    assert diff(draft, parse_draft(copied)) == []


def _mutate(value: Any, data: st.DataObject) -> Any:
    """A copy of a JSON value with one thing inside it replaced, added or deleted."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        changed = dict(value)
        choice = data.draw(st.sampled_from(["deeper", "replace", "delete"]))
        if choice == "delete":
            del changed[key]
        elif choice == "replace":
            changed[key] = data.draw(odd(numbers | meta))
        else:
            changed[key] = _mutate(value[key], data)
        return changed
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        changed_list = list(value)
        choice = data.draw(st.sampled_from(["deeper", "delete", "insert"]))
        if choice == "delete":
            del changed_list[index]
        elif choice == "insert":
            changed_list.insert(index, data.draw(odd(segments | tracks)))
        else:
            changed_list[index] = _mutate(value[index], data)
        return changed_list
    return data.draw(odd(numbers | segments | st.lists(tracks, max_size=2)))


@SETTINGS
@given(drafts_like, st.data())
def test_whatever_the_timeline_shows_differently_is_reported(
    value: Any, data: st.DataObject
) -> None:
    changed = _mutate(value, data)
    before, after = parse_draft(value), parse_draft(changed)
    shown_differently = (
        summarize(before) != summarize(after)
        or describe(before) != describe(after)
        or view(before) != view(after)
    )
    if shown_differently:
        assert diff(before, after), (summarize(before), summarize(after))


# Known edits on well-formed timelines: each is reported, worded, and alone.


@st.composite
def timelines(draw: st.DrawFn) -> dict[str, Any]:
    """Well-formed drafts with unique track names and segment labels, ids or not."""
    names = draw(
        st.lists(st.text("abcxyz", min_size=1, max_size=5), min_size=1, max_size=4, unique=True)
    )
    ids = draw(st.booleans())
    found = []
    for k, name in enumerate(names):
        tt = draw(st.sampled_from([0, 1, 7]))
        items = []
        for i in range(draw(st.integers(0, 5))):
            m: dict[str, Any] = {"name": f"s{k}.{i}"}
            if tt == 7:
                m["text"] = f"words {k}.{i}"
            if tt == 1 and draw(st.booleans()):
                m["volume"] = draw(st.integers(0, 100)) / 100
            item = {"s": draw(st.integers(0, 10**6)), "d": draw(st.integers(1, 10**5)), "m": m}
            if ids:
                item["id"] = f"seg{k}.{i}"
            items.append(item)
        entry: dict[str, Any] = {"tt": tt, "m": {"name": name}, "sg": items}
        if ids:
            entry["id"] = f"track{k}"
        found.append(entry)
    draft: dict[str, Any] = {"t": found}
    if draw(st.booleans()):
        draft["d"] = draw(st.integers(1, 10**7))
    return draft


def shown(track: dict[str, Any], item: dict[str, Any]) -> str:
    """How the report names a segment of these timelines."""
    m = item["m"]
    return f'"{m["text"]}"' if track["tt"] == 7 else str(m["name"])


def report(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    return [
        c for c in diff(parse_draft(before), parse_draft(after)) if c.kind != "duration_changed"
    ]


def pick_segment(
    draft: dict[str, Any], data: st.DataObject
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    full = [t for t in draft["t"] if t["sg"]]
    if not full:
        return None
    track = data.draw(st.sampled_from(full))
    return track, data.draw(st.sampled_from(track["sg"]))


Edit = Callable[[dict[str, Any], st.DataObject], "tuple[str, str] | None"]


def add_track(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str]:
    draft["t"].append(
        {"tt": 1, "m": {"name": "Fresh"}, "sg": [{"s": 0, "d": 1500, "m": {"name": "New"}}]}
    )
    return "track_added", "Added Fresh: New (0-1.5s)"


def remove_track(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str]:
    index = data.draw(st.integers(0, len(draft["t"]) - 1))
    gone = draft["t"].pop(index)
    return "track_removed", f"Removed {gone['m']['name']}:"


def rename_track(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str]:
    track = data.draw(st.sampled_from(draft["t"]))
    old, track["m"]["name"] = track["m"]["name"], "Renamed"
    return "track_renamed", f"Renamed track {old} to Renamed"


def move_track(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
    if len(draft["t"]) < 2:
        return None
    moved = draft["t"].pop()
    draft["t"].insert(0, moved)
    return "track_moved", f"Moved track {moved['m']['name']} to position 1 (was {len(draft['t'])})"


def add_segment(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str]:
    track = data.draw(st.sampled_from(draft["t"]))
    track["sg"].append({"s": 2_000_000, "d": 500, "m": {"name": "Extra", "text": "Extra"}})
    return "segment_added", f"Added to {track['m']['name']}: {shown(track, track['sg'][-1])} ("


def remove_segment(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
    found = pick_segment(draft, data)
    if found is None:
        return None
    track, item = found
    track["sg"].remove(item)
    return "segment_removed", f"Removed from {track['m']['name']}: {shown(track, item)} ("


def retime(kind: str, verb: str, start: int, length: int) -> Edit:
    def edit(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
        found = pick_segment(draft, data)
        if found is None or item_too_short(found[1], length):
            return None
        track, item = found
        was = span(item["s"], item["s"] + item["d"])
        item["s"] += start
        item["d"] += length
        now = span(item["s"], item["s"] + item["d"])
        return kind, f"{track['m']['name']}: {shown(track, item)} {verb} {now} (was {was})"

    return edit


def item_too_short(item: dict[str, Any], length: int) -> bool:
    length_now: int = item["d"]
    return length_now + length < 0


def change_volume(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
    found = pick_segment(draft, data)
    if found is None:
        return None
    track, item = found
    old = item["m"].get("volume")
    item["m"]["volume"] = 0.123
    label = f"{track['m']['name']}: {shown(track, item)} volume"
    if old is None:
        return "volume_changed", f"{label} set to 12.3%"
    return "volume_changed", f"{label} {percent(old)} -> 12.3%"


def change_text(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
    found = pick_segment(draft, data)
    if found is None:
        return None
    track, item = found
    old = item["m"].get("text")
    item["m"]["text"] = "Brand new"
    was = f'"{old}"' if old else "(none)"
    subject = f"{item['m']['name']} "  # named segments are named, even on text tracks
    return "text_changed", f'{track["m"]["name"]}: {subject}text {was} -> "Brand new"'


def change_label(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
    found = pick_segment(draft, data)
    if found is None:
        return None
    track, item = found
    old, item["m"]["name"] = item["m"]["name"], "Relabelled"
    return "label_changed", f"{track['m']['name']}: {old} renamed to Relabelled"


def change_duration(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str]:
    draft["d"] = 10**8
    return "duration_changed", "Total duration "


def change_setting(draft: dict[str, Any], data: st.DataObject) -> tuple[str, str] | None:
    found = pick_segment(draft, data)
    if found is None:
        return None
    track, item = found
    item["m"]["speed"] = 2
    return "setting_changed", f"{track['m']['name']}: {shown(track, item)} settings: speed set to 2"


EDITS: dict[str, Edit] = {
    "add_track": add_track,
    "remove_track": remove_track,
    "rename_track": rename_track,
    "move_track": move_track,
    "add_segment": add_segment,
    "remove_segment": remove_segment,
    "move_segment": retime("segment_moved", "moved to", 250, 0),
    "trim_segment": retime("segment_trimmed", "trimmed to", 0, -1),
    "extend_segment": retime("segment_extended", "extended to", 0, 1500),
    "change_volume": change_volume,
    "change_text": change_text,
    "change_label": change_label,
    "change_duration": change_duration,
    "change_setting": change_setting,
}


@SETTINGS
@given(timelines(), st.sampled_from(sorted(EDITS)), st.data())
def test_each_kind_of_change_is_reported_alone(
    draft: dict[str, Any], name: str, data: st.DataObject
) -> None:
    changed = copy.deepcopy(draft)
    expected = EDITS[name](changed, data)
    if expected is None:
        return
    kind, text = expected
    found = diff(parse_draft(draft), parse_draft(changed))
    if kind == "duration_changed":
        assert [c.kind for c in found] == ["duration_changed"]
        assert found[0].text.startswith(text)
        return
    others = [c for c in found if c.kind != "duration_changed"]
    assert [c.kind for c in others] == [kind], [c.text for c in found]
    assert others[0].text.startswith(text), (others[0].text, text)
    assert diff(parse_draft(changed), parse_draft(draft)), "and the way back is reported too"
