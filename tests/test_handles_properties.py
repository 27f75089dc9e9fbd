"""A property of agent behaviour: whatever sequence of calls an agent makes (repeated
words, `again`, reused and new `request_id`s, waits by id, identical calls in parallel,
a gateway that loses the answer), the backend is sent exactly the requests the agent
meant, and every wait gets its own request's result.

Each example runs against a fresh sandbox world and a fresh state folder, through the
SDK's `Client`; a model of intent says how many messages each step should send."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp_types import CallToolResult

from mcp_harness import Session, connect, make_settings, text_of

WORDS = ("a video of a fox in the snow", "add soft piano music")
IDS = ("r1", "r2")

Step = tuple[Any, ...]
STEPS = st.one_of(
    st.tuples(st.just("say"), st.sampled_from(range(len(WORDS))), st.booleans()),
    st.tuples(st.just("named"), st.sampled_from(IDS), st.sampled_from(range(len(WORDS)))),
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=7)),
    st.tuples(st.just("twice"), st.sampled_from(range(len(WORDS)))),
    # A new clip: its answer lost, it still leaves evidence (credits, the timeline). An
    # edit that changes nothing and costs nothing cannot be told from a lost message; the
    # server then says so and offers `again: true` (test_handles covers that answer).
    st.tuples(st.just("gateway"), st.just(0)),
)


@dataclass
class Intent:
    """What the agent meant so far: the sends it asked for, and the results it was given."""

    sends: int = 0
    returned: set[int] = field(default_factory=set)  # words whose (unnamed) result came back
    named: dict[str, int] = field(default_factory=dict)
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # handle -> result


def data(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    out = dict(result.structured_content)
    assert out["status"] == "completed", text_of(result)
    return out


def remember(intent: Intent, out: dict[str, Any]) -> None:
    handle = out["request_id"]
    earlier = intent.results.setdefault(handle, out)
    assert earlier["reply"] == out["reply"] and earlier["changes"] == out["changes"]


async def play(session: Session, sandbox: Any, intent: Intent, step: Step) -> None:
    kind = step[0]
    if kind == "say":
        _, n, again = step
        if again or n not in intent.returned:
            intent.sends += 1
        out = data(await session.call("generate", {"message": WORDS[n], "again": again}))
        intent.returned.add(n)
        remember(intent, out)
    elif kind == "named":
        _, request_id, n = step
        result = await session.call("generate", {"message": WORDS[n], "request_id": request_id})
        if request_id in intent.named and intent.named[request_id] != n:
            assert result.is_error and "other words" in text_of(result)
            return
        if request_id not in intent.named:
            intent.named[request_id] = n
            intent.sends += 1
        remember(intent, data(result))
    elif kind == "wait":
        if not intent.results:
            return
        handles = sorted(intent.results)
        handle = handles[step[1] % len(handles)]
        remember(intent, data(await session.call("generate", {"request_id": handle})))
    elif kind == "twice":
        n = step[1]
        intent.sends += 1  # two identical calls in flight together are one job
        outs: list[dict[str, Any]] = []

        async def one() -> None:
            outs.append(data(await session.call("generate", {"message": WORDS[n], "again": True})))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one)
            tasks.start_soon(one)
        assert outs[0]["request_id"] == outs[1]["request_id"]
        intent.returned.add(n)
        remember(intent, outs[0])
    else:  # the gateway answers 504 itself after the backend took the message
        n = step[1]
        sandbox.control.fault("gateway_after", route="run_sse", status=504)
        intent.sends += 1
        out = data(await session.call("generate", {"message": WORDS[n], "again": True}))
        intent.returned.add(n)
        remember(intent, out)


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(STEPS, min_size=1, max_size=5))
async def test_sends_are_the_intended_requests(
    tmp_path: Path, sandbox: Any, steps: list[Step]
) -> None:
    sandbox.control.reset()
    sandbox.control.set(
        generation_seconds=0.15, edit_seconds=0.1, heartbeat_interval=0.05, initial_credits=10**6
    )
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    intent = Intent()
    async with connect(make_settings(folder, sandbox.url)) as session:
        for step in steps:
            await play(session, sandbox, intent, step)
    stats = sandbox.control.stats()
    assert len(stats["messages"]) == intent.sends, steps
    assert stats["renders_started"] == 0
