"""Real render files: a started render's draft is drawn into an MP4 in a worker thread.

The draft's segments are matched to the session's uploads here, on the event loop; the
drawing (`nemo_mcp.media.compose.render`) runs in a thread, at most `PARALLEL` at a time,
and stops when the render is cancelled or the world reset. Files are cached by composition,
so an unchanged timeline is drawn once. A drawing that fails marks the render failed with a
plain reason; nothing here raises into the server.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from nemo_mcp.sandbox.composition import (
    Resolver,
    Upload,
    clip_composition,
    composition_of,
    music_wav,
    segment_url,
)
from nemo_mcp.sandbox.media import extension, file_type

if TYPE_CHECKING:
    from nemo_mcp.media.compose import Composition
    from nemo_mcp.sandbox.world import Render, Session, World
    from nemo_mcp.timeline.model import Segment

log = logging.getLogger(__name__)

PARALLEL = 2
#: The longest draft the sandbox draws (10 minutes).
MAX_RENDER_MS = 600_000
_limiters: dict[int, anyio.CapacityLimiter] = {}


def _limiter() -> anyio.CapacityLimiter:
    """One limiter per event loop (limiters belong to the loop that made them)."""
    key = id(asyncio.get_running_loop())
    if key not in _limiters:
        _limiters.clear()
        _limiters[key] = anyio.CapacityLimiter(PARALLEL)
    return _limiters[key]


def resolver(world: World, session: Session) -> Resolver:
    """Finds what a segment's `m.url` (or, failing that, its file name) points at among the
    session's uploads."""
    by_url = {i.get("cdn_url"): i for i in session.video_infos if isinstance(i, dict)}
    by_name = {i.get("filename"): i for i in session.video_infos if isinstance(i, dict)}

    def resolve(segment: Segment) -> Upload | None:
        url = segment_url(segment)
        info = by_url.get(url) if url is not None else None
        if info is None and url is None and segment.label and file_type(extension(segment.label)):
            info = by_name.get(segment.label)
        if info is None:
            return None
        kept = world.files.upload(info.get("hash"))
        return Upload(
            name=str(info.get("filename") or "upload"),
            kind=str(info.get("file_type") or ""),
            path=kept.path if kept is not None else None,
        )

    return resolve


def composition_for(world: World, session: Session, draft: object) -> Composition:
    return composition_of(draft, resolver(world, session))


async def draw(world: World, composition: Composition, render: Render | None = None) -> Path:
    """The file of `composition`: from the cache, else drawn in a worker thread."""
    from nemo_mcp.media.compose import render as draw_file

    key = composition.key()
    cached = world.files.cached_render(key)
    if cached is not None:
        return cached
    scratch = world.files.scratch(".mp4")
    stop = render.stop if render is not None else None
    job = functools.partial(draw_file, composition, scratch, stop=stop)
    try:
        await anyio.to_thread.run_sync(job, limiter=_limiter())
        return world.files.add_render(key, scratch, world.files_in_use())
    finally:
        scratch.unlink(missing_ok=True)


async def produce(world: World, render: Render, composition: Composition) -> None:
    """Draw a started render's file and hand it to the render (or its failure)."""
    from nemo_mcp.media.compose import RenderStopped

    try:
        render.finish(await draw(world, composition, render))
    except RenderStopped:
        pass
    except Exception as err:  # the sandbox reports a failed render, it never crashes
        log.warning("render %s could not be drawn: %s", render.id, type(err).__name__)
        render.render_error = "render failed: the timeline could not be drawn"


def launch(world: World, render: Render, composition: Composition) -> None:
    """Start drawing `render` as a task of the world (cancelled on reset and shutdown)."""
    task = asyncio.get_running_loop().create_task(produce(world, render, composition))
    world.jobs.add(task)
    task.add_done_callback(world.jobs.discard)


async def clip_file(world: World, clip_id: str) -> Path | None:
    """The file a generated clip's URL serves, drawn on first request."""
    clip = world.clips.get(clip_id)
    if clip is None:
        return None
    prompt, length = clip
    return await draw(world, clip_composition(prompt, length))


async def music_file(world: World, name: str) -> Path | None:
    """The file a library music URL serves (`composition.music_name`), made on first request."""
    path = world.files.root / "music" / name
    if await anyio.Path(path).is_file():
        return path
    made = await anyio.to_thread.run_sync(music_wav, name)
    if made is None:
        return None
    scratch = world.files.scratch(".wav")
    await anyio.Path(scratch).write_bytes(made)
    await anyio.Path(path.parent).mkdir(exist_ok=True)
    await anyio.Path(scratch).replace(path)
    return path


__all__ = [
    "MAX_RENDER_MS",
    "PARALLEL",
    "clip_file",
    "composition_for",
    "draw",
    "launch",
    "music_file",
    "produce",
    "resolver",
]
