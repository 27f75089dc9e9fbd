"""The render executor: one export request, from a ledger entry to a saved, verified MP4.

The entry's state says how far an earlier run got, and so what may happen now:

- `queued`: read the timeline (after every edit asked before it has run); reuse an
  earlier export of exactly this timeline whose file is still the one saved; download a
  render that finished but was never saved; else check the output folder, record the
  render id (`starting`) and start one render.
- `starting`: the start may have reached the backend. Its status decides: a render the
  backend knows is followed; one it does not know never started, and is started now.
- `rendering`: poll it to the end.
- `downloading`: the render is done; download it again, never render again.

A hosted server without an output folder (`settings.save_exports` off) downloads
nothing: the render's URL is the result, and an earlier render of the same timeline is
reused by its URL.

A download is complete only when its size matches what the render reported (when it
reported one). It streams into `.nemo-<render id>-g<generation>.part` beside its final name (its own
for each claim on the entry: the ledger's generation), and is
moved there only when whole; stale parts are removed. Its size and SHA-256 are recorded,
so a later reuse can tell the saved file from anything put in its place.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import anyio.to_thread

from nemo_mcp import retrying
from nemo_mcp.backend import render as renders
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.models import RenderStatus
from nemo_mcp.errors import InputError, NemoError, RenderError
from nemo_mcp.handoff import FORMATS as HANDOFF_FORMATS
from nemo_mcp.ledger import Entry
from nemo_mcp.server.jobs import HandoffJob, MessageJob, RenderJob, job_of, render, render_job
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.server.work import Run, status_line
from nemo_mcp.settings import Settings
from nemo_mcp.timeline import parse_draft

log = logging.getLogger(__name__)

#: The least free space an export starts with when the render's size is not known yet.
MIN_FREE_BYTES = 50 * 1_000_000
#: A `.part` file untouched this long belongs to no live download.
STALE_PART_SECONDS = 600


def render_key(fmt: str, quality: str) -> str:
    """One export request per format and quality: a second ask joins the unfinished one."""
    return f"render|{fmt}|{quality}"


def handoff_key(fmt: str) -> str:
    """One hand-off request per timeline format (never a render's key: another kind)."""
    return f"handoff|{fmt}"


def draft_hash(draft: Any) -> str:
    return hashlib.sha256(json.dumps(draft, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _title(draft: Any) -> str:
    """The title the file is named after: the current one (a retitle changes it)."""
    return parse_draft(draft).title or "nemovideo"


def file_is_saved(job: RenderJob) -> bool:
    """Whether the render's saved file is still the one saved (size, then hash)."""
    return saved_file(job.file, job.size, job.sha256)


def record_is_saved(record: dict[str, Any]) -> bool:
    """Whether a file record (`file`, `size`, `sha256`) is still the file saved."""
    path, size, digest = record.get("file"), record.get("size"), record.get("sha256")
    if not isinstance(path, str) or not isinstance(size, int) or not isinstance(digest, str):
        return False
    return saved_file(path, size, digest)


def saved_file(path: str | None, size: int | None, digest: str | None) -> bool:
    """Whether the file at `path` is still the one saved: its size, then its SHA-256."""
    if path is None or size is None or digest is None:
        return False
    file = Path(path)
    try:
        info = file.lstat()
    except OSError:
        return False
    if not file.is_file() or file.is_symlink() or info.st_size != size:
        return False
    return _sha256(file) == digest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def check_output_folder(folder: Path, need: int | None = None, *, rendered: bool = False) -> None:
    """Refuse a folder the video could not be saved in: before a render starts, or
    (`rendered`) before a finished render is downloaded."""
    after = (
        "export again to download it (no new render is started)"
        if rendered
        else "export again; no render was started"
    )
    if folder.exists() and not folder.is_dir():
        raise InputError(
            f"The output folder {folder} is a file, not a folder. Set NEMO_OUTPUT_DIR to a "
            f"folder (or remove the file), then {after}."
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".nemo-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise InputError(
            f"The video cannot be saved in {folder} ({reason}). Set NEMO_OUTPUT_DIR to a "
            f"folder you can write to, then {after}."
        ) from None
    free = shutil.disk_usage(folder).free
    wanted = max(need or 0, MIN_FREE_BYTES)
    if free < wanted:
        raise InputError(
            f"Only {free / 1_000_000:.0f} MB are free in {folder}; the video needs about "
            f"{wanted / 1_000_000:.0f} MB. Free some space or set NEMO_OUTPUT_DIR to another "
            f"folder, then {after}."
        )


def clean_stale_parts(folder: Path, now: float) -> None:
    """Remove `.nemo-*.part` files no download has touched for a while."""
    try:
        parts = list(folder.glob(".nemo-*.part"))
    except OSError:
        return
    for part in parts:
        try:
            if now - part.stat().st_mtime > STALE_PART_SECONDS:
                part.unlink()
        except OSError:
            continue


def pending_output(entry: Entry, *, ahead: int, now: float) -> ExportOutput:
    """What a caller (the `export` tool, the studio) gets while an export or a hand-off
    waits its turn or runs: read from its typed job, as every answer about it is."""
    job = job_of(entry)
    assert not isinstance(job, MessageJob), entry.kind
    queued = job.phase == "queued" and ahead > 0
    handoff = job.format if isinstance(job, HandoffJob) else None
    what = f"hand-off ({handoff}, nothing is rendered)" if handoff else "render"
    return ExportOutput(
        status="queued" if queued else "rendering",
        render_id=job.render_id or "" if isinstance(job, RenderJob) else "",
        progress_percent=int(job.percent or 0),
        progress=status_line(entry, now),
        ahead=ahead if queued else 0,
        elapsed_seconds=round(now - job.created_at, 1),
        next_steps=[
            f'Call `export` with request_id="{job.handle}" to keep waiting on this {what}.'
        ],
        handoff_format=handoff,
        request_id=job.handle,
    )


async def run_render(
    run: Run, client: NemoClient, settings: Settings, history: list[Entry]
) -> dict[str, Any]:
    """Execute a render entry from whatever state it was left in; the outcome's JSON.

    `history` holds the user's earlier render entries (for reuse and unsaved renders)."""
    if _job(run).format in HANDOFF_FORMATS:
        # Left by a version that ran hand-offs as renders: a hand-off is its own kind now.
        raise InputError(
            f"This hand-off was asked of an earlier version of nemo-mcp; call `export` with "
            f"format {_job(run).format} again to hand the timeline off (nothing is rendered)."
        )
    if run.state in ("starting", "rendering", "downloading") and _job(run).render_id:
        run.memo["resumed"] = True  # left unfinished by a server that stopped
    if run.state == "queued":
        earlier = await _prepare(run, client, settings, history)
        if earlier is not None:
            return earlier
    if run.state == "downloading" and _job(run).from_earlier:
        try:
            return (await _deliver(run, client, settings)).model_dump(mode="json")
        except RenderError as err:
            # The earlier render's file is gone from the backend too: render it anew.
            log.info("could not download the earlier render again (%s); rendering", err.message)
            await _restart(run, client, settings)
    if run.state == "starting":
        await _confirm_start(run, client)
    status: RenderStatus | None = None
    if run.state in ("starting", "rendering"):
        status = await _follow(run, client, settings)
        await render.rendered(run, status)
    output = await _deliver(run, client, settings, status)
    return output.model_dump(mode="json")


def _job(run: Run) -> RenderJob:
    """The render as the run knows it now (its newest facts)."""
    return render.render_of(run)


async def _prepare(
    run: Run,
    client: NemoClient,
    settings: Settings,
    history: list[Entry],
) -> dict[str, Any] | None:
    """Read the timeline; reuse or resume an earlier render of it, or start one."""
    session = await client.session()
    run.phase("reading the timeline")
    draft = (await client.state()).state.draft
    if not parse_draft(draft).ready:
        raise InputError(
            "Nothing to export yet: the timeline has no clips. Call `generate` first "
            "(e.g. 'a 10-second video of a city at night'), then `export`."
        )
    digest = draft_hash(draft)
    asked = _job(run)
    same = [
        (e, job)
        for e in reversed(history)
        if e.id != run.entry.id
        and e.session_id == session.session_id
        and (job := render_job(e)).digest == digest
        and (job.format, job.quality) == (asked.format, asked.quality)
    ]
    if not asked.fresh:
        for earlier, job in same:
            if earlier.state == "done" and await _still_there(job, settings):
                link = await browser_link(client)
                await render.reuse(run, earlier)
                reused = _job(run).output(link=link, elapsed=0.0, reused=True)
                return reused.model_dump(mode="json")
        for earlier, job in same:
            if job.rendered:
                # Rendered, but its file was never saved, or is gone or changed since:
                # download it again; never render it again.
                await _check_output(settings)
                await render.download_earlier(
                    run, earlier, session_id=session.session_id, draft=draft
                )
                return None
    await _check_output(settings)
    await render.prepare(
        run, draft, session_id=session.session_id, digest=digest, title=_title(draft)
    )
    await render.start(run, client, sent_before=False)
    return None


async def _still_there(job: RenderJob, settings: Settings) -> bool:
    """Whether an earlier export can be given again: its file is still the one saved
    (or, when nothing is saved, the render has its URL)."""
    if not settings.save_exports:
        return bool(job.url)
    return await anyio.to_thread.run_sync(file_is_saved, job)


async def _check_output(settings: Settings) -> None:
    """Before a render starts: the folder it will be saved in (when it will be saved)."""
    if settings.save_exports:
        await anyio.to_thread.run_sync(check_output_folder, settings.output_dir)


async def _restart(run: Run, client: NemoClient, settings: Settings) -> None:
    """Start a new render of the timeline an earlier, lost render was of."""
    job = _job(run)
    draft = job.draft
    if draft is None:
        draft = (await client.state()).state.draft
    for key in ("render_id", "url", "expected_size", "rendered", "from_earlier", "started_at"):
        run.memo.pop(key, None)
    await _check_output(settings)
    await render.prepare(
        run,
        draft,
        session_id=job.session_id or "",
        digest=job.digest or draft_hash(draft),
        title=_title(draft),
    )
    await render.start(run, client, sent_before=False)


async def _confirm_start(run: Run, client: NemoClient) -> None:
    """A start that may not have arrived: sent again under its recorded id, so the
    backend either starts it now or refuses the id it already knows (it exists)."""
    run.phase("checking the render that was being started")
    if _job(run).draft is None:  # recorded by `prepare`; read again only if it was not
        run.memo["draft"] = (await client.state()).state.draft
    await render.start(run, client, sent_before=True)


async def _follow(run: Run, client: NemoClient, settings: Settings) -> RenderStatus:
    """Poll the render to the end; a failed render is reported (exports are free)."""
    job = _job(run)
    render_id = str(job.render_id)

    async def on_status(status: RenderStatus) -> None:
        words = "waiting for a render slot" if status.status == "pending" else "rendering"
        run.phase(words, status.progress * 100)

    run.phase("rendering", 0)
    status = await renders.wait_render(
        client,
        render_id,
        started_at=job.started_at or job.created_at,
        on_status=on_status,
        shortest=settings.render_shortest,
    )
    if status.status != "completed":
        raise RenderError(
            f"The render failed ({status.error or status.status}). Exports are free: call "
            "`export` again to retry."
        )
    return status


async def _deliver(
    run: Run, client: NemoClient, settings: Settings, status: RenderStatus | None = None
) -> ExportOutput:
    """The finished render: downloaded and saved, or (nothing saved here) its URL.

    `status` is the render's last status when it was just followed to its end (read
    again only for a later try, or when it was not)."""
    if settings.save_exports:
        return await _download(run, client, settings, status)
    render_id = str(_job(run).render_id)
    status = status or await renders.render_status(client, render_id)
    url = status.url or _job(run).url
    if status.status != "completed" or not url:
        raise RenderError(
            f"The render {render_id} finished, but NemoVideo gives no URL for it now "
            f"({status.status}). Call `export` with fresh=true to render it again (free)."
        )
    await run.save(url=url, size=status.size, finished_at=time.time())
    run.memo.pop("draft", None)
    link = await browser_link(client)
    return _job(run).output(link=link, elapsed=run.elapsed, reused=False)


async def _download(
    run: Run, client: NemoClient, settings: Settings, followed: RenderStatus | None
) -> ExportOutput:
    job = _job(run)
    render_id = str(job.render_id)
    folder = settings.output_dir
    reasons: list[str] = []
    for wait in retrying.DOWNLOAD.tries():
        await anyio.sleep(wait)
        status = followed or await renders.render_status(client, render_id)
        followed = None  # a later try reads it again (its URL may have changed)
        expected = status.size or job.expected_size
        await anyio.to_thread.run_sync(
            functools.partial(check_output_folder, folder, expected, rendered=True)
        )
        await anyio.to_thread.run_sync(clean_stale_parts, folder, time.time())

        def on_progress(done: int, total: int | None) -> None:
            share = f", {done * 100 // total}%" if total else ""
            run.phase(f"downloading the video ({done / 1_000_000:.0f} MB{share})", 100)

        try:
            saved = await renders.download(
                client,
                status,
                folder,
                stem=renders.safe_stem(job.title or "nemovideo"),
                expected_size=expected,
                # Named for this claim's holder: a replica paused past its lease only
                # ever touches its own part, and names the file only if still the holder.
                part_name=f".nemo-{renders.safe_stem(render_id)}-{_holder(run)}.part",
                on_progress=on_progress,
                before_claim=run.save,
            )
        except RenderError as err:
            reasons.append(err.message)
            log.info("download of render %s failed: %s", render_id, err.message)
            continue
        # The claim was ours when the file was named: earlier holders' parts are leftovers.
        for part in folder.glob(f".nemo-{renders.safe_stem(render_id)}-*.part"):
            with contextlib.suppress(OSError):
                part.unlink()
        await run.save(
            file=str(saved.path),
            size=saved.size,
            sha256=saved.sha256,
            url=status.url or saved.source,
            finished_at=time.time(),
        )
        run.memo.pop("draft", None)
        link = await browser_link(client)
        return _job(run).output(link=link, elapsed=run.elapsed, reused=False)
    raise RenderError(
        f"The render {render_id} finished, but the video could not be downloaded "
        f"({'; '.join(reasons[-2:])}). Call `export` again to download it (no new render "
        "is started)."
    )


async def run_handoff_export(
    run: Run, client: NemoClient, settings: Settings, history: list[Entry]
) -> dict[str, Any]:
    """A hand-off entry's outcome (its own ledger kind, `server/jobs/handoff.py`): the folder
    `nemo_mcp.handoff` writes, with this module's file checks; no render is started.

    `history` holds the user's earlier hand-offs in the same format, newest last."""
    from nemo_mcp.handoff.job import Checks, run_handoff

    checks = Checks(folder=check_output_folder, saved=record_is_saved, digest=draft_hash)
    handed = await run_handoff(run, client, settings, history, checks)
    job = run.job
    assert isinstance(job, HandoffJob)
    return job.output(elapsed=run.elapsed, reused=handed.reused).model_dump(mode="json")


def _holder(run: Run) -> str:
    """The tag of `run`'s claim: its generation (the ledger's fencing token)."""
    return f"g{run.entry.generation}"


async def browser_link(client: NemoClient) -> str | None:
    try:
        return await client.claim_link()
    except NemoError as err:
        log.info("no browser link: %s", err)
        return None


__all__ = [
    "browser_link",
    "check_output_folder",
    "draft_hash",
    "file_is_saved",
    "handoff_key",
    "pending_output",
    "render_key",
    "run_handoff_export",
    "run_render",
]
