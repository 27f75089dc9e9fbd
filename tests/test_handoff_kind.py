"""A hand-off is its own kind of work in the ledger (`handoff`): no render, no credits, and never
counted as a render anywhere; a render never answers a hand-off, nor a hand-off a render.

Through the SDK's `Client` against the sandbox over loopback HTTP (and, for MCP Tasks, a
served process), counting the renders the sandbox started.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.ledger import Ledger
from nemo_mcp.ledger.sqlite import SqliteLedger
from nemo_mcp.state_files import StateStore

from mcp_harness import Session, connect, make_settings, text_of
from processes import http_server, ledger_rows, needs_proc, server_env
from tasks_client import TasksClient

A = {"message": "a video of a lighthouse in a storm"}


def renders_started(sandbox: Any) -> int:
    return int(sandbox.control.stats()["renders_started"])


async def made(session: Session) -> None:
    """A project with a timeline ready to export."""
    done = await session.call("generate", A)
    while not done.is_error and done.structured_content["status"] in ("running", "queued"):
        done = await session.call("generate", A)
    assert not done.is_error and done.structured_content["status"] == "completed", text_of(done)


async def finished(session: Session, args: dict[str, Any]) -> dict[str, Any]:
    """`export` with `args`, called again (a wait) until it ends; its structured answer."""
    answer = await session.call("export", args)
    while not answer.is_error and answer.structured_content["status"] in ("rendering", "queued"):
        answer = await session.call("export", args)
    assert not answer.is_error, text_of(answer)
    out = answer.structured_content
    assert out is not None and out["status"] == "completed", out
    return out


async def render_list(session: Session) -> list[dict[str, Any]]:
    read = await session.client.read_resource("nemo://renders")
    found: list[dict[str, Any]] = json.loads(read.contents[0].text)["renders"]  # type: ignore[union-attr]
    return found


async def test_a_handoff_alone_is_no_render(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await made(session)
        out = await finished(session, {"format": "otio"})
        listed = await render_list(session)
    assert out["folder"] and out["render_id"] == "" and out["handoff_format"] == "otio"
    assert renders_started(sandbox) == 0
    assert listed == []  # the render history holds no hand-off
    kinds = [row["kind"] for row in ledger_rows(tmp_path / "home")]
    assert kinds == ["message", "handoff"]


async def test_handoff_then_export_renders_exactly_once(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await made(session)
        handed = await finished(session, {"format": "fcpxml"})
        video = await finished(session, {})
        listed = await render_list(session)
    # The hand-off of this timeline is no export of it: the video is rendered, once.
    assert video["render_id"] and video["file"] and not video["reused"]
    assert Path(video["file"]).suffix == ".mp4" and video["file"] != handed["file"]
    assert renders_started(sandbox) == 1
    assert [(r["format"], r["status"]) for r in listed] == [("mp4", "completed")]


async def test_export_then_handoff_never_reuses_the_render(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await made(session)
        video = await finished(session, {})
        handed = await finished(session, {"format": "xml"})
        again = await finished(session, {})
    assert handed["folder"] and handed["render_id"] == "" and not handed["reused"]
    assert Path(handed["file"]).suffix == ".xml" and handed["request_id"] != video["request_id"]
    # The export after it is the same video again (the hand-off changed nothing).
    assert again["reused"] and again["file"] == video["file"]
    assert renders_started(sandbox) == 1


async def test_an_unseen_export_is_still_answered_after_a_handoff(
    tmp_path: Path, sandbox: Any
) -> None:
    """An export whose result nobody was given yet answers the next export, when only
    hand-offs came after it (they are not work on the project)."""
    sandbox.control.set(render_seconds=1.5)
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=0.3)) as session:
        await made(session)
        first = (await session.call("export", {})).structured_content
        assert first is not None and first["status"] in ("queued", "rendering"), first
        await finished(session, {"format": "otio"})  # runs after the render, in order
        video = await finished(session, {})
    assert video["request_id"] == first["request_id"] and not video["reused"]
    assert renders_started(sandbox) == 1


async def test_a_handoff_is_waited_for_like_an_export(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url, tool_timeout=0.3)) as session:
        await made(session)
        sandbox.control.set(edit_seconds=2.0)
        await session.call("generate", {"message": "make it slower"})  # runs first
        queued = await session.call("export", {"format": "otio"})
        again = await session.call("export", {"format": "otio"})  # the same call: a wait
        out = queued.structured_content
        assert out is not None and out["status"] == "queued", out
        handle = out["request_id"]
        assert again.structured_content["request_id"] == handle
        said = text_of(queued)
        assert "then the hand-off" in said and f'request_id="{handle}"' in said
        assert "Rendering" not in said
        by_id = await finished(session, {"request_id": handle})  # no format: a wait
        named = await finished(session, {"format": "xml", "request_id": "mine"})
        by_name = await finished(session, {"request_id": "mine"})
        wrong = await session.call(
            "export", {"format": "mp4", "quality": "low", "request_id": "mine"}
        )
        video = await finished(session, {"request_id": "video"})
        not_a_handoff = await session.call("export", {"format": "otio", "request_id": "video"})
    assert by_id["folder"] and by_id["request_id"] == handle and by_id["handoff_format"] == "otio"
    assert by_name == {**named, "reused": by_name["reused"]} and by_name["handoff_format"] == "xml"
    assert wrong.is_error and "names a hand-off to an editor" in text_of(wrong)
    assert video["render_id"] and video["request_id"] == "video"
    assert not_a_handoff.is_error and "names an MP4 export" in text_of(not_a_handoff)
    assert renders_started(sandbox) == 1
    assert len(list((tmp_path / "out").glob("*-otio"))) == 1  # one hand-off, waited for


@needs_proc
async def test_a_queued_handoff_cancelled_as_a_task_writes_nothing(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=1.5)
    env = server_env(tmp_path, sandbox)
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            first = await client.call("generate", A)
            queued = await client.call("export", {"format": "xml"})
            assert "waiting for its turn" in queued["statusMessage"], queued
            await client.cancel(queued["taskId"])
            cancelled = await client.get(queued["taskId"])
            done = await client.poll(first["taskId"])
    assert cancelled["status"] == "cancelled", cancelled
    assert "no folder was written" in cancelled["statusMessage"]
    assert done["status"] == "completed"
    out = tmp_path / "out"
    assert not out.exists() or not list(out.glob("*-xml"))
    assert renders_started(sandbox) == 0


@needs_proc
async def test_a_handoff_as_a_task_completes_with_its_folder(tmp_path: Path, sandbox: Any) -> None:
    env = server_env(tmp_path, sandbox)
    with http_server(env, tmp_path / "server.log") as url:
        async with TasksClient(url) as client:
            made = await client.poll((await client.call("generate", A))["taskId"])
            assert made["status"] == "completed"
            task = await client.call("export", {"format": "fcpxml"})
            assert task["resultType"] == "task", task
            done = await client.poll(task["taskId"])
    assert done["status"] == "completed", done
    out = done["result"]["structuredContent"]
    assert out["handoff_format"] == "fcpxml" and Path(out["file"]).is_file()
    assert renders_started(sandbox) == 0


async def test_a_handoff_left_as_a_render_by_an_earlier_version_renders_nothing(
    tmp_path: Path, sandbox: Any
) -> None:
    """An unfinished `render` entry with a timeline format (how hand-offs were kept before
    they had their own kind) is ended with one sentence when it is taken up: no render."""
    settings = make_settings(tmp_path, sandbox.url)
    async with connect(settings) as session:
        await made(session)
    ledger = SqliteLedger(StateStore(settings.home, settings.api_url).ledger_path)
    try:
        left = await ledger.submit(
            user="",
            kind="render",
            key="render|otio|high",
            session_id=None,
            request={"format": "otio", "quality": "high", "fresh": False},
        )
    finally:
        await ledger.close()
    assert left.entry is not None
    async with connect(settings) as session:
        waited = await session.call("export", {"request_id": left.entry.id})
        handed = await finished(session, {"format": "otio"})
    assert waited.is_error and "call `export` with format otio again" in text_of(waited)
    assert handed["folder"] and renders_started(sandbox) == 0


@pytest.mark.parametrize("store", ["sqlite", "redis"])
async def test_both_ledgers_keep_a_handoff_out_of_the_renders(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    ledger: Ledger
    if store == "redis":
        from nemo_mcp.hosted.redis_client import connect as redis
        from nemo_mcp.ledger.redis import RedisLedger
        from nemo_mcp.scale import Scale

        client = redis(request.getfixturevalue("redis_server").url, Scale())
        ledger = RedisLedger(
            client,
            f"test:{uuid.uuid4().hex}",
        )
    else:
        ledger = SqliteLedger(tmp_path / "ledger.sqlite3")
    try:
        asked = await ledger.submit(
            user="u", kind="handoff", key="handoff|otio", session_id="s",
            request={"format": "otio"},
        )  # fmt: skip
        assert asked.how == "new" and asked.entry is not None
        found = await ledger.latest(user="u", kind="handoff", key="handoff|otio")
        assert found is not None and found.id == asked.entry.id and found.kind == "handoff"
        assert await ledger.latest(user="u", kind="render", key="handoff|otio") is None
        assert await ledger.renders("u") == []
        claimed = await ledger.claim_head("u", "me", lease=10)
        assert claimed is not None and claimed.id == asked.entry.id
    finally:
        await ledger.close()
        if store == "redis":
            await client.aclose()
