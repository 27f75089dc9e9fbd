"""No bearer token in any tool result, error or log line; claim tokens only in the browser link.

A whole realistic session (all five tools, faults included) is recorded by
the `transcript` fixture; the tokens are read from the state folder and
searched for everywhere. Files that hold a token are private (0600).
"""

from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path
from typing import Any

import httpx
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from pydantic import SecretStr

from nemo_mcp.server import create_server

from conftest import Transcript
from mcp_harness import connect, make_settings, text_of
from media_files import sample_mp4
from processes import server_env

_CLAIM = re.compile(r"clm_[A-Za-z0-9_\-.%]+")
_LINK = "https://web.test/workspace/claim?ct="


def bearer_tokens(home: Path) -> set[str]:
    return {json.loads(p.read_text())["token"] for p in home.glob("nemo-mcp/*/auth.json")}


def assert_private(home: Path, secrets: set[str]) -> None:
    """Files holding a secret are 0600 (and their folder 0700); no other file holds one."""
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        raw = path.read_text(errors="replace")
        if any(s in raw for s in secrets):
            assert path.name == "auth.json", path
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, oct(path.stat().st_mode)
            assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0, oct(
                path.parent.stat().st_mode
            )


def assert_claims_only_in_links(transcript: Transcript) -> list[str]:
    """Every claim token shown sits right after the browser link's `ct=`; none elsewhere."""
    shown = []
    for text in transcript.results:
        for match in _CLAIM.finditer(text):
            assert text[: match.start()].endswith(_LINK), text[
                max(0, match.start() - 60) : match.end()
            ]
            shown.append(match.group())
    for text in transcript.errors + transcript.logs:
        assert "clm_" not in text, text
    for claim in shown:
        assert claim not in "\n".join(transcript.errors + transcript.logs)
    return shown


async def test_no_token_anywhere_in_a_whole_session(
    tmp_path: Path, sandbox: Any, transcript: Transcript
) -> None:
    sandbox.control.set(initial_credits=1000, generation_seconds=0.3, render_seconds=0.3)
    settings = make_settings(tmp_path, sandbox.url)
    clip = settings.upload_dirs[0] / "clip.mp4"
    clip.write_bytes(sample_mp4().read_bytes())  # a real one: uploads are probed
    seen: set[str] = set()
    control = sandbox.control
    steps: list[tuple[str, dict[str, Any], tuple[str, str, dict[str, Any]] | None]] = [
        ("credits", {}, None),
        ("upload", {"sources": [str(clip), "https://example.com/photo.jpg"]}, None),
        ("generate", {"message": "a video of a city at night"}, None),
        ("timeline", {}, None),
        ("generate", {"message": "add lo-fi music"}, ("stream_drop", "run_sse", {"after": 1})),
        ("credits", {}, ("token_expired", "credits", {})),
        ("export", {}, ("token_expired", "render_start", {})),
        ("credits", {}, ("rate_limited", "credits", {"times": None, "retry_after": "0.1"})),
        ("generate", {"message": "add a title"}, ("error_frame", "run_sse", {})),
        ("upload", {"sources": [str(clip)]}, ("bad_gateway", "upload", {})),
        ("export", {"fresh": True}, ("render_fail", "render_start", {})),
        ("timeline", {}, ("session_lost", "state", {})),
        ("credits", {}, ("token_expired", "*", {"times": None})),
        ("generate", {"message": "a video of rain"}, ("out_of_credits", "run_sse", {})),
    ]
    async with connect(settings) as session:
        for tool, args, fault in steps:
            control.clear_faults()
            if fault is not None:
                name, route, params = fault
                times = params.pop("times", 1)
                control.fault(name, route=route, times=times, **params)
            transcript.add(await session.call(tool, args))
            seen |= bearer_tokens(settings.home)
    home_tokens = bearer_tokens(settings.home)
    seen |= home_tokens
    assert len(seen) >= 3, "the session should have renewed its token"
    assert transcript.errors and transcript.results and transcript.logs
    everything = transcript.everything()
    for token in seen:
        assert token not in everything
    assert "nmv_usr_" not in everything
    assert not re.search(r"(?i)bearer\s+\S{8,}", everything)
    claims = assert_claims_only_in_links(transcript)
    assert claims, "the export result should carry the browser link"
    assert_private(settings.home, seen)
    for path in settings.output_dir.rglob("*"):
        assert not any(t.encode() in path.read_bytes() for t in seen)


