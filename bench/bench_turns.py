"""Agent turns per finished video: prompt to saved MP4, by client, before and after the
longer waits for clients known to keep a call open (`server/clients.py`).

An agent that sees "running" calls the same tool again, so each tool call is one turn.
The agent here does exactly that: `generate` until it is completed, then `export` until
the MP4 is saved (checked on disk). The sandbox generates for 120 s and renders for 60 s;
`nemo-mcp` runs over stdio with the default 45 s `NEMO_TOOL_TIMEOUT` and 600 s
`NEMO_LONG_TOOL_TIMEOUT`, and the shortest expected render (`NEMO_RENDER_MIN_SECONDS`)
30 s. `--scale` multiplies every one of these times (0.05 by default: 6 s and 3 s of work),
so the turn counts are those of the full times and a run takes about a minute.

"Before" is today's fixed budget for every client (`NEMO_LONG_TOOL_TIMEOUT=0`: the same
code path as before the change); "after" is the default. Each client asks for progress
(a progress token on every call), as all of them do.

A task-aware client (Claude Code, which runs MCP Tasks in the background) is measured
over streamable HTTP with the 2026-07-28 protocol (`nemo-mcp serve --http`): "before" its
requests do not declare the Tasks extension (the agent calls again on "running", as
today); "after" they do, so `generate` and `export` each answer with a task the host
polls (`tasks/get`, not model turns) until the result is inlined.

    .venv/bin/python bench/bench_turns.py                  # scaled to 1/20
    .venv/bin/python bench/bench_turns.py --scale 1        # real time, about 15 minutes
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client, StdioServerParameters
from mcp_types import Implementation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    NEMO_MCP,
    free_port,
    machine,
    sandbox_process,
    scratch,
    server_env,
    stop,
    table,
    wait_http,
)

GENERATION = 120.0
RENDER = 60.0
TOOL_TIMEOUT = 45.0
LONG_TOOL_TIMEOUT = 600.0
RENDER_MIN = 30.0

#: (clientInfo name, what it is)
CLIENTS = [
    ("Visual Studio Code", "VS Code: no timer on a tool call"),
    ("inspector-tui", "MCP Inspector TUI: 60 s timer restarted by progress"),
    ("claude-ai", "Claude Desktop: ends a call after about 60 s"),
]


@dataclass
class Run:
    client: str
    after: bool
    generate_calls: int
    export_calls: int
    progress: int
    silence: float
    seconds: float
    size: int

    @property
    def turns(self) -> int:
        return self.generate_calls + self.export_calls


async def one_video(url: str, home: Path, name: str, *, after: bool, scale: float) -> Run:
    env = server_env(
        url,
        home,
        NEMO_TOOL_TIMEOUT=f"{TOOL_TIMEOUT * scale:g}",
        NEMO_LONG_TOOL_TIMEOUT=f"{LONG_TOOL_TIMEOUT * scale:g}" if after else "0",
        NEMO_RENDER_MIN_SECONDS=f"{RENDER_MIN * scale:g}",
        NEMO_CONFIRM_SPENDING="never",
    )
    params = StdioServerParameters(command=NEMO_MCP, args=[], env=env)
    notices = 0
    silence = 0.0  # the longest time a call went without news: a progress notice or its answer
    last = 0.0

    def heard() -> None:
        nonlocal silence, last
        now = time.perf_counter()
        silence = max(silence, now - last)
        last = now

    async def on_progress(_value: float, _total: float | None, _message: str | None) -> None:
        nonlocal notices
        notices += 1
        heard()

    info = Implementation(name=name, version="1.0.0")
    calls = {"generate": 0, "export": 0}
    start = time.perf_counter()
    async with Client(params, client_info=info) as client:

        async def until_done(tool: str, args: dict[str, object], done: str) -> dict[str, object]:
            nonlocal last
            while True:
                calls[tool] += 1
                last = time.perf_counter()
                result = await client.call_tool(tool, args, progress_callback=on_progress)
                heard()
                if result.is_error:
                    raise SystemExit(f"{tool} failed: {result.content}")
                data = dict(result.structured_content or {})
                if data.get("status") == done:
                    return data

        await until_done(
            "generate", {"message": "a 10-second video of a city at night"}, "completed"
        )
        exported = await until_done("export", {}, "completed")
    seconds = time.perf_counter() - start
    saved = Path(str(exported["file"]))
    size = saved.stat().st_size
    if size != exported["size_bytes"]:
        raise SystemExit(f"{saved}: {size} bytes on disk, {exported['size_bytes']} reported")
    return Run(name, after, calls["generate"], calls["export"], notices, silence, seconds, size)


TASKS = "io.modelcontextprotocol/tasks"
#: The task-aware client: (clientInfo name, what it is).
TASK_CLIENT = ("claude-code", "Claude Code: runs MCP Tasks in the background")


@dataclass
class TaskRun:
    tasks: bool
    generate_calls: int
    export_calls: int
    polls: int
    seconds: float
    size: int

    @property
    def turns(self) -> int:
        return self.generate_calls + self.export_calls


class Rpc:
    """JSON-RPC of the 2026-07-28 protocol over streamable HTTP, the envelope on every
    request, the Tasks extension declared when `tasks` is on."""

    def __init__(self, http: httpx.AsyncClient, url: str, *, tasks: bool) -> None:
        self.http, self.url, self.tasks = http, url, tasks
        self.ids = itertools.count(1)

    async def __call__(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        capabilities = {"extensions": {TASKS: {}}} if self.tasks else {}
        meta = {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": TASK_CLIENT[0], "version": "2.1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        }
        headers = {
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": method,
            "Mcp-Name": str(params.get("name") or params.get("taskId")),
        }
        n = next(self.ids)
        body = {"jsonrpc": "2.0", "id": n, "method": method, "params": {**params, "_meta": meta}}
        response = await self.http.post(self.url, json=body, headers=headers)
        if response.headers.get("content-type", "").startswith("text/event-stream"):
            datas = [line[5:] for line in response.text.splitlines() if line.startswith("data:")]
            answer = next(m for m in map(json.loads, datas) if m.get("id") == n)
        else:
            answer = response.json()
        if "error" in answer:
            raise SystemExit(f"{method} failed: {answer['error']}")
        result: dict[str, Any] = answer["result"]
        return result


@contextmanager
def serve_http(env: dict[str, str]) -> Iterator[str]:
    """`nemo-mcp serve --http` on a free loopback port; yields its MCP URL."""
    port = free_port()
    server = subprocess.Popen(
        [NEMO_MCP, "serve", "--http", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        stop(server)


async def one_video_tasks(url: str, home: Path, *, tasks: bool, scale: float) -> TaskRun:
    env = server_env(
        url,
        home,
        NEMO_TOOL_TIMEOUT=f"{TOOL_TIMEOUT * scale:g}",
        NEMO_RENDER_MIN_SECONDS=f"{RENDER_MIN * scale:g}",
        NEMO_CONFIRM_SPENDING="never",
    )
    calls = {"generate": 0, "export": 0}
    polls = 0
    with serve_http(env) as mcp_url:
        start = time.perf_counter()
        async with httpx.AsyncClient(timeout=600.0) as http:
            rpc = Rpc(http, mcp_url, tasks=tasks)

            async def until_done(tool: str, args: dict[str, Any]) -> dict[str, Any]:
                nonlocal polls
                while True:
                    calls[tool] += 1  # a model turn
                    result = await rpc("tools/call", {"name": tool, "arguments": args})
                    while "taskId" in result:  # a task, as made or as polled
                        if result["status"] == "completed":
                            result = result["result"]
                            break
                        if result["status"] != "working":
                            raise SystemExit(f"{tool} task ended {result['status']}")
                        await anyio.sleep(result["pollIntervalMs"] / 1000)
                        polls += 1  # the host's, in the background: no model turn
                        result = await rpc("tasks/get", {"taskId": result["taskId"]})
                    if result.get("isError"):
                        raise SystemExit(f"{tool} failed: {result['content']}")
                    data: dict[str, Any] = result["structuredContent"]
                    if data.get("status") == "completed":
                        return data

            await until_done("generate", {"message": "a 10-second video of a city at night"})
            exported = await until_done("export", {})
        seconds = time.perf_counter() - start
    size = Path(str(exported["file"])).stat().st_size
    if size != exported["size_bytes"]:
        raise SystemExit(f"{exported['file']}: {size} bytes, {exported['size_bytes']} reported")
    return TaskRun(tasks, calls["generate"], calls["export"], polls, seconds, size)


async def measure_tasks(scale: float) -> list[TaskRun]:
    config = {
        "generation_seconds": GENERATION * scale,
        "render_seconds": RENDER * scale,
        "heartbeat_interval": min(0.25, 5 * scale),
    }
    runs = []
    with sandbox_process(**config) as url, scratch() as folder:
        for tasks in (False, True):
            home = folder / ("tasks" if tasks else "plain")
            home.mkdir()
            runs.append(await one_video_tasks(url, home, tasks=tasks, scale=scale))
    return runs


def report_tasks(runs: list[TaskRun], scale: float) -> str:
    before, after = runs
    heading = [
        "client (`clientInfo.name`), 2026-07-28 over HTTP",
        "turns without Tasks (generate + export)",
        "turns with Tasks",
        "with Tasks: host polls (`tasks/get`)",
        "seconds without / with (unscaled)",
    ]
    row = [
        f"`{TASK_CLIENT[0]}`: {TASK_CLIENT[1]}",
        f"{before.turns} ({before.generate_calls} + {before.export_calls})",
        f"{after.turns} ({after.generate_calls} + {after.export_calls})",
        str(after.polls),
        f"{before.seconds / scale:.0f} / {after.seconds / scale:.0f}",
    ]
    return "\n".join(
        [
            "The same video for a task-aware client: each tool call is one model turn; the "
            "host's task polls are not.",
            "",
            table(heading, [row]),
            "",
            f"Both runs saved their MP4 ({', '.join(str(r.size) for r in runs)} bytes).",
        ]
    )


async def measure(scale: float) -> list[Run]:
    runs = []
    config = {
        "generation_seconds": GENERATION * scale,
        "render_seconds": RENDER * scale,
        "heartbeat_interval": min(0.25, 5 * scale),
    }
    with sandbox_process(**config) as url, scratch() as folder:
        for n, (name, _) in enumerate(CLIENTS):
            for after in (False, True):
                home = folder / f"{n}-{'after' if after else 'before'}"
                home.mkdir()
                runs.append(await one_video(url, home, name, after=after, scale=scale))
    return runs


def report(runs: list[Run], scale: float) -> str:
    rows = []
    for name, what in CLIENTS:
        before, after = (r for r in runs if r.client == name)
        rows.append(
            [
                f"`{name}`: {what}",
                f"{before.turns} ({before.generate_calls} + {before.export_calls})",
                f"{after.turns} ({after.generate_calls} + {after.export_calls})",
                f"{after.progress} / {after.silence:.1f} s",
                f"{before.seconds / scale:.0f} / {after.seconds / scale:.0f}",
            ]
        )
    heading = [
        "client (`clientInfo.name`)",
        "turns before (generate + export)",
        "turns after",
        "after: progress notices / longest silence in a call",
        "seconds before / after (unscaled)",
    ]
    lines = [
        f"A {GENERATION:g} s generation and a {RENDER:g} s render, prompt to saved MP4 (times "
        f"scaled by {scale:g}; seconds shown divided back). Budgets: {TOOL_TIMEOUT:g} s "
        f"(`NEMO_TOOL_TIMEOUT`), {LONG_TOOL_TIMEOUT:g} s (`NEMO_LONG_TOOL_TIMEOUT`, after).",
        "",
        table(heading, rows),
    ]
    saved = {r.size for r in runs}
    lines += [
        "",
        f"Every run saved its MP4 ({', '.join(f'{s} bytes' for s in sorted(saved))}). The "
        "longest silence is real time, not scaled: the server reports progress at least every "
        "4 s, well inside the Inspector's 60 s timer.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05, help="multiplies every time")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    print(report(anyio.run(measure, args.scale), args.scale))
    print()
    print(report_tasks(anyio.run(measure_tasks, args.scale), args.scale))


if __name__ == "__main__":
    main()
