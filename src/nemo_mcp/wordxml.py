"""The text of a Word .docx script, read under bounds, with no library beyond the standard one.

A .docx is a zip of XML parts. A hostile one can be small on disk and huge once read: a
member that inflates to gigabytes, thousands of members, millions of empty paragraphs. So
the package's directory is checked before anything is inflated (member count, the main
part's declared size), the main part is inflated a bounded step at a time, counted as it
comes, and its XML parsed as a stream: paragraphs and characters are counted inside the
parse and it stops at the first cap, whatever the rest of the file holds. A document type
declaration (entities) is refused, never expanded.

The text matches what python-docx gives: one block per paragraph, a table's rows one line
each with their cells joined by " | " (an empty cell, or a merged one's continuation,
left out).
"""

from __future__ import annotations

import posixpath
import zipfile
from collections.abc import Iterator
from typing import IO
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_OFFICE_DOCUMENT = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument",
    "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument",
)
DEFAULT_MAIN = "word/document.xml"

#: Members in the package: a Word file has a few dozen.
MAX_MEMBERS = 1_000
#: The main part, inflated (declared and counted): a 20,000-character script needs far less.
MAX_PART_BYTES = 16 * 1000 * 1000
#: Paragraphs, empty ones included: a script is at most a few thousand.
MAX_PARAGRAPHS = 20_000
#: Characters read, whitespace included (the script limit applies to the normalised text).
MAX_RAW_CHARS = 1_000_000
#: Bytes inflated per step.
STEP = 64 * 1024


class DocxDamaged(Exception):
    """Not a readable Word package: the message is a short, path-free reason."""


class DocxTooLarge(Exception):
    """Over a cap: the message says which, in words for the user."""


def _member(archive: zipfile.ZipFile, name: str) -> zipfile.ZipInfo:
    try:
        return archive.getinfo(name)
    except KeyError:
        raise DocxDamaged(f"no {name} part") from None


def _inflated(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[bytes]:
    """The member's bytes, a step at a time, never more than `MAX_PART_BYTES` in all."""
    if info.file_size > MAX_PART_BYTES:
        raise DocxTooLarge(f"its text part is {info.file_size:,} bytes once unpacked")
    total = 0
    with archive.open(info) as part:
        while chunk := part.read(STEP):
            total += len(chunk)
            if total > MAX_PART_BYTES:  # the directory understated it
                raise DocxTooLarge(f"its text part is over {MAX_PART_BYTES:,} bytes unpacked")
            yield chunk


def _events(chunks: Iterator[bytes]) -> Iterator[tuple[str, Element]]:
    """Start and end events of the XML in `chunks`; a DOCTYPE is refused before parsing."""
    parser: XMLPullParser[Element] = XMLPullParser(events=("start", "end"))
    tail = b""
    for chunk in chunks:
        window = tail + chunk
        if b"<!DOCTYPE" in window or b"<!ENTITY" in window:
            raise DocxDamaged("it declares a document type")
        tail = window[-9:]
        parser.feed(chunk)
        yield from parser.read_events()  # type: ignore[misc]
    parser.close()
    yield from parser.read_events()  # type: ignore[misc]


def _main_part(archive: zipfile.ZipFile) -> str:
    """The main document part named by the package's relationships (small: bounded too)."""
    try:
        info = archive.getinfo("_rels/.rels")
    except KeyError:
        return DEFAULT_MAIN
    for kind, element in _events(_inflated(archive, info)):
        relationship = kind == "end" and element.tag == f"{_RELS}Relationship"
        target = element.get("Target") if relationship else None
        if target and element.get("Type") in _OFFICE_DOCUMENT:
            return posixpath.normpath(target.lstrip("/"))
    return DEFAULT_MAIN


class _Reader:
    """Blocks of text from the main part's events, counted as they come."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.paragraphs = 0
        self.chars = 0
        self._runs: list[str] = []  # the paragraph being read
        self._tables = 0  # depth of tables around the current element
        self._cell: list[str] = []  # paragraphs of the cell being read
        self._row: list[str] = []  # cells of the row being read

    def _count(self, text: str) -> None:
        self.chars += len(text)
        if self.chars > MAX_RAW_CHARS:
            raise DocxTooLarge(f"it has more than {MAX_RAW_CHARS:,} characters")

    def start(self, tag: str) -> None:
        if tag == f"{_W}tbl":
            self._tables += 1

    def end(self, element: Element) -> None:
        tag = element.tag
        if tag == f"{_W}t":
            text = element.text or ""
            self._count(text)
            self._runs.append(text)
        elif tag == f"{_W}tab":
            self._runs.append("\t")
        elif tag in (f"{_W}br", f"{_W}cr"):
            self._runs.append("\n")
        elif tag == f"{_W}p":
            self.paragraphs += 1
            if self.paragraphs > MAX_PARAGRAPHS:
                raise DocxTooLarge(f"it has more than {MAX_PARAGRAPHS:,} paragraphs")
            text, self._runs = "".join(self._runs), []
            (self._cell if self._tables else self.blocks).append(text)
        elif tag == f"{_W}tc" and self._tables == 1:
            text = " ".join(" ".join(self._cell).split())
            self._cell = []
            if text:
                self._row.append(text)
        elif tag == f"{_W}tr" and self._tables == 1:
            if self._row:
                self.blocks.append(" | ".join(self._row))
            self._row = []
        elif tag == f"{_W}tbl":
            self._tables -= 1


def docx_text(source: IO[bytes]) -> str:
    """The text of the .docx in `source`; `DocxDamaged` or `DocxTooLarge` otherwise.

    `zipfile.BadZipFile` is left to the caller (the file is not a zip at all)."""
    with zipfile.ZipFile(source) as archive:
        members = archive.infolist()
        if len(members) > MAX_MEMBERS:
            raise DocxTooLarge(f"it is a package of {len(members):,} parts")
        reader = _Reader()
        open_elements: list[Element] = []
        try:
            info = _member(archive, _main_part(archive))
            for kind, element in _events(_inflated(archive, info)):
                if kind == "start":
                    reader.start(element.tag)
                    open_elements.append(element)
                    continue
                reader.end(element)
                open_elements.pop()
                if open_elements and len(open_elements[-1]) and open_elements[-1][-1] is element:
                    del open_elements[-1][-1]  # read: dropped, so the tree never grows
        except ParseError as err:
            raise DocxDamaged(f"its text part is not well-formed XML ({err})") from None
        except (zipfile.BadZipFile, EOFError, ValueError, RuntimeError) as err:
            # RuntimeError: a member encrypted with a password
            raise DocxDamaged(f"its text part cannot be unpacked ({err})") from None
    return "\n\n".join(reader.blocks)


__all__ = ["MAX_MEMBERS", "MAX_PARAGRAPHS", "DocxDamaged", "DocxTooLarge", "docx_text"]