async def test_configured_token_is_never_shown_nor_stored(
    tmp_path: Path, sandbox: Any, transcript: Transcript
) -> None:
    user = sandbox.control.user(credits=200)
    token = user["token"]
    settings = make_settings(tmp_path, sandbox.url, token=SecretStr(token))
    async with connect(settings) as session:
        transcript.add(await session.call("credits"))
        transcript.add(await session.call("timeline"))
        sandbox.control.fault("token_expired", route="credits", times=None)
        refused = transcript.add(await session.call("credits"))
    assert refused.is_error and "NEMO_TOKEN" in text_of(refused)
    assert token not in transcript.everything() and "nmv_usr_" not in transcript.everything()
    for path in settings.home.rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path
    assert sandbox.control.stats()["tokens_issued"] == 0


async def test_backend_echoing_the_token_is_redacted(
    tmp_path: Path, transcript: Transcript
) -> None:
    """A backend that puts the token (in any shape) in its error text never gets it shown."""
    token = "tok-Secret-4f9a8b7c6d5e"

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/anonymous-token":
            return httpx.Response(
                200,
                json={
                    "code": 0,
                    "message": "ok",
                    "data": {
                        "token": token,
                        "user_id": "anon_1",
                        "expires_at": "2099-01-01T00:00:00Z",
                    },
                },
            )
        seen = request.headers.get("authorization", "")
        return httpx.Response(
            503, json={"code": 503, "message": f"upstream refused {seen} ({token})"}
        )

    settings = make_settings(tmp_path, "http://backend.test")
    server = create_server(settings, transport=httpx.MockTransport(answer))
    async with Client(server) as client:  # type: ignore[arg-type]
        for tool in ("credits", "timeline", "generate"):
            args = {"message": "a video of snow"} if tool == "generate" else {}
            result = transcript.add(await client.call_tool(tool, args))
            assert result.is_error and "try again" in text_of(result).lower(), text_of(result)
    assert token not in transcript.everything()
    assert "Bearer tok" not in transcript.everything()


async def test_no_token_in_the_server_log_at_debug(tmp_path: Path, sandbox: Any) -> None:
    """The real process, logging everything to stderr as it does in production."""
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.3)
    env = server_env(tmp_path, sandbox, NEMO_LOG_LEVEL="DEBUG", NEMO_TOOL_TIMEOUT="10")
    params = StdioServerParameters(command=sys.executable, args=["-m", "nemo_mcp"], env=env)
    log_path = tmp_path / "stderr.log"
    home = Path(env["NEMO_HOME"])
    tokens: set[str] = set()
    shown: list[str] = []
    with open(log_path, "w") as errlog:
        async with Client(stdio_client(params, errlog=errlog)) as client:
            for tool, args, fault in [
                ("credits", {}, None),
                ("generate", {"message": "a video of a bridge"}, None),
                ("export", {}, ("token_expired", "render_start")),
                ("credits", {}, ("token_expired", "credits")),
                ("timeline", {}, ("session_lost", "state")),
            ]:
                if fault is not None:
                    sandbox.control.fault(fault[0], route=fault[1])
                result = await client.call_tool(tool, args)
                shown.append(text_of(result) + json.dumps(result.structured_content))
                tokens |= bearer_tokens(home)
    log = log_path.read_text()
    assert "DEBUG" in log and "INFO" in log, log[:500]
    assert len(tokens) == 3 and sandbox.control.stats()["tokens_issued"] == 3
    for token in tokens:
        assert token not in log and token not in "\n".join(shown)
    assert "nmv_usr_" not in log and "clm_" not in log
    assert any(_LINK in text for text in shown), "the export should carry the browser link"
