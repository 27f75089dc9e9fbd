"""Hosted at scale: per-user resources bounded and reclaimed, per-user opening, Redis
trouble named as Redis within the call's budget.

Each test runs a real `serve --http` process on a real Redis (the session's
`redis_server`, or one of its own when the test pauses it) against the sandbox, and
counts what the process holds (its open descriptors, from /proc) and what reached the
sandbox.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from nemo_mcp.hosted.local import RedisClusterServers, RedisServer, free_port
from nemo_mcp.sandbox.testing import SandboxServer

from hosted_harness import call, connect
from mcp_harness import text_of
from processes import end, needs_proc, server_env, wait_listening

pytestmark = needs_proc


def _tokens(count: int, tag: str) -> list[str]:
    return [f"{tag}-user-{n:04d}-secret-0123456789" for n in range(count)]


def _open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _serve(
    env: dict[str, str], log: Path, *, open_files: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`serve --http` on a free port, under a `ulimit -n` of `open_files` if given."""

    def limit() -> None:
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    port = free_port()
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "nemo_mcp", "serve", "--http", "--port", str(port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            preexec_fn=limit,
        )
    wait_listening(process, port, log)
    return process, f"http://127.0.0.1:{port}/mcp"


def _hosted_env(
    tmp_path: Path, sandbox: SandboxServer, redis_url: str, tokens: list[str], **extra: str
) -> dict[str, str]:
    env = server_env(tmp_path, sandbox, NEMO_STATE_URL=redis_url, NEMO_HTTP_TOKENS=",".join(tokens))
    del env["NEMO_OUTPUT_DIR"]  # hosted: nothing saved on the replica's disk
    env.update(extra)
    return env


def _credits(result: Any) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return dict(result.structured_content)


# 1. Per-user resources bounded and reclaimed ---------------------------------------------
#: The `ulimit -n` the server runs under: what it needs to start, and a few dozen more.
OPEN_FILES = 96
#: More distinct users than that allows when each keeps its HTTP client open.
USERS = 120
CACHE = 4


async def test_open_files_stay_flat_in_users_served_under_a_low_ulimit(
    tmp_path: Path, sandbox: SandboxServer, redis_server: RedisServer
) -> None:
    tokens = _tokens(USERS, "fd")
    env = _hosted_env(tmp_path, sandbox, redis_server.url, tokens, NEMO_MAX_USERS=str(CACHE))
    process, url = _serve(env, tmp_path / "server.log", open_files=OPEN_FILES)
    try:
        held: list[int] = []
        first = _credits(await call(url, tokens[0], "credits", {}))
        for n, token in enumerate(tokens[1:], start=1):
            _credits(await call(url, token, "credits", {}))
            if n in (CACHE * 2, USERS - 1):
                held.append(_open_files(process.pid))
        # The first user, closed long ago, is opened again from Redis: the same account.
        again = _credits(await call(url, tokens[0], "credits", {}))
        assert again == first
        early, late = held
        assert late <= early + 8, f"open files grew from {early} to {late} over {USERS} users"
        assert sandbox.control.stats()["tokens_issued"] == USERS  # one each, never twice
    finally:
        end(process)
    assert "Too many open files" not in (tmp_path / "server.log").read_text()


