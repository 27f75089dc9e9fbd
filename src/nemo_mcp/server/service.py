"""The server's state for one NemoVideo identity: the client, and the work in flight.

At most one generation and one render run at a time. A call that arrives
while one runs joins it; a call that arrives after it finished, for the same
request, gets its undelivered outcome. Nothing here sends a message or starts
a render twice for one request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from nemo_mcp.errors import InputError
from nemo_mcp.server.jobs import Job, run_job
from nemo_mcp.server.outputs import ExportOutput, GenerateOutput
from nemo_mcp.settings import Settings

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.server.export import Exporter

log = logging.getLogger(__name__)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


class NemoService:
    def __init__(self, settings: Settings, client: NemoClient, tasks: TaskGroup) -> None:
        self.settings = settings
        self.client = client
        self.tasks = tasks
        self._exporter: Exporter | None = None
        self.generation: Job[GenerateOutput] | None = None
        self.render: Job[ExportOutput] | None = None
        self._lock = anyio.Lock()

    @property
    def exporter(self) -> Exporter:
        if self._exporter is None:
            from nemo_mcp.server.export import Exporter

            self._exporter = Exporter(self.client, self.settings)
        return self._exporter

    # generation ----------------------------------------------------------------
    async def submit_generation(
        self, message: str, *, new_project: bool = False
    ) -> tuple[Job[GenerateOutput], str]:
        """The job answering `message`, and how: `started`, `joined`, `finished` or `resumed`."""
        from nemo_mcp.server.generation import run_generation

        async with self._lock:
            current = self.generation
            if current is not None and not current.finished:
                return current, "joined"
            if (
                current is not None
                and not current.delivered
                and _norm(current.key) == _norm(message)
            ):
                return current, "finished"
            store = self.client.store
            pending = store.load_generation()
            if pending is not None:
                session = await self.client.session()
                if (
                    not new_project
                    and pending.session_id == session.session_id
                    and _norm(pending.message) == _norm(message)
                ):
                    # Sent by a server that stopped before reporting: read, never re-send.
                    job: Job[GenerateOutput] = Job("generation", message)
                    self.generation = job
                    self.tasks.start_soon(
                        run_job,
                        job,
                        lambda: run_generation(
                            self.client, self.settings, job, message, resumed=pending
                        ),
                    )
                    return job, "resumed"
                store.clear_generation()
            if new_project:
                await self.client.new_session()
            job = Job("generation", message)
            self.generation = job
            self.tasks.start_soon(
                run_job, job, lambda: run_generation(self.client, self.settings, job, message)
            )
            return job, "started"

    # export ---------------------------------------------------------------------
    async def submit_export(
        self, *, fmt: str, quality: str, fresh: bool
    ) -> tuple[Job[ExportOutput], str]:
        """The render job for an export request: joined, resumed, reused or started."""
        from nemo_mcp.server.export import draft_hash, output_for, ready_draft

        async with self._lock:
            current = self.render
            if current is not None and not current.finished:
                return current, "joined"
            if current is not None and not current.delivered:
                return current, "finished"
            session = await self.client.session()
            pending = self.exporter.unfinished(session.session_id)
            if pending is not None:
                job: Job[ExportOutput] = Job("render", pending.id)
                self.render = job
                self.tasks.start_soon(run_job, job, lambda: self.exporter.follow(job, pending))
                return job, "resumed"
            state = await self.client.state()
            draft = state.state.draft
            if not ready_draft(draft):
                raise InputError(
                    "Nothing to export yet: the timeline has no clips. Call `generate` first "
                    "(e.g. 'a 10-second video of a city at night'), then `export`."
                )
            if not fresh:
                earlier = self.exporter.reusable(session.session_id, draft_hash(draft))
                if earlier is not None:
                    job = Job("render", earlier.id)
                    link = await self.exporter.browser_link()
                    job.succeed(output_for(earlier, link=link, elapsed=0.0, reused=True))
                    self.render = job
                    return job, "reused"
            job = Job("render", "new")
            self.render = job
            self.tasks.start_soon(
                run_job, job, lambda: self.exporter.run_new(job, draft, fmt=fmt, quality=quality)
            )
            return job, "started"

    def running(self) -> list[str]:
        """Work still in progress, in words."""
        lines = []
        if self.generation is not None and not self.generation.finished:
            lines.append(f"generation: {self.generation.status_line()}")
        if self.render is not None and not self.render.finished:
            lines.append(f"render {self.render.key}: {self.render.status_line()}")
        return lines


class Services:
    """One `NemoService` per user: the local user, or one per HTTP bearer token.

    Each HTTP user's state (client id, NemoVideo token, session, renders)
    lives in its own folder, named from a hash of their bearer token, so no
    user can reach another's work.
    """

    def __init__(
        self,
        settings: Settings,
        open_client: Callable[[Settings], Awaitable[NemoClient]],
        tasks: TaskGroup,
    ) -> None:
        self.settings = settings
        self._open_client = open_client
        self._tasks = tasks
        self._services: dict[str | None, NemoService] = {}
        self._lock = anyio.Lock()

    @property
    def multi_user(self) -> bool:
        return bool(self.settings.http_tokens)

    def peek(self, key: str | None = None) -> NemoService | None:
        """The service for `key` if it is open already; never opens one."""
        return self._services.get(key)

    async def get(self, key: str | None = None) -> NemoService:
        async with self._lock:
            service = self._services.get(key)
            if service is None:
                settings = self.settings
                if key is not None:
                    settings = settings.with_overrides(
                        home=settings.home / "http-users" / key, client_id=None
                    )
                client = await self._open_client(settings)
                service = NemoService(settings, client, self._tasks)
                self._services[key] = service
            return service
