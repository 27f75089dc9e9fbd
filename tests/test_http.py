"""`serve --http`: loopback by default, bearer tokens required elsewhere, one identity per user."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_harness import text_of

TOKENS = ("alice-secret-token-123", "bob-secret-token-456")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    tmp_path: Path, api_url: str, *args: str, **env: str
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "nemo_mcp", "serve", "--http", "--port", str(port), *args],
        env={
            **os.environ,
            "NEMO_API_URL": api_url,
            "NEMO_HOME": str(tmp_path / "home"),
            "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
            "NEMO_TOOL_TIMEOUT": "20",
            **env,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    return process, port


def wait_up(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError as err:
            if process.poll() is not None:
                said = process.stderr.read().decode() if process.stderr else "exited"
                raise AssertionError(said) from err
            time.sleep(0.05)
    raise AssertionError("serve --http did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=10)
    if process.stderr is not None:
        process.stderr.close()


@pytest.fixture
def gated(tmp_path: Path, sandbox: Any) -> Iterator[str]:
    process, port = start(tmp_path, sandbox.url, NEMO_HTTP_TOKENS=",".join(TOKENS))
    try:
        wait_up(process, port)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(process)


def test_other_hosts_need_tokens(tmp_path: Path, sandbox: Any) -> None:
    process, _ = start(tmp_path, sandbox.url, "--host", "0.0.0.0")
    code = process.wait(timeout=60)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.stderr is not None:
        process.stderr.close()
    assert code == 2
    assert "NEMO_HTTP_TOKENS" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", "Basic abc", f"Bearer {TOKENS[0]}x"]
)
def test_requests_without_a_valid_token_are_refused(gated: str, header: str | None) -> None:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if header:
        headers["authorization"] = header
    response = httpx.post(
        gated, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    )
    assert response.status_code == 401
    assert "bearer" in response.headers["www-authenticate"].lower()


async def call(url: str, token: str, tool: str, args: dict[str, Any] | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http)) as client,  # type: ignore[arg-type]
    ):
        return await client.call_tool(tool, args or {})


async def test_each_token_is_its_own_user(gated: str, sandbox: Any, tmp_path: Path) -> None:
    made = await call(gated, TOKENS[0], "generate", {"message": "a video of a tram at night"})
    assert not made.is_error, text_of(made)
    alice = await call(gated, TOKENS[0], "timeline")
    bob = await call(gated, TOKENS[1], "timeline")
    assert alice.structured_content["ready_for_export"] is True
    assert bob.structured_content["ready_for_export"] is False
    assert alice.structured_content["session_id"] != bob.structured_content["session_id"]
    bob_credits = await call(gated, TOKENS[1], "credits")
    assert bob_credits.structured_content["available"] == 100
    stats = sandbox.control.stats()
    assert stats["tokens_issued"] == 2 and stats["sessions_created"] == 2
    users = sorted(p.name for p in (tmp_path / "home" / "http-users").iterdir())
    assert len(users) == 2
    for token in TOKENS:
        assert all(token not in name for name in users)


def test_foreign_host_header_is_refused(gated: str) -> None:
    response = httpx.post(
        gated,
        headers={
            "authorization": f"Bearer {TOKENS[0]}",
            "host": "evil.example",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert response.status_code in (400, 403, 421)


def test_request_bodies_are_bounded(gated: str) -> None:
    response = httpx.post(
        gated,
        headers={
            "authorization": f"Bearer {TOKENS[0]}",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        },
        content=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "pad": "'
        + b"x" * (5 * 1024 * 1024)
        + b'"}',
    )
    assert response.status_code == 413