# 2. Per-user opening; Redis stalled is named as Redis, within the budget ---------------
@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own (it is paused), resumed and ended afterwards."""
    with RedisServer(tmp_path / "redis") as server:
        try:
            yield server
        finally:
            assert server.process is not None
            os.kill(server.process.pid, signal.SIGCONT)


async def test_a_stalled_redis_is_named_and_never_holds_other_users(
    tmp_path: Path, sandbox: SandboxServer, own_redis: RedisServer
) -> None:
    tokens = _tokens(4, "stall")
    open_user, *new_users = tokens
    env = _hosted_env(
        tmp_path, sandbox, own_redis.url, tokens, NEMO_REDIS_TIMEOUT="1", NEMO_TOOL_TIMEOUT="3"
    )
    process, url = _serve(env, tmp_path / "server.log")
    assert own_redis.process is not None
    try:
        _credits(await call(url, open_user, "credits", {}))
        async with (
            connect(url, open_user) as opened,
            connect(url, new_users[0]) as one,
            connect(url, new_users[1]) as two,
            connect(url, new_users[2]) as three,
        ):
            os.kill(own_redis.process.pid, signal.SIGSTOP)
            answers: dict[str, Any] = {}
            took: dict[str, float] = {}

            async def ask(name: str, client: Any) -> None:
                started = time.monotonic()
                answers[name] = await client.call_tool("credits", {})
                took[name] = time.monotonic() - started

            async with anyio.create_task_group() as tasks:
                # New users first: each opens against the stalled Redis...
                for name, client in (("one", one), ("two", two), ("three", three)):
                    tasks.start_soon(ask, name, client)
                # ...while the user already open asks too.
                tasks.start_soon(ask, "opened", opened)
            os.kill(own_redis.process.pid, signal.SIGCONT)
            for name, result in answers.items():
                words = text_of(result)
                assert result.is_error, (name, words)
                assert "Redis" in words and "NemoVideo" not in words, (name, words)
                assert "unexpected" not in words and "Traceback" not in words, (name, words)
            # Generous: within the call's budget (3 s), never one open after another.
            assert max(took.values()) < 6, took
            # Redis is back: everybody is served, the new users opened from it.
            for client in (opened, one, two, three):
                _credits(await client.call_tool("credits", {}))
    finally:
        end(process)


# 3. Bookkeeping that failed is unclear, not failed --------------------------------------
async def test_a_render_whose_bookkeeping_failed_is_resumed_never_rendered_again(
    tmp_path: Path, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The render finished at the backend, but recording it (`downloading`) failed in the
    store: the entry stays as last recorded, is resumed, and the export is delivered from
    the one render."""
    from nemo_mcp.errors import SharedStateError
    from nemo_mcp.ledger.sqlite import SqliteLedger

    from mcp_harness import connect as connect_local
    from mcp_harness import make_settings

    original = SqliteLedger.save
    refused: list[str] = []

    async def flaky(self: SqliteLedger, entry_id: str, owner: str, **changes: Any) -> Any:
        if changes.get("state") == "downloading" and not refused:
            refused.append(entry_id)
            raise SharedStateError("Redis (this server's shared state) did not answer in 1 s")
        return await original(self, entry_id, owner, **changes)

    monkeypatch.setattr(SqliteLedger, "save", flaky)
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=5.0)
    async with connect_local(settings) as session:
        made = await session.call("generate", {"message": "a lighthouse in fog"})
        assert not made.is_error, text_of(made)
        for _ in range(20):
            result = await session.call("export", {})
            assert not result.is_error, text_of(result)
            if (result.structured_content or {}).get("status") == "completed":
                break
        else:
            raise AssertionError("the export never completed")
    assert refused, "the bookkeeping fault was never reached"
    assert sandbox.control.stats()["renders_started"] == 1


# 4. Waits woken by pub/sub, polling only as a fallback ----------------------------------
def _command_calls(redis_url: str, command: str) -> int:
    import redis

    with redis.Redis.from_url(redis_url, decode_responses=True) as client:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0)) if isinstance(stats, dict) else 0


async def test_a_wait_for_another_replicas_work_is_woken_not_polled(
    tmp_path: Path, sandbox: SandboxServer, own_redis: RedisServer
) -> None:
    from redis.asyncio import Redis

    from hosted_harness import Replicas

    sandbox.control.set(generation_seconds=5.0)
    token = _tokens(1, "woken")[0]
    running = Replicas(
        root=tmp_path,
        sandbox=sandbox,
        extra={
            "NEMO_STATE_URL": own_redis.url,
            "NEMO_HTTP_TOKENS": token,
            "NEMO_TOOL_TIMEOUT": "20",
            "NEMO_LEASE_SECONDS": "20",
        },
        count=2,
    )
    announced = 0
    listener = Redis.from_url(own_redis.url, decode_responses=True)
    pubsub = listener.pubsub()
    await pubsub.psubscribe("nemo:*:changed")
    try:
        running.start()
        first, second = (replica.url for replica in running.all)
        results: list[Any] = []

        async def generate(url: str) -> None:
            results.append(await call(url, token, "generate", {"message": "a kite at dusk"}))

        async def count_announcements() -> None:
            nonlocal announced
            while True:
                if await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1):
                    announced += 1

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(count_announcements)
            tasks.start_soon(generate, first)
            with anyio.fail_after(20):
                while not sandbox.control.stats()["messages"]:  # noqa: ASYNC110
                    await anyio.sleep(0.05)  # the sandbox has nothing to wait on
            reads = _command_calls(own_redis.url, "hgetall")
            started = time.monotonic()
            await generate(second)  # the same words: a wait for the first call's entry
            waited = time.monotonic() - started
            reads = _command_calls(own_redis.url, "hgetall") - reads
            while len(results) < 2:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            tasks.cancel_scope.cancel()
        for result in results:
            assert not result.is_error, text_of(result)
        assert len(sandbox.control.stats()["messages"]) == 1  # sent once
        assert waited > 1.0, "the second call did not wait for the first"
        # Two replicas read the entry when a change is announced, and every 2 s besides
        # (never every 0.25 s): generous slack for the calls' own reads.
        bound = 2 * (announced + 1) + 2 * (waited / 2.0 + 1) + 6
        assert reads <= bound, f"{reads} reads in {waited:.1f} s with {announced} announcements"
    finally:
        running.stop()
        await pubsub.aclose()
        await listener.aclose()


