"""Change reports between two drafts: every kind, its exact wording, and how items are matched."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from nemo_mcp.timeline import Change, diff, parse_draft
from nemo_mcp.timeline.changes import pair

VECTOR: dict[str, Any] = {
    "t": [
        {
            "tt": 0,
            "m": {"name": "Video"},
            "sg": [{"s": 0, "d": 10000, "m": {"name": "city timelapse"}}],
        },
        {
            "tt": 1,
            "m": {"name": "BGM"},
            "sg": [{"s": 0, "d": 10000, "m": {"name": "Lo-fi", "volume": 0.35}}],
        },
        {
            "tt": 7,
            "m": {"name": "Title"},
            "sg": [{"s": 0, "d": 3000, "m": {"text": "Urban Dreams"}}],
        },
    ],
    "d": 10000,
}


def seg(start: object = None, length: object = None, **meta: object) -> dict[str, Any]:
    """A segment with `s` and `d` when given and `meta` as its `m`."""
    item: dict[str, Any] = {}
    if start is not None:
        item["s"] = start
    if length is not None:
        item["d"] = length
    if meta:
        item["m"] = meta
    return item


def track(tt: object, name: str | None, *segments: object, **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"tt": tt, "sg": list(segments), **extra}
    if name is not None:
        item["m"] = {"name": name}
    return item


Edit = Callable[[dict[str, Any]], None]


def changes(before: object, after: object) -> list[tuple[str, str]]:
    return [(c.kind, c.text) for c in diff(parse_draft(before), parse_draft(after))]


def edited(edit: Edit, base: dict[str, Any] = VECTOR) -> dict[str, Any]:
    draft = copy.deepcopy(base)
    edit(draft)
    return draft


def tracks(draft: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = draft["t"]
    return found


def first(draft: dict[str, Any], n: int) -> dict[str, Any]:
    """The first segment of track n."""
    found: dict[str, Any] = tracks(draft)[n]["sg"][0]
    return found


def _set(path: Callable[[dict[str, Any]], dict[str, Any]], key: str, value: object) -> Edit:
    def edit(draft: dict[str, Any]) -> None:
        path(draft)[key] = value

    return edit


def _drop_bgm(d: dict[str, Any]) -> None:
    del tracks(d)[1]


def _add_segment(d: dict[str, Any]) -> None:
    tracks(d)[0]["sg"].append(seg(10000, 5000, name="beach"))


def _trim_to_8(d: dict[str, Any]) -> None:
    first(d, 0)["d"] = 8000
    d["d"] = 8000


def _swap_tracks(d: dict[str, Any]) -> None:
    t = tracks(d)
    t[0], t[2] = t[2], t[0]


# The examples of the requirement, and one case per kind.
@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_drop_bgm, [("track_removed", "Removed BGM: Lo-fi (0-10s, 35%)")]),
        (lambda d: tracks(d).pop(), [("track_removed", 'Removed Title: "Urban Dreams" (0-3s)')]),
        (
            lambda d: tracks(d).append(track(1, "Voice", seg(0, 4000, name="Intro", volume=80))),
            [("track_added", "Added Voice: Intro (0-4s, 80%)")],
        ),
        (lambda d: tracks(d).append(track(1, None)), [("track_added", "Added Audio: empty")]),
        (
            _set(lambda d: tracks(d)[1]["m"], "name", "Music"),
            [("track_renamed", "Renamed track BGM to Music")],
        ),
        (
            _set(lambda d: first(d, 1)["m"], "volume", 0.6),
            [("volume_changed", "BGM: Lo-fi volume 35% -> 60%")],
        ),
        (_set(lambda d: first(d, 1)["m"], "volume", 35), []),
        (
            lambda d: first(d, 1)["m"].pop("volume"),
            [("volume_changed", "BGM: Lo-fi volume cleared (was 35%)")],
        ),
        (
            _set(lambda d: first(d, 0)["m"], "volume", 0.8),
            [("volume_changed", "Video: city timelapse volume set to 80%")],
        ),
        (
            _set(lambda d: tracks(d)[1]["m"], "volume", 0.5),
            [("volume_changed", "BGM volume set to 50%")],
        ),
        (
            _trim_to_8,
            [
                ("segment_trimmed", "Video: city timelapse trimmed to 0-8s (was 0-10s)"),
                ("duration_changed", "Total duration 10s -> 8s"),
            ],
        ),
        (
            _set(lambda d: first(d, 0), "s", 2000),
            [("segment_moved", "Video: city timelapse moved to 2-12s (was 0-10s)")],
        ),
        (
            _set(lambda d: first(d, 2), "d", 4500),
            [("segment_extended", 'Title: "Urban Dreams" extended to 0-4.5s (was 0-3s)')],
        ),
        (
            lambda d: first(d, 0).update(s=1000, d=9000),
            [("segment_trimmed", "Video: city timelapse trimmed to 1-10s (was 0-10s)")],
        ),
        (
            lambda d: first(d, 0).pop("d"),
            [("segment_retimed", "Video: city timelapse now at from 0s (was 0-10s)")],
        ),
        (
            _set(lambda d: first(d, 0)["m"], "name", "city night"),
            [("label_changed", "Video: city timelapse renamed to city night")],
        ),
        (
            _set(lambda d: first(d, 2)["m"], "text", "Night City"),
            [("text_changed", 'Title: text "Urban Dreams" -> "Night City"')],
        ),
        (
            _set(lambda d: first(d, 0)["m"], "text", "Hello"),
            [("text_changed", 'Video: city timelapse text (none) -> "Hello"')],
        ),
        (_add_segment, [("segment_added", "Added to Video: beach (10-15s)")]),
        (
            lambda d: tracks(d)[0]["sg"].clear(),
            [("segment_removed", "Removed from Video: city timelapse (0-10s)")],
        ),
        (_set(lambda d: d, "d", 12000), [("duration_changed", "Total duration 10s -> 12s")]),
        (
            _set(lambda d: first(d, 0)["m"], "speed", 2),
            [("setting_changed", "Video: city timelapse settings: speed set to 2")],
        ),
        (
            _set(lambda d: first(d, 0), "filter", {"warm": 1}),
            [("setting_changed", "Video: city timelapse settings: filter added")],
        ),
        (
            _set(lambda d: tracks(d)[1], "muted", False),
            [("setting_changed", "BGM settings: muted set to false")],
        ),
        (
            _set(lambda d: d, "m", {"width": 1920, "height": 1080}),
            [("setting_changed", "Timeline settings: width set to 1920, height set to 1080")],
        ),
        (
            _set(lambda d: first(d, 0), "id", "c1"),
            [("setting_changed", 'Video: city timelapse settings: id set to "c1"')],
        ),
        (
            _swap_tracks,
            [
                ("track_moved", "Moved track Title to position 1 (was 3)"),
                ("track_moved", "Moved track Video to position 3 (was 1)"),
            ],
        ),
        (_set(lambda d: first(d, 0), "s", "0"), []),
        (_set(lambda d: first(d, 0), "d", 10000.2), []),
    ],
    ids=[
        "track-removed",
        "text-track-removed",
        "track-added",
        "empty-track-added",
        "renamed",
        "volume",
        "volume-same-as-percent",
        "volume-cleared",
        "volume-set",
        "track-volume",
        "trimmed",
        "moved",
        "extended",
        "trimmed-from-start",
        "length-lost",
        "label",
        "text",
        "text-on-video",
        "segment-added",
        "segment-removed",
        "duration",
        "meta-setting",
        "object-setting",
        "track-setting",
        "draft-settings",
        "id-appears",
        "track-order",
        "same-number-as-string",
        "below-a-millisecond",
    ],
)
def test_each_change(edit: Edit, expected: list[tuple[str, str]]) -> None:
    assert changes(VECTOR, edited(edit)) == expected


def test_the_reverse_of_a_trim_is_an_extension() -> None:
    assert changes(edited(_trim_to_8), VECTOR) == [
        ("segment_extended", "Video: city timelapse extended to 0-10s (was 0-8s)"),
        ("duration_changed", "Total duration 8s -> 10s"),
    ]


def test_several_changes_read_in_track_order() -> None:
    def edit(d: dict[str, Any]) -> None:
        _drop_bgm(d)
        _trim_to_8(d)
        _set(lambda x: first(x, 1)["m"], "text", "Night")(d)
        tracks(d).insert(0, track(7, "Caption"))

    assert [text for _, text in changes(VECTOR, edited(edit))] == [
        "Removed BGM: Lo-fi (0-10s, 35%)",
        "Added Caption: empty",
        "Video: city timelapse trimmed to 0-8s (was 0-10s)",
        'Title: text "Urban Dreams" -> "Night"',
        "Total duration 10s -> 8s",
    ]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            None,
            VECTOR,
            [
                "Added Video: city timelapse (0-10s)",
                "Added BGM: Lo-fi (0-10s, 35%)",
                'Added Title: "Urban Dreams" (0-3s)',
                "Total duration 0s -> 10s",
            ],
        ),
        ({}, [1], ["Timeline unreadable draft: a list, not an object"]),
        ([1], {}, ["Timeline readable again"]),
        ({"t": []}, {"t": [None]}, ["Timeline unreadable track entries 0 -> 1"]),
        (
            {"t": [track(0, "V")]},
            {"t": [track(0, "V", None)]},
            ["V unreadable segment entries 0 -> 1"],
        ),
        (None, {"m": {"title": "Trip"}}, ['Timeline settings: title set to "Trip"']),
    ],
    ids=[
        "from-nothing",
        "becomes-unreadable",
        "readable-again",
        "junk-track",
        "junk-segment",
        "title",
    ],
)
def test_whole_draft_changes(before: object, after: object, expected: list[str]) -> None:
    assert [text for _, text in changes(before, after)] == expected


# Matching: ids, then names, then position; ids that differ never pair.
@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            [track(1, "A", id="x"), track(1, "B", id="y")],
            [track(1, "B2", id="y"), track(1, "A2", id="x")],
            [
                "Moved track B2 to position 1 (was 2)",
                "Renamed track B to B2",
                "Renamed track A to A2",
            ],
        ),
        (
            [track(1, "A", id="x")],
            [track(1, "A", id="z")],
            ["Removed A: empty", "Added A: empty"],
        ),
        ([track(1, "A", id="x")], [track(0, "A", id="x")], ["A track changed from audio to video"]),
        ([track(1, "A")], [track(0, "A")], ["Removed A: empty", "Added A: empty"]),
        (
            [track(1, "A"), track(1, "B")],
            [track(1, "B"), track(1, "A")],
            ["Moved track B to position 1 (was 2)"],
        ),
        (
            [track(1, None), track(1, "B")],
            [track(1, "B"), track(1, "C")],
            ["Moved track B to position 1 (was 2)", "Renamed track Audio to C"],
        ),
        (
            [track(1, "A", id="x")],
            [track(1, "A2")],
            ["Renamed track A to A2", 'A2 settings: id removed (was "x")'],
        ),
        (
            [track(0, None), track(0, None, seg(0, 1))],
            [track(0, None), track(0, None, seg(0, 2))],
            [
                "Video (track 2): segment 1 extended to 0-0.002s (was 0-0.001s)",
                "Total duration 0.001s -> 0.002s",
            ],
        ),
        ([track(5, "X")], [track(6, "X")], ["Removed X: empty", "Added X: empty"]),
    ],
    ids=[
        "by-id-across-order",
        "differing-ids",
        "retyped-by-id",
        "type-change-without-id",
        "by-name",
        "by-position-within-type",
        "id-dropped",
        "shared-names-numbered",
        "unknown-types-by-code",
    ],
)
def test_track_matching(before: list[Any], after: list[Any], expected: list[str]) -> None:
    assert [text for _, text in changes({"t": before}, {"t": after})] == expected


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        (
            [seg(0, 1000, name="a", id="1"), seg(1000, 1000, name="b", id="2")],
            [seg(0, 1000, name="b", id="2"), seg(1000, 1000, name="a", id="1")],
            ["V: b moved to 0-1s (was 1-2s)", "V: a moved to 1-2s (was 0-1s)"],
        ),
        (
            [seg(0, 1000, name="a"), seg(1000, 1000, name="b")],
            [seg(0, 1000, name="b"), seg(1000, 1000, name="a")],
            ["V: b moved to 0-1s (was 1-2s)", "V: a moved to 1-2s (was 0-1s)"],
        ),
        (
            [seg(0, 1000, name="a"), seg(0, 1000, name="a"), seg(1000, 1000, name="a")],
            [seg(0, 1000, name="a"), seg(1000, 1000, name="a")],
            ["Removed from V: a (0-1s)"],
        ),
        (
            [seg(0, 1000, name="a"), seg(1000, 1000, name="b")],
            [seg(0, 1000, name="a"), seg(1000, 1000, name="c")],
            ["V: b renamed to c"],
        ),
        (
            [seg(0, 1000), seg(1000, 1000), seg(2000, 1000)],
            [seg(0, 1000), seg(2000, 1000)],
            ["Removed from V: segment 2 (1-2s)"],
        ),
        (
            [seg(0, 1000, name="a", id="1")],
            [seg(0, 1000, name="a", id="2")],
            ["Removed from V: a (0-1s)", "Added to V: a (0-1s)"],
        ),
    ],
    ids=[
        "by-id",
        "by-label",
        "duplicates-by-timing",
        "by-timing",
        "unnamed-by-timing",
        "differing-ids",
    ],
)
def test_segment_matching(before: list[Any], after: list[Any], expected: list[str]) -> None:
    assert [
        text for _, text in changes({"t": [track(0, "V", *before)]}, {"t": [track(0, "V", *after)]})
    ] == expected


def test_pair_prefers_ids_and_keeps_order() -> None:
    before = [("x", "a"), (None, "a"), (None, "b")]
    after = [(None, "a"), ("x", "q"), (None, "a"), ("y", "b")]
    matched = pair(before, after, lambda item: item[0], [lambda item: item[1]])
    assert matched == [1, 0, None, 2]


def test_many_segments_added_are_told_once() -> None:
    after = [seg(i * 1000, 1000, name=f"c{i}") for i in range(40)]
    assert changes({"t": [track(0, "V")]}, {"t": [track(0, "V", *after)]}) == [
        ("segment_added", "Added 40 segments to V: c0 (0-1s), c1 (1-2s), c2 (2-3s), +37 more"),
        ("duration_changed", "Total duration 0s -> 40s"),
    ]


def test_many_segments_removed_are_told_once() -> None:
    before = [seg(i * 1000, 1000, name=f"c{i}") for i in range(6)]
    assert changes({"t": [track(0, "V", *before)]}, {"t": [track(0, "V")]}) == [
        ("segment_removed", "Removed 6 segments from V: c0 (0-1s), c1 (1-2s), c2 (2-3s), +3 more"),
        ("duration_changed", "Total duration 6s -> 0s"),
    ]


def test_five_changes_of_a_kind_are_told_one_by_one() -> None:
    before = [seg(i * 1000, 1000, name=f"c{i}") for i in range(5)]
    after = [seg(i * 1000, 500, name=f"c{i}") for i in range(5)]
    found = changes(
        {"t": [track(0, "V", *before)], "d": 5000}, {"t": [track(0, "V", *after)], "d": 5000}
    )
    assert [kind for kind, _ in found] == ["segment_trimmed"] * 5
    assert found[4][1] == "V: c4 trimmed to 4-4.5s (was 4-5s)"


def test_segments_shifted_alike_are_told_once() -> None:
    names = [f"c{i}" for i in range(10)]
    before = [seg(i * 1000, 1000, name=n) for i, n in enumerate(names)]
    after = [seg(0, 2000, name="intro")] + [
        seg(i * 1000 + 2000, 1000, name=n) for i, n in enumerate(names)
    ]
    assert changes({"t": [track(0, "V", *before)]}, {"t": [track(0, "V", *after)]}) == [
        ("segment_added", "Added to V: intro (0-2s)"),
        ("segment_moved", "V: 10 segments moved 2s later: c0, c1, c2, +7 more"),
        ("duration_changed", "Total duration 10s -> 12s"),
    ]


def test_many_volume_changes_are_told_once() -> None:
    before = [seg(i * 1000, 1000, name=f"c{i}", volume=0.5) for i in range(8)]
    after = [seg(i * 1000, 1000, name=f"c{i}", volume=0.25) for i in range(8)]
    assert changes({"t": [track(1, "M", *before)]}, {"t": [track(1, "M", *after)]}) == [
        (
            "volume_changed",
            "M: 8 segments changed volume: c0 volume 50% -> 25%; "
            "c1 volume 50% -> 25%; c2 volume 50% -> 25%; +5 more",
        ),
    ]


def test_many_settings_are_capped() -> None:
    after = {"t": [], "m": {f"k{i}": i for i in range(8)}}
    [(kind, text)] = changes({"t": []}, after)
    assert (kind, text) == (
        "setting_changed",
        "Timeline settings: k0 set to 0, k1 set to 1, "
        "k2 set to 2, k3 set to 3, k4 set to 4, +3 more",
    )


def test_settings_show_values_briefly() -> None:
    before = {"t": [], "m": {"style": "warm", "fx": [1], "n": 10**5000, "m2": "x"}}
    after = {
        "t": [],
        "m": {"style": "a\nvery long style name that goes on and on", "fx": [2], "n": 1},
    }
    [(_, text)] = changes(before, after)
    assert text == (
        'Timeline settings: style "warm" -> '
        '"a\\nvery long style name that goes on and…", '
        'fx changed, n changed, m2 removed (was "x")'
    )


def test_nan_equals_nan_in_settings() -> None:
    before = {"t": [], "m": {"gain": float("nan"), "curve": [float("nan")]}}
    after = json.loads(json.dumps(before))
    assert changes(before, after) == []


def test_identical_drafts_have_no_changes() -> None:
    assert diff(parse_draft(VECTOR), parse_draft(copy.deepcopy(VECTOR))) == []
    assert changes(None, {}) == []


def test_change_is_a_frozen_model() -> None:
    change = Change(kind="duration_changed", text="Total duration 1s -> 2s")
    assert change.model_dump() == {"kind": "duration_changed", "text": "Total duration 1s -> 2s"}
    with pytest.raises(ValueError):
        Change(kind="nonsense", text="x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ([0, 1, 2], []),
        ([2, 0, 1], ["Moved track C to position 1 (was 3)"]),
        ([1, 2, 0], ["Moved track A to position 3 (was 1)"]),
        ([2, 1, 0], ["Moved track C to position 1 (was 3)", "Moved track A to position 3 (was 1)"]),
        ([1, 0, 2], ["Moved track B to position 1 (was 2)"]),
    ],
    ids=["same", "last-to-front", "first-to-back", "swap-ends-keeps-middle", "swap-neighbours"],
)
def test_track_moves_are_the_fewest_that_explain_the_order(
    order: list[int], expected: list[str]
) -> None:
    names = [track(1, name) for name in "ABC"]
    assert [text for _, text in changes({"t": names}, {"t": [names[i] for i in order]})] == expected


def test_tracks_shifted_by_an_insert_have_not_moved() -> None:
    names = [track(1, name) for name in "ABC"]
    assert [text for _, text in changes({"t": names}, {"t": [track(7, "New"), *names]})] == [
        "Added New: empty",
    ]
