"""Who the server trusts with what, decided once from the settings and how it is served.

    local    stdio, or HTTP on a loopback address without NEMO_HTTP_TOKENS: the one
             person at this computer. Local files come from the client's roots,
             else NEMO_UPLOAD_DIRS; one NemoVideo identity (NEMO_TOKEN, or the
             saved anonymous one).
    served   HTTP with NEMO_HTTP_TOKENS (required on any other address): people on
             other machines, one user per bearer token. Client roots describe the
             client's machine, so they are never asked for. Uploads are http(s)
             URLs, or files in the user's own folder under NEMO_HTTP_UPLOAD_ROOT
             when the operator set one. Each user has their own state folder,
             output folder and NemoVideo identity; NEMO_TOKEN is one account, so
             several users share it only with NEMO_HTTP_SHARED_ACCOUNT=1.

`decide` is the whole decision table; tools and resources ask the `Exposure`
it returns, never the settings, what a caller may do.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from nemo_mcp.errors import ConfigError, InputError
from nemo_mcp.server.paths import FilePolicy
from nemo_mcp.settings import Settings

log = logging.getLogger(__name__)


def identity_key(token: str) -> str:
    """A folder name for one HTTP user, from their token (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()[:20]


def bearer(headers: Mapping[str, str] | None) -> str | None:
    """The bearer token in a header mapping, if any."""
    if headers is None:
        return None
    value = headers.get("authorization") or headers.get("Authorization")
    if not isinstance(value, str) or not value.lower().startswith("bearer "):
        return None
    return value[7:].strip() or None


def is_loopback(host: str) -> bool:
    """True for an address only this computer can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


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

    @classmethod
    def local(cls, how: str = "stdio") -> Exposure:
        return cls(served=False, how=how)

    def user_key(self, headers: Mapping[str, str] | None) -> str | None:
        """The caller's key: None locally (one user), else from their bearer token."""
        if not self.served:
            return None
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
            if self.shared_account and self.users > 1
            else "each with their own NemoVideo identity"
        )
        plural = "s" if self.users != 1 else ""
        return (
            f"served ({self.how}): {self.users} user{plural} by bearer token, {account}; "
            f"uploads: {self.uploads()}"
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


def decide(settings: Settings, *, http: bool, host: str = "127.0.0.1") -> Exposure:
    """The exposure for `settings` served over stdio or HTTP on `host`.

    Raises `ConfigError` (one sentence: why, and what to set) for a combination
    that must not start: another address without tokens, NEMO_TOKEN across
    several users without NEMO_HTTP_SHARED_ACCOUNT=1, a shared account without
    NEMO_TOKEN, an upload root that is not a folder or overlaps the outputs.
    """
    if not http:
        return Exposure.local("stdio")
    users = len({t.get_secret_value() for t in settings.http_tokens})
    where = "loopback" if is_loopback(host) else "network"
    if users == 0:
        if where == "network":
            raise ConfigError(
                f"serving on {host} would open your NemoVideo account and this computer's files "
                "to the network: set NEMO_HTTP_TOKENS to one or more secret tokens "
                "(comma-separated, one per user), or serve on 127.0.0.1"
            )
        return Exposure.local(f"HTTP on {host} without NEMO_HTTP_TOKENS")
    if settings.http_shared_account and settings.token is None:
        raise ConfigError(
            "NEMO_HTTP_SHARED_ACCOUNT=1 shares the account of NEMO_TOKEN, but NEMO_TOKEN is not "
            "set: set it, or unset NEMO_HTTP_SHARED_ACCOUNT so each user gets their own identity"
        )
    if settings.token is not None and users > 1 and not settings.http_shared_account:
        raise ConfigError(
            f"NEMO_TOKEN is one NemoVideo account and NEMO_HTTP_TOKENS names {users} users, "
            "who would all spend its credits and work in it: unset NEMO_TOKEN so each user gets "
            "their own identity, or set NEMO_HTTP_SHARED_ACCOUNT=1 if they are meant to share it"
        )
    return Exposure(
        served=True,
        how=f"HTTP on {host} with NEMO_HTTP_TOKENS",
        users=users,
        upload_root=_upload_root(settings),
        shared_account=settings.http_shared_account and settings.token is not None,
    )
