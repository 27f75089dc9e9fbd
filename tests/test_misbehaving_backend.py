"""A backend gone wrong: huge answers, answers that drip, answers that never come.

The sandbox's `huge_body`, `drip` and `never_answer` faults, then the client
against them route by route, then every tool through the SDK's `Client`: each
answers within its budget (`tool_timeout`) whatever the backend does, a hung
call holds up nothing unrelated, and a 300 MB answer leaves the server's memory
as it was (measured in a server process of its own).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp_types import CallToolResult

from nemo_mcp.backend import render as renders
from nemo_mcp.backend.budget import host_of
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.retry import Deadlines
from nemo_mcp.backend.stream import StreamLimits, send_message
from nemo_mcp.errors import (
    AnswerTooLargeError,
    BackendTimeoutError,
    ServerError,
    StreamBrokenError,
)
from nemo_mcp.identity import load_identity
from nemo_mcp.sandbox.config import Fault
from nemo_mcp.sandbox.testing import SandboxServer
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore

from conftest import FAST_SANDBOX
from fakes import Sleeps
from mcp_harness import Session, connect, make_settings, text_of
from processes import needs_proc, server_env, stdio_server
from sandbox_client import Backend

MB = 1_000_000
BUDGET = 2.0
#: However loaded the machine, a tool's answer comes this soon after its budget.
MARGIN = 2.0


@pytest.fixture(scope="module")
def second_server() -> Iterator[SandboxServer]:
    with SandboxServer() as server:
        yield server


@pytest.fixture
def second(second_server: SandboxServer) -> Iterator[SandboxServer]:
    """A second sandbox, for faults that must not touch the first one's routes."""
    second_server.control.reset()
    second_server.control.set(**FAST_SANDBOX)
    yield second_server


@asynccontextmanager
async def nemo(tmp_path: Path, url: str) -> AsyncIterator[NemoClient]:
    """A client on `url` whose waits between retries are recorded, not slept."""
    settings = Settings(api_url=url, home=tmp_path / "home", output_dir=tmp_path / "out")
    client = NemoClient(
        settings,
        load_identity(skill="ai-generator-generator"),
        StateStore(settings.home, url),
        sleep=Sleeps(),
    )
    async with client:
        yield client


async def until(check: Any, seconds: float = 10.0) -> None:
    """Poll the sandbox (a server of its own: no event to wait on) until `check()` holds."""
    with anyio.fail_after(seconds):
        while not check():  # noqa: ASYNC110
            await anyio.sleep(0.02)


# -- the faults themselves ----------------------------------------------------------------------


def test_huge_body_is_the_real_answer_padded(backend: Backend, sandbox: SandboxServer) -> None:
    backend.login()
    sandbox.control.fault("huge_body", route="credits", mb=5)
    with backend.http.stream("GET", "/api/credits/balance/simple") as r:
        assert "content-length" not in r.headers  # chunked: the size is not announced
        raw = r.read()
    body = json.loads(raw)
    assert len(raw) == 5 * MB
    assert body["data"] == {"available": 100, "frozen": 0, "total": 100}
    assert set(body["padding"]) == {"x"}
    sandbox.control.fault("huge_body", route="credits", mb=2, content_length="true")
    r = backend.http.get("/api/credits/balance/simple")
    assert int(r.headers["content-length"]) == len(r.content) == 2 * MB


def test_huge_body_on_the_stream_is_a_refusal(backend: Backend, sandbox: SandboxServer) -> None:
    sid = backend.ready()
    sandbox.control.fault("huge_body", route="run_sse", mb=1)
    r = backend.send(sid, "a video of a lake")
    assert r.status_code == 503 and len(r.content) == MB
    assert json.loads(r.content)["code"] == 503
    assert sandbox.control.stats()["messages"] == []  # nothing was taken


