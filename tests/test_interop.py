"""Interop with a client no one here wrote: the official MCP Inspector CLI.

Runs `node_modules/.bin/mcp-inspector` (installed by `npm ci`, pinned in
package-lock.json) against `python -m nemo_mcp` over stdio, and against
`nemo-mcp serve --http`, both pointed at the sandbox.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
INSPECTOR = ROOT / "node_modules" / ".bin" / "mcp-inspector"


def inspector() -> Path:
    if shutil.which("node") is None:
        pytest.skip(
            "node is not installed: the MCP Inspector CLI cannot run (install Node.js, then `npm ci`)"
        )
    if not INSPECTOR.exists():
        pytest.skip("node_modules/.bin/mcp-inspector is missing: run `npm ci` in the repository")
    return INSPECTOR


def server_env(tmp_path: Path, api_url: str) -> dict[str, str]:
    return {
        "NEMO_API_URL": api_url,
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
        "NEMO_UPLOAD_DIRS": str(tmp_path),
    }


def run_inspector(
    args: list[str], *, target: list[str], env: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    command = [str(inspector()), "--cli", "--format", "json", "-q", *args]
    for key, value in (env or {}).items():
        command += ["-e", f"{key}={value}"]
    command += ["--", *target]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        payload = json.loads(done.stdout) if done.stdout.strip() else None
    except ValueError:
        payload = None
    return done.returncode, payload, done.stderr + done.stdout


STDIO = [sys.executable, "-m", "nemo_mcp"]


def test_inspector_lists_tools_strictly(tmp_path: Path, sandbox: Any) -> None:
    code, payload, output = run_inspector(
        ["--strict", "--method", "tools/list"], target=STDIO, env=server_env(tmp_path, sandbox.url)
    )
    assert code == 0, output
    tools = payload["result"]["tools"]
    assert {t["name"] for t in tools} == {"generate", "upload", "export", "credits", "timeline"}
    assert all(t.get("outputSchema") for t in tools)


@pytest.mark.parametrize(("tool", "key"), [("credits", "available"), ("timeline", "summary")])
def test_inspector_calls_tools(tmp_path: Path, sandbox: Any, tool: str, key: str) -> None:
    code, payload, output = run_inspector(
        ["--method", "tools/call", "--tool-name", tool],
        target=STDIO,
        env=server_env(tmp_path, sandbox.url),
    )
    assert code == 0, output
    result = payload["result"]
    assert not result.get("isError")
    assert key in result["structuredContent"]


def test_inspector_sees_a_clear_tool_error(tmp_path: Path, sandbox: Any) -> None:
    code, _payload, output = run_inspector(
        ["--method", "tools/call", "--tool-name", "export"],
        target=STDIO,
        env=server_env(tmp_path, sandbox.url),
    )
    assert code == 5, output
    assert "generate" in output and "Traceback" not in output


def test_inspector_finds_the_view_and_keeps_the_short_budget(tmp_path: Path, sandbox: Any) -> None:
    """The Inspector reads the view a tool names (MIME type, CSP); it sends no progress token,
    so its 60 s timer is never restarted and the call answers within NEMO_TOOL_TIMEOUT."""
    sandbox.control.set(generation_seconds=1.5)
    env = {**server_env(tmp_path, sandbox.url), "NEMO_TOOL_TIMEOUT": "0.3"}
    code, payload, output = run_inspector(
        ["--method", "tools/call", "--tool-name", "generate", "--tool-arg", "message=a cat video"],
        target=STDIO,
        env=env,
    )
    assert code == 0, output
    assert payload["result"]["structuredContent"]["status"] == "running"
    app = payload["appInfo"]
    assert app["hasApp"] is True and app["resourceUri"] == "ui://nemovideo/studio"
    assert app["resourceMimeType"] == "text/html;profile=mcp-app"
    assert app["csp"] == {"resourceDomains": [sandbox.url]}
    assert sandbox.control.stats()["requests"].get("run_sse") == 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server(tmp_path: Path, sandbox: Any) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [*STDIO, "serve", "--http", "--port", str(port)],
        env={**os.environ, **server_env(tmp_path, sandbox.url)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None:
                    pytest.fail(
                        f"serve --http exited: {process.stderr.read().decode() if process.stderr else ''}"
                    )
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()


def test_inspector_over_http(http_server: str) -> None:
    command = [
        str(inspector()),
        "--cli",
        "--format",
        "json",
        "-q",
        "--method",
        "tools/call",
        "--tool-name",
        "credits",
        http_server,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, cwd=ROOT, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr + done.stdout
    assert json.loads(done.stdout)["result"]["structuredContent"]["available"] == 100
