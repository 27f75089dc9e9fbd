"""Damaged state files, as real users' machines produce them: each is named in one sentence
on the first call, moved aside, never silently taken for absent; nothing is sent that the
user did not ask for; the next call goes on."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.settings import Settings

from mcp_harness import connect, make_settings, text_of

#: A first call must answer within this, whatever is damaged (no 30 s waits for a token).
FIRST_CALL_SECONDS = 5.0

DAMAGES: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "wrong type": lambda p: p.write_text('["not", "a", "record"]'),
    "wrong field type": lambda p: p.write_text('{"token": 5, "session_id": {"a": 1}}'),
    "not utf-8": lambda p: p.write_bytes(b"\xff\xfe\x00{\x80\x81"),
    "huge": lambda p: p.write_bytes(b" " * (2 * 1024 * 1024) + p.read_bytes()),
    "empty": lambda p: p.write_bytes(b""),
}


def state_file(settings: Settings, name: str) -> Path:
    (path,) = settings.home.glob(f"nemo-mcp/*/{name}")
    return path


async def prepared(tmp_path: Path, sandbox: Any) -> Settings:
    """A home with a token, a session and a clip, as after a first real session."""
    sandbox.control.set(generation_seconds=0.2, initial_credits=500)
    settings = make_settings(tmp_path, sandbox.url)
    async with connect(settings) as session:
        made = await session.call("generate", {"message": "a video of a red lighthouse"})
        assert made.structured_content["status"] == "completed"  # type: ignore[index]
    return settings


async def timed(session: Any, tool: str, args: dict[str, Any] | None = None) -> tuple[Any, float]:
    start = time.monotonic()
    result = await session.client.call_tool(tool, args or {})
    return result, time.monotonic() - start


@pytest.mark.parametrize("damage", sorted(DAMAGES))
async def test_a_damaged_token_file_is_named_and_moved_aside(
    tmp_path: Path, sandbox: Any, damage: str
) -> None:
    settings = await prepared(tmp_path, sandbox)
    auth = state_file(settings, "auth.json")
    DAMAGES[damage](auth)
    async with connect(settings) as session:
        first, took = await timed(session, "credits")
        again, _ = await timed(session, "generate", {"message": "add jazz music"})
    text = text_of(first)
    assert took < FIRST_CALL_SECONDS, f"{took:.1f} s"
    # The token is there, damaged: said so, with where it went, never "not in the folder".
    assert first.is_error and str(auth) in text and "damaged" in text
    assert "moved aside" in text and ".damaged-" in text and "NEMO_TOKEN" in text
    assert "is not in" not in text
    assert not auth.exists() and list(auth.parent.glob("auth.json.damaged-*"))
    assert again.is_error  # still no token; nothing was sent for the edit
    stats = sandbox.control.stats()
    assert stats["tokens_issued"] == 1 and len(stats["messages"]) == 1


async def test_a_token_file_found_open_to_others_is_made_private(
    tmp_path: Path, sandbox: Any
) -> None:
    settings = await prepared(tmp_path, sandbox)
    auth = state_file(settings, "auth.json")
    auth.chmod(0o644)
    async with connect(settings) as session:
        result, _ = await timed(session, "credits")
    assert not result.is_error, text_of(result)
    assert stat.S_IMODE(auth.stat().st_mode) == 0o600


@pytest.mark.parametrize("damage", sorted(DAMAGES))
async def test_a_damaged_project_file_is_named_and_nothing_goes_into_a_new_one(
    tmp_path: Path, sandbox: Any, damage: str
) -> None:
    settings = await prepared(tmp_path, sandbox)
    project = state_file(settings, "session.json")
    DAMAGES[damage](project)
    async with connect(settings) as session:
        first, took = await timed(session, "generate", {"message": "add jazz music"})
        after, _ = await timed(session, "timeline")
    text = text_of(first)
    assert took < FIRST_CALL_SECONDS
    assert first.is_error and str(project) in text and "damaged" in text
    assert "Nothing was sent" in text and "new, empty project" in text
    stats = sandbox.control.stats()
    assert len(stats["messages"]) == 1  # the edit was not sent into an empty project
    assert stats["sessions_created"] == 2  # the next call went on, in a new project
    assert not after.is_error and "Not ready to export yet" in text_of(after)


async def test_a_salvaged_session_id_is_named(tmp_path: Path, sandbox: Any) -> None:
    settings = await prepared(tmp_path, sandbox)
    project = state_file(settings, "session.json")
    sid = project.read_text().split('"session_id": "')[1].split('"')[0]
    DAMAGES["truncated"](project)
    async with connect(settings) as session:
        first, _ = await timed(session, "timeline")
    assert first.is_error and f"session {sid}" in text_of(first)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\xff\xfe\x80not utf-8\n", "not plain text"),
        (b"0c8f7a8e-1b1d-4c55-9d0e-6ae2d0c8e3a1\nX-Injected: 1\n", "more than one line"),
        (b"hello\n", "not a UUID"),
    ],
)
async def test_a_damaged_client_id_without_a_token_is_replaced_and_said(
    tmp_path: Path, sandbox: Any, content: bytes, problem: str
) -> None:
    settings = make_settings(tmp_path, sandbox.url)
    client_id = settings.home / "client_id"
    client_id.parent.mkdir(parents=True)
    client_id.write_bytes(content)
    async with connect(settings) as session:
        result, took = await timed(session, "credits")
    assert took < FIRST_CALL_SECONDS
    assert not result.is_error, text_of(result)
    assert f"The client id in {client_id} was damaged ({problem})" in text_of(result)
    assert len(client_id.read_text().strip()) == 36
    assert sandbox.control.stats()["tokens_issued"] == 1


async def test_a_damaged_client_id_with_a_token_is_kept_and_said_when_it_matters(
    tmp_path: Path, sandbox: Any
) -> None:
    settings = await prepared(tmp_path, sandbox)
    client_id = settings.home / "client_id"
    client_id.write_bytes(b"\xff\xfe broken\n")
    async with connect(settings) as session:
        fine, _ = await timed(session, "credits")  # the token does not need the client id
        sandbox.control.fault("token_expired", route="credits")
        renewal, took = await timed(session, "credits")
    assert not fine.is_error
    text = text_of(renewal)
    assert took < FIRST_CALL_SECONDS
    assert renewal.is_error and str(client_id) in text and "not replaced" in text
    assert client_id.read_bytes() == b"\xff\xfe broken\n"
    assert sandbox.control.stats()["tokens_issued"] == 1


async def test_an_export_is_reused_only_while_its_file_is_the_one_saved(
    tmp_path: Path, sandbox: Any
) -> None:
    settings = await prepared(tmp_path, sandbox)
    sandbox.control.set(render_seconds=0.2)
    async with connect(settings) as session:
        first = await session.call("export")
        saved = Path(first.structured_content["file"])  # type: ignore[index]
        reused = await session.call("export")
        tiny = tmp_path / "tiny.mp4"
        tiny.write_bytes(b"x")
        saved.unlink()
        os.symlink(tiny, saved)  # something else now sits at the recorded path
        again = await session.call("export")
    assert reused.structured_content["reused"] is True  # type: ignore[index]
    out = again.structured_content
    assert out["reused"] is False  # type: ignore[index]
    assert Path(out["file"]).stat().st_size == out["size_bytes"] > 1  # type: ignore[index]
    assert Path(out["file"]) != saved and not Path(out["file"]).is_symlink()  # type: ignore[index]
    # The render was done: downloaded again, never rendered again.
    assert sandbox.control.stats()["renders_started"] == 1