def test_drip_sends_headers_then_a_byte_at_a_time(backend: Backend, sandbox: SandboxServer) -> None:
    backend.login()
    sandbox.control.fault("drip", route="credits", interval=0.005)
    start = time.monotonic()
    with backend.http.stream("GET", "/api/credits/balance/simple") as r:
        headers_after = time.monotonic() - start
        pieces = list(r.iter_raw())
    took = time.monotonic() - start
    body = b"".join(pieces)
    assert json.loads(body)["data"]["available"] == 100
    assert headers_after < 0.3 <= took  # about 75 bytes, 5 ms apart
    assert max(len(p) for p in pieces) <= 2  # one byte per send (h11 may join a pair)


def test_never_answer_holds_until_the_client_leaves_then_ends(
    backend: Backend, sandbox: SandboxServer
) -> None:
    backend.login()
    sandbox.control.fault("never_answer", route="credits")
    with (
        httpx.Client(base_url=sandbox.url, headers=backend.http.headers) as http,
        pytest.raises(httpx.ReadTimeout),
    ):
        http.get("/api/credits/balance/simple", timeout=httpx.Timeout(5.0, read=0.3))
    # The client left: the handler ends (no task left behind) and logs it.
    anyio.run(until, lambda: any(e["status"] == 499 for e in sandbox.control.requests()))
    assert backend.credits()["available"] == 100  # the fault fired once


@pytest.mark.parametrize(("name", "route"), [("huge_body", "file"), ("drip", "render_download")])
def test_answer_faults_stay_off_the_downloads(name: str, route: str) -> None:
    with pytest.raises(ValueError, match="cannot fire on route"):
        Fault(name, route=route)
    assert Fault("never_answer", route=route).applies_to(route)


# -- the client against them --------------------------------------------------------------------


async def _ready(client: NemoClient, sandbox: SandboxServer) -> str:
    """A finished generation and a started render; returns the render id."""
    sandbox.control.set(generation_seconds=0)
    await send_message(client, "a video of a harbour", lambda event: None)
    session = await client.session()
    draft = (await client.state()).state.draft

    render_id = renders.new_render_id()
    await renders.start_render(
        client,
        draft,
        render_id=render_id,
        session_id=session.session_id,
        output={},
        sent_before=False,
    )
    return render_id


@pytest.mark.parametrize(
    ("route", "cap"),
    [
        ("anonymous_token", "4 MiB"),
        ("session", "4 MiB"),
        ("credits", "64 KiB"),
        ("state", "4 MiB"),
        ("claim_token", "4 MiB"),
        ("render_status", "64 KiB"),
        ("upload", "4 MiB"),
    ],
)
async def test_every_json_route_is_read_under_its_cap(
    tmp_path: Path, sandbox: SandboxServer, route: str, cap: str
) -> None:
    async with nemo(tmp_path, sandbox.url) as client:
        # A new client asks for its token and its session with its first calls.
        if route not in ("anonymous_token", "session"):
            await client.session()
        render_id = await _ready(client, sandbox) if route == "render_status" else ""
        sandbox.control.fault("huge_body", route=route, times=None, mb=300)
        start = time.monotonic()
        with pytest.raises(AnswerTooLargeError) as caught:
            if route == "anonymous_token":
                # Once: the token was issued before its answer was lost, so a second
                # request would be refused (one token per client every 7 days).
                await client.request(
                    "POST",
                    "/api/auth/anonymous-token",
                    headers={"X-Client-Id": await client.client_id()},
                    idempotent=False,
                    auth=False,
                )
            elif route == "credits":
                await client.credits()
            elif route in ("session", "state"):
                await client.state()
            elif route == "claim_token":
                await client.claim_link()
            elif route == "render_status":
                await renders.render_status(client, render_id)
            else:
                await client.upload_urls(["https://cdn.example.test/a.png"])
        took = time.monotonic() - start
    assert f"sent an answer of more than {cap}" in str(caught.value)
    assert host_of(sandbox.url) in str(caught.value)
    assert took < 10  # three attempts of a few MiB each, not 900 MB
    fired = sandbox.control.stats()["faults_fired"]["huge_body"]
    # Reads, and the free session, are retried as the policy says; the token and upload
    # requests here are not.
    assert fired == (1 if route in ("anonymous_token", "upload") else 3)


