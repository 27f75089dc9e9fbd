"""Script documents: every format round trip, and every way a script file can be refused."""

from __future__ import annotations

import builtins
import codecs
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import pytest
from pypdf import PdfReader, PdfWriter

from nemo_mcp.documents import (
    MAX_SCRIPT_CHARS,
    SCRIPT_SUFFIXES,
    ScriptError,
    normalize_whitespace,
    read_script,
)
from nemo_mcp.errors import (
    FileTooLargeError,
    InputError,
    PathNotAllowedError,
    UnsupportedFileError,
)

DATA = Path(__file__).parent / "data" / "scripts"


def pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal, valid PDF with one Helvetica text line per string (WinAnsi encoding)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids).encode()
    objects.append(b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(pages))
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for n, lines in enumerate(pages):
        ops = [b"BT /F1 12 Tf 72 720 Td 14 TL"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(b"(" + escaped.encode("cp1252") + b") Tj T*")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        content_id = page_ids[n] + 1
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % content_id
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


# -- plain text and Markdown ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            "Scene 1: a city at night.\nNarrator: It never sleeps.",
            "Scene 1: a city at night.\nNarrator: It never sleeps.",
        ),
        (codecs.BOM_UTF8 + b"Scene 1\n", "Scene 1"),
        (codecs.BOM_UTF16_LE + "场景一：城市夜景".encode("utf-16-le"), "场景一：城市夜景"),
        (codecs.BOM_UTF16_BE + "Szene 1: Straße".encode("utf-16-be"), "Szene 1: Straße"),
        (codecs.BOM_UTF32_LE + "Scene 1 🎬".encode("utf-32-le"), "Scene 1 🎬"),
        ("Line one\r\nLine two\rLine three", "Line one\nLine two\nLine three"),
        ("\n\n  Intro  \n\n\n\n\nOutro\t \n\n", "Intro\n\nOutro"),
        ("A\u00a0B\x00C\u200bD\fE", "A BCD\nE"),
        ("第一幕：日出。\n\n\n第二幕：海浪。", "第一幕：日出。\n\n第二幕：海浪。"),
    ],
    ids=[
        "utf8",
        "utf8-bom",
        "utf16le-bom",
        "utf16be-bom",
        "utf32-bom",
        "line-ends",
        "blank-runs",
        "controls",
        "chinese",
    ],
)
def test_text_round_trip(tmp_path: Path, data: bytes | str, expected: str) -> None:
    assert read_script(write(tmp_path / "script.txt", data)) == expected


def test_markdown_keeps_its_markup(tmp_path: Path) -> None:
    source = '# Launch video\n\n## Scene 1\n\n- **Visual:** sunrise\n- *Voice:* "Good morning"\n'
    assert read_script(write(tmp_path / "script.md", source)) == source.strip()


@pytest.mark.parametrize("suffix", [".TXT", ".Md", ".DOCX", ".PDF"])
def test_suffix_is_case_insensitive(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"script{suffix}"
    if suffix.lower() == ".docx":
        document = docx.Document()
        document.add_paragraph("Hello")
        document.save(str(path))
    elif suffix.lower() == ".pdf":
        path.write_bytes(pdf_bytes([["Hello"]]))
    else:
        path.write_text("Hello", encoding="utf-8")
    assert read_script(path) == "Hello"


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("Café crème".encode("cp1252"), "not UTF-8 text"),
        ("城市夜景".encode("gbk"), "not UTF-8 text"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary"),
        (codecs.BOM_UTF16_LE + b"\x00\xd8", "UTF-16-LE"),
    ],
    ids=["cp1252", "gbk", "binary", "broken-utf16"],
)
def test_undecodable_text_is_refused_with_advice(
    tmp_path: Path, data: bytes, fragment: str
) -> None:
    with pytest.raises(ScriptError) as caught:
        read_script(write(tmp_path / "script.txt", data))
    message = str(caught.value)
    assert message.startswith("script.txt ") and fragment in message and "UTF-8" in message


