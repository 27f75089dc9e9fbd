"""The hand-off job: one export request with a timeline format, from its ledger entry to a
folder holding the timeline file, its media and a README.

It is its own kind of ledger entry (`handoff`, typed by `server/jobs/handoff.py`), run in the
user's one-at-a-time order after every edit asked before it, but it starts no render and
spends nothing, and no render answers it: it reads the draft, saves
the media the draft links, writes the timeline through OpenTimelineIO and says what did not
carry over. The draft it read is kept in the entry until the folder is written, so a hand-off
taken up again after a stop hands off the same timeline, keeping the media already saved.

The same timeline handed off again in the same format returns the earlier folder while every
file in it is still the one saved (size, then SHA-256), unless `fresh` is asked.

The export module's own file checks are given in (`Checks`), so this package needs nothing
from the server's modules.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.errors import InputError, NemoError, RenderError
from nemo_mcp.handoff import FORMATS, Format, missing_sentence
from nemo_mcp.handoff.folder import ADAPTERS, new_folder, readme, timeline_text, write_text
from nemo_mcp.handoff.media import save_media, wanted
from nemo_mcp.handoff.plan import plan as plan_of
from nemo_mcp.ledger import Entry
from nemo_mcp.settings import Settings
from nemo_mcp.timeline import parse_draft

if TYPE_CHECKING:
    from nemo_mcp.handoff import Format
    from nemo_mcp.server.work import Run

#: Said when this server keeps no files (hosted without a shared volume).
NOT_SAVED = (
    "This server keeps no files, so it cannot hand the timeline to an editor: its operator "
    "can set NEMO_OUTPUT_DIR to a shared volume for that. `export` with format mp4 gives the "
    "video's URL."
)


@dataclass(frozen=True)
class Checks:
    """The export's file checks: the output folder is usable (folder, bytes needed), a
    recorded file is still the one saved, a draft's digest."""

    folder: Callable[[Path, int | None], None]
    saved: Callable[[dict[str, Any]], bool]
    digest: Callable[[Any], str]


@dataclass(frozen=True)
class HandedOff:
    """A finished hand-off: its folder, the timeline file in it, what did not carry over."""

    format: str
    folder: str
    file: str
    size: int
    media: int
    not_carried: list[str] = field(default_factory=list)
    reused: bool = False


def _handed(memo: dict[str, Any], *, reused: bool) -> HandedOff:
    return HandedOff(
        format=str(memo["format"]),
        folder=str(memo["folder"]),
        file=str(memo["file"]),
        size=int(memo.get("size") or 0),
        media=len(memo.get("media") or {}),
        not_carried=[str(n) for n in memo.get("not_carried") or []],
        reused=reused,
    )


def _files(memo: dict[str, Any]) -> list[dict[str, Any]]:
    """Every file a finished hand-off saved: the timeline, the README and the media."""
    return [*memo.get("written", []), *(memo.get("media") or {}).values()]


