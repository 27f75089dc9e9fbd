"""The sandbox backend over a real socket: every route, error code, variant and fault.

The helpers (`Backend`, `sse_blocks`, `payloads`) are in `sandbox_client.py`.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from nemo_mcp.sandbox.options import config_from
from nemo_mcp.sandbox.testing import SandboxServer

from sandbox_client import Backend, generate, poll


# tokens --------------------------------------------------------------------------------
def test_anonymous_token(backend: Backend) -> None:
    data = backend.login()
    assert re.fullmatch(r"nmv_usr_[A-Za-z0-9_-]{20,}", data["token"])
    assert data["user_id"].startswith("anon_") and data["credits"] == 100
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (time.time() + 7 * 24 * 3600)) < 60


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_missing_client_id_is_400(sandbox: SandboxServer, backend: Backend, mode: str) -> None:
    sandbox.control.set(error_status=mode)
    r = backend.http.post("/api/auth/anonymous-token")
    assert r.status_code == (400 if mode == "http" else 200)
    assert r.json()["code"] == 400 and "X-Client-Id" in r.json()["message"]


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_one_live_token_per_client(sandbox: SandboxServer, backend: Backend, mode: str) -> None:
    sandbox.control.set(error_status=mode)
    backend.login()
    r = backend.http.post("/api/auth/anonymous-token", headers={"X-Client-Id": backend.client_id})
    assert r.status_code == (429 if mode == "http" else 200) and r.json()["code"] == 429
    assert "Retry-After" not in r.headers  # the contract promises none there
    assert sandbox.control.stats()["tokens_issued"] == 1


def test_revoked_token_is_renewed_for_the_same_user(
    sandbox: SandboxServer, backend: Backend
) -> None:
    first = backend.login()
    sid = backend.session()
    sandbox.control.fault("token_expired", route="credits")
    r = backend.http.get("/api/credits/balance/simple")
    assert (r.status_code, r.json()["code"]) == (401, 1001)
    # Really revoked: the same token stays refused on every route.
    assert backend.http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["code"] == 1001
    second = backend.login()
    assert second["token"] != first["token"] and second["user_id"] == first["user_id"]
    assert backend.state(sid)["session_id"] == sid  # the user keeps its sessions
    assert backend.credits()["available"] == 100


def test_expired_token_is_refused_then_renewable(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(token_ttl=0)
    backend.login()
    r = backend.http.get("/api/credits/balance/simple")
    assert (r.status_code, r.json()["code"]) == (401, 1001) and "expired" in r.json()["message"]
    backend.login()  # expired, so a new one is allowed at once
    assert sandbox.control.stats()["tokens_issued"] == 2


ROUTES = [
    ("POST", "/api/tasks/me/with-session/nemo_agent"),
    ("POST", "/api/auth/claim-token"),
    ("GET", "/api/credits/balance/simple"),
    ("GET", "/api/state/nemo_agent/me/1/latest"),
    ("POST", "/api/upload-video/nemo_agent/me/1"),
    ("POST", "/run_sse"),
    ("POST", "/api/render/proxy/lambda"),
    ("GET", "/api/render/proxy/lambda/render_1"),
    ("POST", "/api/render/proxy/lambda/render_1/cancel"),
    ("GET", "/api/render/proxy/render_1/download"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("auth", [None, "Bearer nmv_usr_unknown_token_value", "Basic abc"])
def test_every_route_needs_a_valid_token(
    backend: Backend, method: str, path: str, auth: str | None
) -> None:
    headers = {"Authorization": auth} if auth else {}
    r = backend.http.request(method, path, json={}, headers=headers)
    assert (r.status_code, r.json()["code"]) == (401, 1001)


# sessions, claim, credits, state ------------------------------------------------------------
def test_session_claim_credits_and_state(backend: Backend) -> None:
    backend.login()
    r = backend.http.post(
        "/api/tasks/me/with-session/nemo_agent", json={"task_name": "project", "language": "fr"}
    )
    data = r.json()["data"]
    assert data["session_id"].isdigit() and data["task_id"] and data["user_id"] == backend.user_id
    sid = data["session_id"]
    claim = backend.http.post(
        "/api/auth/claim-token", json={"task_id": data["task_id"], "session_id": sid}
    )
    assert (
        claim.json()["data"]["claim_token"].startswith("clm_")
        and claim.json()["data"]["expires_in"] > 0
    )
    page = backend.http.get("/workspace/claim", params={"ct": claim.json()["data"]["claim_token"]})
    assert page.status_code == 200 and sid in page.text
    assert backend.http.get("/workspace/claim", params={"ct": "clm_nope"}).status_code == 404
    assert backend.credits() == {"available": 100, "frozen": 0, "total": 100}
    state = backend.state(sid)
    assert (state["session_id"], state["task_id"], state["task_name"]) == (
        sid,
        data["task_id"],
        "project",
    )
    assert set(state["state"]) == {
        "draft",
        "video_infos",
        "canvas_config",
        "video_analyses",
        "generated_media",
    }
    assert state["state"]["draft"] is None and state["state"]["video_infos"] == []


def test_session_body_is_validated(backend: Backend) -> None:
    backend.login()
    r = backend.http.post(
        "/api/tasks/me/with-session/nemo_agent",
        content=b"{nope",
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = backend.http.post("/api/tasks/me/with-session/nemo_agent", json={"task_name": 5})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "task_name"]


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_sessions_are_isolated_between_users(
    sandbox: SandboxServer, backend: Backend, other: Backend, mode: str
) -> None:
    sandbox.control.set(error_status=mode)
    sid = backend.ready()
    draft = generate(backend, sid)
    other.login()
    status = 404 if mode == "http" else 200
    r = other.http.get(f"/api/state/nemo_agent/me/{sid}/latest")
    assert (r.status_code, r.json()["code"]) == (status, 1002)
    r = other.http.post("/api/auth/claim-token", json={"task_id": "x", "session_id": sid})
    assert r.json()["code"] == 1002
    r = other.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}",
        json={"urls": ["https://x.test/a.mp4"], "source_type": "url"},
    )
    assert r.json()["code"] == 1002
    assert other.render(sid, draft).json()["code"] == 1002
    r = other.send(sid, "hello")  # the agent server's own refusal, whatever the mode
    assert r.status_code == 404 and r.json() == {"detail": f"Session not found: {sid}"}
    assert backend.state(sid)["state"]["draft"] == draft


# renders --------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", ["bare", "success", "code"])
@pytest.mark.parametrize("scale", ["percent", "fraction"])
def test_render_runs_to_completion(
    sandbox: SandboxServer, backend: Backend, shape: str, scale: str
) -> None:
    sandbox.control.set(render_status=shape, progress=scale, render_seconds=0.3)
    sid = backend.ready()
    draft = generate(backend, sid)
    started = backend.render(sid, draft, "render_100")
    assert started.json()["code"] == 0 and started.json()["data"]["status"] == "pending"
    seen: list[tuple[str, float]] = []

    def status() -> dict[str, Any] | None:
        body = backend.http.get("/api/render/proxy/lambda/render_100").json()
        inner = body if shape == "bare" else body["data"]
        if shape == "code":
            assert body["code"] == 0
        if shape == "success":
            assert body["success"] is True
        seen.append((inner["status"], inner["progress"]))
        return inner if inner["status"] == "completed" else None

    done = poll(status)
    phases = [s for s, _ in seen]
    assert phases[0] in ("pending", "processing") and phases[-1] == "completed"
    assert phases == sorted(phases, key=["pending", "processing", "completed"].index)
    progress = [p for _, p in seen]
    assert progress == sorted(progress) and progress[-1] == (100 if scale == "percent" else 1.0)
    assert all(p <= 1 for p in progress) if scale == "fraction" else any(p > 1 for p in progress)
    url = done["outputUrl"] if shape == "success" else done["output"]["url"]
    assert url == f"{sandbox.url}/files/render_100.mp4"
    meta = done if shape == "success" else done["output"]
    assert meta["duration"] == draft["d"] / 1000 and meta["size"] > 10_000
    if shape == "success":
        assert done["completedAt"] >= done["createdAt"]
    video = httpx.get(url)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert len(video.content) == meta["size"] and video.content[4:8] == b"ftyp"
    assert backend.http.get("/api/render/proxy/render_100/download").content == video.content
    assert backend.credits()["available"] == 0  # export is free: only the generation was paid


def test_served_mp4_is_a_real_h264_file(
    sandbox: SandboxServer, backend: Backend, tmp_path: Any
) -> None:
    from nemo_mcp.media.probing import probe

    sandbox.control.set(render_seconds=0)
    sid = backend.ready()
    draft = generate(backend, sid)
    backend.render(sid, draft, "render_mp4")
    url = f"{sandbox.url}/files/render_mp4.mp4"
    data = poll(lambda: (r := httpx.get(url)).status_code == 200 and r.content)
    size, kind, brand = int.from_bytes(data[:4], "big"), data[4:8], data[8:12]
    assert kind == b"ftyp" and brand in (b"isom", b"mp42") and 8 <= size <= 64
    (tmp_path / "out.mp4").write_bytes(data)
    info = probe(tmp_path / "out.mp4")
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert (info.width, info.height, info.fps) == (640, 360, 24.0)
    assert info.duration is not None and abs(info.duration - draft["d"] / 1000) <= 1 / 24


def test_synthetic_output_of_any_size(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(render_seconds=0, render_output_bytes=5_000_003)
    sid = backend.ready()
    backend.render(sid, generate(backend, sid), "render_big")
    status = backend.http.get("/api/render/proxy/lambda/render_big").json()
    assert status["output"]["size"] == 5_000_003
    with httpx.stream("GET", status["output"]["url"]) as r:
        assert int(r.headers["content-length"]) == 5_000_003
        chunks = r.iter_bytes()
        head = next(chunks)
        total = len(head) + sum(len(c) for c in chunks)
    assert head[4:8] == b"ftyp" and total == 5_000_003


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_reused_render_id_is_409(sandbox: SandboxServer, backend: Backend, mode: str) -> None:
    sandbox.control.set(error_status=mode)
    sid = backend.ready()
    draft = generate(backend, sid)
    assert backend.render(sid, draft, "render_7").json()["code"] == 0
    r = backend.render(sid, draft, "render_7")
    assert r.status_code == (409 if mode == "http" else 200)
    assert r.json()["code"] == 409 and "render_7" in r.json()["message"]
    assert sandbox.control.stats()["renders_started"] == 1


@pytest.mark.parametrize("draft", [{}, {"t": []}, {"t": [{"tt": 0, "sg": []}]}, {"t": "x"}])
def test_empty_draft_is_refused_clearly(backend: Backend, draft: dict[str, Any]) -> None:
    sid = backend.ready()
    r = backend.render(sid, draft)
    assert r.status_code == 400 and "nothing to render" in r.json()["message"]


@pytest.mark.parametrize("missing", ["X-Skill-Source", "X-Skill-Version", "X-Skill-Platform"])
@pytest.mark.parametrize("mode", ["http", "ok"])
def test_render_without_attribution_is_402(
    sandbox: SandboxServer, backend: Backend, missing: str, mode: str
) -> None:
    sid = backend.ready()
    draft = generate(backend, sid)
    sandbox.control.set(error_status=mode)
    del backend.http.headers[missing]
    r = backend.render(sid, draft)
    assert r.status_code == (402 if mode == "http" else 200)
    assert r.json()["code"] == 402 and "free plan export blocked" in r.json()["message"]
    assert missing in r.json()["message"]


def test_render_request_body_is_validated(backend: Backend) -> None:
    sid = backend.ready()
    r = backend.http.post("/api/render/proxy/lambda", json={"id": "render_1", "draft": {}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "sessionId"]
    assert (
        backend.render(
            sid, {"t": [{"tt": 0, "sg": [{"s": 0, "d": 1000}]}]}, "render_ok"
        ).status_code
        == 200
    )


def test_cancel_and_ownership_of_renders(
    sandbox: SandboxServer, backend: Backend, other: Backend
) -> None:
    sandbox.control.set(render_seconds=60)
    sid = backend.ready()
    backend.render(sid, generate(backend, sid), "render_c")
    other.login()
    assert other.http.get("/api/render/proxy/lambda/render_c").json()["code"] == 404
    assert other.http.post("/api/render/proxy/lambda/render_c/cancel").json()["code"] == 404
    r = backend.http.get("/api/render/proxy/render_c/download")
    assert r.status_code == 409 and "once it is completed" in r.json()["message"]
    assert (
        backend.http.post("/api/render/proxy/lambda/render_c/cancel").json()["data"]["status"]
        == "cancelled"
    )
    assert backend.http.get("/api/render/proxy/lambda/render_c").json()["status"] == "cancelled"
    assert httpx.get(f"{sandbox.url}/files/render_c.mp4").status_code == 404


# envelopes and variants ----------------------------------------------------------------------
def test_success_envelope(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(envelope="success")
    r = backend.http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c1"})
    assert r.json()["success"] is True and r.json()["data"]["token"].startswith("nmv_usr_")
    backend.http.headers["Authorization"] = f"Bearer {r.json()['data']['token']}"
    assert backend.http.get("/api/credits/balance/simple").json() == {
        "success": True,
        "data": {"available": 100, "frozen": 0, "total": 100},
    }
    r = backend.http.get("/api/state/nemo_agent/me/42/latest")
    assert r.status_code == 404 and r.json() == {
        "success": False,
        "error": "session not found: 42",
        "code": 1002,
    }


def test_variant_header_changes_one_request_only(sandbox: SandboxServer, backend: Backend) -> None:
    backend.login()
    r = backend.http.get(
        "/api/credits/balance/simple",
        headers={"X-Sandbox-Variant": "envelope=success; error_status=ok"},
    )
    assert r.json()["success"] is True
    assert backend.http.get("/api/credits/balance/simple").json()["code"] == 0
    r = backend.http.get(
        "/api/credits/balance/simple", headers={"X-Sandbox-Variant": "envelope=xml"}
    )
    assert r.status_code == 400 and "envelope" in r.json()["message"]


# faults --------------------------------------------------------------------------------------
def test_rate_limited_fault(sandbox: SandboxServer, backend: Backend) -> None:
    backend.login()
    sandbox.control.set(error_status="ok")  # a gateway's 429 is an HTTP 429 in every mode
    sandbox.control.fault("rate_limited", route="credits", retry_after="7")
    r = backend.http.get("/api/credits/balance/simple")
    assert (r.status_code, r.json()["code"], r.headers["Retry-After"]) == (429, 429, "7")
    assert backend.http.get("/api/credits/balance/simple").status_code == 200  # consumed


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_fault(sandbox: SandboxServer, backend: Backend, status: int) -> None:
    backend.login()
    sandbox.control.fault("server_error", route="credits", status=status)
    r = backend.http.get("/api/credits/balance/simple")
    assert r.status_code == status and r.json()["code"] == status


def test_bad_gateway_fault_is_an_html_page(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.fault("bad_gateway", route="anonymous_token")
    r = backend.http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "c"})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        r.json()
    assert sandbox.control.stats()["tokens_issued"] == 0


def test_malformed_json_fault(sandbox: SandboxServer, backend: Backend) -> None:
    backend.login()
    sandbox.control.fault("malformed_json")
    r = backend.http.post("/api/tasks/me/with-session/nemo_agent", json={})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)


def test_slow_fault_delays_then_answers(sandbox: SandboxServer, backend: Backend) -> None:
    backend.login()
    backend.http.get("/api/credits/balance/simple")
    sandbox.control.fault("slow", route="credits", delay=0.4)
    began = time.monotonic()
    r = backend.http.get("/api/credits/balance/simple")
    assert time.monotonic() - began >= 0.4 and r.json()["code"] == 0


def test_session_lost_fault_really_deletes(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    sandbox.control.fault("session_lost")
    r = backend.http.get(f"/api/state/nemo_agent/me/{sid}/latest")
    assert (r.status_code, r.json()["code"]) == (404, 1002)
    assert backend.http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["code"] == 1002


def test_out_of_credits_fault(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    sandbox.control.fault("out_of_credits")
    r = backend.send(sid, "generate a video of a beach")
    assert (r.status_code, r.json()["code"]) == (402, 2001)
    assert backend.credits()["available"] == 0 and backend.draft(sid) == {}


def test_render_fail_fault(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(render_seconds=0)
    sid = backend.ready()
    sandbox.control.fault("render_fail", error="codec exploded")
    backend.render(sid, generate(backend, sid), "render_f")
    status = backend.http.get("/api/render/proxy/lambda/render_f").json()
    assert (
        status["status"] == "failed"
        and status["error"] == "codec exploded"
        and "output" not in status
    )
    assert backend.http.get("/api/render/proxy/render_f/download").status_code == 409


def test_output_url_broken_leaves_the_fallback(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(render_seconds=0)
    sid = backend.ready()
    backend.render(sid, generate(backend, sid), "render_b")
    status = poll(
        lambda: (
            (s := backend.http.get("/api/render/proxy/lambda/render_b").json())["status"]
            == "completed"
            and s
        )
    )
    sandbox.control.fault("output_url_broken")
    url = status["output"]["url"]
    assert httpx.get(url).status_code == 404
    fallback = backend.http.get("/api/render/proxy/render_b/download")
    assert fallback.status_code == 200 and fallback.content[4:8] == b"ftyp"


def test_export_blocked_fault(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    draft = generate(backend, sid)
    sandbox.control.fault("export_blocked")
    r = backend.render(sid, draft)
    assert (r.status_code, r.json()["code"]) == (402, 402)
    assert backend.render(sid, draft).json()["code"] == 0


def test_fault_counts_routes_and_headers(sandbox: SandboxServer, backend: Backend) -> None:
    backend.login()
    credits = "/api/credits/balance/simple"
    sandbox.control.fault("server_error", route="credits", times=2)
    assert [backend.http.get(credits).status_code for _ in range(3)] == [500, 500, 200]
    sandbox.control.fault("server_error", route="state", times=None)
    assert backend.http.get(credits).status_code == 200  # another route
    assert [
        backend.http.get("/api/state/nemo_agent/me/1/latest").status_code for _ in range(3)
    ] == [500] * 3
    sandbox.control.clear_faults()
    assert backend.http.get("/api/state/nemo_agent/me/1/latest").json()["code"] == 1002
    r = backend.http.get(credits, headers={"X-Sandbox-Fault": "rate_limited;retry_after=3"})
    assert (r.status_code, r.headers["Retry-After"]) == (429, "3")
    assert backend.http.get(credits).status_code == 200
    assert sandbox.control.stats()["faults_fired"] == {"server_error": 5, "rate_limited": 1}
    with pytest.raises(ValueError, match="cannot fire on route"):
        sandbox.control.fault("render_fail", route="credits")
    with pytest.raises(ValueError, match="no parameter"):
        sandbox.control.fault("slow", pause=1)


# control ---------------------------------------------------------------------------------------
def test_stats_and_request_log_never_hold_the_token(
    sandbox: SandboxServer, backend: Backend
) -> None:
    sid = backend.ready()
    backend.send(sid, "hello there")
    backend.http.get("/api/credits/balance/simple", headers={"X-Skill-Platform": "cursor"})
    stats = sandbox.control.stats()
    assert stats["requests"] == {"anonymous_token": 1, "session": 1, "run_sse": 1, "credits": 1}
    assert stats["messages"] == [{"session_id": sid, "text": "hello there"}]
    assert (stats["tokens_issued"], stats["sessions_created"], stats["renders_started"]) == (
        1,
        1,
        0,
    )
    log = sandbox.control.requests()
    assert [e["route"] for e in log] == ["anonymous_token", "session", "run_sse", "credits"]
    assert log[0]["client_id"] is True and log[0]["authorization"] is False
    assert log[-1]["authorization"] is True and log[-1]["skill_platform"] == "cursor"
    assert log[-1]["skill_source"] == "ai-generator-generator" and log[-1]["status"] == 200
    assert backend.token not in json.dumps(log) + json.dumps(stats) + json.dumps(
        sandbox.control.config()
    )


def test_reset_restores_the_initial_world(sandbox: SandboxServer, backend: Backend) -> None:
    backend.ready()
    sandbox.control.set(envelope="success")
    sandbox.control.fault("slow", times=None)
    sandbox.control.reset()
    config = sandbox.control.config()
    assert config["envelope"] == "code" and config["faults"] == []
    assert sandbox.control.stats()["requests"] == {}
    assert backend.http.get("/api/credits/balance/simple").json()["code"] == 1001


def test_registered_user_token(sandbox: SandboxServer, backend: Backend) -> None:
    user = sandbox.control.user(credits=500)
    backend.http.headers["Authorization"] = f"Bearer {user['token']}"
    assert backend.credits()["available"] == 500 and user["user_id"].startswith("usr_")


async def test_async_server_and_control() -> None:
    async with SandboxServer() as server:
        await server.acontrol.set(envelope="success")
        await server.acontrol.fault("server_error", route="anonymous_token")
        async with httpx.AsyncClient(base_url=server.url) as http:
            r = await http.post("/api/auth/anonymous-token", headers={"X-Client-Id": "a"})
            assert r.status_code == 500 and r.json()["success"] is False
        assert (await server.acontrol.stats())["requests"] == {"anonymous_token": 1}
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{server.port}/_sandbox/stats")


# command line ------------------------------------------------------------------------------------
def test_config_from_command_line() -> None:
    config = config_from(
        ["envelope=success", "render_output_bytes=none", "generation_seconds=2"],
        ["slow;route=credits;times=none;delay=0.5"],
    )
    assert config.envelope == "success" and config.generation_seconds == 2.0
    assert config.faults[0].name == "slow" and config.faults[0].times is None
    assert float(config.faults[0].param("delay")) == 0.5
    with pytest.raises(ValueError):
        config_from(["nope=1"], [])


def test_module_serves_until_interrupted() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nemo_mcp.sandbox", "--port", "0", "--set", "envelope=success"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line
        r = poll(lambda: _try_post(url.group(0)))
        assert r.json()["success"] is True
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 130  # the Ctrl-C convention
        assert proc.stderr is not None
        proc.stderr.close()


def _try_post(url: str) -> httpx.Response | None:
    try:
        return httpx.post(f"{url}/api/auth/anonymous-token", headers={"X-Client-Id": "cli"})
    except httpx.ConnectError:
        return None
