"""The sandbox's switches: `SandboxConfig` (variants, timings, costs) and `Fault`.

A config is set per process (constructor, `--set key=value`, the control
endpoint) and may be overridden per request with the header
`X-Sandbox-Variant: key=value; key=value`. Faults are queued per process or
named per request with `X-Sandbox-Fault: name[;param=value][, name...]`; each
one is consumed when it fires. Also here: which routes each fault can hit,
and the parsers for the header and command-line spellings.

The faults of a misbehaving backend or gateway (routes in `FAULT_ROUTES`):

- `huge_body` (`mb`, `content_length`): the route's real JSON answer with a
  `padding` field that makes it `mb` MB, made while it is sent (the sandbox
  never holds it); chunked unless `content_length=true`. On `run_sse`, whose
  answer is a stream, it is a refusal before the stream: HTTP 503 with a JSON
  error body of that size (the message is not taken).
- `drip` (`interval`): the route's real answer, status and headers at once,
  then its body one byte every `interval` seconds (no Content-Length); on
  `run_sse` the event stream itself trickles.
- `download_cut` (`bytes`): a file download that ends cleanly after `bytes`
  bytes (no Content-Length, so nothing but the size the render reported tells
  it is short).
- `download_slow` (`rate`): a file download sent at `rate` bytes a second, in
  64 KiB pieces (a slow link, or a download long enough to interrupt).
- `error_frame` (`message`, `code`, `form`): the stream ends with a failure after the
  first event: `form=error` is the gateway's `{"error": ..., "code": ...}` frame,
  `form=adk` a model failure as an ADK event (`errorCode`, `errorMessage`).
- `rate_limited` (`retry_after`): a 429 from the gateway with that `Retry-After`;
  `retry_after=none` sends it bare, as the contract allows.
- `never_answer`: the connection and the request are accepted, then nothing
  is sent until the client leaves; the handler ends then (nothing is left
  running), and the request is logged with status 499.
- `gateway_after` (`status`): a gateway that passes the request on to the
  backend, which does its work (a message is taken and charged, a render
  starts), and then answers `status` itself (502 or 504: its HTML page; 503:
  a JSON error) instead of the backend's answer.
- `hold` (`seconds`): a gateway that passes the request on at once and holds
  the backend's answer `seconds` (40 by default, longer than a client waits)
  before sending it; the work is done meanwhile.

Status reads that fail N times are `server_error` or `bad_gateway` on
`render_status` with `times=N`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RouteName = Literal[
    "anonymous_token",
    "session",
    "claim_token",
    "run_sse",
    "upload",
    "credits",
    "state",
    "render_start",
    "render_status",
    "render_cancel",
    "render_download",
    "file",
]
ROUTES: tuple[str, ...] = get_args(RouteName)

FaultName = Literal[
    "token_expired",
    "session_lost",
    "out_of_credits",
    "rate_limited",
    "server_error",
    "bad_gateway",
    "slow",
    "malformed_json",
    "stream_drop",
    "error_frame",
    "heartbeats_only",
    "render_fail",
    "output_url_broken",
    "export_blocked",
    "huge_body",
    "drip",
    "never_answer",
    "download_cut",
    "download_slow",
    "gateway_after",
    "hold",
]
FAULTS: tuple[str, ...] = get_args(FaultName)

_ALL = frozenset(ROUTES)
_AUTHED = _ALL - {"anonymous_token", "file"}
#: The routes that answer JSON (or, for `run_sse`, refuse in JSON): not the file downloads.
_FILES = frozenset({"render_download", "file"})
_JSON = _ALL - _FILES
#: The routes each fault can fire on; `route="*"` means the first request to any of them.
FAULT_ROUTES: dict[str, frozenset[str]] = {
    "token_expired": _AUTHED,
    "session_lost": frozenset({"claim_token", "run_sse", "upload", "state", "render_start"}),
    "out_of_credits": frozenset({"run_sse"}),
    "rate_limited": _ALL,
    "server_error": _ALL,
    "bad_gateway": _ALL,
    "slow": _ALL,
    "malformed_json": _ALL,
    "stream_drop": frozenset({"run_sse"}),
    "error_frame": frozenset({"run_sse"}),
    "heartbeats_only": frozenset({"run_sse"}),
    "render_fail": frozenset({"render_start"}),
    "output_url_broken": frozenset({"file"}),
    "export_blocked": frozenset({"render_start"}),
    "huge_body": _JSON,
    "drip": _JSON,
    "never_answer": _ALL,
    "download_cut": _FILES,
    "download_slow": _FILES,
    "gateway_after": _JSON,
    "hold": _JSON,
}

#: Parameters each fault takes, with their defaults.
FAULT_PARAMS: dict[str, dict[str, Any]] = {
    "rate_limited": {"retry_after": "1"},
    "server_error": {"status": 500},
    "slow": {"delay": 1.0},
    "stream_drop": {"after": 2},
    "error_frame": {
        "message": "agent execution failed: the model is overloaded",
        "code": 503,
        "form": "error",
    },
    "heartbeats_only": {"duration": 1.0},
    "render_fail": {"error": "render failed: composition timed out on the render node"},
    "huge_body": {"mb": 50.0, "content_length": False},
    "drip": {"interval": 1.0},
    "download_cut": {"bytes": 1_000_000},
    "download_slow": {"rate": 1_000_000},
    "gateway_after": {"status": 504},
    "hold": {"seconds": 40.0},
}


#: The two forms a failure in the message stream comes in (`error_frame`'s `form`).
FORMS = ("error", "adk")


class Fault(BaseModel):
    """One fault to inject: `Fault("slow", route="credits", times=2, delay=0.5)`.

    `times=None` fires on every matching request; parameters not given take
    the defaults of `FAULT_PARAMS`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: FaultName
    route: str = "*"
    times: int | None = Field(default=1, ge=1)
    params: dict[str, Any] = Field(default_factory=dict)

    def __init__(
        self, name: str | None = None, /, route: str = "*", times: int | None = 1, **params: Any
    ) -> None:
        if name is None:  # keyword form, as pydantic itself builds it
            name = params.pop("name")
        if set(params) == {"params"} and isinstance(params["params"], dict):
            params = dict(params["params"])
        super().__init__(name=name, route=route, times=times, params=params)

    @model_validator(mode="before")
    @classmethod
    def _gather_params(cls, value: Any) -> Any:
        # The JSON form is flat: {"name", "route", "times", ...params}.
        if isinstance(value, dict):
            fixed = {"name", "route", "times", "params"}
            extra = {k: v for k, v in value.items() if k not in fixed}
            if extra:
                value = {k: v for k, v in value.items() if k in fixed}
                value["params"] = {**value.get("params", {}), **extra}
        return value

    @model_validator(mode="after")
    def _check(self) -> Fault:
        allowed = FAULT_ROUTES[self.name]
        if self.route != "*" and self.route not in allowed:
            raise ValueError(
                f"fault {self.name} cannot fire on route {self.route!r}; "
                f"it applies to: {', '.join(sorted(allowed))}"
            )
        if self.name == "error_frame" and self.params.get("form", "error") not in FORMS:
            raise ValueError(f"fault error_frame takes form={' or form='.join(FORMS)}")
        known = FAULT_PARAMS.get(self.name, {})
        unknown = set(self.params) - set(known)
        if unknown:
            raise ValueError(f"fault {self.name} takes no parameter {', '.join(sorted(unknown))}")
        return self

    def param(self, key: str) -> Any:
        """A parameter's value, else its default."""
        return self.params.get(key, FAULT_PARAMS[self.name][key])

    def applies_to(self, route: str) -> bool:
        if route not in FAULT_ROUTES[self.name]:
            return False
        return self.route in ("*", route)


