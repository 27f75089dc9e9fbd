"""Hosted under load with few Redis connections: load makes calls wait, never fail.

A real `serve --http` process with a pool of 4 Redis connections (and a short Redis
timeout) serves many users at once against the sandbox: every call is answered, each
message reaches the sandbox once, each user gets one render, and the health check keeps
answering while the commands queue. Then the mechanisms alone: commands cancelled while
they wait for, or give back, a connection never keep it from the others; the health
check asks Redis beside busy commands; a lease renewal answered late never undoes the
state change written after it (which made a render fail under load).
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import httpx
from test_hosted_scale import _hosted_env, _serve, _tokens

from nemo_mcp.hosted.local import RedisServer
from nemo_mcp.sandbox.testing import SandboxServer

from hosted_harness import connect, finish
from mcp_harness import text_of
from processes import end, needs_proc

USERS = 16
#: Few connections for many users: the commands queue for them.
POOL = 4


@needs_proc
async def test_many_users_on_a_small_redis_pool_are_all_served_once(
    tmp_path: Path, sandbox: SandboxServer, redis_server: RedisServer
) -> None:
    tokens = _tokens(USERS, "pool")
    env = _hosted_env(
        tmp_path,
        sandbox,
        redis_server.url,
        tokens,
        NEMO_REDIS_MAX_CONNECTIONS=str(POOL),
        NEMO_REDIS_TIMEOUT="0.5",
        NEMO_TOOL_TIMEOUT="10",
    )
    process, url = _serve(env, tmp_path / "server.log")
    failures: list[str] = []
    health: Counter[int] = Counter()
    done = anyio.Event()

    async def user(n: int, token: str) -> None:
        async with connect(url, token) as client:
            for tool, args in (
                ("generate", {"message": f"a harbour at dawn, number {n}"}),
                ("timeline", {}),
                ("export", {}),
                ("credits", {}),
            ):
                result = await finish(client, tool, args, tries=40)
                if result.is_error:
                    failures.append(f"{tool}: {text_of(result)}")

    async def check_health() -> None:
        base = url.removesuffix("/mcp")
        async with httpx.AsyncClient(timeout=10) as http:
            while not done.is_set():
                health[(await http.get(f"{base}/healthz")).status_code] += 1
                await anyio.sleep(0.1)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(check_health)
            async with anyio.create_task_group() as users:
                for n, token in enumerate(tokens):
                    users.start_soon(user, n, token)
            done.set()
    finally:
        end(process)
    log = (tmp_path / "server.log").read_text()
    assert failures == [], failures[:3]
    stats = sandbox.control.stats()
    sent = Counter(m["text"] for m in stats["messages"])
    assert len(sent) == USERS and set(sent.values()) == {1}, sent
    assert stats["renders_started"] == USERS
    assert set(health) == {200}, health
    assert "stayed busy" not in log and "failed unexpectedly" not in log, log[-2000:]


async def test_commands_cancelled_mid_way_never_keep_a_connection(
    redis_server: RedisServer,
) -> None:
    """Thousands of commands and pipelines cancelled at random points, on 2 places:
    afterwards every connection is back, and a command gets one at once."""
    from nemo_mcp.hosted.redis_client import connect as connect_redis
    from nemo_mcp.scale import Scale

    redis: Any = connect_redis(redis_server.url, Scale(redis_max_connections=2, redis_timeout=1))
    script = redis.register_script("return redis.call('INCR', KEYS[1])")
    rng = random.Random(7)

    async def busy(n: int) -> None:
        with anyio.move_on_after(rng.random() * 0.02):
            for _ in range(3):
                await redis.incr(f"pool-test:{n % 5}")
                await script(keys=[f"pool-test:s{n % 5}"])
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.get("pool-test:0")
                    pipe.get("pool-test:1")
                    await pipe.execute()

    try:
        async with anyio.create_task_group() as tasks:
            for n in range(1500):
                tasks.start_soon(busy, n)
        pool = redis.connection_pool
        assert len(pool._in_use_connections) == 0
        with anyio.fail_after(1):
            assert await redis.ping()
    finally:
        await redis.aclose()


async def test_the_health_check_never_waits_behind_busy_commands(
    redis_server: RedisServer,
) -> None:
    """Every command place held: the health check still asks Redis, and is answered."""
    from nemo_mcp.hosted.redis_client import answers
    from nemo_mcp.hosted.redis_client import connect as connect_redis
    from nemo_mcp.scale import Scale

    redis: Any = connect_redis(redis_server.url, Scale(redis_max_connections=1, redis_timeout=1))
    try:
        async with anyio.create_task_group() as tasks:
            # BLPOP holds its place (and its connection) for the whole second.
            tasks.start_soon(redis.blpop, ["pool-test:never"], 0.9)
            await anyio.sleep(0.1)
            assert await answers(redis, 0.3)
    finally:
        await redis.aclose()


async def test_a_renewals_late_answer_never_undoes_a_state_change(tmp_path: Path) -> None:
    """Under load a lease renewal (sent first) may be answered after the state change
    sent next: the run keeps the newer record, and its next move is allowed."""
    from types import SimpleNamespace

    from nemo_mcp.ledger.sqlite import SqliteLedger
    from nemo_mcp.server.work import Run

    ledger = SqliteLedger(tmp_path / "ledger.db")
    held = anyio.Event()
    answered_late = anyio.Event()

    class LateRenewals:
        """The ledger, each renewal's answer held back until the state change is done."""

        async def finish(self, entry_id: str, owner: str, **changes: Any) -> Any:
            return await ledger.finish(entry_id, owner, **changes)

        async def save(self, entry_id: str, owner: str, **changes: Any) -> Any:
            answer = await ledger.save(entry_id, owner, **changes)
            if changes.get("state") is None:
                held.set()
                await answered_late.wait()
            return answer

    try:
        await ledger.submit(user="u", kind="render", key="k", session_id=None, request={})
        entry = await ledger.claim_head("u", "me", lease=30.0)
        assert entry is not None
        work = SimpleNamespace(ledger=LateRenewals(), owner="me", lease=30.0, touch=lambda: None)
        run = Run(work, entry)  # type: ignore[arg-type]
        async with anyio.create_task_group() as tasks:
            run.phase("starting the render")  # progress to write: a renewal goes out
            tasks.start_soon(run.keep_alive, tasks.cancel_scope)
            await held.wait()
            await run.save(state="starting", render_id="r1")
            answered_late.set()
            await anyio.sleep(0.05)  # the renewal's (older) answer arrives now
            assert run.entry.state == "starting"
            await run.save(state="rendering")  # a move from "starting", never from "queued"
            tasks.cancel_scope.cancel()
    finally:
        await ledger.close()
