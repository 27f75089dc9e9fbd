"""`nemo-mcp doctor`: check everything the server depends on, and say how to fix it.

Checks settings, how the server would be exposed (local or served to others,
and any combination that must not start), SKILL.md identity and platform, the
state folder and its permissions, the token (never printed), the output
folder, and whether the backend answers. Hosted, also whether Redis answers and
keeps what it is given, and whether the OAuth issuer's signing keys can be read. Exits non-zero when anything is
wrong; warnings are printed but do not fail.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import anyio
import httpx

from nemo_mcp import __version__
from nemo_mcp.errors import ConfigError, NemoError, SkillFileError
from nemo_mcp.identity import SkillIdentity, load_identity
from nemo_mcp.settings import Settings, settings_from_env
from nemo_mcp.state_files import StateStore


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    #: Works, but worth the operator's attention (printed, never a failure).
    warn: bool = False


#: Bearer tokens shorter than this are easy to guess.
SHORT_TOKEN = 16


def _exposure_checks(
    settings: Settings, env: Mapping[str, str], *, http: bool, host: str
) -> list[Check]:
    """How `serve` would expose the server, and what is dangerous about it."""
    from nemo_mcp.server.exposure import decide, is_loopback

    try:
        exposure = decide(settings, http=http, host=host)
    except ConfigError as err:
        return [Check("exposure", False, err.message, "change the settings named above")]
    checks = [Check("exposure", True, exposure.describe())]
    if not exposure.served:
        if env.get("NEMO_HTTP_UPLOAD_ROOT", "").strip():
            checks.append(
                Check(
                    "exposure",
                    True,
                    "NEMO_HTTP_UPLOAD_ROOT is used only when serving with NEMO_HTTP_TOKENS",
                    warn=True,
                )
            )
        return checks
    if not is_loopback(host):
        checks.append(
            Check(
                "exposure",
                True,
                f"plain HTTP on {host}: bearer tokens travel in clear text; put a TLS proxy "
                "in front",
                warn=True,
            )
        )
    if any(len(t.get_secret_value()) < SHORT_TOKEN for t in settings.http_tokens):
        checks.append(
            Check(
                "NEMO_HTTP_TOKENS",
                True,
                f"a token is shorter than {SHORT_TOKEN} characters and easy to guess; "
                "use long random ones",
                warn=True,
            )
        )
    if exposure.shared_account and exposure.users > 1:
        checks.append(
            Check(
                "NEMO_HTTP_SHARED_ACCOUNT",
                True,
                f"all {exposure.users} users spend NEMO_TOKEN's credits and work in its account",
                warn=True,
            )
        )
    if env.get("NEMO_UPLOAD_DIRS", "").strip():
        checks.append(
            Check(
                "NEMO_UPLOAD_DIRS",
                True,
                "not used when served to others (see NEMO_HTTP_UPLOAD_ROOT)",
                warn=True,
            )
        )
    return checks


def _folder_check(name: str, folder: Path, *, private: bool) -> Check:
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if folder.exists() and not folder.is_dir():
        return Check(
            name, False, f"{folder} is not a folder", f"remove it or point {name} elsewhere"
        )
    if not os.access(probe, os.W_OK):
        return Check(
            name,
            False,
            f"{probe} is not writable",
            f"fix its permissions or set {name} to a writable folder",
        )
    if private and folder.exists():
        mode = stat.S_IMODE(folder.stat().st_mode)
        if mode & 0o077 and sys.platform != "win32":
            return Check(
                name,
                False,
                f"{folder} is readable by others (mode {mode:o})",
                f"chmod 700 {folder}",
            )
    return Check(name, True, f"{folder}{'' if folder.exists() else ' (will be created)'}")


def _secret_files(store: StateStore) -> list[Check]:
    checks = []
    if store.folder.exists():
        for path in sorted(store.folder.glob("*.json")):
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077 and sys.platform != "win32":
                checks.append(
                    Check(
                        "state file", False, f"{path.name} has mode {mode:o}", f"chmod 600 {path}"
                    )
                )
    return checks


async def _backend(settings: Settings, identity: SkillIdentity, store: StateStore) -> Check:
    auth = store.load_auth()
    token = settings.token.get_secret_value() if settings.token else (auth.token if auth else None)
    headers = identity.headers()
    try:
        async with httpx.AsyncClient(
            base_url=settings.api_url, timeout=10.0, headers=headers
        ) as http:
            if token is None:
                response = await http.get("/api/credits/balance/simple")
                return Check(
                    "backend",
                    True,
                    f"{settings.api_url} answers (HTTP {response.status_code}); "
                    "no token yet: a free one is obtained on first use",
                )
            response = await http.get(
                "/api/credits/balance/simple", headers={"Authorization": f"Bearer {token}"}
            )
    except httpx.HTTPError as err:
        return Check(
            "backend",
            False,
            f"{settings.api_url} unreachable ({type(err).__name__})",
            "check the network, a proxy, or NEMO_API_URL",
        )
    from nemo_mcp.backend.envelope import read_envelope

    try:
        data = read_envelope(response.status_code, response.content)
    except NemoError as err:
        source = "NEMO_TOKEN" if settings.token else "the saved anonymous token"
        if err.code in (1001, 401):
            fix = (
                "set a valid NEMO_TOKEN"
                if settings.token
                else f"delete {store.folder / 'auth.json'} to get a new one"
            )
            return Check("token", False, f"{source} was refused (expired or invalid)", fix)
        return Check(
            "backend",
            False,
            f"{settings.api_url} answered with an error: {err.message}",
            "try again later; if it persists, check NEMO_API_URL",
        )
    available = data.get("available") if isinstance(data, dict) else None
    return Check("token", True, f"accepted; {available} credits available")


def run_checks(
    environ: Mapping[str, str] | None = None, *, http: bool | None = None, host: str | None = None
) -> list[Check]:
    """Every check. `http`/`host`: how `serve` would run (default: HTTP on 127.0.0.1 when
    NEMO_HTTP_TOKENS is set or a host is given, else stdio)."""
    env = os.environ if environ is None else environ
    checks: list[Check] = []
    try:
        settings = settings_from_env(env)
    except ConfigError as err:
        return [Check("settings", False, err.message, "fix the variable named above")]
    checks.append(Check("settings", True, f"API {settings.api_url}, web {settings.web_url}"))
    if http is None:
        http = host is not None or bool(settings.http_tokens)
    checks.extend(_exposure_checks(settings, env, http=http, host=host or "127.0.0.1"))
    try:
        identity = load_identity(skill=settings.skill, skill_source_override=settings.skill_source)
    except SkillFileError as err:
        checks.append(Check("skill", False, str(err), "reinstall nemo-mcp or fix NEMO_SKILL"))
        return checks
    checks.append(
        Check("skill", True, f"{identity.source} v{identity.version}, platform {identity.platform}")
    )
    checks.append(_folder_check("NEMO_HOME", settings.home, private=False))
    store = StateStore(settings.home, settings.api_url)
    checks.append(_folder_check("state folder", store.folder, private=True))
    checks.extend(_secret_files(store))
    checks.append(_folder_check("NEMO_OUTPUT_DIR", settings.output_dir, private=False))
    if settings.token is not None:
        checks.append(Check("token source", True, "NEMO_TOKEN is set (not shown)"))
    elif store.load_auth() is not None:
        checks.append(Check("token source", True, "a saved anonymous token (not shown)"))
    else:
        checks.append(
            Check("token source", True, "none yet; a free anonymous token is obtained on first use")
        )
    for folder in settings.upload_dirs:
        if not folder.is_dir():
            checks.append(
                Check(
                    "NEMO_UPLOAD_DIRS", False, f"{folder} is not a folder", "fix NEMO_UPLOAD_DIRS"
                )
            )
    if settings.state_url is not None:
        checks.extend(anyio.run(_redis_checks, settings))
    if settings.oauth_issuer is not None and settings.oauth_jwks_url is not None:
        checks.extend(anyio.run(_oauth_checks, settings))
    checks.append(anyio.run(_backend, settings, identity, store))
    return checks


def _where(url: str) -> str:
    """A Redis URL without its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"


