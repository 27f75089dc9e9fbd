"""Hand-off to an editor: `export` with format otio, fcpxml or xml writes a folder with the
timeline file, its media and a README, renders nothing and spends nothing.

The plan (draft -> frames) is checked rule by rule; the formats are checked by reading each
written file back with OpenTimelineIO through the same adapters; the whole path runs through
the SDK's `Client` against the sandbox, for the draft of each of the five demo faces.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import opentimelineio as otio
import pytest

from nemo_mcp import demo
from nemo_mcp.backend.models import RenderStatus
from nemo_mcp.backend.render import download
from nemo_mcp.errors import RenderError
from nemo_mcp.handoff import FORMATS, missing_sentence
from nemo_mcp.handoff.folder import ADAPTERS, timeline_text
from nemo_mcp.handoff.media import checked_media
from nemo_mcp.handoff.plan import Clip, Lane, Mark, frame_rate, plan, to_frames
from nemo_mcp.handoff.timeline import NAMESPACE, build, not_carried
from nemo_mcp.ledger import Entry
from nemo_mcp.media import probe
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.server.studio import newest_export
from nemo_mcp.server.tools.export import handoff_waiting
from nemo_mcp.timeline import parse_draft

from fakes import API, FakeBackend, make_client
from mcp_harness import connect, make_settings, text_of
from media_files import image, sample_mp4, truncated

FPS = 30


def seg(start: int, length: int | None, **meta: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"s": start, "m": meta}
    if length is not None:
        raw["d"] = length
    return raw


def draft(*tracks: tuple[int, str, list[dict[str, Any]]], **meta: Any) -> dict[str, Any]:
    return {
        "t": [{"tt": tt, "m": {"name": name}, "sg": sg} for tt, name, sg in tracks],
        "m": {"title": "Test", **meta},
    }


# the plan: pure rules ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ms", "fps", "frames"),
    [(0, 30, 0), (1000, 30, 30), (3333, 30, 100), (3350, 30, 100), (1000, 24, 24), (41, 24, 1)],
)
def test_times_become_the_nearest_frame(ms: int, fps: float, frames: int) -> None:
    assert to_frames(ms, fps) == frames


@pytest.mark.parametrize(
    ("meta", "fps"),
    [({}, 30.0), ({"fps": 24}, 24.0), ({"frame_rate": "25"}, 25.0), ({"fps": 0}, 30.0),
     ({"fps": "lots"}, 30.0), ({"fps": 1e9}, 30.0), ({"fps": 29.97}, 29.97)],
)  # fmt: skip
def test_the_frame_rate_is_the_drafts_else_30(meta: dict[str, Any], fps: float) -> None:
    assert frame_rate(parse_draft(draft((0, "Video", []), **meta))) == fps


@pytest.mark.parametrize(
    ("segments", "lanes"),
    [
        # Clips that meet stay meeting: ends are rounded on their own, never summed.
        (
            [seg(0, 1010, url="http://h/a.mp4"), seg(1010, 1010, url="http://h/b.mp4")],
            [[(0, 30), (30, 31)]],
        ),
        # A hole in the draft is a gap before the next clip.
        ([seg(0, 1000, url="http://h/a.mp4"), seg(2000, 500)], [[(0, 30), (60, 15)]]),
        # Overlapping clips go onto a second track of the same kind.
        (
            [seg(0, 2000, url="http://h/a.mp4"), seg(1000, 2000, url="http://h/b.mp4")],
            [[(0, 60)], [(30, 60)]],
        ),
        # A clip with no length runs to the next one.
        ([seg(0, None, url="http://h/a.mp4"), seg(1500, 500)], [[(0, 45), (45, 15)]]),
    ],
)
def test_video_clips_keep_their_frames(
    segments: list[dict[str, Any]], lanes: list[list[tuple[int, int]]]
) -> None:
    planned = plan(parse_draft(draft((0, "Video", segments))))
    assert [[(c.start, c.duration) for c in lane.clips] for lane in planned.lanes] == lanes
    assert [lane.kind for lane in planned.lanes] == ["video"] * len(lanes)


@pytest.mark.parametrize(
    ("track_volume", "segment_volume", "volume"),
    [(None, None, None), (0.5, None, 0.5), (0.5, 35, 0.35), (None, "80%", 0.8)],
)
def test_volume_is_the_segments_else_the_tracks(
    track_volume: Any, segment_volume: Any, volume: float | None
) -> None:
    meta: dict[str, Any] = {"name": "Lo-fi"}
    if segment_volume is not None:
        meta["volume"] = segment_volume
    raw = draft((1, "BGM", [seg(0, 3000, **meta)]))
    if track_volume is not None:
        raw["t"][0]["m"]["volume"] = track_volume
    [lane] = plan(parse_draft(raw)).lanes
    assert lane.kind == "audio" and lane.clips[0].volume == volume


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (draft((0, "Video", [seg(0, 1000, name="city")])), '"city" on Video has no media link'),
        (draft((1, "BGM", [seg(0, 1000, name="Jazz")])), "its clip is there without media"),
        (draft((0, "Video", [seg(0, 10, url="http://h/a.mp4")])), "shorter than one frame"),
        (draft((5, "Stickers", [seg(0, 1000)])), "Stickers (track type 5)"),
        (draft((0, "Video", [seg(0, 1000, url="ftp://h/a.mp4")])), "no media link"),
        (draft((7, "Title", [seg(0, 1000)])), "Title segment 1 has no text"),
    ],
)
def test_what_cannot_be_carried_is_said(raw: dict[str, Any], said: str) -> None:
    notes = not_carried(plan(parse_draft(raw)), "otio")
    assert any(said in note for note in notes), notes


def test_titles_and_captions_become_marks_at_their_frames() -> None:
    raw = draft(
        (0, "Video", [seg(0, 9000, url="http://h/a.mp4")]),
        (7, "Title", [seg(0, 3000, text="Hello")]),
        (7, "Captions", [seg(3000, 3000, text="One"), seg(6000, 3000, text="Two")]),
    )
    planned = plan(parse_draft(raw))
    assert planned.marks == (
        Mark("Hello", 0, 90, "Title"),
        Mark("One", 90, 90, "Captions"),
        Mark("Two", 180, 90, "Captions"),
    )
    assert planned.duration == 270 and planned.urls == ["http://h/a.mp4"]


# the formats: written through the adapters, read back through them ----------------------
SAMPLE = plan(
    parse_draft(
        draft(
            (0, "Video", [seg(0, 4000, name="a", url="http://h/a.mp4"),
                          seg(4000, 3500, name="kid's bike", url="http://h/b.png"),
                          seg(9000, 3000, name="a again", url="http://h/a.mp4")]),
            (1, "BGM", [seg(0, 12000, name="Lo-fi", url="http://h/m.mp3", volume=0.35)]),
            (7, "Title", [seg(0, 3000, text="Hello")]),
            (7, "Captions", [seg(3000, 4500, text="One"), seg(7500, 1500, text="Two")]),
        )
    )
)  # fmt: skip
SAMPLE_MEDIA = {"http://h/a.mp4": "media/a.mp4", "http://h/b.png": "media/b.png",
                "http://h/m.mp3": "media/m.mp3"}  # fmt: skip


def read_back(text: str, fmt: str) -> otio.schema.Timeline:
    found = otio.adapters.read_from_string(text, adapter_name=ADAPTERS[fmt][0])  # type: ignore[index]
    assert isinstance(found, otio.schema.Timeline)
    return found


def clips_of(timeline: otio.schema.Timeline, kind: str) -> list[list[tuple[Any, ...]]]:
    """Each track of `kind`: its clips as (start, duration, in point, media, name)."""
    lanes = []
    for track in timeline.tracks:
        if track.kind != kind:
            continue
        clips = []
        for item in track:
            if isinstance(item, otio.schema.Clip):
                where = track.range_of_child(item)
                ref = item.media_reference
                clips.append(
                    (
                        where.start_time.to_frames(),
                        where.duration.to_frames(),
                        item.source_range.start_time.to_frames(),
                        ref.target_url if isinstance(ref, otio.schema.ExternalReference) else None,
                    )
                )
        if clips:
            lanes.append(clips)
    return lanes


def marks_of(timeline: otio.schema.Timeline, fmt: str) -> list[tuple[str, int, int]]:
    """Titles and captions as (text, start, duration) on the timeline."""
    if fmt != "fcpxml":
        found = [(m.name, m.marked_range) for m in timeline.tracks.markers]
    else:  # markers on the clips under them, in each clip's own time
        found = []
        for track in timeline.tracks:
            for item in track:
                at = track.range_of_child(item).start_time - item.trimmed_range().start_time
                found += [
                    (m.name, otio.opentime.TimeRange(m.marked_range.start_time + at,
                                                     m.marked_range.duration))
                    for m in item.markers
                ]  # fmt: skip
    marks = [(name, r.start_time.to_frames(), r.duration.to_frames()) for name, r in found]
    # The FCPXML reader gives a connected clip's marker twice: on that clip, and on the main
    # line's clip holding it (it reads every marker nested in a clip); the file holds one.
    return sorted(set(marks) if fmt == "fcpxml" else marks)


def volumes_of(timeline: otio.schema.Timeline, fmt: str) -> list[float | None]:
    """Each audio clip's volume as the format keeps it."""
    found: list[float | None] = []
    for track in timeline.tracks:
        if track.kind != otio.schema.TrackKind.Audio:
            continue
        for item in track:
            if not isinstance(item, otio.schema.Clip):
                continue
            if fmt == "otio":
                found.append(item.metadata.get(NAMESPACE, {}).get("volume"))
            elif fmt == "xml":
                effect = item.metadata.get("fcp_xml", {}).get("filter", {}).get("effect", {})
                level = effect.get("parameter", {}).get("value")
                found.append(float(level) if level is not None else None)
            else:
                found.append(None)
    return found


