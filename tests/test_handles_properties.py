"""A property of agent behaviour: whatever sequence of calls an agent makes (repeated
words, `again`, `new_project`, `fresh`, reused and new `request_id`s, waits by id,
identical and distinct calls in parallel, exports of each quality and a hand-off, a
gateway that loses or holds the answer, the server process killed mid-call and started
again), the backend is sent exactly the requests the agent meant, renders exactly the
exports it meant, and every wait gets its own request's result.

Each example runs against a fresh sandbox world and a fresh state folder, through the
SDK's `Client`: in process for the broad run, and over loopback HTTP to a served
`nemo-mcp` process for the run with kills. A model of intent (`Intent`) says what each
step should send and render; the sandbox's own counts are the check. An agent told
"running" or "rendering" waits as told: with the same arguments, or by the handle."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp_types import CallToolResult

from nemo_mcp.backend import client as client_module
from nemo_mcp.backend.retry import Deadlines

from mcp_harness import Session, connect, make_settings, text_of
from processes import end, kill, needs_proc, run_http, server_env, wait_listening

#: Two new clips: each message the sandbox takes changes the draft and costs credits, so
#: the timeline after each send is one never rendered before, and each send is paid for.
#: (An edit repeated word for word changes nothing and costs nothing the second time:
#: nothing can show it arrived, so after a kill mid-send the server offers `again: true`
#: and an agent that takes it sends it again, free; test_handles_kills shows that case.)
WORDS = ("a video of a fox in the snow", "a video of a red kite over hills")
#: What the sandbox charges for a new clip.
CLIP_COST = 100
INITIAL_CREDITS = 10**6
IDS = ("r1", "r2")
EXPORT_IDS = ("e1", "e2")
QUALITIES = ("high", "low")
#: How many calls an agent makes waiting as told before the test gives up.
MOST_CALLS = 60
#: How the server offers to send a message that left no sign of arriving.
OFFER = "`generate` with `again: true` to send it"
#: Statuses that tell the agent to call again to wait.
WAITING = frozenset({"running", "queued", "rendering"})

Step = tuple[Any, ...]
WORD = st.sampled_from(range(len(WORDS)))
BY_ID = st.booleans()  # wait by the handle, or by repeating the same call
QUALITY = st.sampled_from(QUALITIES)
STEPS = st.one_of(
    st.tuples(st.just("say"), WORD, st.sampled_from(("", "again", "new_project")), BY_ID),
    st.tuples(st.just("named"), st.sampled_from(IDS), WORD, BY_ID),
    st.tuples(st.just("wait"), st.integers(min_value=0, max_value=7)),
    st.tuples(st.just("twice"), WORD),
    st.tuples(st.just("pair"), WORD),
    st.tuples(st.just("export"), st.sampled_from(("mp4", "otio")), QUALITY, st.booleans(), BY_ID),
    st.tuples(st.just("export_named"), st.sampled_from(EXPORT_IDS), QUALITY, BY_ID),
    st.tuples(st.just("export_twice"), QUALITY),
    # A new clip: its answer lost, it still leaves evidence (credits, the timeline). An
    # edit that changes nothing and costs nothing cannot be told from a lost message; the
    # server then says so and offers `again: true` (test_handles covers that answer).
    st.tuples(
        st.just("gateway"),
        st.sampled_from(("run_sse", "render_start")),
        st.sampled_from((502, 503, 504)),
    ),
)
#: The served run adds kills; a held answer needs the client's deadline shortened, which
#: only the in-process run can do.
HELD = st.tuples(st.just("gateway"), st.just("render_start"), st.just("hold"))
#: The served run starts with a clip, so that its kills can hit exports too.
FIRST: Step = ("say", 0, "", True)
KILLS = st.tuples(
    st.just("kill"),
    st.sampled_from(("say", "export")),
    WORD,
    QUALITY,
    st.sampled_from((0.05, 0.3, 0.6)),
)


@dataclass
class Intent:
    """What the agent meant so far, and what it was given."""

    sends: int = 0
    renders: int = 0
    #: The timeline's version: each send makes a new one.
    version: int = 0
    video: bool = False  # the current project has a clip
    project: int = 0  # `new_project` starts another
    #: (words, project) whose result came back to a plain call (or one with `again`): the
    #: same words said plainly on that project again are answered with it, not sent.
    returned: set[tuple[int, int]] = field(default_factory=set)
    named: dict[str, int] = field(default_factory=dict)  # generate's request_id -> words
    exports_named: dict[str, str] = field(default_factory=dict)  # export's request_id -> quality
    rendered: set[tuple[int, str]] = field(default_factory=set)  # (version, quality)
    results: dict[str, tuple[str, tuple[Any, ...]]] = field(default_factory=dict)

    def send(self, *, new_project: bool = False) -> None:
        self.sends += 1
        self.version += 1
        self.video = True
        self.project += new_project

    def answered(self, n: int) -> None:
        self.returned.add((n, self.project))

    def render(self, fmt: str, quality: str, *, fresh: bool) -> None:
        """An export of the timeline as it is: a render unless it is a hand-off or this
        exact timeline was already rendered at this quality (and not asked `fresh`)."""
        if fmt != "mp4" or ((self.version, quality) in self.rendered and not fresh):
            return
        self.rendered.add((self.version, quality))
        self.renders += 1


Call = Callable[[str, dict[str, Any]], Awaitable[CallToolResult]]


def structured(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def remember(intent: Intent, tool: str, out: dict[str, Any]) -> None:
    """Every answer about a handle is that handle's own result, each time it is given."""
    assert out["status"] == "completed", out
    handle = out["request_id"]
    assert handle, out
    if tool == "generate":
        facts: tuple[Any, ...] = (out["reply"], tuple(out["changes"]))
    else:
        facts = (out["render_id"], out["file"], out.get("folder"))
    earlier = intent.results.setdefault(handle, (tool, facts))
    assert earlier == (tool, facts), (handle, earlier, facts)


