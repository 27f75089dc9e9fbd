"""`nemo-mcp demo`: the whole job offline, through a real MCP client, for each product face.

Starts the sandbox backend on a free loopback port, launches `nemo-mcp` over stdio as any MCP
client would, with `NEMO_SKILL` set to the face's profile (its headers, upload limit and
example prompts), and walks the job its users would: check credits, upload what they bring
(product photos), generate from the profile's example prompt (with their script, tagline or
product description), make an edit, show the timeline, export and save the MP4, then draw a
contact sheet of it beside it, printing progress as it goes. State lives in a temporary
folder, so the user's real token and session are never touched.

The inputs are small files bundled with the package (`nemo_mcp/demo_inputs`): they are
copied into `<output>/<face>/inputs/` and uploaded from there, so what was sent sits beside
what came back.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from nemo_mcp.identity import PROFILES

if TYPE_CHECKING:
    from nemo_mcp.sandbox.config import SandboxConfig
    from nemo_mcp.sandbox.testing import SandboxServer

#: The face `nemo-mcp demo` shows without `--skill`: text prompts.
DEFAULT_SKILL = "ai-generator-generator"
PHOTOS = ("shoe-red.png", "shoe-blue.png", "shoe-green.png")
DESCRIPTION = (
    "Trailrunner X\n"
    "Light running shoes with a breathable mesh upper.\n"
    "A grippy sole for wet roads.\n"
    "Free returns for 30 days."
)


@dataclass(frozen=True)
class Face:
    """What one product face's demo brings and asks: `request` is built from the profile's own
    example prompt; `uploads` are bundled files sent with `upload`, `script` a bundled script
    sent with `generate`'s `script_file` (the way scripts travel: their text goes with the
    request)."""

    slug: str
    request: str
    edit: str
    uploads: tuple[str, ...] = ()
    script: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.uploads + ((self.script,) if self.script else ())


def _example(slug: str, number: int) -> str:
    return PROFILES[slug].try_saying[number].text


FACES: dict[str, Face] = {
    face.slug: face
    for face in (
        Face(
            "ai-generator-generator",
            request=_example("ai-generator-generator", 2),
            edit='change the background music to upbeat jazz and add the title "City of Tomorrow"',
        ),
        Face(
            "image-to-video-by-prompt",
            request=_example("image-to-video-by-prompt", 2),
            edit='add the title "Built for Speed"',
            uploads=PHOTOS[:2],
        ),
        Face(
            "free-video-generator-from-script",
            request=_example("free-video-generator-from-script", 2),
            edit="change the background music to gentle piano",
            script="script.docx",
        ),
        Face(
            "meta-video-generation-free",
            request=_example("meta-video-generation-free", 2) + ': "Made for the long run"',
            edit="change the background music to upbeat pop",
            uploads=PHOTOS,
        ),
        Face(
            "ai-video-generation-online",
            request=f"{_example('ai-video-generation-online', 1)}: {DESCRIPTION}",
            edit='change the title to "Trailrunner X: run in any weather"',
            uploads=PHOTOS,
        ),
    )
}

#: The default face's words (the README's first command).
PROMPT = FACES[DEFAULT_SKILL].request
EDIT = FACES[DEFAULT_SKILL].edit


@dataclass(frozen=True)
class Saved:
    """One face's result: the MP4, its contact sheet, the timeline the demo was shown (the
    `timeline` tool's structured output), the `X-Skill-Source` values the backend saw,
    and how many messages it was sent and renders it was asked to start."""

    slug: str
    video: Path
    sheet: Path
    timeline: dict[str, Any]
    skill_sources: frozenset[str | None]
    messages_sent: int
    renders_started: int


def _say(out: TextIO, text: str) -> None:
    print(text, file=out, flush=True)


def _text(result: Any) -> str:
    """A tool result's words (its pictures, if any, are left out)."""
    return "\n".join(block.text for block in result.content if getattr(block, "text", None))


