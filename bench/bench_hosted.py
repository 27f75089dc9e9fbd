"""Hosted: 3 replicas behind HAProxy (`deploy/haproxy.cfg`), one Redis (`deploy/redis.conf`),
U simulated users x 10 calls each, one replica SIGKILLed mid-run.

Each process runs on its own: the sandbox (`nemo-mcp sandbox`), `redis-server`, three
`nemo-mcp serve --http` replicas (own NEMO_HOME each, NEMO_STATE_URL shared), HAProxy.
Every user is a static bearer token and runs, through the load balancer with the SDK's
client (protocol 2026-07-28: no sessions, so any replica answers any request):

    credits, generate A, timeline, generate B, timeline, export, credits, timeline,
    export (the same timeline: the earlier render again), credits

A call whose result says "running"/"rendering" is called again (the wait is part of its
time); a call that fails with an error is retried once on a new connection (a replica
died under it). After the run the sandbox's own counters are compared with what was
asked: every message sent exactly once, one render per user. Reports errors, p50/p99 per
call and the counts.

The sandbox is made faster than the real service (generation 2 s, edits 1 s, renders
3 s) so the run fits in minutes; the replicas' lease is 5 s.

    .venv/bin/python bench/bench_hosted.py                   # 200 users x 10 calls
    .venv/bin/python bench/bench_hosted.py --users 50
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nemo_mcp.hosted.local import Haproxy, RedisServer, missing

from _common import (
    NEMO_MCP,
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

WAITING = {"running", "queued", "rendering"}
SANDBOX = {
    "generation_seconds": 2.0,
    "edit_seconds": 1.0,
    "render_seconds": 3.0,
    "heartbeat_interval": 0.5,
    "initial_credits": 10_000,
}


def plan(user: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("credits", {}),
        ("generate", {"message": f"a video of street number {user} at night"}),
        ("timeline", {}),
        ("generate", {"message": f"add the title 'Street {user}'"}),
        ("timeline", {}),
        ("export", {}),
        ("credits", {}),
        ("timeline", {}),
        ("export", {}),
        ("credits", {}),
    ]


class Tally:
    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []  # every failed attempt
        self.failed: list[str] = []  # calls still failing after the retry
        self.done = 0
        self.answered: set[str] = set()  # messages whose `generate` the user saw complete


async def one_call(client: Client, tool: str, args: dict[str, Any]) -> Any:
    """Finish one logical call: call again while the result says the work goes on."""
    for _ in range(60):
        result = await client.call_tool(tool, args)
        status = (result.structured_content or {}).get("status")
        if result.is_error or status not in WAITING:
            return result
    raise RuntimeError(f"{tool} still waiting after 60 calls")


async def user(url: str, token: str, n: int, tally: Tally) -> None:
    """One agent: one client for all its calls; after a failure, a new client tries the
    call once more."""
    steps = plan(n)
    step, retried, start = 0, False, time.perf_counter()
    while step < len(steps):
        try:
            async with (
                httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {token}"}, timeout=120
                ) as http,
                Client(streamable_http_client(url, http_client=http)) as client,  # type: ignore[arg-type]
            ):
                while step < len(steps):
                    tool, args = steps[step]
                    result = await one_call(client, tool, args)
                    if result.is_error:
                        raise RuntimeError(str(result.content)[:160])
                    if tool == "generate":
                        tally.answered.add(args["message"])
                    tally.times[tool].append(time.perf_counter() - start)
                    tally.done += 1
                    step, retried, start = step + 1, False, time.perf_counter()
        except Exception as err:
            tool = steps[step][0]
            tally.errors.append(f"{tool}: {type(err).__name__}: {_why(err)}"[:300])
            if retried:
                tally.failed.append(tool)
                tally.times[tool].append(time.perf_counter() - start)
                tally.done += 1
                step, retried, start = step + 1, False, time.perf_counter()
            else:
                retried = True


def _why(err: BaseException) -> str:
    """The innermost causes of a failure (an exception group's leaves)."""
    inner = getattr(err, "exceptions", None)  # an exception group (3.11+, or anyio's backport)
    if isinstance(inner, (list, tuple)):
        return "; ".join(_why(e) for e in inner)
    return f"{type(err).__name__}: {err}"


async def load(url: str, tokens: list[str], kill_at: float, kill: Any) -> tuple[Tally, float]:
    tally = Tally()
    total = len(tokens) * 10
    start = time.perf_counter()

    async def killer() -> None:
        while tally.done < total * kill_at:  # noqa: ASYNC110 - counts from this process
            await anyio.sleep(0.1)
        kill()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(killer)
        for n, token in enumerate(tokens):
            tasks.start_soon(user, url, token, n, tally)
            await anyio.sleep(0.01)  # users arrive over the first seconds, not at one instant
    return tally, time.perf_counter() - start


def run(users: int, kill_at: float) -> str:
    for program in ("redis-server", "haproxy"):
        if reason := missing(program):
            raise SystemExit(reason)
    tokens = [f"bench-user-{n:04d}-{os.urandom(6).hex()}" for n in range(users)]
    with sandbox_process(**SANDBOX) as api, scratch() as folder:
        redis = RedisServer(folder / "redis").start()
        replicas: list[subprocess.Popen[bytes]] = []
        ports = [free_port() for _ in range(3)]
        try:
            for n, port in enumerate(ports):
                env = server_env(
                    api,
                    folder / f"replica{n}",
                    NEMO_STATE_URL=redis.url,
                    NEMO_HTTP_TOKENS=",".join(tokens),
                    NEMO_TOOL_TIMEOUT="15",
                    NEMO_LEASE_SECONDS="5",
                    NEMO_RENDER_MIN_SECONDS="1",
                    NEMO_RECOVERY_DELAYS="1,1,1,1,1",
                )
                del env["NEMO_OUTPUT_DIR"]  # hosted: exports are URLs
                replicas.append(
                    subprocess.Popen(
                        [NEMO_MCP, "serve", "--http", "--host", "127.0.0.1", "--port", str(port)],
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=(folder / f"replica{n}.log").open("wb"),
                    )
                )
            for port in ports:
                wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
            victim = replicas[1]

            def kill() -> None:
                os.kill(victim.pid, signal.SIGKILL)

            with Haproxy(folder / "haproxy", [f"127.0.0.1:{p}" for p in ports]) as lb:
                assert redis.process is not None and lb.process is not None
                watched = {
                    "replicas (3)": [p.pid for p in replicas],
                    "Redis": [redis.process.pid],
                    "HAProxy": [lb.process.pid],
                    "this client": [os.getpid()],
                }
                before = {name: cpu(pids) for name, pids in watched.items()}
                tally, wall = anyio.run(load, lb.url, tokens, kill_at, kill)
                used = {name: cpu(pids) - before[name] for name, pids in watched.items()}
            stats = httpx.get(f"{api}/_sandbox/stats", timeout=30).json()
        finally:
            for process in replicas:
                stop(process)
            redis.stop()
    return report(users, kill_at, tally, wall, stats, used)


def cpu(pids: list[int]) -> float:
    """User + system CPU seconds of `pids` so far (a dead one counts what it had)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def report(
    users: int,
    kill_at: float,
    tally: Tally,
    wall: float,
    stats: dict[str, Any],
    used: dict[str, float],
) -> str:
    asked = Counter(
        text
        for n in range(users)
        for tool, args in plan(n)
        if tool == "generate"
        for text in [args["message"]]
    )
    sent = Counter(m["text"] for m in stats["messages"])
    lost = sum(1 for text in tally.answered if sent[text] == 0)
    unanswered = [text for text in asked if text not in tally.answered]
    doubled = sum(count - 1 for text, count in sent.items() if count > 1)
    renders = Counter(r["session_id"] for r in stats["renders"])
    rows = []
    for tool in ("credits", "generate", "timeline", "export"):
        ms = [t * 1000 for t in tally.times[tool]]
        rows.append((f"`{tool}`", len(ms), f"{pct(ms, 50):.0f}", f"{pct(ms, 99):.0f}"))
    every = [t * 1000 for times in tally.times.values() for t in times]
    rows.append(("all", len(every), f"{pct(every, 50):.0f}", f"{pct(every, 99):.0f}"))
    lines = [
        f"Machine: {machine()}",
        "",
        f"{users} users x 10 calls through HAProxy to 3 replicas; replica 2 SIGKILLed when "
        f"{kill_at:.0%} of the calls were done. Wall time {wall:.0f} s.",
        "",
        table(["call", "calls", "p50 ms", "p99 ms"], rows),
        "",
        table(
            ["", "count"],
            [
                ("calls made (of those planned)", f"{len(every)} of {users * 10}"),
                ("failed attempts (retried once on a new connection)", len(tally.errors)),
                ("calls failed after the retry", len(tally.failed)),
                ("messages asked (distinct)", len(asked)),
                ("messages the backend received", len(stats["messages"])),
                ("messages answered to the user but never received (lost)", lost),
                ("messages received twice or more (doubled)", doubled),
                (
                    "messages whose call failed twice for the user: received anyway / not",
                    f"{sum(1 for t in unanswered if sent[t])} / "
                    f"{sum(1 for t in unanswered if not sent[t])}",
                ),
                ("renders started (one per user asked)", stats["renders_started"]),
                ("users with more than one render", sum(1 for c in renders.values() if c > 1)),
                ("anonymous tokens issued / sessions made", f"{stats['tokens_issued']} / "
                 f"{stats['sessions_created']}"),
            ],
        ),
    ]  # fmt: skip
    lines += [
        "",
        "CPU seconds during the run: "
        + ", ".join(f"{name} {seconds:.0f}" for name, seconds in used.items())
        + " (the killed replica's stop at its death; the sandbox is not counted).",
    ]
    if tally.errors:
        kinds = Counter(e.split(": ", 1)[1][:120] for e in tally.errors)
        lines += ["", "Failed attempts, by what the client saw:", ""]
        lines += [f"- {count} x {kind}" for kind, count in kinds.most_common(8)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of calls done")
    args = parser.parse_args()
    print(run(args.users, args.kill_at))


if __name__ == "__main__":
    main()