async def _redis_checks(settings: Settings) -> list[Check]:
    """NEMO_STATE_URL: Redis answers, keeps what it acknowledged, never evicts."""
    from nemo_mcp.hosted.redis_client_state import connect

    assert settings.state_url is not None
    url = settings.state_url.get_secret_value()
    try:
        redis = connect(url)
    except ValueError as err:
        return [Check("NEMO_STATE_URL", False, f"not a usable Redis URL ({err})", "fix it")]
    try:
        with anyio.fail_after(5):
            await redis.ping()
            info = await redis.info("server")
            try:
                config = await redis.config_get("*")
            except Exception:  # CONFIG may be forbidden to this user (ACL): said, not failed
                config = None
    except Exception as err:
        return [
            Check(
                "NEMO_STATE_URL",
                False,
                f"Redis at {_where(url)} does not answer ({type(err).__name__})",
                "start Redis (deploy/redis.conf), or fix the address and password",
            )
        ]
    finally:
        await redis.aclose()
    checks = [Check("NEMO_STATE_URL", True, f"Redis {info.get('redis_version')} at {_where(url)}")]
    if config is None:
        checks.append(
            Check("NEMO_STATE_URL", True, "cannot read Redis's settings (CONFIG)", warn=True)
        )
        return checks
    if config.get("appendonly") != "yes":
        checks.append(
            Check(
                "NEMO_STATE_URL",
                True,
                "Redis has no append-only file: a Redis crash loses recent work records",
                warn=True,
            )
        )
    if config.get("maxmemory-policy") != "noeviction":
        checks.append(
            Check(
                "NEMO_STATE_URL",
                False,
                f"Redis may evict keys (maxmemory-policy {config.get('maxmemory-policy')}): "
                "an evicted work record could be sent again",
                "set maxmemory-policy noeviction (deploy/redis.conf)",
            )
        )
    return checks