async def finish(
    call: Call, intent: Intent, tool: str, args: dict[str, Any], *, by_id: bool
) -> dict[str, Any]:
    """Call `tool`; while it answers that the work goes on, wait as told (the same
    arguments, or only its handle) until it is done; the final answer, remembered.

    When the server found no sign that a message whose answer was lost ever arrived, it
    offers to send it with `again: true`; the agent takes the offer (once)."""
    handle: str | None = None
    offered = False
    for _ in range(MOST_CALLS):
        result = await call(tool, {"request_id": handle} if handle and by_id else args)
        if not offered and result.is_error and OFFER in text_of(result):
            offered, handle, args = True, None, {**args, "again": True}
            continue
        out = structured(result)
        assert handle in (None, out["request_id"]), (handle, out)  # its own work's answer
        handle = out["request_id"]
        if out["status"] not in WAITING:
            break
    remember(intent, tool, out)
    return out


async def both(call: Call, tool: str, first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """Two calls in flight together; the handles they answer with."""
    handles: list[str] = []

    async def one(args: dict[str, Any]) -> None:
        handles.append(structured(await call(tool, args))["request_id"])

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(one, first)
        tasks.start_soon(one, second)
    return handles


def expect_nothing_to_export(result: CallToolResult) -> None:
    """Nothing to export (or hand off) yet: the timeline has no clips."""
    assert result.is_error and "the timeline has no clips" in text_of(result), text_of(result)


async def play(call: Call, sandbox: Any, intent: Intent, step: Step) -> None:
    """One step of an agent: its calls, and what it meant by them."""
    kind = step[0]
    if kind == "say":
        _, n, flag, by_id = step
        args: dict[str, Any] = {"message": WORDS[n]}
        if flag:
            args[flag] = True
        if flag or (n, intent.project) not in intent.returned:
            intent.send(new_project=flag == "new_project")
        await finish(call, intent, "generate", args, by_id=by_id)
        if flag != "new_project":  # its words are another request's (`new_project` too)
            intent.answered(n)
    elif kind == "named":
        _, request_id, n, by_id = step
        args = {"message": WORDS[n], "request_id": request_id}
        if intent.named.get(request_id, n) != n:
            result = await call("generate", args)
            assert result.is_error and "other words" in text_of(result), text_of(result)
            return
        if request_id not in intent.named:
            intent.named[request_id] = n
            intent.send()
        await finish(call, intent, "generate", args, by_id=by_id)
    elif kind == "wait":
        if not intent.results:
            return
        handles = sorted(intent.results)
        handle = handles[step[1] % len(handles)]
        tool = intent.results[handle][0]
        await finish(call, intent, tool, {"request_id": handle}, by_id=True)
    elif kind == "twice":  # two identical calls in flight together are one job
        args = {"message": WORDS[step[1]], "again": True}
        intent.send()
        handles = await both(call, "generate", args, args)
        assert handles[0] == handles[1], handles
        await finish(call, intent, "generate", {"request_id": handles[0]}, by_id=True)
        intent.answered(step[1])
    elif kind == "pair":  # two variations at once, each with its own id: two sends
        ids = [f"v-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        handles = await both(
            call, "generate", *({"message": WORDS[step[1]], "request_id": i} for i in ids)
        )
        assert sorted(handles) == sorted(ids)
        intent.send()
        intent.send()
        for handle in handles:
            await finish(call, intent, "generate", {"request_id": handle}, by_id=True)
    elif kind == "export":
        _, fmt, quality, fresh, by_id = step
        args = {"format": fmt, "quality": quality, "fresh": fresh}
        if not intent.video:
            expect_nothing_to_export(await call("export", args))
            return
        intent.render(fmt, quality, fresh=fresh)
        await finish(call, intent, "export", args, by_id=by_id)
    elif kind == "export_named":
        _, request_id, quality, by_id = step
        args = {"quality": quality, "request_id": request_id}
        bound = intent.exports_named.get(request_id)
        if bound is not None and quality not in (bound, "high"):  # "high" is the default
            result = await call("export", args)
            assert result.is_error and "other words" in text_of(result), text_of(result)
            return
        if bound is None:
            if not intent.video:
                expect_nothing_to_export(await call("export", args))
                return
            intent.exports_named[request_id] = quality
            intent.render("mp4", quality, fresh=False)
        await finish(call, intent, "export", args, by_id=by_id)
    elif kind == "export_twice":
        args = {"quality": step[1], "fresh": True}
        if not intent.video:
            return
        intent.render("mp4", step[1], fresh=True)
        handles = await both(call, "export", args, args)
        assert handles[0] == handles[1], handles
        await finish(call, intent, "export", {"request_id": handles[0]}, by_id=True)
    else:  # a gateway that loses the answer after the backend took the request
        _, route, answer = step
        if route == "run_sse":
            args, tool = {"message": WORDS[0], "again": True}, "generate"
            intent.send()
            intent.answered(0)
        elif not intent.video:
            return  # nothing to render: the fault would wait for a later request
        else:
            args, tool = {"fresh": True}, "export"
            intent.render("mp4", "high", fresh=True)
            # The status reads that follow fail too, at first.
            sandbox.control.fault("server_error", route="render_status", times=2, status=503)
        if answer == "hold":
            sandbox.control.fault("hold", route=route, seconds=2.5)
        else:
            sandbox.control.fault("gateway_after", route=route, status=answer)
        await finish(call, intent, tool, args, by_id=False)


def check(sandbox: Any, intent: Intent, steps: list[Step]) -> None:
    """The sandbox's own counts: messages taken, credits spent, renders started."""
    stats = sandbox.control.stats()
    assert len(stats["messages"]) == intent.sends, steps
    # Taken: spent, or held while the backend finishes (a recovered answer can come as
    # soon as the clip lands, before the rest of the generation).
    taken = [INITIAL_CREDITS - b["available"] for b in stats["credits"].values()]
    assert sum(taken) == CLIP_COST * intent.sends, (taken, steps)
    assert stats["renders_started"] == intent.renders, steps


def fresh_world(sandbox: Any, **timings: float) -> None:
    sandbox.control.reset()
    sandbox.control.set(
        heartbeat_interval=0.05,
        initial_credits=INITIAL_CREDITS,
        generation_cost=CLIP_COST,
        **timings,
    )


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(st.one_of(STEPS, HELD), min_size=1, max_size=6))
async def test_sends_and_renders_are_the_intended_ones(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch, steps: list[Step]
) -> None:
    # A client that waits 1 s for an answer, behind a gateway that holds it 2.5 s.
    monkeypatch.setattr(client_module, "CALL_DEADLINES", Deadlines(attempt=1.0, total=2.0))
    # Work outlasts a call's budget, so the agent is told to wait (the budget is also what
    # a request to the sandbox may take, so not much shorter on a loaded machine).
    fresh_world(sandbox, generation_seconds=1.2, edit_seconds=0.5, render_seconds=1.2)
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    intent = Intent()
    async with connect(make_settings(folder, sandbox.url, tool_timeout=1.0)) as session:
        for step in steps:
            await play(session.call, sandbox, intent, step)
    check(sandbox, intent, steps)


