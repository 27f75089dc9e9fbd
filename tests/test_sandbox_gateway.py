"""The sandbox's gateway faults: the backend does its work, the gateway loses the answer."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from sandbox_client import Backend, generate


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_after_takes_the_message_and_answers_itself(
    sandbox: Any, backend: Backend, status: int
) -> None:
    sid = backend.ready()
    sandbox.control.fault("gateway_after", route="run_sse", status=status)
    answer = backend.send(sid, "generate a video of a city timelapse")
    assert answer.status_code == status
    kind = answer.headers["content-type"]
    assert ("text/html" in kind) if status != 503 else ("application/json" in kind)
    stats = sandbox.control.stats()
    assert [m["text"] for m in stats["messages"]] == ["generate a video of a city timelapse"]
    assert backend.credits()["available"] < 100  # taken, and charged (held or spent)


def test_gateway_after_starts_the_render(sandbox: Any, backend: Backend) -> None:
    sid = backend.ready()
    draft = generate(backend, sid)
    sandbox.control.fault("gateway_after", route="render_start", status=502)
    answer = backend.render(sid, draft, render_id="render_1_x")
    assert answer.status_code == 502 and "Bad Gateway" in answer.text
    assert sandbox.control.stats()["renders_started"] == 1
    again = backend.render(sid, draft, render_id="render_1_x")
    assert again.status_code == 409  # the id is known: it exists


def test_hold_answers_late_having_done_the_work(sandbox: Any, backend: Backend) -> None:
    sid = backend.ready()
    draft = generate(backend, sid)
    sandbox.control.fault("hold", route="render_start", seconds=0.5)
    started = time.monotonic()
    answer = backend.render(sid, draft, render_id="render_2_x")
    assert answer.status_code == 200 and time.monotonic() - started >= 0.5
    sandbox.control.fault("hold", route="render_start", seconds=30.0)
    with pytest.raises(httpx.ReadTimeout):
        backend.render(sid, draft, render_id="render_3_x", timeout=0.5)
    assert sandbox.control.stats()["renders_started"] == 2  # started while held
