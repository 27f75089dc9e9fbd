"""`serve --http` served to others, as a real process: each bearer reaches only its own work.

Two servers for the module on loopback, each with several bearer tokens: one
taking uploads by URL only (the default), one with `NEMO_HTTP_UPLOAD_ROOT`.
Every test uses users of its own, so the sandbox can be reset between tests.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ListRootsResult, Root

from nemo_mcp.sandbox.testing import SandboxServer
from nemo_mcp.server.exposure import identity_key

from mcp_harness import text_of
from media_files import sample_mp4
from processes import end, http_server, run_http, server_env, wait_listening

NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan")
TOKENS = {name: f"{name}-secret-token-0123456789" for name in NAMES}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
URL_ONLY = "give an http(s) url of the file instead"
SCRIPT_REFUSED = "paste the script's text into the message instead"


@dataclass
class Served:
    """A running server and the operator's side of it."""

    url: str
    root: Path  # the test folder: HOME, NEMO_HOME, NEMO_OUTPUT_DIR, NEMO_UPLOAD_DIRS live here
    operator_clip: Path  # a valid clip in NEMO_UPLOAD_DIRS, which a local user could upload
    upload_root: Path | None = None

    @property
    def outputs(self) -> Path:
        return self.root / "out"


def _env(root: Path, sandbox: SandboxServer, **extra: str) -> dict[str, str]:
    env = server_env(root, sandbox, NEMO_TOOL_TIMEOUT="20", **extra)
    env["NEMO_HTTP_TOKENS"] = ",".join(TOKENS.values())
    return env


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("operator")


def _serve(root: Path, sandbox: SandboxServer, **extra: str) -> Iterator[Served]:
    env = _env(root, sandbox, **extra)
    clip = Path(env["NEMO_UPLOAD_DIRS"]) / "clip.mp4"
    shutil.copyfile(sample_mp4(), clip)
    (clip.parent / "script.txt").write_text("A city at night. Neon lights. Rain.\n")
    with http_server(env, root / "stderr.log") as url:
        yield Served(url=url, root=root, operator_clip=clip)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, sandbox_server: SandboxServer
) -> Iterator[Served]:
    """Served to others with uploads by URL only."""
    yield from _serve(tmp_path_factory.mktemp("served"), sandbox_server)


@pytest.fixture(scope="module")
def with_folders(
    tmp_path_factory: pytest.TempPathFactory, sandbox_server: SandboxServer
) -> Iterator[Served]:
    """Served to others, each user also taking files from their folder under an upload root."""
    root = tmp_path_factory.mktemp("folders")
    uploads = root / "srv-uploads"
    uploads.mkdir()
    for running in _serve(root, sandbox_server, NEMO_HTTP_UPLOAD_ROOT=str(uploads)):
        running.upload_root = uploads
        yield running


@dataclass
class Seen:
    """What a client saw of the server: session ids handed to it, roots asked for."""

    sessions: list[str] = field(default_factory=list)
    roots_asked: int = 0


@asynccontextmanager
async def connect(
    url: str, name: str, *, mode: str = "legacy", roots: list[str] | None = None
) -> AsyncIterator[tuple[Client, Seen]]:
    """The SDK's client over HTTP as user `name`, declaring `roots` (URIs) if given."""
    seen = Seen()

    async def on_response(response: httpx2.Response) -> None:
        if (session := response.headers.get("mcp-session-id")) and session not in seen.sessions:
            seen.sessions.append(session)

    async def list_roots(_ctx: Any) -> ListRootsResult:
        seen.roots_asked += 1
        return ListRootsResult(roots=[Root(uri=uri) for uri in roots or []])  # type: ignore[arg-type]

    async with (
        httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {TOKENS[name]}"},
            timeout=60,
            event_hooks={"response": [on_response]},
        ) as http,
        Client(
            streamable_http_client(url, http_client=http),  # type: ignore[arg-type]
            mode=mode,  # type: ignore[arg-type]
            list_roots_callback=list_roots if roots is not None else None,
        ) as client,
    ):
        yield client, seen


def _refused(result: Any, *words: str) -> str:
    text = text_of(result)
    assert result.is_error, text
    for word in words:
        assert word.lower() in text.lower(), (word, text)
    assert "Traceback" not in text
    return text


def _requests(sandbox: SandboxServer) -> dict[str, int]:
    return dict(sandbox.control.stats()["requests"])