def expected_clips(planned: Any, kind: str, media: dict[str, str]) -> list[list[tuple[Any, ...]]]:
    return [
        [(c.start, c.duration, 0, media.get(c.url or "")) for c in lane.clips]
        for lane in planned.lanes
        if lane.kind == kind
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_back_to_the_frame(fmt: str) -> None:
    timeline = build(SAMPLE, SAMPLE_MEDIA, fmt)  # type: ignore[arg-type]
    text = timeline_text(timeline, fmt)  # type: ignore[arg-type]
    back = read_back(text, fmt)
    for kind in ("Video", "Audio"):
        assert clips_of(back, kind) == expected_clips(SAMPLE, kind.lower(), SAMPLE_MEDIA)
    # "Two" starts over the video's gap: in FCPXML it is on the music under it (the reader
    # reads no marker on a gap), in the music's own time.
    assert marks_of(back, fmt) == [("Hello", 0, 90), ("One", 90, 135), ("Two", 225, 45)]
    if fmt == "fcpxml":
        assert '<marker start="15/2s" duration="3/2s" value="Two"/>' in text, text
    notes = not_carried(SAMPLE, fmt)  # type: ignore[arg-type]
    if fmt == "fcpxml":
        assert volumes_of(back, fmt) == [None]
        assert any('"Lo-fi" on BGM plays at 35%' in note for note in notes), notes
    else:
        assert volumes_of(back, fmt) == [pytest.approx(0.35)]
        assert not any("plays at" in note for note in notes)
    assert any("Flattened: the titles' and captions' style" in note for note in notes)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_clip_without_media_keeps_its_place(fmt: str) -> None:
    planned = plan(
        parse_draft(
            draft(
                (0, "Video", [seg(0, 1000, name="city"), seg(1000, 1000, url="http://h/a.mp4")]),
                (1, "BGM", [seg(0, 2000, name="Jazz", volume=0.5)]),
            )
        )
    )
    media = {"http://h/a.mp4": "media/a.mp4"}
    back = read_back(timeline_text(build(planned, media, fmt), fmt), fmt)  # type: ignore[arg-type]
    notes = not_carried(planned, fmt)  # type: ignore[arg-type]
    if fmt == "fcpxml":  # a gap where the clip was; no reference to a file that is not there
        assert clips_of(back, "Video") == [[(30, 30, 0, "media/a.mp4")]]
        assert clips_of(back, "Audio") == []
        assert sum("so a gap keeps its place" in n for n in notes) == 2, notes
    else:
        assert clips_of(back, "Video") == [[(0, 30, 0, None), (30, 30, 0, "media/a.mp4")]]
        assert clips_of(back, "Audio") == [[(0, 60, 0, None)]]
        assert sum("without media (offline)" in n for n in notes) == 2, notes


def test_a_title_where_no_clip_plays_stays_on_the_gap_and_is_said() -> None:
    planned = plan(
        parse_draft(
            draft(
                (0, "Video", [seg(0, 1000, url="http://h/a.mp4"), seg(2000, 1000, url="http://h/b.mp4")]),
                (7, "Captions", [seg(1000, 500, text="Between"), seg(2000, 500, text="On b")]),
            )
        )
    )  # fmt: skip
    media = {"http://h/a.mp4": "media/a.mp4", "http://h/b.mp4": "media/b.mp4"}
    text = timeline_text(build(planned, media, "fcpxml"), "fcpxml")
    # Final Cut Pro holds a marker on a gap; OpenTimelineIO's reader drops it, so it is said.
    assert '<marker start="3600s" duration="1/2s" value="Between"/>' in text, text
    assert marks_of(read_back(text, "fcpxml"), "fcpxml") == [("On b", 60, 15)]
    notes = not_carried(planned, "fcpxml")
    assert any('"Between" (Captions) starts where no clip plays' in n for n in notes), notes
    for fmt in ("otio", "xml"):  # timeline markers: nothing to say
        back = read_back(timeline_text(build(planned, media, fmt), fmt), fmt)  # type: ignore[arg-type]
        assert marks_of(back, fmt) == [("Between", 30, 15), ("On b", 60, 15)]
        assert not any("no clip plays" in n for n in not_carried(planned, fmt))  # type: ignore[arg-type]


def test_lanes_are_what_the_formats_write() -> None:
    assert SAMPLE.lanes[1] == Lane(
        "audio", "BGM", (Clip("Lo-fi", 0, 360, "http://h/m.mp3", 0.35, None),)
    )


def test_without_the_packages_the_answer_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "otio_fcp_adapter" else real(name, *a),
    )
    said = missing_sentence()
    assert said is not None and "otio-fcp-adapter" in said and "nemo-mcp[handoff]" in said
    assert said.count(".") <= 2 and "\n" not in said


