"""The studio view in headless Chromium, hosted by ext-apps' AppBridge, against the real server.

The host page plays the model: it calls tools over streamable HTTP and, for a tool that
names the studio, renders the view in a sandboxed iframe under the CSP the server declares.
Everything checked here is what a user would see, compared with what the tools say.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from nemo_mcp.server import create_server
from nemo_mcp.server.outputs import ExportOutput
from nemo_mcp.settings import Settings

from mcp_harness import make_settings
from studio_harness import (
    ARTIFACTS,
    Browser,
    build_host_page,
    host_site,
    missing_browser_parts,
    renders_in,
    seed_render,
    serve,
)

pytestmark = pytest.mark.skipif(
    (why := missing_browser_parts()) is not None, reason=f"browser tests: {why}"
)

CONTACT_SHEET = (Path(__file__).parent / "data" / "contact-sheet.jpg").read_bytes()
POSTER = "data:image/jpeg;base64," + base64.b64encode(CONTACT_SHEET).decode()
PROMPT = "a 10-second video of a city at night"
FIVE = {"generate", "upload", "export", "credits", "timeline"}


@dataclass
class Site:
    """One server with the studio, and the host page in front of it."""

    url: str
    settings: Settings
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def called(self, name: str) -> list[dict[str, Any]]:
        """The arguments of every `name` call the server received, in order."""
        return [args for tool, args in self.calls if tool == name]


@pytest.fixture(scope="module")
def host_page(tmp_path_factory: pytest.TempPathFactory) -> str:
    return build_host_page(tmp_path_factory.mktemp("host") / "host.html")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    driver = Browser()
    try:
        yield driver
    finally:
        driver.close()


async def _poster(export: ExportOutput) -> bytes | None:
    """The test's contact sheet, for an export whose file was saved."""
    return CONTACT_SHEET if export.file and await anyio.Path(export.file).is_file() else None


