"""Hosted: the writes of a user's token, token request, client id and session are fenced
by the lease they are made under, atomically in Redis.

Two holders of one user's home leases (as two replicas would be) on a real Redis: the
first is held up inside its lease (paused) until its lease has run out and the second
has taken it and written; the first then resumes and writes. Its write is refused, named,
and the second's record stays.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from nemo_mcp.backend.auth import HomeLeases
from nemo_mcp.errors import SharedStateError
from nemo_mcp.hosted.local import RedisServer
from nemo_mcp.hosted.redis_client import connect
from nemo_mcp.hosted.redis_client_state import RedisState, user_prefix
from nemo_mcp.ledger.redis import RedisLedger
from nemo_mcp.state_files import AuthRecord, SessionRecord


def redis_user(redis: Any, user: str) -> tuple[RedisState, RedisLedger]:
    """A user's state and ledger, under the keys a replica gives them (`hosted.serving`)."""
    prefix = user_prefix(user)
    return RedisState(redis, prefix, "api"), RedisLedger(redis, f"{prefix}:api")


def _auth(token: str) -> AuthRecord:
    return AuthRecord(token=token, user_id="u1", expires_at="2099-01-01T00:00:00Z")


def _session(session_id: str) -> SessionRecord:
    return SessionRecord(session_id=session_id, task_id="t1")


async def _write(state: Any, lease: str, value: str) -> None:
    if lease == "anonymous-token":
        await state.save_auth(_auth(value))
    else:
        await state.save_session(_session(value))


async def _read(state: Any, lease: str) -> str | None:
    if lease == "anonymous-token":
        auth = await state.load_auth()
        return None if auth is None else str(auth.token)
    session = await state.load_session()
    return None if session is None else str(session.session_id)


@pytest.mark.parametrize("lease", ["anonymous-token", "session"])
async def test_a_holder_paused_past_its_lease_has_its_write_refused(
    redis_server: RedisServer, lease: str
) -> None:
    redis = connect(redis_server.url)
    try:
        state, ledger = redis_user(redis, f"fence-{lease}")
        stale = HomeLeases(ledger, state, owner="replica-a")
        fresh = HomeLeases(ledger, state, owner="replica-b")
        taken_over = anyio.Event()
        refused: list[str] = []

        async def paused_holder() -> None:
            async with stale.hold(lease):
                await _write(state, lease, "first-holder-early-write")  # while held: kept
                # Paused past its lease: it runs out (on Redis's clock) meanwhile...
                await redis.hset(f"{state.prefix}:lease:{lease}", "until", 0)
                await taken_over.wait()
                try:
                    await _write(state, lease, "first-holder-stale-write")
                except SharedStateError as err:
                    refused.append(str(err))

        async def new_holder() -> None:
            await anyio.sleep(0.05)
            async with fresh.hold(lease):  # ...and another replica takes it and writes
                await _write(state, lease, "second-holder-write")
                taken_over.set()
                await anyio.sleep(0.1)  # still holding when the paused one resumes

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(paused_holder)
            tasks.start_soon(new_holder)
        assert len(refused) == 1, refused
        assert "refused" in refused[0] and lease in refused[0]
        assert await _read(state, lease) == "second-holder-write"

        # Outside the second's hold too (released): the lease is nobody's, still refused.
        async with stale.hold(lease):
            await redis.delete(f"{state.prefix}:lease:{lease}")
            with pytest.raises(SharedStateError):
                await _write(state, lease, "first-holder-after-release")
        assert await _read(state, lease) == "second-holder-write"
    finally:
        await redis.aclose()


async def test_the_token_request_and_a_new_client_id_are_fenced_too(
    redis_server: RedisServer,
) -> None:
    redis = connect(redis_server.url)
    try:
        state, ledger = redis_user(redis, "fence-ids")
        holder = HomeLeases(ledger, state, owner="replica-a")
        first = await state.client_id()
        async with holder.hold("anonymous-token"):
            await state.note_token_asked(first)
            await redis.delete(f"{state.prefix}:lease:anonymous-token")  # taken from it
            with pytest.raises(SharedStateError):
                await state.replace_client_id()
            with pytest.raises(SharedStateError):
                await state.note_token_asked(None)
        assert await state.client_id() == first
        assert await state.token_asked() == first
    finally:
        await redis.aclose()
