"""`nemo-mcp demo`: the whole job offline, through a real MCP client, for each product skill.

Starts the sandbox backend on a free loopback port, launches `nemo-mcp` over stdio as any MCP
client would, with `NEMO_SKILL` set to the skill (its headers, upload limit and
example prompts), and walks the job its users would: check credits, upload what they bring
(product photos), generate from the skill's example prompt (with their script, tagline or
product description), make an edit, show the timeline, export and save the MP4, then draw a
contact sheet of it beside it, printing progress as it goes. State lives in a temporary
folder, so the user's real token and session are never touched.

The inputs are small files bundled with the package (`nemo_mcp/demo_inputs`): they are
copied into `<output>/<skill>/inputs/` and uploaded from there, so what was sent sits beside
what came back.
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import anyio

from nemo_mcp.identity import SKILLS

if TYPE_CHECKING:
    from nemo_mcp.sandbox.config import SandboxConfig
    from nemo_mcp.sandbox.testing import SandboxServer

#: The skill `nemo-mcp demo` shows without `--skill`: text prompts.
DEFAULT_SKILL = "ai-generator-generator"
PHOTOS = ("shoe-red.png", "shoe-blue.png", "shoe-green.png")
DESCRIPTION = (
    "Trailrunner X\n"
    "Light running shoes with a breathable mesh upper.\n"
    "A grippy sole for wet roads.\n"
    "Free returns for 30 days."
)


@dataclass(frozen=True)
class Demo:
    """What one skill's demo brings and asks: `request` is built from the skill's own
    example prompt; `uploads` are bundled files sent with `upload`, `script` a bundled script
    sent with `generate`'s `script_file` (the way scripts travel: their text goes with the
    request)."""

    skill: str
    request: str
    edit: str
    uploads: tuple[str, ...] = ()
    script: str | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.uploads + ((self.script,) if self.script else ())


def _example(skill: str, number: int) -> str:
    return SKILLS[skill].try_saying[number].text


DEMOS: dict[str, Demo] = {
    demo.skill: demo
    for demo in (
        Demo(
            "ai-generator-generator",
            request=_example("ai-generator-generator", 2),
            edit='change the background music to upbeat jazz and add the title "City of Tomorrow"',
        ),
        Demo(
            "image-to-video-by-prompt",
            request=_example("image-to-video-by-prompt", 2),
            edit='add the title "Built for Speed"',
            uploads=PHOTOS[:2],
        ),
        Demo(
            "free-video-generator-from-script",
            request=_example("free-video-generator-from-script", 2),
            edit="change the background music to gentle piano",
            script="script.docx",
        ),
        Demo(
            "meta-video-generation-free",
            request=_example("meta-video-generation-free", 2) + ': "Made for the long run"',
            edit="change the background music to upbeat pop",
            uploads=PHOTOS,
        ),
        Demo(
            "ai-video-generation-online",
            request=f"{_example('ai-video-generation-online', 1)}: {DESCRIPTION}",
            edit='change the title to "Trailrunner X: run in any weather"',
            uploads=PHOTOS,
        ),
    )
}

#: The default skill's words (the README's first command).
PROMPT = DEMOS[DEFAULT_SKILL].request
EDIT = DEMOS[DEFAULT_SKILL].edit


@dataclass(frozen=True)
class Saved:
    """One skill's demo result: the MP4, its contact sheet, the timeline the demo was shown (the
    `timeline` tool's structured output), the `X-Skill-Source` values the backend saw,
    and how many messages it was sent and renders it was asked to start."""

    skill: str
    video: Path
    sheet: Path
    timeline: dict[str, Any]
    skill_sources: frozenset[str | None]
    messages_sent: int
    renders_started: int
    #: With `--handoff`: each timeline format's folder, and what those calls sent and started.
    handoffs: dict[str, Path] = field(default_factory=dict)
    handoff_requests: tuple[int, int] = (0, 0)


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
    skill: str, api_url: str, home: Path, output_dir: Path, inputs: Path
) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "SYSTEMROOT", "HOME", "LANG")},
        "NEMO_SKILL": skill,  # its headers, upload limit and example prompts
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


async def _sent(sandbox: SandboxServer, since: int) -> tuple[list[dict[str, Any]], int]:
    """The API's requests since the `since`-th served (the storage links, which carry no
    headers, left out), and how many have been served now. The log keeps the latest
    requests only: these are its last ones."""
    served = await _requests_served(sandbox)
    log = await sandbox.acontrol.requests()
    fresh = log[max(0, len(log) - (served - since)) :]
    return [r for r in fresh if r["route"] != "file"], served


def _counts(requests: list[dict[str, Any]]) -> tuple[int, int]:
    """Messages sent and renders started among `requests`."""
    routes = [r["route"] for r in requests]
    return routes.count("run_sse"), routes.count("render_start")


async def _show(
    demo: Demo,
    sandbox: SandboxServer,
    home: Path,
    target: Path,
    out: TextIO,
    handoff: bool = False,
) -> Saved:
    from mcp import Client, StdioServerParameters

    from nemo_mcp.media import contact_sheet

    skill = SKILLS[demo.skill]
    _say(out, f"\n== {skill.title} ({skill.name}) ==")
    _say(out, f"Its users bring {skill.brings}; uploads up to {skill.max_upload_label}.")
    _say(out, "Try saying: " + "; ".join(repr(p.text) for p in skill.try_saying))
    inputs = target / "inputs"
    await anyio.Path(inputs).mkdir(parents=True, exist_ok=True)
    for name in demo.inputs:
        await anyio.Path(inputs / name).write_bytes(bundled(name))
    seen_before = await _requests_served(sandbox)

    env = _server_env(demo.skill, sandbox.url, home, target, inputs)
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
                said = _text(result).removeprefix(f"Error executing tool {name}: ")
                raise RuntimeError(f"{name} answered: {said}")
            return result

        async def generate(args: dict[str, Any]) -> Any:
            made = await call("generate", args)
            while made.structured_content["status"] in ("running", "queued"):
                made = await call("generate", args)
            return made

        step = itertools.count(1)
        credits = await call("credits")
        _say(out, f"\n{next(step)}. credits\n{_text(credits)}")
        if demo.uploads:
            _say(out, f"\n{next(step)}. upload: {', '.join(demo.uploads)}")
            sent = await call("upload", {"sources": [str(inputs / n) for n in demo.uploads]})
            _say(out, _text(sent))
        request: dict[str, Any] = {"message": demo.request}
        with_script = ""
        if demo.script:
            request["script_file"] = str(inputs / demo.script)
            with_script = f" with the script {demo.script}"
        _say(out, f"\n{next(step)}. generate: {demo.request!r}{with_script}")
        _say(out, _text(await generate(request)))
        _say(out, f"\n{next(step)}. generate: {demo.edit!r}")
        _say(out, _text(await generate({"message": demo.edit})))
        shown = await call("timeline")
        _say(out, f"\n{next(step)}. timeline\n{_text(shown)}")
        _say(out, f"\n{next(step)}. export")
        exported = await call("export")
        while exported.structured_content["status"] in ("rendering", "queued"):
            exported = await call("export")
        # The sandbox ends with the demo: its render URL and browser link would lead nowhere.
        _say(out, _without_links_to(_text(exported), sandbox.url))
        requests, upto = await _sent(sandbox, seen_before)
        handoffs: dict[str, Path] = {}
        if handoff:
            from nemo_mcp.handoff import FORMATS

            for fmt in FORMATS:
                _say(out, f"\n{next(step)}. export, format {fmt}: the timeline for an editor")
                handed = await call("export", {"format": fmt})
                _say(out, _text(handed))
                handoffs[fmt] = Path(handed.structured_content["folder"])
        handed_off, _ = await _sent(sandbox, upto)

    video = Path(exported.structured_content["file"])
    if not await anyio.Path(video).is_file():
        raise RuntimeError(f"export reported {video}, but no file is there")
    sheet = video.with_name(f"{video.stem}-contact-sheet.jpg")
    await anyio.to_thread.run_sync(contact_sheet, video, sheet)
    await anyio.Path(sheet).chmod((await anyio.Path(video).stat()).st_mode & 0o777)
    sources = frozenset(r.get("skill_source") for r in requests)
    sent, renders = _counts(requests)
    _say(out, f"\nSaved: {video} ({_size(video)})")
    _say(out, f"Contact sheet: {sheet} ({_size(sheet)})")
    _say(
        out,
        f"NemoVideo saw X-Skill-Source: {', '.join(sorted(str(s) for s in sources))} "
        f"on {len(requests)} API requests: {sent} messages sent, {renders} render started.",
    )
    for kind, folder in handoffs.items():
        _say(out, f"Handed off ({kind}): {folder}")
    if handoffs:
        _say(
            out,
            "The hand-offs sent {} messages and started {} renders.".format(*_counts(handed_off)),
        )
    return Saved(
        demo.skill,
        video,
        sheet,
        dict(shown.structured_content),
        sources,
        sent,
        renders,
        handoffs,
        _counts(handed_off),
    )


class DemoFailed(Exception):
    """A skill's demo stopped; the message is one sentence naming the skill and the cause."""


