"""`nemo-mcp demo --all`: each of the five skills, offline, with its own inputs.

The five skills' demos run once (in-process, against one quick sandbox) and every check reads what
the demo saved: the MP4 lasts as long as the timeline the demo was shown, and its frames show
what that timeline says where it says it (titles and captions over their ranges, the
uploaded photos' colours, the prompt on a generated clip).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nemo_mcp import demo
from nemo_mcp.cli import build_parser
from nemo_mcp.documents import read_script
from nemo_mcp.identity import SKILLS
from nemo_mcp.media import probe
from nemo_mcp.sandbox import scripted_agent
from nemo_mcp.sandbox.config import SandboxConfig
from nemo_mcp.server.tools.generate import request_text

from media_files import frames_at, mean_colour

pytestmark = pytest.mark.slow

SIZE = (640, 360)
FPS = 24
QUICK = SandboxConfig(
    initial_credits=300, generation_seconds=0.4, edit_seconds=0.2, render_seconds=0.5
)


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Any], str]]:
    """The five skills' demos in turn, as `nemo-mcp demo --all` runs them (at a quicker pace)."""
    out = io.StringIO()
    folder = tmp_path_factory.mktemp("demo")
    saved = {s.skill: s for s in demo.run(list(demo.DEMOS), folder, out, QUICK)}
    assert list(saved) == list(SKILLS)
    for skill, one in saved.items():
        assert one.video.parent == folder / skill
    yield saved, out.getvalue()


def track(timeline: dict[str, Any], name: str) -> dict[str, Any]:
    found = [t for t in timeline["tracks"] if t.get("name") == name]
    assert len(found) == 1, f"no single {name} track in {timeline['tracks']}"
    return found[0]


