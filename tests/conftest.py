"""Shared fixtures: the sandbox backend served on loopback for the whole test session."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from nemo_mcp import redaction
from nemo_mcp.hosted.local import RedisClusterServers, RedisServer, missing
from nemo_mcp.redaction import RedactingFilter
from nemo_mcp.sandbox.testing import SandboxServer

from sandbox_client import Backend

#: Timings that keep every scenario well under a second or two.
FAST_SANDBOX = {
    "generation_seconds": 0.6,
    "edit_seconds": 0.2,
    "render_seconds": 0.6,
    "heartbeat_interval": 0.05,
}


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """One sandbox for the session; use `sandbox` in tests, which resets it."""
    with SandboxServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One `redis-server` (deploy/redis.conf) on a free loopback port for the session,
    in a temporary folder, ended afterwards; tests needing it skip where it is missing."""
    if reason := missing("redis-server"):
        pytest.skip(reason)
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(autouse=True)
def no_secrets_from_other_tests() -> Iterator[None]:
    """Each test starts with no registered secret: one test's tokens must never hide
    another's leak (a test finds what its own run registered, and nothing else)."""
    redaction.forget_all()
    yield
    redaction.forget_all()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """A Redis Cluster of three masters (`redis-server` in cluster mode) for the session."""
    if reason := missing("redis-server"):
        pytest.skip(reason)
    with RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")) as cluster:
        yield cluster


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox, reset to an empty world with fast timings."""
    sandbox_server.control.reset()
    sandbox_server.control.set(**FAST_SANDBOX)
    yield sandbox_server


class Transcript(logging.Handler):
    """Everything a session showed: tool results (text and structured), errors, log lines."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.results: list[str] = []
        self.errors: list[str] = []
        self.logs: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # What a real handler would write: the message, and any exception text.
        self.logs.append(logging.Formatter("%(name)s %(levelname)s %(message)s").format(record))

    def add(self, result: Any) -> Any:
        """Record one `CallToolResult`; returns it for chaining."""
        text = "\n".join(getattr(block, "text", "") for block in result.content)
        shown = text + "\n" + json.dumps(result.structured_content)
        (self.errors if result.is_error else self.results).append(shown)
        return result

    def everything(self) -> str:
        return "\n".join(self.results + self.errors + self.logs)


@pytest.fixture
def transcript() -> Iterator[Transcript]:
    """A `Transcript` attached to the root logger at DEBUG for the whole test.

    Attach it before the server is built, as a real log handler would be.
    """
    capture = Transcript()
    capture.addFilter(RedactingFilter())  # as the handler `nemo-mcp` logs through has
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(old_level)


@pytest.fixture
def backend(sandbox: SandboxServer) -> Iterator[Backend]:
    b = Backend(sandbox.url)
    yield b
    b.close()


@pytest.fixture
def other(sandbox: SandboxServer) -> Iterator[Backend]:
    b = Backend(sandbox.url)
    yield b
    b.close()
