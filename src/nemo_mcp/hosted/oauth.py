"""Who the user is, from an OAuth 2.1 access token: a JWT checked against the issuer's keys.

`JwtVerifier` is the MCP SDK's `TokenVerifier`. A token is accepted only when its
signature verifies with a key of the issuer's JWKS (asymmetric algorithms only: never
`none`, never a shared secret), and its `iss`, `aud`, `exp` (30 s of clock skew allowed)
and `sub` are present and right. Anything else gives the SDK nothing, and it answers 401
with the `resource_metadata` pointer; a token lacking a required scope is answered 403
`insufficient_scope` (RFC 6750 section 3.1, and the MCP authorization spec's scope
challenge), also with the pointer.

The user is the token's subject at its issuer: `server.exposure.principal_key` hashes the
two, so the same person keeps their state across token refreshes, and no two issuers'
subjects mix.
Static bearer tokens (`NEMO_HTTP_TOKENS`) may be accepted beside the JWTs; each stays
the user it is without OAuth (the same key, the same state).

The skew is allowed on both sides of the expiry: pyjwt checks `exp` here with the
allowance (against `clock`), and the token handed to the SDK carries `expires_at` with
the allowance added, because the SDK's bearer middleware checks `expires_at` against
the time again and knows nothing of skew (a token 10 s past `exp` was refused there).

Keys are fetched with the server's own HTTP client, cached for `KEYS_SECONDS`, and
fetched again early (at most every `REFETCH_SECONDS`) when a token names a key id not
seen yet, so the issuer can rotate keys.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import httpx
import jwt
from mcp.server.auth.provider import AccessToken
from pydantic import SecretStr

from nemo_mcp.backend.body import read_limited
from nemo_mcp.errors import AnswerTooLargeError
from nemo_mcp.server.exposure import STATIC_ISSUER, identity_key, known_token

log = logging.getLogger(__name__)

#: Signature algorithms accepted (asymmetric only: a JWKS holds public keys).
ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
STATIC_CLIENT = "nemo-mcp-static-token"
KEYS_SECONDS = 600.0
REFETCH_SECONDS = 30.0
LEEWAY_SECONDS = 30
#: A JWKS document is a few KB; refuse anything absurd.
MAX_JWKS_BYTES = 256 * 1024


def _scopes(claims: dict[str, Any]) -> list[str]:
    """The token's scopes: `scope` (space-separated, RFC 9068) or `scp` (a list)."""
    scope = claims.get("scope")
    if isinstance(scope, str):
        return scope.split()
    scp = claims.get("scp")
    if isinstance(scp, list):
        return [str(s) for s in scp]
    if isinstance(scp, str):
        return scp.split()
    return []


class JwtVerifier:
    """The SDK's `TokenVerifier` for the issuer's JWT access tokens (and static tokens)."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str,
        scopes: Sequence[str] = (),
        static_tokens: Sequence[SecretStr] = (),
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self._clock = clock
        self.audience = audience
        self.jwks_url = jwks_url
        self.scopes = list(scopes)
        self._static = [t.get_secret_value().encode() for t in static_tokens]
        self._transport = transport
        #: key id -> (key, the algorithm the issuer declared for it, if any)
        self._keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
        self._fetched = -float("inf")
        self._lock = anyio.Lock()

    async def verify_token(self, token: str) -> AccessToken | None:
        static = self._static_token(token)
        if static is not None:
            return static
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        algorithm = header.get("alg")
        if algorithm not in ALGORITHMS:
            log.info("refused an access token signed with %r", algorithm)
            return None
        found = await self._key(header.get("kid"))
        if found is None:
            return None
        key, declared = found
        if declared is not None and declared != algorithm:
            log.info("refused an access token: signed %s with a key for %s", algorithm, declared)
            return None
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud", "sub"], "verify_exp": False},
            )
            expires = int(claims["exp"])
        except (jwt.PyJWTError, TypeError, ValueError) as err:
            log.info("refused an access token: %s", err)
            return None
        if expires + LEEWAY_SECONDS < self._clock():
            log.info("refused an access token: expired %d s ago", self._clock() - expires)
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or "unknown"),
            scopes=_scopes(claims),
            expires_at=expires + LEEWAY_SECONDS,  # the SDK checks this again, without skew
            resource=self.audience,
            subject=str(claims["sub"]),
            claims={"iss": claims["iss"]},
        )

    def _static_token(self, token: str) -> AccessToken | None:
        if not known_token(token, self._static):
            return None
        return AccessToken(
            token=token,
            client_id=STATIC_CLIENT,
            scopes=self.scopes,
            subject=identity_key(token),
            claims={"iss": STATIC_ISSUER},
        )

    async def _key(self, kid: object) -> tuple[Any, str | None] | None:
        """The verification key for `kid` (None: the only key) and its declared algorithm,
        fetching keys as needed."""
        name = kid if isinstance(kid, str) else None
        found = self._pick(name)
        stale = time.monotonic() - self._fetched > KEYS_SECONDS
        # An unknown key waits for a read under way (a replica's first requests arrive
        # together while its keys are still being read); a known one is used meanwhile.
        if found is None or (stale and not self._lock.locked()):
            async with self._lock:
                since = time.monotonic() - self._fetched
                if since > KEYS_SECONDS or (self._pick(name) is None and since > REFETCH_SECONDS):
                    await self._fetch()
            found = self._pick(name)
        if found is None:
            log.info("no key of %s matches the access token's key id %r", self.jwks_url, name)
            return None
        return found[0].key, found[1]

    def _pick(self, kid: str | None) -> tuple[jwt.PyJWK, str | None] | None:
        if kid is not None:
            return self._keys.get(kid)
        return next(iter(self._keys.values())) if len(self._keys) == 1 else None

    async def _fetch(self) -> None:
        """Read the JWKS; on failure keep the keys held (and try again later)."""
        self._fetched = time.monotonic()
        try:
            async with (
                httpx.AsyncClient(transport=self._transport, timeout=10.0) as http,
                http.stream(
                    "GET", self.jwks_url, headers={"Accept": "application/json"}
                ) as response,
            ):
                if response.status_code != 200:
                    raise ValueError(f"HTTP {response.status_code}")
                # Read under a cap as it comes, as every answer is (`backend/body.py`).
                try:
                    body = await read_limited(
                        response, limit=MAX_JWKS_BYTES, what="reading the signing keys"
                    )
                except AnswerTooLargeError:
                    raise ValueError(f"more than {MAX_JWKS_BYTES:,} bytes") from None
            document = json.loads(body)
            keys: dict[str | None, tuple[jwt.PyJWK, str | None]] = {}
            for item in document.get("keys", []):
                if item.get("use", "sig") != "sig":
                    continue
                try:
                    keys[item.get("kid")] = (jwt.PyJWK(item), item.get("alg"))
                except jwt.PyJWTError as err:
                    log.info("skipped a key of %s: %s", self.jwks_url, err)
        except (httpx.HTTPError, ValueError, AttributeError) as err:
            log.warning("could not read the signing keys at %s: %s", self.jwks_url, err)
            return
        self._keys = keys


__all__ = ["ALGORITHMS", "STATIC_ISSUER", "JwtVerifier"]
