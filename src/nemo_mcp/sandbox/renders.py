"""Renders: start, status (in the three documented shapes), cancel, and the rendered file.

A render's phase follows the clock (`pending`, `processing` with rising progress, then
`completed` or `failed` after `render_seconds`), and it is `completed` only once its file
exists. The file is the draft really drawn (see `rendering.py`: 640x360, 24 fps, H.264 and
AAC), or with `render_output_bytes` a synthetic stream of that size made while it is sent;
`/files/<id>.mp4` (the output URL) and the download fallback serve the same bytes. A
generated clip's URL serves that clip alone.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, ConfigDict
from starlette.responses import FileResponse, Response, StreamingResponse

from nemo_mcp.sandbox import rendering
from nemo_mcp.sandbox.api import validated
from nemo_mcp.sandbox.media import synthetic_stream
from nemo_mcp.sandbox.protocol import ApiError, Json
from nemo_mcp.sandbox.routing import SKILL_HEADERS, Call, endpoint
from nemo_mcp.sandbox.world import Render

DEFAULT_OUTPUT = {"format": "mp4", "quality": "high"}


class RenderBody(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    id: str
    sessionId: str
    draft: dict[str, Any]
    output: dict[str, Any] | None = None


def _ms(moment: float) -> int:
    return int(moment * 1000)


def _output_size(render: Render) -> int:
    if render.output_bytes is not None:
        return render.output_bytes
    return render.file.stat().st_size if render.file is not None else 0


def _facts(call: Call, render: Render) -> dict[str, Any]:
    """The output's duration and size, where the configured answer gives them."""
    if not call.config.render_output_facts:
        return {}
    return {"duration": render.duration, "size": _output_size(render)}


def status_body(call: Call, render: Render) -> dict[str, Any]:
    """The render's status in the configured shape (bare, success, or a code envelope)."""
    status, fraction = render.phase(time.monotonic())
    progress: float = (
        round(fraction * 100) if call.config.progress == "percent" else round(fraction, 3)
    )
    url = f"{call.base_url}/files/{render.id}.mp4"
    if call.config.render_status == "success":
        data: dict[str, Any] = {
            "id": render.id,
            "status": status,
            "progress": progress,
            "createdAt": _ms(render.created_at),
        }
        if status == "completed":
            data.update(outputUrl=url, **_facts(call, render))
            data["completedAt"] = _ms(render.completed_at())
        if status == "failed" and call.config.render_failure_reason:
            data["error"] = render.error
        return {"success": True, "data": data}
    bare: dict[str, Any] = {"taskId": render.id, "status": status, "progress": progress}
    if status == "completed":
        bare["output"] = {
            "url": url,
            **_facts(call, render),
            "format": render.output.get("format", "mp4"),
        }
    if status == "failed" and call.config.render_failure_reason:
        bare["error"] = render.error
    if call.config.render_status == "code":
        return {"code": 0, "message": "success", "data": bare}
    return bare


def _ready(draft: dict[str, Any]) -> bool:
    tracks = draft.get("t")
    return isinstance(tracks, list) and any(
        isinstance(t, dict) and isinstance(t.get("sg"), list) and t["sg"] for t in tracks
    )


@endpoint("render_start")
async def render_start(call: Call) -> dict[str, Any]:
    """Start a render of a draft; free, but needs the attribution headers."""
    missing = [h for h in SKILL_HEADERS if call.header(h) is None]
    if call.fault("export_blocked") is not None or missing:
        reason = f" (missing attribution: {', '.join(missing)})" if missing else ""
        raise ApiError(402, f"free plan export blocked{reason}")
    body = validated(RenderBody, await call.json())
    session = call.session(body.sessionId)
    if not body.id.strip():
        raise ApiError(400, "render id is empty: use render_<timestamp>")
    if not _ready(body.draft):
        raise ApiError(400, "the draft has no track with segments: nothing to render yet")
    composition = rendering.composition_for(call.world, session, body.draft)
    if composition.duration_ms > rendering.MAX_RENDER_MS:
        raise ApiError(
            400,
            f"the draft is {composition.duration_ms / 60_000:.0f} minutes long; the sandbox "
            f"renders at most {rendering.MAX_RENDER_MS // 60_000} minutes",
        )
    failing = call.fault("render_fail")
    render = call.world.start_render(
        call.user,
        session,
        body.id,
        body.draft,
        {**DEFAULT_OUTPUT, **(body.output or {})},
        call.config,
        str(failing.param("error")) if failing else None,
    )
    if render.output_bytes is None and render.fail_error is None:
        rendering.launch(call.world, render, composition)
    return {
        "id": render.id,
        "taskId": render.id,
        "sessionId": session.session_id,
        "status": "pending",
        "createdAt": _ms(render.created_at),
    }


@endpoint("render_status")
async def render_status(call: Call) -> Response:
    render = call.world.render_of(call.user, call.request.path_params["render_id"])
    return Json(status_body(call, render))


