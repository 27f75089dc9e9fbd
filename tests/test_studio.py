"""The studio's server side through the SDK's real `Client` (both modes), and its pure parts."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jsonschema  # type: ignore[import-untyped]
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp_types import CallToolResult

from nemo_mcp.ledger import Entry
from nemo_mcp.server import create_server
from nemo_mcp.server.exposure import identity_key
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.server.studio import (
    MAX_MEDIA_ORIGINS,
    POSTER_MAX_BYTES,
    STUDIO_TOOL_META,
    STUDIO_URI,
    ContactSheets,
    StudioCredits,
    media_csp,
    media_origin,
    newest_export,
    playable_url,
    poster_uri,
    resource_domains,
    running_work,
    studio_html,
    studio_state,
)
from nemo_mcp.settings import Settings

from mcp_harness import make_settings, text_of
from media_files import sample_mp4
from processes import http_server, server_env
from studio_harness import APPS, seed_render

MODES = ["auto", "legacy"]
CONTACT_SHEET = (Path(__file__).parent / "data" / "contact-sheet.jpg").read_bytes()
PROMPT = "a 10-second video of a city at night"
ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "src" / "nemo_mcp" / "server" / "studio.html"
FIVE = {"generate", "upload", "export", "credits", "timeline"}


def missing_build_parts() -> str | None:
    """Why the view cannot be rebuilt here, or None."""
    if shutil.which("node") is None:
        return "node is not installed"
    if not (ROOT / "node_modules" / "esbuild" / "package.json").exists():
        return "node_modules is missing: run `npm ci` in the repository"
    return None


@pytest.fixture(autouse=True)
def quick(sandbox: Any) -> None:
    """Generations and renders in a tenth of a second (the tests below wait on several)."""
    sandbox.control.set(generation_seconds=0.1, edit_seconds=0.05, render_seconds=0.1)


def settings_for(tmp_path: Path, sandbox: Any, **overrides: Any) -> Settings:
    return make_settings(tmp_path, sandbox.url, **{"render_shortest": 0.05, **overrides})


async def _poster(export: ExportOutput) -> bytes | None:
    """The test's contact sheet, for an export whose file was saved."""
    return CONTACT_SHEET if export.file and await anyio.Path(export.file).is_file() else None


@asynccontextmanager
async def studio_client(
    settings: Settings, mode: str, *, apps: bool = True
) -> AsyncIterator[Client]:
    """A client on a fresh server; `apps`: it negotiates MCP Apps, as a host does."""
    server = create_server(settings, poster_for=_poster)
    async with Client(server, mode=mode, extensions=[APPS] if apps else None) as client:
        yield client


