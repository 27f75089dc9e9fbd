"""The product, end to end: the five tools through a real MCP client against the sandbox."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.replies.gui import has_gui_phrasing

from mcp_harness import connect, make_settings, text_of
from media_files import image, sample_mp4
from processes import ledger_rows, until

MODES = ["auto", "legacy"]


def runs(sandbox: Any) -> int:
    return int(sandbox.control.stats()["requests"].get("run_sse", 0))


def renders_started(sandbox: Any) -> int:
    return int(sandbox.control.stats()["renders_started"])


@pytest.mark.parametrize("mode", MODES)
async def test_tools_are_listed_with_honest_metadata(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url), mode=mode) as session:
        tools = {t.name: t for t in (await session.client.list_tools()).tools}
    assert set(tools) == {"generate", "upload", "export", "credits", "timeline"}
    for tool in tools.values():
        assert tool.title and tool.description and tool.output_schema
        assert tool.annotations is not None and tool.annotations.open_world_hint is True
    assert (
        tools["credits"].annotations.read_only_hint and tools["timeline"].annotations.read_only_hint
    )  # type: ignore[union-attr]
    assert tools["generate"].annotations.idempotent_hint is False  # type: ignore[union-attr]
    assert tools["upload"].annotations.idempotent_hint is False  # type: ignore[union-attr]
    assert "100 for a new clip" in tools["generate"].description  # type: ignore[operator]
    assert "Free" in tools["export"].description  # type: ignore[operator]
    assert "message" in tools["generate"].input_schema["properties"]
    assert "roots" not in tools["upload"].input_schema["properties"]


@pytest.mark.parametrize("mode", MODES)
async def test_prompt_to_mp4(tmp_path: Path, sandbox: Any, mode: str) -> None:
    settings = make_settings(tmp_path, sandbox.url)
    async with connect(settings, mode=mode) as session:
        credits = await session.call("credits")
        assert credits.structured_content["available"] == 100  # type: ignore[index]

        made = await session.call("generate", {"message": "a 10-second video of a city at night"})
        assert not made.is_error, text_of(made)
        out = made.structured_content
        assert out["status"] == "completed" and out["raw_clip_ready"]  # type: ignore[index]
        assert out["timeline"].startswith("Timeline (")  # type: ignore[index]
        assert any(c.startswith("Added") for c in out["changes"])  # type: ignore[index]
        # The agent said "Preview in timeline, then click the Export button": the content
        # stays and the GUI steps become tool instructions (a whole-reply fallback fails this).
        assert "I added background music and a title." in out["reply"]  # type: ignore[index]
        assert "`export`" in text_of(made)
        assert not has_gui_phrasing(text_of(made))
        generate_progress = list(session.progress)
        assert generate_progress, "no progress during generate"

        shown = await session.call("timeline")
        assert shown.structured_content["ready_for_export"] is True  # type: ignore[index]

        session.progress.clear()
        exported = await session.call("export")
        assert not exported.is_error, text_of(exported)
        out = exported.structured_content
        assert out["status"] == "completed"  # type: ignore[index]
        saved = Path(out["file"])  # type: ignore[index]
        assert saved.parent == settings.output_dir and saved.stat().st_size == out["size_bytes"]  # type: ignore[index]
        assert saved.read_bytes()[4:8] == b"ftyp"
        assert out["browser_link"].startswith("https://web.test/workspace/claim?ct=")  # type: ignore[index]
        assert session.progress, "no progress during export"
        percents = [p for p, total, _ in session.progress if total == 100]
        assert percents == sorted(percents)
    assert runs(sandbox) == 1 and renders_started(sandbox) == 1


async def test_export_before_anything_says_generate_first(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        result = await session.call("export")
    assert result.is_error and "generate" in text_of(result)
    assert renders_started(sandbox) == 0


async def test_silent_edit_is_reported_as_its_exact_changes(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(initial_credits=500)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a short video of waves"})
        sandbox.control.set(silent_edits=True)
        edit = await session.call("generate", {"message": 'add the title "Ocean Calm"'})
    out = edit.structured_content
    assert not edit.is_error and out["status"] == "completed"  # type: ignore[index]
    assert out["changes"], "a silent edit must be reported as its changes"  # type: ignore[index]
    assert any("Ocean Calm" in c for c in out["changes"])  # type: ignore[index]
    assert "Ocean Calm" in text_of(edit)


async def test_gui_phrasing_never_reaches_the_agent(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(initial_credits=500)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        results = [
            await session.call("generate", {"message": "a video of a mountain lake"}),
            await session.call("generate", {"message": "add upbeat background music"}),
        ]
    for result in results:
        assert not result.is_error
        assert not has_gui_phrasing(text_of(result))
        assert not has_gui_phrasing(result.structured_content["reply"])  # type: ignore[index]
    # "Open the music panel to adjust it, then click the Export button": the edit's own
    # sentence stays, the steps become tools.
    music_reply = results[1].structured_content["reply"]  # type: ignore[index]
    assert "background music" in music_reply and "panel" not in music_reply
    assert "`export`" in text_of(results[1])


async def test_long_generation_returns_within_budget_and_is_sent_once(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=2.5)
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=0.5)
    message = {"message": "a video of a forest in autumn"}
    async with connect(settings) as session:
        first = await session.call("generate", message)
        assert first.structured_content["status"] == "running"  # type: ignore[index]
        assert "generate" in text_of(first)
        for _ in range(40):
            later = await session.call("generate", message)
            if later.structured_content["status"] != "running":  # type: ignore[index]
                break
        assert later.structured_content["status"] == "completed"  # type: ignore[index]
        assert later.structured_content["raw_clip_ready"]  # type: ignore[index]
    assert runs(sandbox) == 1


async def test_different_request_while_running_is_queued_and_sent_after(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=1.0, initial_credits=500)
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=0.3)
    first, second = {"message": "a video of a desert"}, {"message": "add jazz music"}
    async with connect(settings) as session:
        started = await session.call("generate", first)
        queued = await session.call("generate", second)
        assert started.structured_content["status"] == "running"  # type: ignore[index]
        assert queued.structured_content["status"] == "queued"  # type: ignore[index]
        assert queued.structured_content["ahead"] == 1  # type: ignore[index]
        assert "sent when they finish" in text_of(queued)
        assert runs(sandbox) == 1
        b = await wait_done(session, second)
        a = await wait_done(session, first)
    # Each request was sent once, in the order asked, and each caller got its own result.
    assert [m["text"] for m in sandbox.control.stats()["messages"]] == [
        "a video of a desert",
        "add jazz music",
    ]
    assert any("Added" in c for c in a.structured_content["changes"])  # type: ignore[index]
    assert "jazz" in b.structured_content["reply"].lower()  # type: ignore[index]
    assert a.structured_content["reply"] != b.structured_content["reply"]  # type: ignore[index]


async def wait_done(session: Any, args: dict[str, Any]) -> Any:
    for _ in range(60):
        result = await session.call("generate", args)
        if result.structured_content["status"] not in ("running", "queued"):
            return result
    raise AssertionError("never finished")


async def test_routed_requests_are_not_sent(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        result = await session.call("generate", {"message": "export my video"})
    assert result.structured_content["status"] == "not_sent"  # type: ignore[index]
    assert "`export`" in text_of(result)
    assert runs(sandbox) == 0


async def test_render_resumed_after_restart(tmp_path: Path, sandbox: Any) -> None:
    settings = make_settings(tmp_path, sandbox.url)
    async with connect(settings) as session:
        await session.call("generate", {"message": "a video of a lighthouse"})
    sandbox.control.set(render_seconds=2.0)
    quick = make_settings(tmp_path, sandbox.url, tool_timeout=0.2)
    async with connect(quick) as session:
        first = await session.call("export")
        assert first.structured_content["status"] == "rendering"  # type: ignore[index]
        await until(lambda: [r["state"] for r in ledger_rows(settings.home)][-1:] == ["rendering"])
    render_id = ledger_rows(settings.home)[-1]["memo"]["render_id"]
    async with connect(settings) as session:  # a new server process' worth of state
        resumed = await session.call("export")
    out = resumed.structured_content
    assert out["status"] == "completed" and out["render_id"] == render_id  # type: ignore[index]
    assert "Resumed" in text_of(resumed)
    assert renders_started(sandbox) == 1


async def test_second_export_of_same_timeline_reuses_the_file(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of rain"})
        first = await session.call("export")
        again = await session.call("export")
        fresh = await session.call("export", {"fresh": True})
    assert (
        again.structured_content["reused"]
        and again.structured_content["file"] == first.structured_content["file"]
    )  # type: ignore[index]
    assert fresh.structured_content["file"] != first.structured_content["file"]  # type: ignore[index]
    assert renders_started(sandbox) == 2


# uploads ----------------------------------------------------------------------------------
def write(path: Path, size: int = 16) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


def real(path: Path) -> Path:
    """A small real video or picture at `path` (uploads are probed before sending)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mp4":
        shutil.copyfile(sample_mp4(), path)
        return path
    return image(path)


