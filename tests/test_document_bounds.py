"""Script documents parsed under bounds: a small file that would unpack or parse into
something huge is refused early, in one sentence, and `generate` answers within its budget
with nothing sent.
"""

from __future__ import annotations

import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.documents import ScriptError, read_script
from nemo_mcp.wordxml import MAX_MEMBERS, MAX_PARAGRAPHS

from mcp_harness import connect, make_settings, text_of

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_of(path: Path, body: bytes, *, extra: int = 0) -> Path:
    """A minimal .docx whose body is `body` (XML inside <w:body>), `extra` parts more."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr(
            "word/document.xml",
            b'<?xml version="1.0"?><w:document xmlns:w="'
            + W.encode()
            + b'"><w:body>'
            + body
            + b"</w:body></w:document>",
        )
        for n in range(extra):
            archive.writestr(f"word/media/part{n}.bin", b"")
    return path


def bomb(path: Path, paragraphs: int) -> Path:
    return docx_of(path, b"<w:p/>" * paragraphs)


def _refused_fast(path: Path, *words: str) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(ScriptError) as caught:
            read_script(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 10  # generous: it stops at the cap, not at the end
    assert peak < 64 * 1024 * 1024, peak
    message = str(caught.value)
    assert message.startswith(path.name) and "paste the text" in message
    for word in words:
        assert word in message, message


def test_three_million_empty_paragraphs_are_refused_before_they_are_parsed(
    tmp_path: Path,
) -> None:
    path = bomb(tmp_path / "bomb.docx", 3_000_000)
    assert path.stat().st_size < 100_000  # small on disk: the size cap alone cannot see it
    _refused_fast(path, "too large", "unpacked")


def test_a_paragraph_flood_under_the_byte_cap_stops_at_the_paragraph_cap(tmp_path: Path) -> None:
    path = bomb(tmp_path / "flood.docx", 1_000_000)
    _refused_fast(path, f"more than {MAX_PARAGRAPHS:,} paragraphs")


def test_a_package_of_too_many_parts_is_refused_before_any_is_read(tmp_path: Path) -> None:
    path = docx_of(
        tmp_path / "parts.docx", b"<w:p><w:r><w:t>Hi</w:t></w:r></w:p>", extra=MAX_MEMBERS
    )
    _refused_fast(path, "parts")


def test_a_document_type_declaration_is_refused_never_expanded(tmp_path: Path) -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<w:document xmlns:w="' + W.encode() + b'"><w:body><w:p><w:r><w:t>&b;</w:t></w:r>'
        b"</w:p></w:body></w:document>"
    )
    path = tmp_path / "laughs.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("word/document.xml", laughs)
    with pytest.raises(ScriptError, match="document type"):
        read_script(path)


async def test_generate_with_a_document_bomb_answers_within_its_budget(
    tmp_path: Path, sandbox: Any
) -> None:
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    path = bomb(uploads / "script.docx", 3_000_000)
    settings = make_settings(tmp_path, sandbox.url, tool_timeout=5.0)
    async with connect(settings) as session:
        started = time.monotonic()
        result = await session.call(
            "generate", {"message": "make a video of this script", "script_file": str(path)}
        )
        took = time.monotonic() - started
    assert result.is_error and "script.docx is too large to read as a script" in text_of(result)
    assert took < 5.0  # the tool's budget (49 s before)
    assert sandbox.control.stats()["messages"] == []


def test_damaged_package_parts_are_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "rels.docx"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("_rels/.rels", b"<Relationships><not closed")
        archive.writestr("word/document.xml", b"<w:document/>")
    with pytest.raises(ScriptError, match=r"^rels\.docx could not be read as a Word document"):
        read_script(path)