# through the SDK's Client against the sandbox, for each demo face -----------------------
@asynccontextmanager
async def faced(tmp_path: Path, sandbox: Any, slug: str, **settings: Any) -> AsyncIterator[Any]:
    """A session on the sandbox whose project holds the draft of the face `slug` (made with
    the credits the demo's account starts with)."""
    sandbox.control.set(initial_credits=300)
    async with connect(make_settings(tmp_path, sandbox.url, **settings)) as session:
        await _face(session, demo.FACES[slug], tmp_path / "uploads")
        yield session


async def _face(session: Any, face: demo.Face, uploads: Path) -> None:
    """The face's own steps, as its demo takes them: uploads, the request, the edit."""
    for name in face.inputs:
        (uploads / name).write_bytes(demo.bundled(name))
    if face.uploads:
        sent = await session.call("upload", {"sources": [str(uploads / n) for n in face.uploads]})
        assert not sent.is_error, text_of(sent)
    request: dict[str, Any] = {"message": face.request}
    if face.script:
        request["script_file"] = str(uploads / face.script)
    for args in (request, {"message": face.edit}):
        made = await session.call("generate", args)
        assert not made.is_error, text_of(made)
        while made.structured_content["status"] in ("running", "queued"):
            made = await session.call("generate", args)
        assert made.structured_content["status"] == "completed", text_of(made)