# -- Word --------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_heading("Product launch", level=1)
    document.add_paragraph("Opening: a sunrise over the city.")
    table = document.add_table(rows=3, cols=2)
    for row, (scene, voice) in zip(
        table.rows, [("Scene", "Voice-over"), ("1", "Meet Nova."), ("2", "")], strict=False
    ):
        row.cells[0].text = scene
        row.cells[1].text = voice
    document.add_paragraph("")
    document.add_paragraph("")
    document.add_paragraph("结尾：品牌标志。")
    path = tmp_path / "launch.docx"
    document.save(str(path))
    assert read_script(path) == (
        "Product launch\n\nOpening: a sunrise over the city.\n\nScene | Voice-over\n\n1 | Meet Nova."
        "\n\n2\n\n结尾：品牌标志。"
    )


def test_docx_merged_cells_are_read_once(tmp_path: Path) -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    merged = table.cell(0, 0).merge(table.cell(0, 2))
    merged.text = "Act one"
    table.cell(1, 0).text = "a"
    table.cell(1, 2).text = "c"
    path = tmp_path / "merged.docx"
    document.save(str(path))
    assert read_script(path) == "Act one\n\na | c"


def test_docx_without_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "blank.docx"
    docx.Document().save(str(path))
    with pytest.raises(ScriptError, match=r"^blank\.docx contains no text"):
        read_script(path)


def zip_bytes(tmp_path: Path, members: dict[str, bytes]) -> bytes:
    import zipfile

    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            archive.writestr(member, data)
    return path.read_bytes()


@pytest.mark.parametrize(
    ("data", "prefix"),
    [
        (b"PK\x03\x04 not really a zip", "broken.docx is not a Word .docx file"),
        (b"{\\rtf1 an old format}", "broken.docx is not a Word .docx file"),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 old binary .doc",
            "broken.docx is not a Word .docx file",
        ),
        (pdf_bytes([["wrong suffix"]]), "broken.docx is not a Word .docx file"),
        ({"hello.txt": b"a plain zip"}, "broken.docx could not be read as a Word document"),
    ],
    ids=["truncated-zip", "rtf", "old-doc", "pdf-named-docx", "plain-zip"],
)
def test_corrupt_docx_is_an_input_error(
    tmp_path: Path, data: bytes | dict[str, bytes], prefix: str
) -> None:
    raw = zip_bytes(tmp_path, data) if isinstance(data, dict) else data
    with pytest.raises(ScriptError) as caught:
        read_script(write(tmp_path / "broken.docx", raw))
    message = str(caught.value)
    assert message.startswith(prefix)
    assert "save it" in message and "paste the text" in message
    assert str(tmp_path) not in message
    assert "Traceback" not in message


def test_docx_with_a_damaged_part_is_an_input_error(tmp_path: Path) -> None:
    import zipfile

    good = tmp_path / "good.docx"
    document = docx.Document()
    document.add_paragraph("Hello")
    document.save(str(good))
    bad = tmp_path / "damaged.docx"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(bad, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]
            target.writestr(item, data)
    with pytest.raises(ScriptError, match=r"^damaged\.docx could not be read as a Word document"):
        read_script(bad)


# -- PDF ----------------------------------------------------------------------------------------


def test_pdf_pages_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path / "script.pdf",
        pdf_bytes([["Scene 1: sunrise (wide)", "Narrator: Good morning."], ["Scene 2: café"]]),
    )
    text = read_script(path)
    assert text.index("Scene 1: sunrise (wide)") < text.index("Narrator: Good morning.")
    assert text.index("Narrator: Good morning.") < text.index("Scene 2: café")


def test_pdf_with_compressed_streams(tmp_path: Path) -> None:
    writer = PdfWriter(
        clone_from=PdfReader(write(tmp_path / "plain.pdf", pdf_bytes([["Compressed text"]])))
    )
    for page in writer.pages:
        page.compress_content_streams()
    path = tmp_path / "compressed.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    assert b"FlateDecode" in path.read_bytes()
    assert read_script(path) == "Compressed text"


