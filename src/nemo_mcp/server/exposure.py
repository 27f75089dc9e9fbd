"""Who the server trusts with what, decided once from the settings and how it is served.

    local    stdio, or HTTP on a loopback address without NEMO_HTTP_TOKENS: the one
             person at this computer. Local files come from the client's roots,
             else NEMO_UPLOAD_DIRS; one NemoVideo identity (NEMO_TOKEN, or the
             saved anonymous one).
    served   HTTP with NEMO_HTTP_TOKENS or OAuth (NEMO_OAUTH_ISSUER; one of them
             required on any other address): people on other machines, one user per
             bearer token or OAuth subject. Client roots describe the client's
             machine, so they are never asked for. Uploads are http(s) URLs, or
             files in the user's own folder under NEMO_HTTP_UPLOAD_ROOT when the
             operator set one. Each user has their own state, output folder and
             NemoVideo identity; NEMO_TOKEN is one account, so several users share
             it only with NEMO_HTTP_SHARED_ACCOUNT=1.
    hosted   served, with every user's state in Redis (NEMO_STATE_URL) shared by
             replicas behind a load balancer: no replica's disk is anyone's, so
             uploads are http(s) URLs only, and an export is its URL (saved under
             NEMO_OUTPUT_DIR, a shared volume, only when that is set).

`decide` is the whole decision table; tools and resources ask the `Exposure`
it returns, never the settings, what a caller may do.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_mcp.errors import ConfigError, InputError
from nemo_mcp.server.paths import FilePolicy
from nemo_mcp.settings import Settings

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken

log = logging.getLogger(__name__)

#: The issuer a static bearer token's principal carries: never an OAuth issuer's URL.
STATIC_ISSUER = "nemo-mcp:static-token"


def identity_key(token: str) -> str:
    """A folder name for one HTTP user, from their token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:20]


def known_token(given: str, tokens: Sequence[bytes]) -> bool:
    """Whether `given` is one of `tokens`, compared against every one so that timing says
    nothing about which one matched."""
    secret = given.encode()
    return any([hmac.compare_digest(secret, token) for token in tokens])


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The bearer token in a header mapping, if any."""
    if headers is None:
        return None
    value = headers.get("authorization") or headers.get("Authorization")
    if not isinstance(value, str) or not value.lower().startswith("bearer "):
        return None
    return value[7:].strip() or None


def principal_key(token: AccessToken) -> str:
    """The user key of a verified OAuth token (`hosted.oauth` verifies it): its subject at
    its issuer (hashed); a static bearer token's principal keeps that token's key."""
    issuer = str((token.claims or {}).get("iss") or "")
    if issuer == STATIC_ISSUER and token.subject:
        return token.subject  # a static token's key, as without OAuth
    return identity_key(f"oauth\0{issuer}\0{token.subject or ''}")


def is_loopback(host: str) -> bool:
    """True for an address only this computer can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return False  # a host name: it may resolve to anything
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def _overlap(a: Path, b: Path) -> bool:
    return a == b or a in b.parents or b in a.parents


