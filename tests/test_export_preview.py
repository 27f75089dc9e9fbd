"""Results the agent can see: `export` returns the saved MP4's contact sheet (an image block)
and the file itself (a resource link); `generate` returns a poster frame of the new clip when
its link answers quickly, and nothing otherwise.

Through the SDK's `Client` against the sandbox, which renders real MP4s (or, told to,
bytes that are no video at all).
"""

from __future__ import annotations

import base64
import io
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from mcp_types import CallToolResult, ImageContent, ResourceLink
from PIL import Image

from nemo_mcp.server import previews

from mcp_harness import connect, make_settings, text_of

PROMPT = "a 10-second video of a city at night"


def _images(result: CallToolResult) -> list[Image.Image]:
    pictures = []
    for block in result.content:
        if isinstance(block, ImageContent):
            assert block.mime_type == "image/jpeg"
            raw = base64.b64decode(block.data)
            assert len(raw) < 1_000_000
            picture = Image.open(io.BytesIO(raw))
            picture.load()  # decodes the whole JPEG
            assert picture.format == "JPEG"
            pictures.append(picture)
    return pictures


def _links(result: CallToolResult) -> list[ResourceLink]:
    return [block for block in result.content if isinstance(block, ResourceLink)]


def _path(link: ResourceLink) -> Path:
    parts = urlsplit(str(link.uri))
    assert parts.scheme == "file"
    return Path(unquote(parts.path))


async def _generated(session: Any) -> CallToolResult:
    made = await session.call("generate", {"message": PROMPT})
    assert not made.is_error, text_of(made)
    return made  # type: ignore[no-any-return]


