"""Hostile paths and links, through `upload` and `generate(script_file=...)`.

Every refusal must happen before any request reaches the backend (no upload,
no message) and say why; names that are merely unusual must upload fine.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcp_harness import connect, make_settings, text_of
from media_files import sample_mp4


@dataclass
class Layout:
    """A root the client allows, a folder it does not, and hostile things in both."""

    root: Path
    elsewhere: Path


def _write(path: Path, data: bytes | None = None) -> Path:
    """A file at `path`: `data`, else a small real MP4 (uploads are probed before sending)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(sample_mp4().read_bytes() if data is None else data)
    return path


@pytest.fixture
def layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Layout]:
    root = tmp_path / "project"
    elsewhere = tmp_path / "elsewhere"
    root.mkdir()
    # `~` must point at a real file outside the root, in this test's own folder.
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    _write(tmp_path / "user" / "clip.mp4")
    _write(tmp_path / "user" / "clip.txt", b"a script at home\n")
    _write(elsewhere / "secret.mp4")
    _write(elsewhere / "secret.txt", b"a script that is not yours\n")
    yield Layout(root=root, elsewhere=elsewhere)


def _symlink(layout: Layout, name: str, target: Path) -> str:
    link = layout.root / name
    os.symlink(target, link)
    return str(link)


def _socket(layout: Layout, name: str) -> str:
    path = layout.root / name
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.close()  # the socket file stays in the folder
    return str(path)


def _fifo(layout: Layout, name: str) -> str:
    path = layout.root / name
    os.mkfifo(path)
    return str(path)


def _sparse(layout: Layout, name: str) -> str:
    path = layout.root / name
    with open(path, "wb") as handle:
        handle.truncate(20 * 1024**3)  # 20 GB, no blocks on disk
    return str(path)


def _folder(layout: Layout, name: str) -> str:
    path = layout.root / name
    path.mkdir()
    return str(path)


Make = Callable[[Layout, str], str]

#: (id, how to make the source from a file suffix, words the refusal must contain)
CASES: list[tuple[str, Make, str]] = [
    ("traversal", lambda lay, s: f"{lay.root}/../elsewhere/secret{s}", "outside the folders"),
    (
        "deep-traversal",
        lambda lay, s: f"{lay.root}/../../../../../../../etc/hostname",
        "outside the folders",
    ),
    (
        "symlink-escape",
        lambda lay, s: _symlink(lay, f"link{s}", lay.elsewhere / f"secret{s}"),
        "link pointing there",
    ),
    (
        "symlinked-folder",
        lambda lay, s: _symlink(lay, f"dir{s}", lay.elsewhere) + f"/secret{s}",
        "link pointing there",
    ),
    (
        "symlink-to-dev-zero",
        lambda lay, s: _symlink(lay, f"zero{s}", Path("/dev/zero")),
        "outside the folders",
    ),
    ("dev-null", lambda lay, s: "/dev/null", "outside the folders"),
    ("dev-zero", lambda lay, s: "/dev/zero", "outside the folders"),
    ("folder", lambda lay, s: _folder(lay, f"folder{s}"), "a folder"),
    ("socket", lambda lay, s: _socket(lay, f"sock{s}"), "not a regular file"),
    ("fifo", lambda lay, s: _fifo(lay, f"pipe{s}"), "not a regular file"),
    ("missing", lambda lay, s: f"{lay.root}/nothing{s}", "no such file"),
    ("relative", lambda lay, s: f"project/clip{s}", "absolute path"),
    ("nul-byte", lambda lay, s: f"{lay.root}/clip\x00{s}", "NUL"),
    ("windows-drive", lambda lay, s: f"C:\\Users\\me\\clip{s}", "Windows path"),
    ("windows-forward", lambda lay, s: f"D:/videos/clip{s}", "Windows path"),
    ("windows-unc", lambda lay, s: f"\\\\server\\share\\clip{s}", "absolute path"),
    ("file-url", lambda lay, s: f"file://{lay.elsewhere}/secret{s}", "file://"),
    ("home-outside", lambda lay, s: f"~/clip{s}", "outside the folders"),
]
URL_CASES: list[tuple[str, str, str]] = [
    ("ftp", "ftp://example.com/a.mp4", "only http:// and https://"),
    ("data", "data:video/mp4;base64,AAAA", "only http:// and https://"),
    ("javascript", "javascript:alert(1)", "only http:// and https://"),
    ("gopher", "gopher://example.com/1", "only http:// and https://"),
    ("no-host", "http:///etc/passwd", "only http:// and https://"),
    ("empty", "   ", "empty"),
]


def _refused(result: Any, words: str) -> None:
    text = text_of(result)
    assert result.is_error, text
    assert words.lower() in text.lower(), (words, text)
    assert "Traceback" not in text


def _requests(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.control.stats()["requests"])


