"""File formats: what each extension promises, and what a file's first bytes really are.

Pure and cheap (no PyAV, no Pillow): `sniff` reads magic numbers from a file's head,
`expected_format` says what an extension stands for, and `mismatch_sentence` words the
refusal when the two disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["video", "image", "audio"]

#: How many leading bytes `sniff` needs.
HEAD_BYTES = 512


@dataclass(frozen=True)
class Format:
    """A family of files that share a layout (`isobmff` covers MP4, MOV and M4A)."""

    family: str
    label: str  # with its article: "an MP4 video"
    ext: str  # the extension a file of this format should carry
    kind: Kind | None  # None: not media at all (text, a document)
    accepted: bool = True  # NemoVideo takes it (possibly after a conversion the kit does)


def _f(family: str, label: str, ext: str, kind: Kind | None, accepted: bool = True) -> Format:
    return Format(family, label, ext, kind, accepted)


MP4 = _f("isobmff", "an MP4 video", "mp4", "video")
MOV = _f("isobmff", "a QuickTime (MOV) video", "mov", "video")
M4A = _f("isobmff", "an M4A audio file", "m4a", "audio")
M4V = _f("isobmff", "an M4V video", "m4v", "video")
HEIF = _f("heif", "a HEIC photo", "heic", "image")
AVIF = _f("avif", "an AVIF image", "avif", "image", accepted=False)
MATROSKA = _f("matroska", "a Matroska (MKV) video", "mkv", "video")
WEBM = _f("matroska", "a WebM video", "webm", "video")
AVI = _f("avi", "an AVI video", "avi", "video")
JPEG = _f("jpeg", "a JPEG image", "jpg", "image")
PNG = _f("png", "a PNG image", "png", "image")
GIF = _f("gif", "a GIF image", "gif", "image")
WEBP = _f("webp", "a WebP image", "webp", "image")
MP3 = _f("mp3", "an MP3 audio file", "mp3", "audio")
WAV = _f("wav", "a WAV audio file", "wav", "audio")
AAC = _f("aac", "an AAC audio file", "aac", "audio")

#: Extensions the kit reads, and the format each promises. `m4v`, `heic` and `heif` are not
#: NemoVideo upload types, but the kit converts them (see `convert.py`).
EXTENSIONS: dict[str, Format] = {
    "mp4": MP4,
    "m4v": M4V,
    "mov": MOV,
    "m4a": M4A,
    "webm": WEBM,
    "mkv": MATROSKA,
    "avi": AVI,
    "jpg": JPEG,
    "jpeg": JPEG,
    "png": PNG,
    "gif": GIF,
    "webp": WEBP,
    "heic": HEIF,
    "heif": HEIF,
    "mp3": MP3,
    "wav": WAV,
    "aac": AAC,
}

_HEIF_BRANDS = {
    b"heic",
    b"heix",
    b"hevc",
    b"hevx",
    b"heim",
    b"heis",
    b"hevm",
    b"hevs",
    b"mif1",
    b"msf1",
}
_AVIF_BRANDS = {b"avif", b"avis"}
_BOX_TYPES = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"}  # QuickTime without ftyp

# Not media NemoVideo takes; named so a refusal can say what the file really is.
_OTHER: tuple[tuple[bytes, int, Format], ...] = (
    (b"OggS", 0, _f("ogg", "an Ogg audio file", "ogg", "audio", accepted=False)),
    (b"fLaC", 0, _f("flac", "a FLAC audio file", "flac", "audio", accepted=False)),
    (b"BM", 0, _f("bmp", "a BMP image", "bmp", "image", accepted=False)),
    (b"II*\x00", 0, _f("tiff", "a TIFF image", "tiff", "image", accepted=False)),
    (b"MM\x00*", 0, _f("tiff", "a TIFF image", "tiff", "image", accepted=False)),
    (b"%PDF", 0, _f("pdf", "a PDF document", "pdf", None, accepted=False)),
    (b"PK\x03\x04", 0, _f("zip", "a ZIP archive or Office document", "zip", None, False)),
    (b"MZ", 0, _f("exe", "a Windows program", "exe", None, accepted=False)),
    (b"\x7fELF", 0, _f("elf", "a program", "", None, accepted=False)),
)
TEXT = _f("text", "text", "txt", None, accepted=False)


def _isobmff(head: bytes) -> Format | None:
    if head[4:8] == b"ftyp":
        major = head[8:12]
        size = int.from_bytes(head[:4], "big")
        brands = {major} | {head[i : i + 4] for i in range(16, min(size, len(head)) - 3, 4)}
        if major in _HEIF_BRANDS or (major in (b"mif1", b"msf1") and brands & _HEIF_BRANDS):
            return HEIF
        if major in _AVIF_BRANDS:
            return AVIF
        if major == b"qt  ":
            return MOV
        if major in (b"M4A ", b"M4B "):
            return M4A
        if major == b"M4V ":
            return M4V
        return MP4
    if head[4:8] in _BOX_TYPES and int.from_bytes(head[:4], "big") >= 8:
        return MOV
    return None


def _riff(head: bytes) -> Format | None:
    if head[:4] != b"RIFF":
        return None
    return {b"WEBP": WEBP, b"WAVE": WAV, b"AVI ": AVI}.get(head[8:12])


def _matroska(head: bytes) -> Format | None:
    if head[:4] != b"\x1a\x45\xdf\xa3":
        return None
    return WEBM if b"webm" in head[:64] else MATROSKA


def _mpeg_audio(head: bytes) -> Format | None:
    if head[:3] == b"ID3":
        return MP3
    if head[:4] == b"ADIF":
        return AAC
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        layer = head[1] & 0x06
        if layer == 0 and head[1] & 0xF0 == 0xF0:
            return AAC  # ADTS: MPEG sync with layer bits 00
        if layer == 0x02:
            return MP3  # layer III
    return None


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return head[:2] in (b"\xff\xfe", b"\xfe\xff")  # UTF-16 with a byte order mark
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if err.start < len(head) - 3:  # only a character cut at the end is forgiven
            return False
        text = head[: err.start].decode("utf-8")
    printable = sum(c.isprintable() or c in "\r\n\t\f" for c in text)
    return bool(text) and printable >= 0.95 * len(text)


def sniff(head: bytes) -> Format | None:
    """What `head` (a file's first `HEAD_BYTES`) really is; None when nothing is recognized."""
    if head[:3] == b"\xff\xd8\xff":
        return JPEG
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    for probe in (_isobmff, _riff, _matroska, _mpeg_audio):
        found = probe(head)
        if found is not None:
            return found
    for magic, offset, fmt in _OTHER:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if len(head) >= 189 and head[0] == 0x47 and head[188] == 0x47:
        return _f("mpegts", "an MPEG transport stream", "ts", "video", accepted=False)
    if _looks_like_text(head):
        return TEXT
    return None


def riff_size(head: bytes) -> int | None:
    """The whole size a RIFF file (WAV, AVI, WebP) declares in its header, when it does."""
    if head[:4] != b"RIFF" or len(head) < 8:
        return None
    declared = int.from_bytes(head[4:8], "little")
    return declared + 8 if 0 < declared < 0xFFFFFFFF - 8 else None


def extension(name: str) -> str:
    """The lower-case extension of a file name, without the dot ('' when none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[-1].lower() if "." in base.strip(".") else ""


def expected_format(name: str) -> Format | None:
    """The format a file name's extension promises; None for extensions the kit does not read."""
    return EXTENSIONS.get(extension(name))


def agrees(expected: Format, actual: Format) -> bool:
    """True when content of `actual` format may carry `expected`'s extension.

    MP4, MOV, M4V and M4A are one layout (ISO base media) and WebM is Matroska, so those
    names are interchangeable here; whether there is a picture is checked on the streams.
    """
    return expected.family == actual.family


def _stem(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    return base.rsplit(".", 1)[0] if "." in base.strip(".") else base


def _target(kind: Kind | None) -> str:
    return {"video": "MP4", "image": "JPEG or PNG", "audio": "MP3"}.get(kind or "", "MP4")


def mismatch_sentence(name: str, expected: Format, actual: Format | None) -> str:
    """One sentence for a file whose content is not what its extension says."""
    if actual is None:
        return (
            f"{name} is not {expected.label}: its content is no media format nemo-mcp can "
            "read; choose the original file, or export it again."
        )
    if actual.kind is None:
        return (
            f"{name} holds {actual.label}, not {expected.label}: choose the {expected.kind} itself."
        )
    if not actual.accepted:
        return (
            f"{name} is really {actual.label}, not {expected.label}: convert it to "
            f"{_target(actual.kind)} and try again."
        )
    return (
        f"{name} is really {actual.label}, not {expected.label}: rename it to "
        f"{_stem(name)}.{actual.ext} and try again."
    )


__all__ = [
    "EXTENSIONS",
    "HEAD_BYTES",
    "Format",
    "Kind",
    "agrees",
    "expected_format",
    "extension",
    "mismatch_sentence",
    "riff_size",
    "sniff",
]