def text_contrast(frame: Image.Image, text: str, *, caption: bool) -> float:
    """How much brighter `text`'s letters are than the rest of their box, where a render
    draws `text` (as a caption or title: on a band low in the frame; else as a generated
    clip's words, in the middle). High when that very text is shown there."""
    from nemo_mcp.media.pictures import text_layer

    if caption:
        layer, at = text_layer(text, SIZE, height=SIZE[1] // 10, band=True, middle=0.78, lines=2)
    else:
        layer, at = text_layer(text, SIZE, height=SIZE[1] // 11, band=False)
    box = (at[0], at[1], at[0] + layer.width, at[1] + layer.height)
    shown = frame.convert("L").crop(box)
    rgba = layer.convert("RGBA").tobytes()
    glyphs = [rgba[i : i + 4] == b"\xff\xff\xff\xff" for i in range(0, len(rgba), 4)]
    seen = list(shown.tobytes())
    on = [v for v, g in zip(seen, glyphs, strict=True) if g]
    off = [v for v, g in zip(seen, glyphs, strict=True) if not g]
    assert on and off
    return sum(on) / len(on) - sum(off) / len(off)


def middle(segment: dict[str, Any]) -> float:
    return (segment["start"] + segment["end"]) / 2


@pytest.mark.parametrize("skill", list(SKILLS))
def test_skill_saves_the_video_its_timeline_describes(
    skill: str, demos: tuple[dict[str, Any], str]
) -> None:
    saved, printed = demos
    spec, one = demo.DEMOS[skill], saved[skill]
    timeline = one.timeline

    # The demo ran as its own skill: every request carried its X-Skill-Source.
    assert one.skill_sources == {skill}
    assert f"== {SKILLS[skill].title} ({skill}) ==" in printed

    # The MP4 lasts what the timeline says, within one frame.
    info = probe(one.video)
    assert (info.width, info.height) == SIZE
    assert info.duration is not None
    assert abs(info.duration - timeline["duration_seconds"]) <= 1 / FPS + 1e-6

    # Its contact sheet is beside it, a JPEG under 1 MB, at the path printed.
    assert one.sheet.parent == one.video.parent
    assert one.sheet.read_bytes()[:3] == b"\xff\xd8\xff"
    assert one.sheet.stat().st_size < 1_000_000
    assert f"Contact sheet: {one.sheet}" in printed and f"Saved: {one.video}" in printed
    # Each request went to the backend once: the request and the edit, one render.
    assert (one.messages_sent, one.renders_started) == (2, 1)

    # The title shows over its range, and not after it.
    title = track(timeline, "Title")["segments"][0]
    after = title["end"] + 0.5
    assert after < timeline["duration_seconds"]
    inside, outside = frames_at(one.video, [middle(title), after])
    shown = text_contrast(inside, title["text"], caption=True)
    assert shown > 80, shown
    assert text_contrast(outside, title["text"], caption=True) < shown - 50

    video = track(timeline, "Video")["segments"]
    if spec.uploads:
        # Each uploaded photo fills its range: its own colour, away from the text.
        assert [s["label"] for s in video] == list(spec.uploads)
        frames = frames_at(one.video, [middle(s) for s in video])
        for segment, frame in zip(video, frames, strict=True):
            with Image.open(one.video.parent / "inputs" / segment["label"]) as photo:
                colour = photo.convert("RGB").getpixel((600, 20))
            assert isinstance(colour, tuple)
            seen = mean_colour(frame, (420, 20, 620, 90))
            assert all(abs(a - b) < 30 for a, b in zip(seen, colour, strict=True)), (seen, colour)
    else:
        # Each generated clip shows the words it was made from (after the title, which
        # covers the clip's words less than it covers a caption's).
        prompts = [m["prompt"] for m in timeline["generated_media"]]
        assert len(prompts) == len(video)
        times = [max(middle(s), after) if s is video[0] else middle(s) for s in video]
        for prompt, frame in zip(prompts, frames_at(one.video, times), strict=True):
            if spec.script:  # each line on screen once: as its caption, not on its scene too
                assert text_contrast(frame, prompt, caption=False) < 30, prompt
            else:
                assert text_contrast(frame, prompt, caption=False) > 80, prompt

    if spec.script or "description" in spec.request:
        # The script's (or description's) lines, each shown over its own range only.
        lines = track(timeline, "Captions")["segments"]
        assert len(lines) >= 3 and lines[0]["start"] == title["end"]
        frames = frames_at(one.video, [middle(title), *(middle(s) for s in lines)])
        for n, segment in enumerate(lines, start=1):
            here = text_contrast(frames[n], segment["text"], caption=True)
            assert here > 80, segment
            others = [f for m, f in enumerate(frames) if m != n]
            assert all(text_contrast(f, segment["text"], caption=True) < here - 50 for f in others)


def test_demo_cli_takes_a_skill_or_all() -> None:
    parser = build_parser()
    assert parser.parse_args(["demo"]).skill is None
    assert parser.parse_args(["demo", "--skill", "image-to-video-by-prompt"]).skill == (
        "image-to-video-by-prompt"
    )
    assert parser.parse_args(["demo", "--all"]).all
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--skill", "no-such-skill"])
    with pytest.raises(SystemExit):
        parser.parse_args(["demo", "--all", "--skill", "ai-generator-generator"])


def test_script_as_txt_and_docx_tell_the_same_story(tmp_path: Path) -> None:
    spec = demo.DEMOS["free-video-generator-from-script"]
    stories = []
    for name in ("script.txt", "script.docx"):
        path = tmp_path / name
        path.write_bytes(demo.bundled(name))
        stories.append(scripted_agent.story_of(request_text(spec.request, read_script(path))))
    assert stories[0] == stories[1] and stories[0] is not None
    assert stories[0].title == "Morning Brew" and len(stories[0].lines) == 4


def test_all_and_skill_reach_the_skills(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--all` runs the five skills in order, `--skill` just its own, no flag the text-prompt
    skill, each under the output folder given (the runs themselves are checked above)."""
    import logging

    from nemo_mcp import cli

    asked: list[tuple[list[str], Path, bool]] = []

    def run(
        skills: list[str], output_dir: Path, out: Any, config: Any = None, *, handoff: bool = False
    ) -> list[Any]:
        asked.append((list(skills), output_dir, handoff))
        return []

    monkeypatch.setattr(demo, "run", run)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        for argv in (
            ["--all"],
            ["--skill", "meta-video-generation-free"],
            [],
            ["--skill", "ai-video-generation-online", "--handoff"],
        ):
            assert cli.main(["demo", "--output-dir", str(tmp_path), *argv]) == 0
    finally:
        root.handlers[:], root.level = handlers, level
    assert asked == [
        (list(SKILLS), tmp_path, False),
        (["meta-video-generation-free"], tmp_path, False),
        ([demo.DEFAULT_SKILL], tmp_path, False),
        (["ai-video-generation-online"], tmp_path, True),
    ]
    assert cli.DEFAULT_DEMO_SKILL == demo.DEFAULT_SKILL


def test_the_script_skill_reads_documents_in_a_plain_install() -> None:
    """python-docx and pypdf come with `pip install nemo-mcp` itself (no extra), so the
    script skill sends its .docx as it is."""
    from importlib.metadata import requires

    plain = {
        r.split(";")[0].split(">")[0].split("=")[0].strip().lower()
        for r in requires("nemo-mcp") or []
        if "extra ==" not in r
    }
    assert {"python-docx", "pypdf"} <= plain
    assert demo.DEMOS["free-video-generator-from-script"].script == "script.docx"


def test_the_demo_points_only_at_what_outlives_it(demos: tuple[dict[str, Any], str]) -> None:
    """The sandbox ends with the demo: after saying where it runs, nothing printed links to it
    (no render URL, no browser link); the saved files are named instead."""
    saved, printed = demos
    _, _, rest = printed.partition("Sandbox backend at ")
    sandbox_url, _, after = rest.partition(";")
    assert sandbox_url.startswith("http://127.0.0.1:")
    assert sandbox_url not in after, [line for line in after.splitlines() if sandbox_url in line]
    for one in saved.values():
        assert f"Saved: {one.video}" in after and f"Contact sheet: {one.sheet}" in after