@pytest.mark.parametrize("mode", MODES)
async def test_upload_within_roots(tmp_path: Path, sandbox: Any, mode: str) -> None:
    root = tmp_path / "project"
    clip = real(root / "clip.mp4")
    photo = real(root / "photo.png")
    async with connect(make_settings(tmp_path, sandbox.url), mode=mode, roots=[root]) as session:
        result = await session.call(
            "upload", {"sources": [str(clip), str(photo), "https://example.com/a.jpg"]}
        )
    assert not result.is_error, text_of(result)
    files = result.structured_content["files"]  # type: ignore[index]
    assert [f["source"] for f in files] == [str(clip), str(photo), "https://example.com/a.jpg"]
    assert files[0]["type"]


async def test_upload_refusals_happen_before_any_request(tmp_path: Path, sandbox: Any) -> None:
    root = tmp_path / "project"
    outside = write(tmp_path / "elsewhere" / "secret.mp4")
    link = root / "link.mp4"
    root.mkdir()
    os.symlink(outside, link)
    wrong = write(root / "notes.exe")
    big = write(root / "huge.mp4", 200 * 1000 * 1000 + 1)
    cases = {
        str(outside): "outside the folders",
        str(link): "link pointing there",
        str(wrong): ".exe files are not accepted",
        str(big): "over the 200 MB limit",
        "file:///etc/passwd": "not a file:// URL",
        "ftp://example.com/a.mp4": "only http:// and https://",
        str(root / ".." / "elsewhere" / "secret.mp4"): "outside the folders",
        "relative/clip.mp4": "absolute path",
        str(root): "a folder",
        "https://www.youtube.com/watch?v=x": "YouTube",
    }
    async with connect(make_settings(tmp_path, sandbox.url), roots=[root]) as session:
        for source, reason in cases.items():
            result = await session.call("upload", {"sources": [source]})
            assert result.is_error, source
            assert reason in text_of(result), (source, text_of(result))
    assert sandbox.control.stats()["requests"].get("upload", 0) == 0


# errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fault", "route", "tool", "args", "expected"),
    [
        ("out_of_credits", "run_sse", "generate", {"message": "a video of a cat"}, "register"),
        ("export_blocked", "render_start", "export", {}, "free plan"),
        ("session_lost", "state", "timeline", {}, "timeline is gone"),
        ("server_error", "credits", "credits", {}, "server problem"),
        ("bad_gateway", "credits", "credits", {}, "502"),
    ],
)
async def test_backend_errors_become_clear_tool_errors(
    tmp_path: Path,
    sandbox: Any,
    fault: str,
    route: str,
    tool: str,
    args: dict[str, Any],
    expected: str,
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        if tool == "export":
            await session.call("generate", {"message": "a video of a beach"})
        sandbox.control.fault(fault, route=route, times=None)
        result = await session.call(tool, args)
    assert result.is_error
    assert expected.lower() in text_of(result).lower(), text_of(result)
    assert "Traceback" not in text_of(result)


async def test_token_expiry_is_recovered_silently(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("credits")
        sandbox.control.fault("token_expired", route="credits", times=1)
        result = await session.call("credits")
    assert not result.is_error
    assert sandbox.control.stats()["tokens_issued"] == 2


async def test_no_token_in_any_result_or_log(
    tmp_path: Path, sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        for name, args in [
            ("credits", {}),
            ("generate", {"message": "a video of a bridge"}),
            ("timeline", {}),
            ("export", {}),
        ]:
            result = await session.call(name, args)
            texts.append(text_of(result) + json.dumps(result.structured_content))
        sandbox.control.fault("token_expired", route="*", times=None)
        failed = await session.call("credits")
        texts.append(text_of(failed))
    auth = json.loads(next((tmp_path / "home" / "nemo-mcp").glob("*/auth.json")).read_text())
    token = auth["token"]
    everything = "\n".join(texts) + "\n".join(r.getMessage() for r in caplog.records)
    assert token not in everything
    assert "nmv_usr_" not in everything


async def test_out_of_credits_gives_the_registration_link_with_bind(
    tmp_path: Path, sandbox: Any
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a snowy forest"})
        result = await session.call("generate", {"message": 'add a title "Winter"'})
    assert result.is_error
    text = text_of(result)
    assert "https://web.test/register?bind=anon_" in text and "Exports stay free" in text
    assert runs(sandbox) == 2  # one each: the refused message is not retried
