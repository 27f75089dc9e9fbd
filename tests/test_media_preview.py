"""Previews: contact sheets and poster frames of real videos made at test time, decoded from
keyframes only; files without pictures or with undecodable ones raise the kit's errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from nemo_mcp.media import (
    DamagedFileError,
    MediaError,
    NoPictureError,
    contact_sheet,
    poster_frame,
    preview,
)
from nemo_mcp.media.preview import Preview, clock, sheet_labels, tile_size

from media_files import frames_at, heic, mean_colour, sound, video

FAST = {"preset": "ultrafast"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("preview")
    # 20 s with a keyframe every second: each tile is one seek and one decoded keyframe.
    video(folder / "keyed.mp4", seconds=20, audio=None, options={**FAST, "g": "24"})
    # 10 s with a single keyframe: tiles come from bounded decoding past it.
    video(folder / "one_key.mp4", seconds=10, audio=None, options={**FAST, "g": "1000"})
    # 10 s with B-frames (x264's default 3) and a keyframe every 5 s: frames other frames
    # do not refer to are skipped on the way to a moment, never at it.
    video(
        folder / "b_frames.mp4", seconds=10, audio=None, options={"preset": "veryfast", "g": "120"}
    )
    video(folder / "portrait.mov", seconds=2, audio=None, rotation=270, options=FAST)
    sound(folder / "song.mp3", codec="libmp3lame")
    heic(folder / "photo.heic", size=(400, 300), orientation=6)
    return folder


def _tiles(sheet: Preview, columns: int, rows: int) -> list[Image.Image]:
    with Image.open(sheet.path) as image:
        image.load()
        return [
            image.crop((4 + c * 324, 4 + r * 184, 4 + c * 324 + 320, 4 + r * 184 + 180))
            for r in range(rows)
            for c in range(columns)
        ]


@pytest.mark.parametrize(
    ("name", "seconds"), [("keyed.mp4", 20), ("one_key.mp4", 10), ("b_frames.mp4", 10)]
)
def test_contact_sheet_shows_evenly_spaced_moments(
    media: Path, tmp_path: Path, name: str, seconds: float
) -> None:
    """Twelve moments a twelfth apart from 0:00, each tile the very frame on screen then (not
    the nearest keyframe's), whether keyframes are a second apart or there is only one."""
    sheet = contact_sheet(media / name, tmp_path / "sheet.jpg")
    with Image.open(sheet.path) as image:
        assert image.format == "JPEG" and image.size == (sheet.width, sheet.height)
    assert sheet.size < 1_000_000 and (sheet.width, sheet.height) == (4 * 324 + 4, 3 * 184 + 4)
    moments = [seconds * i / 12 for i in range(12)]
    assert list(sheet.times) == pytest.approx(moments, abs=1e-3)
    shown = frames_at(media / name, moments)
    box = (100, 40, 220, 100)
    for tile, frame, moment in zip(_tiles(sheet, 4, 3), shown, moments, strict=True):
        seen, meant = mean_colour(tile, box), mean_colour(frame, box)
        assert abs(seen[0] - meant[0]) < 4, (moment, seen, meant)
    # Decoding goes forward from a keyframe, never over the same frames twice.
    assert sheet.frames_decoded <= seconds * 24 + 12


def test_far_keyframes_bound_the_decoding(
    media: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past `EXACT_PIXELS` of picture from a keyframe (here 8 frames of 320x180) a tile shows
    the frame reached, labelled with its own time: still in order, still distinct."""
    monkeypatch.setattr(preview, "EXACT_PIXELS", 8 * 320 * 180)
    assert preview.exact_frames(320, 180) == 8
    sheet = contact_sheet(media / "one_key.mp4", tmp_path / "sheet.jpg", columns=3, rows=3)
    assert len(sheet.times) == 9 and list(sheet.times) == sorted(set(sheet.times))
    assert sheet.frames_decoded <= 9 * (8 + 2)
    with Image.open(sheet.path) as image:
        assert image.size == (3 * 324 + 4, 3 * 184 + 4)


@pytest.mark.parametrize(
    ("seconds", "first"),
    [
        (10, "0:00.0"),
        (1.2, "0:00.0"),  # a tenth apart
        (0.6, "0:00.00"),  # five hundredths apart
        (20, "0:00.0"),
        (600, "0:00"),
        (3725, "0:00"),
    ],
)
def test_sheet_labels_are_distinct_and_start_at_zero(seconds: float, first: str) -> None:
    shown = sheet_labels(seconds, 12)
    assert shown[0] == first and len(set(shown)) == 12, shown
    assert shown == sorted(shown, key=lambda text: [float(p) for p in text.split(":")])


def test_portrait_video_gets_portrait_tiles(media: Path, tmp_path: Path) -> None:
    sheet = contact_sheet(media / "portrait.mov", tmp_path / "sheet.jpg", columns=2, rows=1)
    assert tile_size(180, 320, 320) == (320, 568)
    assert (sheet.width, sheet.height) == (2 * 324 + 4, 568 + 8)


def test_poster_frames(media: Path, tmp_path: Path) -> None:
    poster = poster_frame(media / "keyed.mp4", tmp_path / "poster.jpg")
    assert (poster.width, poster.height) == (320, 180) and poster.times == (2.0,)
    later = poster_frame(media / "keyed.mp4", tmp_path / "later.jpg", at=7.5)
    assert abs(later.times[0] - 7.5) <= 1 / 24 and later.frames_decoded <= 13  # 7 s key + 12
    upright = poster_frame(media / "portrait.mov", tmp_path / "portrait.jpg")
    assert (upright.width, upright.height) == (180, 320)
    photo = poster_frame(media / "photo.heic", tmp_path / "photo.jpg", max_width=150)
    assert (photo.width, photo.height) == (150, 200)  # upright, then scaled
    for made in (poster, later, upright, photo):
        with Image.open(made.path) as image:
            assert image.format == "JPEG" and image.size == (made.width, made.height)


def test_no_picture_and_undecodable_pictures_are_kit_errors(media: Path, tmp_path: Path) -> None:
    with pytest.raises(NoPictureError, match=r"song\.mp3 has no picture to preview"):
        contact_sheet(media / "song.mp3", tmp_path / "a.jpg")
    with pytest.raises(NoPictureError):
        poster_frame(media / "song.mp3", tmp_path / "b.jpg")
    data = bytearray((media / "keyed.mp4").read_bytes())
    start = data.find(b"mdat") + 4
    data[start:] = bytes(len(data) - start)
    (tmp_path / "blank.mp4").write_bytes(bytes(data))
    for make in (contact_sheet, poster_frame):
        with pytest.raises(DamagedFileError) as caught:
            make(tmp_path / "blank.mp4", tmp_path / "c.jpg")
        assert isinstance(caught.value, MediaError) and "blank.mp4" in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blank.mp4"]


@pytest.mark.parametrize(
    ("seconds", "digits", "text"),
    [
        (0, 0, "0:00"),
        (65.4, 0, "1:05"),
        (3725, 0, "1:02:05"),
        (8.37, 1, "0:08.3"),
        (3 * 1.2 / 12, 1, "0:00.3"),  # 0.29999999999999993 is the tenth it means
        (2.9999999999999996, 1, "0:03.0"),
        (0.05, 2, "0:00.05"),
    ],
)
def test_clock(seconds: float, digits: int, text: str) -> None:
    assert clock(seconds, digits=digits) == text