@pytest.mark.parametrize(("mode", "name"), [("legacy", "carol"), ("auto", "dave")])
async def test_client_roots_never_open_the_servers_disk(
    served: Served, sandbox: SandboxServer, mode: str, name: str
) -> None:
    """A remote client declaring `file:///` can upload nothing from the server's disk, not
    even a valid clip inside NEMO_UPLOAD_DIRS; it is not even asked for its roots."""
    clip = served.operator_clip
    script = clip.parent / "script.txt"
    async with connect(served.url, name, mode=mode, roots=["file:///"]) as (client, seen):
        for source in (
            str(clip),
            clip.as_uri(),
            "/etc/passwd",
            f"{clip.parent}/../uploads/clip.mp4",
        ):
            _refused(await client.call_tool("upload", {"sources": [source]}), URL_ONLY)
        _refused(
            await client.call_tool(
                "generate", {"message": "turn this into a video", "script_file": str(script)}
            ),
            SCRIPT_REFUSED,
        )
    assert seen.roots_asked == 0
    seen_requests = _requests(sandbox)
    assert seen_requests.get("upload", 0) == 0 and seen_requests.get("run_sse", 0) == 0


async def test_one_user_cannot_upload_anothers_export(
    served: Served, sandbox: SandboxServer
) -> None:
    async with connect(served.url, "alice") as (alice, _):
        made = await alice.call_tool("generate", {"message": "a video of a tram at night"})
        assert not made.is_error, text_of(made)
        exported = await alice.call_tool("export", {})
        assert not exported.is_error, text_of(exported)
    saved = Path(exported.structured_content["file"])  # type: ignore[index]
    assert saved.is_file()
    # Served: the contact sheet is shown, but no file:// link to the server's own disk.
    kinds = [block.type for block in exported.content]
    assert "image" in kinds and "resource_link" not in kinds, kinds
    assert saved.parent == served.outputs / identity_key(TOKENS["alice"])
    async with connect(served.url, "bob", roots=["file:///", saved.parent.as_uri()]) as (bob, _):
        _refused(await bob.call_tool("upload", {"sources": [str(saved)]}), URL_ONLY)
        _refused(
            await bob.call_tool("generate", {"message": "use this", "script_file": str(saved)}),
            SCRIPT_REFUSED,
        )
    stats = sandbox.control.stats()
    assert stats["requests"].get("upload", 0) == 0
    assert len(stats["messages"]) == 1  # alice's request; nothing of bob's was sent


async def test_a_served_users_handoff_lands_in_their_own_folder(
    served: Served, sandbox: SandboxServer
) -> None:
    async with connect(served.url, "grace") as (grace, _):
        made = await grace.call_tool("generate", {"message": "a video of a harbour at dawn"})
        assert not made.is_error, text_of(made)
        handed = await grace.call_tool("export", {"format": "xml"})
        assert not handed.is_error, text_of(handed)
    folder = Path(handed.structured_content["folder"])  # type: ignore[index]
    assert folder.parent == served.outputs / identity_key(TOKENS["grace"])
    # The generated clip and the music under it.
    assert sorted(p.suffix for p in (folder / "media").iterdir()) == [".mp4", ".wav"]
    assert sandbox.control.stats()["renders_started"] == 0


async def test_resources_show_only_the_callers_work(served: Served, sandbox: SandboxServer) -> None:
    async with connect(served.url, "erin") as (erin, _):
        made = await erin.call_tool("generate", {"message": "a video of a lighthouse at dawn"})
        assert not made.is_error, text_of(made)
        exported = await erin.call_tool("export", {})
        assert not exported.is_error, text_of(exported)
    for mode in ("legacy", "auto"):
        async with connect(served.url, "erin", mode=mode) as (erin, _):
            own = await erin.read_resource("nemo://timeline")
            renders = await erin.read_resource("nemo://renders")
        async with connect(served.url, "frank", mode=mode) as (frank, _):
            other = await frank.read_resource("nemo://timeline")
            other_json = await frank.read_resource("nemo://timeline.json")
            other_renders = await frank.read_resource("nemo://renders")
        assert "ready for export" in own.contents[0].text  # type: ignore[union-attr]
        assert "no tracks yet" in other.contents[0].text, mode  # type: ignore[union-attr]
        assert "no tracks yet" in other_json.contents[0].text, mode  # type: ignore[union-attr]
        assert '"status":"completed"' in renders.contents[0].text.replace(" ", "")  # type: ignore[union-attr]
        assert '"renders":[]' in other_renders.contents[0].text.replace(" ", ""), mode  # type: ignore[union-attr]


