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

from nemo_mcp import redaction
from nemo_mcp.errors import InputError
from nemo_mcp.handoff import FORMATS as HANDOFF_FORMATS
from nemo_mcp.ledger import KEEP_HANDLES, Entry, Kind, Ledger, clock, recent
from nemo_mcp.metrics import Metrics
from nemo_mcp.server.boundary import token_replaced
from nemo_mcp.server.exposure import Exposure
from nemo_mcp.server.jobs import HANDLE, handle_of, handoff_job, render_job
from nemo_mcp.settings import Settings

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.hosted.limits import Limits
    from nemo_mcp.server.work import Run, Ticket, Work

log = logging.getLogger(__name__)

#: The most earlier hand-offs a hand-off reads back (to reuse or continue one).
HANDOFF_HISTORY = 50


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
            executors={
                "message": self._run_message,
                "render": self._run_render,
                "handoff": self._run_handoff,
            },
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

    async def _run_handoff(self, run: Run) -> dict[str, Any]:
        from nemo_mcp.server.export import run_handoff_export

        history = await self.handoffs(handoff_job(run.entry).earlier)
        return await run_handoff_export(run, self.client, self.settings, history)

    async def handoffs(self, newest: str | None, *, most: int = HANDOFF_HISTORY) -> list[Entry]:
        """The hand-offs before one, newest last: `newest` and the ones each names as asked
        before it (`earlier`), at most `most` (the ledger lists renders only)."""
        found: list[Entry] = []
        while newest is not None and len(found) < most:
            entry = await self.ledger.get(newest)
            if entry is None or entry.kind != "handoff" or entry.user != self.user:
                break
            found.append(entry)
            newest = handoff_job(entry).earlier
        return found[::-1]

    def resume(self) -> None:
        """Take up work a previous process left unfinished (by recovery, never resending)."""
        self.work.start()

    def take_notices(self) -> list[str]:
        """Sentences the user must hear once (damaged state files found and set aside, a
        damaged token replaced)."""
        replaced = [token_replaced(d) for d in self.client.credentials.take_replaced()]
        return self.client.store.take_notices() + replaced

    # requests -------------------------------------------------------------------------
    async def submit_message(
        self,
        text: str | None,
        *,
        new_project: bool = False,
        again: bool = False,
        request_id: str | None = None,
    ) -> Ticket:
        """The ledger entry answering this message: the work it waits for, or a new one
        recorded to be sent once."""
        call = Asking()
        found = await self.find_message(
            text, new_project=new_project, again=again, request_id=request_id, call=call
        )
        if found is not None:
            return await self.work.join(found, call.ask, call.delivered.get(found.id))
        assert text is not None  # a call without words is a wait, or refused above
        fingerprint = message_fingerprint(text, new_project=new_project)
        session = await self.client.session()
        key = handle_key(request_id) if request_id else fingerprint
        cost = 0
        if self.limits is not None and self.limits.spending_capped:
            # New work (nothing above answers it): commit its estimate first, or refuse it.
            from nemo_mcp.server.spending import estimate, is_edit

            draft = None if new_project else (await self.client.state()).state.draft
            guess = estimate(edit=is_edit(draft, new_project=new_project))
            await self.limits.spend(self.key, guess.cost, guess.what)
            cost = guess.cost
        try:
            ticket = await self.work.submit(
                "message",
                key,
                {"message": text, "new_project": new_project, "fingerprint": fingerprint},
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
        text: str | None,
        *,
        new_project: bool = False,
        again: bool = False,
        request_id: str | None = None,
        call: Asking | None = None,
    ) -> Entry | None:
        """The ledger entry this call waits for (so it sends nothing and costs nothing), or
        None when it is new work; refuses an id bound to other words or unknown."""
        call = call or Asking()
        fingerprint = message_fingerprint(text, new_project=new_project) if text else None
        if request_id:
            return await self._named("message", request_id, fingerprint, call)
        if fingerprint is None:
            raise InputError(
                "`message` is required: the text of what to make or change, unless "
                "`request_id` names a request to wait for."
            )
        now = clock()
        latest = await self.ledger.latest(user=self.user, kind="message", key=fingerprint)
        if latest is None:
            return None
        if not latest.finished:
            return latest  # the same words while they run: a wait, whatever the flags
        if not recent(latest.finished_at, now):
            return None
        if not await self._delivered(latest, call):
            return latest  # finished, but no call has been given its result yet
        if again or new_project or not replayable(latest):
            return None  # its result was returned: these flags ask for new work
        session = await self.client.session()
        return latest if latest.session_id == session.session_id else None

    async def submit_export(
        self, *, fmt: str, quality: str, fresh: bool, request_id: str | None = None
    ) -> Ticket:
        """The ledger entry answering this export: the render (or, for a timeline format,
        the hand-off) it waits for, or a new one."""
        call = Asking()
        found = await self.find_export(fmt=fmt, quality=quality, request_id=request_id, call=call)
        if found is not None:
            return await self.work.join(found, call.ask, call.delivered.get(found.id))
        kind, fingerprint = export_kind(fmt, quality)
        request: dict[str, Any] = {"format": fmt, "fresh": fresh, "fingerprint": fingerprint}
        if kind == "render":
            request["quality"] = quality
        else:
            # What a later hand-off and export read back: the hand-off before this one, and
            # the newest work before it (see `handoffs`, `_only_handoffs_since`).
            earlier = await self.ledger.latest(user=self.user, kind=kind, key=fingerprint)
            request["earlier"] = earlier.id if earlier is not None else None
            request["after"] = await self.ledger.last_seq(self.user)
        session = await self.client.session()
        ticket = await self.work.submit(
            kind,
            handle_key(request_id) if request_id else fingerprint,
            request,
            session_id=session.session_id,
        )
        if ticket.submission.how == "new":
            self.metrics.accepted(ticket.submission.ahead)
        return ticket

    async def find_export(
        self, *, fmt: str, quality: str, request_id: str | None = None, call: Asking | None = None
    ) -> Entry | None:
        """The entry this export waits for: one of the same format (and quality) that runs,
        or finished unseen with no other work on the project since (a hand-off is not
        work on it). A render never answers a hand-off, nor a hand-off a render."""
        call = call or Asking()
        kind, fingerprint = export_kind(fmt, quality)
        if request_id:
            named = await self.named(request_id)
            if named is None:
                return None  # a new export, named by the caller
            # The defaults are what a wait by id leaves out: only other values are words.
            given = fingerprint if (fmt, quality) != ("mp4", "high") else None
            if given is None and named.kind in EXPORT_KINDS:
                kind = named.kind  # a wait by id, for the render or the hand-off it names
            elif named.kind in EXPORT_KINDS and named.kind != kind:
                what = "an MP4 export" if named.kind == "render" else "a hand-off to an editor"
                raise InputError(
                    f'request_id "{request_id}" names {what}, so nothing was done; call '
                    "`export` with only that request_id to wait for it, or use a new "
                    "request_id here."
                )
            return await self._named(kind, request_id, given, call)
        latest = await self.ledger.latest(user=self.user, kind=kind, key=fingerprint)
        if latest is None or not latest.finished:
            return latest
        if not recent(latest.finished_at, clock()):
            return None
        if not await self._only_handoffs_since(latest):
            return None  # other work since (an edit): this export is of something new
        return None if await self._delivered(latest, call) else latest

    async def _only_handoffs_since(self, entry: Entry) -> bool:
        """Whether every entry after `entry` is a hand-off (nothing that could change the
        timeline or render it), read back through the hand-offs' own records: each names
        the user's newest entry when it was asked (`after`). A hand-off named by its own
        request_id is not found this way, and counts as other work."""
        newest = await self.ledger.last_seq(self.user)
        if newest == entry.seq:
            return True
        known: dict[int, Entry] = {}
        for fmt in HANDOFF_FORMATS:
            _, key = export_kind(fmt, "high")
            latest = await self.ledger.latest(user=self.user, kind="handoff", key=key)
            if latest is not None and latest.seq > entry.seq:
                for handoff in await self.handoffs(latest.id):
                    known[handoff.seq] = handoff
        while newest > entry.seq and newest in known:
            newest = handoff_job(known[newest]).after
        return newest == entry.seq

    async def _delivered(self, entry: Entry, call: Asking) -> bool:
        """Whether another call has been given the entry's outcome (recording this call's
        ask, so joining the entry need not ask again)."""
        if entry.id not in call.delivered:
            call.delivered[entry.id] = await self.ledger.ask(entry.id, call.ask)
        return call.delivered[entry.id]

    async def named(self, request_id: str) -> Entry | None:
        """The work a handle names (a caller's `request_id`, or one the server made), while
        it is kept."""
        for kind in KINDS:
            found = await self.ledger.latest(user=self.user, kind=kind, key=handle_key(request_id))
            if found is not None:
                break
        else:
            found = await self.ledger.get(request_id)
            if found is None or found.user != self.user or found.key.startswith(HANDLE):
                return None
        if found.finished and not recent(found.finished_at, clock(), KEEP_HANDLES):
            return None
        return found

    async def _named(
        self, kind: Kind, request_id: str, fingerprint: str | None, call: Asking
    ) -> Entry | None:
        """A call naming `request_id`: the work it waits for; None for new work under it
        (with words); refused when the id is bound to another tool or other words."""
        found = await self.named(request_id)
        if found is None:
            if fingerprint is None:
                raise InputError(
                    f'No request with request_id "{request_id}" is known here (it may have '
                    "expired: handles are kept 24 hours); call `timeline` to see the work on "
                    "this project."
                )
            return None
        tool = TOOL_OF[found.kind]
        if found.kind != kind:
            raise InputError(
                f'request_id "{request_id}" names a `{tool}` request, so nothing was done; '
                f"call `{tool}` with it to wait for that request, or use a new request_id here."
            )
        bound = found.request.get("fingerprint")
        if fingerprint is not None and bound is not None and bound != fingerprint:
            raise InputError(
                f'request_id "{request_id}" was already used for other words, so nothing was '
                "sent; use a new request_id for a new request, or leave the words out to "
                "wait for that one."
            )
        retry = fingerprint is not None and found.finished and not replayable(found)
        if retry and await self._delivered(found, call):
            return None  # it failed before anything was sent, and was told: send it now
        return found

    async def running(self) -> list[str]:
        """Work still in progress or waiting, in words, in order."""
        from nemo_mcp.server.work import status_line

        now = clock()
        return [
            describe_entry(entry, status_line(entry, now)) for entry in await self.work.unfinished()
        ]


