"""Hosted mode's parts one at a time: the exposure rules it adds, the JWT verifier, the
Redis state store, the shared `requestState` key, and `doctor`'s hosted checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from pydantic import SecretStr

from nemo_mcp import doctor
from nemo_mcp.errors import ConfigError
from nemo_mcp.hosted.local import RedisServer
from nemo_mcp.hosted.oauth import JwtVerifier
from nemo_mcp.server.exposure import decide, identity_key, principal_key
from nemo_mcp.settings import settings_from_env
from nemo_mcp.state_files import AuthRecord, SessionRecord

from hosted_harness import Issuer

AUDIENCE = "https://mcp.test/mcp"
OAUTH = {
    "NEMO_OAUTH_ISSUER": "https://issuer.test/",
    "NEMO_OAUTH_JWKS_URL": "https://issuer.test/jwks.json",
    "NEMO_PUBLIC_URL": "https://mcp.test",
}
REDIS = {"NEMO_STATE_URL": "redis://127.0.0.1:6379/0"}
TOKENS = {"NEMO_HTTP_TOKENS": "alice-secret-token-0123,bob-secret-token-4567"}


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    made = Issuer()
    yield made
    made.close()


# Exposure -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "http", "words"),
    [
        (REDIS, False, "are for serving many users over HTTP"),
        (OAUTH, False, "are for serving many users over HTTP"),
        (REDIS, True, "no user is known"),
        ({**OAUTH, "NEMO_PUBLIC_URL": ""}, True, "also needs NEMO_PUBLIC_URL"),
        ({"NEMO_OAUTH_JWKS_URL": "https://i.test/k"}, True, "need NEMO_OAUTH_ISSUER"),
        ({**OAUTH, "NEMO_TOKEN": "nmv_usr_x"}, True, "NEMO_OAUTH_ISSUER admits any number"),
        ({**TOKENS, **REDIS, "NEMO_HTTP_UPLOAD_ROOT": "/tmp"}, True, "a folder on one machine"),
    ],
    ids=["redis-stdio", "oauth-stdio", "redis-no-users", "half-oauth", "jwks-alone",
         "token-for-anyone", "upload-root-hosted"],
)  # fmt: skip
def test_hosted_combinations_that_must_not_start(
    env: dict[str, str], http: bool, words: str
) -> None:
    with pytest.raises(ConfigError, match=words):
        decide(settings_from_env(env), http=http, host="0.0.0.0")


@pytest.mark.parametrize(
    ("env", "oauth", "hosted", "saves", "line"),
    [
        ({**OAUTH}, True, False, True, "served (HTTP on 0.0.0.0 with OAuth): OAuth subjects"),
        ({**TOKENS, **REDIS}, False, True, False, "hosted (HTTP on 0.0.0.0 with NEMO_HTTP_TOKENS)"),
        ({**TOKENS, **REDIS, "NEMO_OUTPUT_DIR": "/srv/out"}, False, True, True, "hosted"),
        ({**TOKENS, **OAUTH, **REDIS}, True, True, False, "2 users by bearer token and OAuth"),
    ],
    ids=["oauth-one-process", "hosted-urls", "hosted-shared-volume", "hosted-both"],
)
def test_hosted_decisions(
    env: dict[str, str], oauth: bool, hosted: bool, saves: bool, line: str
) -> None:
    exposure = decide(settings_from_env(env), http=True, host="0.0.0.0")
    assert (exposure.served, exposure.oauth, exposure.hosted) == (True, oauth, hosted)
    assert exposure.save_exports is saves
    assert line in exposure.describe()
    user = exposure.user_settings(settings_from_env(env), "k")
    assert user.save_exports is saves and user.upload_dirs == ()
    policy = exposure.file_policy(user, [Path("/")])
    assert policy.remote and policy.folders == ()  # client roots never count


def test_an_oauth_caller_is_their_verified_subject() -> None:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken

    exposure = decide(settings_from_env(OAUTH), http=True, host="0.0.0.0")
    token = AccessToken(
        token="x",
        client_id="c",
        scopes=[],
        subject="erin",
        claims={"iss": OAUTH["NEMO_OAUTH_ISSUER"]},
    )
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        # The bearer header is not what counts: the verified token is.
        key = exposure.user_key({"authorization": "Bearer something-else"})
    finally:
        auth_context_var.reset(reset)
    assert key == principal_key(token) and key != identity_key("x")
    other = token.model_copy(update={"claims": {"iss": "https://other.test/"}})
    assert principal_key(other) != key  # the same subject at another issuer


# JwtVerifier ----------------------------------------------------------------------------
def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _verifier(issuer: Issuer, **kw: Any) -> JwtVerifier:
    return JwtVerifier(
        issuer=issuer.url, audience=AUDIENCE, jwks_url=issuer.jwks_url, scopes=["nemo"], **kw
    )


async def test_a_good_token_is_its_subject_and_scopes(issuer: Issuer) -> None:
    verified = await _verifier(issuer).verify_token(
        issuer.token("erin", audience=AUDIENCE, scope="nemo profile")
    )
    assert verified is not None
    assert verified.subject == "erin" and verified.scopes == ["nemo", "profile"]
    assert verified.client_id == "test-client"
    listed = await _verifier(issuer).verify_token(
        issuer.token("erin", audience=[AUDIENCE, "other"], scope=None, scp=["nemo"])  # type: ignore[arg-type]
    )
    assert listed is not None and listed.scopes == ["nemo"]


async def test_algorithm_confusion_and_unsigned_tokens_are_refused(issuer: Issuer) -> None:
    from cryptography.hazmat.primitives import serialization

    public_pem = issuer.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "x", "exp": 9_999_999_999}
    verifier = _verifier(issuer)
    # HS256 "signed" with the public key as the secret: the classic confusion.
    head = _b64({"alg": "HS256", "typ": "JWT", "kid": issuer.kid})
    body = _b64(claims)
    mac = hmac.new(public_pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert await verifier.verify_token(f"{head}.{body}.{signature}") is None
    assert await verifier.verify_token(jwt.encode(claims, None, algorithm="none")) is None
    no_sub = issuer.token("", audience=AUDIENCE)
    assert await verifier.verify_token(no_sub.replace(no_sub.split(".")[1], "e30")) is None


async def test_static_tokens_keep_their_own_user(issuer: Issuer) -> None:
    verifier = _verifier(issuer, static_tokens=[SecretStr("alice-secret-token-0123")])
    static = await verifier.verify_token("alice-secret-token-0123")
    assert static is not None and static.scopes == ["nemo"]
    assert principal_key(static) == identity_key("alice-secret-token-0123")
    # A JWT claiming to be that user is just another subject of the issuer.
    forged = await verifier.verify_token(
        issuer.token(identity_key("alice-secret-token-0123"), audience=AUDIENCE)
    )
    assert forged is not None and principal_key(forged) != principal_key(static)
    assert await verifier.verify_token("alice-secret-token-0124") is None


async def test_keys_are_fetched_again_for_a_new_key_id(issuer: Issuer) -> None:
    import httpx

    fetched = []

    def jwks(request: httpx.Request) -> httpx.Response:
        fetched.append(request.url.path)
        return httpx.Response(200, json={"keys": []} if len(fetched) == 1 else issuer_keys)

    async with httpx.AsyncClient() as http:
        issuer_keys = (await http.get(issuer.jwks_url)).json()
    verifier = _verifier(issuer, transport=httpx.MockTransport(jwks))
    token = issuer.token("erin", audience=AUDIENCE)
    assert await verifier.verify_token(token) is None  # no keys yet
    assert await verifier.verify_token(token) is None  # not fetched again at once
    verifier._fetched -= 31  # the issuer may have rotated: looked up again after 30 s
    assert await verifier.verify_token(token) is not None
    assert len(fetched) == 2


async def test_a_key_set_over_its_cap_is_never_read_whole(issuer: Issuer) -> None:
    import httpx

    from nemo_mcp.hosted.oauth import MAX_JWKS_BYTES

    pulled = []

    class Endless(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            while True:  # a key set that never ends
                pulled.append(64 * 1024)
                yield b" " * (64 * 1024)

    def jwks(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "application/json"}, stream=Endless())

    verifier = _verifier(issuer, transport=httpx.MockTransport(jwks))
    assert await verifier.verify_token(issuer.token("erin", audience=AUDIENCE)) is None
    assert sum(pulled) <= MAX_JWKS_BYTES + 64 * 1024  # stopped at the cap


# RedisState -----------------------------------------------------------------------------
@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Any]:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url, decode_responses=True)
    yield client
    await client.aclose()


async def test_redis_state_keeps_records_and_says_when_they_change(redis: Any) -> None:
    from nemo_mcp.hosted.redis_client_state import RedisState

    prefix = f"nemo:{{{uuid.uuid4().hex}}}"
    one, two = RedisState(redis, prefix, "b"), RedisState(redis, prefix, "b")
    assert await one.client_id() == await two.client_id()  # made once for both
    assert await one.client_id("configured") == "configured"
    assert await one.load_auth() is None and not await one.has_auth()
    before = await two.stamp("auth")
    await one.save_auth(AuthRecord(token="t1", user_id="u"))
    assert await two.stamp("auth") != before and await two.has_auth()
    assert (await two.load_auth()) == AuthRecord(token="t1", user_id="u")
    await two.save_session(SessionRecord(session_id="s1"))
    assert (await one.load_session()) == SessionRecord(session_id="s1")
    await one.clear_session()
    assert await two.load_session() is None
    assert await RedisState(redis, prefix, "other-backend").load_auth() is None


async def test_a_damaged_redis_record_is_set_aside_and_said_once(redis: Any) -> None:
    from nemo_mcp.hosted.redis_client_state import RedisState

    prefix = f"nemo:{{{uuid.uuid4().hex}}}"
    state = RedisState(redis, prefix, "b")
    await redis.set(f"{prefix}:b:session", '{"session_id": ')
    await redis.set(f"{prefix}:client_id", "not-a-uuid")
    assert await state.load_session() is None
    assert state.damaged_session is not None
    assert state.damaged_session.problem == "cut short or not JSON"
    assert await redis.get(state.damaged_session.moved_to) == '{"session_id": '
    new = await state.client_id()
    assert new != "not-a-uuid" and len(new) == 36
    (notice,) = state.take_notices()
    assert "was damaged (not a UUID)" in notice and state.take_notices() == []
    await redis.set(f"{prefix}:client_id", "broken again")
    with pytest.raises(ConfigError, match="not replaced"):
        await state.client_id(token_exists=True)


async def test_a_request_state_sealed_by_one_replica_opens_on_another(redis: Any) -> None:
    from mcp.server.request_state import AESGCMRequestStateCodec, InvalidRequestState

    from nemo_mcp.hosted.redis_client_state import request_state_keys

    one = AESGCMRequestStateCodec(await request_state_keys(redis))
    two = AESGCMRequestStateCodec(await request_state_keys(redis))
    assert two.unseal(one.seal(b"elicitation state")) == b"elicitation state"
    stranger = AESGCMRequestStateCodec([b"\x00" * 32])
    with pytest.raises(InvalidRequestState):
        stranger.unseal(one.seal(b"x"))


# doctor ---------------------------------------------------------------------------------
def _doctor(env: dict[str, str]) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor.main(env, out=out, http=True, host="0.0.0.0")
    return code, out.getvalue()


def test_doctor_checks_redis_and_oauth(
    tmp_path: Path, sandbox: Any, redis_server: RedisServer, issuer: Issuer
) -> None:
    env = {
        "NEMO_API_URL": sandbox.url,
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_STATE_URL": redis_server.url.replace("redis://", "redis://:pw-not-shown@"),
        "NEMO_OAUTH_ISSUER": issuer.url,
        "NEMO_OAUTH_JWKS_URL": issuer.jwks_url,
        "NEMO_PUBLIC_URL": "https://mcp.test",
    }
    code, text = _doctor(env)
    assert "[ok  ] exposure: hosted (HTTP on 0.0.0.0 with OAuth)" in text, text
    assert "[ok  ] NEMO_STATE_URL: Redis 7" in text or "[ok  ] NEMO_STATE_URL: Redis" in text
    assert "[ok  ] NEMO_OAUTH_JWKS_URL: 1 signing key(s)" in text
    assert "[warn] NEMO_OAUTH_SCOPES: no scope required" in text
    assert "pw-not-shown" not in text
    dead = {
        **env,
        "NEMO_STATE_URL": "redis://127.0.0.1:1/0",
        "NEMO_OAUTH_JWKS_URL": f"{issuer.jwks_url}x",
    }
    code, text = _doctor(dead)
    assert code == 1
    assert "[FAIL] NEMO_STATE_URL: Redis at redis://127.0.0.1:1 does not answer" in text
    assert "[FAIL] NEMO_OAUTH_JWKS_URL: no signing keys" in text


async def test_a_token_request_cut_short_by_a_dead_replica_is_asked_with_a_new_id(
    redis: Any, sandbox: Any
) -> None:
    """A replica killed after asking for a user's first token, before keeping it: the id's
    one token is spent at NemoVideo. The next replica sees the unanswered request and
    asks with a new client id; without the record the user could get no token at all."""
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.errors import RateLimitError
    from nemo_mcp.hosted.redis_client_state import RedisState
    from nemo_mcp.identity import load_identity
    from nemo_mcp.ledger import new_owner
    from nemo_mcp.ledger.redis import RedisLedger
    from nemo_mcp.server.boundary import message_for
    from nemo_mcp.settings import Settings

    from sandbox_client import Backend

    async def first_token(record: bool) -> tuple[RedisState, Any]:
        prefix = f"nemo:{{{uuid.uuid4().hex}}}"
        state = RedisState(redis, prefix, "b")
        spent = await state.client_id()
        if record:
            await state.note_token_asked(spent)  # what the dying replica wrote
        backend = Backend(sandbox.url)
        backend.login(spent)  # ... and NemoVideo answered, to no one
        backend.close()
        client = NemoClient(
            Settings(api_url=sandbox.url, web_url="https://web.test"),
            load_identity(),
            state,
            leases=RedisLedger(redis, f"{prefix}:b"),
            owner=new_owner(),
        )
        async with client:
            try:
                return state, await client.token()
            except RateLimitError as err:
                return state, err

    state, token = await first_token(record=True)
    assert isinstance(token, str)
    assert await state.token_asked() is None and (await state.load_auth()) is not None
    assert sandbox.control.stats()["tokens_issued"] == 2
    _, refused = await first_token(record=False)  # the same crash, unrecorded
    assert isinstance(refused, RateLimitError)
    said = message_for(refused, None)  # the server's words for the backend's facts
    assert "one free token per computer every 7 days" in said and "NEMO_TOKEN" in said


async def test_the_redis_password_never_reaches_a_log_line() -> None:
    from nemo_mcp import redaction
    from nemo_mcp.hosted.redis_client_state import connect

    client = connect("redis://:s3cret%2Fredis-pw@127.0.0.1:1/0")
    await client.aclose()
    assert "s3cret/redis-pw" not in redaction.redact("AUTH failed with s3cret/redis-pw")
