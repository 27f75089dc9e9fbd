"""`upload` with the media kit: every local file probed before a request leaves, HEIC photos
sent as JPEG, M4V as MP4, and a video over the limit shrunk only when the caller allows it.

Through the SDK's `Client` against the sandbox; what the sandbox received is read from its
answer (it probes what it keeps) and its request counts.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.settings import settings_from_env

from mcp_harness import connect, make_settings, text_of
from media_files import heic, sample_mp4, truncated, video
from media_files import noisy as noisy_picture

LIMIT = 300_000  # bytes: a tiny upload limit, so a two-second video is "too large"


def _uploads(sandbox: Any) -> int:
    return int(sandbox.control.stats()["requests"].get("upload", 0))


def _files(result: Any) -> list[dict[str, Any]]:
    assert not result.is_error, text_of(result)
    return list(result.structured_content["files"])


def _refused(result: Any, *words: str) -> str:
    text = text_of(result)
    assert result.is_error, text
    for word in words:
        assert word.lower() in text.lower(), (word, text)
    assert "Traceback" not in text and "av.error" not in text and "PIL" not in text
    return text


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


@pytest.fixture
def noisy(root: Path) -> Path:
    """A two-second video well over `LIMIT` (noise does not compress)."""
    clip = video(
        root / "holiday.mp4",
        seconds=2,
        size=(320, 180),
        noise=True,
        options={"preset": "ultrafast"},
    )
    assert clip.stat().st_size > 3 * LIMIT
    return clip


async def test_a_heic_photo_is_sent_as_jpeg(tmp_path: Path, sandbox: Any, root: Path) -> None:
    photo = heic(root / "IMG_0001.HEIC", size=(64, 48))
    before = photo.read_bytes()
    async with connect(make_settings(tmp_path, sandbox.url), roots=[root]) as session:
        result = await session.call("upload", {"sources": [str(photo)]})
    [item] = _files(result)
    # The sandbox probes what it keeps: a size means it read the bytes as the JPEG named.
    assert item["name"] == "IMG_0001.jpg" and item["type"] == "image"
    assert (item["width"], item["height"]) == (64, 48)
    assert item["source"] == str(photo) and item["converted"] == "converted"
    assert "converted to JPEG" in item["note"]
    assert "converted to JPEG" in text_of(result) and "original file is unchanged" in text_of(
        result
    )
    assert photo.read_bytes() == before  # the original untouched
    assert _uploads(sandbox) == 1
    assert sandbox.control.stats()["upload_bytes"] != len(before)


async def test_an_m4v_video_is_sent_as_mp4(tmp_path: Path, sandbox: Any, root: Path) -> None:
    clip = root / "trailer.m4v"
    shutil.copyfile(sample_mp4(), clip)
    async with connect(make_settings(tmp_path, sandbox.url), roots=[root]) as session:
        result = await session.call("upload", {"sources": [str(clip)]})
    [item] = _files(result)
    assert item["name"] == "trailer.mp4" and item["type"] == "video"
    assert item["converted"] == "converted" and "repackaged as an MP4" in item["note"]
    assert item["duration_seconds"] and item["duration_seconds"] > 0.5


@pytest.mark.parametrize(
    ("name", "make", "words"),
    [
        pytest.param(
            "IMG_0002.jpg",
            lambda p: p.write_text("not a photo at all\n" * 20),
            ("text",),
            id="text",
        ),
        pytest.param(
            "clip.mp4",
            lambda p: truncated(sample_mp4(), p),
            ("clip.mp4", "incomplete"),
            id="truncated-mp4",
        ),
        pytest.param(
            "song.mp3", lambda p: shutil.copyfile(sample_mp4(), p), ("song.mp3",), id="mp4-as-mp3"
        ),
    ],
)
async def test_a_file_that_is_not_what_it_says_is_refused_before_any_request(
    tmp_path: Path, sandbox: Any, root: Path, name: str, make: Any, words: tuple[str, ...]
) -> None:
    bad = root / name
    make(bad)
    good = root / "good.mp4"
    shutil.copyfile(sample_mp4(), good)
    async with connect(make_settings(tmp_path, sandbox.url), roots=[root]) as session:
        alone = await session.call("upload", {"sources": [str(bad)]})
        mixed = await session.call(
            "upload", {"sources": [str(good), "https://example.com/a.jpg", str(bad)]}
        )
    text = _refused(alone, *words)
    assert text.count(". ") <= 1  # one sentence (its name may hold a dot)
    _refused(mixed, *words)  # one bad file refuses the call: nothing else is sent either
    assert _uploads(sandbox) == 0
    assert sandbox.control.stats()["upload_bytes"] == 0


async def test_an_oversize_video_is_refused_unless_shrinking_is_allowed(
    tmp_path: Path, sandbox: Any, root: Path, noisy: Path
) -> None:
    before = noisy.read_bytes()
    settings = make_settings(tmp_path, sandbox.url, upload_limit_bytes=LIMIT)
    async with connect(settings, roots=[root]) as session:
        refused = await session.call("upload", {"sources": [str(noisy)]})
        assert _uploads(sandbox) == 0
        session.progress.clear()
        shrunk = await session.call("upload", {"sources": [str(noisy)], "shrink": True})
    _refused(refused, "holiday.mp4", "over the 0.3 MB limit", "`shrink: true`")
    [item] = _files(shrunk)
    assert item["converted"] == "shrunk" and item["type"] == "video"
    assert "re-encoded to fit" in item["note"] and "re-encoded to fit" in text_of(shrunk)
    assert item["duration_seconds"] and item["duration_seconds"] > 1.5
    received = sandbox.control.stats()["upload_bytes"]
    assert 0 < received <= LIMIT
    assert noisy.read_bytes() == before  # the original untouched
    assert any("shrinking holiday.mp4" in (message or "") for _, _, message in session.progress)
    assert _uploads(sandbox) == 1


async def test_the_shrink_setting_allows_it_for_every_call(
    tmp_path: Path, sandbox: Any, root: Path, noisy: Path
) -> None:
    settings = make_settings(tmp_path, sandbox.url, upload_limit_bytes=LIMIT, shrink_videos=True)
    async with connect(settings, roots=[root]) as session:
        result = await session.call("upload", {"sources": [str(noisy)]})
    [item] = _files(result)
    assert item["converted"] == "shrunk"
    assert sandbox.control.stats()["upload_bytes"] <= LIMIT


async def test_a_photo_over_the_limit_is_never_shrunk(
    tmp_path: Path, sandbox: Any, root: Path
) -> None:
    photo = root / "big.png"
    noisy_picture((256, 256), 0).save(photo)
    assert photo.stat().st_size > 1_000
    settings = make_settings(tmp_path, sandbox.url, upload_limit_bytes=1_000)
    async with connect(settings, roots=[root]) as session:
        result = await session.call("upload", {"sources": [str(photo)], "shrink": True})
    text = _refused(result, "big.png", "limit", "compress")
    assert "shrink" not in text
    assert _uploads(sandbox) == 0


def test_the_settings_read_the_environment() -> None:
    settings = settings_from_env({"NEMO_SHRINK_VIDEOS": "1", "NEMO_UPLOAD_LIMIT_MB": "0.3"})
    assert settings.shrink_videos and settings.upload_limit_bytes == 300_000
    plain = settings_from_env({})
    assert not plain.shrink_videos and plain.upload_limit_bytes is None


async def test_a_cancelled_upload_stops_its_shrink(tmp_path: Path, noisy: Path) -> None:
    """The encoder runs in a worker thread; cancelling the call stops it at its next frame."""
    import threading

    import anyio

    from nemo_mcp import media
    from nemo_mcp.identity import SKILLS
    from nemo_mcp.server import uploading

    stopped = threading.Event()

    def endless(_source: Any, _output: Any, *, limit_bytes: int, progress: Any) -> Any:
        try:
            while True:  # an encoder that never finishes on its own
                progress(0.5)
                time.sleep(0.01)
        except uploading.ShrinkStopped:
            stopped.set()
            raise

    skill = next(iter(SKILLS.values())).limited_to(LIMIT)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(media, "shrink_video", endless)
        with anyio.move_on_after(0.5):
            await uploading.prepare([noisy], skill, scratch, shrink=True)
            raise AssertionError("the shrink should still be running")
        assert await anyio.to_thread.run_sync(stopped.wait, 5.0)
