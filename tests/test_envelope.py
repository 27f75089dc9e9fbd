"""Every documented envelope, and every error code mapped to its class."""

from __future__ import annotations

import json

import pytest

from nemo_mcp.backend.envelope import make_error, parse_retry_after, read_envelope
from nemo_mcp.backend.models import normalize_progress, parse_render_status
from nemo_mcp.errors import (
    AuthError,
    BackendError,
    ClientIdError,
    CreditsError,
    FileTooLargeError,
    PlanError,
    RateLimitError,
    ServerError,
    SessionNotFoundError,
    UnsupportedFileError,
)


def body(obj: object) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("status", "raw", "data"),
    [
        (200, body({"code": 0, "message": "success", "data": {"a": 1}}), {"a": 1}),
        (200, body({"code": "0", "message": "success", "data": {"a": 1}}), {"a": 1}),
        (200, body({"success": True, "data": {"a": 2}}), {"a": 2}),
        (
            200,
            body({"taskId": "render_1", "status": "completed"}),
            {"taskId": "render_1", "status": "completed"},
        ),
        (201, body({"code": 0, "data": None, "message": "ok"}), None),
        (200, b"", None),
    ],
)
def test_success_shapes(status: int, raw: bytes, data: object) -> None:
    assert read_envelope(status, raw) == data


@pytest.mark.parametrize(
    ("status", "raw", "kind", "code"),
    [
        (200, body({"code": 1001, "message": "token expired"}), AuthError, 1001),
        (401, body({"code": 1001, "message": "token expired"}), AuthError, 1001),
        (401, body({"detail": "Not authenticated"}), AuthError, 401),
        (200, body({"code": 1002, "message": "session not found"}), SessionNotFoundError, 1002),
        (404, body({"detail": "Session not found: 123"}), SessionNotFoundError, 404),
        (200, body({"code": 2001, "message": "insufficient credits"}), CreditsError, 2001),
        (402, body({"code": 2001, "message": "insufficient credits"}), CreditsError, 2001),
        (400, body({"code": 4001, "message": "unsupported"}), UnsupportedFileError, 4001),
        (413, body({"code": 4002, "message": "too large"}), FileTooLargeError, 4002),
        (400, body({"code": 400, "message": "X-Client-Id header required"}), ClientIdError, 400),
        (402, body({"code": 402, "message": "free plan"}), PlanError, 402),
        (429, body({"code": 429, "message": "slow down"}), RateLimitError, 429),
        (500, body({"code": 500, "message": "boom"}), ServerError, 500),
        (200, body({"success": False, "error": "no credits", "code": 2001}), CreditsError, 2001),
        (200, body({"success": False, "error": "odd"}), BackendError, 200),
        (422, body({"detail": [{"loc": ["body"], "msg": "field required"}]}), BackendError, 422),
        (409, body({"code": 409, "message": "render id exists"}), BackendError, 409),
    ],
)
def test_error_shapes(status: int, raw: bytes, kind: type[Exception], code: int) -> None:
    with pytest.raises(kind) as info:
        read_envelope(status, raw)
    assert info.value.code == code  # type: ignore[attr-defined]
    assert info.value.http_status == status  # type: ignore[attr-defined]


def test_gateway_html_page() -> None:
    html = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    with pytest.raises(ServerError, match="502 with a gateway error page"):
        read_envelope(502, html)


def test_malformed_json_on_success_is_a_server_error() -> None:
    with pytest.raises(ServerError, match="not JSON"):
        read_envelope(200, b'{"code": 0, "data": {"a"')


def test_rate_limit_carries_retry_after() -> None:
    with pytest.raises(RateLimitError) as info:
        read_envelope(429, body({"code": 429, "message": "x"}), retry_after=7.0)
    assert info.value.retry_after == 7.0


def test_messages_never_carry_tokens() -> None:
    err = make_error(code=1001, http_status=401, message=None)
    assert "token expired" in str(err)
    with pytest.raises(AuthError) as info:
        read_envelope(401, body({"code": 1001, "message": "bad token nmv_usr_abcdef123456"}))
    assert "nmv_usr_abcdef123456" not in str(info.value)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("30", 30.0),
        (" 1 ", 1.0),
        ("0", 0.0),
        ("604800", 604800.0),  # the anonymous token's 7 days: kept, so it is not waited for
        ("1e12", 30 * 24 * 3600.0),
        ("inf", None),
        ("nan", None),
        ("soon", None),
        (None, None),
        ("-1", None),
    ],
)
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


@pytest.mark.parametrize(
    ("value", "status", "fraction"),
    [
        (50, "processing", 0.5),
        (0.5, "processing", 0.5),
        (100, "completed", 1.0),
        (1, "completed", 1.0),
        (1, "processing", 0.01),
        ("75%", "processing", 0.75),
        (None, "completed", 1.0),
        (None, "pending", 0.0),
        (150, "processing", 1.0),
        (-3, "processing", 0.0),
        ("x", "processing", 0.0),
    ],
)
def test_progress_scales(value: object, status: str, fraction: float) -> None:
    assert normalize_progress(value, status=status) == pytest.approx(fraction)


@pytest.mark.parametrize(
    "shape",
    [
        {
            "taskId": "render_1",
            "status": "completed",
            "progress": 100,
            "output": {"url": "https://cdn/x.mp4", "duration": 30.5, "size": 15728640},
        },
        {
            "success": True,
            "data": {
                "id": "render_1",
                "status": "completed",
                "progress": 100,
                "outputUrl": "https://cdn/x.mp4",
                "createdAt": 1,
                "completedAt": 2,
            },
        },
        {
            "code": 0,
            "data": {
                "taskId": "render_1",
                "status": "completed",
                "progress": 1.0,
                "output": {"url": "https://cdn/x.mp4"},
            },
        },
        {
            "code": 0,
            "data": {
                "success": True,
                "data": {"id": "render_1", "status": "completed", "outputUrl": "https://cdn/x.mp4"},
            },
        },
    ],
)
def test_three_render_status_shapes(shape: dict[str, object]) -> None:
    status = parse_render_status(read_envelope(200, body(shape)), render_id="render_1")
    assert status.id == "render_1"
    assert status.status == "completed" and status.done
    assert status.url == "https://cdn/x.mp4"
    assert status.progress == 1.0


def test_failed_render_keeps_its_error() -> None:
    status = parse_render_status({"status": "failed", "error": "codec"}, render_id="r")
    assert status.status == "failed" and status.error == "codec"


def test_unknown_render_shape_is_unknown_not_an_exception() -> None:
    assert parse_render_status(["x"], render_id="r").status == "unknown"
    assert parse_render_status({"status": "weird"}, render_id="r").status == "unknown"
