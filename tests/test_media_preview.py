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
)
from nemo_mcp.media.preview import STEP_FRAMES, clock, sheet_times, tile_size

from media_files import heic, mean_colour, sound, video

FAST = {"preset": "ultrafast"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("preview")
    # 20 s with a keyframe every second: each tile is one seek and one decoded keyframe.
    video(folder / "keyed.mp4", seconds=20, audio=None, options={**FAST, "g": "24"})
    # 10 s with a single keyframe: tiles come from bounded decoding past it.
    video(folder / "one_key.mp4", seconds=10, audio=None, options={**FAST, "g": "1000"})
    video(folder / "portrait.mov", seconds=2, audio=None, rotation=270, options=FAST)
    sound(folder / "song.mp3", codec="libmp3lame")
    heic(folder / "photo.heic", size=(400, 300), orientation=6)
    return folder


def test_contact_sheet_of_keyframes(media: Path, tmp_path: Path) -> None:
    sheet = contact_sheet(media / "keyed.mp4", tmp_path / "sheet.jpg")
    with Image.open(sheet.path) as image:
        assert image.format == "JPEG" and image.size == (sheet.width, sheet.height)
        assert image.width >= 320 and image.height >= 180
        image.load()
        tiles = [
            image.crop((4 + c * 324, 4 + r * 184, 4 + c * 324 + 320, 4 + r * 184 + 180))
            for r in range(3)
            for c in range(4)
        ]
    assert sheet.size < 1_000_000 and (sheet.width, sheet.height) == (4 * 324 + 4, 3 * 184 + 4)
    assert len(sheet.times) == 12 and list(sheet.times) == sorted(sheet.times)
    # Each tile is the keyframe nearest its share's middle (keyframes every second).
    assert all(t == int(t) for t in sheet.times)
    assert all(
        abs(t - want) <= 0.5 for t, want in zip(sheet.times, sheet_times(20, 12), strict=True)
    )
    assert sheet.frames_decoded == 12  # one decoded frame per tile, of 480 in the file
    # The tiles differ (the picture's colour moves with time).
    reds = [mean_colour(tile, (100, 40, 220, 100))[0] for tile in tiles]
    assert len({round(r) for r in reds}) >= 10


def test_contact_sheet_with_far_keyframes_decodes_a_bounded_number(
    media: Path, tmp_path: Path
) -> None:
    sheet = contact_sheet(media / "one_key.mp4", tmp_path / "sheet.jpg", columns=3, rows=3)
    assert len(sheet.times) == 9 and list(sheet.times) == sorted(set(sheet.times))
    assert sheet.frames_decoded <= 9 * (STEP_FRAMES + 1) < 240
    with Image.open(sheet.path) as image:
        assert image.size == (3 * 324 + 4, 3 * 184 + 4)


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
    ("seconds", "tenths", "text"),
    [(0, False, "0:00"), (65.4, False, "1:05"), (3725, False, "1:02:05"), (8.37, True, "0:08.3")],
)
def test_clock(seconds: float, tenths: bool, text: str) -> None:
    assert clock(seconds, tenths=tenths) == text