async def test_deleting_anothers_session_is_404_and_leaves_it_working(
    served: Served, sandbox: SandboxServer
) -> None:
    async with connect(served.url, "grace") as (grace, seen):
        assert not (await grace.call_tool("credits", {})).is_error
        (session,) = seen.sessions
        attacker = {"authorization": f"Bearer {TOKENS['heidi']}", "mcp-session-id": session}
        async with httpx.AsyncClient(timeout=10) as http:
            deleted = await http.delete(served.url, headers={**MCP_HEADERS, **attacker})
            used = await http.post(
                served.url,
                headers={**MCP_HEADERS, **attacker, "mcp-protocol-version": "2025-11-25"},
                json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
            )
            listened = await http.get(
                served.url, headers={**attacker, "accept": "text/event-stream"}
            )
        for response in (deleted, used, listened):
            assert response.status_code == 404, response.text
            assert "Session not found" in response.text
        after = await grace.call_tool("credits", {})
        assert not after.is_error, text_of(after)
        assert after.structured_content["available"] == 100  # type: ignore[index]
    # Leaving deleted the session: it is gone for its owner too.
    async with httpx.AsyncClient(timeout=10) as http:
        gone = await http.post(
            served.url,
            headers={
                **MCP_HEADERS,
                "authorization": f"Bearer {TOKENS['grace']}",
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-11-25",
            },
            json={"jsonrpc": "2.0", "id": 8, "method": "tools/list"},
        )
    assert gone.status_code == 404


async def test_url_upload_works_for_a_served_user(served: Served, sandbox: SandboxServer) -> None:
    async with connect(served.url, "ivan", mode="auto") as (ivan, _):
        result = await ivan.call_tool("upload", {"sources": ["https://example.com/clip.mp4"]})
    assert not result.is_error, text_of(result)
    assert result.structured_content["files"][0]["type"] == "video"  # type: ignore[index]
    assert _requests(sandbox)["upload"] == 1


async def test_upload_folder_is_the_users_only_local_source(
    with_folders: Served, sandbox: SandboxServer
) -> None:
    assert with_folders.upload_root is not None
    folder = {n: with_folders.upload_root / identity_key(TOKENS[n]) for n in ("alice", "bob")}
    async with connect(with_folders.url, "alice") as (alice, _):
        assert not (await alice.call_tool("credits", {})).is_error  # first use makes the folder
        assert stat.S_IMODE(folder["alice"].stat().st_mode) == 0o700
        mine = folder["alice"] / "mine.mp4"
        shutil.copyfile(sample_mp4(), mine)
        uploaded = await alice.call_tool("upload", {"sources": [str(mine)]})
        assert not uploaded.is_error, text_of(uploaded)
    async with connect(with_folders.url, "bob", roots=["file:///"]) as (bob, seen):
        refusals = [
            await bob.call_tool("upload", {"sources": [source]})
            for source in (
                str(mine),
                f"{folder['bob']}/../{folder['alice'].name}/mine.mp4",
                str(with_folders.operator_clip),
                f"{folder['bob']}/missing.mp4",
            )
        ]
    for result in refusals[:3]:
        _refused(result, "not in your upload folder", f"upload folder {folder['bob']}{os.sep}")
    _refused(refusals[3], "no such file in your upload folder")
    assert seen.roots_asked == 0
    assert _requests(sandbox)["upload"] == 1  # alice's own file, nothing else


def _exit_of(process: subprocess.Popen[bytes], log: Path) -> tuple[int, str]:
    code = process.wait(timeout=60)
    return code, log.read_text()


def test_nemo_token_with_several_users_refuses_to_start(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    env = _env(tmp_path, sandbox, NEMO_TOKEN="nmv_usr_operator_token_123")
    process, _ = run_http(env, tmp_path / "stderr.log")
    code, stderr = _exit_of(process, tmp_path / "stderr.log")
    assert code == 2, stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "NEMO_TOKEN is one NemoVideo account" in stderr
    assert "NEMO_HTTP_SHARED_ACCOUNT=1" in stderr and "Traceback" not in stderr
    assert "nmv_usr_operator_token_123" not in stderr


async def test_shared_account_starts_and_every_user_works_in_it(
    tmp_path: Path, sandbox: SandboxServer
) -> None:
    account = sandbox.control.user(credits=500)
    env = _env(tmp_path, sandbox, NEMO_TOKEN=account["token"], NEMO_HTTP_SHARED_ACCOUNT="1")
    log = tmp_path / "stderr.log"
    process, port = run_http(env, log)
    try:
        wait_listening(process, port, log)
        url = f"http://127.0.0.1:{port}/mcp"
        balances = []
        for name in ("alice", "bob"):
            async with connect(url, name) as (client, _):
                result = await client.call_tool("credits", {})
                assert not result.is_error, text_of(result)
                balances.append(result.structured_content)
    finally:
        end(process)
    assert [b["available"] for b in balances] == [500, 500]  # type: ignore[index]
    assert not any(b["anonymous"] for b in balances)  # type: ignore[index]
    assert sandbox.control.stats()["tokens_issued"] == 0
    assert "all share NEMO_TOKEN's account" in log.read_text()


def test_served_start_up_line_names_the_exposure(served: Served) -> None:
    line = (served.root / "stderr.log").read_text().splitlines()[0]
    assert f"served (HTTP on 127.0.0.1 with NEMO_HTTP_TOKENS): {len(NAMES)} users" in line
    assert "uploads: http(s) URLs only" in line
