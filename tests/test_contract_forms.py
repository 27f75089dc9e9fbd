"""The contract's leaner forms, met through the product: each answer the contract allows
without an optional part (a code beside the success envelope's error, a render's size, a
failure's reason, the session's user id, the gateway's error frame) gets the same clear,
fast answer as the richer form. The sandbox's switches for each are listed in
src/nemo_mcp/sandbox/SANDBOX.md."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_harness import connect, make_settings, text_of
from media_files import sample_mp4
from sandbox_client import Backend, generate, payloads, poll

PROMPT = "a video of a red lighthouse at dusk"
#: Every answer below comes well within this (no wait the contract does not ask for).
QUICK_ANSWER = 10.0


def sent_messages(sandbox: Any) -> int:
    return len(sandbox.control.stats()["messages"])


@pytest.mark.parametrize("error_status", ["http", "ok"])
async def test_out_of_credits_in_the_documented_success_error(
    tmp_path: Path, sandbox: Any, error_status: str
) -> None:
    """`{"success": false, "error": "..."}` with no code (HTTP 402, or 200): still out of
    credits, with the registration link, never "export is blocked on the free plan"."""
    sandbox.control.set(
        envelope="success", success_error_code=False, error_status=error_status, initial_credits=0
    )
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        started = time.monotonic()
        refused = await session.call("generate", {"message": PROMPT})
        took = time.monotonic() - started
    text = text_of(refused)
    assert refused.is_error and took < QUICK_ANSWER, text
    assert "Out of credits" in text and "register?bind=anon_" in text, text
    assert "free plan" not in text
    assert sent_messages(sandbox) == 1


@pytest.mark.parametrize("error_status", ["http", "ok"])
async def test_an_expired_token_in_the_documented_success_error_is_renewed_silently(
    tmp_path: Path, sandbox: Any, error_status: str
) -> None:
    sandbox.control.set(envelope="success", success_error_code=False, error_status=error_status)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        first = await session.call("credits")
        sandbox.control.fault("token_expired", route="credits")
        again = await session.call("credits")
    assert not first.is_error and not again.is_error, text_of(again)
    assert sandbox.control.stats()["tokens_issued"] == 2  # renewed once, with the same id


@pytest.mark.parametrize("error_status", ["http", "ok"])
async def test_a_lost_session_in_the_documented_success_error_is_said_plainly(
    tmp_path: Path, sandbox: Any, error_status: str
) -> None:
    sandbox.control.set(envelope="success", success_error_code=False, error_status=error_status)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("timeline")
        sandbox.control.fault("session_lost", route="state")
        lost = await session.call("timeline")
    text = text_of(lost)
    assert lost.is_error and "timeline is gone" in text and "new empty project" in text, text
    assert sandbox.control.stats()["sessions_created"] == 2


async def test_a_render_status_without_size_or_duration_still_saves_the_video(
    tmp_path: Path, sandbox: Any
) -> None:
    for shape in ("bare", "success"):
        sandbox.control.reset()
        sandbox.control.set(
            render_status=shape,
            render_output_facts=False,
            generation_seconds=0.2,
            render_seconds=0.3,
            heartbeat_interval=0.05,
        )
        out = tmp_path / shape
        out.mkdir()
        async with connect(make_settings(out, sandbox.url)) as session:
            made = await session.call("generate", {"message": PROMPT})
            assert not made.is_error, text_of(made)
            exported = await session.call("export")
            while exported.structured_content["status"] in ("rendering", "queued"):  # type: ignore[index]
                exported = await session.call("export")
        assert not exported.is_error, text_of(exported)
        saved = Path(exported.structured_content["file"])  # type: ignore[index]
        assert saved.is_file() and saved.read_bytes()[4:8] == b"ftyp"
        assert sandbox.control.stats()["renders_started"] == 1


async def test_a_failed_render_without_a_reason_is_one_clear_sentence(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(render_failure_reason=False, generation_seconds=0.2, render_seconds=0.2)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        made = await session.call("generate", {"message": PROMPT})
        assert not made.is_error, text_of(made)
        sandbox.control.fault("render_fail", route="render_start")
        exported = await session.call("export")
        while not exported.is_error and exported.structured_content["status"] in (  # type: ignore[index]
            "rendering",
            "queued",
        ):
            exported = await session.call("export")
    text = text_of(exported)
    assert "None" not in text and "null" not in text, text
    assert "fail" in text.lower(), text
    assert sandbox.control.stats()["renders_started"] == 1


@pytest.mark.parametrize("form", ["error", "adk"])
async def test_a_model_failure_in_either_stream_form_is_said_and_not_resent(
    tmp_path: Path, sandbox: Any, form: str
) -> None:
    sandbox.control.set(generation_seconds=0.2)
    sandbox.control.fault(
        "error_frame", route="run_sse", message="the model is overloaded", form=form
    )
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        started = time.monotonic()
        result = await session.call("generate", {"message": PROMPT})
        took = time.monotonic() - started
    text = text_of(result)
    assert took < QUICK_ANSWER and "the model is overloaded" in text, text
    assert sent_messages(sandbox) == 1 and sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_a_session_answer_without_user_id_keeps_the_registration_link(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(session_user_id=False, initial_credits=0)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        refused = await session.call("generate", {"message": PROMPT})
    text = text_of(refused)
    (user,) = sandbox.control.stats()["credits"]
    assert refused.is_error and f"register?bind={user}" in text, text


@pytest.mark.parametrize(
    ("status", "words", "kind"),
    [
        (402, "insufficient credits: 0 available, 100 needed", "CreditsError"),
        (402, "free plan export blocked", "PlanError"),
        (200, "token expired", "AuthError"),
        (200, "session not found: 77", "SessionNotFoundError"),
        (200, "unsupported file type: a.exe", "UnsupportedFileError"),
        (200, "file too large: a.mp4 is over the 200 MB limit", "FileTooLargeError"),
        (200, "X-Client-Id header is required", "ClientIdError"),
        (200, "something else went wrong", "BackendError"),
        # A gateway's status is its own meaning, whatever the words say.
        (503, "credits service unavailable", "ServerError"),
        (429, "session not found", "RateLimitError"),
    ],
)
def test_a_refusal_without_a_code_is_read_by_its_words(status: int, words: str, kind: str) -> None:
    import json

    from nemo_mcp.backend.envelope import read_envelope

    body = json.dumps({"success": False, "error": words}).encode()
    with pytest.raises(Exception) as caught:
        read_envelope(status, body)
    assert type(caught.value).__name__ == kind


async def test_the_backends_own_type_and_size_refusals_name_what_to_do(
    tmp_path: Path, sandbox: Any
) -> None:
    """4001 (a link the client cannot check) and 4002 (the backend's limit below the
    client's): the accepted formats; the limit, compress or trim. Each sent once."""
    settings = make_settings(tmp_path, sandbox.url)
    clip = settings.upload_dirs[0] / "clip.mp4"
    clip.write_bytes(sample_mp4().read_bytes())
    async with connect(settings) as session:
        kind = await session.call("upload", {"sources": ["https://cdn.example.test/a.exe"]})
        sandbox.control.set(upload_limit_bytes=1000)
        size = await session.call("upload", {"sources": [str(clip)]})
    assert kind.is_error and "Accepted: mp4, mov" in text_of(kind), text_of(kind)
    assert size.is_error and "0.001 MB limit" in text_of(size), text_of(size)
    assert "Compress or trim it" in text_of(size)
    assert sandbox.control.stats()["requests"]["upload"] == 2


# The switches themselves: each lean form really lacks its part on the wire. ------------------
def reached(backend: Backend, render_id: str, status: str) -> dict[str, Any]:
    """The render's status (success shape) once it reads `status`."""

    def read() -> dict[str, Any] | None:
        data = backend.http.get(f"/api/render/proxy/lambda/{render_id}").json()["data"]
        return dict(data) if data["status"] == status else None

    return dict(poll(read, 30))


def test_the_lean_forms_on_the_wire(sandbox: Any, backend: Backend) -> None:
    sandbox.control.set(
        envelope="success",
        success_error_code=False,
        session_user_id=False,
        render_output_facts=False,
        render_failure_reason=False,
        render_status="success",
    )
    backend.login()
    r = backend.http.post(
        "/api/tasks/me/with-session/nemo_agent", json={"task_name": "project", "language": "en"}
    )
    assert set(r.json()["data"]) == {"task_id", "session_id"}
    sid = r.json()["data"]["session_id"]
    r = backend.http.post("/api/auth/anonymous-token", headers={"X-Client-Id": backend.client_id})
    assert r.status_code == 429 and r.json() == {"success": False, "error": r.json()["error"]}
    assert "Retry-After" not in r.headers
    generate(backend, sid, "a red lighthouse")
    assert backend.render(sid, backend.draft(sid), "render_lean").status_code == 200
    done = reached(backend, "render_lean", "completed")
    assert "outputUrl" in done and not {"size", "duration"} & set(done)
    sandbox.control.fault("render_fail", route="render_start")
    assert backend.render(sid, backend.draft(sid), "render_failing").status_code == 200
    failed = reached(backend, "render_failing", "failed")
    assert "error" not in failed


def test_the_adk_failure_event_on_the_wire(sandbox: Any, backend: Backend) -> None:
    sid = backend.ready()
    raw = backend.send(
        sid, "a red lighthouse", headers={"X-Sandbox-Fault": "error_frame;form=adk;code=503"}
    ).read()
    last = payloads(raw)[-1]
    assert last["errorCode"] == "503" and "overloaded" in last["errorMessage"]
    assert "error" not in last and last["author"] == "nemo_agent"


def test_the_sandbox_rule_table_names_real_tests() -> None:
    """Every test the rule table (src/nemo_mcp/sandbox/SANDBOX.md) names exists, with
    every fault-matrix row and parameter it names; every switch it names is a setting."""
    from nemo_mcp.sandbox import config

    root = Path(__file__).resolve().parents[1]
    table = (root / "src" / "nemo_mcp" / "sandbox" / "SANDBOX.md").read_text(encoding="utf-8")
    named = re.findall(r"`(test_\w+)::(test_\w+)(?:\[([^\]]*)\])?`", table)
    assert len(named) > 60
    for module, name, params in named:
        source = (root / "tests" / f"{module}.py").read_text(encoding="utf-8")
        assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{module}::{name}"
        for row in filter(None, re.split(r",\s*", params)):
            if "*" not in row and module == "test_faults":
                assert f'"{row}": Row(' in source, f"{module}::{name}[{row}]"
    switches = set(re.findall(r"`(\w+)=", table))
    faults = set(re.findall(r"fault `(\w+)", table))
    assert switches <= set(config.SandboxConfig.model_fields) | {"retry_after", "form"}
    assert faults <= set(config.FAULTS)
