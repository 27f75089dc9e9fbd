"""What a whole demo session costs the agent's context: `tools/list` plus every result.

One session as an agent runs it against the sandbox over stdio: credits, a clip from a
prompt (asked again while it runs, as the answer says), an edit that adds a title, an
uploaded photo put into the video, the timeline, and an export (asked again while it
renders). Every answer is counted as a client passes it to the model:

- text (content blocks, and the JSON of a resource link): 4 characters a token, the usual
  rule of thumb for English and JSON (no tokenizer is downloaded here);
- images: width x height / 750 tokens, after scaling to fit 1568 pixels on the long side
  (Anthropic's published formula for vision input);
- structured content, which some clients also give the model: its JSON at 4 characters a
  token, reported in its own column (with, for `tools/list`, the tools' output schemas).

    .venv/bin/python bench/bench_tokens.py
"""

from __future__ import annotations

import base64
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, machine, sandbox_process, scratch, server_env, table

CHARS_PER_TOKEN = 4
LONG_EDGE = 1568


def text_tokens(text: str) -> int:
    return -(-len(text) // CHARS_PER_TOKEN)


def image_tokens(data: str) -> tuple[int, str]:
    from PIL import Image

    raw = base64.b64decode(data)
    with Image.open(io.BytesIO(raw)) as picture:
        width, height = picture.size
    scale = min(1.0, LONG_EDGE / max(width, height))
    w, h = round(width * scale), round(height * scale)
    return round(w * h / 750), f"{width}x{height} {len(raw) // 1024} KiB"


@dataclass
class Step:
    what: str
    text: int = 0
    images: int = 0
    structured: int = 0
    note: str = ""

    @property
    def content(self) -> int:
        return self.text + self.images


def count(what: str, result: Any) -> Step:
    step = Step(what)
    notes = []
    for block in result.content:
        kind = getattr(block, "type", "")
        if kind == "text":
            step.text += text_tokens(block.text)
        elif kind == "image":
            tokens, shape = image_tokens(block.data)
            step.images += tokens
            notes.append(f"image {shape}")
        else:
            step.text += text_tokens(block.model_dump_json(exclude_none=True, by_alias=True))
            notes.append(kind)
    if result.structured_content is not None:
        step.structured = text_tokens(json.dumps(result.structured_content))
    step.note = ", ".join(notes)
    return step


def photo(folder: Path) -> Path:
    from PIL import Image, ImageDraw

    path = folder / "product.jpg"
    picture = Image.new("RGB", (1200, 900), (30, 110, 200))
    ImageDraw.Draw(picture).ellipse((350, 200, 850, 700), fill=(250, 200, 40))
    picture.save(path, quality=85)
    return path


async def session(api_url: str, work: Path) -> tuple[tuple[int, int], list[Step]]:
    image = photo(work)  # the server may read files under `work`
    env = server_env(api_url, work, NEMO_TOOL_TIMEOUT="2", NEMO_RENDER_MIN_SECONDS="1")
    params = StdioServerParameters(command=PYTHON, args=["-m", "nemo_mcp"], env=env)
    steps: list[Step] = []
    async with Client(params) as client:
        listed = await client.list_tools()
        # What clients give the model for each tool: its name, description and input
        # schema; the output schemas (which few clients show the model) are counted apart.
        shown = [
            {"name": t.name, "description": t.description, "input_schema": t.input_schema}
            for t in listed.tools
        ]
        listing = (
            text_tokens(json.dumps(shown)),
            text_tokens(json.dumps([t.output_schema for t in listed.tools])),
        )

        async def call(what: str, tool: str, args: dict[str, Any], until: str = "") -> None:
            while True:
                result = await client.call_tool(tool, args)
                if result.is_error:
                    text = " ".join(getattr(b, "text", "") for b in result.content)
                    raise RuntimeError(f"{tool} failed: {text}")
                steps.append(count(what, result))
                status = (result.structured_content or {}).get("status")
                if not until or status not in ("running", "queued", "rendering"):
                    return
                what = f"{what} (asked again)"

        await call("credits", "credits", {})
        prompt = "a 10-second video of a futuristic city at sunset with flying cars"
        await call("generate: prompt", "generate", {"message": prompt}, until="done")
        title = "add the title 'Summer Sale' at the start"
        await call("generate: title", "generate", {"message": title}, until="done")
        await call("upload: photo", "upload", {"sources": [str(image)]})
        use = "put the uploaded photo after the opening clip"
        await call("generate: photo", "generate", {"message": use}, until="done")
        await call("timeline", "timeline", {})
        await call("export", "export", {}, until="done")
    return listing, steps


def report(listings: tuple[int, int], steps: list[Step], seconds: float) -> str:
    listing, schemas = listings
    rows: list[list[Any]] = [["tools/list", listing, 0, listing, schemas, "5 tools"]]
    rows += [[s.what, s.text, s.images, s.content, s.structured, s.note] for s in steps]
    content = listing + sum(s.content for s in steps)
    structured = sum(s.structured for s in steps)
    rows.append(["**session**", "", "", f"**{content}**", structured, f"{len(steps)} calls"])
    head = ["answer", "text tokens", "image tokens", "content tokens", "structured tokens", ""]
    return "\n\n".join(
        [
            f"Machine: {machine()}",
            "One demo session over stdio against the sandbox (text at 4 characters a token; "
            "images at width x height / 750).",
            table(head, rows),
            f"The whole session costs the agent about **{content} tokens** of content "
            f"({structured} more where a client also passes structured content, and {schemas} "
            "for the output schemas where it shows those).",
        ]
    )


def main() -> None:
    started = time.monotonic()
    with (
        scratch() as work,
        sandbox_process(
            generation_seconds=3.0, edit_seconds=1.0, render_seconds=3.0, initial_credits=1000
        ) as url,
    ):
        listing, steps = anyio.run(session, url, work)
    print(report(listing, steps, time.monotonic() - started))


if __name__ == "__main__":
    main()
