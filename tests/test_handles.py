"""Exactly once as an agent really behaves: following the server's own words, repeating
calls, reusing ids, and behind a gateway that loses answers.

Each test drives the server through the SDK's `Client` against the sandbox on loopback
and ends with the sandbox's own count of what it was sent: messages taken, renders
started. The six defects of issue 19 come first, then the handles they led to, then
legitimate intent (what must still be sent twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp_types import CallToolResult

from nemo_mcp.backend import client as client_module
from nemo_mcp.backend.retry import Deadlines

from mcp_harness import Session, connect, make_settings, text_of

#: A tool call gives up waiting this soon, so work is still running when it answers.
SHORT = 0.3
#: The most calls a test makes while waiting as told; real work ends well before.
MOST_CALLS = 40


def sent(sandbox: Any) -> list[str]:
    """The texts of the messages the sandbox took, in order."""
    return [m["text"] for m in sandbox.control.stats()["messages"]]


def renders_started(sandbox: Any) -> int:
    return int(sandbox.control.stats()["renders_started"])


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, text_of(result)
    return dict(result.structured_content)


async def until_done(
    session: Session, tool: str, args: dict[str, Any], *, done: str = "completed"
) -> tuple[CallToolResult, int]:
    """Call `tool` with the same arguments until it says `done`; the last result and how
    many calls it took."""
    for calls in range(1, MOST_CALLS + 1):
        result = await session.call(tool, args)
        assert not result.is_error, text_of(result)
        if structured(result)["status"] == done:
            return result, calls
    raise AssertionError(f"{tool} never answered {done} in {MOST_CALLS} calls")


# the six defects ---------------------------------------------------------------------
async def test_again_waited_on_as_told_sends_once(tmp_path: Path, sandbox: Any) -> None:
    """Defect 1: `again: true`, repeated as the running answer says, is one message."""
    sandbox.control.set(generation_seconds=2.0, initial_credits=1000)
    args = {"message": "a video of a lighthouse at night", "again": True}
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=SHORT)) as session:
        result, calls = await until_done(session, "generate", args)
    assert calls > 1  # it really was waited on
    assert structured(result)["changes"]  # the first (only) request's own result
    assert sent(sandbox) == [args["message"]]
    assert renders_started(sandbox) == 0
    assert sandbox.control.stats()["credits"] and _spent(sandbox) == 100


def _spent(sandbox: Any) -> int:
    (balance,) = sandbox.control.stats()["credits"].values()
    return 1000 - int(balance["available"])


async def test_new_project_waited_on_as_told_sends_once(tmp_path: Path, sandbox: Any) -> None:
    """Defect 2: the running request switched the project; its repeat still waits for it."""
    sandbox.control.set(generation_seconds=2.0, initial_credits=1000)
    args = {"message": "a video of a red kite over hills", "new_project": True}
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=SHORT)) as session:
        result, calls = await until_done(session, "generate", args)
    assert calls > 1
    assert structured(result)["changes"]
    stats = sandbox.control.stats()
    assert sent(sandbox) == [args["message"]]
    assert stats["sessions_created"] == 2  # the one opened first, and the new project
    assert renders_started(sandbox) == 0 and _spent(sandbox) == 100


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_gateway_error_after_the_message_was_taken_is_not_a_failure(
    tmp_path: Path, sandbox: Any, status: int
) -> None:
    """Defect 3: the gateway answers 5xx itself while the backend takes the message: the
    outcome is read from the evidence, and asking again sends nothing."""
    sandbox.control.set(initial_credits=1000)
    sandbox.control.fault("gateway_after", route="run_sse", status=status)
    args = {"message": "a video of a harbour at dawn"}
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        first = await session.call("generate", args)
        assert not first.is_error, text_of(first)
        assert structured(first)["status"] == "completed" and structured(first)["changes"]
        assert "try again" not in text_of(first).lower()
        again = await session.call("generate", args)  # what an agent told "try again" does
        assert not again.is_error, text_of(again)
    assert sent(sandbox) == [args["message"]]
    assert renders_started(sandbox) == 0 and _spent(sandbox) == 100


async def test_while_an_unclear_send_is_checked_the_answer_says_so(
    tmp_path: Path, sandbox: Any
) -> None:
    """A 5xx the gateway gave before the backend saw the message: while the evidence is
    read the answer says it may have been taken and nothing will be sent again; when the
    window closes with no sign, it says so and offers `again: true`, sending nothing."""
    sandbox.control.fault("server_error", route="run_sse", status=503)
    args = {"message": "a video of a stone bridge"}
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=SHORT, recovery_delays=(0.4,) * 5)
    async with connect(settings) as session:
        texts: list[str] = []
        for _ in range(MOST_CALLS):
            result = await session.call("generate", args)
            texts.append(text_of(result))
            if result.is_error:
                break
        assert result.is_error
    assert any("may have been taken" in t and "nothing will be sent again" in t for t in texts)
    assert "not sent again" in texts[-1] and "again: true" in texts[-1]
    assert sent(sandbox) == [] and sandbox.control.stats()["requests"]["run_sse"] == 1
    assert renders_started(sandbox) == 0


async def test_a_request_id_with_other_words_is_refused(tmp_path: Path, sandbox: Any) -> None:
    """Defect 4: an id names one request; other words under it are refused, never answered
    with the first request's result."""
    sandbox.control.set(initial_credits=1000)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        first = await session.call(
            "generate", {"message": "a video of a snowy forest", "request_id": "r-1"}
        )
        assert structured(first)["status"] == "completed"
        other = await session.call("generate", {"message": "add rain sounds", "request_id": "r-1"})
        assert other.is_error
        words = text_of(other)
        assert "r-1" in words and "other words" in words and "completed" not in words
        assert words.count(". ") <= 1  # one sentence
        export = await session.call("export", {"request_id": "r-1"})
        assert export.is_error and "generate" in text_of(export)
    assert sent(sandbox) == ["a video of a snowy forest"]
    assert renders_started(sandbox) == 0