async def run_handoff(
    run: Run, client: NemoClient, settings: Settings, history: list[Entry], checks: Checks
) -> HandedOff:
    """Execute a hand-off entry from whatever state it was left in; `history` holds the
    user's earlier hand-offs in this format, newest last."""
    fmt = str(run.request.get("format"))
    if fmt not in FORMATS:
        raise InputError(f"Unknown hand-off format {fmt!r}; use one of {', '.join(FORMATS)}.")
    if not settings.save_exports:
        raise InputError(NOT_SAVED)
    if (missing := missing_sentence()) is not None:
        raise InputError(missing)
    draft = run.memo.get("draft")
    if draft is None:
        session = await client.session()
        run.phase("reading the timeline")
        draft = (await client.state()).state.draft
        parsed = parse_draft(draft)
        if not parsed.ready:
            raise InputError(
                "Nothing to hand off yet: the timeline has no clips. Call `generate` first "
                f"(e.g. 'a 10-second video of a city at night'), then `export` with format {fmt}."
            )
        digest = checks.digest(draft)
        if not run.request.get("fresh"):
            for earlier in reversed(history):
                memo = earlier.memo
                same = (
                    earlier.state == "done"
                    and earlier.session_id == session.session_id
                    and memo.get("digest") == digest
                    and memo.get("format") == fmt
                    and memo.get("folder")
                )
                if same and await _all_saved(memo, checks):
                    await run.save(**{**memo, "reused_from": earlier.id})
                    return _handed(memo, reused=True)
        await anyio.to_thread.run_sync(checks.folder, settings.output_dir, None)
        # A hand-off of this timeline that failed part way (a download that broke) is
        # continued in its folder, keeping the media it saved.
        unfinished = next(
            (
                e.memo
                for e in reversed(history)
                if e.state == "failed"
                and e.session_id == session.session_id
                and e.memo.get("digest") == digest
                and e.memo.get("format") == fmt
                and e.memo.get("folder")
                and not e.memo.get("file")
            ),
            None,
        )
        if unfinished is not None and not await anyio.Path(str(unfinished["folder"])).is_dir():
            unfinished = None
        if unfinished is not None:
            folder, media = Path(str(unfinished["folder"])), dict(unfinished.get("media") or {})
        else:
            title = parsed.title or "nemovideo"
            folder = await anyio.to_thread.run_sync(new_folder, settings.output_dir, title, fmt)
            media = {}
        await run.save(
            state="downloading",
            session_id=session.session_id,
            format=fmt,
            digest=digest,
            draft=draft,
            folder=str(folder),
            media=media,
            started_at=time.time(),
        )
    return await _write(run, client, draft, checks, fmt)


async def _all_saved(memo: dict[str, Any], checks: Checks) -> bool:
    files = _files(memo)
    for record in files:
        if not await anyio.to_thread.run_sync(checks.saved, record):
            return False
    return bool(files)


async def _write(
    run: Run, client: NemoClient, draft: Any, checks: Checks, fmt: Format
) -> HandedOff:
    from nemo_mcp.handoff.timeline import build, not_carried

    folder = Path(str(run.memo["folder"]))
    await anyio.to_thread.run_sync(checks.folder, folder, None)
    planned = plan_of(parse_draft(draft))
    media: dict[str, dict[str, Any]] = dict(run.memo.get("media") or {})

    async def saved(url: str, record: dict[str, Any]) -> None:
        media[url] = record
        await run.save(media=dict(media))

    async def still_there(record: dict[str, Any]) -> bool:
        return await anyio.to_thread.run_sync(checks.saved, record)

    items = wanted(planned)
    try:
        where = await save_media(
            client,
            items,
            folder,
            kept=media,
            saved=saved,
            still_there=still_there,
            on_progress=run.phase,
        )
    except (RenderError, OSError) as err:
        reason = err.message if isinstance(err, NemoError) else (err.strerror or str(err))
        raise RenderError(
            f"The timeline's media could not all be saved in {folder} ({reason}). Call "
            f"`export` with format {fmt} again to continue (what was saved is kept; nothing is "
            "rendered)."
        ) from None
    run.phase("writing the timeline")
    notes = not_carried(planned, fmt)
    timeline = build(planned, where, fmt)
    text = await anyio.to_thread.run_sync(timeline_text, timeline, fmt)
    name = f"{folder.name.rsplit('-' + fmt, 1)[0]}{ADAPTERS[fmt][1]}"
    file, about = folder / name, folder / "README.md"
    await anyio.to_thread.run_sync(write_text, file, text)
    await anyio.to_thread.run_sync(write_text, about, readme(planned, fmt, name, where, notes))
    written = [await anyio.to_thread.run_sync(_record, path) for path in (file, about)]
    size = sum(int(r["size"]) for r in [*written, *media.values()])
    run.memo.pop("draft", None)
    await run.save(
        file=str(file), written=written, size=size, not_carried=notes, finished_at=time.time()
    )
    return _handed(run.memo, reused=False)


def _record(path: Path) -> dict[str, Any]:
    """A saved file's record (path, size, SHA-256), as the export keeps one. Blocking."""
    digest = hashlib.sha256(path.read_bytes())
    return {"file": str(path), "size": path.stat().st_size, "sha256": digest.hexdigest()}


__all__ = ["NOT_SAVED", "Checks", "HandedOff", "run_handoff"]