@dataclass(frozen=True)
class Exposure:
    """How the server is reached, and so what each caller may read and which account they use."""

    #: Reached by people on other machines, one user per bearer token.
    served: bool
    #: How it is served, in words (for the start-up line and `doctor`).
    how: str
    #: Distinct bearer tokens (served only).
    users: int = 0
    #: Served: each user's upload folder is `<upload_root>/<user key>` (resolved), if set.
    upload_root: Path | None = None
    #: Served: every user works in NEMO_TOKEN's account, as the operator said explicitly.
    shared_account: bool = False
    #: Served: users are also OAuth subjects (JWT access tokens of NEMO_OAUTH_ISSUER).
    oauth: bool = False
    #: Served: every user's state and work in Redis, shared by several replicas.
    hosted: bool = False
    #: Exports are saved to the user's output folder (hosted: only when one was set).
    save_exports: bool = True

    @classmethod
    def local(cls, how: str = "stdio") -> Exposure:
        return cls(served=False, how=how)

    def user_key(self, headers: Mapping[str, str] | None) -> str | None:
        """The caller's key: None locally (one user), else from their bearer token (with
        OAuth: from the token the SDK verified, so a refreshed token is the same user)."""
        if not self.served:
            return None
        if self.oauth:
            from mcp.server.auth.middleware.auth_context import get_access_token

            verified = get_access_token()
            if verified is None:  # the SDK lets none through; this is the last line
                raise InputError("this server serves several users: send your access token")
            return principal_key(verified)
        token = bearer(headers)
        if token is None:  # the HTTP gate lets none through; this is the last line
            raise InputError("this server serves several users: send your bearer token")
        return identity_key(token)

    def user_settings(self, settings: Settings, key: str | None) -> Settings:
        """`settings` for one served user: their own state, outputs, uploads and identity
        (locally, `settings` itself: there is one user)."""
        if not self.served:
            return settings
        if key is None:  # never the operator's own state for a served caller
            raise InputError("this server serves several users: send your bearer token")
        return settings.with_overrides(
            home=settings.home / "http-users" / key,
            client_id=None,
            token=settings.token if self.users == 1 or self.shared_account else None,
            output_dir=settings.output_dir / key,
            upload_dirs=(self.upload_root / key,) if self.upload_root is not None else (),
            save_exports=self.save_exports,
        )

    def prepare(self, user: Settings) -> None:
        """Create a served user's upload folder (private to this server's account)."""
        if not self.served:
            return
        for folder in user.upload_dirs:
            try:
                folder.mkdir(mode=0o700, exist_ok=True)
            except OSError as err:  # their files are then refused as "no such file"
                log.warning("cannot create the upload folder %s: %s", folder, err)

    def file_policy(self, user: Settings, roots: Sequence[Path] | None) -> FilePolicy:
        """Where this caller's local files may come from (`user`: from `user_settings`)."""
        if self.served:
            return FilePolicy(folders=user.upload_dirs, remote=True)  # client roots: not here
        return FilePolicy(folders=tuple(roots) if roots is not None else user.upload_dirs)

    def exports(self) -> str:
        """What an export gives, in words."""
        if self.save_exports:
            return "saved under NEMO_OUTPUT_DIR" + ("/<user key>" if self.served else "")
        return "the render's URL (NEMO_OUTPUT_DIR not set: nothing saved on a replica's disk)"

    def uploads(self) -> str:
        """Where uploads may come from, in words."""
        if not self.served:
            return "local files from the client's roots, else NEMO_UPLOAD_DIRS, and http(s) URLs"
        if self.upload_root is None:
            return "http(s) URLs only"
        return f"http(s) URLs, and files in each user's {self.upload_root}{os.sep}<user key>"

    def describe(self) -> str:
        """One line for the operator: who is served, and what they may upload."""
        if not self.served:
            return f"local ({self.how}): one person at this computer; uploads: {self.uploads()}"
        account = (
            "all share NEMO_TOKEN's account (NEMO_HTTP_SHARED_ACCOUNT)"
            if self.shared_account and (self.users > 1 or self.oauth)
            else "each with their own NemoVideo identity"
        )
        plural = "s" if self.users != 1 else ""
        who = [f"{self.users} user{plural} by bearer token"] if self.users else []
        if self.oauth:
            who.append("OAuth subjects")
        state = "state in Redis, shared by replicas" if self.hosted else "state in NEMO_HOME"
        return (
            f"{'hosted' if self.hosted else 'served'} ({self.how}): {' and '.join(who)}, "
            f"{account}; {state}; uploads: {self.uploads()}; exports: {self.exports()}"
        )


def _upload_root(settings: Settings) -> Path | None:
    root = settings.http_upload_root
    if root is None:
        return None
    if not root.is_absolute():
        raise ConfigError(f"NEMO_HTTP_UPLOAD_ROOT must be an absolute path (got {str(root)!r})")
    if not root.is_dir():
        raise ConfigError(
            f"NEMO_HTTP_UPLOAD_ROOT {root} is not a folder: create it, or unset the variable "
            "to take uploads by http(s) URL only"
        )
    resolved = root.resolve()
    for name, other in (("NEMO_OUTPUT_DIR", settings.output_dir), ("NEMO_HOME", settings.home)):
        if _overlap(resolved, other.expanduser().resolve()):
            raise ConfigError(
                f"NEMO_HTTP_UPLOAD_ROOT ({root}) overlaps {name} ({other}), so users could "
                "upload files that are not theirs: choose folders apart from each other"
            )
    return resolved


