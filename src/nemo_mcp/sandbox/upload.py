"""`POST /api/upload-video/nemo_agent/me/<sid>`: files (multipart, field `files`) or URLs (JSON).

Multipart bodies are parsed as they arrive: each file is hashed and counted chunk by chunk
and written to the sandbox's folder (within the keep caps, see `files.py`), so memory stays
flat whatever the size. A file of an unsupported type (4001) or over the limit (4002) is
refused as soon as it is seen, without reading the rest. Once the body is whole, each kept
file is probed with the media kit for its duration, size and frame rate (a file the kit
cannot read is answered without them, and renders show a stand-in for it). Links are
recorded, not fetched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, unquote, urlsplit

import anyio
from pydantic import BaseModel, ConfigDict, Field
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from nemo_mcp.sandbox.api import validated
from nemo_mcp.sandbox.files import Keeper, SandboxFiles
from nemo_mcp.sandbox.media import (
    ACCEPTED_LABEL,
    extension,
    file_type,
    limit_label,
    read_facts,
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


@dataclass
class _Part:
    """One file part as it streams in: name, digest, size, and its bytes on disk if kept."""

    name: str
    ext: str
    sha: Any  # hashlib's hash object
    keeper: Keeper
    size: int = 0
    written: Path | None = None


class _Collector:
    """The multipart callbacks: one `_Part` per file part, the other fields ignored."""

    def __init__(
        self,
        base_url: str,
        limit: int,
        source: str | None,
        files: SandboxFiles,
        keep: tuple[int, int],
    ) -> None:
        self.base_url, self.limit, self.source = base_url, limit, source
        self.files, self.keep = files, keep
        self.parts: list[_Part] = []
        self.total = 0
        self._headers: dict[bytes, bytes] = {}
        self._field = bytearray()
        self._value = bytearray()
        self._part: _Part | None = None

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
        return self._part is not None

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
            self._part = None  # another form field: not a file for us
            return
        name = filename.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
        ext = extension(name)
        if file_type(ext) is None:
            raise _unsupported(name, ext)
        per_file, total = self.keep
        self._part = _Part(name, ext, hashlib.sha256(), self.files.keeper(ext, per_file, total))

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part is None:
            return
        chunk = data[start:end]
        part.sha.update(chunk)
        part.size += len(chunk)
        part.keeper.write(chunk)
        if part.size > self.limit:
            raise ApiError(
                4002,
                f"file too large: {part.name} is over the {limit_label(self.limit)} limit of "
                f"{self.source or 'this skill'}; compress or trim it and upload again",
            )

    def _part_end(self) -> None:
        part, self._part = self._part, None
        if part is None:
            return
        part.written = part.keeper.finish()
        self.parts.append(part)
        self.total += part.size

    def discard(self) -> None:
        """Drop every byte written for this request (it failed)."""
        if self._part is not None:
            self._part.keeper.abandon()
            self._part = None
        for part in self.parts:
            if part.written is not None:
                part.written.unlink(missing_ok=True)


async def _described(call: Call, part: _Part) -> dict[str, Any]:
    """The upload answer for one received file; its bytes adopted and probed if kept."""
    sha = part.sha.hexdigest()
    kind = file_type(part.ext) or "video"
    facts: dict[str, Any] = {}
    if part.written is not None:
        kept = call.world.files.keep(part.written, sha, part.ext)
        if kept.usable and not kept.facts:
            found = await anyio.to_thread.run_sync(read_facts, kept.path)
            if found is None:
                kept.usable = False  # not media the kit reads: renders show a stand-in
            else:
                kept.facts = found
        facts = dict(kept.facts)
    return _info(call.base_url, part.name, kind, sha, facts)


async def _multipart(call: Call, content_type: str) -> tuple[list[dict[str, Any]], int]:
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise ApiError(400, "multipart body without a boundary")
    source = call.header("x-skill-source")
    limit = call.config.upload_limit_bytes or upload_limit(source)
    keep = (call.config.keep_upload_bytes, call.config.keep_total_bytes)
    collector = _Collector(call.base_url, limit, source, call.world.files, keep)
    parser = MultipartParser(boundary, collector.callbacks())
    try:
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
        if not collector.parts:
            raise ApiError(400, "no files in the upload: send them in the multipart field 'files'")
    except BaseException:
        collector.discard()
        raise
    return [await _described(call, part) for part in collector.parts], collector.total


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
            "Use the built-in music and stock library (it has similar styles), or upload your "
            "own file.",
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
            "send multipart/form-data (field 'files') or JSON "
            '{"urls": [...], "source_type": "url"}',
        )
    session.video_infos = [*session.video_infos, *files]
    return {"files": files, "session_state_applied": True}


__all__ = ["upload"]
