"""Running the ledger's work for one user: submitting, claiming in order, waiting.

`Work` is this process's side of one user's ledger (`nemo_mcp.ledger`):

- `submit` records a request before anything is sent (or finds the entry that already
  answers it) and makes sure a runner is going;
- the runner claims the head of the user's queue, runs it (`generation.run_message`,
  `export.run_render`), and moves on; it renews its lease while it works and gives its
  claims up when the server shuts down, so another process continues at once;
- a claim held by another live process is waited for; one whose owner died is taken
  over, and the executor continues from the recorded state, by recovery;
- `wait` follows an entry within a tool call's budget, reporting progress, whichever
  process runs it.

Nothing here decides what may be sent: the ledger's states do (see the executors).
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from nemo_mcp import errors
from nemo_mcp.errors import InputError, NemoError, SharedStateError
from nemo_mcp.ledger import (
    Entry,
    Kind,
    Ledger,
    State,
    Submission,
    clock,
    new_owner,
)
from nemo_mcp.scale import answering_by
from nemo_mcp.server.jobs import AnyJob, check_move, job_of

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient
    from nemo_mcp.settings import Settings

log = logging.getLogger(__name__)

#: How often a waiting call or runner looks at the ledger for another process's changes.
POLL_SECONDS = 0.25
#: A waiting tool call reports progress at least this often.
PROGRESS_EVERY = 4.0
#: Progress is written to the ledger at most this often (it is read across processes).
FLUSH_SECONDS = 0.5
#: The shared store failing: the runner looks again this many times, pausing from this.
STORE_TRIES = 5
STORE_PAUSE = 0.25

Report = Callable[[float, "float | None", str], Awaitable[None]]


class ClaimLostError(NemoError):
    """Another process took this work over (our lease ran out); this one stops."""


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def error_record(err: NemoError) -> dict[str, Any]:
    """An error as the ledger keeps it (class, words, context)."""
    return {
        "type": type(err).__name__,
        "message": err.message,
        "code": err.code,
        "http_status": err.http_status,
        "from_backend": err.from_backend,
        "detail": err.detail,
    }


def error_from(record: dict[str, Any]) -> NemoError:
    """The error a ledger record describes, as its own class."""
    cls = getattr(errors, str(record.get("type")), NemoError)
    if not (isinstance(cls, type) and issubclass(cls, NemoError)):
        cls = NemoError
    return cls(
        str(record.get("message") or "the work failed"),
        code=record.get("code"),
        http_status=record.get("http_status"),
        from_backend=bool(record.get("from_backend")),
        detail=record.get("detail"),
    )


def phase_words(entry: Entry) -> str:
    """What the entry is doing now, in words."""
    return str(entry.progress.get("phase") or _STATE_WORDS.get(entry.state, entry.state))


def status_line(entry: Entry, now: float) -> str:
    """The entry's phase in words, with its elapsed time."""
    phase = phase_words(entry)
    elapsed = format_duration(now - entry.created_at)
    percent = entry.progress.get("percent")
    if isinstance(percent, (int, float)):
        return f"{phase}, {percent:.0f}% ({elapsed})"
    return f"{phase} ({elapsed})"


_STATE_WORDS = {
    "queued": "waiting for its turn",
    "sending": "sending the request",
    "streaming": "the agent is working",
    "recovering": "reading the timeline to see what the agent did",
    "starting": "starting the render",
    "rendering": "rendering",
    "downloading": "downloading the video",
}


