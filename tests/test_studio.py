"""The studio's server side through the SDK's real `Client` (both modes), and its pure parts."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import anyio
import jsonschema  # type: ignore[import-untyped]
import pytest
from mcp import Client
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID

from nemo_mcp.server import create_server
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.server.studio import (
    MAX_MEDIA_ORIGINS,
    POSTER_MAX_BYTES,
    STUDIO_URI,
    Studio,
    StudioCredits,
    media_origin,
    poster_uri,
    register_studio,
    resource_domains,
    studio_html,
    studio_state,
)
from nemo_mcp.settings import Settings
from nemo_mcp.store import RenderRecord, StateStore

from mcp_harness import make_settings, text_of

MODES = ["auto", "legacy"]
CONTACT_SHEET = (Path(__file__).parent / "data" / "contact-sheet.jpg").read_bytes()
PROMPT = "a 10-second video of a city at night"
ROOT = Path(__file__).resolve().parents[1]
BUILT = ROOT / "src" / "nemo_mcp" / "server" / "studio.html"


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
async def studio_client(settings: Settings, mode: str) -> AsyncIterator[tuple[Client, Studio]]:
    server = create_server(settings)
    studio = register_studio(server, settings, poster_for=_poster)
    async with Client(server, mode=mode) as client:
        yield client, studio


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
    async with studio_client(settings_for(tmp_path, sandbox), mode) as (client, _):
        tools = {t.name: t for t in (await client.list_tools()).tools}
        extensions = client.server_capabilities.extensions
    assert set(tools) == {"generate", "upload", "export", "credits", "timeline", "studio_state"}
    for name in ("export", "timeline"):
        assert tools[name].meta == {"ui": {"resourceUri": STUDIO_URI}}
    for name in ("generate", "upload", "credits"):
        assert "ui" not in (tools[name].meta or {})
    state = tools["studio_state"]
    # Hosts keep app-only tools away from the model (the SDK lists every tool to every client).
    assert state.meta == {"ui": {"resourceUri": STUDIO_URI, "visibility": ["app"]}}
    assert state.input_schema.get("properties", {}) == {}
    assert state.output_schema is not None and state.annotations is not None
    assert state.annotations.read_only_hint is True and state.annotations.destructive_hint is False
    if mode == "auto":
        assert extensions is not None and EXTENSION_ID in extensions
    else:  # the 2025 handshake has no place for extensions
        assert not extensions


@pytest.mark.parametrize("mode", MODES)
async def test_view_is_served_with_its_csp(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as (client, _):
        listed = {str(r.uri): r for r in (await client.list_resources()).resources}
        read = await client.read_resource(STUDIO_URI)
    entry = listed[STUDIO_URI]
    assert entry.mime_type == APP_MIME_TYPE
    [content] = read.contents
    assert content.mime_type == APP_MIME_TYPE
    assert getattr(content, "text", None) == BUILT.read_text(encoding="utf-8") == studio_html()
    ui = (content.meta or {})["ui"]
    assert ui == {"csp": {"resourceDomains": [sandbox.url]}, "prefersBorder": True}
    assert (entry.meta or {})["ui"] == ui


@pytest.mark.parametrize("mode", MODES)
async def test_state_of_an_empty_project(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as (client, _):
        state = await call(client, "studio_state")
    assert state["timeline"]["tracks"] == [] and state["timeline"]["ready_for_export"] is False
    assert state["credits"] == {"available": 100, "frozen": 0, "total": 100, "anonymous": True}
    assert state["running"] == [] and state["export"] is None and state["problems"] == []


@pytest.mark.parametrize("mode", MODES)
async def test_state_agrees_with_the_tools(tmp_path: Path, sandbox: Any, mode: str) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), mode) as (client, _):
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
    assert shown == exported
    assert base64.b64decode(poster.removeprefix("data:image/jpeg;base64,")) == CONTACT_SHEET
    assert state["running"] == [] and state["problems"] == []
    assert timeline["summary"] in text_of(answer) and "completed" in text_of(answer)


async def test_state_after_a_restart_comes_from_the_render_history(
    tmp_path: Path, sandbox: Any
) -> None:
    settings = settings_for(tmp_path, sandbox)
    async with studio_client(settings, "auto") as (client, _):
        await call(client, "generate", {"message": PROMPT})
        exported = await call(client, "export")
    async with studio_client(settings, "auto") as (client, studio):
        state = await call(client, "studio_state")
    assert {
        k: state["export"][k] for k in ("status", "render_id", "url", "file", "size_bytes")
    } == {k: exported[k] for k in ("status", "render_id", "url", "file", "size_bytes")}
    assert state["export"]["browser_link"] is None  # not asked for again on every look
    assert state["export"]["poster"].startswith("data:image/jpeg;base64,")
    assert studio.csp().resource_domains == [sandbox.url]


async def test_running_work_and_a_rendering_export(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(generation_seconds=0.5, render_seconds=0.8)
    async with studio_client(settings_for(tmp_path, sandbox, tool_timeout=0.15), "auto") as (
        client,
        _,
    ):
        assert (await call(client, "generate", {"message": PROMPT}))["status"] == "running"
        during = await call(client, "studio_state")
        while (await call(client, "generate", {"message": PROMPT}))["status"] == "running":
            pass  # each call waits up to tool_timeout: no busy loop
        rendering = await call(client, "export")
        assert rendering["status"] == "rendering"
        while_rendering = await call(client, "studio_state")
    [work] = during["running"]
    assert work["kind"] == "generation" and work["phase"] and work["percent"] is None
    assert during["timeline"]["running"] and during["export"] is None
    render = [w for w in while_rendering["running"] if w["kind"] == "render"]
    assert len(render) == 1 and 0 <= render[0]["percent"] <= 100
    assert while_rendering["export"]["status"] == "rendering"
    assert while_rendering["export"]["render_id"] == rendering["render_id"]
    assert while_rendering["export"]["poster"] is None


async def test_a_failed_render_is_shown_with_a_problem(tmp_path: Path, sandbox: Any) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), "auto") as (client, _):
        await call(client, "generate", {"message": PROMPT})
        sandbox.control.fault("render_fail", route="render_start")
        failed = await client.call_tool("export", {})
        state = await call(client, "studio_state")
    assert failed.is_error
    assert state["export"]["status"] == "failed" and state["export"]["poster"] is None
    assert any("render failed" in p for p in state["problems"])


async def test_backend_failures_become_problems(tmp_path: Path, sandbox: Any) -> None:
    async with studio_client(settings_for(tmp_path, sandbox), "auto") as (client, _):
        await call(client, "studio_state")  # a session exists
        sandbox.control.fault("rate_limited", route="credits", times=None, retry_after="0")
        state = await call(client, "studio_state")
    assert state["credits"] is None and state["timeline"] is not None
    assert len(state["problems"]) == 1 and state["problems"][0].startswith("Credits: ")


async def test_media_origins_seen_widen_the_csp(tmp_path: Path, sandbox: Any) -> None:
    settings = settings_for(tmp_path, sandbox)
    store = StateStore(settings.home, settings.api_url)
    store.save_render(
        RenderRecord(
            id="render_1",
            session_id="s",
            status="completed",
            started_at=0.0,
            url="https://cdn.example.test/renders/render_1.mp4",
        )
    )
    async with studio_client(settings, "legacy") as (client, studio):
        first = (await client.read_resource(STUDIO_URI)).contents[0].meta
        studio.note_media("https://media.example.test:8443/x.mp4", "javascript:alert(1)", None)
        second = (await client.read_resource(STUDIO_URI)).contents[0].meta
    assert first is not None and second is not None
    assert first["ui"]["csp"]["resourceDomains"] == sorted(
        ["https://cdn.example.test", sandbox.url]
    )
    assert second["ui"]["csp"]["resourceDomains"] == sorted(
        ["https://cdn.example.test", "https://media.example.test:8443", sandbox.url]
    )


def test_the_csp_keeps_the_newest_media_origins() -> None:
    async def unused(_ctx: Any) -> Any:
        raise AssertionError("not called")

    studio = Studio(api_url="https://api.example.test", service_of=unused, html="<p>view</p>")
    studio.note_media(*(f"https://cdn{n}.example.test/v.mp4" for n in range(MAX_MEDIA_ORIGINS)))
    studio.note_media("https://cdn0.example.test/again.mp4", "https://late.example.test/v.mp4")
    domains = studio.csp().resource_domains or []
    assert len(domains) == MAX_MEDIA_ORIGINS + 1  # and the API's
    assert "https://api.example.test" in domains and "https://late.example.test" in domains
    assert "https://cdn0.example.test" in domains  # seen again: recent
    assert "https://cdn1.example.test" not in domains  # the least recently seen went


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


def test_resource_domains_are_sorted_unique_origins() -> None:
    domains = resource_domains(
        "https://mega-api-prod.nemovideo.ai",
        ["https://cdn.b.example/x.mp4", "https://cdn.b.example/y.mp4", "javascript:x", None],
    )
    assert domains == ["https://cdn.b.example", "https://mega-api-prod.nemovideo.ai"]
    assert all("*" not in d for d in domains)


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
    state = studio_state(timeline=None, credits=credits, export=_export(), poster=CONTACT_SHEET)
    assert state.export is not None and state.export.poster == poster_uri(CONTACT_SHEET)
    assert state.problems == [] and state.credits == credits

    unfinished = studio_state(
        timeline=None, credits=None, export=_export("rendering"), poster=CONTACT_SHEET
    )
    assert unfinished.export is not None and unfinished.export.poster is None

    bad = studio_state(
        timeline=None, credits=None, export=_export(), poster=b"GIF89a", problems=["x"]
    )
    assert bad.export is not None and bad.export.poster is None
    assert bad.problems == ["x", "Poster: the contact sheet is not a JPEG image."]

    nothing = studio_state(timeline=None, credits=None, export=None, poster=CONTACT_SHEET)
    assert nothing.export is None and nothing.problems == []


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


async def test_an_unexpected_failure_is_one_sentence(tmp_path: Path, sandbox: Any) -> None:
    async def broken(_export: ExportOutput) -> bytes | None:
        raise RuntimeError("contact sheet maker exploded")

    settings = settings_for(tmp_path, sandbox)
    server = create_server(settings)
    register_studio(server, settings, poster_for=broken)
    async with Client(server) as client:
        await call(client, "generate", {"message": PROMPT})
        await call(client, "export")
        answer = await client.call_tool("studio_state", {})
    assert answer.is_error
    assert "Reading the studio's state failed because of an unexpected problem" in text_of(answer)
    assert "exploded" not in text_of(answer)