# 7. Operator limits, across replicas ------------------------------------------------------
async def _early_in_a_minute(redis_url: str) -> None:
    """Return when Redis's clock is early in a minute (the rate's window is the minute)."""
    import redis

    with anyio.fail_after(30), redis.Redis.from_url(redis_url) as client:
        while int(client.time()[0]) % 60 > 40:  # noqa: ASYNC110
            await anyio.sleep(0.5)  # a clock boundary: nothing to wait on


async def test_the_rate_and_the_daily_spend_are_limited_per_user_across_replicas(
    tmp_path: Path, sandbox: SandboxServer, redis_server: RedisServer
) -> None:
    from hosted_harness import Replicas

    sandbox.control.set(initial_credits=1000)  # the cap, not the balance, must refuse
    rated, spender, other = _tokens(3, f"limits-{time.time_ns()}")
    running = Replicas(
        root=tmp_path,
        sandbox=sandbox,
        extra={
            "NEMO_STATE_URL": redis_server.url,
            "NEMO_HTTP_TOKENS": ",".join((rated, spender, other)),
            "NEMO_TOOL_TIMEOUT": "10",
            "NEMO_CALLS_PER_MINUTE": "4",
            "NEMO_CREDITS_PER_DAY": "150",
        },
        count=2,
    )
    try:
        running.start()
        one, two = (replica.url for replica in running.all)
        await _early_in_a_minute(redis_server.url)
        async with connect(one, rated) as first, connect(two, rated) as second:
            for client in (first, second, first, second):
                _credits(await client.call_tool("credits", {}))
            refused = await second.call_tool("credits", {})
        assert refused.is_error
        words = text_of(refused)
        assert "4 calls a minute" in words and "wait a minute" in words, words
        _credits(await call(one, other, "credits", {}))  # another user: their own count

        async with connect(one, spender) as first, connect(two, spender) as second:
            made = await first.call_tool("generate", {"message": "a red balloon"})  # ~100
            assert not made.is_error, text_of(made)
            edit = await second.call_tool("generate", {"message": "add soft piano music"})
            assert not edit.is_error, text_of(edit)  # ~50: 150 committed
            again = await first.call_tool("generate", {"message": "add soft piano music"})
            assert not again.is_error, text_of(again)  # asked again: found, costs nothing
            over = await second.call_tool("generate", {"message": "add a title 'Up'"})
        assert over.is_error
        words = text_of(over)
        assert "150 credits a day" in words and "nothing was sent" in words, words
        assert len(sandbox.control.stats()["messages"]) == 2  # the refused one never left
    finally:
        running.stop()


