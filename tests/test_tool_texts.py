"""Each tool's text for the agent, as a pure function of its output model."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from nemo_mcp import redaction
from nemo_mcp.backend.models import Credits, StateSnapshot, UploadedFile
from nemo_mcp.errors import (
    AuthError,
    ConfigError,
    CreditsError,
    FileTooLargeError,
    HomeBusyError,
    NemoError,
    OneTokenError,
    RateLimitError,
    RenderSlowError,
    RenderUnclearError,
    ServerError,
    SessionDamagedError,
    SessionReplacedError,
    SkillFileError,
    TokenRefusedError,
    UnsupportedFileError,
)
from nemo_mcp.ledger import Entry, Submission
from nemo_mcp.server.boundary import message_for, tool_boundary, unexpected_message
from nemo_mcp.server.outputs import ExportOutput, GenerateOutput, UploadOutput
from nemo_mcp.server.snapshots import records, timeline_output
from nemo_mcp.server.tools.credits import credits_output, credits_text
from nemo_mcp.server.tools.export import export_text
from nemo_mcp.server.tools.generate import answer_notes, generate_text, pending_output
from nemo_mcp.server.tools.timeline import timeline_text
from nemo_mcp.server.tools.upload import items_for, upload_text
from nemo_mcp.server.work import Ticket, error_from, error_record

from conftest import Transcript

DRAFT = {
    "t": [
        {"tt": 0, "sg": [{"d": 10000, "m": {"name": "city timelapse"}}]},
        {
            "tt": 1,
            "m": {"name": "BGM"},
            "sg": [{"d": 10000, "m": {"name": "Lo-fi", "volume": 0.35}}],
        },
    ]
}


# generate --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("out", "expected", "absent"),
    [
        (
            GenerateOutput(
                status="completed",
                reply="I added music.",
                changes=["Added BGM: Lo-fi (0-10s, 35%)"],
                timeline="Timeline (2 tracks): ...",
                next_steps=["Call `export` to render and download the MP4 (free)."],
            ),
            [
                "I added music.",
                "Changes:\n- Added BGM: Lo-fi (0-10s, 35%)",
                "Timeline (2 tracks)",
                "Next: Call `export`",
            ],
            ["Still working"],
        ),
        (
            GenerateOutput(
                status="completed",
                reply="Done. Call `export` when ready.",
                next_steps=["Call `export` to render and download the MP4 (free)."],
            ),
            ["Done. Call `export` when ready."],
            ["Next:"],  # the reply already names the step
        ),
        (
            GenerateOutput(
                status="running",
                reply="",
                progress="adding music (1m05s)",
                raw_clip_ready=True,
                timeline="Timeline (1 track): 1. Video: clip (0-10s)",
                request_id="r-7",
            ),
            [
                "Still working: adding music (1m05s)",
                "raw clip has already landed",
                "Timeline (1 track)",
                'Call `generate` with request_id="r-7" to wait',
            ],
            ["Changes:"],
        ),
        (
            GenerateOutput(status="not_sent", reply="This asks about credits. Call `credits`."),
            ["This asks about credits. Call `credits`."],
            ["Still working", "Next:"],
        ),
    ],
)
def test_generate_text(out: GenerateOutput, expected: list[str], absent: list[str]) -> None:
    text = generate_text(out)
    for part in expected:
        assert part in text
    for part in absent:
        assert part not in text


def _entry(**changes: Any) -> Entry:
    values: dict[str, Any] = dict(
        id="e1",
        user="",
        seq=1,
        kind="message",
        key="1|a video",
        session_id="1",
        state="done",
        request={"message": "a video"},
        created_at=1000.0,
        updated_at=1000.0,
        finished_at=1060.0,
    )
    values.update(changes)
    return Entry(**values)


@pytest.mark.parametrize(
    ("how", "delivered_before", "says"),
    [
        ("new", False, None),
        ("unfinished", False, None),
        ("finished", True, "already answered 2m00s ago, so it was not sent again"),
        ("finished", False, "finished while no call was waiting"),
    ],
)
def test_answer_notes(how: Any, delivered_before: bool, says: str | None) -> None:
    entry = _entry()
    ticket = Ticket(Submission(how, entry, delivered_before=delivered_before), ask="a1")
    notes = answer_notes(ticket, entry, now=1180.0)
    if says is None:
        assert notes == []
    else:
        assert len(notes) == 1 and says in notes[0]
        if delivered_before:
            assert "`again: true`" in notes[0]


@pytest.mark.parametrize(
    ("state", "ahead", "status"),
    [("queued", 2, "queued"), ("queued", 0, "running"), ("streaming", 0, "running")],
)
def test_pending_output(state: Any, ahead: int, status: str) -> None:
    entry = _entry(
        state=state,
        finished_at=None,
        progress={
            "phase": "adding music",
            "timeline": "Timeline (1 track): ...",
            "milestones": ["raw_clip"],
        },
    )
    out = pending_output(entry, ahead=ahead, now=1065.0)
    assert out.status == status and out.ahead == (ahead if status == "queued" else 0)
    assert out.progress == "adding music (1m05s)" and out.raw_clip_ready
    text = generate_text(out)
    if status == "queued":
        assert f"Queued: {ahead} earlier requests" in text and "sent when they finish" in text
    else:
        assert "Still working: adding music (1m05s)" in text and "Timeline (1 track)" in text


# export ----------------------------------------------------------------------------------
DONE = ExportOutput(
    status="completed",
    render_id="render_1",
    file="/out/City.mp4",
    size_bytes=15_728_640,
    url="https://cdn.test/r.mp4",
    browser_link="https://web.test/workspace/claim?ct=clm_x",
)


@pytest.mark.parametrize(
    ("out", "expected", "absent"),
    [
        (
            DONE,
            [
                "Video ready: /out/City.mp4 (15.7 MB)",
                "URL: https://cdn.test/r.mp4",
                "Open the project in the browser: https://web.test/",
            ],
            ["Resumed", "Already"],
        ),
        (
            DONE.model_copy(update={"reused": True}),
            ["Already exported this exact timeline: /out/City.mp4"],
            ["Video ready"],
        ),
        (
            DONE.model_copy(update={"resumed": True}),
            ["(Resumed render render_1 started earlier; no new render.)"],
            [],
        ),
        (
            ExportOutput(status="rendering", render_id="render_9", progress="rendering, 40% (20s)"),
            ["Rendering: rendering, 40% (20s)", "render_9", "no second render"],
            ["Video ready"],
        ),
        (
            ExportOutput(status="queued", render_id="", ahead=1),
            ["Queued: 1 earlier request runs first", "once"],
            ["Rendering"],
        ),
        (
            DONE.model_copy(update={"size_bytes": None, "url": None, "browser_link": None}),
            ["Video ready: /out/City.mp4"],
            ["MB)", "URL:", "browser"],
        ),
    ],
)
def test_export_text(out: ExportOutput, expected: list[str], absent: list[str]) -> None:
    text = export_text(out)
    for part in expected:
        assert part in text
    for part in absent:
        assert part not in text


# credits ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("available", "frozen", "anonymous", "says"),
    [
        (300, 0, True, []),
        (80, 20, True, ["20 are held", "Enough for an edit (~50) but not a new clip (~100)."]),
        (10, 0, True, ["Not enough", "Register at https://web.test/register?bind=anon_1"]),
        (10, 0, False, ["Not enough", "Top up to continue."]),
    ],
)
def test_credits(available: float, frozen: float, anonymous: bool, says: list[str]) -> None:
    balance = Credits.model_validate({"available": available, "frozen": frozen})
    out = credits_output(
        balance, anonymous=anonymous, registration_link="https://web.test/register?bind=anon_1"
    )
    assert out.total == available + frozen
    text = credits_text(out)
    assert text.startswith(f"Credits: {available:g} available, {frozen:g} frozen")
    for part in says:
        assert part in text
    if not says:
        assert out.note == ""
    if not anonymous:
        assert "register" not in text.lower()


def test_credits_total_from_the_backend_wins() -> None:
    assert Credits.model_validate({"available": 1, "frozen": 2, "total": 10}).total == 10
    assert Credits.model_validate({"available": "5", "frozen": None}).total == 5


# timeline --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("draft", "running", "expected"),
    [
        (DRAFT, [], ["2 tracks", "Ready to export."]),
        (None, [], ["Not ready to export yet: call `generate` first."]),
        (DRAFT, ["render render_1: rendering, 50% (30s)"], ["Running: render render_1"]),
    ],
)
def test_timeline(draft: Any, running: list[str], expected: list[str]) -> None:
    snapshot = StateSnapshot.model_validate(
        {"session_id": "1", "state": {"draft": draft, "video_infos": [{"a": 1}, 2]}}
    )
    out = timeline_output(snapshot, running=running, session_id="1")
    text = timeline_text(out)
    for part in expected:
        assert part in text
    assert out.uploads == [{"a": 1}] and "Uploads: 1." in text
    assert out.ready_for_export is (draft is not None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([{"a": 1}, "x", {"b": 2}], [{"a": 1}, {"b": 2}]),
        ({"k1": {"a": 1}, "k2": {"b": 2}}, [{"a": 1}, {"b": 2}]),
        ({"a": 1}, [{"a": 1}]),
        ("text", []),
        (None, []),
    ],
)
def test_records(value: Any, expected: list[dict[str, Any]]) -> None:
    assert records(value) == expected


# upload ----------------------------------------------------------------------------------
def test_upload_text_pairs_sources_with_what_the_backend_said() -> None:
    files = [UploadedFile(filename="a.mp4", file_type="video", duration=5.5, width=640, height=360)]
    items = items_for(["/up/a.mp4", "https://x.test/b.png"], files)
    out = UploadOutput(files=items, next_steps=["Call `generate`."])
    text = upload_text(out)
    assert text.splitlines() == [
        "Uploaded 2 files:",
        "- a.mp4 (video, 5.5s, 640x360)",
        "- b.png (file)",
        "Next: Call `generate`.",
    ]


# the error boundary ----------------------------------------------------------------------
class _Client:
    anonymous = True

    class settings:
        web_url = "https://web.test"

    @staticmethod
    def registration_link() -> str:
        return "https://web.test/register?bind=anon_7"


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (CreditsError("out", from_backend=True), "register?bind=anon_7"),
        (AuthError("token expired", from_backend=True), "refused the token twice"),
        (AuthError("NEMO_TOKEN was refused; set a valid one."), "NEMO_TOKEN was refused"),
        (RateLimitError("slow down", from_backend=True), "rate limiting"),
        (RateLimitError("one free token per computer every 7 days"), "one free token"),
        (UnsupportedFileError("bad type", from_backend=True), "Accepted: mp4"),
        (UnsupportedFileError("x.exe: .exe files are not accepted."), "x.exe: .exe"),
        (FileTooLargeError("too big", from_backend=True), "Compress or trim"),
        (ServerError("an answer that is not JSON", http_status=502), "server problem (HTTP 502)"),
        (SkillFileError("unknown skill profile 'x'"), "unknown skill profile"),
        (ConfigError("cannot write /x: Read-only file system"), "cannot write /x"),
    ],
)
def test_messages_are_chosen_by_class_and_origin(err: NemoError, says: str) -> None:
    assert says in message_for(err, _Client())  # type: ignore[arg-type]


def test_skill_file_error_is_a_config_error() -> None:
    assert issubclass(SkillFileError, ConfigError) and issubclass(ConfigError, NemoError)


async def test_boundary_words_errors_and_logs_the_unexpected(transcript: Transcript) -> None:
    transcript.addFilter(redaction.RedactingFilter())  # as the server's log handlers have
    redaction.register("nmv_usr_boundarysecret123")

    @tool_boundary("Exporting the video", lambda ctx: None)
    async def failing(kind: str) -> None:
        if kind == "nemo":
            raise CreditsError("out of credits nmv_usr_boundarysecret123")
        if kind == "oserror":
            raise FileNotFoundError(2, "No such file or directory")
        raise ValueError("a bug with nmv_usr_boundarysecret123 in it")

    with pytest.raises(ToolError) as nemo:
        await failing("nemo")
    assert "Out of credits" in str(nemo.value) and "boundarysecret" not in str(nemo.value)
    with pytest.raises(ToolError) as vanished:
        await failing("oserror")
    assert str(vanished.value) == unexpected_message(
        "Exporting the video", FileNotFoundError(2, "No such file or directory")
    )
    assert "(No such file or directory)" in str(vanished.value)
    with pytest.raises(ToolError) as bug:
        await failing("bug")
    assert "Exporting the video failed because of an unexpected problem" in str(bug.value)
    assert "ValueError" not in str(bug.value) and "a bug" not in str(bug.value)
    logged = "\n".join(transcript.logs)
    assert "Exporting the video failed unexpectedly" in logged and "ValueError" in logged
    assert "boundarysecret" not in logged


FACTS: list[tuple[NemoError, str]] = [
    (TokenRefusedError("NEMO_TOKEN was refused", code=1001), "unset NEMO_TOKEN to use a free"),
    (
        SessionReplacedError("gone", code=1002, detail={"session_id": "s-new"}),
        "A new empty project was started (session s-new); generate the video again.",
    ),
    (
        HomeBusyError("held", detail={"lease": "session", "waited": 90.0, "where": "/home/x"}),
        "Another nemo-mcp process has been starting a project for over 90 s (/home/x)",
    ),
    (
        SessionDamagedError(
            "damaged",
            detail={"path": "/h/session.json", "problem": "not JSON", "moved_to": "/h/s.bad"},
        ),
        "moved aside to /h/s.bad, so its timeline cannot be reached from here. Nothing was "
        "sent. Ask again to continue in a new, empty project; the old one, if it still "
        "exists, stays in your NemoVideo account (https://web.test).",
    ),
    (
        OneTokenError(
            "7 days",
            detail={"gone": "missing", "where": "/home/x", "until": "2026-12-09 10:00 UTC"},
        ),
        "The saved NemoVideo token is missing from /home/x, and NemoVideo gives one free token "
        "per computer every 7 days, so set NEMO_TOKEN to your NemoVideo account's token, or "
        "wait until 2026-12-09 10:00 UTC and try again.",
    ),
    (
        RenderUnclearError("lost", detail={"reason": "HTTP 504"}),
        "NemoVideo's answer to the render start was lost (HTTP 504)",
    ),
    (
        RenderSlowError("slow", detail={"render_id": "render_1_ab", "minutes": 15}),
        "The render render_1_ab has not finished after 15 minutes; call `export` again",
    ),
]


@pytest.mark.parametrize(("err", "says"), FACTS)
def test_the_backends_facts_are_worded_here_and_survive_the_ledger(
    err: NemoError, says: str
) -> None:
    """The backend raises facts (`detail`), and only the boundary words them: the same
    sentence at once, and after the failure was kept in the ledger and read back."""
    assert says in message_for(err, _Client())  # type: ignore[arg-type]
    kept = error_from(json.loads(json.dumps(error_record(err))))
    assert type(kept) is type(err) and kept.detail == err.detail
    assert message_for(kept, _Client()) == message_for(err, _Client())  # type: ignore[arg-type]
    assert says not in err.message  # the words are not the backend's
