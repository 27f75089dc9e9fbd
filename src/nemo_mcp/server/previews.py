"""Pictures the agent can see: the contact sheet of a saved export, a poster frame of a newly
generated clip. The media kit makes them in a worker thread, within a time bound.

A video whose pictures cannot be read, or one that takes too long, gets no picture; the
export says so in one line, `generate` says nothing (logged at debug). The media kit
(PyAV, Pillow) and httpx are imported only when a picture is made, never at start-up.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import tempfile
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from mcp_types import ImageContent, ResourceLink

from nemo_mcp.errors import NemoError
from nemo_mcp.server.scratch import scratch_folder

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The longest an export waits for its contact sheet.
SHEET_SECONDS = 20.0
#: What a picture may take when the call's budget is spent (a sheet takes well under 1 s).
PICTURE_FLOOR = 2.0
#: Contact sheet of an export: 4 x 3 tiles 240 px wide (980 px wide for 16:9, ~100 KB).
SHEET_COLUMNS, SHEET_ROWS, SHEET_TILE = 4, 3, 240
#: A generated clip: fetched and its poster made within this, or no picture.
CLIP_SECONDS = 4.0
#: The largest clip fetched for a poster.
CLIP_MAX_BYTES = 40 * 1_000_000
POSTER_WIDTH = 640


def picture_seconds(left: float | None, cap: float) -> float:
    """How long a picture may take: what is `left` of the call's budget (None: no
    budget), within `cap`, and never less than `PICTURE_FLOOR`, so a call ends within
    its budget plus that."""
    return cap if left is None else min(cap, max(PICTURE_FLOOR, left))


class PreviewTimeout(Exception):
    """The picture took longer than its bound (the worker thread is left to finish)."""


@dataclass(frozen=True)
class Picture:
    """A JPEG and its size in pixels."""

    jpeg: bytes
    width: int
    height: int

    def block(self) -> ImageContent:
        return ImageContent(
            type="image", data=base64.b64encode(self.jpeg).decode("ascii"), mime_type="image/jpeg"
        )


def _made_in_scratch(make: Callable[[Path], Any]) -> Picture:
    """Run `make(output)` with an output path of its own; the JPEG it wrote. Blocking."""
    with tempfile.TemporaryDirectory(prefix="nemo-preview-") as folder:
        out = Path(folder) / "preview.jpg"
        made = make(out)
        return Picture(out.read_bytes(), int(made.width), int(made.height))


async def in_worker(make: Callable[..., T], *args: Any, seconds: float) -> T:
    """`make(*args)` in a worker thread; PreviewTimeout when it takes longer than `seconds`
    (the thread is then left to finish on its own, its result dropped)."""
    with anyio.move_on_after(seconds):
        return await anyio.to_thread.run_sync(make, *args, abandon_on_cancel=True)
    raise PreviewTimeout(f"no picture within {seconds:g} s")


async def _bounded(make: Callable[[Path], Any], seconds: float) -> Picture:
    return await in_worker(_made_in_scratch, make, seconds=seconds)


async def contact_sheet(
    video: Path,
    *,
    seconds: float = SHEET_SECONDS,
    columns: int = SHEET_COLUMNS,
    rows: int = SHEET_ROWS,
    tile_width: int = SHEET_TILE,
) -> Picture:
    """The contact sheet of a local video. Raises a `MediaError` (no picture in it) or
    `PreviewTimeout`."""
    from nemo_mcp import media

    def make(out: Path) -> Any:
        return media.contact_sheet(video, out, columns=columns, rows=rows, tile_width=tile_width)

    return await _bounded(make, seconds)


# export -----------------------------------------------------------------------------------
def file_link(file: Path, size: int | None) -> ResourceLink:
    """The saved MP4 as a resource link (`file://`)."""
    return ResourceLink(
        type="resource_link",
        name=file.name,
        title=f"The exported video: {file.name}",
        uri=file.resolve().as_uri(),
        mime_type="video/mp4",
        size=size,
    )


async def export_preview(file: Path, *, left: float | None = None) -> Picture | str:
    """The contact sheet of a saved export, made in what is `left` of the call's budget
    (see `picture_seconds`; at most `SHEET_SECONDS`), or the one line saying why there
    is none."""
    from nemo_mcp.media import MediaError

    seconds = picture_seconds(left, SHEET_SECONDS)
    started = anyio.current_time()
    try:
        sheet = await contact_sheet(file, seconds=seconds)
    except MediaError as err:
        log.info("no contact sheet of %s: %s", file.name, err.message)
        return (
            "Preview skipped: the saved file's pictures could not be read (it is saved as it came)."
        )
    except PreviewTimeout:
        log.info("no contact sheet of %s within %.0f s", file.name, seconds)
        return f"Preview skipped: it took longer than {seconds:g} s to make."
    except OSError as err:
        log.info("no contact sheet of %s: %s", file.name, err)
        return "Preview skipped: the saved file could not be read."
    log.debug(
        "contact sheet of %s: %dx%d, %d bytes in %.2f s",
        file.name,
        sheet.width,
        sheet.height,
        len(sheet.jpeg),
        anyio.current_time() - started,
    )
    return sheet


# generate ---------------------------------------------------------------------------------
def _suffix(url: str, content_type: str | None) -> str:
    from nemo_mcp.media.formats import EXTENSIONS

    ext = Path(urlsplit(url).path).suffix.lower()
    if ext.lstrip(".") in EXTENSIONS:
        return ext
    guessed = mimetypes.guess_extension((content_type or "").split(";")[0].strip())
    return guessed if guessed and guessed.lstrip(".") in EXTENSIONS else ".mp4"


async def _fetch(url: str, folder: Path, max_bytes: int, seconds: float) -> Path | None:
    """The clip at `url` saved in `folder`; None when it is missing or too large."""
    import httpx  # not at start-up: the server opens its own client on first use

    from nemo_mcp.backend.body import ACCEPTED_ENCODINGS, decoded_chunks

    async with (
        httpx.AsyncClient(
            timeout=seconds,
            follow_redirects=True,
            headers={"Accept-Encoding": ACCEPTED_ENCODINGS},  # only codings decoded in steps
        ) as http,
        http.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            log.debug("clip %s: HTTP %d", url, response.status_code)
            return None
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            log.debug("clip %s: %s bytes is more than a preview fetches", url, declared)
            return None
        target = folder / f"clip{_suffix(url, response.headers.get('content-type'))}"
        got = 0
        async with (
            await anyio.open_file(target, "wb") as handle,
            aclosing(decoded_chunks(response)) as chunks,
        ):
            async for chunk in chunks:
                got += len(chunk)
                if got > max_bytes:
                    log.debug("clip %s: more than %d bytes", url, max_bytes)
                    return None
                await handle.write(chunk)
    return target


async def clip_poster(
    url: str, *, left: float | None = None, max_bytes: int | None = None
) -> Picture | None:
    """A poster frame of the clip at `url` when it can be fetched and read in what is
    `left` of the call's budget (see `picture_seconds`; at most `CLIP_SECONDS`); None
    otherwise (logged at debug, never raised)."""
    seconds = picture_seconds(left, CLIP_SECONDS)
    max_bytes = CLIP_MAX_BYTES if max_bytes is None else max_bytes
    if urlsplit(url).scheme not in ("http", "https"):
        return None
    import httpx

    from nemo_mcp import media

    try:
        async with scratch_folder("nemo-clip-") as folder:
            with anyio.fail_after(seconds):
                clip = await _fetch(url, folder, max_bytes, seconds)
                if clip is None:
                    return None

                def make(out: Path) -> Any:
                    return media.poster_frame(clip, out, max_width=POSTER_WIDTH)

                return await _bounded(make, seconds)  # the outer bound ends it sooner
    except TimeoutError:
        log.debug("no poster of %s within %.0f s", url, seconds)
        return None
    except (httpx.HTTPError, OSError, NemoError, PreviewTimeout) as err:
        log.debug("no poster of %s: %s", url, err)
        return None


__all__ = [
    "CLIP_SECONDS",
    "PICTURE_FLOOR",
    "SHEET_SECONDS",
    "Picture",
    "PreviewTimeout",
    "clip_poster",
    "contact_sheet",
    "export_preview",
    "file_link",
    "in_worker",
]
