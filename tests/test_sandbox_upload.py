"""Uploads to the sandbox over a real socket: streamed multipart files, links, limits."""

from __future__ import annotations

import hashlib
import io
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from nemo_mcp.sandbox.media import MB
from nemo_mcp.sandbox.testing import SandboxServer

from media_files import video
from processes import needs_proc
from sandbox_client import Backend, generate


def _png_1x1() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (1, 1), (255, 0, 0, 255)).save(out, "PNG")
    return out.getvalue()


PNG_1x1 = _png_1x1()


def multipart(files: list[tuple[str, int, bytes]]) -> tuple[str, int, Iterator[bytes]]:
    """A multipart body of (filename, size, fill) files, generated as it is sent."""
    boundary = uuid.uuid4().hex
    heads = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        for name, _, _ in files
    ]
    tail = f"--{boundary}--\r\n".encode()
    length = sum(len(h) + size + 2 for h, (_, size, _) in zip(heads, files, strict=False)) + len(
        tail
    )

    def chunks() -> Iterator[bytes]:
        block = bytes(1024 * 1024)
        for head, (_, size, content) in zip(heads, files, strict=False):
            yield head
            if content:
                yield content
            left = size - len(content)
            while left > 0:
                yield block[: min(left, len(block))]
                left -= min(left, len(block))
            yield b"\r\n"
        yield tail

    return f"multipart/form-data; boundary={boundary}", length, chunks()


def post_files(backend: Backend, sid: str, files: list[tuple[str, int, bytes]]) -> dict[str, Any]:
    content_type, length, body = multipart(files)
    r = backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}",
        content=body,
        headers={"Content-Type": content_type, "Content-Length": str(length)},
    )
    return {"status": r.status_code, **r.json()}


@pytest.fixture(scope="module")
def sample_clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 3-second 640x360 H.264 MP4 at 30 fps, made once for the module."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return video(
        path, seconds=3, size=(640, 360), fps=30, audio=None, options={"preset": "ultrafast"}
    ).read_bytes()


def rss_peak_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_files_are_probed_hashed_and_added_to_the_state(
    backend: Backend, sample_clip: bytes
) -> None:
    sid = backend.ready()
    sample = sample_clip
    r = backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}",
        files=[
            ("files", ("clip.mp4", sample, "video/mp4")),
            ("files", ("dot.png", PNG_1x1, "image/png")),
            ("note", (None, b"ignored form field")),
        ],
    )
    data = r.json()["data"]
    assert data["session_state_applied"] is True
    clip, dot = data["files"]
    assert clip == {
        "filename": "clip.mp4",
        "file_type": "video",
        "cdn_url": clip["cdn_url"],
        "duration": 3.0,
        "width": 640,
        "height": 360,
        "fps": 30.0,
        "hash": hashlib.sha256(sample).hexdigest(),
    }
    assert clip["cdn_url"].endswith("/clip.mp4")
    assert dot["file_type"] == "image" and (dot["width"], dot["height"]) == (1, 1)
    assert backend.state(sid)["state"]["video_infos"] == data["files"]


def test_uploaded_media_become_the_generated_timeline(backend: Backend, sample_clip: bytes) -> None:
    sid = backend.ready()
    backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}",
        files=[("files", ("a.mp4", sample_clip)), ("files", ("b.png", PNG_1x1))],
    )
    draft = generate(backend, sid, "make a video from my clips")
    video = draft["t"][0]["sg"]
    assert [s["m"]["name"] for s in video] == ["a.mp4", "b.png"]
    assert [(s["s"], s["d"]) for s in video] == [(0, 3000), (3000, 3000)] and draft["d"] == 6000


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_unsupported_type_is_4001(sandbox: SandboxServer, backend: Backend, mode: str) -> None:
    sandbox.control.set(error_status=mode)
    sid = backend.ready()
    answer = post_files(backend, sid, [("notes.exe", 1000, b"")])
    assert (answer["status"], answer["code"]) == ((400 if mode == "http" else 200), 4001)
    assert "notes.exe" in answer["message"] and "mp4, mov" in answer["message"]
    assert backend.state(sid)["state"]["video_infos"] == []