def _oauth(settings: Settings) -> bool:
    """Whether OAuth is configured, refusing a configuration it cannot work with."""
    given = {
        "NEMO_OAUTH_ISSUER": settings.oauth_issuer,
        "NEMO_OAUTH_JWKS_URL": settings.oauth_jwks_url,
        "NEMO_PUBLIC_URL": settings.public_url,
    }
    if settings.oauth_issuer is None:
        if settings.oauth_jwks_url or settings.oauth_audience or settings.oauth_scopes:
            raise ConfigError(
                "NEMO_OAUTH_JWKS_URL, NEMO_OAUTH_AUDIENCE and NEMO_OAUTH_SCOPES need "
                "NEMO_OAUTH_ISSUER: set it to the authorization server's issuer URL"
            )
        return False
    lacking = [name for name, value in given.items() if not value]
    if lacking:
        raise ConfigError(
            f"OAuth (NEMO_OAUTH_ISSUER) also needs {' and '.join(lacking)}: the issuer's "
            "signing keys (its JWKS URL) and this server's public URL (the resource "
            "clients are given tokens for)"
        )
    return True


def decide(settings: Settings, *, http: bool, host: str = "127.0.0.1") -> Exposure:
    """The exposure for `settings` served over stdio or HTTP on `host`.

    Raises `ConfigError` (one sentence: why, and what to set) for a combination
    that must not start: another address without tokens or OAuth, NEMO_TOKEN across
    several users without NEMO_HTTP_SHARED_ACCOUNT=1, a shared account without
    NEMO_TOKEN, an upload root that is not a folder or overlaps the outputs, half an
    OAuth configuration, Redis state for a server not served to others, an upload
    root on a hosted server.
    """
    oauth = _oauth(settings)
    hosted = settings.state_url is not None
    if not http:
        if hosted or oauth:
            raise ConfigError(
                "NEMO_STATE_URL and NEMO_OAUTH_ISSUER are for serving many users over HTTP: "
                "run `nemo-mcp serve --http`, or unset them"
            )
        return Exposure.local("stdio")
    users = len({t.get_secret_value() for t in settings.http_tokens})
    where = "loopback" if is_loopback(host) else "network"
    if users == 0 and not oauth:
        if hosted:
            raise ConfigError(
                "NEMO_STATE_URL keeps many users' state, but no user is known: set "
                "NEMO_HTTP_TOKENS or NEMO_OAUTH_ISSUER (with NEMO_OAUTH_JWKS_URL and "
                "NEMO_PUBLIC_URL)"
            )
        if where == "network":
            raise ConfigError(
                f"serving on {host} would open your NemoVideo account and this computer's files "
                "to the network: set NEMO_HTTP_TOKENS to one or more secret tokens "
                "(comma-separated, one per user) or NEMO_OAUTH_ISSUER, or serve on 127.0.0.1"
            )
        return Exposure.local(f"HTTP on {host} without NEMO_HTTP_TOKENS")
    if settings.http_shared_account and settings.token is None:
        raise ConfigError(
            "NEMO_HTTP_SHARED_ACCOUNT=1 shares the account of NEMO_TOKEN, but NEMO_TOKEN is not "
            "set: set it, or unset NEMO_HTTP_SHARED_ACCOUNT so each user gets their own identity"
        )
    many = users > 1 or oauth
    if settings.token is not None and many and not settings.http_shared_account:
        who = (
            "NEMO_OAUTH_ISSUER admits any number of users"
            if oauth
            else f"NEMO_HTTP_TOKENS names {users} users"
        )
        raise ConfigError(
            f"NEMO_TOKEN is one NemoVideo account and {who}, "
            "who would all spend its credits and work in it: unset NEMO_TOKEN so each user gets "
            "their own identity, or set NEMO_HTTP_SHARED_ACCOUNT=1 if they are meant to share it"
        )
    if hosted and settings.http_upload_root is not None:
        raise ConfigError(
            "NEMO_HTTP_UPLOAD_ROOT is a folder on one machine, and a hosted server's users "
            "reach any replica: unset it (uploads are then by http(s) URL only), or unset "
            "NEMO_STATE_URL to serve from this one process"
        )
    means = " and ".join(
        part for part, on in (("NEMO_HTTP_TOKENS", users > 0), ("OAuth", oauth)) if on
    )
    return Exposure(
        served=True,
        how=f"HTTP on {host} with {means}",
        users=users,
        upload_root=_upload_root(settings),
        shared_account=settings.http_shared_account and settings.token is not None,
        oauth=oauth,
        hosted=hosted,
        save_exports=settings.output_dir_set or not hosted,
    )
