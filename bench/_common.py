"""Shared helpers for the benchmarks: machine facts, percentiles, a sandbox in its own process.

The sandbox runs as a separate `nemo-mcp sandbox` process so that the backend's CPU time is not
charged to (or contending for the GIL of) the client being measured.
"""

from __future__ import annotations

import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PYTHON = str(BIN / "python")
NEMO_MCP = str(BIN / "nemo-mcp")


def machine() -> str:
    """One line naming the machine: cores, CPU model, Python version."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"nproc {os.cpu_count()}, {model}, Python {platform.python_version()}"


def pct(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def free_port() -> int:
    """A loopback port free right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0) -> None:
    """Return once `url` answers any HTTP status."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up") from None
            time.sleep(0.05)


def stop(process: subprocess.Popen[Any]) -> None:
    """End a process this script started, by its own pid."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def sandbox_process(**config: Any) -> Iterator[str]:
    """Run `nemo-mcp sandbox` on a free port with `config` applied; yields its URL."""
    port = free_port()
    process = subprocess.Popen(
        [NEMO_MCP, "sandbox", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/_sandbox/config")
        if config:
            r = httpx.post(f"{url}/_sandbox/config", json=config, timeout=10.0)
            r.raise_for_status()
        yield url
    finally:
        stop(process)


def identity_headers(skill: str | None = None) -> dict[str, str]:
    """The attribution headers the server would send for `skill` (the default skill if None)."""
    from nemo_mcp.identity import load_identity

    return load_identity(skill=skill).headers()


def login(url: str, skill: str | None = None) -> tuple[dict[str, str], str]:
    """Anonymous token + a new session: (headers with Authorization, session id). Never printed."""
    headers = identity_headers(skill)
    with httpx.Client(base_url=url, headers=headers, timeout=30.0) as http:
        r = http.post("/api/auth/anonymous-token", headers={"X-Client-Id": os.urandom(8).hex()})
        r.raise_for_status()
        headers["Authorization"] = f"Bearer {r.json()['data']['token']}"
        r = http.post(
            "/api/tasks/me/with-session/nemo_agent",
            json={"task_name": "bench", "language": "en"},
            headers=headers,
        )
        r.raise_for_status()
        return headers, str(r.json()["data"]["session_id"])


def server_env(api_url: str, home: Path, **extra: str) -> dict[str, str]:
    """Environment for a `nemo-mcp` server process against `api_url`, state under `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NEMO_", "SKILL_"))}
    env.update(
        NEMO_API_URL=api_url,
        NEMO_HOME=str(home / "home"),
        NEMO_OUTPUT_DIR=str(home / "out"),
        NEMO_UPLOAD_DIRS=str(home),
        **extra,
    )
    return env


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nemo-bench-") as name:
        yield Path(name)
