"""The media kit's probe and conversions on real files made at test time; its format sniffing
without files; and its promise to load nothing heavy until used."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from nemo_mcp.errors import InputError, UnsupportedFileError
from nemo_mcp.media import (
    DamagedFileError,
    MediaError,
    MislabelledFileError,
    MissingMediaError,
    UnsupportedMediaError,
    probe,
)
from nemo_mcp.media.convert import (
    conversion_for,
    convert_for_upload,
    converted_name,
    heic_to_jpeg,
    remux_to_mp4,
)
from nemo_mcp.media.formats import expected_format, mismatch_sentence, riff_size, sniff
from nemo_mcp.media.probing import register_heif

from media_files import heic, image, mean_colour, sound, truncated, video

RAW_WORDS = (
    "Errno",
    "Invalid data",
    "moov",
    "avformat",
    "ffmpeg",
    "FFmpeg",
    "PIL",
    "Pillow",
    "cannot identify",
    "truncated",
    "Traceback",
    "\n",
)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One of each kind the kit reads, made once."""
    folder = tmp_path_factory.mktemp("media")
    fast = {"preset": "ultrafast"}
    video(folder / "clip.mp4", seconds=2, options=fast)
    video(folder / "portrait.mov", seconds=1, audio=None, rotation=90, options=fast)
    video(
        folder / "clip.webm",
        seconds=1,
        codec="libvpx-vp9",
        audio="libopus",
        options={"deadline": "realtime", "cpu-used": "8"},
    )
    video(folder / "clip.mkv", seconds=1, options=fast)
    video(folder / "clip.avi", seconds=1, codec="mpeg4", audio="libmp3lame")
    video(
        folder / "faststart.mp4",
        seconds=4,
        options=fast,
        container_options={"movflags": "faststart"},
    )
    video(folder / "clip.m4v", seconds=1, rotation=90, options=fast)
    sound(folder / "song.mp3", codec="libmp3lame")
    sound(folder / "song.wav", codec="pcm_s16le", seconds=3)
    sound(folder / "song.m4a", codec="aac", container="ipod")
    sound(folder / "song.aac", codec="aac", container="adts")
    image(folder / "photo.jpg", orientation=6)
    image(folder / "photo.png")
    image(folder / "anim.gif", frames=3)
    image(folder / "photo.webp")
    heic(folder / "photo.heic", orientation=6)
    return folder


def refused_plainly(err: BaseException, name: str) -> str:
    """The error's sentence, checked: one line naming the file, no library wording."""
    text = str(err)
    assert isinstance(err, InputError) and isinstance(err, MediaError)
    assert (name in text and text.endswith(".") and text[0].isupper()) or text.startswith(name)
    assert not any(word in text for word in RAW_WORDS), text
    assert text.count(". ") == 0, f"more than one sentence: {text}"
    return text


# probe ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kind", "container", "duration", "size", "codecs"),
    [
        ("clip.mp4", "video", "mp4", 2.0, (320, 180), ("h264", "aac")),
        ("clip.webm", "video", "webm", 1.0, (320, 180), ("vp9", "opus")),
        ("clip.mkv", "video", "mkv", 1.0, (320, 180), ("h264", "aac")),
        ("clip.avi", "video", "avi", 1.0, (320, 180), ("mpeg4", "mp3")),
        ("song.mp3", "audio", "mp3", 1.0, (None, None), (None, "mp3")),
        ("song.wav", "audio", "wav", 3.0, (None, None), (None, "pcm_s16le")),
        ("song.m4a", "audio", "m4a", 1.0, (None, None), (None, "aac")),
        ("song.aac", "audio", "aac", 1.0, (None, None), (None, "aac")),
        ("photo.png", "image", "png", None, (64, 48), (None, None)),
        ("photo.webp", "image", "webp", None, (64, 48), (None, None)),
    ],
)
def test_probe_reads_each_kind(
    media: Path,
    name: str,
    kind: str,
    container: str,
    duration: float | None,
    size: tuple[int | None, int | None],
    codecs: tuple[str | None, str | None],
) -> None:
    info = probe(media / name)
    assert (info.kind, info.container) == (kind, container)
    assert (info.width, info.height) == size
    assert (info.video_codec, info.audio_codec) == codecs
    assert info.size == (media / name).stat().st_size
    if duration is None:
        assert info.duration is None
    else:
        assert info.duration is not None and abs(info.duration - duration) < 0.06
    if kind == "video":
        assert info.fps == 24.0 and info.rotation == 0