async def test_export_shows_the_contact_sheet_and_links_the_file(
    tmp_path: Path, sandbox: Any
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await _generated(session)
        exported = await session.call("export")
        again = await session.call("export")  # the same timeline: the saved file is reused
    assert not exported.is_error, text_of(exported)
    out = exported.structured_content
    assert out is not None and out["status"] == "completed"
    [sheet] = _images(exported)
    assert sheet.width >= 320 and sheet.height >= 180
    [link] = _links(exported)
    saved = _path(link)
    assert saved == Path(out["file"]).resolve() and saved.is_file()
    assert link.mime_type == "video/mp4" and link.size == saved.stat().st_size == out["size_bytes"]
    assert "Preview skipped" not in text_of(exported)
    # A reused export shows the same file, with its picture too.
    assert again.structured_content is not None and again.structured_content["reused"]
    [shown] = _images(again)
    assert shown.size == sheet.size
    assert [_path(x) for x in _links(again)] == [saved]
    stats = sandbox.control.stats()
    assert stats["renders_started"] == 1 and len(stats["messages"]) == 1  # each once


async def test_a_render_that_is_no_video_is_saved_and_the_preview_skipped(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(render_output_bytes=300_000)  # an `ftyp`, then zeros: no pictures
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await _generated(session)
        exported = await session.call("export")
    assert not exported.is_error, text_of(exported)
    out = exported.structured_content
    assert out is not None and out["status"] == "completed"
    saved = Path(out["file"])
    assert saved.stat().st_size == out["size_bytes"] == 300_000
    assert _images(exported) == []
    skipped = [line for line in text_of(exported).splitlines() if "Preview skipped" in line]
    assert len(skipped) == 1 and "saved" in skipped[0]
    assert [_path(x) for x in _links(exported)] == [saved.resolve()]
    assert sandbox.control.stats()["renders_started"] == 1  # saved, never rendered again


async def test_a_slow_preview_is_given_up_within_its_bound(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemo_mcp import media

    entered, release, finished = threading.Event(), threading.Event(), threading.Event()

    def slow_sheet(*_args: Any, **_kwargs: Any) -> Any:
        entered.set()
        try:
            # Held until the test has the export's answer (at most 10 s, should the export
            # wrongly wait: it then answers with no "Preview skipped", and fails below).
            release.wait(timeout=10)
            return real_sheet(*_args, **_kwargs)
        finally:
            finished.set()

    real_sheet = media.contact_sheet
    monkeypatch.setattr(media, "contact_sheet", slow_sheet)
    monkeypatch.setattr(previews, "SHEET_SECONDS", 0.3)
    try:
        async with connect(make_settings(tmp_path, sandbox.url)) as session:
            await _generated(session)
            exported = await session.call("export")
            answered_while_making = entered.is_set() and not finished.is_set()
    finally:
        release.set()
    assert finished.wait(timeout=30)  # the abandoned worker ends; nothing is left running
    assert answered_while_making  # the export answered while its sheet was still being made
    assert not exported.is_error, text_of(exported)
    assert "Preview skipped: it took longer than 0.3 s" in text_of(exported)
    assert _images(exported) == [] and len(_links(exported)) == 1
    assert sandbox.control.stats()["renders_started"] == 1


async def test_generate_shows_the_new_clip(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        made = await _generated(session)
    out = made.structured_content
    assert out is not None and out["clip_url"].startswith(sandbox.url)
    [poster] = _images(made)
    assert poster.width >= 160 and poster.height >= 90


@pytest.mark.parametrize("fault", ["dead", "slow"])
async def test_generate_without_a_reachable_clip_shows_nothing(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    monkeypatch.setattr(previews, "CLIP_SECONDS", 0.5)
    if fault == "dead":
        sandbox.control.fault("output_url_broken", route="file", times=None)
    else:
        sandbox.control.fault("slow", route="file", times=None, delay=3.0)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        made = await _generated(session)
    out = made.structured_content
    assert out is not None and out["status"] == "completed" and out["clip_url"]
    # Gave up on the clip: had it waited the 3 s, the clip would have come and its
    # picture been shown.
    assert _images(made) == []
    assert [block.type for block in made.content] == ["text"]
    assert sandbox.control.stats()["faults_fired"]


def test_the_new_clip_is_the_first_video_link_not_there_before() -> None:
    from nemo_mcp.server.generation import new_clip_url

    def draft(*urls: str, music: str | None = None) -> dict[str, Any]:
        tracks: list[dict[str, Any]] = [
            {
                "tt": 0,
                "sg": [{"s": n * 1000, "d": 1000, "m": {"url": u}} for n, u in enumerate(urls)],
            }
        ]
        if music:
            tracks.append({"tt": 1, "sg": [{"s": 0, "d": 2000, "m": {"url": music}}]})
        return {"t": tracks}

    assert new_clip_url(None, draft("https://cdn.test/a.mp4")) == "https://cdn.test/a.mp4"
    assert (
        new_clip_url(
            draft("https://cdn.test/a.mp4"),
            draft("https://cdn.test/a.mp4", "https://cdn.test/b.mp4"),
        )
        == "https://cdn.test/b.mp4"
    )
    # An edit that adds music, or changes nothing on the video track, has no new clip.
    same = draft("https://cdn.test/a.mp4")
    assert (
        new_clip_url(same, draft("https://cdn.test/a.mp4", music="https://cdn.test/m.mp3")) is None
    )
    assert new_clip_url(same, draft("file:///etc/passwd")) is None  # links only


@pytest.mark.parametrize(
    ("left", "cap", "seconds"),
    [
        (None, 20.0, 20.0),  # no budget: the picture's own bound
        (30.0, 20.0, 20.0),  # plenty left: still no more than its bound
        (5.0, 20.0, 5.0),  # what is left of the call's budget
        (0.5, 20.0, previews.PICTURE_FLOOR),  # spent: a short floor, then the answer
        (-3.0, 4.0, previews.PICTURE_FLOOR),
        (-3.0, 0.5, 0.5),  # a bound below the floor stays
    ],
)
def test_a_picture_takes_what_is_left_of_the_budget(
    left: float | None, cap: float, seconds: float
) -> None:
    assert previews.picture_seconds(left, cap) == seconds


async def test_a_poster_given_up_by_its_caller_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's budget runs out while the clip is still being fetched: the scratch
    folder goes with the cancelled call, not only with a finished one."""
    import asyncio
    import tempfile

    import anyio

    done = asyncio.Event()

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        await done.wait()  # no answer until the test is over
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    try:
        with anyio.move_on_after(0.5) as scope:
            await previews.clip_poster(f"http://127.0.0.1:{port}/clip.mp4", left=20.0)
    finally:
        done.set()
        server.close()
        await server.wait_closed()
    assert scope.cancelled_caught
    assert list(tmp_path.glob("nemo-clip-*")) == []


async def test_a_scratch_folder_goes_with_a_cancelled_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the upload's private copies: the call's scope cancelled inside it."""
    import tempfile

    import anyio

    from nemo_mcp.server.scratch import scratch_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with anyio.move_on_after(0.1) as scope:
        async with scratch_folder("nemo-upload-") as folder:
            (folder / "copy.jpg").write_bytes(b"private")
            await anyio.sleep(5)
    assert scope.cancelled_caught and not folder.exists()
    assert list(tmp_path.iterdir()) == []
