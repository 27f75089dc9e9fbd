"""Background work that outlives a tool call, and waiting on it within a budget.

A `Job` runs in the server's own task group, not in the request that started
it: a client that gives up after 60 s, or cancels, ends only its wait. The
next call for the same work joins the job instead of starting it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio

from nemo_mcp.errors import NemoError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A waiting tool call reports progress at least this often.
PROGRESS_EVERY = 4.0


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class Job(Generic[T]):
    """One piece of paid work: its phase in words, and its outcome or error."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        self.started = time.monotonic()
        self.phase = "starting"
        self.percent: float | None = None
        self.result: T | None = None
        self.error: NemoError | None = None
        self.delivered = False
        self.milestones: set[str] = set()  # e.g. "raw_clip": facts a waiting caller may report
        self.timeline: str | None = None  # the timeline so far, once the work has changed it
        self._done = anyio.Event()
        self._changed = anyio.Event()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def set_phase(self, phase: str, percent: float | None = None) -> None:
        if phase != self.phase or percent != self.percent:
            self.phase, self.percent = phase, percent
            self._changed.set()
            self._changed = anyio.Event()

    def succeed(self, result: T) -> None:
        self.result = result
        self._done.set()
        self._changed.set()

    def fail(self, error: NemoError) -> None:
        self.error = error
        self._done.set()
        self._changed.set()

    def status_line(self) -> str:
        line = f"{self.phase} ({format_duration(self.elapsed)})"
        if self.percent is not None:
            line = f"{self.phase}, {self.percent:.0f}% ({format_duration(self.elapsed)})"
        return line

    async def wait(
        self,
        budget: float,
        report: Callable[[float, float | None, str], Awaitable[None]] | None = None,
    ) -> bool:
        """Wait up to `budget` seconds; report progress at every change and at least
        every few seconds. True when the job finished."""
        deadline = anyio.current_time() + budget
        last = -1.0  # MCP wants each progress value above the one before
        while not self.finished:
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                break
            changed = self._changed
            with anyio.move_on_after(min(PROGRESS_EVERY, remaining)):
                await changed.wait()
            if report is not None and not self.finished:
                if self.percent is not None:
                    value, total = max(self.percent, last + 0.01), 100.0
                else:
                    value, total = max(round(self.elapsed, 1), last + 0.01), None
                last = value
                try:
                    await report(value, total, self.status_line())
                except Exception:  # a client gone away must not end the wait
                    log.debug("progress report failed", exc_info=True)
        return self.finished


async def run_job(job: Job[T], work: Callable[[], Awaitable[T]]) -> None:
    """Run `work` for `job`, recording its outcome; never lets an exception escape."""
    try:
        job.succeed(await work())
    except NemoError as err:
        job.fail(err)
    except Exception as err:
        log.exception("%s failed unexpectedly", job.kind)
        job.fail(NemoError(f"{job.kind} failed unexpectedly ({type(err).__name__})"))
