"""The draft reader and the timeline's text and structured forms, one rule per case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nemo_mcp.timeline import TimelineView, describe, parse_draft, summarize, view

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
VECTOR_SUMMARY = (
    "Timeline (3 tracks): 1. Video: city timelapse (0-10s) 2. BGM: Lo-fi (0-10s, 35%) "
    '3. Title: "Urban Dreams" (0-3s)'
)


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


def track(tt: object, name: str | None, *segments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"tt": tt, "sg": list(segments), **extra}
    if name is not None:
        item["m"] = {"name": name}
    return item


def one(*tracks: dict[str, Any], **extra: Any) -> str:
    return summarize(parse_draft({"t": list(tracks), **extra}))


def test_the_documented_vector() -> None:
    assert summarize(parse_draft(VECTOR)) == VECTOR_SUMMARY


def test_the_vector_read_from_json_text_and_bytes() -> None:
    assert summarize(parse_draft(json.dumps(VECTOR))) == VECTOR_SUMMARY
    assert summarize(parse_draft(json.dumps(VECTOR).encode())) == VECTOR_SUMMARY


def test_the_vector_model() -> None:
    draft = parse_draft(VECTOR)
    assert draft.ready and draft.duration_ms == 10000 and draft.declared_ms == 10000
    assert [t.kind for t in draft.tracks] == ["video", "audio", "text"]
    assert [t.type_code for t in draft.tracks] == [0, 1, 7]
    lofi = draft.tracks[1].segments[0]
    assert (lofi.start_ms, lofi.duration_ms, lofi.end_ms, lofi.label, lofi.volume) == (
        0,
        10000,
        10000,
        "Lo-fi",
        0.35,
    )
    title = draft.tracks[2].segments[0]
    assert (title.label, title.text) == ("Urban Dreams", "Urban Dreams")


# Segment start: s, then st, then start, then the end of the previous segment.
@pytest.mark.parametrize(
    ("segments", "starts"),
    [
        ([{"s": 5, "st": 6, "start": 7, "d": 1}], [5]),
        ([{"st": 6, "start": 7, "d": 1}], [6]),
        ([{"start": 7, "d": 1}], [7]),
        ([{"s": "bad", "st": 6, "d": 1}], [6]),
        ([{"d": 1000}], [0]),
        ([{"s": 100, "d": 1000}, {"d": 500}, {"d": 500}], [100, 1100, 1600]),
        ([{"s": 100}, {"d": 500}], [100, 100]),
        ([{"s": 2000, "d": 1000}, {"s": 0, "d": 1000}], [0, 2000]),
    ],
    ids=[
        "s",
        "st",
        "start",
        "first-usable",
        "first-at-zero",
        "after-previous",
        "after-unknown-length",
        "time-order",
    ],
)
def test_segment_start(segments: list[dict[str, Any]], starts: list[int]) -> None:
    draft = parse_draft({"t": [{"tt": 0, "sg": segments}]})
    assert [s.start_ms for s in draft.tracks[0].segments] == starts


# Length: d, then duration, then e / end minus the start.
@pytest.mark.parametrize(
    ("segment", "length"),
    [
        ({"s": 0, "d": 1000, "duration": 5}, 1000),
        ({"s": 0, "duration": 2000}, 2000),
        ({"s": 1000, "e": 4000}, 3000),
        ({"s": 1000, "end": "4500"}, 3500),
        ({"s": 5000, "end": 4000}, None),
        ({"s": 0}, None),
        ({"s": 0, "d": 1.4}, 1),
        ({"s": 0, "d": 1.6}, 2),
    ],
    ids=["d", "duration", "e", "end", "end-before-start", "none", "round-down", "round-up"],
)
def test_segment_length(segment: dict[str, Any], length: int | None) -> None:
    found = parse_draft({"t": [{"tt": 0, "sg": [segment]}]}).tracks[0].segments[0]
    assert found.duration_ms == length


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        (1500, 1500),
        (1500.4, 1500),
        ("1500", 1500),
        (" 2.5e3 ", 2500),
        ("1_000", None),
        ("ten", None),
        (True, None),
        (float("nan"), None),
        (float("inf"), None),
        (-5, None),
        (10**13, None),
        (10**400, None),
        ([1], None),
        (None, None),
    ],
    ids=[
        "int",
        "float",
        "string",
        "exponent",
        "underscores",
        "word",
        "bool",
        "nan",
        "inf",
        "negative",
        "too-long",
        "huge-int",
        "list",
        "null",
    ],
)
def test_numbers_where_times_belong(value: object, ms: int | None) -> None:
    draft = parse_draft({"t": [{"tt": 0, "sg": [{"s": 0, "d": value}]}]})
    assert draft.tracks[0].segments[0].duration_ms == ms


@pytest.mark.parametrize(
    ("meta", "top", "label"),
    [
        ({"name": "n", "title": "t", "text": "x", "prompt": "p"}, {}, "n"),
        ({"title": "t", "text": "x", "prompt": "p"}, {}, "t"),
        ({"text": "x", "prompt": "p"}, {}, "x"),
        ({"prompt": "p"}, {}, "p"),
        ({"name": "  ", "title": "t"}, {}, "t"),
        ({"name": {"x": 1}, "title": "t"}, {}, "t"),
        ({"name": 42}, {}, "42"),
        ({"name": "two\n  lines\tand tabs"}, {}, "two lines and tabs"),
        ({}, {"name": "top"}, "top"),
        ({"title": "meta"}, {"name": "top"}, "meta"),
        ({}, {}, None),
    ],
    ids=[
        "name",
        "title",
        "text",
        "prompt",
        "blank-skipped",
        "object-skipped",
        "number",
        "whitespace",
        "item-level",
        "meta-first",
        "none",
    ],
)
def test_segment_label(meta: dict[str, Any], top: dict[str, Any], label: str | None) -> None:
    raw = {"s": 0, "d": 1, "m": meta, **top}
    assert parse_draft({"t": [{"tt": 0, "sg": [raw]}]}).tracks[0].segments[0].label == label


@pytest.mark.parametrize(
    ("value", "fraction"),
    [
        (0.35, 0.35),
        (35, 0.35),
        ("35", 0.35),
        ("35%", 0.35),
        (" 0.5 % ", 0.005),
        ("0.35", 0.35),
        (1, 1.0),
        (0, 0.0),
        (150, 1.5),
        (-0.2, None),
        (2000, None),
        (True, None),
        ("loud", None),
    ],
    ids=[
        "fraction",
        "percent",
        "percent-string",
        "percent-sign",
        "explicit-small-percent",
        "fraction-string",
        "one-is-full",
        "zero",
        "boost",
        "negative",
        "absurd",
        "bool",
        "word",
    ],
)
def test_volume(value: object, fraction: float | None) -> None:
    raw = {"s": 0, "d": 1, "m": {"volume": value}}
    found = parse_draft({"t": [{"tt": 1, "sg": [raw]}]}).tracks[0].segments[0].volume
    assert found == pytest.approx(fraction) if fraction is not None else found is None


@pytest.mark.parametrize(
    ("tt", "kind", "code", "label"),
    [
        (0, "video", 0, "Video"),
        (1, "audio", 1, "Audio"),
        (7, "text", 7, "Text"),
        ("1", "audio", 1, "Audio"),
        (7.0, "text", 7, "Text"),
        ("Video", "video", None, "Video"),
        (5, "other", 5, "Track"),
        (None, "other", None, "Track"),
        (True, "other", None, "Track"),
        (2**40, "other", None, "Track"),
    ],
    ids=[
        "video",
        "audio",
        "text",
        "string-code",
        "float-code",
        "word",
        "unknown",
        "missing",
        "bool",
        "absurd",
    ],
)
def test_track_types(tt: object, kind: str, code: int | None, label: str) -> None:
    found = parse_draft({"t": [{"tt": tt, "sg": []}]}).tracks[0]
    assert (found.kind, found.type_code, found.label) == (kind, code, label)


@pytest.mark.parametrize(
    ("raw", "track_id", "segment_id"),
    [
        ({"id": "a", "m": {"id": "b"}, "sg": [{"id": "x", "m": {"id": "y"}}]}, "a", "x"),
        ({"m": {"id": "b"}, "sg": [{"m": {"id": "y"}}]}, "b", "y"),
        ({"id": 7, "sg": [{"id": 8}]}, "7", "8"),
        ({"id": " ", "sg": [{"id": True}]}, None, None),
        ({"sg": {"k1": {"d": 5}}}, None, "k1"),
    ],
    ids=["item-first", "meta", "numbers", "blank-and-bool", "object-keys"],
)
def test_ids(raw: dict[str, Any], track_id: str | None, segment_id: str | None) -> None:
    found = parse_draft({"t": [raw]}).tracks[0]
    assert (found.id, found.segments[0].id) == (track_id, segment_id)


def test_tracks_given_as_an_object_use_keys_as_ids() -> None:
    draft = parse_draft({"t": {"v1": {"tt": 0, "sg": [{"d": 1000}]}, "a1": {"tt": 1, "id": "own"}}})
    assert [t.id for t in draft.tracks] == ["v1", "own"]


@pytest.mark.parametrize(
    ("raw", "duration", "ready"),
    [
        ({"t": [track(0, None, seg(0, 4000))], "d": 9000}, 9000, True),
        ({"t": [track(0, None, seg(0, 4000))], "d": "9000"}, 9000, True),
        ({"t": [track(0, None, seg(0, 4000), seg(1000, 6000))], "d": 0}, 7000, True),
        ({"t": [track(0, None, seg(0, 4000))], "d": "soon"}, 4000, True),
        ({"t": [track(0, None, seg(2500))]}, 2500, True),
        ({"t": [track(0, None)], "d": 0}, 0, False),
        ({"t": [{"tt": 0, "sg": [None, 3]}]}, 0, False),
        ({"t": []}, 0, False),
        ({}, 0, False),
    ],
    ids=[
        "declared",
        "declared-string",
        "zero-means-latest-end",
        "invalid-means-latest-end",
        "unknown-length-counts-start",
        "empty-track",
        "unreadable-segments",
        "no-tracks",
        "{}",
    ],
)
def test_total_duration_and_readiness(raw: dict[str, Any], duration: int, ready: bool) -> None:
    draft = parse_draft(raw)
    assert (draft.duration_ms, draft.ready) == (duration, ready)


# The one-line summary, rule by rule.
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "Timeline (0 tracks): no tracks yet"),
        ({}, "Timeline (0 tracks): no tracks yet"),
        ("", "Timeline (0 tracks): no tracks yet"),
        ({"t": None}, "Timeline (0 tracks): no tracks yet"),
        ([1, 2], "Timeline (0 tracks): unreadable draft: a list, not an object"),
        (42, "Timeline (0 tracks): unreadable draft: a number, not an object"),
        (True, "Timeline (0 tracks): unreadable draft: a boolean, not an object"),
        ("{nope", "Timeline (0 tracks): unreadable draft: text that is not JSON"),
        ('"text"', "Timeline (0 tracks): unreadable draft: a string, not an object"),
        ({"t": "x"}, "Timeline (0 tracks): unreadable tracks: t is a string, not a list"),
        ({"t": [None, 3]}, "Timeline (0 tracks): no tracks yet (2 unreadable entries skipped)"),
        ({"t": [track(0, None, seg(0, 1000))]}, "Timeline (1 track): 1. Video: segment 1 (0-1s)"),
    ],
    ids=[
        "none",
        "empty",
        "empty-text",
        "null-tracks",
        "list",
        "number",
        "bool",
        "bad-json",
        "json-string",
        "tracks-wrong-type",
        "junk-tracks",
        "singular",
    ],
)
def test_summary_of_empty_and_odd_drafts(raw: object, expected: str) -> None:
    assert summarize(parse_draft(raw)) == expected


@pytest.mark.parametrize(
    ("tracks", "expected"),
    [
        (
            [
                track(0, None, seg(0, 1000, name="a")),
                track(1, None, seg(0, 1000, name="b")),
                track(7, None, seg(0, 1000, text="c")),
                track(9, None, seg(0, 1000, name="d")),
            ],
            '1. Video: a (0-1s) 2. Audio: b (0-1s) 3. Text: "c" (0-1s) 4. Track: d (0-1s)',
        ),
        (
            [track(0, "Video", seg(0, 5000, name="a"), seg(5000, 5000, name="b"))],
            "1. Video: a (0-5s), b (5-10s)",
        ),
        (
            [track(0, "V", seg(0, 1500, name="a"), seg(1500, 250, name="b"))],
            "1. V: a (0-1.5s), b (1.5-1.75s)",
        ),
        ([track(0, "V", seg(1, 1, name="a"))], "1. V: a (0.001-0.002s)"),
        ([track(0, "V", seg(50_000, 15_000, name="a"))], "1. V: a (0:50-1:05)"),
        ([track(0, "V", seg(60_000, 5_500, name="a"))], "1. V: a (1:00-1:05.5)"),
        ([track(0, "V", seg(0, 3_605_000, name="a"))], "1. V: a (0:00:00-1:00:05)"),
        ([track(0, "V", seg(5000, None, name="a"))], "1. V: a (from 5s)"),
        ([track(0, "V", seg(65_000, None, name="a"))], "1. V: a (from 1:05)"),
        (
            [track(0, "V", seg(0, 1000), seg(1000, 1000))],
            "1. V: segment 1 (0-1s), segment 2 (1-2s)",
        ),
        ([track(7, "T", seg(0, 1000, name="Intro"))], "1. T: Intro (0-1s)"),
        ([track(7, "T", seg(0, 1000, name="Intro", text="Hello"))], '1. T: "Hello" (0-1s)'),
        ([track(0, "V", seg(0, 1000, name="a", volume=80))], "1. V: a (0-1s, 80%)"),
        (
            [track(1, None, seg(0, 1000, name="a"), m={"name": "M", "volume": 0.5})],
            "1. M: a (0-1s, 50%)",
        ),
        ([track(1, "M", seg(0, 1000, name="a", volume=0.3333))], "1. M: a (0-1s, 33.33%)"),
        ([track(1, "M")], "1. M: empty"),
        ([track(0, "V", seg(0, 1000, name="x" * 60))], f"1. V: {'x' * 39}… (0-1s)"),
        (
            [{"tt": 0, "m": {"name": "V"}, "sg": [seg(0, 1000, name="a"), None, "junk"]}],
            "1. V: a (0-1s) (2 unreadable entries skipped)",
        ),
        ([{"tt": 0, "m": {"name": "V"}, "sg": "junk"}], "1. V: empty (1 unreadable entry skipped)"),
    ],
    ids=[
        "type-labels",
        "several",
        "fractions",
        "milliseconds",
        "past-a-minute",
        "fraction-past-a-minute",
        "past-an-hour",
        "unknown-length",
        "unknown-length-minutes",
        "no-labels",
        "text-track-name",
        "text-track-quotes-text",
        "volume-on-video",
        "track-volume",
        "volume-decimals",
        "empty-track",
        "long-label",
        "junk-segments",
        "segments-wrong-type",
    ],
)
def test_summary_rules(tracks: list[dict[str, Any]], expected: str) -> None:
    head = f"Timeline ({len(tracks)} track{'s' if len(tracks) != 1 else ''}):"
    assert one(*tracks) == f"{head} {expected}"


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (5, "1. V: c0 (0-1s), c1 (1-2s), c2 (2-3s), c3 (3-4s), c4 (4-5s)"),
        (6, "1. V: c0 (0-1s), c1 (1-2s), c2 (2-3s), +3 more (to 6s)"),
        (75, "1. V: c0 (0-1s), c1 (1-2s), c2 (2-3s), +72 more (to 1:15)"),
    ],
    ids=["five-in-full", "six-collapse", "dozens"],
)
def test_summary_collapses_many_segments(count: int, expected: str) -> None:
    segments = [seg(i * 1000, 1000, name=f"c{i}") for i in range(count)]
    assert one(track(0, "V", *segments)) == f"Timeline (1 track): {expected}"


def test_summary_collapses_many_segments_of_unknown_end() -> None:
    segments = [seg(i * 1000, None, name=f"c{i}") for i in range(8)]
    assert one(track(0, "V", *segments)).endswith("c2 (from 2s), +5 more (to 7s)")


@pytest.mark.parametrize(
    ("count", "tail"), [(12, "12. Video: empty"), (13, "10. Video: empty +3 more tracks")]
)
def test_summary_collapses_many_tracks(count: int, tail: str) -> None:
    text = one(*[track(0, None) for _ in range(count)])
    assert text.startswith(f"Timeline ({count} tracks): 1. Video: empty 2. Video: empty")
    assert text.endswith(tail)


def test_summary_stays_on_one_line_with_line_breaks_in_labels() -> None:
    text = one(track(7, "T\u2028x", seg(0, 1, text="a\nb\r\nc\x1cd")))
    assert text.splitlines() == [text]
    assert text == 'Timeline (1 track): 1. T x: "a b c d" (0-0.001s)'


def test_summary_ignores_the_order_of_sg() -> None:
    a, b = seg(0, 1000, name="a"), seg(1000, 1000, name="b")
    assert one(track(0, "V", a, b)) == one(track(0, "V", b, a))


def test_describe_the_vector() -> None:
    assert describe(parse_draft(VECTOR)) == "\n".join(
        [
            'Timeline "Urban Dreams": 3 tracks, 10s long, ready for export',  # its Title track
            "1. Video (video, 1 segment): city timelapse (0-10s)",
            "2. BGM (audio, 1 segment): Lo-fi (0-10s, 35%)",
            '3. Title (text, 1 segment): "Urban Dreams" (0-3s)',
        ]
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ["Timeline: no tracks yet, 0s long, not ready for export (no segments yet)"]),
        ([1], ["Timeline: unreadable draft: a list, not an object; not ready for export"]),
        (
            {
                "m": {"title": "Trip"},
                "t": [
                    {"tt": 5, "id": "t1", "m": {"volume": 40}, "sg": [seg(0, 2000), None]},
                    {"sg": []},
                    7,
                ],
            },
            [
                'Timeline "Trip": 2 tracks, 2s long, ready for export',
                "1. Track (type 5, volume 40%, 1 segment, 1 unreadable entry): "
                "segment 1 (0-2s, 40%)",
                "2. Track (unknown type, no segments)",
                "1 unreadable track entry skipped",
            ],
        ),
    ],
    ids=["none", "not-an-object", "facts"],
)
def test_describe_rules(raw: object, expected: list[str]) -> None:
    assert describe(parse_draft(raw)).split("\n") == expected


def test_describe_lists_thirty_segments_then_counts() -> None:
    segments = [seg(i * 1000, 1000, name=f"c{i}") for i in range(40)]
    line = describe(parse_draft({"t": [track(0, "V", *segments)]})).split("\n")[1]
    assert line.startswith("1. V (video, 40 segments): c0 (0-1s), c1 (1-2s)")
    assert line.endswith("c28 (28-29s), c29 (29-30s), +10 more (to 40s)")


def test_view_of_the_vector() -> None:
    shown = view(parse_draft(VECTOR))
    assert shown.summary == VECTOR_SUMMARY
    assert (shown.track_count, shown.duration_seconds, shown.ready_for_export) == (3, 10.0, True)
    bgm = shown.tracks[1]
    assert (bgm.index, bgm.kind, bgm.type_code, bgm.name, bgm.label, bgm.end) == (
        2,
        "audio",
        1,
        "BGM",
        "BGM",
        10.0,
    )
    lofi = bgm.segments[0]
    assert (lofi.index, lofi.label, lofi.start, lofi.end, lofi.duration, lofi.volume) == (
        1,
        "Lo-fi",
        0.0,
        10.0,
        10.0,
        0.35,
    )
    assert shown.tracks[2].segments[0].text == "Urban Dreams"


def test_view_keeps_every_segment_and_round_trips_as_json() -> None:
    segments = [seg(i * 1500, None if i % 2 else 1500, name=f"c{i}") for i in range(100)]
    shown = view(parse_draft({"t": [track(0, "V", *segments)], "m": {"title": "T"}}))
    assert len(shown.tracks[0].segments) == 100
    assert shown.tracks[0].segments[1].end is None and shown.tracks[0].segments[2].start == 3.0
    assert TimelineView.model_validate_json(shown.model_dump_json()) == shown
    assert shown.title == "T"


def test_view_of_an_unreadable_draft() -> None:
    shown = view(parse_draft("[]"))
    assert (shown.track_count, shown.tracks, shown.ready_for_export) == (0, [], False)
    assert shown.problem == "unreadable draft: a list, not an object"
    assert view(parse_draft({"t": [None, {"sg": [1]}]})).unreadable_entries == 2


@pytest.mark.parametrize(
    ("tracks", "meta", "title"),
    [
        # The on-screen title (a text track named Title) is the current title: a retitle
        # changes it, while the project's `m.title` keeps the first one.
        (
            [track(7, "Title", seg(0, 3000, text="City of Tomorrow"))],
            {"title": "Old"},
            "City of Tomorrow",
        ),
        (
            [track("text", "title", seg(0, 3000, text=" Two  words "))],
            {"title": "Old"},
            "Two words",
        ),
        # Its earliest segment with text, whatever the order in `sg`.
        (
            [track(7, "Title", seg(4000, 1000, text="Later"), seg(0, 3000, text="First"))],
            {"title": "Old"},
            "First",
        ),
        # Captions, other tracks named Title, or an empty title track leave `m.title`.
        ([track(7, "Captions", seg(0, 3000, text="A line"))], {"title": "Old"}, "Old"),
        ([track(0, "Title", seg(0, 3000, name="clip"))], {"title": "Old"}, "Old"),
        ([track(7, "Title", seg(0, 3000, text="  "))], {"title": "Old"}, "Old"),
        ([track(7, "Title")], {"name": "Named"}, "Named"),
        ([], {}, None),
    ],
)
def test_the_title_is_the_one_on_screen(
    tracks: list[dict[str, Any]], meta: dict[str, Any], title: str | None
) -> None:
    draft = parse_draft({"t": tracks, "m": meta})
    assert draft.title == title
    if title is not None:
        assert describe(draft).startswith(f'Timeline "{title}"')
