"""`nemo-mcp demo` as a user runs it, and `nemo-mcp doctor` healthy and with each problem."""

from __future__ import annotations

import builtins
import hashlib
import importlib
import io
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp import doctor


def rendered_by_sandbox(sandbox: Any) -> bytes:
    """What a sandbox renders for the demo's conversation (renders are deterministic)."""
    from nemo_mcp import demo

    from sandbox_client import Backend, poll

    sandbox.control.set(initial_credits=300)  # the demo's: enough for its generation and edit
    backend = Backend(sandbox.url)
    try:
        sid = backend.ready()
        for text in (demo.PROMPT, demo.EDIT):
            backend.send(
                sid, text, headers={"X-Sandbox-Variant": "generation_seconds=0; edit_seconds=0"}
            )
        assert backend.credits()["available"] == 150  # both were done
        backend.render(sid, backend.draft(sid), "render_demo")
        poll(
            lambda: (
                backend.http.get("/api/render/proxy/lambda/render_demo").json()["status"]
                == "completed"
            ),
            60,
        )
        return backend.http.get("/api/render/proxy/render_demo/download").content
    finally:
        backend.close()


def test_demo_saves_the_file_the_sandbox_served(tmp_path: Path, sandbox: Any) -> None:
    out = tmp_path / "videos"
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("NEMO_TOKEN", None)
    done = subprocess.run(
        [sys.executable, "-m", "nemo_mcp", "demo", "--output-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    from nemo_mcp import demo

    saved = list((out / demo.DEFAULT_SKILL).glob("*.mp4"))  # the text-prompt skill's folder
    assert len(saved) == 1
    sheets = list((out / demo.DEFAULT_SKILL).glob("*-contact-sheet.jpg"))
    assert len(sheets) == 1 and f"Contact sheet: {sheets[0]}" in done.stdout
    # Byte for byte what the sandbox renders for the same conversation: the demo saved the
    # real render, not something else.
    expected = rendered_by_sandbox(sandbox)
    assert expected[4:8] == b"ftyp" and len(expected) > 10_000
    assert hashlib.sha256(saved[0].read_bytes()).digest() == hashlib.sha256(expected).digest()
    assert str(saved[0]) in done.stdout
    for step in (
        "1. credits",
        "2. generate",
        "3. generate",
        "4. timeline",
        "5. export",
        "... rendering",
    ):
        assert step in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert "nmv_usr_" not in done.stdout + done.stderr
    assert not (tmp_path / ".config" / "nemovideo").exists(), (
        "the demo must not touch the user's state"
    )


def test_a_failing_demo_says_why_in_one_sentence(tmp_path: Path) -> None:
    """The cause under the MCP client's task groups, never "unhandled errors in a TaskGroup"."""
    from nemo_mcp import demo
    from nemo_mcp.sandbox.config import SandboxConfig

    out = io.StringIO()
    broke = SandboxConfig(initial_credits=0, generation_seconds=0.2)  # generation refused
    assert demo.main(str(tmp_path), out, config=broke) == 1
    (line,) = [t for t in out.getvalue().splitlines() if t.startswith("Demo failed")]
    assert "TaskGroup" not in line and "sub-exception" not in line
    assert line == (
        f"Demo failed: the {demo.DEFAULT_SKILL} demo stopped: generate answered: Out of credits "
        "(the free trial's 100 credits are used up)."
    )
    assert "Traceback" not in out.getvalue()


def test_the_cause_of_a_missing_file_is_named() -> None:
    from nemo_mcp.demo import cause_of

    try:
        open("/nonexistent/inputs/script.docx")  # noqa: SIM115
    except OSError as err:
        missing = err
    # The builtin from Python 3.11; anyio brings the backport before it.
    groups = getattr(builtins, "BaseExceptionGroup", None)
    groups = groups or importlib.import_module("exceptiongroup").BaseExceptionGroup
    group = groups("unhandled errors in a TaskGroup", [missing])
    assert cause_of(group) == "/nonexistent/inputs/script.docx: no such file or directory"


def run_doctor(env: dict[str, str], **how: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = doctor.main(env, out=out, **how)
    return code, out.getvalue()


@pytest.fixture
def healthy_env(tmp_path: Path, sandbox: Any) -> dict[str, str]:
    return {
        "NEMO_API_URL": sandbox.url,
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
        "NEMO_UPLOAD_DIRS": str(tmp_path),
    }


def test_doctor_healthy(healthy_env: dict[str, str]) -> None:
    code, text = run_doctor(healthy_env)
    assert code == 0, text
    assert "all good" in text and "FAIL" not in text
    assert "no token yet" in text
    assert "[ok  ] exposure: local (stdio): one person at this computer" in text


TWO_USERS = "alice-secret-token-0123,bob-secret-token-4567"


@pytest.mark.parametrize(
    ("change", "how", "line"),
    [
        ({}, {"host": "0.0.0.0"}, "[FAIL] exposure: serving on 0.0.0.0 would open"),
        (
            {"NEMO_HTTP_TOKENS": TWO_USERS, "NEMO_TOKEN": "nmv_usr_bogus_token_123"},
            {},
            "[FAIL] exposure: NEMO_TOKEN is one NemoVideo account and NEMO_HTTP_TOKENS names 2",
        ),
        (
            {"NEMO_HTTP_TOKENS": TWO_USERS, "NEMO_HTTP_UPLOAD_ROOT": "{out}"},
            {},
            "[FAIL] exposure: NEMO_HTTP_UPLOAD_ROOT ({out}) overlaps NEMO_OUTPUT_DIR",
        ),
    ],
    ids=["network-without-tokens", "token-across-users", "uploads-over-outputs"],
)
def test_doctor_flags_a_dangerous_exposure(
    healthy_env: dict[str, str], change: dict[str, str], how: dict[str, Any], line: str
) -> None:
    change = {k: v.format(out=healthy_env["NEMO_OUTPUT_DIR"]) for k, v in change.items()}
    Path(healthy_env["NEMO_OUTPUT_DIR"]).mkdir(exist_ok=True)
    code, text = run_doctor({**healthy_env, **change}, **how)
    assert code == 1, text
    assert line.format(out=healthy_env["NEMO_OUTPUT_DIR"]) in text, text
    assert "fix: change the settings named above" in text
    assert "nmv_usr_bogus_token_123" not in text and "alice-secret" not in text


def test_doctor_reports_a_served_exposure_and_its_warnings(healthy_env: dict[str, str]) -> None:
    env = {**healthy_env, "NEMO_HTTP_TOKENS": "short,long-enough-secret-token-1"}
    code, text = run_doctor(env, host="0.0.0.0")
    assert code == 0, text
    assert "[ok  ] exposure: served (HTTP on 0.0.0.0 with NEMO_HTTP_TOKENS): 2 users" in text
    assert "uploads: http(s) URLs only" in text
    assert "[warn] exposure: plain HTTP on 0.0.0.0: bearer tokens travel in clear text" in text
    assert "[warn] NEMO_HTTP_TOKENS: a token is shorter than 16 characters" in text
    assert "[warn] NEMO_UPLOAD_DIRS: not used when served" in text
    assert "short" not in text.replace("shorter", "")


def test_doctor_checks_a_saved_token_without_printing_it(
    tmp_path: Path, sandbox: Any, healthy_env: dict[str, str]
) -> None:
    import anyio

    from mcp_harness import connect, make_settings

    async def first_use() -> None:
        settings = make_settings(tmp_path, sandbox.url, home=Path(healthy_env["NEMO_HOME"]))
        async with connect(settings) as session:
            await session.call("credits")

    anyio.run(first_use)
    code, text = run_doctor(healthy_env)
    assert code == 0, text
    assert "accepted; 100 credits available" in text
    token = next(Path(healthy_env["NEMO_HOME"]).glob("nemo-mcp/*/auth.json")).read_text()
    assert "nmv_usr_" not in text and token not in text


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"NEMO_API_URL": "ftp://x"}, "NEMO_API_URL must start with http"),
        ({"NEMO_API_URL": "http://127.0.0.1:9"}, "unreachable"),
        ({"NEMO_SKILL": "nope"}, "unknown skill"),
        ({"NEMO_TOKEN": "nmv_usr_bogus_token_123"}, "NEMO_TOKEN was refused"),
        ({"NEMO_UPLOAD_DIRS": "/no/such/folder"}, "is not a folder"),
        ({"NEMO_TOOL_TIMEOUT": "-1"}, "NEMO_TOOL_TIMEOUT must be above 0"),
    ],
)
def test_doctor_finds_each_problem(
    healthy_env: dict[str, str], change: dict[str, str], problem: str
) -> None:
    code, text = run_doctor({**healthy_env, **change})
    assert code == 1, text
    assert problem in text
    assert "nmv_usr_bogus_token_123" not in text


def test_doctor_finds_unsafe_state_permissions(tmp_path: Path, healthy_env: dict[str, str]) -> None:
    from nemo_mcp.state_files import AuthRecord, StateStore

    store = StateStore(Path(healthy_env["NEMO_HOME"]), healthy_env["NEMO_API_URL"])
    store.save_auth(AuthRecord(token="nmv_usr_x" * 4))
    auth = store.folder / "auth.json"
    os.chmod(auth, 0o644)
    code, text = run_doctor(healthy_env)
    assert code == 1 and f"chmod 600 {auth}" in text
    os.chmod(auth, stat.S_IRUSR | stat.S_IWUSR)
    os.chmod(store.folder, 0o755)
    code, text = run_doctor(healthy_env)
    assert code == 1 and f"chmod 700 {store.folder}" in text


def test_doctor_unwritable_output(healthy_env: dict[str, str], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, text = run_doctor({**healthy_env, "NEMO_OUTPUT_DIR": str(blocker)})
    assert code == 1 and "is not a folder" in text
