"""OAuth's documented 30 s of clock skew, end to end through the SDK's own bearer check.

The verifier checks `exp` with the allowance; the SDK's `BearerAuthBackend` then checks
the token's `expires_at` against the time again, without any allowance. Both are run
here on one fake clock: 10 and 29 s past `exp` are let in, 31 s is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import jwt
import pytest
from mcp.server.auth.middleware import bearer_auth
from mcp.server.auth.middleware.bearer_auth import BearerAuthBackend
from starlette.requests import HTTPConnection

from nemo_mcp.hosted.oauth import LEEWAY_SECONDS, JwtVerifier

from hosted_harness import Issuer

AUDIENCE = "https://mcp.test/mcp"


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    issued = Issuer()
    yield issued
    issued.close()


def _connection(token: str) -> HTTPConnection:
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"authorization", f"Bearer {token}".encode())],
    }
    return HTTPConnection(scope)


@pytest.mark.parametrize(("late", "let_in"), [(10, True), (29, True), (31, False)])
async def test_a_token_expired_within_the_allowance_is_let_in(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch, late: int, let_in: bool
) -> None:
    assert LEEWAY_SECONDS == 30  # as the README promises
    token = issuer.token("erin", audience=AUDIENCE, expires_in=0)
    now = float(jwt.decode(token, options={"verify_signature": False})["exp"] + late)
    monkeypatch.setattr(bearer_auth, "time", SimpleNamespace(time=lambda: now))
    verifier = JwtVerifier(
        issuer=issuer.url,
        audience=AUDIENCE,
        jwks_url=issuer.jwks_url,
        scopes=["nemo"],
        clock=lambda: now,
    )
    verified = await BearerAuthBackend(verifier).authenticate(_connection(token))
    assert (verified is not None) is let_in, late
    if verified is not None:
        assert verified[1].access_token.subject == "erin"


async def test_tokens_checked_while_the_keys_are_first_read_are_let_in(
    issuer: Issuer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica's first requests arrive together: those that come while the signing keys
    are still being read wait for them, instead of being refused as unknown tokens (401)."""
    import anyio
    import httpx

    real = httpx.AsyncHTTPTransport()

    class SlowKeys(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            await anyio.sleep(0.3)  # the issuer answers its keys slowly
            return await real.handle_async_request(request)

    verifier = JwtVerifier(
        issuer=issuer.url,
        audience=AUDIENCE,
        jwks_url=issuer.jwks_url,
        scopes=["nemo"],
        transport=SlowKeys(),
    )
    tokens = [issuer.token(f"user{n}", audience=AUDIENCE) for n in range(8)]
    verified: dict[str, object] = {}

    async def check(token: str) -> None:
        verified[token] = await verifier.verify_token(token)

    async with anyio.create_task_group() as tasks:
        for token in tokens:
            tasks.start_soon(check, token)
            await anyio.sleep(0.02)  # they arrive one after another, during the read
    assert all(verified[t] is not None for t in tokens), verified