def test_committed_sample_pdf(tmp_path: Path) -> None:
    text = read_script(DATA / "sample-script.pdf")
    assert text.startswith("Morning Routine")
    assert "Scene 2" in text and text.index("Scene 1") < text.index("Scene 2")


def test_pdf_without_text_says_scanned(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=612, height=792)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    with pytest.raises(ScriptError) as caught:
        read_script(path)
    assert str(caught.value) == (
        "scan.pdf has no extractable text (scanned PDF?); paste the text instead"
    )


def encrypted_pdf(tmp_path: Path, user_password: str, algorithm: str = "RC4-128") -> Path:
    source = write(tmp_path / "open.pdf", pdf_bytes([["Secret plan"]]))
    writer = PdfWriter(clone_from=PdfReader(source))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    path = tmp_path / "locked.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    return path


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_pdf_with_a_password_is_refused(tmp_path: Path, algorithm: str) -> None:
    with pytest.raises(ScriptError) as caught:
        read_script(encrypted_pdf(tmp_path, "secret", algorithm))
    assert str(caught.value) == (
        "locked.pdf is password-protected: save an unprotected copy or paste the text"
    )


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_pdf_encrypted_without_a_user_password_is_read(tmp_path: Path, algorithm: str) -> None:
    assert read_script(encrypted_pdf(tmp_path, "", algorithm)) == "Secret plan"


def test_aes_pdf_without_the_cipher_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pypdf falls back to ciphers that raise DependencyError when `cryptography` is absent."""
    import pypdf._encryption
    from pypdf._crypt_providers import _fallback

    path = encrypted_pdf(tmp_path, "", "AES-256")
    for name in ("CryptAES", "aes_cbc_decrypt", "aes_ecb_decrypt"):
        monkeypatch.setattr(pypdf._encryption, name, getattr(_fallback, name))
    with pytest.raises(ScriptError) as caught:
        read_script(path)
    assert str(caught.value) == (
        "locked.pdf is encrypted with AES, which needs the `cryptography` package: "
        "`pip install cryptography`, or paste the text"
    )


@pytest.mark.parametrize(
    ("data", "prefix"),
    [
        (b"%PDF-1.4\n garbage without objects", "broken.pdf could not be read as a PDF"),
        (pdf_bytes([["cut short"]])[:120], "broken.pdf could not be read as a PDF"),
        (pdf_bytes([["cut short"]])[:-40], "broken.pdf could not be read as a PDF"),
        (b"not a pdf at all", "broken.pdf is not a PDF (no PDF header)"),
        (b"PK\x03\x04", "broken.pdf is not a PDF (no PDF header)"),
    ],
    ids=["no-objects", "truncated-head", "truncated-tail", "not-pdf", "zip-named-pdf"],
)
def test_corrupt_pdf_is_an_input_error(tmp_path: Path, data: bytes, prefix: str) -> None:
    with pytest.raises(ScriptError) as caught:
        read_script(write(tmp_path / "broken.pdf", data))
    message = str(caught.value)
    assert message.startswith(prefix) and message.endswith("or paste the text")
    assert str(tmp_path) not in message


# -- refusals before reading -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["script.rtf", "script.doc", "script", "script.pdf.exe", "notes.pages"]
)
def test_wrong_suffix(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsupportedFileError) as caught:
        read_script(write(tmp_path / name, "Scene 1"))
    assert (
        str(caught.value)
        == f"{name} is not a script file: use .txt, .md, .docx or .pdf, or paste the text"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^gone\.md was not found: check the path$"):
        read_script(tmp_path / "gone.md")


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "scripts.txt"
    folder.mkdir()
    with pytest.raises(PathNotAllowedError, match=r"^scripts\.txt is a folder"):
        read_script(folder)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_not_opened(tmp_path: Path) -> None:
    pipe = tmp_path / "pipe.txt"
    os.mkfifo(pipe)
    with pytest.raises(PathNotAllowedError, match=r"^pipe\.txt is not a regular file"):
        read_script(pipe)


def test_unix_socket_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(PathNotAllowedError):
            read_script(path)
    finally:
        server.close()


def test_symlink_to_a_file_is_followed(tmp_path: Path) -> None:
    target = write(tmp_path / "real.txt", "Scene 1")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert read_script(link) == "Scene 1"


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.docx", "empty.pdf"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScriptError, match=rf"^{name.replace('.', chr(92) + '.')} is empty"):
        read_script(write(tmp_path / name, b""))


@pytest.mark.parametrize("content", [" \n\t\n ", "\ufeff\n\n", "\u200b"])
def test_whitespace_only_text(tmp_path: Path, content: str) -> None:
    with pytest.raises(ScriptError, match=r"^blank\.txt contains no text"):
        read_script(write(tmp_path / "blank.txt", content))


def test_too_many_bytes_is_refused_before_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "big.txt", "x" * 2_000)

    def no_reading(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the file was opened")

    monkeypatch.setattr(Path, "open", no_reading)
    monkeypatch.setattr(Path, "read_bytes", no_reading)
    with pytest.raises(FileTooLargeError) as caught:
        read_script(path, max_bytes=1_000)
    assert str(caught.value) == (
        "big.txt is 2,000 bytes; scripts are limited to 1,000 bytes: shorten it or paste the text"
    )


def test_default_byte_limit_is_ten_megabytes(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.truncate(10 * 1000 * 1000 + 1)
    with pytest.raises(
        FileTooLargeError, match=r"^huge\.txt is 10\.0 MB; scripts are limited to 10\.0 MB"
    ):
        read_script(path)


def test_too_much_text(tmp_path: Path) -> None:
    path = write(tmp_path / "long.md", "word " * (MAX_SCRIPT_CHARS // 5 + 10))
    with pytest.raises(ScriptError) as caught:
        read_script(path)
    size = len(normalize_whitespace(path.read_text()))
    assert str(caught.value) == (
        f"long.md has {size:,} characters of text; scripts are limited to {MAX_SCRIPT_CHARS:,}: "
        "shorten it or split it into parts"
    )


def test_exactly_the_text_limit_is_accepted(tmp_path: Path) -> None:
    path = write(tmp_path / "edge.txt", "a" * MAX_SCRIPT_CHARS)
    assert len(read_script(path)) == MAX_SCRIPT_CHARS


# -- optional extras -------------------------------------------------------------------------


@pytest.fixture
def without(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Make importing the given top-level packages fail, as when the extras are not installed."""
    real_import = builtins.__import__

    def hide(*names: str) -> None:
        for name in list(sys.modules):
            if name.split(".")[0] in names:
                monkeypatch.delitem(sys.modules, name)

        def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
            if name.split(".")[0] in names:
                raise ImportError(f"No module named {name!r}")
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", fake_import)

    yield hide