def _frames(seconds: float) -> int:
    return round(seconds * FPS)


@pytest.mark.parametrize("slug", list(demo.FACES))
async def test_each_face_hands_off_in_each_format(slug: str, tmp_path: Path, sandbox: Any) -> None:
    async with faced(tmp_path, sandbox, slug) as session:
        shown = (await session.call("timeline")).structured_content
        before = sandbox.control.stats()
        handed = {fmt: await session.call("export", {"format": fmt}) for fmt in FORMATS}
        after = sandbox.control.stats()
    # Nothing rendered, nothing sent, nothing spent.
    assert after["renders_started"] == before["renders_started"]
    assert len(after["messages"]) == len(before["messages"])
    assert shown is not None
    tracks = shown["tracks"]
    for fmt, result in handed.items():
        assert not result.is_error, text_of(result)
        out = result.structured_content
        folder, file = Path(out["folder"]), Path(out["file"])
        assert folder.parent == tmp_path / "out" and file.parent == folder
        assert file.suffix == ADAPTERS[fmt][1] and out["render_id"] == ""  # type: ignore[index]
        back = otio.adapters.read_from_file(str(file), adapter_name=ADAPTERS[fmt][0])  # type: ignore[index]
        # Video and audio: tracks, clip count, positions and lengths to the frame, in points.
        # (FCPXML holds no clip without media: a gap keeps its place, and the answer says so.)
        offline = {note.split('"')[1] for note in out["not_carried"] if "has no media link" in note}
        want_audio: list[list[tuple[int, int, int]]] = []
        for kind in ("video", "audio"):
            want = [
                [(_frames(s["start"]), _frames(s["end"]) - _frames(s["start"]), 0)
                 for s in t["segments"] if fmt != "fcpxml" or s["label"] not in offline]
                for t in tracks
                if t["kind"] == kind and t["segments"]
            ]  # fmt: skip
            want = [lane for lane in want if lane]
            got = [[c[:3] for c in lane] for lane in clips_of(back, kind.title())]
            assert got == want, (fmt, kind)
            if kind == "audio":
                want_audio = want
            # Every media reference is relative and resolves to a file inside the folder.
            for lane in clips_of(back, kind.title()):
                for *_, url in lane:
                    if url is None:
                        continue
                    assert "://" not in url and not Path(url).is_absolute()
                    target = (folder / url).resolve()
                    assert target.is_file() and folder.resolve() in target.parents
        # The music is carried with its file (the sandbox links it, as it links clips): each
        # audio clip's reference resolves to a sound in the folder.
        music = [c for lane in clips_of(back, "Audio") for c in lane]
        assert music and len(music) == sum(len(lane) for lane in want_audio), (fmt, music)
        for *_, url in music:
            assert url is not None and probe(folder / url).kind == "audio", (fmt, url)
        # Titles and captions: their text over their frames.
        want_marks = sorted(
            (s["text"], _frames(s["start"]), _frames(s["end"]) - _frames(s["start"]))
            for t in tracks
            if t["kind"] == "text"
            for s in t["segments"]
        )
        assert marks_of(back, fmt) == want_marks
        # Volumes: carried where the format holds them, else said, in the answer and README.
        audio = [s.get("volume") for t in tracks if t["kind"] == "audio" for s in t["segments"]]
        readme = (folder / "README.md").read_text()
        if fmt == "fcpxml":
            for level in audio:
                if level is not None and level != 1:
                    said = f"plays at {round(level * 100, 2):g}%"
                    assert any(said in n for n in out["not_carried"]), out["not_carried"]
                    assert said in readme
        else:
            assert volumes_of(back, fmt) == [pytest.approx(v) if v else None for v in audio]
        for note in out["not_carried"]:
            assert note in readme and note in text_of(result)
        assert "## Open it" in readme
        # What an editor reads besides the adapter: in the XML itself, every file it names
        # is in the folder, and every reference it makes is to something it defines.
        if fmt != "otio":
            assert xml_files_resolve(file) >= {p.name for p in (folder / "media").iterdir()}


