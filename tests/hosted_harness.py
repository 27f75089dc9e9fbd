"""A hosted deployment on loopback for tests: replicas sharing one Redis, an issuer of JWTs.

`Replicas` runs `nemo-mcp serve --http` processes, each with its own NEMO_HOME
(nothing shared through disk) and the same NEMO_STATE_URL; `Issuer` mints RS256
access tokens with a local key and serves its JWKS from a tiny HTTP server.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from processes import end, run_http, server_env, wait_listening

#: Tool results that mean "call again to wait".
WAITING = {"running", "queued", "rendering"}


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Issuer:
    """An OAuth issuer for tests: an RSA key, its JWKS at `jwks_url`, tokens on demand."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = uuid.uuid4().hex[:8]
        self.url = "https://issuer.test/"
        numbers = self.key.public_key().public_numbers()
        jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": self.kid,
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64(numbers.n),
                    "e": _b64(numbers.e),
                }
            ]
        }
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def token(
        self,
        sub: str,
        *,
        audience: str,
        scope: str | None = "nemo",
        issuer: str | None = None,
        expires_in: float = 600,
        key: Any = None,
        kid: str | None = None,
        **claims: Any,
    ) -> str:
        now = int(time.time())
        payload = {
            "iss": issuer or self.url,
            "aud": audience,
            "sub": sub,
            "iat": now,
            "exp": now + int(expires_in),
            "client_id": "test-client",
            **({"scope": scope} if scope is not None else {}),
            **claims,
        }
        return jwt.encode(
            payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid}
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Replica:
    root: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.root / "stderr.log"


@dataclass
class Replicas:
    """`count` replicas on one Redis and one sandbox, each with its own NEMO_HOME."""

    root: Path
    sandbox: Any
    extra: dict[str, str]
    count: int = 3
    all: list[Replica] = field(default_factory=list)

    def env(self, n: int) -> dict[str, str]:
        root = self.root / f"replica{n}"
        env = server_env(root, self.sandbox, NEMO_TOOL_TIMEOUT="3", NEMO_LEASE_SECONDS="2")
        del env["NEMO_OUTPUT_DIR"]  # hosted: nothing saved on a replica's disk
        env.update(self.extra)
        return env

    def start(self) -> None:
        for n in range(self.count):
            replica = Replica(root=self.root / f"replica{n}", env=self.env(n))
            replica.process, replica.port = run_http(replica.env, replica.log)
            self.all.append(replica)
        for replica in self.all:
            assert replica.process is not None
            wait_listening(replica.process, replica.port, replica.log)

    def kill(self, n: int) -> None:
        """SIGKILL replica `n` (it leaves its leases behind, unreleased)."""
        process = self.all[n].process
        assert process is not None
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def restart(self, n: int) -> None:
        """Start replica `n` again on its port (the address the load balancer knows)."""
        replica = self.all[n]
        log = replica.root / "stderr-restarted.log"
        replica.process, _ = run_http(replica.env, log, port=replica.port)
        wait_listening(replica.process, replica.port, log)

    def stop(self) -> None:
        for replica in self.all:
            if replica.process is not None and replica.process.poll() is None:
                end(replica.process)

    def homes_hold_no_state(self) -> list[str]:
        """State files found on any replica's disk (there must be none: all in Redis)."""
        found = []
        for replica in self.all:
            home = Path(replica.env["NEMO_HOME"])
            found += [str(p) for p in home.rglob("*") if p.is_file()] if home.exists() else []
        return found


@contextmanager
def replicas(root: Path, sandbox: Any, **extra: str) -> Iterator[Replicas]:
    running = Replicas(root=root, sandbox=sandbox, extra=extra)
    try:
        running.start()
        yield running
    finally:
        running.stop()


@asynccontextmanager
async def connect(
    url: str, bearer: str, *, mode: str = "auto", elicitation: Any = None
) -> AsyncIterator[Client]:
    """The SDK's client over HTTP with `bearer` (answering questions with `elicitation`)."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"}, timeout=60) as http,
        Client(
            streamable_http_client(url, http_client=http),  # type: ignore[arg-type]
            mode=mode,  # type: ignore[arg-type]
            elicitation_callback=elicitation,
        ) as client,
    ):
        yield client


async def finish(client: Client, tool: str, arguments: dict[str, Any], tries: int = 20) -> Any:
    """Call `tool` until its result no longer says to call again; the last result."""
    for _ in range(tries):
        result = await client.call_tool(tool, arguments)
        status = (result.structured_content or {}).get("status")
        if result.is_error or status not in WAITING:
            return result
    raise AssertionError(f"{tool} still waiting after {tries} calls")


async def call(url: str, bearer: str, tool: str, arguments: dict[str, Any], **kw: Any) -> Any:
    """One client session on `url` finishing one tool call."""
    async with connect(url, bearer, **kw) as client:
        return await finish(client, tool, arguments)