async def call(client: Client, name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tool's structured content, checked against its output schema."""
    tools = {t.name: t for t in (await client.list_tools()).tools}
    result = await client.call_tool(name, args or {})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    jsonschema.validate(result.structured_content, tools[name].output_schema or {})
    return dict(result.structured_content)


# Through the SDK's client -------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
async def test_tools_name_the_view(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        extensions = client.server_capabilities.extensions
        server = client.server_info
    assert set(tools) == FIVE | {"studio_state"}
    for name in ("generate", "export", "timeline"):
        assert tools[name].meta == STUDIO_TOOL_META == {"ui": {"resourceUri": STUDIO_URI}}
    for name in ("upload", "credits"):
        assert "ui" not in (tools[name].meta or {})
    state = tools["studio_state"]
    assert state.meta == {"ui": {"resourceUri": STUDIO_URI, "visibility": ["app"]}}
    assert state.input_schema.get("properties", {}) == {}
    assert state.output_schema is not None and state.annotations is not None
    assert state.annotations.read_only_hint is True and state.annotations.destructive_hint is False
    if mode == "auto":
        assert extensions is not None and EXTENSION_ID in extensions
    else:  # the 2025 handshake has no place for server extensions
        assert not extensions
    # Icons: the server's and each tool's, inline SVGs (nothing to fetch).
    assert server is not None and server.icons
    for icon in [*server.icons, *(i for name in FIVE for i in tools[name].icons or [])]:
        assert icon.mime_type == "image/svg+xml" and icon.sizes == ["any"]
        svg = base64.b64decode(icon.src.removeprefix("data:image/svg+xml;base64,")).decode()
        assert svg.startswith("<svg xmlns=") and svg.endswith("</svg>")
    assert all(len(tools[name].icons or []) == 1 for name in FIVE)
    assert len({tools[name].icons[0].src for name in FIVE}) == 5  # type: ignore[index]


@pytest.mark.parametrize("mode", MODES)
async def test_without_apps_the_view_is_not_offered(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode, apps=False) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
    assert tools == FIVE
    assert "nemo://timeline" in uris and not any(u.startswith("ui://") for u in uris)


def _same_everywhere(result: CallToolResult) -> tuple[str, Any]:
    """A result with what differs between any two calls blanked: the one-use claim token in
    the browser link, how long ago a request was answered, and the handle of an export
    asked again (new work each time, answered from the same file)."""
    text = re.sub(r"ct=[^\s\"]+", "ct=*", text_of(result))
    text = re.sub(r"answered \S+ ago", "answered * ago", text)
    text = re.sub(r'request_id "\w+"', 'request_id "*"', text)
    data = result.structured_content or {}
    if data.get("request_id"):
        data = {**data, "request_id": "*"}
    if data.get("browser_link"):
        data = {**data, "browser_link": re.sub(r"ct=.*", "ct=*", data["browser_link"])}
    if isinstance(data.get("notes"), list):
        data = {**data, "notes": [re.sub(r"answered \S+ ago", "*", n) for n in data["notes"]]}
    return text, data


@pytest.mark.parametrize("mode", MODES)
async def test_a_client_without_apps_gets_identical_results(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    settings = settings_for(tmp_path, sandbox)
    calls = [
        ("generate", {"message": PROMPT}),
        ("export", {}),
        ("timeline", {}),
        ("credits", {}),
        ("upload", {"sources": ["https://example.com/a.jpg"]}),  # last: it changes the state
    ]
    async with studio_client(settings, mode) as first:  # the work, done once
        await call(first, "generate", {"message": PROMPT})
        await call(first, "export")
    answers: dict[bool, list[tuple[str, Any]]] = {False: [], True: []}
    async with (
        studio_client(settings, mode, apps=False) as plain,
        studio_client(settings, mode) as host,
    ):
        for name, args in calls:  # each call by both, one after the other: the same state
            for apps, client in ((False, plain), (True, host)):
                answers[apps].append(_same_everywhere(await client.call_tool(name, args)))
        listed = {
            apps: {t.name: t.model_dump() for t in (await c.list_tools()).tools if t.name in FIVE}
            for apps, c in ((False, plain), (True, host))
        }
    assert answers[False] == answers[True]
    assert listed[False] == listed[True]
    exported = answers[False][1][1]
    assert exported["reused"] is True and exported["file"]  # the same saved file, not re-rendered
    assert sandbox.control.stats()["renders_started"] == 1


@pytest.mark.parametrize("mode", MODES)
async def test_view_is_served_with_its_csp(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as client:
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        read = await client.read_resource(STUDIO_URI)
    entry = listed[STUDIO_URI]
    assert entry.mime_type == APP_MIME_TYPE == "text/html;profile=mcp-app"
    [content] = read.contents
    assert content.mime_type == APP_MIME_TYPE
    assert getattr(content, "text", None) == BUILT.read_text(encoding="utf-8") == studio_html()
    ui = (content.meta or {})["ui"]
    assert ui == {"csp": {"resourceDomains": [sandbox.url]}, "prefersBorder": True}
    assert (entry.meta or {})["ui"] == ui


@pytest.mark.parametrize("mode", MODES)
async def test_state_of_an_empty_project(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as client:
        state = await call(client, "studio_state")
    assert state["timeline"]["tracks"] == [] and state["timeline"]["ready_for_export"] is False
    assert state["credits"] == {"available": 100, "frozen": 0, "total": 100, "anonymous": True}
    assert state["running"] == [] and state["export"] is None and state["problems"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_state_agrees_with_the_tools(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as client:
        await call(client, "generate", {"message": PROMPT})
        exported = await call(client, "export")
        state = await call(client, "studio_state")
        timeline = await call(client, "timeline")
        credits = await call(client, "credits")
        answer = await client.call_tool("studio_state", {})
    assert state["timeline"] == timeline
    assert state["credits"] == {
        k: credits[k] for k in ("available", "frozen", "total", "anonymous")
    }
    shown = dict(state["export"])
    poster = shown.pop("poster")
    assert shown.pop("playable_url") == exported["url"]
    assert shown == exported  # the ledger's outcome, as the export tool gave it
    assert base64.b64decode(poster.removeprefix("data:image/jpeg;base64,")) == CONTACT_SHEET
    assert state["running"] == [] and state["problems"] == []
    assert timeline["summary"] in text_of(answer) and "completed" in text_of(answer)


async def test_state_after_a_restart_comes_from_the_ledger(tmp_path: Path, sandbox: Any) -> None:
    settings = settings_for(tmp_path, sandbox)
    async with studio_client(settings, "auto") as client:
        await call(client, "generate", {"message": PROMPT})
        exported = await call(client, "export")
    async with studio_client(settings, "auto") as client:
        read = await client.read_resource(STUDIO_URI)  # before any tool call of this process
        state = await call(client, "studio_state")
    shown = dict(state["export"])
    assert shown.pop("poster").startswith("data:image/jpeg;base64,")
    assert shown.pop("playable_url") == exported["url"]
    assert shown == exported
    csp = (read.contents[0].meta or {})["ui"]["csp"]
    assert csp == {"resourceDomains": [sandbox.url]}


async def test_running_work_and_a_rendering_export(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=0.6, render_seconds=1.0)
    settings = settings_for(tmp_path, sandbox, tool_timeout=0.15)
    async with studio_client(settings, "auto") as client:
        assert (await call(client, "generate", {"message": PROMPT}))["status"] == "running"
        during = await call(client, "studio_state")
        while (await call(client, "generate", {"message": PROMPT}))["status"] == "running":
            pass  # each call waits up to tool_timeout: no busy loop
        rendering = await call(client, "export")
        assert rendering["status"] == "rendering"
        while_rendering = await call(client, "studio_state")
        while (await call(client, "export"))["status"] != "completed":
            pass
        after = await call(client, "studio_state")
    [work] = during["running"]
    assert work["kind"] == "generation" and work["phase"] and work["percent"] is None
    assert during["timeline"]["running"] and during["export"] is None
    [render] = while_rendering["running"]
    assert render["kind"] == "render" and render["phase"]
    assert render["percent"] is None or 0 <= render["percent"] <= 100
    shown = while_rendering["export"]
    assert shown["status"] == "rendering" and shown["render_id"] == rendering["render_id"]
    assert shown["poster"] is None and shown["playable_url"] is None
    assert after["running"] == [] and after["export"]["status"] == "completed"
    assert after["export"]["render_id"] == rendering["render_id"]


async def test_a_failed_render_is_shown_with_a_problem(tmp_path: Path, sandbox: Any) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), "auto") as client:
        await call(client, "generate", {"message": PROMPT})
        sandbox.control.fault("render_fail", route="render_start")
        failed = await client.call_tool("export", {})
        state = await call(client, "studio_state")
    assert failed.is_error
    shown = state["export"]
    assert shown["status"] == "failed" and shown["poster"] is None and shown["playable_url"] is None
    assert "render failed" in shown["progress"]
    assert any("render failed" in p for p in state["problems"])


async def test_backend_failures_become_problems(tmp_path: Path, sandbox: Any) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), "auto") as client:
        await call(client, "studio_state")  # a session exists
        sandbox.control.fault("rate_limited", route="credits", times=None, retry_after="0")
        state = await call(client, "studio_state")
    assert state["credits"] is None and state["timeline"] is not None
    assert len(state["problems"]) == 1 and state["problems"][0].startswith("Credits: ")


@pytest.mark.parametrize("mode", MODES)
async def test_the_token_only_download_is_never_played(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    settings = settings_for(tmp_path, sandbox)
    fallback = f"{sandbox.url}/api/render/proxy/render_9/download"
    async with studio_client(settings, mode) as client:
        session = (await call(client, "timeline"))["session_id"]
        await seed_render(settings, url=fallback, session_id=session, render_id="render_9")
        state = await call(client, "studio_state")
        meta = (await client.read_resource(STUDIO_URI)).contents[0].meta
    shown = state["export"]
    assert shown["render_id"] == "render_9" and shown["url"] == fallback
    assert shown["playable_url"] is None
    assert meta is not None and meta["ui"]["csp"]["resourceDomains"] == [sandbox.url]


async def test_media_origins_in_the_ledger_widen_the_csp(tmp_path: Path, sandbox: Any) -> None:
    settings = settings_for(tmp_path, sandbox)
    await seed_render(settings, url="https://cdn.example.test/renders/render_1.mp4")
    async with studio_client(settings, "legacy") as client:
        first = (await client.read_resource(STUDIO_URI)).contents[0].meta
        await seed_render(settings, url="https://media.example.test:8443/x.mp4", render_id="r2")
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        second = (await client.read_resource(STUDIO_URI)).contents[0].meta
    assert first is not None and second is not None
    assert first["ui"]["csp"]["resourceDomains"] == sorted(
        ["https://cdn.example.test", sandbox.url]
    )
    widened = sorted(["https://cdn.example.test", "https://media.example.test:8443", sandbox.url])
    assert second["ui"]["csp"]["resourceDomains"] == widened
    assert (listed[STUDIO_URI].meta or {})["ui"]["csp"]["resourceDomains"] == widened


async def test_one_users_media_never_widens_another_users_csp(tmp_path: Path, sandbox: Any) -> None:
    """Served to two bearer tokens: each caller's view allows their own renders' media."""
    tokens = ("alice-secret-token-123", "bob-secret-token-456")
    env = server_env(tmp_path, sandbox, NEMO_HTTP_TOKENS=",".join(tokens))
    alice_home = tmp_path / "home" / "http-users" / identity_key(tokens[0])
    alice = settings_for(tmp_path, sandbox).with_overrides(home=alice_home)
    await seed_render(alice, url="https://cdn.alice.test/renders/render_1.mp4")

    async def view_csp(token: str, *, call_first: bool) -> tuple[Any, Any]:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60) as http,
            Client(
                streamable_http_client(url, http_client=http),  # type: ignore[arg-type]
                extensions=[APPS],
            ) as client,
        ):
            if call_first:  # the user's service is open on the server from now on
                assert not (await client.call_tool("timeline", {})).is_error
            read = (await client.read_resource(STUDIO_URI)).contents[0].meta or {}
            listed = {str(r.uri): r for r in (await client.list_resources()).resources}
            return read["ui"]["csp"], (listed[STUDIO_URI].meta or {})["ui"]["csp"]

    with http_server(env, tmp_path / "stderr.log") as url:
        alice_read, alice_listed = await view_csp(tokens[0], call_first=True)
        bob_read, bob_listed = await view_csp(tokens[1], call_first=False)
        bob_after_a_call = await view_csp(tokens[1], call_first=True)
    mine = {"resourceDomains": sorted(["https://cdn.alice.test", sandbox.url])}
    assert alice_read == alice_listed == mine
    assert bob_read == bob_listed == {"resourceDomains": [sandbox.url]}
    assert bob_after_a_call == (bob_read, bob_read)


def test_the_csp_keeps_the_newest_media_origins() -> None:
    urls = [f"https://cdn{n}.example.test/v.mp4" for n in range(MAX_MEDIA_ORIGINS)]
    urls += ["https://cdn0.example.test/again.mp4", "https://late.example.test/v.mp4"]
    urls += ["javascript:alert(1)", None, "https://*.example.test/x"]
    domains = media_csp("https://api.example.test", urls).resource_domains or []
    assert len(domains) == MAX_MEDIA_ORIGINS + 1  # and the API's
    assert "https://api.example.test" in domains and "https://late.example.test" in domains
    assert "https://cdn0.example.test" in domains  # seen again: recent
    assert "https://cdn1.example.test" not in domains  # the least recently seen went
    assert all("*" not in d for d in domains)


async def test_an_unexpected_failure_is_one_sentence(tmp_path: Path, sandbox: Any) -> None:
    async def broken(_export: ExportOutput) -> bytes | None:
        raise RuntimeError("contact sheet maker exploded")

    server = create_server(settings_for(tmp_path, sandbox), poster_for=broken)
    async with Client(server, extensions=[APPS]) as client:
        await call(client, "generate", {"message": PROMPT})
        await call(client, "export")
        answer = await client.call_tool("studio_state", {})
    assert answer.is_error
    assert "Reading the studio's state failed because of an unexpected problem" in text_of(answer)
    assert "exploded" not in text_of(answer)


# Contact sheets -------------------------------------------------------------------------------
class _Kit:
    """A stand-in media kit: writes a fixed JPEG and counts the sheets it made."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    def contact_sheet(self, source: Path, output: Path) -> None:
        self.made.append(Path(source))
        Path(output).write_bytes(CONTACT_SHEET)


async def test_contact_sheets_come_from_the_media_kit_once_per_file(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    kit = _Kit()
    sheets = ContactSheets(lambda: kit)
    done = ExportOutput(status="completed", render_id="r", file=str(video))
    assert await sheets(done) == CONTACT_SHEET
    assert await sheets(done) == CONTACT_SHEET
    assert kit.made == [video]  # made once, then kept
    video.write_bytes(b"\1" * 65)  # another file at the same path: a new sheet
    assert await sheets(done) == CONTACT_SHEET and len(kit.made) == 2
    rendering = ExportOutput(status="rendering", render_id="r", file=str(video))
    missing = ExportOutput(status="completed", render_id="r", file=str(tmp_path / "gone.mp4"))
    assert await sheets(rendering) is None and await sheets(missing) is None
    assert await ContactSheets(lambda: None)(done) is None  # no media kit here
    assert len(kit.made) == 2


async def test_contact_sheets_of_real_videos_from_the_media_kit(tmp_path: Path) -> None:
    """The real kit: a sheet of a real MP4; none (no error) of bytes that are no video."""
    video = tmp_path / "clip.mp4"
    shutil.copyfile(sample_mp4(), video)
    sheet = await ContactSheets()(ExportOutput(status="completed", render_id="r", file=str(video)))
    assert sheet is not None and poster_uri(sheet).startswith("data:image/jpeg;base64,")
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(4096))
    done = ExportOutput(status="completed", render_id="r", file=str(fake))
    assert await ContactSheets()(done) is None


async def test_a_slow_contact_sheet_is_given_up(tmp_path: Path) -> None:
    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    class Slow:
        def contact_sheet(self, source: Path, output: Path) -> None:
            entered.set()
            try:
                release.wait(timeout=10)  # held until the answer is in (10 s at most)
                Path(output).write_bytes(CONTACT_SHEET)
            finally:
                finished.set()

    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\0" * 64)
    sheets = ContactSheets(lambda: Slow(), seconds=0.2)
    done = ExportOutput(status="completed", render_id="r", file=str(video))
    try:
        sheet = await sheets(done)
        answered_while_making = entered.is_set() and not finished.is_set()
    finally:
        release.set()
    assert finished.wait(timeout=30)  # the abandoned worker ends
    assert sheet is None and answered_while_making  # given up, not waited for


# The pure parts -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://cdn.example.com/a/b.mp4?sig=1#t", "https://cdn.example.com"),
        ("HTTPS://CDN.Example.COM:443/x", "https://cdn.example.com"),
        ("http://127.0.0.1:8080/files/x.mp4", "http://127.0.0.1:8080"),
        ("http://localhost:80/x", "http://localhost"),
        ("http://[::1]:9000/x", "http://[::1]:9000"),
        ("https://user:pw@cdn.example.com/x", None),
        ("https://*.example.com/x", None),
        ("https://cdn.example.com;script-src:1/x", None),
        ("https://exa mple.com/x", None),
        ("ftp://cdn.example.com/x", None),
        ("javascript:alert(1)", None),
        ("data:video/mp4;base64,AAAA", None),
        ("/files/x.mp4", None),
        ("https://cdn.example.com:99999/x", None),
        ("", None),
        (None, None),
    ],
)
def test_media_origin(url: str | None, origin: str | None) -> None:
    assert media_origin(url) == origin


API = "https://mega-api-prod.nemovideo.ai"


@pytest.mark.parametrize(
    ("url", "playable"),
    [
        ("https://cdn.nemovideo.ai/r/render_1.mp4", True),
        (f"{API}/files/render_1.mp4", True),  # the API's host, another route
        (f"{API}/api/render/proxy/render_1/download", False),
        (f"{API}/api/render/proxy/render_1/download/", False),
        (f"{API}/api/render/proxy/render_1/download?x=1#t", False),
        ("HTTPS://MEGA-API-PROD.NEMOVIDEO.AI/api/render/proxy/r/download", False),
        ("javascript:alert(1)", False),
        (None, False),
    ],
)
def test_playable_url(url: str | None, playable: bool) -> None:
    assert playable_url(url, API) == (url if playable else None)


def test_resource_domains_are_sorted_unique_origins() -> None:
    domains = resource_domains(
        API, ["https://cdn.b.example/x.mp4", "https://cdn.b.example/y.mp4", "javascript:x", None]
    )
    assert domains == ["https://cdn.b.example", API]


def test_poster_uri() -> None:
    assert (
        poster_uri(CONTACT_SHEET)
        == "data:image/jpeg;base64," + base64.b64encode(CONTACT_SHEET).decode()
    )
    with pytest.raises(ValueError, match="not a JPEG"):
        poster_uri(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(ValueError, match="too large"):
        poster_uri(b"\xff\xd8\xff" + bytes(POSTER_MAX_BYTES))


def _export(status: str = "completed") -> ExportOutput:
    return ExportOutput.model_validate(
        {"status": status, "render_id": "render_1", "url": "https://cdn.example.com/r.mp4"}
    )


def test_studio_state_from_plain_values() -> None:
    credits = StudioCredits(available=50, frozen=10, total=60, anonymous=False)
    url = "https://cdn.example.com/r.mp4"
    state = studio_state(
        timeline=None, credits=credits, export=_export(), playable=url, poster=CONTACT_SHEET
    )
    assert state.export is not None and state.export.poster == poster_uri(CONTACT_SHEET)
    assert state.export.playable_url == url
    assert state.problems == [] and state.credits == credits

    unfinished = studio_state(
        timeline=None, credits=None, export=_export("rendering"), playable=url, poster=b"x"
    )
    assert unfinished.export is not None and unfinished.export.poster is None
    assert unfinished.export.playable_url is None

    bad = studio_state(
        timeline=None, credits=None, export=_export(), poster=b"GIF89a", problems=["x"]
    )
    assert bad.export is not None and bad.export.poster is None
    assert bad.problems == ["x", "Poster: the contact sheet is not a JPEG image."]

    nothing = studio_state(timeline=None, credits=None, export=None, poster=CONTACT_SHEET)
    assert nothing.export is None and nothing.problems == []


def _entry(n: int, **fields: Any) -> Entry:
    values: dict[str, Any] = dict(
        id=f"e{n}",
        user="",
        seq=n,
        kind="render",
        key="render|mp4|high",
        session_id="s",
        state="done",
        request={},
        created_at=100.0 + n,
        updated_at=100.0 + n,
        finished_at=110.0 + n,
        memo={"render_id": f"render_{n}"},
        outcome={"status": "completed", "render_id": f"render_{n}"},
    )
    values.update(fields)
    return Entry(**values)


def test_newest_export_and_running_work_from_ledger_entries() -> None:
    older = _entry(1)
    other_session = _entry(2, session_id="t")
    failed = _entry(3, state="failed", error={"message": "render failed: timed out"})
    assert newest_export([older, other_session], [], "s", 200.0) == ExportOutput.model_validate(
        older.outcome
    )
    shown = newest_export([older, failed], [], "s", 200.0)
    assert shown is not None and shown.status == "failed" and shown.render_id == "render_3"
    assert shown.progress == "render failed: timed out"
    assert newest_export([older], [], "u", 200.0) is None
    refused = _entry(7, state="failed", memo={}, error={"message": "Nothing to export yet"})
    assert newest_export([older, refused], [], "s", 200.0) == ExportOutput.model_validate(
        older.outcome
    )  # refused before any render started: not a render

    message = _entry(
        4, kind="message", state="streaming", finished_at=None, progress={"phase": "adding music"}
    )
    render = _entry(
        5, state="rendering", finished_at=None, outcome=None, progress={"percent": 42.04}
    )
    queued = _entry(6, state="queued", finished_at=None, outcome=None, session_id="t")
    pending = newest_export([older, render, queued], [message, render, queued], "s", 200.0)
    assert pending is not None and pending.status == "queued" and pending.ahead == 2
    handoff = _entry(8, kind="handoff", state="queued", finished_at=None, outcome=None)
    work = running_work([message, render, queued, older, handoff], 200.0)
    assert [(w.kind, w.phase, w.percent) for w in work] == [
        ("generation", "adding music", None),
        ("render", "rendering", 42.0),
        ("render", "waiting for its turn", None),
        ("handoff", "waiting for its turn", None),
    ]
    assert work[0].elapsed_seconds == 96.0


# The built file ---------------------------------------------------------------------------------
class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self.tags and self.tags[-1][0] == "style":
            self.styles.append(data)


def test_built_view_is_self_contained() -> None:
    html = BUILT.read_text(encoding="utf-8")
    parser = _Tags()
    parser.feed(html)
    names = [tag for tag, _ in parser.tags]
    assert names.count("script") == 1 and names.count("style") == 1
    assert {"link", "iframe", "object", "embed", "base", "img"}.isdisjoint(names)
    for tag, attrs in parser.tags:
        assert not {"src", "href", "srcset", "poster", "action"} & set(attrs), (tag, attrs)
    css = "".join(parser.styles)
    assert css and not re.search(r"url\(|@import|@font-face", css), "the stylesheet loads something"
    assert "innerHTML" not in html


def test_built_view_matches_its_sources() -> None:
    """The committed studio.html is what `npm run build:studio` makes of app/studio/."""
    missing = missing_build_parts()
    if missing is not None:
        pytest.skip(f"cannot rebuild the view: {missing}")
    done = subprocess.run(
        ["node", str(ROOT / "app" / "build.mjs"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
