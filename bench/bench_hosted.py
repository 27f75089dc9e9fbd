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

Many distinct users (`--many N`, before the run above, on the same replicas): N OAuth
subjects (RS256 JWTs from a local issuer whose JWKS a tiny HTTP server serves), each
calling `credits` once through the load balancer, `--concurrency` at a time, the
replicas keeping at most `--cache` users open each (NEMO_MAX_USERS). Every replica's
RSS and open files are sampled as the users served grow: both must flatten once the
caches are full. Reports those samples, the calls' p50/p99, and failures.

`--cluster` runs the same on a Redis Cluster of three masters (redis-server in cluster
mode, `redis-cli --cluster create`) instead of one Redis.

    .venv/bin/python bench/bench_hosted.py                   # 200 users x 10 calls
    .venv/bin/python bench/bench_hosted.py --users 50
    .venv/bin/python bench/bench_hosted.py --users 200 --many 10000 --cache 500
    .venv/bin/python bench/bench_hosted.py --users 200 --many 10000 --cache 500 --cluster
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nemo_mcp.hosted.local import Haproxy, RedisClusterServers, RedisServer, missing

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


#: Answers of status 400 or more the clients got, by status and the body's first words.
STATUSES: Counter[str] = Counter()


async def _note_status(response: httpx2.Response) -> None:
    if response.status_code >= 400:
        body = (await response.aread())[:60].decode("utf-8", "replace")
        STATUSES[f"{response.status_code} {' '.join(body.split())}"] += 1


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


@asynccontextmanager
async def mcp_client(url: str, token: str) -> AsyncIterator[Client]:
    """The SDK's client on `url` with `token` as its bearer."""
    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=120,
            event_hooks={"response": [_note_status]},
        ) as http,
        Client(streamable_http_client(url, http_client=http)) as client,  # type: ignore[arg-type]
    ):
        yield client


async def user(url: str, token: str, n: int, tally: Tally) -> None:
    """One agent: one client for all its calls; after a failure, a new client tries the
    call once more."""
    steps = plan(n)
    step, retried, start = 0, False, time.perf_counter()
    while step < len(steps):
        try:
            async with mcp_client(url, token) as client:
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


class Issuer:
    """A local OAuth issuer: an RSA key, its JWKS served on loopback, tokens on demand."""

    URL = "https://issuer.bench/"

    def __init__(self) -> None:
        import base64
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self.key.public_key().public_numbers()

        def b64(number: int) -> str:
            raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        jwk = {"kty": "RSA", "kid": "bench", "use": "sig", "alg": "RS256"}
        body = json.dumps({"keys": [{**jwk, "n": b64(numbers.n), "e": b64(numbers.e)}]})

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.jwks_url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"

    def token(self, subject: str, audience: str) -> str:
        import jwt

        now = int(time.time())
        claims = {"iss": self.URL, "aud": audience, "sub": subject, "iat": now}
        claims |= {"exp": now + 7200, "client_id": "bench", "scope": "nemo"}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "bench"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def footprint(pid: int) -> tuple[float, int]:
    """A process's resident memory (MB) and open files now."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return rss / 1024, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return 0.0, 0


class Many:
    """The many-users run: call times, failures, and footprint samples."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.failed: list[str] = []
        self.samples: list[tuple[int, list[tuple[float, int]]]] = []