# 7. Signals: metrics, /readyz, JSON log lines ---------------------------------------------
def _metric(page: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text `page` (0 when absent)."""
    for line in page.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        if head.split("{")[0] != name:
            continue
        if all(f'{k}="{v}"' in head for k, v in labels.items()):
            return float(value)
    return 0.0


async def test_metrics_readyz_and_json_logs_tell_the_operator_what_happens(
    tmp_path: Path, sandbox: SandboxServer, own_redis: RedisServer
) -> None:
    import json

    import httpx

    first, second = _tokens(2, "signals")
    env = _hosted_env(
        tmp_path,
        sandbox,
        own_redis.url,
        [first, second],
        NEMO_METRICS="/metrics",
        NEMO_LOG_FORMAT="json",
        NEMO_LOG_LEVEL="INFO",
        NEMO_MAX_USERS="1",
        NEMO_REDIS_TIMEOUT="1",
        NEMO_TOOL_TIMEOUT="10",
    )
    log = tmp_path / "server.log"
    process, url = _serve(env, log)
    base = url.removesuffix("/mcp")
    assert own_redis.process is not None
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            ready = await http.get(f"{base}/readyz")
            assert (ready.status_code, ready.json()) == (200, {"ready": True})
            async with connect(url, first) as client:
                made = await client.call_tool("generate", {"message": "a tram in the rain"})
                assert not made.is_error, text_of(made)
                result = await client.call_tool("export", {})
                while (result.structured_content or {}).get("status") in ("running", "rendering"):
                    result = await client.call_tool("export", {})
                assert not result.is_error, text_of(result)
            _credits(await call(url, second, "credits", {}))  # the cache holds one: first closes
            page = (await http.get(f"{base}/metrics")).text
            stats = sandbox.control.stats()
            assert _metric(page, "nemo_tool_calls_total", tool="generate", outcome="ok") == 1
            assert _metric(page, "nemo_tool_call_seconds_count", tool="export") >= 1
            assert _metric(page, "nemo_messages_sent_total") == len(stats["messages"]) == 1
            assert _metric(page, "nemo_renders_started_total") == stats["renders_started"] == 1
            assert _metric(page, "nemo_users_open") == 1
            assert _metric(page, "nemo_users_closed_total") == 1

            os.kill(own_redis.process.pid, signal.SIGSTOP)
            try:
                stalled = await http.get(f"{base}/readyz")
                refused = await call(url, second, "credits", {})
                page = (await http.get(f"{base}/metrics")).text
            finally:
                os.kill(own_redis.process.pid, signal.SIGCONT)
            assert stalled.status_code == 503 and "Redis" in stalled.json()["why"]
            assert refused.is_error and "Redis" in text_of(refused)
            assert _metric(page, "nemo_redis_errors_total") >= 1
            assert _metric(page, "nemo_tool_calls_total", tool="credits", outcome="error") == 1
    finally:
        end(process)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records and all({"time", "level", "logger", "message"} <= set(r) for r in records)


async def test_a_user_whose_work_runs_is_never_closed_and_idle_users_are(
    tmp_path: Path, sandbox: SandboxServer, redis_server: RedisServer
) -> None:
    """The cache holds one user; the one whose message is being worked on stays open while
    five others come and go, and is answered from the same work; then, idle, all close."""
    import httpx

    sandbox.control.set(generation_seconds=10.0)
    working, *others = _tokens(6, f"busy-{time.time_ns()}")
    env = _hosted_env(
        tmp_path,
        sandbox,
        redis_server.url,
        [working, *others],
        NEMO_MAX_USERS="1",
        NEMO_USER_IDLE_SECONDS="1",
        NEMO_TOOL_TIMEOUT="4",
        NEMO_METRICS="/metrics",
    )
    process, url = _serve(env, tmp_path / "server.log")
    base = url.removesuffix("/mcp")
    try:
        async with connect(url, working) as client:
            first = await client.call_tool("generate", {"message": "a lantern on a lake"})
            assert (first.structured_content or {}).get("status") == "running", text_of(first)
            for token in others:  # each opens, and the least recently used idle one closes
                _credits(await call(url, token, "credits", {}))
            async with httpx.AsyncClient(timeout=10) as http:
                page = (await http.get(f"{base}/metrics")).text
            assert _metric(page, "nemo_users_closed_total") == len(others) - 1
            result = await client.call_tool("generate", {"message": "a lantern on a lake"})
            while (result.structured_content or {}).get("status") == "running":
                result = await client.call_tool("generate", {"message": "a lantern on a lake"})
            assert not result.is_error, text_of(result)
        assert len(sandbox.control.stats()["messages"]) == 1  # one message, never resent
        async with httpx.AsyncClient(timeout=10) as http:
            with anyio.fail_after(20):
                while True:  # idle users are closed within a moment of their idle time
                    page = (await http.get(f"{base}/metrics")).text
                    if _metric(page, "nemo_users_open") == 0:
                        break
                    await anyio.sleep(0.2)
    finally:
        end(process)


# 5. Fencing: a replica paused past its lease only touches its own --------------------------
async def test_a_replica_paused_past_its_lease_never_touches_the_new_holders_download(
    tmp_path: Path, sandbox: SandboxServer, redis_server: RedisServer
) -> None:
    """Two replicas share an output volume. A is paused (SIGSTOP) mid-download, past its
    lease; B takes the render over and downloads it into a part of its own, then names the
    file. A, resumed, finds its claim gone: it removes its own part and names nothing."""
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.2, render_output_bytes=6_000_000)
    token = _tokens(1, f"fence-{time.time_ns()}")[0]
    out = tmp_path / "shared-out"
    common = {"NEMO_OUTPUT_DIR": str(out), "NEMO_LEASE_SECONDS": "2"}
    env_a = _hosted_env(
        tmp_path / "a", sandbox, redis_server.url, [token], NEMO_TOOL_TIMEOUT="1", **common
    )
    env_b = _hosted_env(
        tmp_path / "b", sandbox, redis_server.url, [token], NEMO_TOOL_TIMEOUT="30", **common
    )

    def parts() -> set[str]:
        return {p.name for p in out.rglob(".nemo-*.part")}  # under out/<user key>/

    def part_bytes() -> int:
        return sum(p.stat().st_size for p in out.rglob(".nemo-*.part"))

    a, url_a = _serve(env_a, tmp_path / "a.log")
    b, url_b = _serve(env_b, tmp_path / "b.log")
    try:
        made = await call(url_b, token, "generate", {"message": "a paper crane"})
        assert not made.is_error, text_of(made)
        sandbox.control.fault("download_slow", rate=1_000_000, times=2)
        started = await call_once(url_a, token, "export")  # A starts it, answers "running"
        assert not started.is_error, text_of(started)
        with anyio.fail_after(30):
            while part_bytes() < 500_000:  # noqa: ASYNC110
                await anyio.sleep(0.05)  # another process writes it: nothing to wait on
        os.kill(a.pid, signal.SIGSTOP)
        seen: set[str] = set()
        results: list[Any] = []

        async def export_on_b() -> None:
            results.append(await call(url_b, token, "export", {}))

        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(export_on_b)
                with anyio.fail_after(60):
                    while not results:
                        seen |= parts()
                        await anyio.sleep(0.05)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        done = results[0]
        assert not done.is_error, text_of(done)
        saved = Path((done.structured_content or {})["file"])
        assert len(seen) >= 2, f"the two holders wrote one part file: {seen}"
        with anyio.fail_after(60):
            while parts():  # noqa: ASYNC110 - A resumes, finishes its part, removes it
                await anyio.sleep(0.1)
        assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]
        assert saved.stat().st_size == 6_000_000
        assert sandbox.control.stats()["renders_started"] == 1
    finally:
        end(a)
        end(b)


async def call_once(url: str, bearer: str, tool: str) -> Any:
    async with connect(url, bearer) as client:
        return await client.call_tool(tool, {})


# 4. The whole of hosted mode on a real Redis Cluster -------------------------------------
async def test_replicas_on_a_redis_cluster_send_once_render_once_and_wake_each_other(
    tmp_path: Path, sandbox: SandboxServer, redis_cluster: RedisClusterServers
) -> None:
    from hosted_harness import Replicas

    token = _tokens(1, f"cluster-{time.time_ns()}")[0]
    running = Replicas(
        root=tmp_path,
        sandbox=sandbox,
        extra={
            "NEMO_STATE_URL": redis_cluster.url,
            "NEMO_REDIS_CLUSTER": "1",
            "NEMO_HTTP_TOKENS": token,
            "NEMO_TOOL_TIMEOUT": "20",
        },
        count=2,
    )
    try:
        running.start()
        urls = [replica.url for replica in running.all]
        args = {"message": "a glacier at dawn"}
        results: list[Any] = []

        async def ask(url: str, tool: str, arguments: dict[str, Any]) -> None:
            results.append(await call(url, token, tool, arguments))

        for tool, arguments in (("generate", args), ("export", {})):
            async with anyio.create_task_group() as tasks:  # the same call through both
                for url in urls:
                    tasks.start_soon(ask, url, tool, arguments)
        for result in results:
            assert not result.is_error, text_of(result)
        stats = sandbox.control.stats()
        assert len(stats["messages"]) == 1 and stats["renders_started"] == 1
        assert stats["tokens_issued"] == 1 and stats["sessions_created"] == 1
        assert running.homes_hold_no_state() == []  # everything was in the Cluster
    finally:
        running.stop()