@endpoint("render_cancel")
async def render_cancel(call: Call) -> dict[str, Any]:
    """Stop a render still running; a finished one is left as it is."""
    render = call.world.render_of(call.user, call.request.path_params["render_id"])
    status, _ = render.phase(time.monotonic())
    if status in ("pending", "processing"):
        render.cancelled_at = time.monotonic()
        render.stop.set()
        status = "cancelled"
    return {"id": render.id, "status": status}


def file_response(call: Call, render: Render) -> Response:
    """The render's file, as a download: whole, or as the download faults shape it."""
    headers = {"Content-Disposition": f'attachment; filename="{render.id}.mp4"'}
    cut, slow = call.fault("download_cut"), call.fault("download_slow")
    if cut is None and slow is None:
        if render.output_bytes is None:
            assert render.file is not None, "a completed render has its file"
            return FileResponse(render.file, media_type="video/mp4", headers=headers)
        headers["Content-Length"] = str(render.output_bytes)
    if call.request.method == "HEAD":
        return Response(media_type="video/mp4", headers=headers)
    limit = int(cut.param("bytes")) if cut is not None else None
    rate = float(slow.param("rate")) if slow is not None else None
    return StreamingResponse(
        _shaped(_pieces(render), limit, rate), media_type="video/mp4", headers=headers
    )


def _pieces(render: Render, size: int = 64 * 1024) -> Iterator[bytes]:
    if render.output_bytes is not None:
        yield from synthetic_stream(render.output_bytes, chunk=size)
        return
    assert render.file is not None, "a completed render has its file"
    yield from _file_pieces(render.file, size)


def _file_pieces(path: Path, size: int = 64 * 1024) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(size):
            yield piece


async def _shaped(
    pieces: Iterator[bytes], limit: int | None, rate: float | None
) -> AsyncIterator[bytes]:
    """`pieces` cut after `limit` bytes and paced at `rate` bytes a second."""
    sent = 0
    for piece in pieces:
        if limit is not None:
            piece = piece[: max(0, limit - sent)]
            if not piece:
                return
        sent += len(piece)
        yield piece
        if rate is not None:
            await anyio.sleep(len(piece) / rate)


@endpoint("render_download")
async def render_download(call: Call) -> Response:
    """The documented fallback: the finished file, through the API."""
    render = call.world.render_of(call.user, call.request.path_params["render_id"])
    status, _ = render.phase(time.monotonic())
    if status != "completed":
        raise ApiError(409, f"render {render.id} is {status}; its file exists once it is completed")
    return file_response(call, render)


def _not_found(key: str) -> Response:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        f"<Message>The specified key does not exist.</Message><Key>{key}</Key></Error>"
    )
    return Response(body, status_code=404, media_type="application/xml")


@endpoint("file", auth=False)
async def served_file(call: Call) -> Response:
    """Output URLs, generated clips and library music, as the storage bucket serves them (no
    token)."""
    name: str = call.request.path_params["name"]
    if call.fault("output_url_broken") is not None:
        return _not_found(name)
    kind = call.request.path_params.get("kind")
    if kind is not None:
        clip = None
        if kind == "clips" and name.endswith(".mp4"):
            clip = await rendering.clip_file(call.world, name.removesuffix(".mp4"))
        elif kind == "music":
            clip = await rendering.music_file(call.world, name)
        if clip is None:
            return _not_found(f"{kind}/{name}")
        return FileResponse(clip, media_type="audio/wav" if kind == "music" else "video/mp4")
    render = call.world.renders.get(name.removesuffix(".mp4"))
    if render is None or render.phase(time.monotonic())[0] != "completed":
        return _not_found(name)
    return file_response(call, render)


@endpoint("file", auth=False)
async def served_upload(call: Call) -> Response:
    """An upload at its `cdn_url` (`/cdn/uploads/<first 16 of its SHA-256>/<name>`), as the
    CDN serves it (no token; shaped by the download faults): what a hand-off to an editor
    downloads."""
    digest: str = call.request.path_params["digest"]
    name: str = call.request.path_params["name"]
    if call.fault("output_url_broken") is not None:
        return _not_found(name)
    uploads = call.world.files.uploads
    kept = next((k for sha, k in uploads.items() if len(digest) == 16 and sha[:16] == digest), None)
    if kept is None or not kept.path.is_file():
        return _not_found(f"uploads/{digest}/{name}")
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    cut, slow = call.fault("download_cut"), call.fault("download_slow")
    if cut is None and slow is None:
        return FileResponse(kept.path, media_type=kind)
    limit = int(cut.param("bytes")) if cut is not None else None
    rate = float(slow.param("rate")) if slow is not None else None
    return StreamingResponse(_shaped(_file_pieces(kept.path), limit, rate), media_type=kind)


__all__ = [
    "render_cancel",
    "render_download",
    "render_start",
    "render_status",
    "served_file",
    "served_upload",
    "status_body",
]