async def test_a_huge_refusal_of_the_message_is_a_server_error(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    async with nemo(tmp_path, sandbox.url) as client:
        await client.session()
        sandbox.control.fault("huge_body", route="run_sse", mb=300)
        with pytest.raises(ServerError) as caught:
            await send_message(client, "a video of a lake", lambda event: None)
    assert caught.value.http_status == 503
    assert "error page of more than 4 MiB" in str(caught.value)
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_a_stream_that_never_opens_or_drips_is_bounded(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    limits = StreamLimits(open=0.5, read=0.5, idle=30.0)
    async with nemo(tmp_path, sandbox.url) as client:
        await client.session()
        sandbox.control.fault("never_answer", route="run_sse")
        start = time.monotonic()
        with pytest.raises(BackendTimeoutError, match="may have reached it"):
            await send_message(client, "a video of a lake", lambda event: None, limits=limits)
        never = time.monotonic() - start
        sandbox.control.fault("drip", route="run_sse", interval=0.05)
        start = time.monotonic()
        with pytest.raises(StreamBrokenError, match="trickle"):
            await send_message(client, "a video of a pond", lambda event: None, limits=limits)
        drip = time.monotonic() - start
    assert 0.4 <= never < 2.5 and 0.4 <= drip < 2.5
    assert sandbox.control.stats()["requests"]["run_sse"] == 2  # each message sent once


async def test_a_call_that_never_answers_ends_at_its_deadline(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    async with nemo(tmp_path, sandbox.url) as client:
        await client.token()
        sandbox.control.fault("never_answer", route="credits", times=None)
        start = time.monotonic()
        with pytest.raises(BackendTimeoutError, match="did not answer within"):
            await client.request(
                "GET",
                "/api/credits/balance/simple",
                idempotent=True,
                deadlines=Deadlines(attempt=0.3, total=5.0),
            )
        assert 0.8 <= time.monotonic() - start < 3.0  # three attempts of 0.3 s
    await until(
        lambda: sum(e["status"] == 499 for e in sandbox.control.requests()) == 3
    )  # and the sandbox saw each one end


# -- every tool, through the SDK's Client ----------------------------------------------------------


async def timed_call(
    session: Session, name: str, args: dict[str, Any]
) -> tuple[CallToolResult, float]:
    start = time.monotonic()
    result = await session.call(name, args)
    return result, time.monotonic() - start


@pytest.mark.parametrize("fault", ["drip", "never_answer"])
async def test_every_tool_answers_within_its_budget_and_holds_up_nothing_else(
    tmp_path: Path, sandbox: SandboxServer, second: SandboxServer, fault: str
) -> None:
    """Each tool on its own server, all at once: the first sandbox hangs credits, uploads
    and the message stream; the second hangs the state (which timeline and export read).
    Meanwhile other calls, on the same servers, answer at once."""
    params = {"interval": 1.0} if fault == "drip" else {}
    second.control.set(generation_seconds=0)
    async with AsyncExitStack() as stack:

        async def server(name: str, url: str) -> Session:
            (tmp_path / name).mkdir()
            settings = make_settings(tmp_path / name, url, tool_timeout=BUDGET)
            return await stack.enter_async_context(connect(settings))

        sessions = {
            "credits": await server("credits", sandbox.url),
            "upload": await server("upload", sandbox.url),
            "generate": await server("generate", sandbox.url),
            "timeline": await server("timeline", second.url),
            "export": await server("export", second.url),
        }
        for name in ("credits", "upload", "generate", "timeline"):
            assert not (await sessions[name].call("timeline")).is_error  # token and session
        made = await sessions["export"].call("generate", {"message": "a video of a lighthouse"})
        assert made.structured_content["status"] == "completed"  # type: ignore[index]

        for route in ("credits", "upload", "run_sse"):
            sandbox.control.fault(fault, route=route, times=None, **params)
        second.control.fault(fault, route="state", times=None, **params)
        calls = {
            "credits": {},
            "timeline": {},
            "upload": {"sources": ["https://cdn.example.test/clip.mp4"]},
            "export": {},
            "generate": {"message": "add a title 'Harbour'"},
        }
        answers: dict[str, tuple[CallToolResult, float]] = {}

        async def call(name: str) -> None:
            answers[name] = await timed_call(sessions[name], name, calls[name])

        def hanging(server: SandboxServer) -> int:
            return int(server.control.stats()["faults_fired"].get(fault, 0))

        async with anyio.create_task_group() as tasks:
            for name in calls:
                tasks.start_soon(call, name)
            # Once credits, the upload, the timeline and the export are each stuck on their
            # backend call: the same servers still answer other calls at once.
            await until(lambda: hanging(sandbox) >= 2 and hanging(second) >= 2)
            beside_credits = await timed_call(sessions["credits"], "timeline", {})
            beside_timeline = await timed_call(sessions["timeline"], "credits", {})
            still_waiting = {"credits", "timeline"} - set(answers)

    assert still_waiting == {"credits", "timeline"}
    for result, took in (beside_credits, beside_timeline):
        assert not result.is_error, text_of(result)
        assert took < 1.0
    for name, (_, took) in answers.items():
        assert took < BUDGET + MARGIN, f"{name} took {took:.1f} s"
    first, other = host_of(sandbox.url), host_of(second.url)
    expected = {
        "credits": (first, "reading the credits"),
        "upload": (first, "uploading the URLs"),
        "timeline": (other, "reading the timeline"),
    }
    for name, (host, what) in expected.items():
        result = answers[name][0]
        text = text_of(result)
        assert result.is_error, f"{name}: {text}"
        assert f"NemoVideo at {host} did not answer within 2 s ({what})" in text
        assert ("may have reached it" in text) == (name == "upload")
        assert "NEMO_API_URL" in text or "`timeline`" in text
    # The export is work that goes on (in the ledger, in the background): its answer within
    # the budget says it is still reading the timeline; it is not a failure yet.
    exporting = answers["export"][0]
    assert exporting.structured_content["status"] == "rendering", text_of(exporting)  # type: ignore[index]
    assert "reading the timeline" in text_of(exporting)
    running = answers["generate"][0]
    assert running.structured_content["status"] == "running", text_of(running)  # type: ignore[index]
    # Recorded in the ledger and running: it is sent once (after its evidence reads give up,
    # bounded), never twice.
    assert sandbox.control.stats()["requests"].get("run_sse", 0) <= 1


# -- memory ---------------------------------------------------------------------------------------


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak) and VmRSS (now) of `pid`, in kB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0])
    return fields