@pytest.mark.parametrize(("make", "words"), [pytest.param(m, w, id=i) for i, m, w in CASES])
async def test_refused_before_any_request(
    tmp_path: Path, sandbox: Any, layout: Layout, make: Make, words: str
) -> None:
    """The same source is refused as an upload and as a script, and nothing is sent."""
    clip, script = make(layout, ".mp4"), make(layout, ".txt")
    async with connect(make_settings(tmp_path, sandbox.url), roots=[layout.root]) as session:
        result = await session.call("upload", {"sources": [clip]})
        mixed = await session.call("upload", {"sources": ["https://example.com/ok.jpg", clip]})
        scripted = await session.call(
            "generate", {"message": "turn this script into a video", "script_file": script}
        )
    _refused(result, words)
    _refused(mixed, words)  # one bad source refuses the whole call, the good link included
    _refused(scripted, words)
    seen = _requests(sandbox)
    assert seen.get("upload", 0) == 0 and seen.get("run_sse", 0) == 0


@pytest.mark.parametrize(("source", "words"), [pytest.param(s, w, id=i) for i, s, w in URL_CASES])
async def test_non_http_links_are_refused(
    tmp_path: Path, sandbox: Any, layout: Layout, source: str, words: str
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url), roots=[layout.root]) as session:
        result = await session.call("upload", {"sources": [source]})
    _refused(result, words)
    assert _requests(sandbox).get("upload", 0) == 0


async def test_devices_inside_an_allowed_folder_are_still_refused(
    tmp_path: Path, sandbox: Any
) -> None:
    """Even a client that lists /dev as a root cannot upload a device."""
    async with connect(make_settings(tmp_path, sandbox.url), roots=[Path("/dev")]) as session:
        for device in ("/dev/null", "/dev/zero", "/dev/urandom"):
            _refused(await session.call("upload", {"sources": [device]}), "not a regular file")
        _refused(await session.call("upload", {"sources": ["/dev"]}), "a folder")
    assert _requests(sandbox).get("upload", 0) == 0


async def test_huge_sparse_file_is_refused_by_size(
    tmp_path: Path, sandbox: Any, layout: Layout
) -> None:
    huge = _sparse(layout, "huge.mp4")
    script = _sparse(layout, "huge.txt")
    async with connect(make_settings(tmp_path, sandbox.url), roots=[layout.root]) as session:
        _refused(await session.call("upload", {"sources": [huge]}), "limit")
        _refused(
            await session.call("generate", {"message": "make this", "script_file": script}),
            "limited",
        )
    seen = _requests(sandbox)
    assert seen.get("upload", 0) == 0 and seen.get("run_sse", 0) == 0
    assert sandbox.control.stats()["upload_bytes"] == 0


ODD_NAMES = [
    "my holiday clip.mp4",
    'it\'s a "quoted" name.mp4',
    "ünïcødé 動画 🎬.mp4",
    "semi;colon,comma&amp=.mp4",
    "-leading-dash.mp4",
    "percent%20name.mp4",
]


async def test_unusual_but_valid_names_upload_fine(
    tmp_path: Path, sandbox: Any, layout: Layout
) -> None:
    paths = [str(_write(layout.root / name)) for name in ODD_NAMES]
    async with connect(make_settings(tmp_path, sandbox.url), roots=[layout.root]) as session:
        result = await session.call("upload", {"sources": paths})
    assert not result.is_error, text_of(result)
    files = result.structured_content["files"]  # type: ignore[index]
    assert [f["source"] for f in files] == paths
    assert [f["name"] for f in files] == ODD_NAMES
    assert _requests(sandbox)["upload"] == 1


async def test_newline_in_a_name_never_breaks_the_request(
    tmp_path: Path, sandbox: Any, layout: Layout
) -> None:
    """A newline in a file name must not split the multipart headers: the file uploads as
    one part, its name flattened to one line."""
    odd = str(_write(layout.root / "two\nlines\r.mp4"))
    async with connect(make_settings(tmp_path, sandbox.url), roots=[layout.root]) as session:
        result = await session.call("upload", {"sources": [odd]})
    assert not result.is_error, text_of(result)
    files = result.structured_content["files"]  # type: ignore[index]
    assert len(files) == 1 and files[0]["type"] == "video", files
    assert files[0]["source"] == odd
    assert (
        "\n" not in files[0]["name"]
        and "\r" not in files[0]["name"]
        and "lines" in files[0]["name"]
    )
    assert _requests(sandbox)["upload"] == 1


async def test_script_with_odd_name_inside_root_is_sent_once(
    tmp_path: Path, sandbox: Any, layout: Layout
) -> None:
    script = _write(layout.root / 'my "script" ü.txt', b"A city at night. Neon lights. Rain.\n")
    sandbox.control.set(generation_seconds=0.3)
    async with connect(make_settings(tmp_path, sandbox.url), roots=[layout.root]) as session:
        result = await session.call(
            "generate", {"message": "turn this script into a video", "script_file": str(script)}
        )
    assert not result.is_error, text_of(result)
    messages = sandbox.control.stats()["messages"]
    assert len(messages) == 1 and "Neon lights" in messages[0]["text"]