def _innermost(err: BaseException) -> BaseException:
    """The error under any exception groups (the MCP client's task groups wrap what
    failed inside them): the first one that is an error, not a cancellation."""
    while isinstance(inner := getattr(err, "exceptions", None), (list, tuple)) and inner:
        real = [e for e in inner if isinstance(e, Exception)]
        err = (real or list(inner))[0]
    return err


#: Where one sentence ends and the next begins (not inside a file name or a number).
_NEXT_SENTENCE = re.compile(r"(?<=[a-z)\]])\.\s+(?=[A-Z])")


def cause_of(err: BaseException) -> str:
    """What went wrong, in one sentence: the innermost error's own first sentence, or for a
    file error the file and the system's words."""
    err = _innermost(err)
    if isinstance(err, OSError) and err.strerror:
        where = f"{err.filename}: " if err.filename else ""
        text = f"{where}{err.strerror.lower()}"
    else:
        text = str(err) or type(err).__name__
    return _NEXT_SENTENCE.split(" ".join(text.split()), maxsplit=1)[0].rstrip(".")


async def _run(
    skills: Sequence[str],
    sandbox: SandboxServer,
    home: Path,
    target: Path,
    out: TextIO,
    handoff: bool = False,
) -> list[Saved]:
    saved = []
    for skill in skills:
        try:
            saved.append(
                await _show(DEMOS[skill], sandbox, home / skill, target / skill, out, handoff)
            )
        except Exception as err:
            raise DemoFailed(f"the {skill} demo stopped: {cause_of(err)}") from err
    return saved