async def _requests_served(sandbox: SandboxServer) -> int:
    """How many requests the sandbox has answered so far (every one is logged)."""
    return sum((await sandbox.acontrol.stats())["requests"].values())


def _without_links_to(text: str, origin: str) -> str:
    """`text` without its lines linking to `origin` (the sandbox, gone once the demo ends)."""
    return "\n".join(line for line in text.splitlines() if origin not in line).strip()


def bundled(name: str) -> bytes:
    """A bundled demo input's bytes."""
    return resources.files("nemo_mcp").joinpath("demo_inputs").joinpath(name).read_bytes()


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1000:.0f} kB" if size < 1_000_000 else f"{size / 1_000_000:.1f} MB"


def _server_env(
    slug: str, api_url: str, home: Path, output_dir: Path, inputs: Path
) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "HOME", "LANG")},
        "NEMO_SKILL": slug,  # the profile: headers, upload limit and example prompts
        "NEMO_API_URL": api_url,
        # Claim links point at the sandbox too: nothing here is the real service.
        "NEMO_WEB_URL": api_url,
        "NEMO_HOME": str(home),
        "NEMO_OUTPUT_DIR": str(output_dir),
        "NEMO_UPLOAD_DIRS": str(inputs),
        "NEMO_TOOL_TIMEOUT": "50",
        "NEMO_RENDER_MIN_SECONDS": "1",
        "NEMO_LOG_LEVEL": "WARNING",
    }


def script_to_send(name: str) -> str:
    """The bundled script to send: the .docx, or its .txt twin when python-docx (the
    `docs` extra) is not installed to read it."""
    if name.endswith(".docx") and importlib.util.find_spec("docx") is None:
        return name.removesuffix(".docx") + ".txt"
    return name


async def _face(face: Face, sandbox: SandboxServer, home: Path, target: Path, out: TextIO) -> Saved:
    from mcp import Client, StdioServerParameters

    from nemo_mcp.media import contact_sheet

    profile = PROFILES[face.slug]
    _say(out, f"\n== {profile.title} ({face.slug}) ==")
    _say(out, f"Its users bring {profile.brings}; uploads up to {profile.max_upload_label}.")
    _say(out, "Try saying: " + "; ".join(repr(p.text) for p in profile.try_saying))
    inputs = target / "inputs"
    await anyio.Path(inputs).mkdir(parents=True, exist_ok=True)
    for name in face.inputs:
        await anyio.Path(inputs / name).write_bytes(bundled(name))
    seen_before = await _requests_served(sandbox)

    env = _server_env(face.slug, sandbox.url, home, target, inputs)
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

        async def generate(args: dict[str, Any]) -> Any:
            made = await call("generate", args)
            while made.structured_content["status"] in ("running", "queued"):
                made = await call("generate", args)
            return made

        step = itertools.count(1)
        credits = await call("credits")
        _say(out, f"\n{next(step)}. credits\n{_text(credits)}")
        if face.uploads:
            _say(out, f"\n{next(step)}. upload: {', '.join(face.uploads)}")
            sent = await call("upload", {"sources": [str(inputs / n) for n in face.uploads]})
            _say(out, _text(sent))
        request: dict[str, Any] = {"message": face.request}
        with_script = ""
        if face.script:
            script = script_to_send(face.script)
            request["script_file"] = str(inputs / script)
            with_script = f" with the script {script}"
        _say(out, f"\n{next(step)}. generate: {face.request!r}{with_script}")
        _say(out, _text(await generate(request)))
        _say(out, f"\n{next(step)}. generate: {face.edit!r}")
        _say(out, _text(await generate({"message": face.edit})))
        shown = await call("timeline")
        _say(out, f"\n{next(step)}. timeline\n{_text(shown)}")
        _say(out, f"\n{next(step)}. export")
        exported = await call("export")
        while exported.structured_content["status"] in ("rendering", "queued"):
            exported = await call("export")
        # The sandbox ends with the demo: its render URL and browser link would lead nowhere.
        _say(out, _without_links_to(_text(exported), sandbox.url))

    video = Path(exported.structured_content["file"])
    if not await anyio.Path(video).is_file():
        raise RuntimeError(f"export reported {video}, but no file is there")
    sheet = video.with_name(f"{video.stem}-contact-sheet.jpg")
    await anyio.to_thread.run_sync(contact_sheet, video, sheet)
    await anyio.Path(sheet).chmod((await anyio.Path(video).stat()).st_mode & 0o777)
    # The API's requests: the storage links (the video, a clip's preview) carry no headers.
    # The log keeps the latest requests only: this face's are its last ones.
    made = await _requests_served(sandbox) - seen_before
    log = await sandbox.acontrol.requests()
    requests = [r for r in log[max(0, len(log) - made) :] if r["route"] != "file"]
    sources = frozenset(r.get("skill_source") for r in requests)
    routes = [r["route"] for r in requests]
    sent, renders = routes.count("run_sse"), routes.count("render_start")
    _say(out, f"\nSaved: {video} ({_size(video)})")
    _say(out, f"Contact sheet: {sheet} ({_size(sheet)})")
    _say(
        out,
        f"NemoVideo saw X-Skill-Source: {', '.join(sorted(str(s) for s in sources))} "
        f"on {len(requests)} API requests: {sent} messages sent, {renders} render started.",
    )
    return Saved(face.slug, video, sheet, dict(shown.structured_content), sources, sent, renders)


