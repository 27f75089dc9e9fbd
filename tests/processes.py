"""nemo-mcp as a real process over stdio: its environment, its pid, killing it.

The pid is found through /proc (Linux): tests using `stdio_server` carry the
`needs_proc` marker and are skipped elsewhere, with the reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
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
