"""The adaptive render poller: scale-free, bounded, predicts the finish."""

from __future__ import annotations

import math

import pytest

from nemo_mcp.backend.polling import AdaptivePoller


def simulate(poller: AdaptivePoller, duration: float, queued: float) -> tuple[float, int]:
    """Seconds between finish and detection, and requests made, for a linear render."""
    now, requests = 0.0, 0
    while True:
        now += poller.next_delay()
        requests += 1
        if now >= duration:
            return now - duration, requests
        progress = (
            0.0 if now < queued else math.floor(100 * (now - queued) / (duration - queued)) / 100
        )
        poller.observe(now, min(progress, 0.99))


@pytest.mark.parametrize("duration", [30, 45, 60, 75, 90])
@pytest.mark.parametrize("queued", [0, 3])
def test_adaptive_finds_finish_fast_with_few_requests(duration: float, queued: float) -> None:
    late, requests = simulate(AdaptivePoller(), duration, queued)
    # The documented habit, one poll every 30 s: found at the next multiple of 30.
    fixed_requests = math.ceil(duration / 30)
    fixed_late = fixed_requests * 30 - duration
    assert late < 5.0
    assert requests <= fixed_requests + 1
    assert late <= max(fixed_late, 2.0)


def test_delays_are_bounded_by_the_documented_cadence() -> None:
    poller = AdaptivePoller()
    poller.observe(29, 0.01)
    assert 0 < poller.next_delay() <= 30


def test_scale_free() -> None:
    slow, fast = AdaptivePoller(shortest=30.0), AdaptivePoller(shortest=0.3)
    assert fast.next_delay() == pytest.approx(slow.next_delay() / 100)
    slow.observe(29.1, 0.5)
    fast.observe(0.291, 0.5)
    assert fast.next_delay() == pytest.approx(slow.next_delay() / 100)


def test_queued_render_backs_off_gently() -> None:
    poller = AdaptivePoller()
    poller.observe(29.1, 0.0)
    assert poller.window() is None
    assert 0 < poller.next_delay() <= 30
