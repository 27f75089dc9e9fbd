"""The server as users run it: `python -m nemo_mcp` over stdio, driven by the SDK's Client."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from mcp_harness import text_of


def stdio_params(tmp_path: Path, api_url: str, **extra: str) -> StdioServerParameters:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "NEMO_API_URL": api_url,
        "NEMO_HOME": str(tmp_path / "home"),
        "NEMO_OUTPUT_DIR": str(tmp_path / "out"),
        "NEMO_UPLOAD_DIRS": str(tmp_path),
        "NEMO_TOOL_TIMEOUT": "20",
        "NEMO_RENDER_MIN_SECONDS": "0.3",
        "NEMO_LOG_LEVEL": "INFO",
        **extra,
    }
    return StdioServerParameters(command=sys.executable, args=["-m", "nemo_mcp"], env=env)


async def test_stdio_end_to_end(tmp_path: Path, sandbox: Any) -> None:
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with Client(stdio_params(tmp_path, sandbox.url)) as client:
        assert client.server_info is not None and client.server_info.name == "nemo-mcp"
        assert "export" in (client.instructions or "")
        names = {t.name for t in (await client.list_tools()).tools}
        assert names == {"generate", "upload", "export", "credits", "timeline"}
        made = await client.call_tool(
            "generate", {"message": "a video of a harbour at dawn"}, progress_callback=on_progress
        )
        assert not made.is_error, text_of(made)
        exported = await client.call_tool("export", {}, progress_callback=on_progress)
        assert not exported.is_error, text_of(exported)
        saved = Path(exported.structured_content["file"])  # type: ignore[index]
    assert saved.is_file() and saved.read_bytes()[4:8] == b"ftyp"
    assert progress
    stats = sandbox.control.stats()
    assert stats["requests"]["run_sse"] == 1 and stats["renders_started"] == 1


async def test_stdio_bad_settings_exit_cleanly(tmp_path: Path) -> None:
    import subprocess

    env = {**stdio_params(tmp_path, "ftp://nope").env}  # type: ignore[dict-item]
    done = subprocess.run(
        [sys.executable, "-m", "nemo_mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "NEMO_API_URL must start with http" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_version_flag() -> None:
    import subprocess

    from nemo_mcp import __version__

    done = subprocess.run(
        [sys.executable, "-m", "nemo_mcp", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"nemo-mcp {__version__}"
