"""The sandbox's `/run_sse` and its scripted agent, read as raw bytes over a real socket."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from nemo_mcp.sandbox.testing import SandboxServer

from sandbox_client import SSE, Backend, generate, payloads, poll, sse_blocks, texts

GENERATE = "generate a video of a city timelapse at night with lo-fi music"


def body(sid: str, text: str) -> dict[str, Any]:
    return {
        "app_name": "nemo_agent",
        "user_id": "me",
        "session_id": sid,
        "new_message": {"parts": [{"text": text}]},
    }


def calls(raw: bytes) -> list[str]:
    return [
        p["functionCall"]["name"]
        for e in payloads(raw)
        if "content" in e
        for p in e["content"]["parts"]
        if "functionCall" in p
    ]


def tracks(draft: dict[str, Any]) -> list[tuple[int, str]]:
    return [(t["tt"], t["m"]["name"]) for t in draft.get("t", [])]


# generation ----------------------------------------------------------------------------------
def test_generation_is_two_staged_and_state_follows(
    sandbox: SandboxServer, backend: Backend
) -> None:
    sid = backend.ready()
    seen: dict[str, Any] = {}
    raw = b""
    with backend.http.stream("POST", "/run_sse", json=body(sid, GENERATE), headers=SSE) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            raw += line.encode() + b"\n"
            if not line.startswith("data: {"):
                continue
            event = json.loads(line[6:])
            parts = event["content"]["parts"]
            if "frozen" not in seen and any("functionCall" in p for p in parts):
                seen["frozen"] = backend.credits()  # work in progress holds its cost
            if any(p.get("text", "").startswith("Your raw clip is ready") for p in parts):
                seen["between"] = backend.state(sid)["state"]
    assert seen["frozen"] == {"available": 0, "frozen": 100, "total": 100}
    between = seen["between"]
    assert tracks(between["draft"]) == [(0, "Video")] and len(between["generated_media"]) == 1
    final = backend.state(sid)["state"]
    assert tracks(final["draft"]) == [(0, "Video"), (1, "BGM"), (7, "Title")]
    video, bgm, title = (t["sg"][0] for t in final["draft"]["t"])
    assert (
        video["m"]["name"] == "city timelapse at night"
        and video["d"] == final["draft"]["d"] == 10_000
    )
    music = dict(bgm["m"])
    assert music.pop("url").endswith(".wav")  # a media link, as clips have
    assert music == {"name": "Lo-fi Chill", "volume": 0.35}
    assert title["m"]["text"] == "City Timelapse at Night" and title["d"] == 3000
    assert final["draft"]["t"][0]["id"] == between["draft"]["t"][0]["id"]  # ids are stable
    assert backend.credits() == {"available": 0, "frozen": 0, "total": 0}
    assert calls(raw) == ["generate_video", "add_bgm", "add_title"]
    said = texts(raw)
    assert said[0].startswith("Your raw clip is ready") and "Export button" in said[-1]
    clip = final["generated_media"][0]["url"]
    assert httpx.get(clip).content[4:8] == b"ftyp"


def test_adk_events_have_the_documented_shape(backend: Backend) -> None:
    sid = backend.ready()
    events = payloads(backend.send(sid, GENERATE).content)
    for event in events:
        assert set(event) == {"content", "invocationId", "author", "actions", "id", "timestamp"}
        assert event["author"] == "nemo_agent" and event["invocationId"].startswith("e-")
        assert set(event["actions"]) == {"stateDelta", "artifactDelta", "requestedAuthConfigs"}
    assert len({e["invocationId"] for e in events}) == 1
    responses = [e for e in events if "functionResponse" in e["content"]["parts"][0]]
    assert all(e["content"]["role"] == "user" for e in responses)
    assert all(e["content"]["role"] == "model" for e in events if e not in responses)
    call_ids = [
        p["functionCall"]["id"]
        for e in events
        for p in e["content"]["parts"]
        if "functionCall" in p
    ]
    answer_ids = [p["functionResponse"]["id"] for e in responses for p in e["content"]["parts"]]
    assert call_ids == answer_ids
    deltas = [e["actions"]["stateDelta"]["draft"] for e in responses]
    assert [len(d["t"]) for d in deltas] == [1, 3]
    assert any(p.get("thought") is True for e in events for p in e["content"]["parts"])


def heartbeat_kinds(raw: bytes) -> list[str]:
    kinds = []
    for block in sse_blocks(raw):
        if block["comment"]:
            kinds.append("comment")
        elif block["event"] == "heartbeat":
            kinds.append("event")
        elif block["data"] == "":
            kinds.append("empty_data")
    return kinds


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        ("comment", b"\n: ping\n\n"),
        ("empty_data", b"\n\ndata: \n\n"),
        ("event", b"\nevent: heartbeat\ndata: \n\n"),
    ],
)
def test_each_heartbeat_form(
    sandbox: SandboxServer, backend: Backend, form: str, expected: bytes
) -> None:
    sandbox.control.set(heartbeat=form)
    sid = backend.ready()
    raw = backend.send(sid, GENERATE).content
    assert raw.count(expected) >= 3
    kinds = heartbeat_kinds(raw)
    assert set(kinds) == {form} and len(kinds) >= 3


def test_mixed_heartbeats_and_frame_format(backend: Backend) -> None:
    sid = backend.ready()
    raw = backend.send(sid, GENERATE).content
    assert set(heartbeat_kinds(raw)) == {"comment", "empty_data", "event"}
    assert raw.endswith(b"\n\n") and b"[DONE]" not in raw  # no end sentinel: the close is the end
    for block in sse_blocks(raw):
        if block["data"]:
            assert "\n" not in block["data"]  # one-line JSON per frame


def test_adk_partial_streams_chunks_then_the_whole_text(
    sandbox: SandboxServer, backend: Backend
) -> None:
    sandbox.control.set(sse="adk_partial")
    sid = backend.ready()
    events = payloads(backend.send(sid, GENERATE).content)
    pending = ""
    finals = []
    for event in events:
        text = "".join(p.get("text", "") for p in event["content"]["parts"] if not p.get("thought"))
        if event.get("partial"):
            pending += text
        elif text:
            assert pending == text  # the final event repeats exactly what the chunks said
            finals.append(text)
            pending = ""
    assert len(finals) == 2 and sum(1 for e in events if e.get("partial")) > 4


def test_typed_frames(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(sse="typed")
    sid = backend.ready()
    frames = payloads(backend.send(sid, GENERATE).content)
    kinds = [f["type"] for f in frames]
    assert set(kinds) == {"text", "tool_call", "tool_result", "heartbeat"}
    assert [f["name"] for f in frames if f["type"] == "tool_call"] == [
        "generate_video",
        "add_bgm",
        "add_title",
    ]
    assert all("content" in f for f in frames if f["type"] == "text")
    assert all("result" in f for f in frames if f["type"] == "tool_result")
    assert tracks(backend.draft(sid))[-1] == (7, "Title")


# edits -----------------------------------------------------------------------------------------
EDITS = [
    (
        "add some epic music",
        lambda d: d["t"][1]["sg"][0]["m"]["name"] == "Epic Cinematic",
        "music panel",
    ),
    (
        "change the music",
        lambda d: d["t"][1]["sg"][0]["m"]["name"] not in ("Lo-fi Chill",),
        "replaced",
    ),
    (
        'add a title "Urban Dreams"',
        lambda d: d["t"][2]["sg"][0]["m"]["text"] == "Urban Dreams",
        "Drag",
    ),
    ("remove the music", lambda d: [t["tt"] for t in d["t"]] == [0, 7], "removed"),
    ("delete the title", lambda d: [t["tt"] for t in d["t"]] == [0, 1], "removed"),
    ("set the music volume to 60%", lambda d: d["t"][1]["sg"][0]["m"]["volume"] == 0.6, "60%"),
    ("make the music louder", lambda d: d["t"][1]["sg"][0]["m"]["volume"] == 0.5, "50%"),
    ("a bit quieter please", lambda d: d["t"][1]["sg"][0]["m"]["volume"] == 0.2, "20%"),
    ("trim to 8s", lambda d: d["d"] == 8000 and d["t"][0]["sg"][0]["d"] == 8000, "8 seconds"),
    ("make it shorter", lambda d: d["d"] == 8000 and d["t"][1]["sg"][0]["d"] == 8000, "8 seconds"),
]


@pytest.mark.parametrize(("message", "check", "phrase"), EDITS)
def test_edits_change_the_draft_and_cost(
    sandbox: SandboxServer, backend: Backend, message: str, check: Any, phrase: str
) -> None:
    sandbox.control.set(initial_credits=300)
    sid = backend.ready()
    before = generate(backend, sid)
    r = backend.send(sid, message)
    after = backend.draft(sid)
    assert after != before and check(after), after
    assert phrase in " ".join(texts(r.content))
    assert backend.credits() == {"available": 150, "frozen": 0, "total": 150}
    assert [t["id"] for t in after["t"]] == [
        t["id"] for t in before["t"] if t["tt"] in [u["tt"] for u in after["t"]]
    ]


def test_edit_that_changes_nothing_is_free(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(initial_credits=300)
    sid = backend.ready()
    before = generate(backend, sid)
    r = backend.send(sid, "trim to 30s")
    assert backend.draft(sid) == before and "already 10 seconds" in texts(r.content)[0]
    assert backend.credits()["available"] == 200


def test_silent_edit_has_no_text(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(initial_credits=300, silent_edits=True)
    sid = backend.ready()
    generate(backend, sid)
    r = backend.send(sid, 'add a title "Quiet"')
    assert texts(r.content) == [] and calls(r.content) == ["add_title"]
    assert backend.draft(sid)["t"][2]["sg"][0]["m"]["text"] == "Quiet"


def test_chat_costs_nothing_and_changes_nothing(backend: Backend) -> None:
    sid = backend.ready()
    r = backend.send(sid, "hello!")
    assert calls(r.content) == [] and "Export button" in texts(r.content)[0]
    assert backend.draft(sid) == {} and backend.credits()["available"] == 100


def test_trailing_issue(sandbox: SandboxServer, backend: Backend) -> None:
    sandbox.control.set(trailing_issue=True)
    sid = backend.ready()
    said = texts(backend.send(sid, "what can you do?").content)
    assert said[-1] == "I encountered a temporary issue" and len(said) == 2


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_no_credits_means_2001_before_the_stream(
    sandbox: SandboxServer, backend: Backend, mode: str
) -> None:
    sandbox.control.set(error_status=mode)
    sid = backend.ready()
    generate(backend, sid)  # spends all 100
    r = backend.send(sid, "add some music")
    assert r.status_code == (402 if mode == "http" else 200)
    assert r.headers["content-type"].startswith("application/json") and r.json()["code"] == 2001
    assert backend.send(sid, "hello").status_code == 200  # chat is still free


def test_message_body_is_validated(backend: Backend) -> None:
    sid = backend.ready()
    r = backend.http.post(
        "/run_sse", json={"app_name": "nemo_agent", "session_id": sid}, headers=SSE
    )
    assert r.status_code == 422
    assert {tuple(d["loc"]) for d in r.json()["detail"]} == {
        ("body", "user_id"),
        ("body", "new_message"),
    }
    r = backend.http.post(
        "/run_sse", content=b"{", headers={**SSE, "Content-Type": "application/json"}
    )
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "json_invalid"
    r = backend.http.post(
        "/run_sse", json={**body(sid, "x"), "new_message": {"parts": []}}, headers=SSE
    )
    assert r.status_code == 422
    r = backend.http.post("/run_sse", json={**body(sid, "x"), "app_name": "other"}, headers=SSE)
    assert r.status_code == 404
    r = backend.send("999", "hello")
    assert r.status_code == 404 and r.json() == {"detail": "Session not found: 999"}


# stream faults ---------------------------------------------------------------------------------
def test_stream_drop_cuts_mid_frame_and_the_work_completes(
    sandbox: SandboxServer, backend: Backend
) -> None:
    sid = backend.ready()
    sandbox.control.fault("stream_drop", after=2)
    received = b""
    with (
        pytest.raises(httpx.RemoteProtocolError),
        backend.http.stream("POST", "/run_sse", json=body(sid, GENERATE), headers=SSE) as r,
    ):
        for chunk in r.iter_raw():
            received += chunk
    frames = [b for b in sse_blocks(received) if b["data"]]
    assert len(frames) == 3 and not received.endswith(b"\n\n")  # two whole frames, then half of one
    with pytest.raises(json.JSONDecodeError):
        json.loads(frames[-1]["data"])
    done = poll(lambda: len(backend.draft(sid).get("t", [])) == 3)
    assert done and backend.credits() == {"available": 0, "frozen": 0, "total": 0}


def test_client_leaving_does_not_stop_the_work(backend: Backend) -> None:
    sid = backend.ready()
    with backend.http.stream("POST", "/run_sse", json=body(sid, GENERATE), headers=SSE) as r:
        next(r.iter_lines())
    assert poll(lambda: len(backend.draft(sid).get("t", [])) == 3)
    assert poll(lambda: backend.credits()["frozen"] == 0)


def test_error_frame_then_close_and_refund(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    r = backend.send(
        sid, GENERATE, headers={"X-Sandbox-Fault": "error_frame;message=model overloaded;code=503"}
    )
    frames = payloads(r.content)
    assert frames[-1] == {"error": "model overloaded", "code": "503"}
    assert len(frames) == 2 and "content" in frames[0]
    assert poll(lambda: backend.credits() == {"available": 100, "frozen": 0, "total": 100})
    assert backend.draft(sid) == {}


def test_heartbeats_only(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    sandbox.control.fault("heartbeats_only", duration=0.4)
    raw = backend.send(sid, GENERATE).content
    blocks = sse_blocks(raw)
    assert len(blocks) >= 4 and not payloads(raw)
    assert all(
        b["comment"] == ["ping"] or b["event"] == "heartbeat" or b["data"] == "" for b in blocks
    )
    assert backend.credits()["available"] == 100 and backend.draft(sid) == {}


def test_token_expired_before_the_stream(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    sandbox.control.fault("token_expired", route="run_sse")
    r = backend.send(sid, GENERATE)
    assert (r.status_code, r.json()["code"]) == (401, 1001)
    assert sandbox.control.stats()["messages"] == []


def test_session_lost_before_the_stream(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()
    sandbox.control.fault("session_lost", route="run_sse")
    r = backend.send(sid, GENERATE)
    assert r.status_code == 404 and r.json() == {"detail": f"Session not found: {sid}"}
    assert backend.http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["code"] == 1002
