"""Host and Origin checked on every bind: a Host/Origin matrix over real `serve --http`
processes (DNS rebinding: a page on evil.example reaching a loopback server by its own name).

Before, only `--host 127.0.0.1`, `localhost` and `::1` spelt exactly were checked (by the
SDK): `--host 127.0.0.2` or `LOCALHOST` answered `Host: evil.example` with the local
user's account.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from processes import INITIALIZE, end, run_http, server_env

TOKEN = "carol-secret-token-789"
PUBLIC = "https://mcp.example.com"


@dataclass
class Bind:
    host: str  # as given to --host
    connect: str  # the address to reach it at
    served: bool = False


BINDS = [
    Bind("127.0.0.1", "127.0.0.1"),
    Bind("127.0.0.2", "127.0.0.2"),
    Bind("LOCALHOST", "127.0.0.1"),
    Bind("::1", "[::1]"),
    Bind("127.0.0.3", "127.0.0.3", served=True),  # tokens: served, with NEMO_PUBLIC_URL
]


def _listening(address: str, port: int, process: Any, log: Path) -> None:
    deadline = time.monotonic() + 30
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    while time.monotonic() < deadline:
        with socket.socket(family) as probe:
            probe.settimeout(0.5)
            if probe.connect_ex((address.strip("[]"), port)) == 0:
                return
        if process.poll() is not None:
            pytest.fail(f"serve --http exited: {log.read_text()}")
        time.sleep(0.05)  # a port has nothing to wait on; the bind follows within ms
    pytest.fail(f"not listening: {log.read_text()}")


@pytest.fixture(
    scope="module", params=BINDS, ids=lambda b: b.host + (" served" if b.served else "")
)
def bind(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, sandbox_server: Any
) -> Iterator[tuple[Bind, str]]:
    spec: Bind = request.param
    if spec.host == "::1":
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback here")
    root = tmp_path_factory.mktemp("bind")
    env = server_env(root, sandbox_server)
    if spec.served:
        env.update(NEMO_HTTP_TOKENS=TOKEN, NEMO_PUBLIC_URL=PUBLIC)
    log = root / "stderr.log"
    process, port = run_http(env, log, "--host", spec.host)
    try:
        _listening(spec.connect, port, process, log)
        yield spec, f"http://{spec.connect}:{port}/mcp"
    finally:
        end(process)


def _post(url: str, headers: dict[str, str]) -> int:
    sent = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "authorization": f"Bearer {TOKEN}",
        **headers,
    }
    return httpx.post(url, headers=sent, json=INITIALIZE, timeout=30).status_code


LOOPBACK_HOSTS = ["localhost", "LOCALHOST", "LocalHost.", "127.0.0.1", "127.9.9.9", "[::1]"]
FOREIGN_HOSTS = ["evil.example", "localhost.evil.example", "127.0.0.1.nip.io", "[::2]"]
LOOPBACK_ORIGINS = [
    "http://localhost:3000",
    "http://127.0.0.1",
    "https://[::1]:9",
    "http://LOCALHOST",
]
FOREIGN_ORIGINS = ["http://evil.example", "null", "http://localhost.evil.example", "file://"]


def test_the_matrix(bind: tuple[Bind, str]) -> None:
    spec, url = bind
    port = url.rsplit(":", 1)[1].split("/")[0]
    for host in LOOPBACK_HOSTS:
        assert _post(url, {"host": f"{host}:{port}"}) == 200, host
        assert _post(url, {"host": host}) == 200, host
    for origin in LOOPBACK_ORIGINS:
        assert _post(url, {"origin": origin}) == 200, origin
    for host in FOREIGN_HOSTS:
        got = _post(url, {"host": f"{host}:{port}"})
        assert got == 421, (host, got)
    for origin in FOREIGN_ORIGINS:
        got = _post(url, {"origin": origin})
        assert got == 403, (origin, got)
    both = _post(url, {"host": "evil.example", "origin": "http://evil.example"})
    assert both == 421
    public = {"host": "mcp.example.com", "origin": PUBLIC}
    assert _post(url, public) == (200 if spec.served else 421)
    if spec.served:
        assert _post(url, {"host": "MCP.example.com:443"}) == 200


def test_a_served_wildcard_bind_without_a_public_url_checks_origins_only() -> None:
    from nemo_mcp.server.exposure import Exposure
    from nemo_mcp.server.http import host_rule

    served = Exposure(served=True, how="HTTP on 0.0.0.0 with tokens")
    rule = host_rule(served, None, "0.0.0.0")
    assert rule.host_ok("203.0.113.7:8000") and rule.host_ok("mcp.internal")
    assert rule.origin_ok("https://mcp.internal", "mcp.internal")
    assert not rule.origin_ok("https://evil.example", "mcp.internal")
    public = host_rule(served, PUBLIC, "0.0.0.0")
    assert public.host_ok("mcp.example.com") and not public.host_ok("mcp.internal")
    assert host_rule(Exposure.local("HTTP on ::1"), PUBLIC, "::1").public is None