@contextmanager
def make_site(
    tmp_path: Path, sandbox: Any, host_page: str, browser: Browser, **settings_overrides: Any
) -> Iterator[Site]:
    """The server with the studio (calls recorded server-side) and the host page before it."""
    settings = make_settings(
        tmp_path, sandbox.url, **{"render_shortest": 0.05, **settings_overrides}
    )
    server = create_server(settings, poster_for=_poster)
    calls: list[tuple[str, dict[str, Any]]] = []

    async def record(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and ctx.params is not None:
            calls.append((str(ctx.params.get("name")), dict(ctx.params.get("arguments") or {})))
        return await call_next(ctx)

    server.middleware.append(record)
    app = server.streamable_http_app(
        streamable_http_path="/mcp", json_response=False, host="127.0.0.1"
    )
    with (
        serve(app, "studio-mcp") as upstream,
        serve(host_site(upstream, host_page), "studio-host") as url,
    ):
        try:
            browser.open(url)
            browser.host("studioHost.connect('legacy')")
            yield Site(url=url, settings=settings, calls=calls)
        finally:
            browser.close_page()  # its MCP streams end before the servers stop


@pytest.fixture
def site(tmp_path: Path, sandbox: Any, host_page: str, browser: Browser) -> Iterator[Site]:
    sandbox.control.set(generation_seconds=0.1, edit_seconds=0.05, render_seconds=0.1)
    with make_site(tmp_path, sandbox, host_page, browser) as made:
        yield made


def shot(browser: Browser, name: str, capsys: pytest.CaptureFixture[str]) -> Path:
    path = browser.screenshot(ARTIFACTS / f"{name}.png")
    with capsys.disabled():
        print(f"\nstudio screenshot: {path}")
    return path


def idle(browser: Browser) -> dict[str, Any]:
    """Wait until the view has nothing in flight and shows its last read; what it shows."""
    browser.until("s.status === 'Up to date.'")
    return browser.snapshot()


def host_events(browser: Browser, kind: str) -> list[dict[str, Any]]:
    return list(browser.host(f"studioHost.events.filter(e => e.type === {json.dumps(kind)})"))


def refused(log: list[dict[str, Any]]) -> list[str]:
    """Console lines about anything blocked or broken."""
    bad = ("Refused", "Content Security Policy", "Uncaught", "Failed to load")
    return [
        f"{m['text']} ({m['url']})"
        for m in log
        if m["type"] == "error" or any(b in m["text"] for b in bad)
    ]


def model_call(browser: Browser, tool: str, args: dict[str, Any] | None = None) -> Any:
    return browser.host(f"studioHost.callAsModel({json.dumps(tool)}, {json.dumps(args or {})})")


def newest_render_url(site: Site) -> str | None:
    """The URL of the newest render in the ledger."""
    url = anyio.run(renders_in, site.settings)[-1].memo.get("url")
    return str(url) if url is not None else None


def test_view_after_export(
    site: Site, browser: Browser, sandbox: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    tools = browser.host("studioHost.allTools().map(t => t.name)")
    assert set(tools) == FIVE | {"studio_state"}
    assert set(browser.host("studioHost.modelTools()")) == FIVE  # app-only: hidden from the model

    made = model_call(browser, "generate", {"message": PROMPT})
    assert made["structuredContent"]["status"] == "completed", made
    [shown] = host_events(browser, "view-opened")  # generate shows the studio too
    assert shown["uri"] == "ui://nemovideo/studio"

    exported = model_call(browser, "export")["structuredContent"]
    assert exported["status"] == "completed"
    # The player: the rendered MP4, with the contact sheet as its poster, and it really loads
    # under the view's CSP (the server declared its origin).
    player = browser.until("s.player.poster && s.player.duration > 0 && s.player")
    assert player["src"] == exported["url"] and player["poster"] == POSTER
    assert not player["hidden"] and not player["empty"] and player["readyState"] >= 1
    assert 0 < player["duration"] < 60

    # The timeline as the timeline tool gives it: every track and segment, placed by time.
    timeline = model_call(browser, "timeline")["structuredContent"]
    view = idle(browser)
    drawn = view["timeline"]["tracks"]
    assert [t["kind"] for t in drawn] == [t["kind"] for t in timeline["tracks"]]
    assert [t["name"] for t in drawn] == [t["label"] for t in timeline["tracks"]]
    assert [len(t["segments"]) for t in drawn] == [len(t["segments"]) for t in timeline["tracks"]]
    assert sum(len(t["segments"]) for t in drawn) >= 3  # clip, music, title
    total = timeline["duration_seconds"]
    for track, shown in zip(timeline["tracks"], drawn, strict=True):
        for segment, block in zip(track["segments"], shown["segments"], strict=True):
            assert float(block["left"].rstrip("%")) == pytest.approx(segment["start"] / total * 100)
            width = segment["duration"] / total * 100
            assert float(block["width"].rstrip("%")) == pytest.approx(width)
            level = segment["volume"] if segment["volume"] is not None else track["volume"]
            audible = track["kind"] == "audio" and level is not None
            assert block["volume"] == (f"{level * 100:g}%" if audible else None)
    [title] = next(t for t in timeline["tracks"] if t["kind"] == "text")["segments"]
    assert f"“{title['text']}”" in [s["label"] for t in drawn for s in t["segments"]]
    assert view["timeline"]["duration"] == f"{total:g}s" and view["timeline"]["ready"] == "true"
    assert view["timeline"]["summary"] == timeline["summary"]

    # Credits as the credits tool gives them; nothing running.
    credits = model_call(browser, "credits")["structuredContent"]
    assert view["credits"] == {k: credits[k] for k in ("available", "frozen", "total")}
    assert view["running"] == [] and view["nothingRunning"] is True

    # Refresh asks the server once, through the host.
    before = len(site.called("studio_state"))
    browser.click("#refresh")
    idle(browser)
    assert len(site.called("studio_state")) == before + 1
    assert [e["name"] for e in host_events(browser, "view-call")].count(
        "studio_state"
    ) == before + 1

    # The host's theme (its CSS variables) and the sizes the view reports.
    light = shot(browser, "studio-light", capsys)
    assert browser.snapshot()["background"] == "rgb(253, 252, 248)"
    browser.host("studioHost.setTheme('dark')")
    assert browser.until("s.theme === 'dark' && s.background") == "rgb(16, 20, 31)"
    dark = shot(browser, "studio-dark", capsys)
    assert light.stat().st_size > 10_000 and dark.stat().st_size > 10_000
    sizes = host_events(browser, "size")
    assert sizes and sizes[-1]["height"] > 300
    assert browser.host("studioHost.frameHeight()") == pytest.approx(sizes[-1]["height"], abs=1)

    # Nothing was blocked or failed, and the view loaded nothing but the video.
    assert refused(browser.log()) == []
    assert browser.snapshot()["problems"] == []
    for opened in host_events(browser, "view-opened"):  # after generate, export, timeline
        assert f"media-src data: blob: {sandbox.url}" in opened["csp"]
        assert "connect-src 'none'" in opened["csp"]
    loaded = browser.view("performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(f"{sandbox.url}/files/") for url in loaded)
    assert sandbox.control.stats()["renders_started"] == 1


def test_buttons_call_the_tools_through_the_host(
    site: Site, browser: Browser, sandbox: Any
) -> None:
    model_call(browser, "generate", {"message": PROMPT})
    model_call(browser, "timeline")
    view = idle(browser)
    assert view["player"]["src"] is None and view["player"]["hidden"] and view["player"]["empty"]
    assert view["buttons"]["fresh"]["hidden"] and view["buttons"]["open"]["hidden"]

    browser.click("#export")  # renders the timeline
    first = idle(browser)["player"]
    assert first["src"] == newest_render_url(site) and first["poster"] == POSTER
    assert sandbox.control.stats()["renders_started"] == 1

    browser.click("#export")  # the same timeline again: the earlier file, no second render
    assert "earlier export of this timeline" in idle(browser)["facts"]
    assert sandbox.control.stats()["renders_started"] == 1

    browser.click("#export-fresh")  # a new render on purpose
    fresh = idle(browser)["player"]
    assert sandbox.control.stats()["renders_started"] == 2
    assert fresh["src"] == newest_render_url(site) and fresh["src"] != first["src"]
    assert fresh["poster"] == POSTER
    assert site.called("export") == [{}, {}, {"fresh": True}]

    browser.click("#open-project")  # the host opens links; a sandboxed view cannot
    opened = browser.wait(
        "studioHost.events.filter(e => e.type === 'open-link').map(e => e.url)[0]", where="host"
    )
    assert opened.startswith("https://web.test/workspace/claim?ct=")
    assert len(host_events(browser, "open-link")) == 1
    assert refused(browser.log()) == []


def test_the_handoff_button_saves_a_folder_for_the_editor_without_a_render(
    site: Site, browser: Browser, sandbox: Any
) -> None:
    model_call(browser, "generate", {"message": PROMPT})
    model_call(browser, "timeline")
    idle(browser)
    assert browser.view("document.querySelector('#handoff').disabled") is False
    browser.view("document.querySelector('#handoff-format').value = 'xml'")
    browser.click("#handoff")
    browser.until("s.status === 'Handed off.'")
    shown = browser.view("document.querySelector('#handoff-answer').textContent")
    assert browser.view("document.querySelector('#handoff-answer').hidden") is False
    assert shown.startswith("Handed off for Premiere Pro") and "Timeline file:" in shown
    assert site.called("export") == [{"format": "xml"}]
    assert sandbox.control.stats()["renders_started"] == 0
    view = browser.snapshot()
    assert view["player"]["src"] is None and view["problems"] == []  # no video came of it
    assert refused(browser.log()) == []


HOSTILE = '<img src=x onerror="window.pwned = 1">'
# Records every element the view adds, the player's src/poster, and the export facts' text.
WATCH = """(() => {
  window.seen = {tags: [], player: [], facts: []};
  const player = document.getElementById("player");
  new MutationObserver((changes) => {
    for (const change of changes) {
      for (const node of change.addedNodes) {
        if (node.nodeType !== 1) continue;
        window.seen.tags.push(node.tagName, ...[...node.querySelectorAll("*")].map(e => e.tagName));
      }
      if (change.target === player && ["src", "poster"].includes(change.attributeName)) {
        window.seen.player.push(player.getAttribute(change.attributeName));
      }
    }
    window.seen.facts.push(document.getElementById("export-facts").textContent);
  }).observe(document.body, {subtree: true, childList: true, attributes: true});
  return true;
})()"""


def test_server_strings_are_text_and_urls_are_checked(site: Site, browser: Browser) -> None:
    # Nothing to export yet: the tool's error is shown as it came.
    failed = model_call(browser, "export")
    assert failed["isError"] is True
    shown = browser.until("s.problems.length > 0 && s.problems")
    assert shown == [failed["content"][0]["text"]]

    # An export result with markup and script URLs, forwarded by the host.
    browser.view(WATCH)
    crafted = {
        "status": "completed",
        "render_id": "render_1",
        "progress_percent": 100,
        "url": "javascript:window.pwned=1",
        "file": HOSTILE,
        "size_bytes": 10,
        "browser_link": "javascript:window.pwned=1",
        "reused": False,
        "elapsed_seconds": 1.0,
        "next_steps": [],
        "playable_url": "javascript:window.pwned=1",
        "poster": "data:text/html;base64,PHNjcmlwdD4=",
    }
    result = {"content": [{"type": "text", "text": "exported"}], "structuredContent": crafted}
    browser.host(f"studioHost.sendToolResult({json.dumps(result)})")
    view = idle(browser)  # the view read studio_state after the result, as after any export
    seen = browser.view("window.seen")
    assert any(HOSTILE in text for text in seen["facts"])  # shown, as text
    assert {"IMG", "SCRIPT", "IFRAME", "OBJECT", "EMBED"}.isdisjoint(seen["tags"])
    assert [value for value in seen["player"] if value is not None] == []
    assert view["buttons"]["open"]["hidden"] and view["images"] == 0 and view["pwned"] is None

    # A timeline result with markup in every string.
    model_call(browser, "timeline")
    idle(browser)
    segment = {"index": 1, "id": HOSTILE, "label": HOSTILE, "text": HOSTILE, "start": 0.0}
    segment |= {"end": 4.0, "duration": 4.0, "volume": None}
    track = {"index": 1, "id": HOSTILE, "kind": "audio", "type_code": 1, "name": HOSTILE}
    track |= {"label": HOSTILE, "volume": 0.5, "end": 4.0, "segments": [segment]}
    timeline = {"summary": HOSTILE, "detail": HOSTILE, "ready_for_export": True}
    timeline |= {"duration_seconds": 4.0, "tracks": [track], "uploads": [], "running": [HOSTILE]}
    timeline |= {"generated_media": [], "session_id": "1"}
    result = {"content": [], "structuredContent": timeline}
    browser.host(f"studioHost.sendToolResult({json.dumps(result)})")
    view = browser.until("s.timeline.tracks.length === 1 && s")
    assert view["timeline"]["summary"] == HOSTILE
    [drawn] = view["timeline"]["tracks"]
    assert drawn["name"] == HOSTILE
    assert drawn["segments"] == [{"label": HOSTILE, "left": "0%", "width": "100%", "volume": "50%"}]
    assert view["images"] == 0 and view["pwned"] is None
    assert refused(browser.log()) == []


def test_running_work_is_shown_until_done(
    tmp_path: Path, sandbox: Any, host_page: str, browser: Browser
) -> None:
    sandbox.control.set(generation_seconds=1.5, render_seconds=1.2)
    with make_site(tmp_path, sandbox, host_page, browser, tool_timeout=0.3) as site:
        running = model_call(browser, "generate", {"message": PROMPT})
        assert running["structuredContent"]["status"] == "running"
        model_call(browser, "timeline")
        # First the timeline tool's own lines, then studio_state's structured work.
        work = browser.until("s.running.find(w => w.kind === 'generation') || false")
        assert work["phase"] not in (None, "", "working")
        assert work["percent"] is None  # a generation has phases, not percentages
        # The view looks again by itself until the work is done.
        browser.until("s.timeline.tracks.length >= 3", timeout=15)
        assert idle(browser)["nothingRunning"] is True

        browser.click("#export")  # the render outlasts each call: the view calls export again
        percent = browser.until("(s.running.find(w => w.kind === 'render') || {}).percent || false")
        assert percent.endswith("%") and 0 <= int(percent[:-1]) <= 100
        browser.until("s.player.src !== null", timeout=15)
        view = idle(browser)
        assert view["player"]["src"] == newest_render_url(site)
        assert view["running"] == [] and view["nothingRunning"] is True
        exports = site.called("export")
        assert len(exports) >= 2 and all(args == {} for args in exports)
        assert sandbox.control.stats()["renders_started"] == 1
        # On load, at least one look while generating (it found the tracks), after the render.
        assert len(site.called("studio_state")) >= 3
        assert refused(browser.log()) == []


def test_the_token_only_download_is_never_played(
    site: Site, browser: Browser, sandbox: Any
) -> None:
    """A render the backend gave no output URL for was saved through the download route,
    which answers only with the account's token: the view says so and never loads it."""
    session = model_call(browser, "timeline")["structuredContent"]["session_id"]
    fallback = f"{sandbox.url}/api/render/proxy/render_9/download"
    seed = functools.partial(seed_render, url=fallback, session_id=session, render_id="render_9")
    anyio.run(seed, site.settings)
    browser.view(WATCH)
    browser.click("#refresh")
    view = idle(browser)
    assert "completed" in view["facts"]
    assert view["player"]["src"] is None and view["player"]["hidden"] and view["player"]["empty"]
    empty = browser.view("document.getElementById('player-empty').textContent")
    assert "needs your NemoVideo sign-in" in empty

    # The same render as an export result, forwarded by the host: still not played.
    crafted = {"status": "completed", "render_id": "render_9", "url": fallback, "file": None}
    result = {"content": [{"type": "text", "text": "exported"}], "structuredContent": crafted}
    browser.host(f"studioHost.sendToolResult({json.dumps(result)})")
    assert idle(browser)["player"]["src"] is None
    assert [value for value in browser.view("window.seen")["player"] if value is not None] == []
    loaded = browser.view("performance.getEntriesByType('resource').map(e => e.name)")
    assert not any("/api/render/proxy/" in url for url in loaded)
    assert refused(browser.log()) == []
