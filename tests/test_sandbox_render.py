"""The sandbox renders the real draft: what a draft becomes (pure), the file a render serves
(length, pictures where the timeline says, sound when there is music), uploads kept for it,
and the status never saying `completed` before the file exists."""

from __future__ import annotations

import array
import io
import time
import unicodedata
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from nemo_mcp.media.compose import Caption, Card, Composition, Footage, Shot, Still
from nemo_mcp.media.pictures import font
from nemo_mcp.sandbox import rendering, scripted_agent
from nemo_mcp.sandbox.app import create_app
from nemo_mcp.sandbox.composition import Upload, composition_of
from nemo_mcp.sandbox.config import SandboxConfig
from nemo_mcp.sandbox.files import SandboxFiles
from nemo_mcp.sandbox.testing import SandboxServer
from nemo_mcp.sandbox.world import Render, World
from nemo_mcp.timeline.model import Segment

from media_files import difference, frames_at, mean_colour, video
from sandbox_client import SKILL, Backend, generate, poll

FOREST = "a misty pine forest at dawn"
SEA = "waves breaking on a rocky shore"


def two_clips(music: float | None = 0.5, title: str = "Hello Title") -> dict[str, Any]:
    """4 s: two generated clips of 2 s, a title over the first second, music throughout."""
    tracks: list[dict[str, Any]] = [
        {
            "tt": 0,
            "sg": [
                {"s": 0, "d": 2000, "m": {"name": "forest", "prompt": FOREST}},
                {"s": 2000, "d": 2000, "m": {"name": "sea", "prompt": SEA}},
            ],
        },
        {"tt": 7, "sg": [{"s": 0, "d": 1000, "m": {"text": title}}]},
    ]
    if music is not None:
        tracks.append(
            {"tt": 1, "sg": [{"s": 0, "d": 4000, "m": {"name": "Calm Ambient", "volume": music}}]}
        )
    return {"t": tracks, "d": 4000, "m": {"title": "Two clips"}}


def rendered(backend: Backend, sid: str, draft: dict[str, Any], path: Path) -> Path:
    """Render `draft`, wait for it the way clients do, and save the served file."""
    render_id = f"render_{time.time_ns()}"
    assert backend.render(sid, draft, render_id).json()["code"] == 0

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = backend.http.get(f"/api/render/proxy/lambda/{render_id}").json()
        if body["status"] == "completed":
            # Completed means the file is there: the first fetch gets it.
            served = httpx.get(body["output"]["url"])
            assert served.status_code == 200 and len(served.content) == body["output"]["size"]
            path.write_bytes(served.content)
            return body
        assert body["status"] in ("pending", "processing")
        return None

    poll(finished, 60)
    return path


def sound_level(path: Path, start: float, end: float) -> float:
    """Root mean square of the samples between two times (0: silence)."""
    total, count = 0.0, 0
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            if frame.time is None or not start <= frame.time < end:
                continue
            floats = array.array("f", bytes(frame.planes[0])[: 4 * frame.samples])
            total += sum(v * v for v in floats)
            count += len(floats)
    return (total / count) ** 0.5 if count else 0.0


@pytest.fixture
def quick(sandbox: SandboxServer) -> SandboxServer:
    sandbox.control.set(render_seconds=0)
    return sandbox


# what a draft becomes (pure) ------------------------------------------------------------------
def no_uploads(segment: Segment) -> Upload | None:
    return None


def test_a_draft_becomes_shots_captions_and_tones() -> None:
    made = composition_of(two_clips(), no_uploads)
    assert (made.duration_ms, made.width, made.height, made.fps) == (4000, 640, 360, 24)
    assert [(s.start_ms, s.duration_ms) for s in made.shots] == [(0, 2000), (2000, 2000)]
    first, second = (s.visual for s in made.shots)
    assert isinstance(first, Card) and isinstance(second, Card)
    assert (first.text, second.text) == (FOREST, SEA) and first.colour != second.colour
    assert made.captions == (Caption(0, 1000, "Hello Title"),)
    (tone,) = made.tones
    assert (tone.start_ms, tone.duration_ms, tone.volume) == (0, 4000, 0.5)