@needs_proc
async def test_a_300_mb_answer_leaves_the_server_memory_as_it_was(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    env = server_env(tmp_path, sandbox, NEMO_TOOL_TIMEOUT="30")
    async with stdio_server(env) as (client, pid):
        warm = await client.call_tool("timeline", {})  # token, session, every module loaded
        assert not warm.is_error, text_of(warm)
        before = memory_kb(pid)
        sandbox.control.fault("huge_body", route="state", times=None, mb=300)
        result = await client.call_tool("timeline", {})
        after = memory_kb(pid)
    peak_growth = (after["VmHWM"] - before["VmHWM"]) / 1000
    kept = (after["VmRSS"] - before["VmRSS"]) / 1000
    assert peak_growth < 100, f"peak memory grew by {peak_growth:.0f} MB"
    # The state has the largest cap (4 MiB); each of the three reads stops there.
    assert result.is_error and "sent an answer of more than 4 MiB" in text_of(result)
    assert sandbox.control.stats()["faults_fired"]["huge_body"] == 3
    assert kept < 50, f"{kept:.0f} MB more memory held after the call"


@pytest.mark.parametrize("uri", ["nemo://timeline", "nemo://timeline.json"])
async def test_a_timeline_resource_answers_within_the_budget(
    tmp_path: Path, sandbox: SandboxServer, uri: str
) -> None:
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=BUDGET)
    async with connect(settings) as session:
        assert not (await session.call("timeline")).is_error  # token and session first
        sandbox.control.fault("never_answer", route="state", times=None)
        start = time.monotonic()
        read = await session.client.read_resource(uri)
        took = time.monotonic() - start
    text = read.contents[0].text  # type: ignore[union-attr]
    assert took < BUDGET + MARGIN, took
    assert f"did not answer within {BUDGET:g} s" in text and host_of(sandbox.url) in text, text
