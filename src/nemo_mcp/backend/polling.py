"""When to poll a render: adaptive, from the progress it reports.

The documented habit polls every 30 s, so a finished render is found up to
30 s late. Renders take 30-90 s and report progress that moves roughly
linearly once the job runs, so the finish can be predicted instead:

1. the first poll comes when the shortest render could finish;
2. each answer gives a window in which the render must finish (from the
   progress rate, allowing for rounding of the percentage and for time the
   job spent queued);
3. when the window is narrow, the next poll aims just past its end; when it is
   wide, at its start, where progress is high and the next window is narrow.

Pure: it takes observations and returns delays. `bench/` measures it against
the fixed 30 s habit.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AdaptivePoller:
    """Chooses the delay before the next status request.

    `shortest` is the shortest render expected (30 s in the contract); every
    other constant scales with it, so a faster backend (or the sandbox) keeps
    the same behaviour. Delays never exceed the documented 30 s cadence.
    """

    shortest: float = 30.0
    ceiling: float = 30.0
    queue_share: float = 0.1
    rounding: float = 0.01
    samples: list[tuple[float, float]] = field(default_factory=list)

    def observe(self, elapsed: float, progress: float) -> None:
        """Record the progress (0-1) seen `elapsed` seconds after the render started."""
        self.samples.append((elapsed, max(0.0, min(1.0, progress))))

    def window(self) -> tuple[float, float] | None:
        """Earliest and latest finish (seconds from start) the observations allow."""
        moving = [(t, p) for t, p in self.samples if 0 < p < 1]
        if not moving:
            return None
        t1, p1 = moving[-1]
        d = self.rounding
        t0, p0 = moving[0]
        if p1 > p0 + d and t1 > t0:
            slow = (p1 - p0 - d) / (t1 - t0)
            fast = (p1 - p0 + d) / (t1 - t0)
            return t1 + max(0.0, 1 - p1 - d) / fast, t1 + (1 - p1) / slow
        # One point: the job may have queued for part of the time before it.
        queued = self.queue_share * t1
        return queued + (t1 - queued) / min(1.0, p1 + d), t1 / p1

    def next_delay(self) -> float:
        """Seconds to wait before the next request."""
        floor = self.shortest / 60
        if not self.samples:
            # At the shortest render's length: a fixed 30 s grid's first poll, never later.
            return min(self.ceiling, self.shortest)
        now = self.samples[-1][0]
        window = self.window()
        if window is None:
            # Still queued (or nothing readable): check back at a modest pace.
            return max(floor, min(self.ceiling, self.shortest / 4))
        earliest, latest = window
        target = (
            latest + self.shortest / 100
            if latest - earliest <= self.shortest / 4
            else max(earliest, now + floor)
        )
        return max(floor, min(self.ceiling, target - now))
