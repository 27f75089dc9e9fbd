"""What a task does: made from a ticket, answered from its entry, finished once, cancelled
as far as the work allows.

- **Made** only once the entry is in the ledger and the task is in its store (durable),
  and only for work still to finish; a call that joins running work gets the task that
  already follows it.
- **Answered** from the entry as it stands: its progress words (the same as the
  notifications of a waiting call), and a poll interval from the adaptive render
  poller while a render runs.
- **Finished** once: when the entry ends, the caller's result is built (previews, and
  the local file link only for a caller on this computer), bounded, stored with the
  task, and the ledger records it as delivered. The process that made the task does
  this as the job ends; any other process (a restart, another replica) does it when it
  is first asked and nobody has yet.
- **Cancelled**: when another call (without a task) waits for the same work, only this
  task ends. Otherwise a queued entry is dropped from the ledger (nothing was sent); a
  render is cancelled at the backend, and the task ends `cancelled` once the entry shows
  the render stopped; a message already sent cannot be unsent, nor a hand-off under way
  (it only writes a folder here) stopped, so the task goes on and says so. A cancel never
  sends anything.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

import anyio
from mcp_types import CallToolResult, TextContent

from nemo_mcp import redaction
from nemo_mcp.backend.polling import AdaptivePoller
from nemo_mcp.errors import NemoError
from nemo_mcp.ledger import Entry, Ledger, clock
from nemo_mcp.server.boundary import tool_error
from nemo_mcp.server.tasks.records import (
    TTL_SECONDS,
    TaskRecord,
    bounded,
    iso,
    new_task_id,
)
from nemo_mcp.server.tasks.store import TaskStore, store_for
from nemo_mcp.server.work import Ticket, error_from, error_record, status_line

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.server.service import NemoService

log = logging.getLogger(__name__)

#: Builds a finished entry's result for its caller: (service, entry, remote, seconds left).
Finisher = Callable[["NemoService", Entry, bool, float], Awaitable[CallToolResult]]

#: How long the finished result's pictures may take (the job itself is done by then).
FINISH_SECONDS: Final = 30.0
#: The poll interval's bounds (ms): never busier than this, never slower than that.
POLL_MIN_MS: Final = 500
POLL_MAX_MS: Final = 15_000
#: While a message is with the agent: its progress moves in steps of seconds.
MESSAGE_POLL_MS: Final = 1_000

DROPPED = {
    "message": "Cancelled before it was sent: nothing was sent to NemoVideo or charged.",
    "render": "Cancelled before the render started: no render was started.",
    "handoff": "Cancelled before the hand-off started: no folder was written.",
}
DROPPED_ANY = "Cancelled before it started: nothing of it was done."
ALREADY_SENT = (
    "A cancel was asked, but the request had already been sent to NemoVideo and a sent "
    "request cannot be unsent; this task goes on and ends with its result."
)
TOO_LATE = {
    "message": "Completed: the request had been sent before the cancel came, so it went on.",
    "render": "Completed: the render finished before the cancel could stop it.",
    "handoff": "Completed: the hand-off finished before the cancel could stop it.",
}
SHARED = (
    "Cancelled for this task only: another call waits for the same work, so it goes on "
    "for that call (nothing was stopped, nothing more is sent)."
)
CANCELLING = "Cancelling the render at NemoVideo."
NOT_CANCELLED = (
    "The render could not be cancelled at NemoVideo ({why}); it goes on, and this task "
    "ends with its result."
)
HANDOFF_GOES_ON = (
    "A cancel was asked, but the hand-off was already writing its folder on this computer "
    "(nothing is sent or charged); it goes on, and this task ends with its result."
)
RENDER_CANCELLED = "Cancelled: the render was stopped at NemoVideo; no file was saved."
RENDER_DONE = (
    "Cancelled: the render had already finished, so it is only being saved for whoever "
    "exports again (nothing more is started)."
)


class UnknownTask(LookupError):
    """No task with this id is kept for this user (never made, another user's, or expired)."""


def poll_interval(entry: Entry | None, shortest: float) -> int:
    """Milliseconds until the task is worth asking about again."""
    if entry is None or entry.finished:
        return POLL_MIN_MS
    delay = MESSAGE_POLL_MS / 1000
    if entry.kind == "render" and entry.state == "rendering":
        poller = AdaptivePoller(shortest=shortest)
        started, percent = entry.memo.get("started_at"), entry.progress.get("percent")
        if isinstance(started, (int, float)) and isinstance(percent, (int, float)) and percent:
            poller.observe(max(0.0, clock() - float(started)), float(percent) / 100)
        delay = poller.next_delay()
    return int(min(POLL_MAX_MS, max(POLL_MIN_MS, delay * 1000)))


def error_result(err: NemoError, client: NemoClient | None) -> CallToolResult:
    """A failed job as the tool would have answered it: an `isError` result, the sentence."""
    return CallToolResult(
        content=[TextContent(type="text", text=str(tool_error(err, client)))], is_error=True
    )


async def cancel_render(client: NemoClient, render_id: str) -> None:
    """Ask the backend to stop a render (the contract's cancel endpoint)."""
    await client.request(
        "POST",
        f"/api/render/proxy/lambda/{quote(render_id)}/cancel",
        idempotent=True,
        what="cancelling the render",
    )


class TaskKeeper:
    """Tasks for every user of this server; the stores are the users' ledgers' neighbours."""

    def __init__(self, finishers: dict[str, Finisher]) -> None:
        self.finishers = finishers
        self._stores: weakref.WeakKeyDictionary[Ledger, TaskStore] = weakref.WeakKeyDictionary()
        #: Tasks this process is finishing now, with the event set when it is done.
        self._finishing: dict[str, anyio.Event] = {}

    def store(self, service: NemoService) -> TaskStore:
        found = self._stores.get(service.ledger)
        if found is None:
            found = self._stores[service.ledger] = store_for(service.ledger)
        return found

    # making -------------------------------------------------------------------------
    async def create(
        self, service: NemoService, ticket: Ticket, tool: str, *, remote: bool
    ) -> tuple[TaskRecord, Entry]:
        """The task following the ticket's entry: found, or made durable now."""
        now = clock()
        store = self.store(service)
        await store.prune(now=now)
        made = TaskRecord(
            id=new_task_id(),
            entry=ticket.entry.id,
            tool=tool,
            ask=ticket.ask,
            remote=remote,
            created_at=now,
            updated_at=now,
        )
        record = await store.create(made)
        self._follow(service, record)
        entry = await service.ledger.get(record.entry)
        return record, entry or ticket.entry

    async def wait_on(self, service: NemoService, ticket: Ticket) -> None:
        """Note a call without a task waiting for the ticket's entry."""
        await self.store(service).wait_on(ticket.entry.id, ticket.ask, now=clock())

    def _follow(self, service: NemoService, record: TaskRecord) -> anyio.Event:
        """Finish the task in this process as its entry ends (once per process)."""
        done = self._finishing.get(record.id)
        if done is None:
            done = self._finishing[record.id] = anyio.Event()
            service.tasks.start_soon(self._finish_when_done, service, record, done)
        return done

    async def _finish_when_done(
        self, service: NemoService, record: TaskRecord, done: anyio.Event
    ) -> None:
        store = self.store(service)
        try:
            while True:
                try:
                    entry = await service.work.wait(record.entry, 60.0)
                except NemoError:  # the entry is gone from the ledger
                    entry = None
                current = await store.get(record.id)  # as it is now: a cancel may have come
                if current is None or current.terminal:
                    return
                if entry is None or entry.finished:
                    await self._finish(service, current, entry)
                    return
        except Exception:
            log.exception("could not finish task %s", record.id)
        finally:
            self._finishing.pop(record.id, None)
            done.set()

    async def _finish(self, service: NemoService, record: TaskRecord, entry: Entry | None) -> None:
        """Store how the task ended (once: a task already terminal stays as it is)."""
        now = clock()
        if entry is None:
            gone = "The work of this task is no longer kept; call the tool again."
            ended = replace(
                record, status="failed", error={"code": -32603, "message": gone}, message=gone
            )
        elif entry.state == "cancelled":  # dropped before it started: nothing left
            ended = replace(record, status="cancelled", message=dropped_words(entry))
        elif record.cancel_asked is not None and entry.state == "failed" and entry.kind == "render":
            # A render the backend stopped on this cancel.
            ended = replace(record, status="cancelled", message=RENDER_CANCELLED)
        else:
            if entry.error is not None:
                answer = error_result(error_from(entry.error), service.client)
            else:
                finisher = self.finishers[record.tool]
                answer = await finisher(service, entry, record.remote, FINISH_SECONDS)
            dumped = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
            ended = replace(record, status="completed", result=bounded(dumped))
            if record.cancel_asked is not None:
                ended.message = TOO_LATE[entry.kind]
        ended.updated_at = now
        saved = await self.store(service).save(ended)
        if saved is not None and saved.status == "completed" and entry is not None:
            await service.ledger.deliver(entry.id, record.ask)

    # answering ----------------------------------------------------------------------
    async def record(self, service: NemoService, task_id: str) -> TaskRecord:
        found = await self.store(service).get(task_id)
        if found is None or found.expired(clock()):
            raise UnknownTask(task_id)
        return found

    async def detailed(self, service: NemoService, task_id: str) -> dict[str, Any]:
        """`tasks/get`: the task as it stands, its result or error inlined once ended."""
        record = await self.record(service, task_id)
        entry = None
        if not record.terminal:
            entry = await service.ledger.get(record.entry)
            if entry is not None and not entry.finished:
                # As asking again does: a runner here takes the work over if the process
                # running it died (its lease runs out), else follows along.
                service.work.start()
            if entry is None or entry.finished:
                # Ended: finished here (at once when it is quick), or by the process
                # already doing it.
                done = self._follow(service, record)
                with anyio.move_on_after(service.settings.tool_timeout):
                    await done.wait()
                record = await self.record(service, task_id)
        return self.shape(record, entry, service.settings.render_shortest)

    def shape(self, record: TaskRecord, entry: Entry | None, shortest: float) -> dict[str, Any]:
        """The task's wire form (the extension's `DetailedTask`)."""
        now = clock()
        updated = max(record.updated_at, entry.updated_at if entry is not None else 0.0)
        task: dict[str, Any] = {
            "taskId": record.id,
            "status": record.status,
            "createdAt": iso(record.created_at),
            "lastUpdatedAt": iso(updated),
            "ttlMs": TTL_SECONDS * 1000,
        }
        if record.status == "working":
            task["pollIntervalMs"] = poll_interval(entry, shortest)
            words = status_line(entry, now) if entry is not None else "finishing"
            if entry is not None and entry.finished:
                words = "finished; preparing the result"
            if record.message:
                words = record.message
                words += f" Meanwhile: {status_line(entry, now)}." if entry is not None else ""
            task["statusMessage"] = words
        elif record.message:
            task["statusMessage"] = record.message
        if record.status == "completed" and record.result is not None:
            task["result"] = record.result
        if record.status == "failed" and record.error is not None:
            task["error"] = record.error
        return task

    # cancelling ---------------------------------------------------------------------
    async def cancel(self, service: NemoService, task_id: str) -> None:
        """`tasks/cancel`: stop what can be stopped without sending anything."""
        record = await self.record(service, task_id)
        if record.terminal:
            return
        store = self.store(service)
        now = clock()
        entry = await service.ledger.get(record.entry)
        if entry is None or entry.finished:
            return  # too late: the result is there already
        if await store.waiters(entry.id) - {record.ask}:
            # Another call waits for this work: only this task ends; the work goes on.
            await store.save(replace(record, status="cancelled", message=SHARED, updated_at=now))
            return
        if entry.state == "queued":
            why = dropped_words(entry)
            record = await store.save(replace(record, cancel_asked=now, updated_at=now)) or record
            dropped = await service.ledger.drop(entry.id, error=error_record(NemoError(why)))
            if dropped is not None:
                service.work.touch()
                await store.save(replace(record, status="cancelled", message=why, updated_at=now))
                return
            entry = await service.ledger.get(record.entry)
            if entry is None or entry.finished:
                return
        if entry.kind in ("message", "handoff"):
            said = ALREADY_SENT if entry.kind == "message" else HANDOFF_GOES_ON
            await store.save(replace(record, cancel_asked=now, message=said, updated_at=now))
            return
        render_id = entry.memo.get("render_id")
        if entry.state == "downloading" or not isinstance(render_id, str):
            await store.save(
                replace(record, status="cancelled", message=RENDER_DONE, updated_at=now)
            )
            return
        await store.save(replace(record, cancel_asked=now, message=CANCELLING, updated_at=now))
        try:
            await cancel_render(service.client, render_id)
        except NemoError as err:
            log.info("could not cancel render %s: %s", render_id, err)
            refused = NOT_CANCELLED.format(why=redaction.redact(err.message))
            await store.save(replace(record, cancel_asked=now, message=refused, updated_at=now))


def dropped_words(entry: Entry) -> str:
    """What a task says of its work dropped from the queue (`cancelled`): nothing left."""
    return DROPPED.get(entry.kind, DROPPED_ANY)


__all__ = ["Finisher", "TaskKeeper", "UnknownTask", "cancel_render", "poll_interval"]
