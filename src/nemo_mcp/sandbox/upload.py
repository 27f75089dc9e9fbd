"""`POST /api/upload-video/nemo_agent/me/<sid>`: files (multipart, field `files`) or URLs (JSON).

Multipart bodies are parsed as they arrive: each file is hashed, counted and
probed chunk by chunk and its content is not kept, so memory stays flat
whatever the size. A file of an unsupported type (4001) or over the limit
(4002) is refused as soon as it is seen, without reading the rest.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from nemo_mcp.sandbox.api import validated
from nemo_mcp.sandbox.media import (
    ACCEPTED_LABEL,
    MediaProbe,
    extension,
    file_type,
    limit_label,
    upload_limit,
)
from nemo_mcp.sandbox.protocol import ApiError
from nemo_mcp.sandbox.routing import Call, endpoint

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

_REFUSED_HOSTS = ("youtube.com", "youtu.be", "youtube-nocookie.com", "spotify.com", "spotify.link")


def _unsupported(name: str, ext: str) -> ApiError:
    return ApiError(
        4001,
        f"unsupported file type: {name} (.{ext or 'no extension'}); accepted: {ACCEPTED_LABEL}",
    )


def _info(base_url: str, name: str, kind: str, sha: str, facts: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = {
        "filename": name,
        "file_type": kind,
        "cdn_url": f"{base_url}/cdn/uploads/{sha[:16]}/{quote(name)}",
    }
    info.update(facts)
    info["hash"] = sha
    return info


class _Collector:
    """The multipart callbacks: one `MediaProbe` per file part, the others ignored."""

    def __init__(self, base_url: str, limit: int, source: str | None) -> None:
        self.base_url, self.limit, self.source = base_url, limit, source
        self.files: list[dict[str, Any]] = []
        self.total = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._name = ""
        self._probe: MediaProbe | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
            "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    @property
    def in_file(self) -> bool:
        return self._probe is not None

    def _part_begin(self) -> None:
        self._headers.clear()

    def _header_end(self) -> None:
        self._headers[bytes(self._field).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._headers.get(b"content-disposition", b""))
        filename = params.get(b"filename")
        if params.get(b"name") != b"files" or filename is None:
            self._probe = None  # another form field: not a file for us
            return
        name = filename.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
        ext = extension(name)
        if file_type(ext) is None:
            raise _unsupported(name, ext)
        self._name = name
        self._probe = MediaProbe(ext)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._probe is None:
            return
        self._probe.feed(data[start:end])
        if self._probe.size > self.limit:
            raise ApiError(
                4002,
                f"file too large: {self._name} is over the {limit_label(self.limit)} limit of "
                f"{self.source or 'this skill'}; compress or trim it and upload again",
            )

    def _part_end(self) -> None:
        probe, self._probe = self._probe, None
        if probe is None:
            return
        kind = file_type(probe.ext) or "video"
        self.files.append(_info(self.base_url, self._name, kind, probe.sha256, probe.facts()))
        self.total += probe.size


async def _multipart(call: Call, content_type: str) -> tuple[list[dict[str, Any]], int]:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart body without a boundary")
    source = call.header("x-skill-source")
    limit = call.config.upload_limit_bytes or upload_limit(source)
    collector = _Collector(call.base_url, limit, source)
    parser = MultipartParser(boundary, collector.callbacks())
    try:
        async for chunk in call.request.stream():
            if chunk:
                parser.write(chunk)
        parser.finalize()
    except MultipartParseError as err:
        raise ApiError(400, f"malformed multipart body: {err}") from None
    except ClientDisconnect:
        raise ApiError(400, "the upload was interrupted before its end") from None
    if collector.in_file:
        raise ApiError(400, "malformed multipart body: it ends inside a file")
    if not collector.files:
        raise ApiError(400, "no files in the upload: send them in the multipart field 'files'")
    return collector.files, collector.total


class UrlBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    urls: list[str] = Field(min_length=1)
    source_type: Literal["url"] = "url"


def _url_info(base_url: str, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        raise ApiError(4001, f"not an http(s) link: {url[:200]}")
    if any(host == h or host.endswith("." + h) for h in _REFUSED_HOSTS):
        raise ApiError(
            4001,
            "YouTube and Spotify links are not fetched: their media cannot be imported. "
            "Use the built-in music and stock library (it has similar styles), or upload your own file.",
        )
    name = unquote(parts.path.rsplit("/", 1)[-1]) or host
    ext = extension(name)
    kind = file_type(ext)
    if kind is None:
        raise _unsupported(name, ext)
    return _info(base_url, name, kind, hashlib.sha256(url.encode()).hexdigest(), {})


@endpoint("upload")
async def upload(call: Call) -> dict[str, Any]:
    """Add files or links to one of the caller's sessions (`video_infos`)."""
    session = call.session(call.request.path_params["session_id"])
    content_type = call.request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        files, size = await _multipart(call, content_type)
        call.world.upload_bytes += size
    elif not content_type or "json" in content_type.lower():
        body = validated(UrlBody, await call.json())
        files = [_url_info(call.base_url, url) for url in body.urls]
    else:
        raise ApiError(
            400,
            'send multipart/form-data (field \'files\') or JSON {"urls": [...], "source_type": "url"}',
        )
    session.video_infos = [*session.video_infos, *files]
    return {"files": files, "session_state_applied": True}


__all__ = ["upload"]
