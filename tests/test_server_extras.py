"""Resources, prompts, scripts, new projects and recovery, through the real client."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

from nemo_mcp.identity import SKILLS

from mcp_harness import connect, make_settings, text_of


async def test_resources_and_prompts(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        client = session.client
        uris = {str(r.uri) for r in (await client.list_resources()).resources}
        assert {"nemo://timeline", "nemo://timeline.json", "nemo://renders"} <= uris
        empty = await client.read_resource("nemo://timeline")
        assert "no tracks" in empty.contents[0].text.lower()  # type: ignore[union-attr]
        await session.call("generate", {"message": "a video of a waterfall"})
        await session.call("export")
        text = (await client.read_resource("nemo://timeline")).contents[0].text  # type: ignore[union-attr]
        assert "Video" in text
        data = json.loads((await client.read_resource("nemo://timeline.json")).contents[0].text)  # type: ignore[union-attr]
        assert data["summary"].startswith("Timeline (") and data["draft"]["t"]
        history = json.loads((await client.read_resource("nemo://renders")).contents[0].text)  # type: ignore[union-attr]
        assert history["renders"][-1]["status"] == "completed"
        prompts = (await client.list_prompts()).prompts
        examples = SKILLS["ai-video-generation-online"].try_saying
        assert len(prompts) == len(examples)
        first = await client.get_prompt(prompts[0].name)
        assert first.messages[0].content.text == examples[0].text  # type: ignore[union-attr]


async def test_script_file_is_sent_with_the_request(tmp_path: Path, sandbox: Any) -> None:
    script = tmp_path / "uploads" / "launch.md"
    script.parent.mkdir(exist_ok=True)
    script.write_text("# Launch\n\nMeet the new Aurora lamp.\n\n\n\nIt glows.", encoding="utf-8")
    settings = make_settings(tmp_path, sandbox.url, skill="free-video-generator-from-script")
    async with connect(settings) as session:
        result = await session.call(
            "generate", {"message": "turn my script into a video", "script_file": str(script)}
        )
    assert not result.is_error, text_of(result)
    sent = sandbox.control.stats()["messages"][0]["text"]
    assert sent.startswith("turn my script into a video") and "Meet the new Aurora lamp." in sent


async def test_script_file_outside_roots_is_refused(tmp_path: Path, sandbox: Any) -> None:
    script = tmp_path / "elsewhere.txt"
    script.write_text("secret plans")
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        result = await session.call("generate", {"message": "make it", "script_file": str(script)})
    assert result.is_error and "outside the folders" in text_of(result)
    assert sandbox.control.stats()["requests"].get("run_sse", 0) == 0


async def test_new_project_starts_a_fresh_session(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.set(initial_credits=500)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        first = await session.call("generate", {"message": "a video of a red car"})
        second = await session.call(
            "generate", {"message": "a video of a blue boat", "new_project": True}
        )
        shown = await session.call("timeline")
    assert first.structured_content["session_id"] != second.structured_content["session_id"]  # type: ignore[index]
    assert not shown.is_error
    timeline = text_of(shown).lower()
    assert "blue boat" in timeline and "red car" not in timeline


async def test_broken_stream_is_recovered_from_the_state(tmp_path: Path, sandbox: Any) -> None:
    sandbox.control.fault("stream_drop", route="run_sse", times=1)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        result = await session.call("generate", {"message": "a video of a meadow"})
    out = result.structured_content
    assert not result.is_error, text_of(result)
    assert out["recovered"] and out["changes"]  # type: ignore[index]
    assert "nothing was sent twice" in text_of(result)
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_cancelled_wait_does_not_cancel_the_work(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    import anyio

    sandbox.control.set(generation_seconds=1.5)
    settings = make_settings(tmp_path, sandbox.url)
    message = {"message": "a video of northern lights"}
    async with connect(settings, mode=mode) as session:
        with anyio.move_on_after(0.4):
            await session.client.call_tool("generate", message)
        result = await session.call("generate", message)
    assert result.structured_content["status"] == "completed"  # type: ignore[index]
    assert sandbox.control.stats()["requests"]["run_sse"] == 1


async def test_an_unknown_prompt_is_invalid_params_without_a_traceback(
    tmp_path: Path, sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Like an unknown resource: JSON-RPC -32602 naming it, and nothing logged at the
    default level (WARNING)."""
    caplog.set_level(logging.WARNING)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        names = [p.name for p in (await session.client.list_prompts()).prompts]
        with pytest.raises(MCPError) as prompt:
            await session.client.get_prompt("no-such-prompt")
        with pytest.raises(MCPError) as resource:
            await session.client.read_resource("nemo://no-such-resource")
    assert resource.value.error.code == INVALID_PARAMS  # the sibling the prompt should match
    assert prompt.value.error.code == INVALID_PARAMS
    said = prompt.value.error.message
    assert "no-such-prompt" in said and all(name in said for name in names), said
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_retitle_names_the_saved_file_and_heads_the_timeline(
    tmp_path: Path, sandbox: Any
) -> None:
    sandbox.control.set(initial_credits=500)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a futuristic city at sunset"})
        first = await session.call("export")
        retitled = await session.call(
            "generate", {"message": 'change the title to "City of Tomorrow"'}
        )
        assert not retitled.is_error, text_of(retitled)
        second = await session.call("export")
        shown = await session.call("timeline")
    assert Path(first.structured_content["file"]).name == "Futuristic-City-at-Sunset.mp4"  # type: ignore[index]
    assert Path(second.structured_content["file"]).name == "City-of-Tomorrow.mp4"  # type: ignore[index]
    assert text_of(shown).startswith('Timeline "City of Tomorrow"'), text_of(shown)
    assert sandbox.control.stats()["requests"]["render_start"] == 2


@pytest.mark.parametrize(
    ("ask", "done"),
    [
        ('change the title to "Built for Speed"', 'I changed the title to "Built for Speed".'),
        ("trim it to 5 seconds", "I trimmed the video to 5 seconds."),
    ],
)
async def test_an_edit_reads_as_done_and_offers_the_next_step(
    tmp_path: Path, sandbox: Any, ask: str, done: str
) -> None:
    sandbox.control.set(initial_credits=500)
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        await session.call("generate", {"message": "a video of a futuristic city at sunset"})
        edited = await session.call("generate", {"message": ask})
    reply = text_of(edited).split("\n\n")[0]
    # What changed, then offers (a further change, the export), never a request for the
    # change that was just made.
    assert reply == (
        f"{done} To change anything else, describe it with `generate`. "
        "Call `export` to render and save the MP4 (free)."
    ), reply


@pytest.mark.parametrize("skill", list(SKILLS))
async def test_try_saying_prompts_each_say_what_they_are(
    tmp_path: Path, sandbox: Any, skill: str
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url, skill=skill)) as session:
        prompts = (await session.client.list_prompts()).prompts
        said = [
            (await session.client.get_prompt(p.name)).messages[0].content.text  # type: ignore[union-attr]
            for p in prompts
        ]
    assert len(prompts) == 3
    descriptions = [p.description or "" for p in prompts]
    assert len(set(descriptions)) == 3, descriptions  # each its own
    for prompt, text, description in zip(prompts, said, descriptions, strict=True):
        # Said as a person would say it: not "generate my text prompts".
        assert not re.match(r"(?i)generate my\b", text), text
        assert re.search(r"[a-z]{3,} [a-z]{3,}", description), description
        title = prompt.title or ""
        # A title is the request, or its first whole words.
        assert title == text or (title.endswith("…") and text.startswith(title[:-1])), title
        assert title == text or text[len(title) - 1] == " ", title