async def test_fresh_export_waited_on_as_told_renders_once(tmp_path: Path, sandbox: Any) -> None:
    """Defect 5: `export(fresh: true)`, repeated as the rendering answer says after the
    render finished unseen, is one render and one saved file, and it answers completed."""
    sandbox.control.set(render_seconds=1.0)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a desert road"})
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=SHORT)) as session:
        first = await session.call("export", {"fresh": True})
        assert structured(first)["status"] == "rendering"
        await no_work_running(session)  # the agent was slow to ask again
        result = await session.call("export", {"fresh": True})
        assert structured(result)["status"] == "completed", text_of(result)
        assert structured(result)["request_id"] == structured(first)["request_id"]
        # (The first answer may come before its render id is recorded, on a slow machine.)
        assert structured(first)["render_id"] in ("", structured(result)["render_id"])
    assert len(list((tmp_path / "out").glob("*.mp4"))) == 1
    assert len(sent(sandbox)) == 1 and renders_started(sandbox) == 1


async def no_work_running(session: Session, seconds: float = 20.0) -> None:
    """Poll `timeline` until it lists no running work."""
    with anyio.fail_after(seconds):
        while True:
            if not structured(await session.call("timeline"))["running"]:
                return
            await anyio.sleep(0.05)


@pytest.mark.parametrize("answer", ["502", "504", "hold"])
async def test_a_render_start_behind_a_gateway_starts_one_render(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch, answer: str
) -> None:
    """Defect 6: the start is answered 502/504 by the gateway (or held past the client's
    patience) while the backend did start it, and the status reads that follow fail: it is
    sent again under the same id, never started a second time under a new one."""
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a mountain lake"})
    if answer == "hold":
        # The client waits 1 s for an answer here; the gateway holds it 3 s.
        monkeypatch.setattr(client_module, "CALL_DEADLINES", Deadlines(attempt=1.0, total=2.0))
        sandbox.control.fault("hold", route="render_start", seconds=3.0)
    else:
        sandbox.control.fault("gateway_after", route="render_start", status=int(answer))
    sandbox.control.fault("server_error", route="render_status", times=3, status=503)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        result = await session.call("export", {})
        assert not result.is_error, text_of(result)
        assert structured(result)["status"] == "completed"
    assert len(sent(sandbox)) == 1 and renders_started(sandbox) == 1