def xml_files_resolve(file: Path) -> set[str]:
    """The media an FCPXML (`asset src`) or Final Cut 7 XML (`pathurl`) file names, each
    checked to resolve inside its folder; and every `ref` checked to name an `id` there."""
    root = ElementTree.parse(file).getroot()
    ids = {e.get("id") for e in root.iter() if e.get("id")}
    assert all(e.get("ref") in ids for e in root.iter() if e.get("ref")), file
    named = [e.get("src") or "" for e in root.iter("asset")]
    named += [e.text or "" for e in root.iter("pathurl")]
    found = set()
    for name in named:
        target = (file.parent / name).resolve()
        assert "://" not in name and target.is_file(), name
        assert file.parent.resolve() in target.parents, name
        found.add(target.name)
    return found


def _fetched(sandbox: Any) -> int:
    """How many media files the sandbox has served."""
    return len([r for r in sandbox.control.requests() if r["route"] == "file"])


async def test_the_same_timeline_again_is_the_same_folder_unless_fresh(
    tmp_path: Path, sandbox: Any
) -> None:
    async with faced(tmp_path, sandbox, "image-to-video-by-prompt") as session:
        first = (await session.call("export", {"format": "fcpxml"})).structured_content
        fetched = _fetched(sandbox)
        again = await session.call("export", {"format": "fcpxml"})
        assert _fetched(sandbox) == fetched  # nothing downloaded again
        # A file changed by hand is not the one saved: a new folder is written.
        media = sorted((Path(first["folder"]) / "media").iterdir())
        media[0].write_bytes(media[0].read_bytes() + b"x")
        changed = (await session.call("export", {"format": "fcpxml"})).structured_content
        fresh = await session.call("export", {"format": "fcpxml", "fresh": True})
    assert again.structured_content["reused"]
    assert again.structured_content["folder"] == first["folder"]
    assert "Already handed off" in text_of(again)
    assert not changed["reused"] and changed["folder"] != first["folder"]
    assert fresh.structured_content["folder"] not in (first["folder"], changed["folder"])


