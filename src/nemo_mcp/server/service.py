"""The server's state for one NemoVideo identity: its client, its ledger, its work.

Everything a tool asks that costs money or takes long goes through `Work` (the ledger):
recorded before anything is sent, run one at a time in the order asked, and answered
from the ledger when asked again. `NemoService` turns the tools' requests into ledger
keys; `Services` keeps one service per user.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from nemo_mcp.ledger import Entry, Ledger, clock
from nemo_mcp.metrics import Metrics
from nemo_mcp.server.exposure import Exposure
from nemo_mcp.settings import Settings

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.hosted.limits import Limits
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
        #: The operator's per-user limits (hosted), and this user's key for them.
        self.limits: Limits | None = None
        self.key = ""
        self.metrics = Metrics.off()
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

        if run.state == "queued":  # not yet sent: it leaves now (a resume never resends)
            self.metrics.message_sent()
        return await run_message(run, self.client, self.settings)

    async def _run_render(self, run: Run) -> dict[str, Any]:
        from nemo_mcp.server.export import run_render

        history = await self.ledger.renders(self.user)
        if run.state == "queued":
            self.metrics.render_started()
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
        cost = 0
        if self.limits is not None and self.limits.spending_capped:
            found = await self.ledger.find(user=self.user, kind="message", key=key, now=clock())
            if found is None:  # a new request: commit its estimate first, or refuse it
                from nemo_mcp.server.spending import estimate, is_edit

                draft = None if new_project else (await self.client.state()).state.draft
                guess = estimate(edit=is_edit(draft, new_project=new_project))
                await self.limits.spend(self.key, guess.cost, guess.what)
                cost = guess.cost
        try:
            ticket = await self.work.submit(
                "message",
                key,
                {"message": text, "new_project": new_project},
                session_id=session.session_id,
            )
        except BaseException:
            if cost and self.limits is not None:
                with anyio.CancelScope(shield=True):
                    await self.limits.refund(self.key, cost)
            raise
        if cost and ticket.submission.how != "new" and self.limits is not None:
            await self.limits.refund(self.key, cost)  # another call recorded it first
        if ticket.submission.how == "new":
            self.metrics.accepted(ticket.submission.ahead)
        return ticket

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
        ticket = await self.work.submit(
            "render",
            render_key(fmt, quality),
            {"format": fmt, "quality": quality, "fresh": fresh},
            session_id=session.session_id,
        )
        if ticket.submission.how == "new":
            self.metrics.accepted(ticket.submission.ahead)
        return ticket

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


OpenUser = Callable[[Settings, str, AsyncExitStack], Awaitable["tuple[NemoClient, Ledger]"]]
"""Open one user's client and ledger, entering what must be closed into the stack given."""

#: How often idle users are looked for, at most (seconds).
SWEEP_SECONDS = 30.0


@dataclass(eq=False)
class _Slot:
    """One user in the cache: their service once open, the lock opening it, what closes
    it, and when it was last asked for."""

    lock: anyio.Lock = field(default_factory=anyio.Lock)
    service: NemoService | None = None
    closing: AsyncExitStack = field(default_factory=AsyncExitStack)
    used: float = 0.0
    #: Calls being answered for this user right now (pinned: never closed meanwhile).
    calls: int = 0


