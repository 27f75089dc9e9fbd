"""Invalid arguments, through the SDK's real `Client`: one plain sentence, nothing sent.

Every tool gets wrong types, missing and blank required fields, and values
outside their set. The answer names the argument and what is expected; no
validator wording, no echo of the input, no library link reaches the agent.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from mcp_harness import connect, make_settings, text_of

# (tool, arguments, the argument the sentence must name, words it must say)
CASES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    ("generate", {}, "message", ("required", "text")),
    ("generate", {"message": 12345}, "message", ("text",)),
    ("generate", {"message": ""}, "message", ("empty",)),
    ("generate", {"message": "   \n\t "}, "message", ("empty",)),
    ("generate", {"message": ["a", "b"]}, "message", ("text",)),
    ("generate", {"message": "x" * 20_001}, "message", ("too long", "20000")),
    ("generate", {"message": "a video", "new_project": "maybe"}, "new_project", ("true or false",)),
    ("generate", {"message": "a video", "script_file": 7}, "script_file", ("text",)),
    ("upload", {}, "sources", ("required", "list")),
    ("upload", {"sources": "/tmp/a.mp4"}, "sources", ("list",)),
    ("upload", {"sources": []}, "sources", ("at least 1",)),
    ("upload", {"sources": [1, 2]}, "sources", ("Item 1", "text")),
    ("upload", {"sources": ["a"] * 21}, "sources", ("at most 20",)),
    ("export", {"format": "mov"}, "format", ("one of", "mp4")),
    ("export", {"quality": "ultra"}, "quality", ("one of", "high", "medium", "low")),
    ("export", {"quality": 3}, "quality", ("one of",)),
    ("export", {"fresh": "yes please"}, "fresh", ("true or false",)),
]

LEAKS = re.compile(r"pydantic|input_value|input_type|validation error|https?://|\{|\}|Arguments\b")


def counts(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.control.stats()["requests"])


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_invalid_arguments_get_one_plain_sentence(
    tmp_path: Path, sandbox: Any, mode: str
) -> None:
    async with connect(make_settings(tmp_path, sandbox.url), mode=mode) as session:
        for tool, args, name, words in CASES:
            result = await session.client.call_tool(tool, args)
            text = text_of(result)
            assert result.is_error, (tool, args, text)
            assert f"`{name}`" in text, (tool, args, text)
            for word in words:
                assert word.lower() in text.lower(), (tool, args, word, text)
            assert not LEAKS.search(text), (tool, args, text)
            assert "12345" not in text and "maybe" not in text and "ultra" not in text
            assert text.count("\n") == 0, text
    # Nothing reached the backend: not a message, not an upload, not a render.
    sent = counts(sandbox)
    assert sent.get("run_sse", 0) == 0 and sent.get("upload", 0) == 0
    assert sent.get("render_start", 0) == 0


async def test_blank_message_sends_nothing(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        blank = await session.client.call_tool("generate", {"message": "  "})
        made = await session.call("generate", {"message": "  a video of a quiet forest  "})
    assert blank.is_error and "`message` is empty" in text_of(blank)
    assert not made.is_error
    # The one message the backend saw is the real one, trimmed.
    messages = sandbox.control.stats()["messages"]
    assert [m["text"] for m in messages] == ["a video of a quiet forest"]


async def test_format_and_quality_are_enums_in_the_schema(tmp_path: Path, sandbox: Any) -> None:
    async with connect(make_settings(tmp_path, sandbox.url)) as session:
        tools = {t.name: t for t in (await session.client.list_tools()).tools}
    props = tools["export"].input_schema["properties"]
    assert props["format"]["enum"] == ["mp4", "otio", "fcpxml", "xml"]
    assert props["quality"]["enum"] == ["high", "medium", "low"]