@pytest.mark.parametrize(
    ("draft", "check"),
    [
        # Track volume when the segment has none; 35 (a percentage) reads as 0.35.
        (
            {"t": [{"tt": 1, "m": {"volume": 35}, "sg": [{"s": 0, "d": 1000}]}], "d": 1000},
            lambda c: c.tones[0].volume == 0.35,
        ),
        # A segment of unknown length runs to the end of the draft.
        (
            {"t": [{"tt": 7, "sg": [{"s": 500, "text": "Hi"}]}], "d": 3000},
            lambda c: c.captions == (Caption(500, 2500, "Hi"),),
        ),
        # No prompt: the label shows; later video tracks lie on top.
        (
            {
                "t": [
                    {"tt": 0, "sg": [{"d": 1000, "m": {"name": "beach"}}]},
                    {"tt": "video", "sg": [{"d": 500, "name": "logo"}]},
                ]
            },
            lambda c: [(s.visual.text, s.layer) for s in c.shots] == [("beach", 0), ("logo", 1)],
        ),
        # No `d`: the latest end; segments past it are cut.
        (
            {"t": [{"tt": 0, "sg": {"a": {"s": 0, "d": 1500}}}]},
            lambda c: c.duration_ms == 1500 and c.shots[0].duration_ms == 1500,
        ),
        # Other track types draw nothing.
        (
            {"t": [{"tt": 5, "sg": [{"s": 0, "d": 1000}]}], "d": 1000},
            lambda c: (c.shots, c.captions, c.tones) == ((), (), ()),
        ),
    ],
)
def test_draft_reading_rules(draft: dict[str, Any], check: Any) -> None:
    assert check(composition_of(draft, no_uploads))


def test_a_script_shows_each_line_once() -> None:
    """A scene made from a script line is captioned with that line: its card shows no words
    (the line is on screen once, as the caption); a clip whose words no caption shows keeps them."""
    story = scripted_agent.Story("Launch", ("Meet the lamp.", "It glows.", "Order today."))
    scenes = scripted_agent.story_scenes(story, None)
    clips = [
        (scripted_agent.label_of(line), f"https://cdn.test/{n}.mp4", ms, {"prompt": line})
        for n, (line, ms) in enumerate(zip(story.lines, scenes, strict=True))
    ]
    raw = scripted_agent.raw_draft("Launch", clips)
    draft = scripted_agent.with_captions(raw, story.lines, scripted_agent.captions_from(raw["d"]))
    made = composition_of(draft, no_uploads)
    cards = [s.visual.text for s in made.shots if isinstance(s.visual, Card)]
    shown = cards + [c.text for c in made.captions]
    assert len(cards) == 3 and all(shown.count(line) == 1 for line in story.lines), shown
    assert len({s.visual.colour for s in made.shots if isinstance(s.visual, Card)}) == 3
    # Without those captions the scenes show their lines again.
    alone = composition_of(raw, no_uploads)
    assert [s.visual.text for s in alone.shots] == list(story.lines)


def _glyph(letter: str) -> bytes:
    """How `letter` draws in the renderer's font: its mask's size and pixels."""
    mask = font(48).getmask(letter)
    return repr(mask.size).encode() + bytes(mask)


@pytest.mark.parametrize("letter", list("éèêëàâäçñöüßøåÉÀÇÑÖÜæœ"))
def test_the_font_draws_accented_letters(letter: str) -> None:
    """Each is a real glyph: not the box a font draws for a letter it lacks (the private-use
    U+E000 is in no text font), and not its plain letter either."""
    missing = _glyph("\ue000")
    assert _glyph(letter) != missing
    plain = unicodedata.normalize("NFD", letter)[0]
    if plain != letter:
        assert _glyph(letter) != _glyph(plain)


def test_uploads_become_stills_footage_or_named_stand_ins(tmp_path: Path) -> None:
    draft = {
        "t": [
            {
                "tt": 0,
                "sg": [
                    {"s": 0, "d": 1000, "m": {"name": "a.png", "url": "u/a"}},
                    {"s": 1000, "d": 1000, "m": {"name": "b.mp4", "url": "u/b"}},
                    {"s": 2000, "d": 1000, "m": {"name": "c.mov", "url": "u/c"}},
                ],
            }
        ]
    }
    uploads = {
        "u/a": Upload("a.png", "image", tmp_path / "a.png"),
        "u/b": Upload("b.mp4", "video", tmp_path / "b.mp4"),
        "u/c": Upload("c.mov", "video", None),  # a link, or not kept
    }
    made = composition_of(draft, lambda s: uploads[s.raw["m"]["url"]])
    still, footage, stand_in = (s.visual for s in made.shots)
    assert still == Still(tmp_path / "a.png", "zoom_in")
    assert footage == Footage(tmp_path / "b.mp4")
    assert isinstance(stand_in, Card) and stand_in.text == "c.mov"


def test_the_same_timeline_has_the_same_key_whatever_its_ids() -> None:
    one, two = two_clips(), two_clips()
    two["t"][0]["sg"][0]["id"] = "seg_1"
    two["t"][0]["sg"][0]["m"]["url"] = "http://x/files/clips/clip_1.mp4"
    assert composition_of(one, no_uploads).key() == composition_of(two, no_uploads).key()
    assert composition_of(two_clips(music=0.4), no_uploads).key() != (
        composition_of(one, no_uploads).key()
    )


