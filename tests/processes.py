"""nemo-mcp as a real process over stdio or HTTP: its environment, its pid, killing it.

The pid is found through /proc (Linux): tests using `stdio_server` carry the
`needs_proc` marker and are skipped elsewhere, with the reason.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from nemo_mcp.hosted.local import free_port

needs_proc = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(),
    reason="finds and measures server processes through /proc (Linux only)",
)

#: A plain HTTP `initialize` request, for tests that speak to a served server by hand.
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}


def server_env(tmp_path: Path, sandbox: Any, **extra: str) -> dict[str, str]:
    """The environment of a server process: the sandbox, and quick timings."""
    uploads = tmp_path / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
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


def server_pid(mark: str) -> int:
    """The pid of the server process started with `NEMO_TEST_MARK=mark` (our child)."""
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
        if parent == me and f"NEMO_TEST_MARK={mark}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    assert len(found) == 1, f"expected one server process, found {found}"
    return found[0]


@asynccontextmanager
async def stdio_server(env: dict[str, str]) -> AsyncIterator[tuple[Client, int]]:
    """A server subprocess and a client on its pipes; yields (client, pid).

    Several may run at once on one state folder, as two MCP clients on one computer do."""
    mark = uuid.uuid4().hex
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "nemo_mcp"], env={**env, "NEMO_TEST_MARK": mark}
    )
    client = Client(params)
    await client.__aenter__()
    try:
        yield client, server_pid(mark)
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


def run_http(
    env: dict[str, str], log: Path, *args: str, port: int | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `nemo-mcp serve --http` on `port` (default: a free loopback port), its stderr
    into `log`."""
    port = port or free_port()
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "nemo_mcp", "serve", "--http", "--port", str(port), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return process, port


def wait_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once `port` accepts connections; fail with the server's stderr if it exits."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if process.poll() is not None:
                pytest.fail(f"serve --http exited ({process.returncode}): {log.read_text()}")
            time.sleep(0.05)  # a port has nothing to wait on; the bind follows within ms
    pytest.fail(f"serve --http did not listen within 30 s: {log.read_text()}")


def end(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server process and reap it."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def http_server(env: dict[str, str], log: Path, *args: str) -> Iterator[str]:
    """A `serve --http` process for the block; yields its http://127.0.0.1:<port>/mcp URL."""
    process, port = run_http(env, log, *args)
    try:
        wait_listening(process, port, log)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        end(process)


async def until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait until `check()` holds, looking every few milliseconds (it reads another
    process's state, such as the ledger's file: there is nothing here to wait on)."""
    with anyio.fail_after(seconds):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.02)
