"""The media a hand-off references, saved into its folder under readable names.

Each distinct http(s) link of the draft is downloaded once, with the export's own download
(`backend.render.download`: a `.part` file moved to its name only when whole, bounded in time
and here in size, the token sent only to the API host), then checked: its first bytes must be
a picture, a video or a sound, and the media kit must read it through (the draft gives no
size to hold a download to, so this is what finds one cut short); else it is removed and
refused. Its size and SHA-256 are recorded,
so a hand-off taken up again after a stop keeps every file still the one saved instead of
fetching it again.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio.to_thread

from nemo_mcp.backend import render as renders
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.models import RenderStatus
from nemo_mcp.errors import RenderError
from nemo_mcp.handoff.plan import Clip, Plan
from nemo_mcp.media.formats import EXTENSIONS, HEAD_BYTES, sniff

#: The folder beside the timeline file holding its media (references are relative to it).
MEDIA_FOLDER = "media"
#: The largest single media file a hand-off downloads, and the most files.
MAX_MEDIA_BYTES = 2 * 1024**3
MAX_MEDIA_FILES = 500
_DEFAULT_SUFFIX = {"image": ".png", "audio": ".mp3"}


@dataclass(frozen=True)
class Wanted:
    """One link to save: its position (for the name) and the first clip using it."""

    number: int
    url: str
    clip: Clip

    @property
    def stem(self) -> str:
        name = self.clip.name
        if PurePosixPath(name).suffix.lower().lstrip(".") in EXTENSIONS:
            name = PurePosixPath(name).stem
        return f"{self.number:02d}-{renders.safe_stem(name, 'media')}"

    @property
    def suffix(self) -> str:
        """The link's own extension when it is a media one, else one for the clip's type."""
        ext = PurePosixPath(unquote(urlsplit(self.url).path)).suffix.lower()
        if ext.lstrip(".") in EXTENSIONS:
            return ext
        return _DEFAULT_SUFFIX.get(self.clip.media_type or "", ".mp4")


def wanted(plan: Plan) -> list[Wanted]:
    """Every distinct link of `plan` with the first clip that uses it, in order."""
    first: dict[str, Clip] = {}
    for lane in plan.lanes:
        for clip in lane.clips:
            if clip.url is not None:
                first.setdefault(clip.url, clip)
    return [Wanted(n, url, clip) for n, (url, clip) in enumerate(first.items(), start=1)]


def checked_media(path: Path) -> Path:
    """Refuse a download that is not whole media (its first bytes say what it is, then the
    media kit reads it through, as it reads an upload: a clean but early end of a download
    is found here); a file whose extension says otherwise gets the one its bytes say (an
    editor goes by the extension). Blocking."""
    from nemo_mcp.media import probe
    from nemo_mcp.media.errors import MediaError

    with path.open("rb") as handle:
        found = sniff(handle.read(HEAD_BYTES))
    if found is None or found.kind is None:
        path.unlink(missing_ok=True)
        raise RenderError("the file is not a picture, a video or a sound")
    expected = EXTENSIONS.get(path.suffix.lower().lstrip("."))
    if expected is None or expected.family != found.family:
        renamed = path.with_suffix(f".{found.ext}")
        if not renamed.exists():
            os.replace(path, renamed)
            path = renamed
    try:
        probe(path)
    except MediaError:
        path.unlink(missing_ok=True)
        raise RenderError(f"{path.name} came damaged or incomplete") from None
    return path


Saved = Callable[[str, dict[str, Any]], Awaitable[None]]


async def save_media(
    client: NemoClient,
    items: list[Wanted],
    folder: Path,
    *,
    kept: Mapping[str, dict[str, Any]],
    saved: Saved,
    still_there: Callable[[dict[str, Any]], Awaitable[bool]],
    holder: str,
    on_progress: Callable[[str], None] | None = None,
) -> dict[str, str]:
    """Download `items` into `folder/media`; each link's file relative to `folder`.

    `kept` holds the records of files saved by an earlier run of the same hand-off; one
    `still_there` is kept. `saved(url, record)` is awaited after each download (to record it)."""
    if len(items) > MAX_MEDIA_FILES:
        raise RenderError(f"the draft links {len(items)} media files, more than {MAX_MEDIA_FILES}")
    target = folder / MEDIA_FOLDER
    where: dict[str, str] = {}
    for item in items:
        record = kept.get(item.url)
        if record is not None and await still_there(record):
            where[item.url] = str(record["relative"])
            continue
        if on_progress is not None:
            on_progress(f"downloading media {item.number} of {len(items)}")
        got = await renders.download(
            client,
            RenderStatus(id=f"media-{item.number}", status="completed", url=item.url),
            target,
            stem=item.stem,
            suffix=item.suffix,
            part_name=f".nemo-media-{item.number}-{holder}.part",
            fallback=False,
            max_bytes=MAX_MEDIA_BYTES,
        )
        path = await anyio.to_thread.run_sync(checked_media, got.path)
        relative = path.relative_to(folder).as_posix()
        record = {"file": str(path), "relative": relative, "size": got.size, "sha256": got.sha256}
        await saved(item.url, record)
        where[item.url] = relative
    return where


__all__ = [
    "MAX_MEDIA_BYTES",
    "MAX_MEDIA_FILES",
    "MEDIA_FOLDER",
    "Wanted",
    "checked_media",
    "save_media",
    "wanted",
]