def run(
    skills: Sequence[str],
    output_dir: Path,
    out: TextIO,
    config: SandboxConfig | None = None,
    *,
    handoff: bool = False,
) -> list[Saved]:
    """Run the demos of `skills` in turn against one sandbox; raises on the first failure.
    `handoff`: each demo also hands its timeline to editors, in every timeline format."""
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
        return anyio.run(_run, skills, sandbox, Path(home), output_dir, out, handoff)


def main(
    output_dir: str | None = None,
    out: TextIO | None = None,
    *,
    skill: str | None = None,
    every: bool = False,
    config: SandboxConfig | None = None,
    handoff: bool = False,
) -> int:
    """Run the demo of one skill (`skill`, else the text-prompt one) or of all five (`every`);
    returns the process exit code."""
    out = out or sys.stdout
    target = Path(
        output_dir or os.environ.get("NEMO_OUTPUT_DIR") or Path.cwd() / "nemo-demo"
    ).expanduser()
    skills = list(DEMOS) if every else [skill or DEFAULT_SKILL]
    _say(out, "nemo-mcp demo: everything runs on this machine against the sandbox backend.")
    try:
        if any(s not in DEMOS for s in skills):
            raise ValueError(f"no such skill {skill!r}; choose one of: {', '.join(DEMOS)}")
        if handoff:
            from nemo_mcp.handoff import missing_sentence

            if (missing := missing_sentence()) is not None:
                raise ValueError(missing)
        saved = run(skills, target, out, config, handoff=handoff)
    except Exception as err:  # the demo explains failures; it never shows a traceback
        _say(out, f"\nDemo failed: {cause_of(err)}.")
        return 1
    _say(out, "\nDone:")
    for one in saved:
        _say(out, f"  {one.skill}: {one.video}\n  {' ' * len(one.skill)}  {one.sheet}")
        for folder in one.handoffs.values():
            _say(out, f"  {' ' * len(one.skill)}  {folder}")
    return 0