# handles -----------------------------------------------------------------------------
async def test_a_running_answer_hands_out_its_handle(tmp_path: Path, sandbox: Any) -> None:
    """Every answer carries the id; a wait by id alone (no words) never starts work and
    works whatever the current project is."""
    sandbox.control.set(generation_seconds=1.5, initial_credits=1000)
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=SHORT)) as session:
        running = await session.call("generate", {"message": "a video of a night market"})
        handle = structured(running)["request_id"]
        assert structured(running)["status"] == "running" and handle
        assert f'request_id="{handle}"' in text_of(running)
        while True:
            waited = await session.call("generate", {"request_id": handle})
            assert not waited.is_error, text_of(waited)
            assert structured(waited)["request_id"] == handle
            if structured(waited)["status"] == "completed":
                break
        assert handle in text_of(waited)
        # Another project now; the handle still answers, and nothing is sent.
        other = await session.call(
            "generate", {"message": "a video of a quiet pond", "new_project": True}
        )
        again, _ = await until_done(session, "generate", {"request_id": handle})
        assert structured(again)["reply"] == structured(waited)["reply"]
        other_id = structured(other)["request_id"]
        await until_done(session, "generate", {"request_id": other_id})
    assert sent(sandbox) == ["a video of a night market", "a video of a quiet pond"]
    assert renders_started(sandbox) == 0


async def test_an_unknown_handle_is_refused_in_one_sentence(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        result = await session.call("generate", {"request_id": "never-seen"})
        assert result.is_error
        words = text_of(result)
        assert "never-seen" in words and "timeline" in words and "expired" in words
        assert words.count(". ") == 0  # one sentence
    assert sent(sandbox) == [] and renders_started(sandbox) == 0


async def test_an_export_handle_is_waited_on(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(render_seconds=1.5)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a glacier"})
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=SHORT)) as session:
        rendering = await session.call("export", {"quality": "low"})
        handle = structured(rendering)["request_id"]
        assert structured(rendering)["status"] == "rendering" and handle
        assert f'request_id="{handle}"' in text_of(rendering)
        done, _ = await until_done(session, "export", {"request_id": handle})
        assert structured(done)["request_id"] == handle and structured(done)["file"]
    assert len(sent(sandbox)) == 1 and renders_started(sandbox) == 1


# legitimate intent -------------------------------------------------------------------
async def test_two_variations_one_after_the_other_each_send_once(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(initial_credits=1000)
    args = {"message": "a video of a busy street", "again": True}
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        one = await session.call("generate", args)
        two = await session.call("generate", args)  # the first was returned: new work
        assert structured(one)["status"] == structured(two)["status"] == "completed"
        assert structured(one)["request_id"] != structured(two)["request_id"]
    assert sent(sandbox) == [args["message"]] * 2
    assert renders_started(sandbox) == 0


async def test_two_in_parallel_with_distinct_ids_send_twice(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(initial_credits=1000)
    text = "a video of a paper boat"
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        results: dict[str, CallToolResult] = {}

        async def one(request_id: str) -> None:
            results[request_id] = await session.call(
                "generate", {"message": text, "request_id": request_id}
            )

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one, "variation-a")
            tasks.start_soon(one, "variation-b")
        assert {structured(r)["request_id"] for r in results.values()} == set(results)
    assert sent(sandbox) == [text] * 2
    assert renders_started(sandbox) == 0


async def test_two_identical_in_parallel_are_one_job(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(initial_credits=1000)
    args = {"message": "a video of a hot air balloon", "again": True}
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        results: list[CallToolResult] = []

        async def one() -> None:
            results.append(await session.call("generate", args))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            tasks.start_soon(one)
        assert len({structured(r)["request_id"] for r in results}) == 1
    assert sent(sandbox) == [args["message"]]


async def test_an_export_after_an_edit_renders_the_edit(tmp_path: Path, sandbox: Any) -> None:
    """The earlier export's result was never returned, but an edit came after it: the next
    export is new work and renders the edited timeline."""
    sandbox.control.set(render_seconds=1.0, initial_credits=1000)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a windmill"})
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=SHORT)) as session:
        first = await session.call("export", {"fresh": True})
        assert structured(first)["status"] == "rendering"  # its result is never asked for
        edit, _ = await until_done(session, "generate", {"message": "add the title 'Windy'"})
        assert structured(edit)["changes"]
        second, _ = await until_done(session, "export", {"fresh": True})
        assert structured(second)["render_id"] != structured(first)["render_id"]
    stats = sandbox.control.stats()
    assert renders_started(sandbox) == 2 and len(sent(sandbox)) == 2
    titles = [str(r["draft"]) for r in stats["renders"]]
    assert "Windy" not in titles[0] and "Windy" in titles[1]
