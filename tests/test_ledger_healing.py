"""The work ledger heals: a damaged one is moved aside (with its -wal and -shm) and named
in one sentence, nothing sent; a fresh one is used from then on, by other processes too; a
ledger locked by another program is named within the budget; a full disk is a full disk.

Through the SDK's `Client` against the sandbox, counting the messages it was sent.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

from nemo_mcp.ledger.sqlite import SqliteLedger
from nemo_mcp.state_files import StateStore

from mcp_harness import connect, make_settings, text_of

ASK = {"message": "a video of a lighthouse at dawn"}


def _ledger_path(settings: Any) -> Path:
    return StateStore(settings.home, settings.api_url).ledger_path


def _damage(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"these are not the bytes of a database " * 200)
    Path(f"{path}-wal").write_bytes(b"a write-ahead log of nothing")
    Path(f"{path}-shm").write_bytes(b"\0" * 64)


async def test_a_damaged_ledger_is_moved_aside_named_once_and_nothing_is_sent(
    tmp_path: Path, sandbox: Any
) -> None:
    settings = make_settings(tmp_path, sandbox.url)
    path = _ledger_path(settings)
    _damage(path)
    async with connect(settings) as session:
        first = await session.call("generate", ASK)
        text = text_of(first)
        assert first.is_error
        assert f"The work ledger {path} was damaged and was moved aside to {path}.damaged-" in text
        assert "nothing was sent" in text and "`timeline`" in text and "Traceback" not in text
        assert sandbox.control.stats()["messages"] == []
        aside = [p.name for p in path.parent.iterdir() if ".damaged-" in p.name]
        assert len(aside) == 3
        assert {n.rsplit("-", 1)[-1] for n in aside if n.endswith(("-wal", "-shm"))} == {
            "wal",
            "shm",
        }
        credits = await session.call("credits")
        assert not credits.is_error, text_of(credits)
        again = await session.call("generate", ASK)
        assert not again.is_error, text_of(again)
    assert [m["text"] for m in sandbox.control.stats()["messages"]] == [ASK["message"]]


async def test_another_process_notices_the_ledger_was_replaced_and_reopens(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite3"
    mine, other = SqliteLedger(path), SqliteLedger(path)
    try:
        made = await mine.submit(user="u", kind="message", key="k", session_id=None, request={})
        assert made.entry is not None
        assert await other.get(made.entry.id) is not None  # open on the same file
        # A third process found it damaged and healed it: moved aside, a fresh one made.
        os.replace(path, tmp_path / "ledger.sqlite3.damaged-x")
        fresh = SqliteLedger(path)
        await fresh.prune()
        await fresh.close()
        assert await other.get(made.entry.id) is None  # reopened: the fresh file
        later = await other.submit(user="u", kind="message", key="k2", session_id=None, request={})
        assert later.entry is not None
        assert await mine.get(later.entry.id) is not None  # both on the fresh file now
    finally:
        await mine.close()
        await other.close()


async def test_a_ledger_locked_by_another_program_is_named_within_the_budget(
    tmp_path: Path, sandbox: Any
) -> None:
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=4.0)
    path = _ledger_path(settings)
    async with connect(settings) as session:  # made, in WAL mode
        assert not (await session.call("credits")).is_error
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock
        async with connect(settings) as session:
            started = time.monotonic()
            result = await session.call("generate", ASK)
            took = time.monotonic() - started
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    text = text_of(result)
    assert result.is_error and f"The work ledger {path} is locked by another program" in text
    assert took < 4.0 + 2.0  # within the budget (30-32 s before), with a generous margin
    assert sandbox.control.stats()["messages"] == []


async def test_a_full_disk_under_the_ledger_is_named_as_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    ledger = SqliteLedger(path)
    try:
        await ledger.prune()
        # SQLite's own "database or disk is full", the way a full disk ends a write.
        db = ledger._connect()
        db.execute("PRAGMA max_page_count = 1")
        try:
            await ledger.submit(
                user="u",
                kind="message",
                key="k",
                session_id=None,
                request={"pad": "x" * 9000},
            )
        except Exception as err:
            failed: Exception = err
        else:
            raise AssertionError("the write should not fit")
    finally:
        await ledger.close()
    from nemo_mcp.errors import DiskFullError

    assert isinstance(failed, DiskFullError)
    assert str(failed).startswith(f"The disk is full: {path} could not be written.")
