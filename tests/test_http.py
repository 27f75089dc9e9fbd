"""`serve --http`: loopback by default, bearer tokens required elsewhere, one identity per user."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcp_harness import text_of
from processes import http_server, run_http, server_env

TOKENS = ("alice-secret-token-123", "bob-secret-token-456")


@dataclass
class Gated:
    url: str
    root: Path


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory, sandbox_server: Any) -> Iterator[Gated]:
    """One server for the module, with two bearer tokens."""
    root = tmp_path_factory.mktemp("gated")
    env = server_env(root, sandbox_server, NEMO_TOOL_TIMEOUT="20")
    env["NEMO_HTTP_TOKENS"] = ",".join(TOKENS)
    with http_server(env, root / "stderr.log") as url:
        yield Gated(url=url, root=root)


def test_other_hosts_need_tokens(tmp_path: Path, sandbox: Any) -> None:
    log = tmp_path / "stderr.log"
    process, _ = run_http(server_env(tmp_path, sandbox), log, "--host", "0.0.0.0")
    code = process.wait(timeout=60)
    stderr = log.read_text()
    assert code == 2
    assert "NEMO_HTTP_TOKENS" in stderr and "Traceback" not in stderr


@pytest.mark.parametrize(
    "header", [None, "Bearer wrong-token", "Basic abc", f"Bearer {TOKENS[0]}x"]
)
def test_requests_without_a_valid_token_are_refused(gated: Gated, header: str | None) -> None:
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if header:
        headers["authorization"] = header
    response = httpx.post(
        gated.url, headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
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


async def test_each_token_is_its_own_user(gated: Gated, sandbox: Any) -> None:
    made = await call(gated.url, TOKENS[0], "generate", {"message": "a video of a tram at night"})
    assert not made.is_error, text_of(made)
    alice = await call(gated.url, TOKENS[0], "timeline")
    bob = await call(gated.url, TOKENS[1], "timeline")
    assert alice.structured_content["ready_for_export"] is True
    assert bob.structured_content["ready_for_export"] is False
    assert alice.structured_content["session_id"] != bob.structured_content["session_id"]
    bob_credits = await call(gated.url, TOKENS[1], "credits")
    assert bob_credits.structured_content["available"] == 100
    stats = sandbox.control.stats()
    assert stats["tokens_issued"] == 2 and stats["sessions_created"] == 2
    users = sorted(p.name for p in (gated.root / "home" / "http-users").iterdir())
    assert len(users) == 2
    for token in TOKENS:
        assert all(token not in name for name in users)


def test_foreign_host_header_is_refused(gated: Gated) -> None:
    response = httpx.post(
        gated.url,
        headers={
            "authorization": f"Bearer {TOKENS[0]}",
            "host": "evil.example",
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
    assert response.status_code in (400, 403, 421)


def test_request_bodies_are_bounded(gated: Gated) -> None:
    response = httpx.post(
        gated.url,
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