class Served:
    """A served `nemo-mcp` process over loopback HTTP, and an MCP client on it; killed
    with SIGKILL and started again on the same state folder and port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.port = 0
        self.session: Session | None = None
        self.stack = contextlib.AsyncExitStack()

    async def start(self) -> None:
        self.process, self.port = run_http(self.env, self.log, port=self.port or None)
        await anyio.to_thread.run_sync(wait_listening, self.process, self.port, self.log)
        client = Client(f"http://127.0.0.1:{self.port}/mcp")
        await self.stack.enter_async_context(client)
        tools = await client.list_tools()
        schemas = {t.name: t.output_schema for t in tools.tools}
        self.session = Session(client=client, schemas=schemas)  # type: ignore[arg-type]

    async def call(self, tool: str, args: dict[str, Any]) -> CallToolResult:
        assert self.session is not None
        return await self.session.call(tool, args)

    async def close(self) -> None:
        """The client closed (a dead server may make it complain), the process ended."""
        with contextlib.suppress(Exception):
            await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()
        self.session = None
        if self.process.poll() is None:
            end(self.process)

    async def killed_during(self, tool: str, args: dict[str, Any], delay: float) -> bool:
        """Make the call and kill the server `delay` seconds into it, then start it
        again; whether the call had answered before the kill (it is then not asked again)."""
        answered: list[CallToolResult] = []

        async def calling() -> None:
            with contextlib.suppress(Exception):  # the connection dies under it
                answered.append(await self.call(tool, args))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(calling)
            await anyio.sleep(delay)
            kill(self.process.pid)
            tasks.cancel_scope.cancel()  # the agent's call failed with its connection
        await self.close()
        await self.start()
        return bool(answered) and structured(answered[0])["status"] == "completed"


@asynccontextmanager
async def served(env: dict[str, str], log: Path) -> AsyncIterator[Served]:
    server = Served(env, log)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def play_or_kill(server: Served, sandbox: Any, intent: Intent, step: Step) -> None:
    if step[0] != "kill":
        await play(server.call, sandbox, intent, step)
        return
    _, what, n, quality, delay = step
    event(f"a kill {delay} s into {what}")
    if what == "say":
        tool, args = "generate", {"message": WORDS[n], "again": True}
        intent.send()
        intent.answered(n)
    elif not intent.video:
        return
    else:
        tool, args = "export", {"quality": quality, "fresh": True}
        intent.render("mp4", quality, fresh=True)
    if await server.killed_during(tool, args, delay):
        return  # the answer arrived before the kill: the agent has it
    # The agent's call failed with the connection: it asks the same again, and waits.
    await finish(server.call, intent, tool, args, by_id=False)


@needs_proc
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    before=st.lists(st.one_of(STEPS, KILLS), max_size=2),
    killed=KILLS,
    after=st.lists(st.one_of(STEPS, KILLS), max_size=2),
)
async def test_sends_and_renders_are_the_intended_ones_across_kills(
    tmp_path: Path, sandbox: Any, before: list[Step], killed: Step, after: list[Step]
) -> None:
    """Calls through a served process that is killed mid-call (SIGKILL, at least once)
    and started again on the same state folder; the client reconnects and asks again as
    an agent does."""
    steps = [FIRST, *before, killed, *after]
    # Work outlasts the kill (at most 0.6 s into a call) and the call's own budget.
    fresh_world(sandbox, generation_seconds=1.2, edit_seconds=0.6, render_seconds=1.2)
    folder = tmp_path / uuid.uuid4().hex
    folder.mkdir()
    env = server_env(folder, sandbox, NEMO_TOOL_TIMEOUT="1.0")
    intent = Intent()
    async with served(env, folder / "server.log") as server:
        for step in steps:
            await play_or_kill(server, sandbox, intent, step)
    check(sandbox, intent, steps)