def test_a_docx_is_read_without_python_docx(tmp_path: Path, without: Any) -> None:
    document = docx.Document()
    document.add_paragraph("Read by the bounded reader alone.")
    path = tmp_path / "plain.docx"
    document.save(str(path))
    without("docx")
    assert read_script(path) == "Read by the bounded reader alone."


@pytest.mark.parametrize(("name", "package", "library"), [("a.pdf", "pypdf", "pypdf")])
def test_missing_extras_say_how_to_install(
    tmp_path: Path, without: Any, name: str, package: str, library: str
) -> None:
    path = write(tmp_path / name, b"anything")
    without(package)
    with pytest.raises(InputError) as caught:
        read_script(path)
    assert str(caught.value) == (
        f"Reading {name} needs {library}: reinstall nemo-mcp "
        "(`pip install --force-reinstall nemo-mcp`), or paste the text"
    )


def test_text_needs_no_extras(tmp_path: Path, without: Any) -> None:
    without("docx", "pypdf")
    assert read_script(write(tmp_path / "plain.txt", "Scene 1")) == "Scene 1"


def test_constants() -> None:
    assert SCRIPT_SUFFIXES == (".txt", ".md", ".docx", ".pdf")
    assert 10_000 <= MAX_SCRIPT_CHARS <= 50_000
    assert issubclass(ScriptError, InputError)
