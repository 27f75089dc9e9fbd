"""Per-call overhead: the `credits` tool through MCP over stdio vs the same GET made with httpx.

Both run against one sandbox process: the MCP path is client -> stdio -> `nemo-mcp` ->
httpx -> sandbox; the direct path is one keep-alive `httpx.AsyncClient` -> sandbox for
GET /api/credits/balance/simple. Calls alternate in blocks so drift hits both alike.

    .venv/bin/python bench/bench_calls.py               # 500 calls each
    .venv/bin/python bench/bench_calls.py --calls 1000
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    NEMO_MCP,
    PYTHON,
    ROOT,
    login,
    machine,
    pct,
    sandbox_process,
    scratch,
    server_env,
    table,
)

BLOCK = 50


async def measure(url: str, home: Path, calls: int) -> tuple[list[float], list[float], list[float]]:
    headers, _ = login(url)
    env = server_env(url, home)
    params = StdioServerParameters(command=NEMO_MCP, args=[], env=env)
    noop = StdioServerParameters(
        command=PYTHON, args=[str(ROOT / "bench" / "noop_server.py")], env=env
    )
    via_mcp: list[float] = []
    direct: list[float] = []
    floor: list[float] = []
    async with (
        Client(params) as mcp,
        Client(noop) as bare,
        httpx.AsyncClient(base_url=url, headers=headers) as http,
    ):

        async def one_mcp() -> None:
            start = time.perf_counter()
            result = await mcp.call_tool("credits", {})
            via_mcp.append(time.perf_counter() - start)
            assert not result.is_error, result

        async def one_direct() -> None:
            start = time.perf_counter()
            response = await http.get("/api/credits/balance/simple")
            response.json()
            direct.append(time.perf_counter() - start)
            assert response.status_code == 200

        async def one_noop() -> None:
            start = time.perf_counter()
            result = await bare.call_tool("ping", {})
            floor.append(time.perf_counter() - start)
            assert not result.is_error, result

        order = [one_mcp, one_direct, one_noop]
        for _ in range(20):  # warm up: the server fetches its token, all open connections
            for call in order:
                await call()
        for values in (via_mcp, direct, floor):
            values.clear()
        for block in range(calls // BLOCK):
            for call in order[block % 3 :] + order[: block % 3]:
                for _ in range(BLOCK):
                    await call()
    return via_mcp, direct, floor


async def layers(url: str, home: Path, calls: int) -> dict[str, list[float]]:
    """The same call one layer at a time, all in this process (no stdio): where the time goes."""
    from noop_server import server as noop_server

    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.identity import load_identity
    from nemo_mcp.server import create_server
    from nemo_mcp.settings import Settings
    from nemo_mcp.state_files import StateStore

    headers, _ = login(url)
    settings = Settings(
        api_url=url, home=home / "layers", output_dir=home / "out", upload_dirs=(home,)
    )
    identity = load_identity()
    server = create_server(settings)
    logging.getLogger().setLevel(logging.WARNING)  # the SDK's set-up turns on INFO request logs
    times: dict[str, list[float]] = {}
    async with (
        NemoClient(settings, identity, StateStore(settings.home, url)) as nemo,
        Client(server) as in_memory,
        Client(noop_server) as bare,
        httpx.AsyncClient(base_url=url, headers=headers) as http,
    ):

        async def direct() -> None:
            (await http.get("/api/credits/balance/simple")).json()

        async def ours() -> None:
            await nemo.credits()

        async def tool() -> None:
            assert not (await in_memory.call_tool("credits", {})).is_error

        async def ping() -> None:
            await bare.call_tool("ping", {})

        steps = {
            "httpx GET": direct,
            "NemoClient.credits()": ours,
            "`credits` tool, in-memory MCP": tool,
            "`ping` tool, in-memory MCP (SDK dispatch floor)": ping,
        }
        for name, step in steps.items():
            times[name] = []
            for _ in range(20):
                await step()
        for _block in range(calls // BLOCK):
            for name, step in steps.items():
                for _ in range(BLOCK):
                    start = time.perf_counter()
                    await step()
                    times[name].append(time.perf_counter() - start)
    return times


def run(calls: int) -> str:
    with sandbox_process() as url, scratch() as home:
        via_mcp, direct, floor = anyio.run(measure, url, home, calls)
        layered = anyio.run(layers, url, home, calls)
    rows = []
    paths = (
        ("`credits` tool via MCP stdio (nemo-mcp)", via_mcp),
        ("plain httpx GET, keep-alive", direct),
        ("do-nothing `ping` tool via MCP stdio (SDK floor, no HTTP)", floor),
    )
    for name, values in paths:
        ms = [v * 1000 for v in values]
        rows.append((name, len(ms), f"{pct(ms, 50):.2f}", f"{pct(ms, 99):.2f}"))
    p50 = (pct(via_mcp, 50) - pct(direct, 50)) * 1000
    p99 = (pct(via_mcp, 99) - pct(direct, 99)) * 1000
    verdict = "met" if p50 <= 2 else f"missed by {p50 - 2:.2f} ms"
    return "\n".join(
        [
            table(["path", "calls", "p50 ms", "p99 ms"], rows),
            "",
            f"MCP overhead: **p50 {p50:+.2f} ms**, p99 {p99:+.2f} ms (goal p50 <= 2 ms: {verdict}).",
            (
                f"Of the p50, the SDK's own stdio round trip for a do-nothing tool is {pct(floor, 50) * 1000:.2f} ms; "
                "what nemo-mcp adds beyond SDK floor + HTTP call: "
                f"{(pct(via_mcp, 50) - pct(direct, 50) - pct(floor, 50)) * 1000:+.2f} ms."
            ),
            "",
            "Layer by layer, in this one process (no stdio, no second process):",
            "",
            table(
                ["layer", "p50 ms", "p99 ms"],
                [
                    (name, f"{pct(v, 50) * 1000:.2f}", f"{pct(v, 99) * 1000:.2f}")
                    for name, v in layered.items()
                ],
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(args.calls))


if __name__ == "__main__":
    main()
