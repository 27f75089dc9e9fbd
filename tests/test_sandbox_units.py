"""The sandbox's pure parts, without a network: the agent's script, upload limits,
config and fault parsing, and SSE encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest

from nemo_mcp.sandbox import scripted_agent
from nemo_mcp.sandbox.config import Fault, SandboxConfig, parse_assignments, parse_fault_header
from nemo_mcp.sandbox.events import Call, Result, Say, Think, encode, heartbeat_frame
from nemo_mcp.sandbox.media import synthetic_stream, upload_limit

VIDEO_DRAFT = scripted_agent.with_title(
    scripted_agent.with_music(
        scripted_agent.raw_draft("Urban Dreams", [("city timelapse", "u", 10_000)]), "Lo-fi Chill"
    ),
    "Urban Dreams",
)


# intents -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "draft", "kind"),
    [
        ("generate a video from this prompt: 'a futuristic city at sunset'", None, "generate"),
        ("a futuristic city at sunset with flying cars", None, "generate"),
        ("generate my text prompts", None, "generate"),
        ("can you make me a short video of a cat?", VIDEO_DRAFT, "generate"),
        ("create a new clip about dogs", VIDEO_DRAFT, "generate"),
        ("hello", None, "chat"),
        ("what can you do?", None, "chat"),
        ("add some music", None, "chat"),
        ("hello", VIDEO_DRAFT, "chat"),
        ("make the video shorter", VIDEO_DRAFT, "edit"),
        ("make my video louder", VIDEO_DRAFT, "edit"),
        ("add a title 'Summer'", VIDEO_DRAFT, "edit"),
        ("make the sky bluer", VIDEO_DRAFT, "chat"),
    ],
)
def test_classify(text: str, draft: dict[str, Any] | None, kind: str) -> None:
    assert scripted_agent.classify(text, draft).kind == kind


@pytest.mark.parametrize(
    ("text", "edits"),
    [
        ("add background music", [scripted_agent.AddMusic(None)]),
        ("add some jazz music", [scripted_agent.AddMusic("Smooth Jazz")]),
        ("change the background music to upbeat jazz", [scripted_agent.AddMusic("Smooth Jazz")]),
        ("remove the music", [scripted_agent.RemoveMusic()]),
        (
            "no bgm and delete the title",
            [scripted_agent.RemoveMusic(), scripted_agent.RemoveTitle()],
        ),
        ("change the music volume to 60%", [scripted_agent.SetVolume(level=0.6)]),
        ("volume 150%", [scripted_agent.SetVolume(level=1.0)]),
        ("louder", [scripted_agent.SetVolume(step=0.15)]),
        ("turn the music down", [scripted_agent.SetVolume(step=-0.15)]),
        ('add text "Hello World"', [scripted_agent.AddTitle("Hello World")]),
        ("put a title “Été” on it", [scripted_agent.AddTitle("Été")]),
        ("add a title", [scripted_agent.AddTitle(None)]),
        ("trim to 8s", [scripted_agent.Trim(8.0)]),
        ("cut it to 4.5 seconds", [scripted_agent.Trim(4.5)]),
        ("make it shorter", [scripted_agent.Trim(None)]),
        ("it's great, thanks", []),
    ],
)
def test_parse_edits(text: str, edits: list[scripted_agent.Edit]) -> None:
    assert scripted_agent.parse_edits(text) == edits


@pytest.mark.parametrize(
    ("prompt", "label", "title"),
    [
        (
            "a futuristic city at sunset with flying cars",
            "futuristic city at sunset",
            "Futuristic City at Sunset",
        ),
        ("The ocean, waves and gulls", "ocean", "Ocean"),
        ("cat", "cat", "Cat"),
        ("", "video", "Video"),
    ],
)
def test_labels_and_titles(prompt: str, label: str, title: str) -> None:
    assert scripted_agent.label_of(prompt) == label and scripted_agent.title_of(label) == title


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("a 30-second product demo", 30_000),
        ("2 s clip", 3_000),
        ("a 5 minute film", 10_000),
        ("90 seconds", 60_000),
    ],
)
def test_durations(text: str, ms: int) -> None:
    assert scripted_agent.duration_of(text) == ms


def test_edits_never_change_their_input() -> None:
    before = json.dumps(VIDEO_DRAFT, sort_keys=True)
    edits: list[scripted_agent.Edit] = [
        scripted_agent.AddMusic("X"),
        scripted_agent.AddTitle("Y"),
        scripted_agent.RemoveMusic(),
        scripted_agent.RemoveTitle(),
        scripted_agent.SetVolume(level=0.9),
        scripted_agent.Trim(2.0),
    ]
    for edit in edits:
        applied = scripted_agent.apply_edit(VIDEO_DRAFT, edit)
        assert applied.draft is not None and applied.draft != VIDEO_DRAFT
    assert json.dumps(VIDEO_DRAFT, sort_keys=True) == before


def test_trim_drops_and_cuts_segments() -> None:
    draft = scripted_agent.raw_draft("T", [("a", "u", 4000), ("b", "u", 4000), ("c", "u", 4000)])
    cut = scripted_agent.trimmed(draft, 6000)
    assert [(s["m"]["name"], s["s"], s["d"]) for s in cut["t"][0]["sg"]] == [
        ("a", 0, 4000),
        ("b", 4000, 2000),
    ]
    assert cut["d"] == 6000


def test_volume_stays_in_range_and_needs_music() -> None:
    quiet = scripted_agent.apply_edit(VIDEO_DRAFT, scripted_agent.SetVolume(step=-5))
    assert quiet.draft is not None and scripted_agent.music_volume(quiet.draft) == 0.05
    silent = scripted_agent.without(VIDEO_DRAFT, scripted_agent.AUDIO)
    applied = scripted_agent.apply_edit(silent, scripted_agent.SetVolume(level=0.5))
    assert applied.draft is None and "music panel" in applied.reply


# media ---------------------------------------------------------------------------------------
def test_synthetic_stream_and_limits() -> None:
    assert b"".join(synthetic_stream(10))[4:8] == b"ftyp"[: max(0, 10 - 4)]
    assert sum(map(len, synthetic_stream(3 * 1024 * 1024 + 7))) == 3 * 1024 * 1024 + 7
    assert (
        upload_limit("ai-generator-generator")
        == upload_limit("free-video-generator-from-script")
        == 500_000_000
    )
    assert upload_limit("meta-video-generation-free") == upload_limit(None) == 200_000_000


# config and faults -----------------------------------------------------------------------------
def test_config_merges_and_validates() -> None:
    config = SandboxConfig().merged(
        parse_assignments("envelope=success; silent_edits=true; render_output_bytes=null")
    )
    assert (
        config.envelope == "success"
        and config.silent_edits is True
        and config.render_output_bytes is None
    )
    for bad in ("envelope=xml", "heartbeat_interval=0", "nope=1", "initial_credits=-1"):
        with pytest.raises(ValueError):
            SandboxConfig().merged(parse_assignments(bad))


def test_fault_forms() -> None:
    fault = Fault("slow", route="credits", times=None, delay=2)
    assert (
        fault.param("delay") == 2 and fault.applies_to("credits") and not fault.applies_to("state")
    )
    assert Fault.model_validate({"name": "slow", "delay": 3}).param("delay") == 3
    assert Fault("rate_limited").param("retry_after") == "1"
    assert not Fault("render_fail").applies_to("credits") and Fault("render_fail").applies_to(
        "render_start"
    )
    assert SandboxConfig(faults=[fault]).merged({}).faults == [fault]
    parsed = parse_fault_header("slow;delay=0.1, stream_drop;after=5")
    assert [(f.name, f.params) for f in parsed] == [
        ("slow", {"delay": "0.1"}),
        ("stream_drop", {"after": "5"}),
    ]
    for bad in (
        "nope",
        "slow;route=moon",
        "render_fail;route=credits",
        "slow;times=0",
        "slow;pause=1",
    ):
        with pytest.raises(ValueError):
            parse_fault_header(bad)


# encoding ----------------------------------------------------------------------------------------
def test_encode_styles() -> None:
    call = Call((("c1", "add_bgm", {"name": "X"}),))
    result = Result((("c1", "add_bgm", {"status": "success"}),), {"draft": {"t": []}})
    (adk,) = encode(call, "adk", "e-1")
    event = json.loads(adk.removeprefix(b"data: "))
    assert (
        adk.endswith(b"\n\n") and event["content"]["parts"][0]["functionCall"]["name"] == "add_bgm"
    )
    (answer,) = encode(result, "adk", "e-1")
    event = json.loads(answer.removeprefix(b"data: "))
    assert event["content"]["role"] == "user" and event["actions"]["stateDelta"] == {
        "draft": {"t": []}
    }
    assert encode(Think("hm"), "typed", "e-1") == []
    assert json.loads(encode(Say("hi"), "typed", "e-1")[0][6:]) == {"type": "text", "content": "hi"}
    chunks = encode(Say("one two three four five six"), "adk_partial", "e-1")
    pieces = [json.loads(c[6:]) for c in chunks]
    assert all(p["partial"] for p in pieces[:-1]) and "partial" not in pieces[-1]
    assert (
        "".join(p["content"]["parts"][0]["text"] for p in pieces[:-1])
        == "one two three four five six"
    )
    assert [heartbeat_frame("mixed", n, "adk") for n in range(3)] == [
        b": ping\n\n",
        b"data: \n\n",
        b"event: heartbeat\ndata: \n\n",
    ]
    assert heartbeat_frame("comment", 0, "typed") == b'data: {"type":"heartbeat"}\n\n'


# stories: a script or a product description ------------------------------------------------
SCRIPT_REQUEST = (
    "turn my script into a video\n\nScript:\nMorning Brew\n\n# The shop opens.\n- Beans tumble.\n"
    "Steam rises from the first cup, and the music plays."
)


def test_a_script_is_a_story_with_its_heading_as_title() -> None:
    story = scripted_agent.story_of(SCRIPT_REQUEST)
    assert story == scripted_agent.Story(
        "Morning Brew",
        (
            "The shop opens.",
            "Beans tumble.",
            "Steam rises from the first cup, and the music plays.",
        ),
    )
    # Always a new video, even over an existing one, and whatever words the script holds.
    intent = scripted_agent.classify(SCRIPT_REQUEST, VIDEO_DRAFT)
    assert intent.kind == "generate" and intent.story == story
    assert intent.prompt == "turn my script into a video"


def test_a_product_description_is_a_story() -> None:
    text = (
        "generate a 30-second promotional video from this product description: Trailrunner X\n"
        "Light shoes. A grippy sole!"
    )
    story = scripted_agent.story_of(text)
    assert story == scripted_agent.Story("Trailrunner X", ("Light shoes.", "A grippy sole!"))
    assert scripted_agent.classify(text, None).story == story
    assert scripted_agent.story_of("a video of a cat") is None
    # A single line is all story, no title.
    assert scripted_agent.story_of("x\n\nScript:\nOne line only") == scripted_agent.Story(
        None, ("One line only",)
    )


def test_a_quoted_tagline_names_the_title() -> None:
    assert scripted_agent.named_title('a video from my photos and tagline: "Go far"') == "Go far"
    assert scripted_agent.named_title('a video of "Go far"') is None
    # Words inside a script do not count.
    assert scripted_agent.named_title('make it\n\nScript:\nthe title "No"\nmore') is None


@pytest.mark.parametrize(("total", "count"), [(10_000, 3), (5_000, 2), (7, 3), (30_000, 7)])
def test_shares_add_up(total: int, count: int) -> None:
    parts = scripted_agent.shares(total, count)
    assert len(parts) == count and sum(parts) == total and max(parts) - min(parts) <= 1


def test_story_scenes_meet_their_captions() -> None:
    story = scripted_agent.story_of(SCRIPT_REQUEST)
    assert story is not None
    scenes = scripted_agent.story_scenes(story, None)
    total = scripted_agent.TITLE_MS + scripted_agent.LINE_MS * 3
    assert sum(scenes) == total
    clips = [(line, "u", ms) for line, ms in zip(story.lines, scenes, strict=True)]
    draft = scripted_agent.with_captions(
        scripted_agent.raw_draft("T", clips), story.lines, scripted_agent.captions_from(total)
    )
    video, captions = draft["t"][0]["sg"], draft["t"][1]["sg"]
    assert draft["t"][1]["m"]["name"] == scripted_agent.CAPTIONS_TRACK
    assert [c["m"]["text"] for c in captions] == list(story.lines)
    assert captions[0]["s"] == scripted_agent.TITLE_MS  # after the title
    assert [v["s"] + v["d"] for v in video] == [c["s"] + c["d"] for c in captions]
    assert scripted_agent.story_scenes(story, 9_000) == [5_000, 2_000, 2_000]


def test_title_edits_leave_captions_alone() -> None:
    captioned = scripted_agent.with_captions(VIDEO_DRAFT, ["one", "two"], 3_000)
    retitled = scripted_agent.apply_edit(captioned, scripted_agent.AddTitle("New"))
    assert retitled.draft is not None
    texts = [
        (t["m"]["name"], [s["m"]["text"] for s in t["sg"]])
        for t in retitled.draft["t"]
        if t["tt"] == scripted_agent.TEXT
    ]
    assert texts == [("Title", ["New"]), ("Captions", ["one", "two"])]
    removed = scripted_agent.apply_edit(captioned, scripted_agent.RemoveTitle())
    assert removed.draft is not None
    assert [t["m"]["name"] for t in removed.draft["t"] if t["tt"] == scripted_agent.TEXT] == [
        "Captions"
    ]
    again = scripted_agent.apply_edit(removed.draft, scripted_agent.RemoveTitle())
    assert again.draft is None and "no title" in again.reply
    titled = scripted_agent.apply_edit(removed.draft, scripted_agent.AddTitle("Back"))
    assert titled.draft is not None and "added the title" in titled.reply
