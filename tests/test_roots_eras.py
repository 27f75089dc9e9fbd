"""Upload and script confinement on both protocol eras: the client's roots where it gives
them (asked mid-call on the old handshake, through `InputRequiredResult` on 2026-07-28,
where roots are deprecated), `NEMO_UPLOAD_DIRS` otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitResult, ListRootsResult, Root

from nemo_mcp.server import create_server

from mcp_harness import make_settings, text_of
from media_files import image

MODES = ["auto", "legacy"]


def write(path: Path, text: str | None = None) -> Path:
    """`text` at `path`; without it, a real PNG for a .png (uploads are probed first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if text is None and path.suffix == ".png":
        return image(path)
    path.write_text("x" * 64 if text is None else text, encoding="utf-8")
    return path


class Roots:
    """A client's roots callback that counts how often it was asked."""

    def __init__(self, *folders: Path) -> None:
        self.folders = folders
        self.asked = 0

    async def __call__(self, _context: Any) -> ListRootsResult:
        self.asked += 1
        return ListRootsResult(roots=[Root(uri=f.as_uri()) for f in self.folders])


def sent(sandbox: Any) -> int:
    return int(sandbox.control.stats()["requests"].get("run_sse", 0))


@pytest.mark.parametrize("mode", MODES)
async def test_client_roots_confine_uploads_and_scripts(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    sandbox.control.set(initial_credits=1000)  # two clips
    settings = make_settings(tmp_path, sandbox.url)
    inside = write(tmp_path / "project" / "clip.png")
    script = write(tmp_path / "project" / "script.md", "# Aurora\n\nThe lamp that glows.")
    # Allowed by NEMO_UPLOAD_DIRS, but the client gave roots: those decide.
    upload_dir = write(settings.upload_dirs[0] / "photo.png")
    roots = Roots(tmp_path / "project")
    server = create_server(settings)
    async with Client(server, mode=mode, list_roots_callback=roots) as client:
        ok = await client.call_tool("upload", {"sources": [str(inside)]})
        refused = await client.call_tool("upload", {"sources": [str(upload_dir)]})
        made = await client.call_tool(
            "generate", {"message": "a video", "script_file": str(script)}
        )
        outside = await client.call_tool(
            "generate", {"message": "a video", "script_file": str(upload_dir)}
        )
        plain = await client.call_tool("generate", {"message": "a video of the sea"})
    assert not ok.is_error, text_of(ok)
    assert refused.is_error and "outside the folders uploads may come from" in text_of(refused)
    assert str(tmp_path / "project") in text_of(refused)
    assert not made.is_error, text_of(made)
    assert outside.is_error and "outside the folders" in text_of(outside)
    assert not plain.is_error
    # Asked for each upload and each call with a script; never for a request without one.
    assert roots.asked == 4
    texts = [m["text"] for m in sandbox.control.stats()["messages"]]
    assert texts[0].startswith("a video\n\nScript:\n# Aurora") and len(texts) == 2


@pytest.mark.parametrize("mode", MODES)
async def test_without_roots_the_upload_dirs_confine(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    settings = make_settings(tmp_path, sandbox.url)
    allowed = write(settings.upload_dirs[0] / "photo.png")
    elsewhere = write(tmp_path / "elsewhere" / "photo.png")
    async with Client(create_server(settings), mode=mode) as client:
        ok = await client.call_tool("upload", {"sources": [str(allowed)]})
        refused = await client.call_tool("upload", {"sources": [str(elsewhere)]})
        script = await client.call_tool(
            "generate", {"message": "a video", "script_file": str(elsewhere)}
        )
    assert not ok.is_error, text_of(ok)
    assert refused.is_error and str(settings.upload_dirs[0]) in text_of(refused)
    assert script.is_error and "outside the folders" in text_of(script)
    assert sent(sandbox) == 0


@pytest.mark.parametrize("mode", MODES)
async def test_roots_then_the_question_then_the_request(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    """Two resolvers in one call: the script's roots, then the spending question (on
    2026-07-28 two `InputRequiredResult` rounds); one request reaches the backend."""
    script = write(tmp_path / "project" / "script.txt", "Meet the Aurora lamp.")
    questions: list[str] = []

    async def user(_context: Any, params: Any) -> ElicitResult:
        questions.append(params.message)
        return ElicitResult(action="accept", content={"send": True})

    roots = Roots(tmp_path / "project")
    server = create_server(make_settings(tmp_path, sandbox.url))
    async with Client(
        server, mode=mode, list_roots_callback=roots, elicitation_callback=user
    ) as client:
        made = await client.call_tool(
            "generate", {"message": "a video", "script_file": str(script)}
        )
    assert not made.is_error, text_of(made)
    assert roots.asked == 1 and len(questions) == 1
    assert '"a video"' in questions[0] and "about 100 credits" in questions[0]
    assert sent(sandbox) == 1
