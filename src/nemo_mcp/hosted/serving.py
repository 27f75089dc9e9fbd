"""How `create_server` serves many users: their state in Redis, OAuth, a shared key.

Imported by the server factory; each part loads what it needs (Redis, PyJWT, the SDK's
auth) only when the deployment uses it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nemo_mcp.server.exposure import Exposure
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import backend_key

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from nemo_mcp.client_state import ClientState
    from nemo_mcp.ledger import Ledger


def redis_user(
    redis: Redis, user: str, api_url: str, *, cluster: bool = False
) -> tuple[ClientState, Ledger]:
    """A hosted user's state and ledger, under keys derived from their user key (on a
    Redis Cluster, the ledger announces changes by sharded pub/sub)."""
    from nemo_mcp.hosted.redis_client_state import RedisState, user_prefix
    from nemo_mcp.ledger.redis import RedisLedger

    prefix = user_prefix(user)
    backend = backend_key(api_url)
    ledger = RedisLedger(
        redis, f"{prefix}:{backend}", announce="SPUBLISH" if cluster else "PUBLISH"
    )
    return RedisState(redis, prefix, backend), ledger


def oauth_resource_server(settings: Settings, exposure: Exposure) -> dict[str, Any]:
    """The SDK's OAuth resource-server settings and token verifier, when OAuth is on."""
    if not exposure.oauth:
        return {}
    from mcp.server.auth.settings import AuthSettings

    from nemo_mcp.hosted.oauth import JwtVerifier

    assert settings.oauth_issuer and settings.oauth_jwks_url and settings.public_url
    resource = f"{settings.public_url}/mcp"
    return {
        "token_verifier": JwtVerifier(
            issuer=settings.oauth_issuer,
            audience=settings.oauth_audience or resource,
            jwks_url=settings.oauth_jwks_url,
            scopes=settings.oauth_scopes,
            static_tokens=settings.http_tokens,
        ),
        "auth": AuthSettings(
            issuer_url=settings.oauth_issuer,
            resource_server_url=resource,
            required_scopes=list(settings.oauth_scopes) or None,
            validate_token_resource=False,  # the verifier checks `aud` itself
        ),
    }


class SharedKeyCodec:
    """The SDK's `RequestStateCodec` with the replicas' shared key, installed when the
    server starts (it is kept in Redis): a `requestState` sealed by one replica is
    opened by any other."""

    def __init__(self) -> None:
        self._codec: Any = None

    def install(self, keys: list[bytes]) -> None:
        from mcp.server.request_state import AESGCMRequestStateCodec

        self._codec = AESGCMRequestStateCodec(keys)

    def seal(self, payload: bytes) -> str:
        if self._codec is None:
            raise RuntimeError("the server has not started")
        return str(self._codec.seal(payload))

    def unseal(self, token: str) -> bytes:
        from mcp.server.request_state import InvalidRequestState

        if self._codec is None:
            raise InvalidRequestState("not started")
        return bytes(self._codec.unseal(token))


def shared_request_state(codec: SharedKeyCodec) -> Any:
    """The SDK's `RequestStateSecurity` sealing with the replicas' shared key."""
    from mcp.server.request_state import RequestStateSecurity

    return RequestStateSecurity(codec=codec)


__all__ = ["SharedKeyCodec", "oauth_resource_server", "redis_user", "shared_request_state"]
