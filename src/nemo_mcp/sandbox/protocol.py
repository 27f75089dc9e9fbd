"""The wire forms the sandbox answers in: envelopes, error bodies and their HTTP statuses.

`ApiError` is what every handler raises to refuse a call; `error_response`
renders it in the configured envelope (`code` or `success`) and status mode
(`http`: a matching HTTP status; `ok`: HTTP 200 with a non-zero code).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import JSONResponse, Response

from nemo_mcp.sandbox.config import SandboxConfig

#: The HTTP status each backend code travels with when `error_status` is "http".
HTTP_STATUS: dict[int, int] = {
    400: 400,
    402: 402,
    404: 404,
    409: 409,
    429: 429,
    1001: 401,
    1002: 404,
    2001: 402,
    4001: 400,
    4002: 413,
}


class ApiError(Exception):
    """A refused call: backend `code`, a message for people, optional headers.

    `http_status` forces the status whatever the `error_status` mode (gateway
    failures are HTTP errors in every mode).
    """

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.headers = headers or {}


class DetailError(Exception):
    """A FastAPI-style refusal, `{"detail": ...}`, as the agent server itself answers."""

    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON, as the backend sends it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class Json(JSONResponse):
    """A JSON response rendered compactly."""

    def render(self, content: Any) -> bytes:
        return dumps(content)


def ok_body(data: Any, config: SandboxConfig) -> dict[str, Any]:
    if config.envelope == "success":
        return {"success": True, "data": data}
    return {"code": 0, "message": "success", "data": data}


def ok_response(data: Any, config: SandboxConfig) -> Response:
    return Json(ok_body(data, config))


def error_body(code: int, message: str, config: SandboxConfig) -> dict[str, Any]:
    if config.envelope == "success":
        # The code is kept beside `error` so the meaning survives an HTTP 200, unless the
        # documented form is asked for (then only the status and the words carry it).
        if not config.success_error_code:
            return {"success": False, "error": message}
        return {"success": False, "error": message, "code": code}
    return {"code": code, "message": message}


def error_status(err: ApiError, config: SandboxConfig) -> int:
    if err.http_status is not None:
        return err.http_status
    if config.error_status == "ok":
        return 200
    return HTTP_STATUS.get(err.code, 500 if err.code >= 500 else 400)


def error_response(err: ApiError, config: SandboxConfig) -> Response:
    return Json(
        error_body(err.code, err.message, config),
        status_code=error_status(err, config),
        headers=err.headers,
    )


def detail_response(err: DetailError) -> Response:
    return Json({"detail": err.detail}, status_code=err.status)


def validation_detail(errors: list[Any], *, prefix: str = "body") -> list[dict[str, Any]]:
    """Pydantic errors in FastAPI's 422 shape: `type`, `loc` (under "body"), `msg`, `input`."""
    detail = []
    for e in errors:
        item = {"type": e["type"], "loc": [prefix, *e["loc"]], "msg": e["msg"]}
        if "input" in e:
            item["input"] = e["input"]
        detail.append(item)
    return detail


def json_invalid(position: int) -> DetailError:
    return DetailError(
        422,
        [
            {
                "type": "json_invalid",
                "loc": ["body", position],
                "msg": "JSON decode error",
                "input": {},
                "ctx": {"error": "Expecting value"},
            }
        ],
    )


_PAGE_TITLES = {502: "Bad Gateway", 504: "Gateway Time-out"}


def bad_gateway_page(status: int = 502) -> Response:
    """What a gateway in front of the backend sends when the backend is down (502) or
    did not answer in time (504)."""
    title = f"{status} {_PAGE_TITLES.get(status, 'Error')}"
    html = (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Response(html, status_code=status, media_type="text/html")


#: A body cut off mid-way, as a proxy that dropped the connection leaves it.
TRUNCATED_JSON = b'{"code":0,"message":"success","data":{"id":"'


__all__ = [
    "HTTP_STATUS",
    "TRUNCATED_JSON",
    "ApiError",
    "DetailError",
    "Json",
    "bad_gateway_page",
    "detail_response",
    "dumps",
    "error_body",
    "error_response",
    "json_invalid",
    "ok_body",
    "ok_response",
    "validation_detail",
]