def test_probe_sees_rotation_of_portrait_video_and_photo(media: Path) -> None:
    mov = probe(media / "portrait.mov")
    assert (mov.container, mov.width, mov.height, mov.rotation) == ("mov", 320, 180, 90)
    assert (mov.display_width, mov.display_height) == (180, 320) and not mov.has_audio
    jpg = probe(media / "photo.jpg")
    assert (jpg.width, jpg.height, jpg.rotation) == (64, 48, 270)  # EXIF 6: turn 90 clockwise
    assert (jpg.display_width, jpg.display_height) == (48, 64)


def test_probe_of_heic_and_animation(media: Path) -> None:
    photo = probe(media / "photo.heic")
    assert (photo.kind, photo.container, photo.rotation) == ("image", "heic", 0)
    assert (photo.width, photo.height) == (48, 64)  # pillow-heif turns it upright on reading
    assert probe(media / "anim.gif").frames == 3


def test_probe_never_decodes_a_whole_file(media: Path, tmp_path: Path) -> None:
    """A file whose middle is garbage still probes: only the start and the tail are read."""
    data = bytearray((media / "faststart.mp4").read_bytes())
    info = probe(media / "faststart.mp4")
    assert info.duration is not None and info.duration > 3.9
    middle = len(data) // 2
    data[middle : middle + 2000] = bytes(2000)
    (tmp_path / "holed.mp4").write_bytes(bytes(data))
    assert probe(tmp_path / "holed.mp4").duration == info.duration


# refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "content", "error", "phrase"),
    [
        (
            "IMG.jpg",
            b"hello, this is a note, not a photo\n" * 20,
            MislabelledFileError,
            "holds text, not a JPEG image",
        ),
        ("clip.mp4", "photo.png", MislabelledFileError, "is really a PNG image, not an MP4 video"),
        ("photo.jpg", "clip.mp4", MislabelledFileError, "rename it to photo.mp4"),
        ("song.wav", "song.mp3", MislabelledFileError, "is really an MP3 audio file"),
        ("clip.mp4", "song.m4a", MislabelledFileError, "holds only sound, no picture"),
        ("song.mp3", "clip.mp4", MislabelledFileError, "is really an MP4 video"),
        ("clip.mov", b"\x00\x01\x02\x03" * 200, MislabelledFileError, "no media format"),
        (
            "doc.png",
            b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n" + bytes(300),
            MislabelledFileError,
            "holds a PDF document",
        ),
        ("empty.mp4", b"", DamagedFileError, "is empty"),
        ("notes.exe", b"MZ" + bytes(100), UnsupportedMediaError, "files are not media"),
    ],
)
def test_mislabelled_files_are_refused_in_one_sentence(
    media: Path,
    tmp_path: Path,
    name: str,
    content: bytes | str,
    error: type[Exception],
    phrase: str,
) -> None:
    data = (media / content).read_bytes() if isinstance(content, str) else content
    (tmp_path / name).write_bytes(data)
    with pytest.raises(error) as caught:
        probe(tmp_path / name)
    assert phrase in refused_plainly(caught.value, name)
    if error is not UnsupportedMediaError:
        assert isinstance(caught.value, UnsupportedFileError) or "empty" in phrase


@pytest.mark.parametrize(
    ("source", "phrase"),
    [
        ("clip.mp4", "is incomplete"),  # its boxes run past the end
        ("faststart.mp4", "is incomplete"),  # moov first: its samples run past the end
        ("clip.webm", "is incomplete"),
        ("song.wav", "is incomplete"),
        ("photo.jpg", "looks damaged or incomplete"),
        ("photo.png", "looks damaged or incomplete"),
        ("photo.heic", "is incomplete"),  # not decoded: its boxes run past the end
    ],
)
def test_truncated_files_are_refused(media: Path, tmp_path: Path, source: str, phrase: str) -> None:
    cut = truncated(media / source, tmp_path / f"cut-{source}", 0.6)
    with pytest.raises(DamagedFileError) as caught:
        probe(cut)
    assert phrase in refused_plainly(caught.value, cut.name)


