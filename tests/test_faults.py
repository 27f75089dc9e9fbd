"""The fault matrix: every sandbox fault crossed with the tools it can reach.

Each row names the tool, the fault (route, how often, its parameters) and the
expected outcome: recovered silently, or a clear error telling the agent what
to do. Every row also counts what reached the backend: messages accepted,
`/run_sse` requests and renders started, never two for one request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.backend import retry as retry_module
from nemo_mcp.backend.retry import backoff
from nemo_mcp.settings import Settings

from mcp_harness import Session, connect, make_settings, text_of
from media_files import sample_mp4

#: Quicker than the shared defaults: the matrix has many rows.
QUICK = {"generation_seconds": 0.15, "edit_seconds": 0.1, "render_seconds": 0.15}


@dataclass(frozen=True)
class Row:
    """One fault against one tool, and what must come of it."""

    tool: str
    fault: str
    route: str
    times: int | None = 1
    params: dict[str, Any] = field(default_factory=dict)
    ok: bool = True
    words: tuple[str, ...] = ()
    messages: int | None = None
    run_sse: int | None = None
    renders: int | None = None
    #: A route that must have been asked exactly this often (no blind re-send).
    sent: tuple[str, int] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


ROWS: dict[str, Row] = {
    # credits ----------------------------------------------------------------------------
    "credits-token-expired": Row("credits", "token_expired", "credits"),
    "credits-429": Row("credits", "rate_limited", "credits", params={"retry_after": "0.1"}),
    "credits-5xx-burst": Row("credits", "server_error", "credits", times=2),
    "credits-5xx-always": Row(
        "credits",
        "server_error",
        "credits",
        times=None,
        ok=False,
        words=("server problem", "try again"),
    ),
    "credits-html-502": Row(
        "credits",
        "bad_gateway",
        "credits",
        times=None,
        ok=False,
        words=("502", "gateway", "try again"),
    ),
    "credits-slow": Row("credits", "slow", "credits", params={"delay": 0.3}),
    "credits-malformed-once": Row("credits", "malformed_json", "credits"),
    "credits-token-malformed": Row(
        "credits", "malformed_json", "anonymous_token", sent=("anonymous_token", 2)
    ),
    "credits-token-5xx-always": Row(
        "credits",
        "server_error",
        "anonymous_token",
        times=None,
        ok=False,
        words=("server problem", "try again"),
    ),
    # timeline ---------------------------------------------------------------------------
    # A session is free and empty until a message goes to it: its lost answer is asked again.
    "timeline-session-malformed": Row("timeline", "malformed_json", "session", sent=("session", 2)),
    "timeline-token-expired": Row("timeline", "token_expired", "state"),
    "timeline-session-lost": Row(
        "timeline",
        "session_lost",
        "state",
        ok=False,
        words=("session", "new empty project", "generate"),
    ),
    "timeline-malformed": Row(
        "timeline",
        "malformed_json",
        "state",
        times=None,
        ok=False,
        words=("not json", "try again"),
    ),
    # generate ---------------------------------------------------------------------------
    "generate-token-expired": Row("generate", "token_expired", "run_sse", messages=1, run_sse=2),
    "generate-session-lost": Row(
        "generate",
        "session_lost",
        "run_sse",
        ok=False,
        words=("session", "generate"),
        messages=0,
        run_sse=1,
    ),
    "generate-stream-drop": Row(
        "generate",
        "stream_drop",
        "run_sse",
        params={"after": 2},
        words=("connection dropped", "nothing was sent twice"),
        messages=1,
        run_sse=1,
    ),
    "generate-error-frame": Row(
        "generate",
        "error_frame",
        "run_sse",
        ok=False,
        words=("overloaded",),
        messages=1,
        run_sse=1,
    ),
    "generate-heartbeats-only": Row(
        "generate",
        "heartbeats_only",
        "run_sse",
        params={"duration": 3.0},
        ok=False,
        words=("not sent twice", "timeline"),
        messages=1,
        run_sse=1,
        settings={"stream_idle": 0.4, "recovery_delays": (0.1, 0.1, 0.1)},
    ),
    "generate-429": Row(
        "generate",
        "rate_limited",
        "run_sse",
        params={"retry_after": "0.1"},
        messages=1,
        run_sse=2,
    ),
    "generate-5xx": Row(
        "generate",
        "server_error",
        "run_sse",
        ok=False,
        words=("server error", "was lost", "not sent again", "again: true"),
        messages=0,
        run_sse=1,
    ),
    "generate-html-502": Row(
        "generate",
        "bad_gateway",
        "run_sse",
        ok=False,
        words=("502", "was lost", "not sent again", "again: true"),
        messages=0,
        run_sse=1,
    ),
    "generate-malformed": Row(
        "generate",
        "malformed_json",
        "run_sse",
        ok=False,
        words=("not json", "was lost", "not sent again", "again: true"),
        messages=0,
        run_sse=1,
    ),
    "generate-out-of-credits": Row(
        "generate",
        "out_of_credits",
        "run_sse",
        ok=False,
        words=("out of credits", "register"),
        messages=1,
        run_sse=1,
    ),
    "generate-state-5xx-burst": Row(
        "generate", "server_error", "state", times=2, messages=1, run_sse=1
    ),
    "generate-state-malformed": Row("generate", "malformed_json", "state", messages=1, run_sse=1),
    # upload -----------------------------------------------------------------------------
    "upload-token-expired": Row("upload", "token_expired", "upload"),
    "upload-session-lost": Row(
        "upload", "session_lost", "upload", ok=False, words=("session", "new empty project")
    ),
    "upload-429": Row("upload", "rate_limited", "upload", params={"retry_after": "0.1"}),
    "upload-5xx": Row(
        "upload", "server_error", "upload", ok=False, words=("server problem", "try again")
    ),
    "upload-html-502": Row("upload", "bad_gateway", "upload", ok=False, words=("502", "try again")),
    "upload-malformed": Row(
        "upload", "malformed_json", "upload", ok=False, words=("not json", "try again")
    ),
    # export -----------------------------------------------------------------------------
    "export-render-fails": Row(
        "export",
        "render_fail",
        "render_start",
        ok=False,
        words=("render failed", "export", "again"),
        renders=1,
    ),
    "export-blocked": Row(
        "export",
        "export_blocked",
        "render_start",
        ok=False,
        words=("free plan", "upgrade"),
        renders=0,
    ),
    "export-token-expired": Row("export", "token_expired", "render_start", renders=1),
    "export-start-5xx": Row("export", "server_error", "render_start", renders=1),
    "export-start-malformed": Row("export", "malformed_json", "render_start", renders=1),
    "export-session-lost": Row(
        "export",
        "session_lost",
        "render_start",
        ok=False,
        words=("session", "generate"),
        renders=0,
    ),
    "export-status-5xx-burst": Row("export", "server_error", "render_status", times=2, renders=1),
    "export-status-malformed": Row("export", "malformed_json", "render_status", renders=1),
    "export-status-slow": Row("export", "slow", "render_status", params={"delay": 0.3}, renders=1),
    "export-file-malformed": Row("export", "malformed_json", "file", renders=1),
    "export-claim-malformed": Row("export", "malformed_json", "claim_token", times=None, renders=1),
    "export-output-url-broken": Row("export", "output_url_broken", "file", renders=1),
    "export-claim-5xx": Row("export", "server_error", "claim_token", times=None, renders=1),
}

XFAIL: dict[str, str] = {}


def _rows() -> list[Any]:
    params = []
    for name, row in ROWS.items():
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[name])] if name in XFAIL else []
        params.append(pytest.param(row, id=name, marks=marks))
    return params


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real retry schedule, ten times faster: the matrix retries often, the rules stay."""
    monkeypatch.setattr(
        retry_module,
        "backoff",
        lambda attempt, retry_after=None: backoff(attempt, retry_after) / 10,
    )