@dataclass
class Asking:
    """One call's ask id, and what it learnt of deliveries (asked once per entry)."""

    ask: str = field(default_factory=lambda: uuid.uuid4().hex)
    delivered: dict[str, bool] = field(default_factory=dict)


KINDS: tuple[Kind, ...] = ("message", "render", "handoff")
TOOL_OF = {"message": "generate", "render": "export", "handoff": "export"}
#: The kinds `export` asks for: a render (mp4), or a hand-off (a timeline format).
EXPORT_KINDS: tuple[Kind, ...] = ("render", "handoff")


def export_kind(fmt: str, quality: str) -> tuple[Kind, str]:
    """The ledger kind and key of an export: a hand-off for a timeline format, else a
    render (one per format and quality)."""
    from nemo_mcp.server.export import handoff_key, render_key

    if fmt in HANDOFF_FORMATS:
        return "handoff", handoff_key(fmt)
    return "render", render_key(fmt, quality)


def handle_key(request_id: str) -> str:
    """The ledger key of work named by the caller's `request_id`."""
    return HANDLE + request_id


def replayable(entry: Entry) -> bool:
    """Whether a finished entry's outcome answers the same request again: it is done, or
    it failed after the request may have reached NemoVideo (sending it again could charge
    twice). A failure before anything left is not: the same words are sent anew."""
    if entry.state == "done":
        return True
    return entry.reusable or bool((entry.error or {}).get("reached"))


def message_fingerprint(text: str, *, new_project: bool) -> str:
    """What makes two messages the same request: the same words (spacing and case aside,
    the script's text included) and the same `new_project`, whatever the project."""
    words = " ".join(text.split()).casefold()
    return f"msg|{'new|' if new_project else ''}{words}"


def describe_entry(entry: Entry, line: str) -> str:
    """An unfinished entry in words: what it is, its handle, and how far it got."""
    handle = f'request_id "{handle_of(entry)}"'
    if entry.kind == "handoff":
        return f"hand-off as {handoff_job(entry).format} ({handle}): {line}"
    if entry.kind == "render":
        render_id = render_job(entry).render_id
        what = f"render {render_id}" if render_id else "export"
        return f"{what} ({handle}): {line}"
    words = " ".join(str(entry.request.get("message", "")).split())
    shown = words if len(words) <= 60 else words[:59] + "…"
    return f'generate "{shown}" ({handle}): {line}'


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
        if service is not None:
            # Their token need not be looked for in every line while they are closed.
            redaction.release(service.client.credentials)
            if self._on_close is not None:
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
