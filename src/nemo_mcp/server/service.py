"""The server's state for one NemoVideo identity: its client, its ledger, its work.

Everything a tool asks that costs money or takes long goes through `Work` (the ledger):
recorded before anything is sent, run one at a time in the order asked, and answered
from the ledger when asked again. `NemoService` turns the tools' requests into ledger
keys; `Services` keeps one service per user.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from nemo_mcp.ledger import Entry, Ledger, clock
from nemo_mcp.server.exposure import Exposure
from nemo_mcp.settings import Settings

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.server.work import Run, Ticket, Work

log = logging.getLogger(__name__)


class NemoService:
    """One user's client, ledger and work in this process."""

    def __init__(
        self,
        settings: Settings,
        client: NemoClient,
        ledger: Ledger,
        tasks: TaskGroup,
        *,
        user: str = "",
    ) -> None:
        from nemo_mcp.server.work import Work

        self.settings = settings
        self.client = client
        self.ledger = ledger
        self.tasks = tasks
        self.user = user
        self.work: Work = Work(
            ledger=ledger,
            user=user,
            settings=settings,
            client=client,
            tasks=tasks,
            executors={"message": self._run_message, "render": self._run_render},
        )

    async def _run_message(self, run: Run) -> dict[str, Any]:
        from nemo_mcp.server.generation import run_message

        return await run_message(run, self.client, self.settings)

    async def _run_render(self, run: Run) -> dict[str, Any]:
        from nemo_mcp.server.export import run_render

        history = await self.ledger.renders(self.user)
        return await run_render(run, self.client, self.settings, history)

    def resume(self) -> None:
        """Take up work a previous process left unfinished (by recovery, never resending)."""
        self.work.start()

    def take_notices(self) -> list[str]:
        """Sentences the user must hear once (damaged state files found and set aside)."""
        return self.client.store.take_notices()

    # requests -------------------------------------------------------------------------
    async def submit_message(
        self,
        text: str,
        *,
        new_project: bool = False,
        again: bool = False,
        request_id: str | None = None,
    ) -> Ticket:
        """The ledger entry answering this message: found, or recorded to be sent once."""
        session = await self.client.session()
        key = _message_key(session.session_id, text, new_project, again, request_id)
        return await self.work.submit(
            "message",
            key,
            {"message": text, "new_project": new_project},
            session_id=session.session_id,
        )

    async def find_message(
        self,
        text: str,
        *,
        new_project: bool = False,
        again: bool = False,
        request_id: str | None = None,
    ) -> Entry | None:
        """The ledger entry that would answer this message (so sending it costs nothing
        more), or None when it would be a new request."""
        if again and not request_id:
            return None  # always a new request
        session = await self.client.session()
        key = _message_key(session.session_id, text, new_project, again, request_id)
        return await self.ledger.find(user=self.user, kind="message", key=key, now=clock())

    async def submit_export(self, *, fmt: str, quality: str, fresh: bool) -> Ticket:
        """The ledger entry answering this export: a running one joined, or a new one."""
        from nemo_mcp.server.export import render_key

        session = await self.client.session()
        return await self.work.submit(
            "render",
            render_key(fmt, quality),
            {"format": fmt, "quality": quality, "fresh": fresh},
            session_id=session.session_id,
        )

    async def running(self) -> list[str]:
        """Work still in progress or waiting, in words, in order."""
        from nemo_mcp.server.work import status_line

        now = clock()
        return [
            describe_entry(entry, status_line(entry, now)) for entry in await self.work.unfinished()
        ]


def _message_key(
    session_id: str, text: str, new_project: bool, again: bool, request_id: str | None
) -> str:
    from nemo_mcp.server.generation import message_key

    if request_id:
        return f"id:{request_id}"
    key = message_key(session_id, text, new_project=new_project)
    return key + f"|again:{uuid.uuid4().hex}" if again else key


def describe_entry(entry: Entry, line: str) -> str:
    """An unfinished entry in words: what it is, and how far it got."""
    if entry.kind == "render":
        render_id = entry.memo.get("render_id")
        return f"render {render_id}: {line}" if render_id else f"export: {line}"
    words = " ".join(str(entry.request.get("message", "")).split())
    shown = words if len(words) <= 60 else words[:59] + "…"
    return f'generate "{shown}": {line}'


OpenUser = Callable[[Settings, str], Awaitable["tuple[NemoClient, Ledger]"]]


class Services:
    """One `NemoService` per user: the local user, or one per HTTP bearer token.

    What each served user gets (their own state folder and ledger, output folder,
    upload folder and NemoVideo identity) is the `Exposure`'s decision; no user can
    reach another's work.
    """

    def __init__(
        self,
        settings: Settings,
        open_user: OpenUser,
        tasks: TaskGroup,
        exposure: Exposure | None = None,
    ) -> None:
        self.settings = settings
        self.exposure = exposure or Exposure.local()
        self._open_user = open_user
        self._tasks = tasks
        self._services: dict[str | None, NemoService] = {}
        self._lock = anyio.Lock()

    def peek(self, key: str | None = None) -> NemoService | None:
        """The service for `key` if it is open already; never opens one."""
        return self._services.get(key)

    def opened(self) -> list[NemoService]:
        """The services open now, in the order they were opened."""
        return list(self._services.values())

    async def get(self, key: str | None = None) -> NemoService:
        async with self._lock:
            service = self._services.get(key)
            if service is None:
                settings = self.exposure.user_settings(self.settings, key)
                self.exposure.prepare(settings)
                client, ledger = await self._open_user(settings, key or "")
                service = NemoService(settings, client, ledger, self._tasks)
                self._services[key] = service
                service.resume()
            return service