def counts(sandbox: Any) -> tuple[int, int, int]:
    """(messages accepted, /run_sse requests, renders started) so far."""
    stats = sandbox.control.stats()
    return (
        len(stats["messages"]),
        int(stats["requests"].get("run_sse", 0)),
        int(stats["renders_started"]),
    )


async def _prepare(row: Row, session: Session, settings: Settings) -> dict[str, Any]:
    """Whatever the tool needs before the fault is armed; returns its arguments."""
    if row.route != "anonymous_token":
        await session.call("credits")  # a token exists before the fault
    if row.tool == "generate":
        return {"message": "a 10-second video of a city at night"}
    if row.tool == "upload":
        clip = settings.upload_dirs[0] / "clip.mp4"
        clip.write_bytes(sample_mp4().read_bytes())  # a real one: uploads are probed
        return {"sources": [str(clip)]}
    if row.tool == "export":
        made = await session.call("generate", {"message": "a short video of waves"})
        assert not made.is_error, text_of(made)
        return {}
    if row.tool == "timeline" and row.route != "session":
        await session.call("timeline")  # a session exists before the fault
    return {}


@pytest.mark.parametrize("row", _rows())
async def test_fault_matrix(tmp_path: Path, sandbox: Any, row: Row) -> None:
    sandbox.control.set(**QUICK)
    settings = make_settings(tmp_path, sandbox.url, **{"render_shortest": 0.1, **row.settings})
    async with connect(settings) as session:
        args = await _prepare(row, session, settings)
        messages0, runs0, renders0 = counts(sandbox)
        stats0 = sandbox.control.stats()
        tokens0 = stats0["tokens_issued"]
        sandbox.control.fault(row.fault, route=row.route, times=row.times, **row.params)
        result = await session.call(row.tool, args)
    text = text_of(result)
    messages, runs, renders = counts(sandbox)
    fired = sandbox.control.stats()["faults_fired"]
    assert fired.get(row.fault, 0) >= 1, f"the fault never fired: {fired}"
    assert result.is_error is (not row.ok), text
    for word in row.words:
        assert word.lower() in text.lower(), (word, text)
    assert "Traceback" not in text and 'File "' not in text
    if row.messages is not None:
        assert messages - messages0 == row.messages
    if row.run_sse is not None:
        assert runs - runs0 == row.run_sse
    if row.renders is not None:
        assert renders - renders0 == row.renders
    assert messages - messages0 <= 1 and renders - renders0 <= 1
    if row.sent is not None:
        route, times = row.sent
        asked = sandbox.control.stats()["requests"].get(route, 0) - stats0["requests"].get(route, 0)
        assert asked == times, (route, asked)
    if row.fault == "token_expired":
        assert sandbox.control.stats()["tokens_issued"] == tokens0 + 1
    if row.ok and row.tool == "export":
        assert result.structured_content["status"] == "completed"  # type: ignore[index]
        assert Path(result.structured_content["file"]).stat().st_size > 0  # type: ignore[index]
    if row.ok and row.tool == "generate":
        out = result.structured_content
        assert out["status"] == "completed" and out["raw_clip_ready"], out  # type: ignore[index]
        assert out["recovered"] is (row.fault == "stream_drop")  # type: ignore[index]


async def test_dropped_stream_then_later_edit_sends_only_the_edit(
    tmp_path: Path, sandbox: Any
) -> None:
    """After a recovered drop, the next request is sent once and the first is never repeated."""
    sandbox.control.set(initial_credits=500, **QUICK)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        sandbox.control.fault("stream_drop", route="run_sse", after=1)
        first = await session.call("generate", {"message": "a video of a harbour"})
        second = await session.call("generate", {"message": "add calm piano music"})
    assert not first.is_error and first.structured_content["recovered"], text_of(first)  # type: ignore[index]
    assert not second.is_error, text_of(second)
    texts = [m["text"] for m in sandbox.control.stats()["messages"]]
    assert texts == ["a video of a harbour", "add calm piano music"]