async def _oauth_checks(settings: Settings) -> list[Check]:
    """NEMO_OAUTH_*: the signing keys can be read; the resource is named as clients see it."""
    assert settings.oauth_jwks_url is not None
    checks = []
    keys: object = None
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            response = await http.get(settings.oauth_jwks_url)
        reason = f"HTTP {response.status_code}"
        if response.status_code == 200:
            keys = response.json().get("keys")
    except (httpx.HTTPError, ValueError, AttributeError) as err:
        reason = type(err).__name__
    if not isinstance(keys, list) or not keys:
        checks.append(
            Check(
                "NEMO_OAUTH_JWKS_URL",
                False,
                f"no signing keys at {settings.oauth_jwks_url} ({reason})",
                "set it to the issuer's jwks_uri (in its /.well-known metadata)",
            )
        )
    else:
        checks.append(Check("NEMO_OAUTH_JWKS_URL", True, f"{len(keys)} signing key(s)"))
    resource = f"{settings.public_url}/mcp"
    audience = settings.oauth_audience or resource
    checks.append(Check("OAuth", True, f"issuer {settings.oauth_issuer}, audience {audience}"))
    if settings.public_url and settings.public_url.startswith("http://"):
        checks.append(
            Check("NEMO_PUBLIC_URL", True, "plain http: access tokens travel in clear", warn=True)
        )
    if not settings.oauth_scopes:
        checks.append(
            Check(
                "NEMO_OAUTH_SCOPES",
                True,
                "no scope required: any token the issuer gives for this audience is accepted",
                warn=True,
            )
        )
    return checks


def main(
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    *,
    http: bool | None = None,
    host: str | None = None,
) -> int:
    out = out or sys.stdout
    print(f"nemo-mcp {__version__} doctor", file=out)
    checks = run_checks(environ, http=http, host=host)
    for check in checks:
        mark = "FAIL" if not check.ok else ("warn" if check.warn else "ok  ")
        print(f"[{mark}] {check.name}: {check.detail}", file=out)
        if not check.ok and check.fix:
            print(f"       fix: {check.fix}", file=out)
    failed = [c for c in checks if not c.ok]
    print("all good" if not failed else f"{len(failed)} problem(s) found", file=out)
    return 1 if failed else 0
