"""Script documents: the text of a .txt, .md, .docx or .pdf script, for script-to-video.

`read_script` checks the file before reading it (suffix, a regular file, size), extracts its text
and normalises the whitespace. Every failure is an `InputError` whose message names the file and
says what to do; a damaged document never surfaces as a library traceback.

Text files must be UTF-8 (a UTF-8 BOM is removed) or carry a UTF-16/UTF-32 BOM. Anything else is
refused rather than guessed: decoding a GBK or Windows-1252 script as Latin-1 would silently send
mojibake to a generation that costs credits, so the user is asked to save the file as UTF-8.

The file is read once, from the handle the caller opened (`read_script(path, handle=...)`,
see `server.paths.open_path`), or opened here once; everything after reads those bytes.
Documents are parsed under bounds, before and during the parse: a .docx by the bounded
streaming reader of `wordxml` (no library needed), a PDF by pypdf (a dependency of
nemo-mcp itself, imported only when a PDF is read) with its pages counted before any is
read and its characters counted as they are extracted.
"""

from __future__ import annotations

import codecs
import io
import os
import re
import stat
import zipfile
from pathlib import Path
from typing import IO, TYPE_CHECKING

from nemo_mcp.errors import FileTooLargeError, InputError, PathNotAllowedError, UnsupportedFileError
from nemo_mcp.wordxml import DocxDamaged, DocxTooLarge, docx_text

if TYPE_CHECKING:
    from pypdf import PdfReader

SCRIPT_SUFFIXES = (".txt", ".md", ".docx", ".pdf")
# About 20 minutes of narration: far beyond one video, yet bounded for the request body.
MAX_SCRIPT_CHARS = 20_000
DEFAULT_MAX_BYTES = 10 * 1000 * 1000
#: Pages of a PDF script: counted before any page is read.
MAX_PDF_PAGES = 300
#: Characters extracted from a PDF, whitespace included, before extraction stops.
MAX_PDF_CHARS = 1_000_000

# Both come with nemo-mcp itself: missing, the install is broken, not incomplete.
_EXTRAS_HINT = "reinstall nemo-mcp (`pip install --force-reinstall nemo-mcp`), or paste the text"
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Control characters other than tab and newline carry no meaning in a script.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")


class ScriptError(InputError):
    """A script file whose text cannot be used: empty, unreadable, damaged or too long."""


def read_script(
    path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, handle: IO[bytes] | None = None
) -> str:
    """Return the normalised text of a script file, or raise an `InputError` saying what to do.

    `handle`: the file already opened (and checked) by the caller; `path` then only names it."""
    path = Path(path)
    name = path.name or str(path)
    suffix = path.suffix.lower()
    if suffix not in SCRIPT_SUFFIXES:
        raise UnsupportedFileError(
            f"{name} is not a script file: use .txt, .md, .docx or .pdf, or paste the text"
        )
    try:
        if handle is None:  # O_NONBLOCK: a pipe in its place is refused, never waited on
            _regular(os.stat(path), name)
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with os.fdopen(fd, "rb") as opened:
                data = _read_checked(opened, name, max_bytes)
        else:
            data = _read_checked(handle, name, max_bytes)
    except FileNotFoundError as err:
        raise InputError(f"{name} was not found: check the path") from err
    except PermissionError as err:
        raise InputError(
            f"{name} cannot be read (permission denied): check its permissions"
        ) from err
    except IsADirectoryError as err:
        raise PathNotAllowedError(
            f"{name} is a folder: give the path of the script file inside it"
        ) from err
    except OSError as err:
        raise InputError(f"{name} cannot be read ({err.strerror or err}): check the file") from err
    if suffix == ".docx":
        raw = _docx_text(data, name)
    elif suffix == ".pdf":
        raw = _pdf_text(data, name)
    else:
        raw = _decode(data, name)
    text = normalize_whitespace(raw)
    if not text:
        if suffix == ".pdf":
            raise ScriptError(
                f"{name} has no extractable text (scanned PDF?); paste the text instead"
            )
        raise ScriptError(f"{name} contains no text: write the script into it or paste the text")
    if len(text) > MAX_SCRIPT_CHARS:
        raise ScriptError(
            f"{name} has {len(text):,} characters of text; scripts are limited to "
            f"{MAX_SCRIPT_CHARS:,}: shorten it or split it into parts"
        )
    return text