def test_undecodable_pictures_are_refused(media: Path, tmp_path: Path) -> None:
    data = bytearray((media / "faststart.mp4").read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    (tmp_path / "zeros.mp4").write_bytes(bytes(data))
    with pytest.raises(DamagedFileError) as caught:
        probe(tmp_path / "zeros.mp4")
    refused_plainly(caught.value, "zeros.mp4")


def test_missing_and_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(MissingMediaError, match="no readable file"):
        probe(tmp_path / "nothing.mp4")
    (tmp_path / "folder.mp4").mkdir()
    with pytest.raises(MissingMediaError, match="not a regular file"):
        probe(tmp_path / "folder.mp4")


# format sniffing (pure) ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("head", "family", "ext"),
    [
        (b"\xff\xd8\xff\xe0" + bytes(20), "jpeg", "jpg"),
        (b"\x89PNG\r\n\x1a\n" + bytes(20), "png", "png"),
        (b"GIF89a" + bytes(20), "gif", "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp", "webp"),
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", "wav", "wav"),
        (b"RIFF\x10\x00\x00\x00AVI LIST", "avi", "avi"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif", "heic"),
        (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif", "heic"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00qt  ", "isobmff", "mov"),
        (b"\x00\x00\x00\x18ftypM4A \x00\x00\x00\x00M4A mp42", "isobmff", "m4a"),
        (b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "isobmff", "mp4"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x08mdat", "isobmff", "mov"),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm", "matroska", "webm"),
        (b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82\x88matroska", "matroska", "mkv"),
        (b"ID3\x04\x00" + bytes(20), "mp3", "mp3"),
        (b"\xff\xfb\x90\x64" + bytes(20), "mp3", "mp3"),
        (b"\xff\xf1\x50\x80" + bytes(20), "aac", "aac"),
        (b"OggS\x00\x02" + bytes(20), "ogg", "ogg"),
        ("Plain words.\nMore words. Ünïcödé too.".encode(), "text", "txt"),
    ],
)
def test_sniff(head: bytes, family: str, ext: str) -> None:
    found = sniff(head)
    assert found is not None and (found.family, found.ext) == (family, ext)


@pytest.mark.parametrize("head", [b"", bytes(64), b"\x00\x01\x02\xfe" * 16, b"\xff\xfe"[:1]])
def test_sniff_unknown(head: bytes) -> None:
    assert sniff(head) is None


def test_mismatch_sentences() -> None:
    mp4 = expected_format("trip.mp4")
    assert mp4 is not None
    assert mismatch_sentence("trip.mp4", mp4, sniff(b"\x89PNG\r\n\x1a\n")) == (
        "trip.mp4 is really a PNG image, not an MP4 video: rename it to trip.png and try again."
    )
    assert "convert it to MP3" in mismatch_sentence("trip.mp4", mp4, sniff(b"fLaC" + bytes(9)))
    assert expected_format("x.docx") is None and expected_format("noext") is None


def test_riff_size() -> None:
    assert riff_size(b"RIFF\x10\x00\x00\x00WAVE") == 24
    assert riff_size(b"RIFF\xff\xff\xff\xffWAVE") is None  # streaming writers leave it unset
    assert riff_size(b"\x89PNG\r\n\x1a\n") is None


# conversions ---------------------------------------------------------------------------------
def test_heic_becomes_an_upright_jpeg(media: Path, tmp_path: Path) -> None:
    before = hashlib.sha256((media / "photo.heic").read_bytes()).digest()
    done = heic_to_jpeg(media / "photo.heic", tmp_path / "photo.jpg")
    assert done.action == "heic_to_jpeg" and done.output == tmp_path / "photo.jpg"
    assert done.info.container == "jpg" and (done.info.width, done.info.height) == (48, 64)
    assert "converted to JPEG (48x64, turned upright)" in done.summary
    with Image.open(done.output) as jpg:
        assert jpg.format == "JPEG" and jpg.getexif().get(0x0112, 1) == 1
        # EXIF 6 means "turn 90 degrees clockwise": the blue left half is now on top.
        top, bottom = mean_colour(jpg, (0, 0, 48, 16)), mean_colour(jpg, (0, 48, 48, 64))
    assert top[2] > 180 > top[0] and bottom[0] > 180 > bottom[2]
    assert hashlib.sha256((media / "photo.heic").read_bytes()).digest() == before


@pytest.mark.parametrize("cores", [1, 2, 3, 16])
def test_heic_tiles_decode_on_every_core_there_is(
    cores: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A phone's HEIC is a grid of tiles that libheif decodes in parallel: one thread per
    core this process may use (pillow-heif's default, 4, over-subscribes 2 cores), at most 8."""
    import pillow_heif

    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)), raising=False)
    monkeypatch.setattr(pillow_heif.options, "DECODE_THREADS", 4)
    register_heif()
    assert min(cores, 8) == pillow_heif.options.DECODE_THREADS


def test_a_tiled_heic_becomes_a_whole_upright_jpeg(tmp_path: Path) -> None:
    """As phones write them: a grid of 512-px tiles, each decoded on its own thread."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    photo = Image.new("RGB", (1100, 700), (230, 20, 20))
    photo.paste((20, 20, 230), (0, 0, 550, 700))
    exif = Image.Exif()
    exif[0x0112] = 6
    tile_size = pillow_heif.options.GRID_TILE_SIZE
    pillow_heif.options.GRID_TILE_SIZE = 512
    try:
        photo.save(tmp_path / "tiled.heic", format="HEIF", exif=exif.tobytes(), quality=90)
    finally:
        pillow_heif.options.GRID_TILE_SIZE = tile_size
    tiling = pillow_heif.open_heif(tmp_path / "tiled.heic").info["tiling"]
    assert tiling["num_columns"] * tiling["num_rows"] > 1  # a grid, not one picture
    done = heic_to_jpeg(tmp_path / "tiled.heic", tmp_path / "tiled.jpg")
    assert (done.info.width, done.info.height) == (700, 1100)
    with Image.open(done.output) as jpg:
        top, bottom = mean_colour(jpg, (0, 0, 700, 500)), mean_colour(jpg, (0, 600, 700, 1100))
    assert top[2] > 180 > top[0] and bottom[0] > 180 > bottom[2]


def test_heic_whose_picture_is_garbage_is_refused_without_output(
    media: Path, tmp_path: Path
) -> None:
    data = bytearray((media / "photo.heic").read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    (tmp_path / "zeros.heic").write_bytes(bytes(data))
    with pytest.raises(DamagedFileError) as caught:
        heic_to_jpeg(tmp_path / "zeros.heic", tmp_path / "out" / "zeros.jpg")
    refused_plainly(caught.value, "zeros.heic")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_heic_that_is_not_a_photo_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fake.heic").write_text("not a photo at all, just words\n" * 5)
    with pytest.raises(MislabelledFileError):
        heic_to_jpeg(tmp_path / "fake.heic", tmp_path / "out.jpg")
    assert not (tmp_path / "out.jpg").exists() and list(tmp_path.iterdir()) == [
        tmp_path / "fake.heic"
    ]


def test_m4v_is_repackaged_as_mp4_keeping_rotation(media: Path, tmp_path: Path) -> None:
    done = convert_for_upload(media / "clip.m4v", tmp_path)
    assert done is not None and done.action == "remux_to_mp4"
    assert done.output == tmp_path / "clip.mp4" and done.info.container == "mp4"
    original = probe(media / "clip.m4v")
    assert (done.info.rotation, done.info.width, done.info.height) == (90, 320, 180)
    assert (done.info.video_codec, done.info.audio_codec) == ("h264", "aac")
    assert done.info.duration == original.duration


def test_remux_refuses_what_has_no_picture(media: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        remux_to_mp4(media / "song.m4a", tmp_path / "song.mp4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("name", "action", "converted"),
    [
        ("IMG_0001.HEIC", "heic_to_jpeg", "IMG_0001.jpg"),
        ("a.b.heif", "heic_to_jpeg", "a.b.jpg"),
        ("trip.m4v", "remux_to_mp4", "trip.mp4"),
        ("trip.mov", None, None),
        ("trip.mp4", None, None),
    ],
)
def test_what_needs_converting(name: str, action: str | None, converted: str | None) -> None:
    assert conversion_for(name) == action
    if converted is not None:
        assert converted_name(name) == converted


def test_files_that_need_nothing_are_left_alone(media: Path, tmp_path: Path) -> None:
    assert convert_for_upload(media / "clip.mp4", tmp_path) is None
    assert list(tmp_path.iterdir()) == []


# cost ----------------------------------------------------------------------------------------
def test_importing_nemo_mcp_loads_no_media_library() -> None:
    """Every module of the package imports without PyAV, Pillow or pillow-heif: they load
    on first use, so the server's cold start does not pay for them."""
    code = (
        "import importlib, pkgutil, sys, nemo_mcp\n"
        "for m in pkgutil.walk_packages(nemo_mcp.__path__, 'nemo_mcp.'):\n"
        "    if not m.name.endswith('__main__'):\n"
        "        importlib.import_module(m.name)\n"
        "import nemo_mcp.media as media\n"
        "assert media.MediaError and media.probe\n"
        "print(sorted(n for n in ('av', 'PIL', 'pillow_heif') if n in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
