"""Shared fixtures: the sandbox backend served on loopback for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nemo_mcp.sandbox.testing import SandboxServer

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


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox, reset to an empty world with fast timings."""
    sandbox_server.control.reset()
    sandbox_server.control.set(**FAST_SANDBOX)
    yield sandbox_server
