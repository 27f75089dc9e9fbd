"""One export: exactly one render per request, persisted, resumable, downloaded.

The render record is written before the start request is sent and updated as
the render moves, so a server killed mid-render resumes the same render id
when it comes back instead of paying for a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

from nemo_mcp.backend import render as renders
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.models import RenderStatus
from nemo_mcp.errors import NemoError, RenderError
from nemo_mcp.server.jobs import Job
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.settings import Settings
from nemo_mcp.store import RenderRecord
from nemo_mcp.timeline import parse_draft

log = logging.getLogger(__name__)

UNFINISHED = ("starting", "pending", "processing")


def draft_hash(draft: Any) -> str:
    return hashlib.sha256(json.dumps(draft, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _title(draft: Any) -> str:
    meta = draft.get("m") if isinstance(draft, dict) else None
    title = meta.get("title") if isinstance(meta, dict) else None
    return title if isinstance(title, str) and title.strip() else "nemovideo"


def output_for(
    record: RenderRecord, *, link: str | None, elapsed: float, reused: bool = False
) -> ExportOutput:
    done = record.status == "completed"
    return ExportOutput(
        status="completed"
        if done
        else ("failed" if record.status in ("failed", "cancelled") else "rendering"),
        render_id=record.id,
        progress_percent=100 if done else int(record.progress * 100),
        url=record.url,
        file=record.file,
        size_bytes=record.size,
        browser_link=link,
        reused=reused,
        elapsed_seconds=round(elapsed, 1),
        next_steps=["Share or open the saved MP4."]
        if done
        else ["Call `export` again to keep waiting."],
    )


class Exporter:
    """Starts, resumes, polls and downloads renders for one client."""

    def __init__(self, client: NemoClient, settings: Settings) -> None:
        self.client = client
        self.settings = settings

    def _save(self, record: RenderRecord) -> None:
        self.client.store.save_render(record)

    def unfinished(self, session_id: str) -> RenderRecord | None:
        """A render a previous run left unfinished on this session, newest first."""
        for record in reversed(self.client.store.load_renders().renders):
            if record.session_id == session_id and record.status in UNFINISHED:
                return record
        return None

    def reusable(self, session_id: str, digest: str) -> RenderRecord | None:
        """A completed export of exactly this draft whose file is still on disk."""
        for record in reversed(self.client.store.load_renders().renders):
            if (
                record.session_id == session_id
                and record.status == "completed"
                and record.draft_hash == digest
                and record.file
                and Path(record.file).is_file()
            ):
                return record
        return None

    async def run_new(
        self, job: Job[ExportOutput], draft: Any, *, fmt: str, quality: str
    ) -> ExportOutput:
        session = await self.client.session()
        record = RenderRecord(
            id="",
            session_id=session.session_id,
            status="starting",
            format=fmt,
            quality=quality,
            started_at=time.time(),
            draft_hash=draft_hash(draft),
            title=_title(draft),
        )

        async def remember(render_id: str) -> None:
            record.id = render_id
            record.started_at = time.time()
            self._save(record)
            job.key = render_id

        job.set_phase("starting the render", 0)
        await renders.start_render(
            self.client,
            draft,
            session_id=session.session_id,
            output={"format": fmt, "quality": quality},
            remember=remember,
        )
        record.status = "pending"
        self._save(record)
        return await self.follow(job, record)

    async def follow(self, job: Job[ExportOutput], record: RenderRecord) -> ExportOutput:
        """Poll `record`'s render to the end, download it, and report."""
        job.key = record.id
        if record.status == "starting":
            # Killed between choosing the id and hearing back: ask before anything else.
            try:
                await renders.render_status(self.client, record.id)
            except NemoError as err:
                record.status, record.error = "failed", f"never started ({err.message})"
                self._save(record)
                raise RenderError(
                    "An earlier export was interrupted before the render started; call "
                    "`export` again to start it (free)."
                ) from err

        async def on_status(status: RenderStatus) -> None:
            record.status = status.status if status.status != "unknown" else record.status
            record.progress = status.progress
            self._save(record)
            words = "waiting for a render slot" if status.status == "pending" else "rendering"
            job.set_phase(words, round(status.progress * 100, 1))

        job.set_phase("rendering", record.progress * 100)
        status = await renders.wait_render(
            self.client,
            record.id,
            started_at=record.started_at,
            on_status=on_status,
            shortest=self.settings.render_shortest,
        )
        if status.status != "completed":
            record.status = status.status
            record.error = status.error or status.status
            record.finished_at = time.time()
            self._save(record)
            raise RenderError(
                f"The render failed ({record.error}). Exports are free: call `export` again to retry."
            )
        record.url = status.url
        job.set_phase("downloading the video", 100)

        def on_progress(done: int, total: int | None) -> None:
            share = f", {done * 100 // total}%" if total else ""
            job.set_phase(f"downloading the video ({done / 1_000_000:.0f} MB{share})", 100)

        saved = await renders.download(
            self.client,
            status,
            self.settings.output_dir,
            stem=renders.safe_stem(record.title or "nemovideo"),
            on_progress=on_progress,
        )
        record.file, record.size = str(saved.path), saved.size
        record.url = status.url or saved.source
        record.status, record.finished_at = "completed", time.time()
        self._save(record)
        link = await self.browser_link()
        return output_for(record, link=link, elapsed=job.elapsed)

    async def browser_link(self) -> str | None:
        try:
            return await self.client.claim_link()
        except NemoError as err:
            log.info("no browser link: %s", err)
            return None


def ready_draft(draft: Any) -> bool:
    return parse_draft(draft).ready