class Services:
    """One `NemoService` per user: the local user, or one per HTTP bearer token.

    What each served user gets (their own state folder and ledger, output folder,
    upload folder and NemoVideo identity) is the `Exposure`'s decision; no user can
    reach another's work.

    Served users are kept in a bounded cache: at most `scale.max_users` open, the least
    recently used closed first, and any unused for `scale.user_idle_seconds` closed; a
    user whose call is being answered (`using`) or whose work runs here is never closed.
    Closing ends their HTTP client and ledger; their next call opens them again from
    the store. Each user is opened under a lock of their own: one slow open (a stalled
    Redis, say) never holds up another user's call.
    """

    def __init__(
        self,
        settings: Settings,
        open_user: OpenUser,
        tasks: TaskGroup,
        exposure: Exposure | None = None,
        *,
        on_open: Callable[[NemoService], None] | None = None,
        on_close: Callable[[NemoService], None] | None = None,
        limits: Limits | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.exposure = exposure or Exposure.local()
        self._open_user = open_user
        self._tasks = tasks
        self._slots: OrderedDict[str | None, _Slot] = OrderedDict()
        self._on_open = on_open
        self.limits = limits
        self.metrics = metrics or Metrics.off()
        self._on_close = on_close
        self._sweeping = False
        #: Users closed so far (for metrics and tests).
        self.closed_count = 0

    @property
    def max_users(self) -> int:
        return self.settings.scale.max_users

    @property
    def idle_seconds(self) -> float:
        return self.settings.scale.user_idle_seconds

    def peek(self, key: str | None = None) -> NemoService | None:
        """The service for `key` if it is open already; never opens one."""
        slot = self._slots.get(key)
        return slot.service if slot is not None else None

    def opened(self) -> list[NemoService]:
        """The services open now, least recently used first."""
        return [slot.service for slot in self._slots.values() if slot.service is not None]

    def __len__(self) -> int:
        return sum(1 for slot in self._slots.values() if slot.service is not None)

    def _slot(self, key: str | None) -> _Slot:
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = _Slot()
        self._slots.move_to_end(key)
        slot.used = anyio.current_time()
        return slot

    @contextmanager
    def using(self, key: str | None) -> Iterator[None]:
        """Pin `key`'s user for the block (a call being answered): never closed meanwhile."""
        slot = self._slot(key)
        slot.calls += 1
        try:
            yield
        finally:
            slot.calls -= 1
            slot.used = anyio.current_time()
            if slot.service is None and slot.calls == 0 and self._slots.get(key) is slot:
                del self._slots[key]  # never opened (refused, or failed to open)

    async def get(self, key: str | None = None) -> NemoService:
        if self.limits is not None and self.exposure.served:
            await self.limits.call(key or "")  # refused past the rate: nothing opened
        slot = self._slot(key)
        if slot.service is not None:
            return slot.service
        slot.calls += 1
        try:
            async with slot.lock:
                if slot.service is None:
                    settings = self.exposure.user_settings(self.settings, key)
                    self.exposure.prepare(settings)
                    try:
                        client, ledger = await self._open_user(settings, key or "", slot.closing)
                    except BaseException:
                        with anyio.CancelScope(shield=True):
                            await slot.closing.aclose()
                        slot.closing = AsyncExitStack()
                        raise
                    service = NemoService(settings, client, ledger, self._tasks)
                    service.limits, service.key = self.limits, key or ""
                    service.metrics = self.metrics
                    slot.service = service
                    if self._on_open is not None:
                        self._on_open(service)
                    service.resume()
            service = slot.service
        finally:
            slot.calls -= 1
            if slot.service is None and slot.calls == 0 and self._slots.get(key) is slot:
                del self._slots[key]
        self._trim()
        if not self._sweeping and self.exposure.served:
            self._sweeping = True
            self._tasks.start_soon(self._sweep)
        return service

    def _closable(self, slot: _Slot) -> bool:
        service = slot.service
        return (
            service is not None
            and slot.calls == 0
            and not slot.lock.locked()
            and not service.work.busy
        )

    def _trim(self) -> None:
        """Close the least recently used users beyond `max_users` (never a busy one)."""
        excess = len(self) - self.max_users
        if excess <= 0:
            return
        for key, slot in list(self._slots.items()):
            if excess <= 0:
                break
            if self._closable(slot):
                self._close(key, slot)
                excess -= 1

    def close_idle(self) -> int:
        """Close every user unused for `idle_seconds` (never a busy one); how many."""
        before = anyio.current_time() - self.idle_seconds
        idle = [
            (key, slot)
            for key, slot in self._slots.items()
            if slot.used <= before and self._closable(slot)
        ]
        for key, slot in idle:
            self._close(key, slot)
        return len(idle)

    async def _sweep(self) -> None:
        while True:
            await anyio.sleep(min(SWEEP_SECONDS, max(0.05, self.idle_seconds / 4)))
            self.close_idle()

    def _close(self, key: str | None, slot: _Slot) -> None:
        """Forget `key`'s user now (their next call opens them again), and close what
        they held in the background."""
        del self._slots[key]
        service, slot.service = slot.service, None
        self.closed_count += 1
        if service is not None and self._on_close is not None:
            self._on_close(service)
        self._tasks.start_soon(self._aclose, slot)

    @staticmethod
    async def _aclose(slot: _Slot) -> None:
        try:
            await slot.closing.aclose()
        except Exception:  # closing must never take the server down
            log.warning("closing a user's client and ledger failed", exc_info=True)

    async def aclose(self) -> None:
        """Close every user (the server is stopping; their work was cancelled first)."""
        slots, self._slots = list(self._slots.values()), OrderedDict()
        for slot in slots:
            slot.service = None
            await self._aclose(slot)
