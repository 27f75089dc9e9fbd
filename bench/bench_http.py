"""HTTP transport: `nemo-mcp serve --http` with many concurrent MCP clients calling `credits`.

Starts a sandbox and `nemo-mcp serve --http --port <free>` pointed at it (each in its own
process), then C concurrent SDK clients (`Client("http://127.0.0.1:PORT/mcp")`), each making
K `credits` calls in a row: once local (no bearer tokens: one user), once served to others
(`NEMO_HTTP_TOKENS` with one token per client, so C users, each with their own state and
NemoVideo identity, and sessions bound to their bearer). Then the same load on the do-nothing
server's `ping` tool
(`bench/noop_server.py --http`), the SDK's floor. Reports per-call latency p50/p99, wall time,
calls/s, errors, and CPU per call of the server and of this (client) process.

    .venv/bin/python bench/bench_http.py                     # 50 clients x 20 calls
    .venv/bin/python bench/bench_http.py --clients 100 --calls 10
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    NEMO_MCP,
    PYTHON,
    ROOT,
    free_port,
    machine,
    pct,
    sandbox_process,
    scratch,
    server_env,
    stop,
    table,
    wait_http,
)


def bearer(n: int) -> str:
    """The bearer token of served user `n` (a benchmark's own, never a real one)."""
    return f"bench-user-{n:03d}-" + "x" * 24


@asynccontextmanager
async def connected(endpoint: str, token: str | None) -> AsyncIterator[Client]:
    """The SDK's client over HTTP, sending `token` as its bearer when given."""
    if token is None:
        async with Client(endpoint) as client:
            yield client
        return
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
        Client(streamable_http_client(endpoint, http_client=http)) as client,
    ):
        yield client


async def load(
    endpoint: str, tool: str, clients: int, calls: int, served: bool = False
) -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []

    async def one_client(n: int) -> None:
        try:
            async with connected(endpoint, bearer(n) if served else None) as client:
                for _ in range(calls):
                    start = time.perf_counter()
                    result = await client.call_tool(tool, {})
                    latencies.append(time.perf_counter() - start)
                    if result.is_error:
                        errors.append(str(result.content)[:200])
        except Exception as err:
            errors.append(f"{type(err).__name__}: {err}"[:200])

    # The server fetches a NemoVideo token once per user, first (served: one per client).
    for n in range(clients if served else 1):
        async with connected(endpoint, bearer(n) if served else None) as warm:
            await warm.call_tool(tool, {})
    start = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for n in range(clients):
            tasks.start_soon(one_client, n)
    return latencies, errors, time.perf_counter() - start


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def serve(
    argv: list[str], env: dict[str, str], tool: str, clients: int, calls: int, served: bool
) -> tuple[list[float], list[str], float, float, float]:
    """Start one HTTP server, load it, stop it: latencies, errors, wall, server and client CPU s."""
    port = free_port()
    server = subprocess.Popen(
        [*argv, str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/mcp")
        server_before, client_before = cpu_seconds(server.pid), own_cpu()
        latencies, errors, wall = anyio.run(
            load, f"http://127.0.0.1:{port}/mcp", tool, clients, calls, served
        )
        return (
            latencies,
            errors,
            wall,
            cpu_seconds(server.pid) - server_before,
            own_cpu() - client_before,
        )
    finally:
        stop(server)


def run(clients: int, calls: int) -> str:
    rows = []
    expected = clients * calls
    ok = True
    all_errors: list[str] = []
    with sandbox_process() as api, scratch() as home:
        env = server_env(api, home)
        tokens = ",".join(bearer(n) for n in range(clients))
        served_env = {**server_env(api, home / "served"), "NEMO_HTTP_TOKENS": tokens}
        nemo = [NEMO_MCP, "serve", "--http", "--host", "127.0.0.1", "--port"]
        setups = (
            ("nemo-mcp `credits`, local (one user)", nemo, env, "credits", False),
            (
                f"nemo-mcp `credits`, served ({clients} bearer tokens, one user each)",
                nemo,
                served_env,
                "credits",
                True,
            ),
            (
                "do-nothing `ping` (SDK floor)",
                [PYTHON, str(ROOT / "bench" / "noop_server.py"), "--http"],
                env,
                "ping",
                False,
            ),
        )
        for name, argv, setup_env, tool, served in setups:
            latencies, errors, wall, server_cpu, client_cpu = serve(
                argv, setup_env, tool, clients, calls, served
            )
            ms = [v * 1000 for v in latencies]
            ok = ok and not errors and len(ms) == expected
            all_errors += errors
            rows.append(
                (
                    name,
                    f"{clients} x {calls}",
                    len(ms),
                    len(errors),
                    f"{pct(ms, 50):.1f}",
                    f"{pct(ms, 99):.1f}",
                    f"{wall:.2f}",
                    f"{len(ms) / wall:.0f}",
                    f"{server_cpu * 1000 / max(1, len(ms)):.1f}",
                    f"{client_cpu * 1000 / max(1, len(ms)):.1f}",
                )
            )
    errors = all_errors
    out = [
        table(
            [
                "server",
                "clients x calls",
                "calls done",
                "errors",
                "p50 ms",
                "p99 ms",
                "wall s",
                "calls/s",
                "server CPU ms/call",
                "clients' CPU ms/call",
            ],
            rows,
        ),
        "",
        (
            f"{'Zero errors' if ok else 'ERRORS'}: {expected} calls expected per server. "
            "CPU per call includes each client's connect and the warm-up; the sandbox's share is not counted. "
            "On 2 cores the server, the sandbox and all clients share the CPU, so latency under load is "
            "mostly queueing behind CPU work; the do-nothing server under the same clients is the floor."
        ),
    ]
    if errors:
        out.append("First errors: " + "; ".join(sorted(set(errors))[:3]))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(args.clients, args.calls))


if __name__ == "__main__":
    main()