async def test_a_hosted_server_without_a_shared_volume_hands_off_nothing(
    tmp_path: Path, sandbox: Any
) -> None:
    async with faced(tmp_path, sandbox, "ai-generator-generator", save_exports=False) as session:
        refused = await session.call("export", {"format": "xml"})
    assert refused.is_error
    assert "NEMO_OUTPUT_DIR to a shared volume" in text_of(refused)
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())


async def test_nothing_to_hand_off_says_so(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        refused = await session.call("export", {"format": "otio"})
    assert refused.is_error and "Nothing to hand off yet" in text_of(refused)


@pytest.mark.slow
def test_the_demo_hands_off_and_prints_the_folders(tmp_path: Path) -> None:
    from nemo_mcp.cli import build_parser
    from nemo_mcp.sandbox.config import SandboxConfig

    args = build_parser().parse_args(["demo", "--skill", "ai-video-generation-online", "--handoff"])
    assert args.handoff and args.skill == "ai-video-generation-online"
    quick = SandboxConfig(
        initial_credits=300, generation_seconds=0.4, edit_seconds=0.2, render_seconds=0.5
    )
    out = io.StringIO()
    code = demo.main(
        str(tmp_path), out, skill="ai-video-generation-online", config=quick, handoff=True
    )
    printed = out.getvalue()
    assert code == 0, printed
    assert "The hand-offs sent 0 messages and started 0 renders." in printed
    face = tmp_path / "ai-video-generation-online"
    for fmt in FORMATS:
        [line] = [x for x in printed.splitlines() if x.startswith(f"Handed off ({fmt}): ")]
        folder = Path(line.split(": ", 1)[1])
        assert folder.parent == face and f"  {folder}" in printed.split("Done:")[1]
        [timeline] = folder.glob("*" + ADAPTERS[fmt][1])  # type: ignore[index]
        assert otio.adapters.read_from_file(str(timeline), adapter_name=ADAPTERS[fmt][0])  # type: ignore[index]
        media = sorted(p.name for p in (folder / "media").iterdir())
        assert (folder / "README.md").is_file() and len(media) == 4, media  # 3 clips, music
        assert media[-1].endswith(".wav")


async def test_a_broken_download_is_continued_in_the_same_folder(
    tmp_path: Path, sandbox: Any
) -> None:
    async with faced(tmp_path, sandbox, "meta-video-generation-free") as session:
        sandbox.control.fault("download_cut", route="file", bytes=100)
        broken = await session.call("export", {"format": "otio"})
        fetched = _fetched(sandbox)
        again = await session.call("export", {"format": "otio"})
    assert broken.is_error and "Call `export` with format otio again" in text_of(broken)
    out = again.structured_content
    assert not again.is_error and out is not None
    # The folder the broken attempt made is the one finished; no other was made.
    assert Path(out["folder"]).name in text_of(broken)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [Path(out["folder"]).name]
    assert _fetched(sandbox) - fetched == 4  # the three photos and the music, each once
    *photos, music = sorted(p.name for p in (Path(out["folder"]) / "media").iterdir())
    assert photos == ["01-shoe-red.png", "02-shoe-blue.png", "03-shoe-green.png"]
    assert music.startswith("04-") and music.endswith(".wav")
    assert not list(Path(out["folder"]).rglob("*.part"))
    assert sandbox.control.stats()["renders_started"] == 0


# the media check and the download bound --------------------------------------------------
@pytest.mark.parametrize(
    ("name", "make", "saved_as"),
    [
        ("clip.mp4", lambda p: shutil.copy(sample_mp4(), p), "clip.mp4"),
        # An extension that disagrees with the bytes: named by what the bytes are.
        ("photo.mp4", lambda p: image(p.with_suffix(".png")).rename(p), "photo.png"),
        ("photo.png", lambda p: image(p), "photo.png"),
    ],
)
def test_a_download_is_kept_as_what_its_bytes_are(
    name: str, make: Any, saved_as: str, tmp_path: Path
) -> None:
    path = tmp_path / name
    make(path)
    assert checked_media(path) == tmp_path / saved_as and (tmp_path / saved_as).is_file()


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda p: p.write_bytes(b"<html>not found</html>" * 40), "not a picture"),
        (lambda p: truncated(sample_mp4(), p, keep=0.6), "damaged or incomplete"),
        (
            lambda p: truncated(image(p.with_name("whole.png")), p, keep=0.5),
            "damaged or incomplete",
        ),
    ],
)
def test_a_download_that_is_not_whole_media_is_removed(
    make: Any, said: str, tmp_path: Path
) -> None:
    path = tmp_path / "media.mp4"
    make(path)
    with pytest.raises(RenderError) as refused:
        checked_media(path)
    assert said in refused.value.message
    assert list(tmp_path.glob("media.*")) == []


