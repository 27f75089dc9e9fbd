"""Settings, resolved once at the edge: flag, then environment, then default.

Everything below the command line takes a `Settings`; nothing else reads the
environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from nemo_mcp.envparse import positive_float as _positive_float
from nemo_mcp.envparse import switch as _switch
from nemo_mcp.errors import ConfigError
from nemo_mcp.scale import Scale, scale_from_env

DEFAULT_API_URL = "https://mega-api-prod.nemovideo.ai"
DEFAULT_WEB_URL = "https://nemovideo.com"
#: Claude Desktop and claude.ai end a tool call after about 60 s.
DEFAULT_TOOL_TIMEOUT = 45.0
#: The longest a call waits for clients known to keep it open (see `server/clients.py`).
DEFAULT_LONG_TOOL_TIMEOUT = 600.0


@dataclass(frozen=True)
class SpendingRule:
    """When `generate` asks the user before spending credits (`NEMO_CONFIRM_SPENDING`).

    `always`: before every paid request; `below`: when the balance would drop below
    `threshold`; `never`: never asks. Asking needs a client that supports elicitation.
    """

    mode: Literal["always", "below", "never"] = "always"
    threshold: float = 0.0

    @classmethod
    def parse(cls, text: str) -> SpendingRule:
        value = text.strip().lower()
        if value in ("always", "never"):
            return cls(mode=value)  # type: ignore[arg-type]
        kind, _, number = value.partition(":")
        if kind == "below":
            try:
                threshold = float(number)
            except ValueError:
                threshold = -1.0
            if threshold >= 0 and threshold != float("inf"):
                return cls(mode="below", threshold=threshold)
        raise ConfigError(
            "NEMO_CONFIRM_SPENDING must be always, never or below:<credits> "
            f"(e.g. below:200); got {text!r}"
        )

    def __str__(self) -> str:
        return f"below:{self.threshold:g}" if self.mode == "below" else self.mode


def _default_home() -> Path:
    # The upstream skill's own folder, so both share one client id.
    return Path.home() / ".config" / "nemovideo"


def _default_output_dir() -> Path:
    from platformdirs import user_downloads_path

    return user_downloads_path() / "nemovideo"


@dataclass(frozen=True)
class Settings:
    """What the server needs to know about its user and backend."""

    api_url: str = DEFAULT_API_URL
    web_url: str = DEFAULT_WEB_URL
    token: SecretStr | None = None
    client_id: str | None = None
    skill: str | None = None
    skill_source: str | None = None
    home: Path = field(default_factory=_default_home)
    output_dir: Path = field(default_factory=_default_output_dir)
    upload_dirs: tuple[Path, ...] = field(default_factory=lambda: (Path.home(),))
    tool_timeout: float = DEFAULT_TOOL_TIMEOUT
    #: For clients known to keep a call open while progress flows: wait up to this long
    #: (0: never longer than `tool_timeout`).
    long_tool_timeout: float = DEFAULT_LONG_TOOL_TIMEOUT
    #: When `generate` asks before spending credits.
    confirm_spending: SpendingRule = field(default_factory=SpendingRule)
    language: str = "en"
    #: After a broken stream: waits before each state read (the documented 30 s,
    #: then 60 s; five unchanged reads, about 5 minutes, mean failure).
    recovery_delays: tuple[float, ...] = (30.0, 60.0, 60.0, 60.0, 60.0)
    #: The shortest render expected; the adaptive poller scales from it.
    render_shortest: float = 30.0
    #: Stream limits: heartbeats only for this long is a timeout; never longer in all.
    stream_idle: float = 600.0
    stream_total: float = 900.0
    #: A claim on running work lasts this long unless its process renews it; work of a
    #: process that died is taken over after it (at once when that process was local).
    lease_seconds: float = 20.0
    #: HTTP mode: bearer tokens clients must send; each one is a separate user.
    http_tokens: tuple[SecretStr, ...] = ()
    #: Served mode: each HTTP user may upload files from `<this>/<their user key>/` only.
    http_upload_root: Path | None = None
    #: Served mode: every HTTP user works in NEMO_TOKEN's one account (said explicitly).
    http_shared_account: bool = False
    #: NEMO_OUTPUT_DIR was given (a hosted server saves exports only then: a shared volume).
    output_dir_set: bool = False
    #: Exports are downloaded into `output_dir`; else the render's URL is the result.
    save_exports: bool = True
    #: Hosted: every user's state and the work ledger in Redis (`redis://...`), shared by
    #: every replica; None keeps them in files under NEMO_HOME.
    state_url: SecretStr | None = None
    #: OAuth 2.1 resource server: the authorization server whose JWT access tokens are
    #: accepted, the audience they must be issued for, where its signing keys are, and
    #: the scopes every token must carry.
    oauth_issuer: str | None = None
    oauth_audience: str | None = None
    oauth_jwks_url: str | None = None
    oauth_scopes: tuple[str, ...] = ()
    #: The server's public base URL (behind the load balancer or TLS proxy): the OAuth
    #: resource is `<this>/mcp`.
    public_url: str | None = None
    #: `upload` re-encodes a video over the upload limit into a copy that fits, as if every
    #: call said `shrink: true` (the original is never changed).
    shrink_videos: bool = False
    #: A per-file upload limit below the skill's own (bytes; None: the skill's).
    upload_limit_bytes: int | None = None
    #: Serving many users: users kept open, the Redis pool, limits, metrics (`scale.py`).
    scale: Scale = field(default_factory=Scale)

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value or None


def _url(name: str, value: str) -> str:
    value = value.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must start with http:// or https:// (got {value!r})")
    return value


def _megabytes(name: str, value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of megabytes (got {value!r})") from None
    if not 0 < number < float("inf"):
        raise ConfigError(f"{name} must be above 0 (got {value!r})")
    return max(1, round(number * 1_000_000))


def _seconds_or_off(name: str, value: str) -> float:
    if value.lower() in ("0", "off", "no"):
        return 0.0
    return _positive_float(name, value)


def settings_from_env(environ: Mapping[str, str] | None = None, **flags: object | None) -> Settings:
    """Build `Settings` from command-line `flags` (None = not given), then `environ`.

    Raises `ConfigError` with the variable's name when a value is unusable.
    """
    env = os.environ if environ is None else environ
    given = {k: v for k, v in flags.items() if v is not None}
    values: dict[str, object] = {}

    def pick(flag: str, var: str) -> str | None:
        if flag in given:
            return _clean(str(given[flag]))
        return _clean(env.get(var))

    if (api := pick("api_url", "NEMO_API_URL")) is not None:
        values["api_url"] = _url("NEMO_API_URL", api)
    if (web := pick("web_url", "NEMO_WEB_URL")) is not None:
        values["web_url"] = _url("NEMO_WEB_URL", web)
    if (token := pick("token", "NEMO_TOKEN")) is not None:
        values["token"] = SecretStr(token)
    if (client_id := pick("client_id", "NEMO_CLIENT_ID")) is not None:
        values["client_id"] = client_id
    if (skill := pick("skill", "NEMO_SKILL")) is not None:
        values["skill"] = skill
    if (source := pick("skill_source", "SKILL_SOURCE")) is not None:
        values["skill_source"] = source
    if (home := pick("home", "NEMO_HOME")) is not None:
        values["home"] = Path(home).expanduser()
    if (out := pick("output_dir", "NEMO_OUTPUT_DIR")) is not None:
        values["output_dir"] = Path(out).expanduser()
        values["output_dir_set"] = True
    if (dirs := pick("upload_dirs", "NEMO_UPLOAD_DIRS")) is not None:
        values["upload_dirs"] = tuple(
            Path(p).expanduser() for p in dirs.split(os.pathsep) if p.strip()
        )
    if (budget := pick("tool_timeout", "NEMO_TOOL_TIMEOUT")) is not None:
        values["tool_timeout"] = _positive_float("NEMO_TOOL_TIMEOUT", budget)
    if (longest := pick("long_tool_timeout", "NEMO_LONG_TOOL_TIMEOUT")) is not None:
        values["long_tool_timeout"] = _seconds_or_off("NEMO_LONG_TOOL_TIMEOUT", longest)
    if (spending := pick("confirm_spending", "NEMO_CONFIRM_SPENDING")) is not None:
        values["confirm_spending"] = SpendingRule.parse(spending)
    if (language := pick("language", "NEMO_LANGUAGE")) is not None:
        values["language"] = language
    if (delays := pick("recovery_delays", "NEMO_RECOVERY_DELAYS")) is not None:
        values["recovery_delays"] = tuple(
            _positive_float("NEMO_RECOVERY_DELAYS", d) for d in delays.split(",") if d.strip()
        )
    if (shortest := pick("render_shortest", "NEMO_RENDER_MIN_SECONDS")) is not None:
        values["render_shortest"] = _positive_float("NEMO_RENDER_MIN_SECONDS", shortest)
    if (idle := pick("stream_idle", "NEMO_STREAM_IDLE_SECONDS")) is not None:
        values["stream_idle"] = _positive_float("NEMO_STREAM_IDLE_SECONDS", idle)
    if (total := pick("stream_total", "NEMO_STREAM_TOTAL_SECONDS")) is not None:
        values["stream_total"] = _positive_float("NEMO_STREAM_TOTAL_SECONDS", total)
    if (lease := pick("lease_seconds", "NEMO_LEASE_SECONDS")) is not None:
        values["lease_seconds"] = _positive_float("NEMO_LEASE_SECONDS", lease)
    if (tokens := pick("http_tokens", "NEMO_HTTP_TOKENS")) is not None:
        values["http_tokens"] = tuple(SecretStr(t.strip()) for t in tokens.split(",") if t.strip())
    if (root := pick("http_upload_root", "NEMO_HTTP_UPLOAD_ROOT")) is not None:
        values["http_upload_root"] = Path(root).expanduser()
    if (shared := pick("http_shared_account", "NEMO_HTTP_SHARED_ACCOUNT")) is not None:
        values["http_shared_account"] = _switch("NEMO_HTTP_SHARED_ACCOUNT", shared)
    if (state := pick("state_url", "NEMO_STATE_URL")) is not None:
        if not state.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(
                "NEMO_STATE_URL must be a Redis URL (redis://, rediss:// or unix://), "
                f"not {state.split(':', 1)[0]!r}"
            )
        values["state_url"] = SecretStr(state)
    if (issuer := pick("oauth_issuer", "NEMO_OAUTH_ISSUER")) is not None:
        _url("NEMO_OAUTH_ISSUER", issuer)  # checked; kept exactly, as `iss` is compared
        values["oauth_issuer"] = issuer
    if (audience := pick("oauth_audience", "NEMO_OAUTH_AUDIENCE")) is not None:
        values["oauth_audience"] = audience
    if (jwks := pick("oauth_jwks_url", "NEMO_OAUTH_JWKS_URL")) is not None:
        values["oauth_jwks_url"] = _url("NEMO_OAUTH_JWKS_URL", jwks)
    if (scopes := pick("oauth_scopes", "NEMO_OAUTH_SCOPES")) is not None:
        values["oauth_scopes"] = tuple(s for s in scopes.replace(",", " ").split() if s)
    if (public := pick("public_url", "NEMO_PUBLIC_URL")) is not None:
        values["public_url"] = _url("NEMO_PUBLIC_URL", public)
    if (shrink := pick("shrink_videos", "NEMO_SHRINK_VIDEOS")) is not None:
        values["shrink_videos"] = _switch("NEMO_SHRINK_VIDEOS", shrink)
    if (limit := pick("upload_limit_mb", "NEMO_UPLOAD_LIMIT_MB")) is not None:
        values["upload_limit_bytes"] = _megabytes("NEMO_UPLOAD_LIMIT_MB", limit)
    values["scale"] = scale_from_env(env)
    return Settings(**values)  # type: ignore[arg-type]