@pytest.mark.parametrize("mode", ["http", "ok"])
def test_over_the_configured_limit_is_4002(
    sandbox: SandboxServer, backend: Backend, mode: str
) -> None:
    sandbox.control.set(error_status=mode, upload_limit_bytes=1_000_000)
    sid = backend.ready()
    assert post_files(backend, sid, [("ok.mp4", 1_000_000, b"")])["code"] == 0
    answer = post_files(backend, sid, [("big.mp4", 1_000_001, b"")])
    assert (answer["status"], answer["code"]) == ((413 if mode == "http" else 200), 4002)
    assert "1 MB" in answer["message"] and "compress" in answer["message"]
    assert len(backend.state(sid)["state"]["video_infos"]) == 1


def test_skill_limit_of_200_mb_is_answered_without_reading_on(sandbox: SandboxServer) -> None:
    small = Backend(sandbox.url, source="image-to-video-by-prompt")
    try:
        sid = small.ready()
        answer = post_files(small, sid, [("big.mov", 200 * MB + 1, b"")])
        assert (answer["status"], answer["code"]) == (413, 4002)
        assert "200 MB" in answer["message"] and "image-to-video-by-prompt" in answer["message"]
        assert sandbox.control.stats()["upload_bytes"] == 0
    finally:
        small.close()


@needs_proc
def test_a_300_mb_upload_streams_with_flat_memory(sandbox: SandboxServer, backend: Backend) -> None:
    sid = backend.ready()  # ai-generator-generator: a 500 MB limit
    size = 300 * MB
    head = struct.pack(">I4s4sI", 32, b"ftyp", b"isom", 0x200) + b"isomiso2avc1mp41"
    expected = hashlib.sha256(head)
    zeros = bytes(1024 * 1024)
    left = size - len(head)
    while left:
        expected.update(zeros[: min(left, len(zeros))])
        left -= min(left, len(zeros))
    before = rss_peak_kb()
    answer = post_files(backend, sid, [("huge.mp4", size, head)])
    growth_mb = (rss_peak_kb() - before) / 1000
    assert answer["code"] == 0 and answer["data"]["files"][0]["hash"] == expected.hexdigest()
    assert sandbox.control.stats()["upload_bytes"] == size
    assert growth_mb < 40, f"peak memory grew by {growth_mb:.0f} MB for a 300 MB upload"


def test_links_are_recorded_not_fetched(backend: Backend) -> None:
    sid = backend.ready()
    r = backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}",
        json={"urls": ["https://cdn.example.test/media/My%20Clip.MOV?x=1"], "source_type": "url"},
    )
    (info,) = r.json()["data"]["files"]
    assert (info["filename"], info["file_type"]) == ("My Clip.MOV", "video")
    assert (
        info["hash"]
        == hashlib.sha256(b"https://cdn.example.test/media/My%20Clip.MOV?x=1").hexdigest()
    )
    assert backend.state(sid)["state"]["video_infos"] == [info]


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("https://www.youtube.com/watch?v=abc", "YouTube and Spotify"),
        ("https://youtu.be/abc", "YouTube and Spotify"),
        ("https://open.spotify.com/track/1", "YouTube and Spotify"),
        ("https://example.test/file.exe", "unsupported file type"),
        ("ftp://example.test/a.mp4", "http"),
    ],
)
def test_refused_links_are_4001(backend: Backend, url: str, phrase: str) -> None:
    sid = backend.ready()
    r = backend.http.post(
        f"/api/upload-video/nemo_agent/me/{sid}", json={"urls": [url], "source_type": "url"}
    )
    assert (r.status_code, r.json()["code"]) == (400, 4001) and phrase in r.json()["message"]


def test_malformed_uploads(backend: Backend) -> None:
    sid = backend.ready()
    path = f"/api/upload-video/nemo_agent/me/{sid}"
    assert backend.http.post(path, json={"urls": []}).status_code == 422
    assert (
        backend.http.post(
            path, json={"urls": ["https://a.test/a.mp4"], "source_type": "file"}
        ).status_code
        == 422
    )
    r = backend.http.post(path, files=[("other", ("a.mp4", b"x"))])
    assert r.status_code == 400 and "field 'files'" in r.json()["message"]
    r = backend.http.post(
        path,
        content=b'--x\r\nContent-Disposition: form-data; name="files"; filename="a.mp4"\r\n\r\nabc',
        headers={"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert r.status_code == 400 and "ends inside a file" in r.json()["message"]
    assert (
        backend.http.post(path, content=b"x", headers={"Content-Type": "text/plain"}).status_code
        == 400
    )


def test_uploads_to_another_users_session_are_1002(backend: Backend, other: Backend) -> None:
    sid = backend.ready()
    other.login()
    assert post_files(other, sid, [("a.mp4", 10, b"")])["code"] == 1002
