"""`nemo-mcp serve --http` as a real process: loopback only, DNS-rebinding protection on."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client

from mcp_harness import text_of
from processes import INITIALIZE, end, needs_proc

pytestmark = needs_proc

STARTUP_SECONDS = 20.0
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket process `pid` listens on, read from /proc."""
    inodes = _socket_inodes(pid)
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            hex_addr, hex_port = fields[1].split(":")
            if len(hex_addr) == 8:
                address = ".".join(str(int(hex_addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                address = "ipv6:" + hex_addr
            found.append((address, int(hex_port, 16)))
    return found


@pytest.fixture(scope="module")
def http_server(
    tmp_path_factory: pytest.TempPathFactory, sandbox_server: Any
) -> Iterator[tuple[int, list[tuple[str, int]]]]:
    """`python -m nemo_mcp serve --http --port 0` against the sandbox, one for this module;
    yields (port, listening sockets)."""
    tmp_path = tmp_path_factory.mktemp("http")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "NEMO_API_URL": sandbox_server.url,
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
        "NEMO_LOG_LEVEL": "INFO",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "nemo_mcp", "serve", "--http", "--port", "0"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        # The session manager starts in the app's lifespan; uvicorn binds right after it.
        for line in process.stderr:
            if "session manager started" in line:
                break
        else:
            pytest.fail(f"the HTTP server exited before starting (code {process.wait()})")
        sockets = anyio.run(_bound, process.pid)
        yield sockets[0][1], sockets
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


async def _bound(pid: int) -> list[tuple[str, int]]:
    """The listening sockets once there are any (within the startup deadline)."""
    with anyio.fail_after(STARTUP_SECONDS):
        # Polling /proc: there is nothing to wait on; the bind follows within ms.
        while not (sockets := listening(pid)):  # noqa: ASYNC110
            await anyio.sleep(0.02)
    return sockets


def test_binds_loopback_only_by_default(
    sandbox: Any, http_server: tuple[int, list[tuple[str, int]]]
) -> None:
    port, sockets = http_server
    assert sockets == [("127.0.0.1", port)]


async def test_credits_over_http(
    http_server: tuple[int, list[tuple[str, int]]], sandbox: Any
) -> None:
    port, _ = http_server
    async with Client(f"http://127.0.0.1:{port}/mcp") as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("credits", {})
    assert tools == {"generate", "upload", "export", "credits", "timeline"}
    assert not result.is_error, text_of(result)
    assert result.structured_content["available"] == 100  # type: ignore[index]
    assert sandbox.control.stats()["requests"]["credits"] == 1


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Host": "evil.example"}, 421),
        ({"Host": "evil.example:80"}, 421),
        ({"Origin": "http://evil.example"}, 403),
    ],
)
async def test_foreign_host_or_origin_is_refused(
    http_server: tuple[int, list[tuple[str, int]]],
    sandbox: Any,
    headers: dict[str, str],
    status: int,
) -> None:
    port, _ = http_server
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        refused = await http.post("/mcp", json=INITIALIZE, headers={**MCP_HEADERS, **headers})
        allowed = await http.post("/mcp", json=INITIALIZE, headers=MCP_HEADERS)
    assert refused.status_code == status, refused.text
    assert allowed.status_code == 200, allowed.text
    assert sandbox.control.stats()["requests"] == {}


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "nemo_mcp", "serve", "--http", "--port", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _env(tmp_path: Path, sandbox: Any) -> dict[str, str]:
    """A server at the default log level (WARNING), as a user starts it."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "NEMO_API_URL": sandbox.url,
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
    }


def _first_line_with(process: subprocess.Popen[str], mark: str) -> str:
    """The first stderr line holding `mark`, read within the startup deadline."""
    found: queue.Queue[str] = queue.Queue()
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if mark in line:
                found.put(line)
                return
        found.put("")

    threading.Thread(target=read, daemon=True).start()
    try:
        line = found.get(timeout=STARTUP_SECONDS)
    except queue.Empty:
        line = ""
    if not line:
        pytest.fail(f"no line with {mark!r} on stderr: {''.join(lines)}")
    return line


def test_serve_prints_the_url_it_serves_once_listening(tmp_path: Path, sandbox: Any) -> None:
    process = _serve(_env(tmp_path, sandbox), 0)
    try:
        line = _first_line_with(process, "http://")
        url = line[line.index("http://") :].split()[0].rstrip(".")
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp"), line
        assert not url.startswith("http://127.0.0.1:0/")  # the port really bound, not the asked 0
        # Printed once listening: the URL answers at once, without waiting for anything.
        answer = httpx.post(url, json=INITIALIZE, headers=MCP_HEADERS, timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        end(process)
        if process.stderr is not None:
            process.stderr.close()


def test_a_port_in_use_ends_with_one_sentence(tmp_path: Path, sandbox: Any) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = _serve(_env(tmp_path, sandbox), port)
        try:
            _, err = process.communicate(timeout=STARTUP_SECONDS)
        finally:
            end(process)
    lines = [line for line in err.splitlines() if line.strip()]
    said = lines[-1]
    assert process.returncode == 2, err
    assert f"port {port}" in said and "in use" in said and "--port" in said, err
    for raw in ("Traceback", "Errno", "address already in use", "ERROR"):
        assert raw not in err, err


def test_the_sandbox_on_a_port_in_use_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    from nemo_mcp.sandbox.__main__ import run

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert run(port=port) == 1
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port" in err, err