async def _run(
    slugs: Sequence[str], sandbox: SandboxServer, home: Path, target: Path, out: TextIO
) -> list[Saved]:
    saved = []
    for slug in slugs:
        saved.append(await _face(FACES[slug], sandbox, home / slug, target / slug, out))
    return saved


def run(
    slugs: Sequence[str],
    output_dir: Path,
    out: TextIO,
    config: SandboxConfig | None = None,
) -> list[Saved]:
    """Run the faces `slugs` in turn against one sandbox; raises on the first failure."""
    from nemo_mcp.sandbox.config import SandboxConfig
    from nemo_mcp.sandbox.testing import SandboxServer

    config = config or SandboxConfig(
        initial_credits=300, generation_seconds=4.0, edit_seconds=1.0, render_seconds=3.0
    )
    with (
        tempfile.TemporaryDirectory(prefix="nemo-demo-") as home,
        SandboxServer(config) as sandbox,
    ):
        _say(out, f"Sandbox backend at {sandbox.url}; exports go to {output_dir}")
        return anyio.run(_run, slugs, sandbox, Path(home), output_dir, out)


def main(
    output_dir: str | None = None,
    out: TextIO | None = None,
    *,
    skill: str | None = None,
    every: bool = False,
    config: SandboxConfig | None = None,
) -> int:
    """Run the demo of one face (`skill`, else the text-prompt face) or of all five (`every`);
    returns the process exit code."""
    out = out or sys.stdout
    target = Path(
        output_dir or os.environ.get("NEMO_OUTPUT_DIR") or Path.cwd() / "nemo-demo"
    ).expanduser()
    slugs = list(FACES) if every else [skill or DEFAULT_SKILL]
    _say(out, "nemo-mcp demo: everything runs on this machine against the sandbox backend.")
    try:
        if any(s not in FACES for s in slugs):
            raise ValueError(f"no such face {skill!r}; choose one of: {', '.join(FACES)}")
        saved = run(slugs, target, out, config)
    except Exception as err:  # the demo explains failures; it never shows a traceback
        _say(out, f"\nDemo failed: {err}")
        return 1
    _say(out, "\nDone:")
    for one in saved:
        _say(out, f"  {one.slug}: {one.video}\n  {' ' * len(one.slug)}  {one.sheet}")
    return 0