class Run:
    """One claimed entry while this process works on it: durable state changes and
    progress for waiting callers."""

    def __init__(self, work: Work, entry: Entry) -> None:
        self.work = work
        self.entry = entry
        self.memo: dict[str, Any] = dict(entry.memo)
        self.progress: dict[str, Any] = dict(entry.progress)
        #: The request reached the backend: a failure now is final, never re-sent.
        self.sticky = False
        #: Another process took the claim over; this run stopped.
        self.lost = False
        self._dirty = False

    @property
    def request(self) -> dict[str, Any]:
        return self.entry.request

    @property
    def state(self) -> State:
        return self.entry.state

    @property
    def elapsed(self) -> float:
        return clock() - self.entry.created_at

    @property
    def job(self) -> AnyJob:
        """The typed job, with this run's newest facts."""
        return job_of(self.entry, self.memo)

    async def save(
        self,
        *,
        state: State | None = None,
        session_id: str | None = None,
        **memo: Any,
    ) -> None:
        """Record a state and facts durably before acting on them; a phase change must be
        one of the kind's moves (`server/jobs`)."""
        if state is not None:
            check_move(self.entry.kind, self.entry.state, state)
        self.memo.update(memo)
        self._dirty = False
        updated = await self.work.ledger.save(
            self.entry.id,
            self.work.owner,
            generation=self.entry.generation,
            lease=self.work.lease,
            state=state,
            session_id=session_id,
            memo=self.memo,
            progress=self.progress,
        )
        if updated is None:
            raise ClaimLostError("another process took this work over")
        self._newer(updated)
        self.work.touch()

    def _newer(self, updated: Entry) -> None:
        """Keep `updated` unless a later write's answer arrived first: a renewal and a
        state change run side by side, and their answers may come back in either order
        (an older answer kept would undo the state change here)."""
        if updated.version >= self.entry.version:
            self.entry = updated

    def phase(
        self,
        words: str,
        percent: float | None = None,
        *,
        timeline: str | None = None,
        milestone: str | None = None,
    ) -> None:
        """Say what the work is doing now; written to the ledger within a moment."""
        self.progress["phase"] = words
        self.progress["percent"] = None if percent is None else round(percent, 1)
        if timeline is not None:
            self.progress["timeline"] = timeline
        if milestone is not None:
            marks = list(self.progress.get("milestones", []))
            if milestone not in marks:
                self.progress["milestones"] = [*marks, milestone]
        self._dirty = True
        self.work.touch()

    async def keep_alive(self, scope: anyio.CancelScope) -> None:
        """Renew the lease, and write progress when it changed, until cancelled; if the
        claim was lost, cancel `scope` (the run)."""
        quiet = 0.0
        while True:
            await anyio.sleep(FLUSH_SECONDS)
            quiet += FLUSH_SECONDS
            if not self._dirty and quiet < self.work.lease / 4:
                continue
            quiet = 0.0
            self._dirty = False
            try:
                updated = await self.work.ledger.save(
                    self.entry.id,
                    self.work.owner,
                    generation=self.entry.generation,
                    lease=self.work.lease,
                    progress=self.progress,
                )
            except SharedStateError as err:  # a missed renewal: the next one may land
                log.warning("could not renew the claim on %s: %s", self.entry.id, err)
                self._dirty = True
                continue
            if updated is None:
                self.lost = True
                scope.cancel()
                return
            self._newer(updated)