# phases -------------------------------------------------------------------------------------
def test_completed_only_once_the_file_exists(tmp_path: Path) -> None:
    render = Render(
        "render_1",
        "u",
        "s",
        two_clips(),
        {},
        created_at=time.time(),
        started=100.0,
        seconds=3.0,
        output_bytes=None,
    )
    assert render.phase(100.0) == ("pending", 0.0)
    assert render.phase(102.0)[0] == "processing"
    assert render.phase(104.0) == ("processing", 0.99)  # time is up, the file is not
    render.render_error = "render failed: the timeline could not be drawn"
    assert render.phase(104.0) == ("failed", 0.9)
    render.render_error = None
    render.finish(tmp_path / "done.mp4")
    assert render.phase(104.0) == ("completed", 1.0)
    assert render.phase(101.0)[0] == "processing"  # and the clock still rules before that


async def test_a_drawing_that_fails_fails_the_render_plainly(tmp_path: Path) -> None:
    world = World(SandboxConfig())
    render = Render(
        "render_2",
        "u",
        "s",
        {"d": 1000},
        {},
        created_at=time.time(),
        started=0.0,
        seconds=0.0,
        output_bytes=None,
    )
    broken = Composition(1000, shots=(Shot(0, 1000, Footage(tmp_path / "gone.mp4")),))
    try:
        await rendering.produce(world, render, broken)
        assert render.file is None and render.phase(1.0) == ("failed", 0.9)
        assert render.error == "render failed: the timeline could not be drawn"
        assert list((world.files.root / "work").iterdir()) == []
    finally:
        world.files.close()


# real renders over HTTP -----------------------------------------------------------------------
def test_render_shows_the_timeline(quick: SandboxServer, backend: Backend, tmp_path: Path) -> None:
    sid = backend.ready()
    mp4 = rendered(backend, sid, two_clips(), tmp_path / "two.mp4")
    from nemo_mcp.media import probe

    info = probe(mp4)
    assert info.duration is not None and abs(info.duration - 4.0) <= 1 / 24
    assert (info.width, info.height, info.fps) == (640, 360, 24.0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    titled, plain, other = frames_at(mp4, [0.5, 1.5, 2.5])
    band = (0, 262, 60, 300)  # the caption's dark band, left of its words
    assert sum(mean_colour(titled, band)) < 0.7 * sum(mean_colour(plain, band))
    top = (0, 0, 640, 40)  # the clips' own colours
    assert difference(plain.crop(top), other.crop(top)) > 30
    assert sound_level(mp4, 0.2, 3.8) > 0.01


def test_music_is_heard_at_its_volume_and_silence_without_it(
    quick: SandboxServer, backend: Backend, tmp_path: Path
) -> None:
    sid = backend.ready()
    loud = rendered(backend, sid, two_clips(music=0.5, title="Loud"), tmp_path / "loud.mp4")
    soft = rendered(backend, sid, two_clips(music=0.25, title="Soft"), tmp_path / "soft.mp4")
    none = rendered(backend, sid, two_clips(music=None, title="None"), tmp_path / "none.mp4")
    ratio = sound_level(loud, 0.2, 3.8) / sound_level(soft, 0.2, 3.8)
    assert 1.8 < ratio < 2.2
    assert sound_level(none, 0.0, 4.0) < 1e-4


def test_uploaded_video_and_photo_are_rendered(
    quick: SandboxServer, backend: Backend, tmp_path: Path
) -> None:
    clip = video(tmp_path / "clip.mp4", seconds=1, audio=None, options={"preset": "ultrafast"})
    photo = io.BytesIO()
    Image.new("RGB", (320, 180), (220, 30, 30)).save(photo, "PNG")
    sid = backend.ready()
    answer = backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}",
        files=[
            ("files", ("clip.mp4", clip.read_bytes())),
            ("files", ("red.png", photo.getvalue())),
        ],
    ).json()["data"]["files"]
    assert answer[0]["duration"] == 1.0 and (answer[1]["width"], answer[1]["height"]) == (320, 180)
    draft = generate(backend, sid, "make a video from my clips")
    meta = [s["m"] for s in draft["t"][0]["sg"]]
    assert [(m["name"], m["type"]) for m in meta] == [("clip.mp4", "video"), ("red.png", "image")]
    mp4 = rendered(backend, sid, draft, tmp_path / "uploads.mp4")
    shown_video, shown_photo = frames_at(mp4, [0.5, 2.5])
    # The clip, scaled 2x: its white square fills the top left corner.
    assert min(mean_colour(shown_video, (10, 10, 150, 80))) > 200
    red = mean_colour(shown_photo, (100, 60, 540, 240))
    assert red[0] > 180 and red[1] < 80 and red[2] < 80


