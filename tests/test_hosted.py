"""Hosted: three `serve --http` replicas sharing one real Redis, each with its own NEMO_HOME,
against one sandbox, some behind HAProxy with `deploy/haproxy.cfg`.

Users are static bearer tokens and OAuth subjects (JWTs minted here with a local RSA
key, its JWKS served by a tiny local HTTP server). Every test uses users of its own, so
the sandbox can be reset between tests; the sandbox's counters (messages sent, renders
started, tokens issued, sessions made) are what each promise is checked against.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from nemo_mcp.hosted.local import Haproxy, RedisServer, free_port, missing
from nemo_mcp.sandbox.testing import SandboxServer

from hosted_harness import Issuer, Replicas, call, connect, finish, replicas
from mcp_harness import text_of

NAMES = ("alice", "bob", "carol", "dave", "grace", "heidi", "ivan", "judy", "kim", "leo")
TOKENS = {name: f"{name}-hosted-secret-0123456789" for name in NAMES}
SCOPE = "nemo"
MCP = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "probe", "version": "1"},
    },
}


class Deployment:
    def __init__(self, running: Replicas, issuer: Issuer, public: str, lb_port: int) -> None:
        self.replicas = running
        self.issuer = issuer
        self.public = public
        self.lb_port = lb_port

    @property
    def audience(self) -> str:
        return f"{self.public}/mcp"

    def url(self, n: int) -> str:
        return self.replicas.all[n].url

    def jwt(self, sub: str, **kw: Any) -> str:
        return self.issuer.token(sub, audience=self.audience, **kw)


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: SandboxServer,
    redis_server: RedisServer,
) -> Iterator[Deployment]:
    issuer = Issuer()
    lb_port = free_port()
    public = f"http://127.0.0.1:{lb_port}"
    try:
        with replicas(
            tmp_path_factory.mktemp("hosted"),
            sandbox_server,
            NEMO_STATE_URL=redis_server.url,
            NEMO_HTTP_TOKENS=",".join(TOKENS.values()),
            NEMO_OAUTH_ISSUER=issuer.url,
            NEMO_OAUTH_JWKS_URL=issuer.jwks_url,
            NEMO_OAUTH_SCOPES=SCOPE,
            NEMO_PUBLIC_URL=public,
        ) as running:
            yield Deployment(running, issuer, public, lb_port)
            assert running.homes_hold_no_state() == []  # everything was in Redis
    finally:
        issuer.close()


def _stats(sandbox: SandboxServer) -> dict[str, Any]:
    return sandbox.control.stats()


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    return dict(result.structured_content)


# Any replica answers any call ---------------------------------------------------------
async def test_one_user_across_replicas_has_one_project_token_and_session(
    deployment: Deployment, sandbox: SandboxServer
) -> None:
    alice = TOKENS["alice"]
    made = _ok(await call(deployment.url(0), alice, "generate", {"message": "a city at dusk"}))
    assert made["status"] == "completed"
    shown = _ok(await call(deployment.url(1), alice, "timeline", {}, mode="legacy"))
    credits = _ok(await call(deployment.url(2), alice, "credits", {}))
    assert shown["ready_for_export"] and shown["session_id"] == made["session_id"]
    assert credits["available"] < 100  # the same NemoVideo identity paid for the clip
    stats = _stats(sandbox)
    assert stats["tokens_issued"] == 1 and stats["sessions_created"] == 1
    assert len(stats["messages"]) == 1


async def test_the_same_message_through_two_replicas_at_once_is_sent_once(
    deployment: Deployment, sandbox: SandboxServer
) -> None:
    bob = TOKENS["bob"]
    args = {"message": "a lighthouse in a storm"}
    results: dict[int, dict[str, Any]] = {}

    async def ask(n: int) -> None:
        results[n] = _ok(await call(deployment.url(n), bob, "generate", args))

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(ask, 0)
        tasks.start_soon(ask, 1)
    assert results[0]["status"] == results[1]["status"] == "completed"
    assert results[0]["reply"] == results[1]["reply"]
    stats = _stats(sandbox)
    assert len(stats["messages"]) == 1, stats["messages"]
    assert stats["tokens_issued"] == 1 and stats["sessions_created"] == 1


async def test_an_export_on_a_killed_replica_is_finished_by_another(
    deployment: Deployment, sandbox: SandboxServer
) -> None:
    carol = TOKENS["carol"]
    _ok(await call(deployment.url(2), carol, "generate", {"message": "a tram at night"}))
    sandbox.control.set(render_seconds=5.0)
    async with connect(deployment.url(2), carol) as client:
        first = _ok(await client.call_tool("export", {}))
    assert first["status"] == "rendering" and _stats(sandbox)["renders_started"] == 1
    deployment.replicas.kill(2)
    try:
        done = _ok(await call(deployment.url(0), carol, "export", {}))
    finally:
        deployment.replicas.restart(2)
    assert done["status"] == "completed" and done["resumed"]
    assert done["render_id"] == first["render_id"]
    assert done["url"] and done["file"] is None  # hosted, no NEMO_OUTPUT_DIR: the URL
    assert done["browser_link"]
    stats = _stats(sandbox)
    assert stats["renders_started"] == 1 and len(stats["renders"]) == 1
    again = _ok(await call(deployment.url(1), carol, "export", {}))
    assert again["reused"] and again["url"] == done["url"]
    assert _stats(sandbox)["renders_started"] == 1


async def test_uploads_on_a_hosted_server_are_urls_only(
    deployment: Deployment, sandbox: SandboxServer
) -> None:
    heidi = TOKENS["heidi"]
    async with connect(deployment.url(1), heidi) as client:
        refused = await client.call_tool("upload", {"sources": ["/etc/hostname"]})
        taken = await client.call_tool("upload", {"sources": ["https://example.com/a.mp4"]})
    assert refused.is_error
    assert "reads no files from its own disk" in text_of(refused)
    assert "give an http(s) URL of the file instead" in text_of(refused)
    assert _ok(taken)["files"][0]["type"] == "video"
    assert _stats(sandbox)["requests"]["upload"] == 1


# Who the user is ------------------------------------------------------------------------
async def test_token_users_and_oauth_subjects_never_see_each_others_work(
    deployment: Deployment, sandbox: SandboxServer
) -> None:
    dave = TOKENS["dave"]
    erin_1, erin_2 = deployment.jwt("erin"), deployment.jwt("erin", jti="refreshed")
    frank = deployment.jwt("frank")
    daves = _ok(await call(deployment.url(0), dave, "generate", {"message": "a forest in fog"}))
    erin_sees = _ok(await call(deployment.url(1), erin_1, "timeline", {}))
    assert not erin_sees["ready_for_export"]
    assert erin_sees["session_id"] != daves["session_id"]
    _ok(await call(deployment.url(1), erin_1, "generate", {"message": "a desert road"}))
    # A refreshed token is the same user, on any replica; another subject is not.
    again = _ok(await call(deployment.url(2), erin_2, "timeline", {}, mode="legacy"))
    assert again["ready_for_export"]
    async with connect(deployment.url(2), frank) as client:
        timeline = _ok(await client.call_tool("timeline", {}))
        renders = await client.read_resource("nemo://renders")
    assert not timeline["ready_for_export"]
    assert '"renders": []' in renders.contents[0].text  # type: ignore[union-attr]
    stats = _stats(sandbox)
    assert stats["tokens_issued"] == 3 and stats["sessions_created"] == 3  # dave, erin, frank
    assert len(stats["messages"]) == 2


@pytest.mark.parametrize(
    ("owner", "intruder"), [("grace", "jwt:mallory"), ("jwt:oscar", "ivan")], ids=str
)
async def test_a_session_answers_only_its_own_user(
    deployment: Deployment, sandbox: SandboxServer, owner: str, intruder: str
) -> None:
    def bearer(who: str) -> str:
        return deployment.jwt(who[4:]) if who.startswith("jwt:") else TOKENS[who]

    url = deployment.url(0)
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(
            url, headers={**MCP, "authorization": f"Bearer {bearer(owner)}"}, json=INITIALIZE
        )
        session = opened.headers["mcp-session-id"]
        for where in (url, deployment.url(1)):  # its replica, and another one
            used = await http.post(
                where,
                headers={
                    **MCP,
                    "authorization": f"Bearer {bearer(intruder)}",
                    "mcp-session-id": session,
                    "mcp-protocol-version": "2025-11-25",
                },
                json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
            )
            assert used.status_code == 404, used.text
        own = await http.post(
            url,
            headers={
                **MCP,
                "authorization": f"Bearer {bearer(owner)}",
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-11-25",
            },
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        )
        assert own.status_code == 202, own.text


def _bad_tokens(deployment: Deployment) -> dict[str, str]:
    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    import jwt

    good = deployment.jwt("paul")
    unsigned = jwt.encode(
        {"iss": deployment.issuer.url, "aud": deployment.audience, "sub": "paul"},
        key=None,
        algorithm="none",
    )
    header, payload, _ = good.split(".")
    return {
        "wrong issuer": deployment.jwt("paul", issuer="https://elsewhere.test/"),
        "wrong audience": deployment.issuer.token("paul", audience="https://other.test/mcp"),
        "expired": deployment.jwt("paul", expires_in=-120),
        "another key": deployment.jwt("paul", key=other_key),
        "unsigned": unsigned,
        "tampered": f"{header}.{payload[:-4]}AAAA.{good.split('.')[2]}",
        "no token": "",
        "garbage": "not-a-token",
    }


async def test_a_jwt_that_is_not_right_gets_401_with_the_metadata_pointer(
    deployment: Deployment, sandbox: SandboxServer
) -> None:
    pointer = f'resource_metadata="{deployment.public}/.well-known/oauth-protected-resource/mcp"'
    async with httpx.AsyncClient(timeout=10) as http:
        for why, token in _bad_tokens(deployment).items():
            headers = {**MCP, "authorization": f"Bearer {token}"} if token else MCP
            refused = await http.post(deployment.url(1), headers=headers, json=INITIALIZE)
            assert refused.status_code == 401, (why, refused.text)
            assert pointer in refused.headers["www-authenticate"], why
        # A valid token without the required scope: 403 insufficient_scope (RFC 6750 3.1).
        narrow = deployment.jwt("paul", scope="profile")
        refused = await http.post(
            deployment.url(1), headers={**MCP, "authorization": f"Bearer {narrow}"}, json=INITIALIZE
        )
        assert refused.status_code == 403, refused.text
        challenge = refused.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge and pointer in challenge
        metadata = await http.get(
            f"http://{deployment.replicas.all[2].address}/.well-known/oauth-protected-resource/mcp"
        )
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == deployment.audience
    assert metadata.json()["authorization_servers"] == [deployment.issuer.url]
    assert metadata.json()["scopes_supported"] == [SCOPE]
    assert _stats(sandbox)["tokens_issued"] == 0  # nobody got in


# Behind the load balancer (deploy/haproxy.cfg) ------------------------------------------
@pytest.fixture(scope="module")
def balancer(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Haproxy]:
    if reason := missing("haproxy"):
        pytest.skip(reason)
    addresses = [replica.address for replica in deployment.replicas.all]
    with Haproxy(tmp_path_factory.mktemp("haproxy"), addresses, port=deployment.lb_port) as lb:
        yield lb


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_the_load_balancer_keeps_a_session_on_its_replica(
    balancer: Haproxy, deployment: Deployment, sandbox: SandboxServer, mode: str
) -> None:
    """Round robin alone would send a legacy session's second request to another
    replica, which answers 404; stickiness on Mcp-Session-Id keeps it working."""
    name = "ivan" if mode == "legacy" else "grace"
    async with connect(balancer.url, TOKENS[name], mode=mode) as client:
        for _ in range(4):
            assert _ok(await client.call_tool("credits", {}))["available"] == 100
        made = _ok(await finish(client, "generate", {"message": f"a kite, {mode}"}))
    assert made["status"] == "completed"
    stats = _stats(sandbox)
    assert stats["tokens_issued"] == 1 and len(stats["messages"]) == 1


async def test_the_load_balancer_routes_around_a_dead_replica(
    balancer: Haproxy, deployment: Deployment, sandbox: SandboxServer
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        health = await http.get(f"http://127.0.0.1:{deployment.lb_port}/healthz")
        assert health.json() == {"ok": True}
    deployment.replicas.kill(1)
    try:
        for n in range(6):  # new clients: some would have gone to the dead replica
            async with connect(balancer.url, TOKENS["alice"], mode="legacy") as client:
                assert not (await client.call_tool("credits", {})).is_error, n
    finally:
        deployment.replicas.restart(1)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_asking_before_spending_works_across_replicas(
    balancer: Haproxy, deployment: Deployment, sandbox: SandboxServer, mode: str
) -> None:
    """2026-07-28: the question rides a sealed `requestState`, and the client's retry goes
    to the next replica (round robin), which opens it with the key the replicas share in
    Redis. Older clients: the question is a request on the session, kept on its replica."""
    from mcp_types import ElicitResult

    asked: list[Any] = []

    async def yes(_context: Any, params: Any) -> ElicitResult:
        asked.append(params)
        return ElicitResult(action="accept", content={"send": True})

    user = TOKENS["judy"] if mode == "auto" else deployment.jwt("quentin")
    async with connect(balancer.url, user, mode=mode, elicitation=yes) as client:
        made = _ok(await finish(client, "generate", {"message": f"a paper boat, {mode}"}))
    assert made["status"] == "completed" and len(asked) == 1
    assert len(_stats(sandbox)["messages"]) == 1


# Static tokens only (no OAuth): the bearer gate and SessionOwners, on two replicas ----------
@pytest.fixture(scope="module")
def token_only(
    tmp_path_factory: pytest.TempPathFactory,
    sandbox_server: SandboxServer,
    redis_server: RedisServer,
) -> Iterator[Replicas]:
    running = Replicas(
        root=tmp_path_factory.mktemp("tokens"),
        sandbox=sandbox_server,
        extra={
            "NEMO_STATE_URL": redis_server.url,
            "NEMO_HTTP_TOKENS": ",".join(TOKENS.values()),
        },
        count=2,
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


async def test_token_only_replicas_share_state_and_bind_sessions(
    token_only: Replicas, sandbox: SandboxServer
) -> None:
    one, two = (replica.url for replica in token_only.all)
    made = _ok(await call(one, TOKENS["kim"], "generate", {"message": "a harbour at noon"}))
    shown = _ok(await call(two, TOKENS["kim"], "timeline", {}, mode="legacy"))
    assert shown["ready_for_export"] and shown["session_id"] == made["session_id"]
    assert not _ok(await call(two, TOKENS["leo"], "timeline", {}))["ready_for_export"]
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(
            one, headers={**MCP, "authorization": f"Bearer {TOKENS['kim']}"}, json=INITIALIZE
        )
        session = opened.headers["mcp-session-id"]

        async def use(url: str, who: str) -> int:
            headers = {
                **MCP,
                "authorization": f"Bearer {TOKENS[who]}",
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-11-25",
            }
            return (await http.post(url, headers=headers, json=listing)).status_code

        assert await use(one, "leo") == 404  # its replica: not leo's
        assert await use(two, "leo") == 404  # another replica: unknown there
        assert await use(two, "kim") == 404  # unknown there, even to its owner
        assert await use(one, "kim") == 200
        refused = await http.post(one, headers=MCP, json=INITIALIZE)
        assert refused.status_code == 401
        health = await http.get(one.replace("/mcp", "/healthz"))
        assert health.json() == {"ok": True}  # open to the load balancer without a token
    stats = _stats(sandbox)
    assert stats["tokens_issued"] == 2 and stats["sessions_created"] == 2
    assert token_only.homes_hold_no_state() == []
