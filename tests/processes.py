"""nemo-mcp as a real process over stdio: its environment, its pid, killing it.

The pid is found through /proc (Linux): tests using `stdio_server` carry the
`needs_proc` marker and are skipped elsewhere, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(),
    reason="finds and measures server processes through /proc (Linux only)",
)


def server_env(tmp_path: Path, sandbox: Any, **extra: str) -> dict[str, str]:
    """The environment of a server process: the sandbox, and quick timings."""
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "NEMO_API_URL": sandbox.url,
        "NEMO_WEB_URL": "https://web.test",
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
        "NEMO_UPLOAD_DIRS": str(uploads),
        "NEMO_TOOL_TIMEOUT": "1.0",
        "NEMO_RENDER_MIN_SECONDS": "0.3",
        "NEMO_RECOVERY_DELAYS": "0.2,0.2,0.2,0.2,0.2",
    }
    env.update(extra)
    return env


def server_pid(home: str) -> int:
    """The pid of this test's server process: our child whose NEMO_HOME is `home`."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and f"NEMO_HOME={home}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    assert len(found) == 1, f"expected one server process, found {found}"
    return found[0]


@asynccontextmanager
async def stdio_server(env: dict[str, str]) -> AsyncIterator[tuple[Client, int]]:
    """A server subprocess and a client on its pipes; yields (client, pid)."""
    params = StdioServerParameters(command=sys.executable, args=["-m", "nemo_mcp"], env=env)
    client = Client(params)
    await client.__aenter__()
    try:
        yield client, server_pid(env["NEMO_HOME"])
    finally:
        # When the server was killed under it, its pipes are gone and closing may complain.
        with contextlib.suppress(Exception):
            await client.__aexit__(None, None, None)


def kill(pid: int) -> None:
    """SIGKILL, and reap it so it is really gone before the next start."""
    os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # the client's own handle may reap it first
        os.waitpid(pid, 0)


def state_files(home: Path) -> dict[str, bytes]:
    """Every file under a state folder (the ledger's WAL files aside), by relative path."""
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def ledger_rows(home: Path) -> list[dict[str, Any]]:
    """The work ledger's entries, oldest first, with their JSON columns parsed."""
    (path,) = home.glob("nemo-mcp/*/ledger.sqlite3")
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = [dict(r) for r in db.execute("SELECT * FROM work ORDER BY seq")]
    for row in rows:
        for column in ("request", "progress", "memo", "outcome", "error"):
            if row[column] is not None:
                row[column] = json.loads(row[column])
    return rows


def assert_all_whole(home: Path) -> None:
    """Every state file reads: JSON as JSON, the client id as one line, the ledger as a
    sound database; no temporary or partial file is left."""
    files = state_files(home)
    assert files, "no state was persisted"
    for name, raw in files.items():
        if name.endswith(".json"):
            json.loads(raw)
        elif name.endswith(".sqlite3"):
            with contextlib.closing(sqlite3.connect(home / name)) as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        else:
            assert raw.strip() and b"\n" not in raw.strip(), name
    assert not [n for n in files if ".tmp" in n or n.endswith(".part")], files