Envelope = Literal["code", "success"]
ErrorStatus = Literal["http", "ok"]
RenderShape = Literal["bare", "success", "code"]
Progress = Literal["percent", "fraction"]
SseStyle = Literal["adk", "adk_partial", "typed"]
HeartbeatForm = Literal["comment", "empty_data", "event", "mixed"]


class SandboxConfig(BaseModel):
    """How the sandbox behaves: costs, timings, which documented variant it speaks."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    initial_credits: int = Field(default=100, ge=0)
    generation_cost: int = Field(default=100, ge=0)
    edit_cost: int = Field(default=50, ge=0)
    token_ttl: float = Field(default=7 * 24 * 3600.0, ge=0, description="seconds a token lives")
    token_retry_after: bool = Field(
        default=False,
        description="the anonymous token's 429 names its wait in Retry-After (the contract "
        "promises no such header)",
    )
    generation_seconds: float = Field(default=3.0, ge=0)
    edit_seconds: float = Field(default=0.5, ge=0)
    render_seconds: float = Field(default=3.0, ge=0)
    heartbeat_interval: float = Field(default=0.25, gt=0)
    envelope: Envelope = "code"
    error_status: ErrorStatus = "http"
    render_status: RenderShape = "bare"
    progress: Progress = "percent"
    sse: SseStyle = "adk"
    heartbeat: HeartbeatForm = "mixed"
    silent_edits: bool = False
    trailing_issue: bool = False
    render_output_bytes: int | None = Field(default=None, ge=1)
    # The optional parts of the contract's answers, each of which may be left out:
    render_output_facts: bool = Field(
        default=True,
        description="a completed render's status gives the output's duration and size "
        "(shape 2 of the contract documents neither)",
    )
    render_failure_reason: bool = Field(
        default=True, description="a failed render's status carries `error` (it may not)"
    )
    success_error_code: bool = Field(
        default=True,
        description='the success envelope\'s error keeps the backend code beside "error" '
        '(the documented form is only {"success": false, "error": "..."})',
    )
    session_user_id: bool = Field(
        default=True, description="the session answer carries `user_id` (maybe, says the contract)"
    )
    upload_limit_bytes: int | None = Field(
        default=None, ge=1, description="overrides the per-skill upload limit (500 or 200 MB)"
    )
    keep_upload_bytes: int = Field(
        default=100_000_000,
        ge=0,
        description="uploads up to this size are kept for renders (0: none are)",
    )
    keep_total_bytes: int = Field(
        default=500_000_000, ge=0, description="all kept uploads together stay under this"
    )
    faults: list[Fault] = Field(default_factory=list)

    def merged(self, changes: Mapping[str, Any]) -> SandboxConfig:
        """A validated copy with `changes` applied (strings are coerced as pydantic does)."""
        values = self.model_dump()
        for key, value in changes.items():
            if key not in SandboxConfig.model_fields:
                raise ValueError(f"unknown setting {key!r}")
            values[key] = value
        try:
            return SandboxConfig.model_validate(values)
        except ValidationError as err:
            raise ValueError(_explain(err)) from None


def _explain(err: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in err.errors()
    )


def _scalar(text: str) -> Any:
    value = text.strip()
    return None if value.lower() in ("none", "null") else value


def parse_assignments(text: str, *, separator: str = ";") -> dict[str, Any]:
    """`"a=1; b=x"` -> `{"a": "1", "b": "x"}`; `none`/`null` become None."""
    result: dict[str, Any] = {}
    for item in text.split(separator):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"expected key=value, got {item.strip()!r}")
        result[key.strip()] = _scalar(value)
    return result


def parse_fault_spec(spec: str) -> Fault:
    """`"slow;route=credits;times=2;delay=0.5"` -> a `Fault` (times=none: always)."""
    name, _, rest = spec.strip().partition(";")
    params = parse_assignments(rest)
    route = params.pop("route", None) or "*"
    times = params.pop("times", 1)
    try:
        return Fault.model_validate(
            {"name": name.strip(), "route": route, "times": times, **params}
        )
    except ValidationError as err:
        raise ValueError(_explain(err)) from None


def parse_fault_header(value: str) -> list[Fault]:
    """The faults named in one `X-Sandbox-Fault` header (comma-separated specs)."""
    return [parse_fault_spec(item) for item in value.split(",") if item.strip()]


__all__ = [
    "FAULTS",
    "FAULT_PARAMS",
    "FAULT_ROUTES",
    "ROUTES",
    "Fault",
    "SandboxConfig",
    "parse_assignments",
    "parse_fault_header",
    "parse_fault_spec",
]