def test_uploads_over_the_keep_cap_are_answered_and_rendered_as_stand_ins(
    quick: SandboxServer, backend: Backend, tmp_path: Path
) -> None:
    quick.control.set(keep_upload_bytes=1000)
    clip = video(tmp_path / "clip.mp4", seconds=1, audio=None, options={"preset": "ultrafast"})
    sid = backend.ready()
    (answer,) = backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}", files=[("files", ("clip.mp4", clip.read_bytes()))]
    ).json()["data"]["files"]
    assert "duration" not in answer and answer["hash"] and answer["file_type"] == "video"
    draft = generate(backend, sid, "make a video from my clips")
    mp4 = rendered(backend, sid, draft, tmp_path / "stand_in.mp4")
    (shown,) = frames_at(mp4, [0.5])
    assert min(mean_colour(shown, (10, 10, 150, 80))) < 200  # a card, not the clip


def test_generated_clip_urls_serve_the_clip(
    quick: SandboxServer, backend: Backend, tmp_path: Path
) -> None:
    sid = backend.ready()
    draft = generate(backend, sid, "generate a 4-second video of a lighthouse in a storm")
    segment = draft["t"][0]["sg"][0]
    assert segment["m"]["prompt"] == "a lighthouse in a storm"
    served = httpx.get(segment["m"]["url"])
    assert served.status_code == 200 and served.headers["content-type"] == "video/mp4"
    (tmp_path / "clip.mp4").write_bytes(served.content)
    from nemo_mcp.media import probe

    info = probe(tmp_path / "clip.mp4")
    assert info.duration is not None and abs(info.duration - 4.0) <= 1 / 24
    assert httpx.get(segment["m"]["url"].replace("clip_", "clip_x")).status_code == 404


def test_too_long_drafts_are_refused(backend: Backend) -> None:
    sid = backend.ready()
    r = backend.render(sid, {"t": [{"tt": 0, "sg": [{"s": 0, "d": 1000}]}], "d": 3_600_000})
    assert r.status_code == 400 and "at most 10 minutes" in r.json()["message"]


# the folder -----------------------------------------------------------------------------------
def test_kept_uploads_live_in_a_folder_removed_at_reset_and_exit(tmp_path: Path) -> None:
    clip = video(tmp_path / "clip.mp4", seconds=1, audio=None, options={"preset": "ultrafast"})
    app = create_app(SandboxConfig(render_seconds=0))
    with TestClient(app, headers=SKILL) as http:
        token = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c"}).json()
        http.headers["Authorization"] = f"Bearer {token['data']['token']}"
        sid = http.post("/api/tasks/me/with-session/nemo_agent", json={}).json()["data"][
            "session_id"
        ]
        root = app.state.world.files.root
        for name in ("a.mp4", "b.mp4"):  # the same bytes twice: kept once
            http.post(
                f"/api/upload-video/nemo_agent/me/{sid}",
                files=[("files", (name, clip.read_bytes()))],
            )
        assert len(list((root / "uploads").iterdir())) == 1
        assert http.post("/_sandbox/reset").status_code == 200
        assert list((root / "uploads").iterdir()) == []
    assert not root.exists()


def test_files_keep_within_their_caps(tmp_path: Path) -> None:
    files = SandboxFiles()
    try:
        small = files.keeper("mp4", per_file=10, total=15)
        big = files.keeper("mp4", per_file=10, total=15)  # only 5 left for it
        small.write(b"12345678")
        big.write(b"123456")
        assert small.keeping and not big.keeping
        kept = files.keep(small.finish() or Path(), "aa", "mp4")
        assert big.finish() is None and files.reserved == 0
        assert kept.path.read_bytes() == b"12345678" and files.kept_bytes == 8
        third = files.keeper("mp4", per_file=10, total=15)
        assert third.allowance == 7
        third.abandon()
        files.clear_uploads()
        assert not kept.path.exists() and files.upload("aa") is None
    finally:
        files.close()


def test_render_cache_evicts_the_oldest_but_never_a_served_file() -> None:
    files = SandboxFiles(render_files=2)
    try:
        made = []
        for key in ("k1", "k2", "k3"):
            scratch = files.scratch(".mp4")
            scratch.write_bytes(key.encode())
            made.append(files.add_render(key, scratch, in_use={files.root / "renders" / "k1.mp4"}))
        assert made[0].exists() and not made[1].exists() and made[2].exists()
        assert files.cached_render("k1") == made[0] and files.cached_render("k2") is None
    finally:
        files.close()