async def many_users(
    url: str, tokens: list[str], concurrency: int, pids: list[int], many: Many
) -> None:
    """Each token calls `credits` once; the replicas' footprint sampled every tenth."""
    served = 0
    every = max(1, len(tokens) // 10)
    places = anyio.Semaphore(concurrency)
    many.samples.append((0, [footprint(pid) for pid in pids]))

    async def one(token: str) -> None:
        nonlocal served
        async with places:
            start = time.perf_counter()
            for attempt in range(2):
                try:
                    async with mcp_client(url, token) as client:
                        result = await one_call(client, "credits", {})
                    if result.is_error:
                        raise RuntimeError(str(result.content)[:160])
                    break
                except Exception as err:
                    if attempt:
                        many.failed.append(_why(err)[:200])
            many.times.append(time.perf_counter() - start)
            served += 1
            if served % every == 0:
                many.samples.append((served, [footprint(pid) for pid in pids]))

    async with anyio.create_task_group() as tasks:
        for token in tokens:
            tasks.start_soon(one, token)


def run(
    users: int,
    kill_at: float,
    *,
    many: int = 0,
    cache: int = 500,
    concurrency: int = 20,
    cluster: bool = False,
    logs: Path | None = None,
) -> str:
    for program in ("redis-server", "haproxy"):
        if reason := missing(program):
            raise SystemExit(reason)
    tokens = [f"bench-user-{n:04d}-{os.urandom(6).hex()}" for n in range(users)]
    issuer = Issuer()
    lb_port = free_port()
    public = f"http://127.0.0.1:{lb_port}"
    crowd = Many()
    with sandbox_process(**SANDBOX) as api, scratch() as folder:
        redis: RedisServer | RedisClusterServers = (
            RedisClusterServers(folder / "redis-cluster")
            if cluster
            else RedisServer(folder / "redis")
        ).start()
        replicas: list[subprocess.Popen[bytes]] = []
        ports = [free_port() for _ in range(3)]
        try:
            for n, port in enumerate(ports):
                env = server_env(
                    api,
                    folder / f"replica{n}",
                    NEMO_STATE_URL=redis.url,
                    NEMO_HTTP_TOKENS=",".join(tokens),
                    NEMO_OAUTH_ISSUER=Issuer.URL,
                    NEMO_OAUTH_JWKS_URL=issuer.jwks_url,
                    NEMO_OAUTH_SCOPES="nemo",
                    NEMO_PUBLIC_URL=public,
                    NEMO_MAX_USERS=str(cache),
                    NEMO_REDIS_CLUSTER="1" if cluster else "0",
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

            with Haproxy(folder / "haproxy", [f"127.0.0.1:{p}" for p in ports], port=lb_port) as lb:
                assert lb.process is not None
                if many:
                    audience = f"{public}/mcp"
                    subjects = [issuer.token(f"bench-{n}", audience) for n in range(many)]
                    pids = [p.pid for p in replicas]
                    anyio.run(many_users, lb.url, subjects, concurrency, pids, crowd)
                redis_pids = (
                    [node.process.pid for node in redis.nodes if node.process]
                    if isinstance(redis, RedisClusterServers)
                    else [redis.process.pid]
                    if redis.process
                    else []
                )
                watched = {
                    "replicas (3)": [p.pid for p in replicas],
                    "Redis": redis_pids,
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
            issuer.close()
            if logs is not None:  # the replicas' logs, kept for reading afterwards
                logs.mkdir(parents=True, exist_ok=True)
                for n in range(len(replicas)):
                    shutil.copy(folder / f"replica{n}.log", logs / f"replica{n}.log")
                for found in folder.glob("redis*/**/redis-server.log"):
                    name = "-".join(found.relative_to(folder).parts)
                    shutil.copy(found, logs / name)
    text = report(users, kill_at, tally, wall, stats, used)
    where = "a Redis Cluster of three masters" if cluster else "one Redis"
    return f"State in {where}.\n\n" + (many_report(crowd, cache) + "\n\n" if many else "") + text


def many_report(many: Many, cache: int) -> str:
    ms = [t * 1000 for t in many.times]
    rows = [
        (served, *(f"{rss:.0f} / {files}" for rss, files in sample))
        for served, sample in many.samples
    ]
    lines = [
        f"{len(many.times)} distinct OAuth users, one `credits` call each, at most {cache} "
        f"users open per replica: p50 {pct(ms, 50):.0f} ms, p99 {pct(ms, 99):.0f} ms, "
        f"{len(many.failed)} failed after one retry.",
        "",
        table(["users served", "replica 1 MB / files", "replica 2", "replica 3"], rows),
    ]
    if many.failed:
        kinds = Counter(many.failed)
        lines += ["", *(f"- {count} x {kind}" for kind, count in kinds.most_common(5))]
    return "\n".join(lines)


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
        kinds = Counter(e.split(": ", 1)[1][:150] for e in tally.errors)
        lines += ["", "Failed attempts, by what the client saw:", ""]
        lines += [f"- {count} x {kind}" for kind, count in kinds.most_common(8)]
    if STATUSES:
        lines += ["", "HTTP answers of 400 or more the clients got (status, body):", ""]
        lines += [f"- {count} x {kind}" for kind, count in STATUSES.most_common(8)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--kill-at", type=float, default=0.4, help="share of calls done")
    parser.add_argument("--many", type=int, default=0, help="distinct users, one call each")
    parser.add_argument("--cache", type=int, default=500, help="users open per replica")
    parser.add_argument("--concurrency", type=int, default=20, help="many users at once")
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster of three")
    parser.add_argument("--logs", type=Path, help="keep the replicas' logs in this folder")
    args = parser.parse_args()
    print(
        run(
            args.users,
            args.kill_at,
            many=args.many,
            cache=args.cache,
            concurrency=args.concurrency,
            cluster=args.cluster,
            logs=args.logs,
        )
    )


if __name__ == "__main__":
    main()