Executor = Callable[[Run], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Ticket:
    """A call's place in the ledger: its entry, how it was found, and its own ask id."""

    submission: Submission
    ask: str

    @property
    def delivered_before(self) -> bool:
        """Another call was given this entry's outcome before this one asked."""
        return self.submission.delivered_before

    @property
    def entry(self) -> Entry:
        assert self.submission.entry is not None
        return self.submission.entry


class Work:
    """One user's work in this process. Executors are given per kind."""

    def __init__(
        self,
        *,
        ledger: Ledger,
        user: str,
        settings: Settings,
        client: NemoClient,
        tasks: TaskGroup,
        executors: dict[str, Executor],
    ) -> None:
        self.ledger = ledger
        self.user = user
        self.settings = settings
        self.client = client
        self.tasks = tasks
        self.executors = executors
        self.owner = new_owner()
        self.lease = settings.lease_seconds
        self._changed = anyio.Event()
        #: How often waiters look at the ledger for other processes' changes (longer
        #: while those changes are announced: `hosted.notify`).
        self.poll = POLL_SECONDS
        self._runner_active = False
        self._runs: dict[str, Run] = {}

    @property
    def busy(self) -> bool:
        """A runner works (or follows another process's work) for this user here."""
        return self._runner_active or bool(self._runs)

    # notifications -----------------------------------------------------------------
    def touch(self) -> None:
        """Wake this process's waiters: something they follow may have changed."""
        self._changed.set()
        self._changed = anyio.Event()

    async def _pause(self, seconds: float | None = None) -> None:
        seconds = self.poll if seconds is None else seconds
        changed = self._changed
        with anyio.move_on_after(seconds):
            await changed.wait()

    # submitting --------------------------------------------------------------------
    async def submit(
        self, kind: Kind, key: str, request: dict[str, Any], *, session_id: str | None
    ) -> Ticket:
        """Record the request (or find the entry answering it) and see that it runs."""
        ask = uuid.uuid4().hex
        submission = await self.ledger.submit(
            user=self.user,
            kind=kind,
            key=key,
            session_id=session_id,
            request=request,
            ask=ask,
        )
        if submission.how == "full":
            # `ahead` counts every unfinished request, the running one too: it is not waiting.
            waiting = max(0, submission.ahead - 1)
            raise InputError(
                f"{waiting} requests are already waiting on this project behind the one "
                "running, the most this server queues. Wait for them to finish (call "
                "`timeline` to see them), then ask again; nothing was sent."
            )
        assert submission.entry is not None
        self.start()
        return Ticket(submission=submission, ask=ask)

    async def join(self, entry: Entry, ask: str, delivered: bool | None = None) -> Ticket:
        """A call (`ask`) that waits for existing work: never starts any, whatever it asked.
        `delivered`: whether another call was given its outcome, when already asked."""
        if not entry.finished:
            self.start()
            return Ticket(submission=Submission("unfinished", entry, 0, False), ask=ask)
        if delivered is None:
            delivered = await self.ledger.ask(entry.id, ask)
        return Ticket(submission=Submission("finished", entry, 0, delivered), ask=ask)

    async def deliver(self, ticket: Ticket) -> None:
        """Record that this call was given its entry's outcome."""
        await self.ledger.deliver(ticket.entry.id, ticket.ask)

    # waiting -----------------------------------------------------------------------
    async def wait(self, entry_id: str, budget: float, report: Report | None = None) -> Entry:
        """The entry once finished, or as it stands when `budget` seconds have passed.

        Reports progress at each change and at least every few seconds."""
        deadline = anyio.current_time() + budget
        last_value = -1.0  # MCP wants each progress value above the one before
        last_report = -math.inf
        last_seen: tuple[int, str] | None = None
        while True:
            entry = await self._look(entry_id)
            if entry is None:
                raise InputError("this request is no longer in the ledger; ask again")
            if entry.finished:
                return entry
            now = anyio.current_time()
            if now >= deadline:
                return entry
            seen = (entry.version, str(entry.progress.get("phase")))
            if report is not None and (seen != last_seen or now - last_report >= PROGRESS_EVERY):
                last_seen, last_report = seen, now
                percent = entry.progress.get("percent")
                if isinstance(percent, (int, float)):
                    value, total = max(float(percent), last_value + 0.01), 100.0
                else:
                    value, total = (
                        max(round(clock() - entry.created_at, 1), last_value + 0.01),
                        None,
                    )
                last_value = value
                try:
                    await report(value, total, status_line(entry, clock()))
                except Exception:  # a client gone away must not end the wait
                    log.debug("progress report failed", exc_info=True)
            await self._pause(min(self.poll, max(0.0, deadline - now)))

    async def _look(self, entry_id: str) -> Entry | None:
        """The entry as it stands. While this process runs it, its run has the newest
        record and progress: read there, not from the ledger (each progress step wakes
        the waiters here, and a shared ledger would be read once per waiter per step)."""
        run = self._runs.get(entry_id)
        if run is not None and not run.lost:
            return replace(run.entry, progress=dict(run.progress))
        return await self.ledger.get(entry_id)

    async def unfinished(self) -> list[Entry]:
        return await self.ledger.unfinished(self.user)

    async def follow(
        self, ticket: Ticket, budget: float, report: Report | None = None
    ) -> tuple[Entry, int]:
        """A call's answer: its entry once finished (delivered to this call; a failure is
        raised as its own error), or as it stands after `budget` with how many entries
        run before it."""
        entry = await self.wait(ticket.entry.id, budget, report)
        if not entry.finished:
            queue = [e.id for e in await self.unfinished()]
            return entry, queue.index(entry.id) if entry.id in queue else 0
        await self.deliver(ticket)
        if entry.error is not None:
            raise error_from(entry.error)
        return entry, 0

    # running -----------------------------------------------------------------------
    def start(self) -> None:
        """Make sure a runner works through this user's queue in this process."""
        if not self._runner_active:
            self._runner_active = True
            self.tasks.start_soon(self._runner)

    async def _runner(self) -> None:
        with answering_by(None):  # no caller waits on the runner, whoever started it
            await self._run_queue()

    async def _run_queue(self) -> None:
        troubles = 0
        try:
            while True:
                try:
                    claimed = await self.ledger.claim_head(self.user, self.owner, lease=self.lease)
                    if claimed is None:
                        if await self.ledger.head(self.user) is None:
                            return
                        # Another live process runs it: follow along until done or dead.
                        await self._pause()
                        continue
                    await self._execute(claimed)
                    troubles = 0
                except SharedStateError as err:
                    # The store stalled or refused: nothing is lost; look again shortly
                    # (a while), then leave it to the user's next call.
                    troubles += 1
                    if troubles > STORE_TRIES:
                        log.warning("the work runner paused: %s", err)
                        return
                    await anyio.sleep(min(STORE_PAUSE * 2**troubles, 10.0))
        except Exception:
            log.exception("the work runner stopped")
        finally:
            self._runner_active = False

    async def _execute(self, entry: Entry) -> None:
        run = Run(self, entry)
        executor = self.executors[entry.kind]
        self._runs[entry.id] = run
        outcome: dict[str, Any] | None = None
        failure: NemoError | None = None
        interrupted: SharedStateError | None = None
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(run.keep_alive, tasks.cancel_scope)
                try:
                    outcome = await executor(run)
                except ClaimLostError:
                    run.lost = True
                except SharedStateError as err:
                    # The bookkeeping failed, not the work: unclear is not failed. The
                    # entry stays unfinished as last recorded, and is resumed by recovery.
                    interrupted = err
                except NemoError as err:
                    failure = err
                except Exception as err:
                    log.exception("%s failed unexpectedly", entry.kind)
                    failure = NemoError(_unexpected(entry.kind, err))
                tasks.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._abandon(run)
            raise
        finally:
            self._runs.pop(entry.id, None)
        if run.lost:
            log.warning("work %s was taken over by another process", entry.id)
            return
        if interrupted is not None:
            raise interrupted
        await self._finish(run, outcome, failure)

    async def _finish(
        self, run: Run, outcome: dict[str, Any] | None, failure: NemoError | None
    ) -> None:
        # Never `reusable` for the store: whether an outcome answers a repeat is the
        # service's decision (it must be able to add new work under the same key).
        ending: dict[str, Any] = (
            {
                "state": "failed",
                "error": {**error_record(failure), "reached": run.sticky},
                "reusable": False,
            }
            if failure is not None
            else {"state": "done", "outcome": outcome, "reusable": False}
        )
        done = await self.ledger.finish(
            run.entry.id,
            self.owner,
            generation=run.entry.generation,
            memo=run.memo,
            progress=run.progress,
            **ending,
        )
        if done is None:
            log.warning("work %s finished, but another process had taken it over", run.entry.id)
        self.touch()

    async def _abandon(self, run: Run) -> None:
        """Shutting down: give the claim up at once, so another process continues."""
        try:
            await self.ledger.save(
                run.entry.id,
                self.owner,
                generation=run.entry.generation,
                lease=0,  # a lease that has already run out
                memo=run.memo,
                progress=run.progress,
            )
        except Exception:
            log.debug("could not give up the claim on %s", run.entry.id, exc_info=True)


def _unexpected(kind: str, err: Exception) -> str:
    what = "The render" if kind == "render" else "The request"
    if isinstance(err, OSError):
        reason = f" ({err.strerror})" if err.strerror else ""
        return f"{what} failed: a file could not be read or written{reason}."
    return (
        f"{what} failed because of an unexpected problem in nemo-mcp (the details are in the "
        "server's log); nothing was sent twice. Try again."
    )


__all__ = [
    "ClaimLostError",
    "Run",
    "Ticket",
    "Work",
    "error_from",
    "error_record",
    "format_duration",
    "phase_words",
    "status_line",
]