def normalize_whitespace(text: str) -> str:
    """Unify line ends, drop control characters and trailing spaces, keep at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n").replace("\v", "\n")
    text = _CONTROL.sub("", text).replace("\u00a0", " ")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _regular(info: os.stat_result, name: str) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise PathNotAllowedError(f"{name} is a folder: give the path of the script file inside it")
    if not stat.S_ISREG(info.st_mode):
        raise PathNotAllowedError(f"{name} is not a regular file: give the path of a script file")


def _read_checked(handle: IO[bytes], name: str, max_bytes: int) -> bytes:
    """The file's bytes, read once: a regular file, not empty, at most `max_bytes`."""
    info = os.fstat(handle.fileno())
    _regular(info, name)
    if info.st_size > max_bytes:
        raise FileTooLargeError(
            f"{name} is {_megabytes(info.st_size)}; scripts are limited to "
            f"{_megabytes(max_bytes)}: shorten it or paste the text"
        )
    data = b""
    while len(data) <= max_bytes and (more := handle.read(max_bytes + 1 - len(data))):
        data += more  # an unbuffered handle may return less than asked
    if len(data) > max_bytes:  # it grew after the size check
        raise FileTooLargeError(
            f"{name} is over {_megabytes(max_bytes)}: shorten it or paste the text"
        )
    if not data:
        raise ScriptError(f"{name} is empty: write the script into it or paste the text")
    return data


def _decode(data: bytes, name: str) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(encoding)
            except UnicodeDecodeError as err:
                raise ScriptError(
                    f"{name} starts with a {encoding.upper()} marker but is not valid "
                    f"{encoding.upper()} text: save it again as UTF-8"
                ) from err
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        hint = " (it looks like a binary file)" if b"\x00" in data else ""
        raise ScriptError(
            f"{name} is not UTF-8 text{hint}: byte {err.start} cannot be decoded; save it as "
            "UTF-8 (or paste the text)"
        ) from err


def _docx_text(data: bytes, name: str) -> str:
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise ScriptError(
            f"{name} is not a Word .docx file (an old .doc or another format renamed?): open it "
            "in Word and save it as .docx, or paste the text"
        )
    try:
        return docx_text(io.BytesIO(data))
    except DocxTooLarge as err:
        raise ScriptError(
            f"{name} is too large to read as a script ({err}): shorten it, split it into "
            "parts, or paste the text"
        ) from err
    except (DocxDamaged, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as err:
        raise ScriptError(
            f"{name} could not be read as a Word document ({_reason(err, name)}): open it in "
            "Word and save it again as .docx, or paste the text"
        ) from err


def _pdf_text(data: bytes, name: str) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import DependencyError
    except ImportError as err:
        raise InputError(f"Reading {name} needs pypdf: {_EXTRAS_HINT}") from err
    if b"%PDF-" not in data[:1024]:
        raise ScriptError(
            f"{name} is not a PDF (no PDF header): export the script as PDF again, or paste "
            "the text"
        )
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            _unlock(reader, name)
        count = len(reader.pages)
        if count > MAX_PDF_PAGES:
            raise ScriptError(
                f"{name} has {count:,} pages; scripts are limited to {MAX_PDF_PAGES:,}: "
                "shorten it, split it into parts, or paste the text"
            )
        pages: list[str] = []
        read = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            read += len(text)
            if read > MAX_PDF_CHARS:
                raise ScriptError(
                    f"{name} has more than {MAX_PDF_CHARS:,} characters of text; scripts are "
                    f"limited to {MAX_SCRIPT_CHARS:,}: shorten it or split it into parts"
                )
            pages.append(text)
    except ScriptError:
        raise
    except DependencyError as err:  # pypdf reads AES only with the optional cryptography package
        raise ScriptError(
            f"{name} is encrypted with AES, which needs the `cryptography` package: "
            "`pip install cryptography`, or paste the text"
        ) from err
    except Exception as err:  # pypdf raises many types for damaged files
        raise ScriptError(
            f"{name} could not be read as a PDF ({_reason(err, name)}): export it again as PDF, "
            "or paste the text"
        ) from err
    return "\n\n".join(pages)


def _unlock(reader: PdfReader, name: str) -> None:
    """Open a PDF encrypted with an empty password, as many generated PDFs are, or refuse it."""
    if not reader.decrypt(""):
        raise ScriptError(
            f"{name} is password-protected: save an unprotected copy or paste the text"
        )


def _reason(err: Exception, name: str) -> str:
    """A short description of a library's exception (it never saw the path)."""
    text = " ".join(str(err).split())[:120]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size:,} bytes"
