"""Per-call overhead: the `credits` tool through MCP over stdio vs the same GET made with httpx.

Both run against one sandbox process: the MCP path is client -> stdio -> `nemo-mcp` ->
httpx -> sandbox; the direct path is one keep-alive `httpx.AsyncClient` -> sandbox for
GET /api/credits/balance/simple. Calls alternate in blocks so drift hits both alike.

    .venv/bin/python bench/bench_calls.py               # 500 calls each
    .venv/bin/python bench/bench_calls.py --calls 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import anyio
import httpx
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import NEMO_MCP, PYTHON, ROOT, login, machine, pct, sandbox_process, scratch, server_env, table  # noqa: E402

BLOCK = 50


async def measure(url: str, home: Path, calls: int) -> tuple[list[float], list[float], list[float]]:
    headers, _ = login(url)
    env = server_env(url, home)
    params = StdioServerParameters(command=NEMO_MCP, args=[], env=env)
    noop = StdioServerParameters(command=PYTHON, args=[str(ROOT / "bench" / "noop_server.py")], env=env)
    via_mcp: list[float] = []
    direct: list[float] = []
    floor: list[float] = []
    async with Client(params) as mcp, Client(noop) as bare, httpx.AsyncClient(base_url=url, headers=headers) as http:
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
            for call in order[block % 3:] + order[: block % 3]:
                for _ in range(BLOCK):
                    await call()
    return via_mcp, direct, floor


def run(calls: int) -> str:
    with sandbox_process() as url, scratch() as home:
        via_mcp, direct, floor = anyio.run(measure, url, home, calls)
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
    return "\n".join([
        table(["path", "calls", "p50 ms", "p99 ms"], rows),
        "",
        f"MCP overhead: **p50 {p50:+.2f} ms**, p99 {p99:+.2f} ms (goal p50 <= 2 ms: {verdict}).",
        f"Of the p50, the SDK's own stdio round trip for a do-nothing tool is {pct(floor, 50) * 1000:.2f} ms; "
        f"what nemo-mcp adds beyond SDK floor + HTTP call: "
        f"{(pct(via_mcp, 50) - pct(direct, 50) - pct(floor, 50)) * 1000:+.2f} ms.",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(args.calls))


if __name__ == "__main__":
    main()
