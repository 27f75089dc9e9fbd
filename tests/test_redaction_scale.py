"""The redaction registry with many users: bounded, and arranged once per change (never
sorted per log line), with every secret still masked however many there are."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

from nemo_mcp import redaction


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry of this test's own (the module's is left as it was)."""
    monkeypatch.setattr(redaction, "_known", OrderedDict())
    monkeypatch.setattr(redaction, "_longest", None)
    monkeypatch.setattr(redaction, "_index", None)
    monkeypatch.setattr(redaction, "_holders", {})
    monkeypatch.setattr(redaction, "_held", {})


def _secret(n: int) -> str:
    return f"user-{n:05d}-secret-token"


def test_the_registry_keeps_the_most_recent_secrets_up_to_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redaction, "MAX_SECRETS", 200)
    for n in range(250):
        redaction.register(_secret(n))
        if n == 100:
            redaction.register(_secret(0))  # registered again: recent again
    assert len(redaction._known) == 200
    assert redaction.redact(f"a {_secret(249)} b") == f"a {redaction.MASK} b"
    assert redaction.redact(f"a {_secret(0)} b") == f"a {redaction.MASK} b"
    assert redaction.redact(f"a {_secret(1)} b") == f"a {_secret(1)} b"  # forgotten


def test_the_registry_is_arranged_once_per_change_not_per_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = []
    rebuild = redaction._rebuild

    def counted() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        built.append(len(redaction._known))
        return rebuild()

    monkeypatch.setattr(redaction, "_rebuild", counted)
    for n in range(500):
        redaction.register(_secret(n))
    for n in range(200):
        assert redaction.redact(f"line {n} for {_secret(n)}") == f"line {n} for {redaction.MASK}"
    redaction.register(_secret(0))  # known already: nothing to arrange
    redaction.redact("another line")
    redaction.register("a-new-secret-here")
    redaction.redact("and another")
    assert built == [500, 501]


@pytest.mark.parametrize("count", [3, 300], ids=["few", "many"])
def test_every_secret_is_masked_longest_first(count: int) -> None:
    for n in range(count):
        redaction.register(_secret(n))
    redaction.register("abcdef123")
    redaction.register("abcdef12345")  # shares its start with the one above
    text = f"x{_secret(count - 1)}y abcdef12345 abcdef123 {_secret(0)}{_secret(0)} abcdef"
    masked = redaction.redact(text)
    mask = redaction.MASK
    assert masked == f"x{mask}y {mask} {mask} {mask}{mask} abcdef"


def test_a_released_holders_secrets_are_forgotten_unless_held_elsewhere() -> None:
    alice, bob = object(), object()
    redaction.register("alice-token-0123456", holder=alice)
    redaction.register("shared-token-0123456", holder=alice)
    redaction.register("shared-token-0123456", holder=bob)
    redaction.register("operator-token-0123456")  # for the process's life
    redaction.register("operator-token-0123456", holder=alice)
    redaction.release(alice)
    assert set(redaction._known) == {"shared-token-0123456", "operator-token-0123456"}
    assert redaction.redact("alice-token-0123456") == "alice-token-0123456"
    assert redaction.redact("shared-token-0123456") == redaction.MASK
    redaction.release(bob)
    assert set(redaction._known) == {"operator-token-0123456"}
    assert redaction._held == {redaction._ALWAYS: {"operator-token-0123456"}}


async def test_the_registry_follows_the_users_open_not_every_user_served(
    tmp_path: Any, sandbox: Any, redis_server: Any
) -> None:
    """Real users (their clients, Redis state and the sandbox's tokens) through the user
    cache: each closed user's token leaves the registry; at most the cache's are left."""
    import anyio

    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.hosted.redis_client import connect
    from nemo_mcp.hosted.redis_client_state import RedisState, user_prefix
    from nemo_mcp.identity import load_identity
    from nemo_mcp.ledger.redis import RedisLedger
    from nemo_mcp.scale import Scale
    from nemo_mcp.server.service import Services

    from mcp_harness import make_settings

    cache, users = 3, 12
    settings = make_settings(tmp_path, sandbox.url, scale=Scale(max_users=cache))
    redis = connect(redis_server.url)

    async def open_user(user_settings: Any, user: str, closing: Any) -> Any:
        prefix = user_prefix(f"redact-{user}")
        state, ledger = RedisState(redis, prefix, "api"), RedisLedger(redis, f"{prefix}:api")
        client = NemoClient(
            user_settings, load_identity(), state, leases=ledger, owner=f"replica-{user}"
        )
        return await closing.enter_async_context(client), ledger

    tokens: list[str] = []
    try:
        async with anyio.create_task_group() as tasks:
            services = Services(settings, open_user, tasks)
            for n in range(users):
                service = await services.get(f"user-{n}")
                tokens.append(await service.client.token())
            await services.aclose()
            tasks.cancel_scope.cancel()
    finally:
        await redis.aclose()
    assert len(set(tokens)) == users  # each user their own token
    kept = [token for token in tokens if token in redaction._known]
    assert kept == tokens[-cache:], (len(kept), cache)
