"""An output folder that cannot take the video is refused before any render starts, in one
sentence saying what to do; once it is fixed, the retry renders once.

The read-only and full cases use a small tmpfs mounted for the test (root on Linux);
elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mcp_harness import connect, make_settings, text_of


def _mount(folder: Path, options: str) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs of our own (unmounted at the end)."""
    folder = tmp_path / "small"
    if not _mount(folder, "size=1m"):
        pytest.skip("needs to mount a tmpfs (root on Linux) to make a full or read-only disk")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


async def _export_refused_then_fixed(
    tmp_path: Path, sandbox: Any, out: Path, says: str, fix: Any
) -> None:
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.2)
    settings = make_settings(tmp_path, sandbox.url, output_dir=out)
    async with connect(settings) as session:
        await session.call("generate", {"message": "a video of a quiet harbour"})
        refused = await session.client.call_tool("export", {})
        assert refused.is_error, text_of(refused)
        text = text_of(refused)
        assert says in text and str(out) in text and "no render was started" in text
        assert "Traceback" not in text and "OSError" not in text
        assert sandbox.control.stats()["renders_started"] == 0
        fix()
        done = await session.call("export")
    out_data = done.structured_content
    assert out_data["status"] == "completed"  # type: ignore[index]
    assert Path(out_data["file"]).parent == out  # type: ignore[index]
    assert sandbox.control.stats()["renders_started"] == 1


async def test_an_output_path_that_is_a_file(tmp_path: Path, sandbox: Any) -> None:
    out = tmp_path / "videos"
    out.write_text("not a folder")
    await _export_refused_then_fixed(tmp_path, sandbox, out, "is a file, not a folder", out.unlink)


async def test_a_read_only_output_folder(tmp_path: Path, sandbox: Any, small_disk: Path) -> None:
    _remount(small_disk, "ro,size=100m")
    await _export_refused_then_fixed(
        tmp_path,
        sandbox,
        small_disk,
        "cannot be saved",
        lambda: _remount(small_disk, "rw,size=100m"),
    )


async def test_a_full_output_folder(tmp_path: Path, sandbox: Any, small_disk: Path) -> None:
    await _export_refused_then_fixed(
        tmp_path,
        sandbox,
        small_disk,
        "are free",
        lambda: _remount(small_disk, "size=100m"),
    )


async def test_a_folder_that_fails_during_the_render_costs_no_second_render(
    tmp_path: Path, sandbox: Any, small_disk: Path
) -> None:
    """Writable when the render starts, read-only when it is done: the render is kept,
    and the retry after the fix downloads it."""
    _remount(small_disk, "size=100m")
    sandbox.control.set(generation_seconds=0.2, render_seconds=1.0)
    settings = make_settings(tmp_path, sandbox.url, output_dir=small_disk, tool_timeout=0.3)
    async with connect(settings) as session:
        await session.call("generate", {"message": "a video of a quiet harbour"})
        first = await session.call("export")
        assert first.structured_content["status"] == "rendering"  # type: ignore[index]
        _remount(small_disk, "ro,size=100m")
        for _ in range(100):
            failed = await session.client.call_tool("export", {})
            if failed.is_error or failed.structured_content["status"] == "completed":  # type: ignore[index]
                break
        text = text_of(failed)
        assert failed.is_error and "cannot be saved" in text and "no new render" in text
        _remount(small_disk, "rw,size=100m")
        done = await session.call("export")
    assert done.structured_content["status"] == "completed"  # type: ignore[index]
    assert sandbox.control.stats()["renders_started"] == 1
    assert not list(small_disk.glob(".nemo-*"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def test_a_download_cut_short_is_never_saved_and_the_retry_renders_once(
    tmp_path: Path, sandbox: Any
) -> None:
    # Both ways to the file end cleanly after 1 MB of the 5 MB the render reported.
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.2, render_output_bytes=5_000_000)
    out = tmp_path / "videos"
    settings = make_settings(tmp_path, sandbox.url, output_dir=out, tool_timeout=20.0)
    async with connect(settings) as session:
        await session.call("generate", {"message": "a video of a quiet harbour"})
        sandbox.control.fault("download_cut", times=None, bytes=1_000_000)
        failed = await session.client.call_tool("export", {})
        text = text_of(failed)
        assert failed.is_error, text
        assert "1,000,000 of 5,000,000 bytes" in text and "no new render" in text
        assert _leftovers(out) == []  # nothing under a final name, no part left behind
        sandbox.control.clear_faults()
        done = await session.call("export")
    saved = done.structured_content
    assert saved is not None and saved["status"] == "completed", text_of(done)
    assert Path(saved["file"]).stat().st_size == 5_000_000
    assert _leftovers(out) == [Path(saved["file"]).name]
    assert sandbox.control.stats()["renders_started"] == 1


async def test_an_output_url_cut_short_falls_back_to_the_download_endpoint(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(generation_seconds=0.2, render_seconds=0.2, render_output_bytes=3_000_000)
    out = tmp_path / "videos"
    settings = make_settings(tmp_path, sandbox.url, output_dir=out, tool_timeout=20.0)
    async with connect(settings) as session:
        await session.call("generate", {"message": "a video of a quiet harbour"})
        sandbox.control.fault("download_cut", route="file", bytes=500_000)
        done = await session.call("export")
    saved = done.structured_content
    assert saved is not None and saved["status"] == "completed", text_of(done)
    assert Path(saved["file"]).stat().st_size == 3_000_000
    assert _leftovers(out) == [Path(saved["file"]).name]
    render_id = saved["render_id"]
    paths = [e["path"] for e in sandbox.control.requests()]
    assert paths.count(f"/files/{render_id}.mp4") == 1  # cut short
    assert paths.count(f"/api/render/proxy/{render_id}/download") == 1  # whole
    assert sandbox.control.stats()["renders_started"] == 1
