"""`nemo-mcp demo`: the whole job offline, through a real MCP client.

Starts the sandbox backend on a free loopback port, launches `nemo-mcp` over
stdio as any MCP client would, and walks the job a user would: check
credits, generate a clip from a prompt, add music, show the timeline, export
and save the MP4, printing progress as it goes. State lives in a temporary
folder, so the user's real token and session are never touched.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import anyio

PROMPT = "a 10-second video of a futuristic city at sunset with flying cars"
EDIT = "change the background music to upbeat jazz"


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _text(result: Any) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def _run(api_url: str, home: Path, output_dir: Path, out: TextIO) -> int:
    from mcp import Client, StdioServerParameters

    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "HOME", "LANG")},
        "NEMO_API_URL": api_url,
        # Claim links point at the sandbox too: nothing here is the real service.
        "NEMO_WEB_URL": api_url,
        "NEMO_HOME": str(home),
        "NEMO_OUTPUT_DIR": str(output_dir),
        "NEMO_TOOL_TIMEOUT": "50",
        "NEMO_RENDER_MIN_SECONDS": "1",
        "NEMO_LOG_LEVEL": "WARNING",
    }
    params = StdioServerParameters(command=sys.executable, args=["-m", "nemo_mcp"], env=env)
    last_note = {"text": ""}

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        if message and message != last_note["text"]:
            last_note["text"] = message
            _say(out, f"    ... {message}")

    async with Client(params) as client:
        tools = await client.list_tools()
        _say(out, f"Connected over stdio: tools {', '.join(t.name for t in tools.tools)}")

        async def call(name: str, args: dict[str, Any] | None = None) -> Any:
            result = await client.call_tool(name, args or {}, progress_callback=progress)
            if result.is_error:
                raise RuntimeError(f"{name} failed: {_text(result)}")
            return result

        credits = await call("credits")
        _say(out, f"\n1. credits\n{_text(credits)}")
        _say(out, f"\n2. generate: {PROMPT!r}")
        made = await call("generate", {"message": PROMPT})
        while made.structured_content["status"] == "running":
            made = await call("generate", {"message": PROMPT})
        _say(out, _text(made))
        _say(out, f"\n3. generate: {EDIT!r}")
        edited = await call("generate", {"message": EDIT})
        while edited.structured_content["status"] == "running":
            edited = await call("generate", {"message": EDIT})
        _say(out, _text(edited))
        shown = await call("timeline")
        _say(out, f"\n4. timeline\n{_text(shown)}")
        _say(out, "\n5. export")
        exported = await call("export")
        while exported.structured_content["status"] == "rendering":
            exported = await call("export")
        _say(out, _text(exported))
        saved = anyio.Path(exported.structured_content["file"])
        if not await saved.is_file():
            raise RuntimeError(f"export reported {saved}, but no file is there")
        _say(out, f"\nDone: {saved} ({(await saved.stat()).st_size} bytes).")
    return 0


def main(output_dir: str | None = None, out: TextIO | None = None) -> int:
    """Run the demo; returns the process exit code."""
    from nemo_mcp.sandbox.config import SandboxConfig
    from nemo_mcp.sandbox.testing import SandboxServer

    out = out or sys.stdout
    target = Path(
        output_dir or os.environ.get("NEMO_OUTPUT_DIR") or Path.cwd() / "nemo-demo"
    ).expanduser()
    config = SandboxConfig(
        initial_credits=300, generation_seconds=4.0, edit_seconds=1.0, render_seconds=3.0
    )
    _say(out, "nemo-mcp demo: everything runs on this machine against the sandbox backend.")
    try:
        with (
            tempfile.TemporaryDirectory(prefix="nemo-demo-") as home,
            SandboxServer(config) as sandbox,
        ):
            _say(out, f"Sandbox backend at {sandbox.url}; exports go to {target}")
            return anyio.run(_run, sandbox.url, Path(home), target, out)
    except Exception as err:  # the demo explains failures; it never shows a traceback
        _say(out, f"\nDemo failed: {err}")
        return 1