async def test_a_media_download_over_its_bound_is_not_kept(tmp_path: Path) -> None:
    backend = FakeBackend()
    body = b"\x89PNG\r\n\x1a\n" + b"\0" * 5000
    backend.script.append(
        lambda r: (
            httpx.Response(200, content=body, headers={"content-type": "image/png"})
            if r.url.path == "/media/big.png"
            else None
        )
    )
    status = RenderStatus(id="media-1", status="completed", url=f"{API}/media/big.png")
    async with make_client(tmp_path, backend) as client:
        with pytest.raises(RenderError) as refused:
            await download(
                client, status, tmp_path / "m", stem="big", suffix=".png", fallback=False,
                max_bytes=1000,
            )  # fmt: skip
        assert "larger than 1,000 bytes" in refused.value.message
        assert backend.count("/media/big.png") == 1  # no fallback to a render's download link
        assert list((tmp_path / "m").iterdir()) == []
        saved = await download(
            client, status, tmp_path / "m", stem="big", suffix=".png", fallback=False,
            max_bytes=6000,
        )  # fmt: skip
    assert saved.size == len(body) and saved.path.read_bytes() == body


# what the other tools and the studio say -------------------------------------------------
async def test_the_timeline_says_the_handoff_is_there_once_ready(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(initial_credits=300)  # before the account is made
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        empty = text_of(await session.call("timeline"))
    async with faced(tmp_path, sandbox, "ai-generator-generator") as session:
        ready = text_of(await session.call("timeline"))
        tools = {t.name: t for t in (await session.client.list_tools()).tools}
    assert "format 'otio'" not in empty
    assert "`export` with format 'otio' (DaVinci Resolve)" in ready and "'xml' (Premiere" in ready
    assert "'fcpxml' (Final Cut Pro" in (tools["export"].description or "")


def _entry(seq: int, request: dict[str, Any], outcome: dict[str, Any]) -> Entry:
    return Entry(
        id=f"e{seq}", user="", seq=seq, kind="render", key=f"render|{request['format']}|high",
        session_id="s", state="done", request=request, created_at=seq, updated_at=seq,
        outcome=outcome,
    )  # fmt: skip


def test_the_studio_never_shows_a_handoff_as_the_video() -> None:
    video = _entry(
        1, {"format": "mp4"}, {"status": "completed", "render_id": "r1", "file": "v.mp4"}
    )
    handed = _entry(
        2,
        {"format": "fcpxml"},
        {"status": "completed", "render_id": "", "file": "t.fcpxml", "folder": "t-fcpxml"},
    )
    shown = newest_export([video, handed], [], "s", now=10.0)
    assert shown is not None and shown.render_id == "r1" and shown.file == "v.mp4"
    assert newest_export([handed], [], "s", now=10.0) is None


@pytest.mark.parametrize(
    ("status", "ahead", "said"),
    [
        ("queued", 1, "Queued: 1 earlier request runs first on this project, then the hand-off."),
        ("queued", 2, "Queued: 2 earlier requests run first"),
        ("rendering", 0, "Handing off: downloading media 2 of 3 (1s)."),
    ],
)
def test_a_handoff_under_way_says_so_not_rendering(status: str, ahead: int, said: str) -> None:
    out = ExportOutput(
        status=status, render_id="", ahead=ahead, progress="downloading media 2 of 3 (1s)"
    )  # type: ignore[arg-type]
    text = handoff_waiting(out, "xml")
    assert said in text and "Rendering" not in text
    assert text.endswith(
        "Call `export` with format xml again to wait for it (nothing is rendered)."
    )


# the sandbox's music: a file of its own, as its clips have ---------------------------------
async def test_the_sandboxs_music_is_a_sound_long_enough_for_its_draft(
    tmp_path: Path, sandbox: Any
) -> None:
    async with faced(tmp_path, sandbox, "ai-generator-generator") as session:
        shown = (await session.call("timeline")).structured_content
        handed = (await session.call("export", {"format": "otio"})).structured_content
    assert shown is not None and handed is not None
    [bgm] = [s for t in shown["tracks"] if t["kind"] == "audio" for s in t["segments"]]
    [path] = [r["path"] for r in sandbox.control.requests() if "/files/music/" in r["path"]]
    async with httpx.AsyncClient(base_url=sandbox.url) as http:
        got = await http.get(path)
        too_long = await http.get("/files/music/lo-fi-601s.wav")
        not_music = await http.get("/files/music/lo-fi-10s.mp3")
    assert got.status_code == 200 and got.headers["content-type"] == "audio/wav"
    [music] = (Path(handed["folder"]) / "media").glob("*.wav")
    assert music.read_bytes() == got.content
    heard = probe(music)
    assert heard.kind == "audio" and heard.duration is not None
    assert heard.duration >= bgm["end"] - bgm["start"]
    assert too_long.status_code == 404 and not_music.status_code == 404
