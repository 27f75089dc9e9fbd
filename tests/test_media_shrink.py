"""Shrinking a video under a byte limit: the plan's arithmetic (pure), and real re-encodes of
small synthetic videos against tiny limits."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from nemo_mcp.errors import FileTooLargeError
from nemo_mcp.media import (
    LIMIT_200_MB,
    LIMIT_500_MB,
    CannotShrinkError,
    MediaError,
    MediaInfo,
    ShrinkPlan,
    plan_shrink,
    probe,
    shrink_video,
)
from nemo_mcp.media.shrink import (
    MARGIN,
    MIN_BITS_PER_PIXEL,
    MUX_BYTES_FIXED,
    MUX_BYTES_PER_SECOND,
    _shrink,
    retry_margin,
)

from media_files import mean_colour, sound, video


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shrink")
    fast = {"preset": "ultrafast"}
    video(folder / "noise.mp4", seconds=2, size=(320, 240), noise=True, options=fast)
    video(
        folder / "portrait.mov", seconds=1, size=(320, 180), audio=None, rotation=90, options=fast
    )
    video(folder / "fast.mp4", seconds=1, size=(320, 180), fps=60, audio=None, options=fast)
    sound(folder / "song.m4a", codec="aac", container="ipod")
    return folder


def expected_bytes(plan: ShrinkPlan, duration: float) -> float:
    payload = (plan.video_bitrate + plan.audio_bitrate) * duration / 8
    return payload + MUX_BYTES_FIXED + MUX_BYTES_PER_SECOND * duration


# the plan --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("duration", "size", "fps", "limit", "shown"),
    [
        (600, (1920, 1080), 60, LIMIT_200_MB, (1280, 720)),
        (600, (1920, 1080), 30, LIMIT_500_MB, (1920, 1080)),
        (3600, (1920, 1080), 30, LIMIT_200_MB, (426, 240)),
        (7200, (3840, 2160), 30, LIMIT_500_MB, (640, 360)),
        (600, (1080, 1920), 30, LIMIT_200_MB, (720, 1280)),  # portrait stays portrait
        (30, (640, 360), 30, LIMIT_200_MB, (640, 360)),  # never larger than the source
    ],
)
def test_plan_fits_the_limit_with_its_margin(
    duration: float, size: tuple[int, int], fps: float, limit: int, shown: tuple[int, int]
) -> None:
    plan = plan_shrink(duration, *size, fps, has_audio=True, limit_bytes=limit)
    assert (plan.width, plan.height) == shown
    assert plan.width % 2 == 0 and plan.height % 2 == 0
    assert plan.fps <= 30 and plan.audio_bitrate in (64_000, 96_000, 128_000)
    assert expected_bytes(plan, duration) <= limit * MARGIN + 1
    assert expected_bytes(plan, duration) >= limit * MARGIN * 0.99  # the budget is used
    if shown != (426, 240):
        bpp = plan.video_bitrate / (plan.width * plan.height * plan.fps)
        assert bpp >= MIN_BITS_PER_PIXEL


def test_plan_without_sound_gives_the_video_everything() -> None:
    with_sound = plan_shrink(600, 1920, 1080, 30, has_audio=True, limit_bytes=LIMIT_200_MB)
    silent = plan_shrink(600, 1920, 1080, 30, has_audio=False, limit_bytes=LIMIT_200_MB)
    assert silent.audio_bitrate == 0
    assert silent.video_bitrate == with_sound.video_bitrate + with_sound.audio_bitrate


def test_too_long_to_fit_says_how_long_would() -> None:
    with pytest.raises(CannotShrinkError) as caught:
        plan_shrink(
            36_000, 1920, 1080, 30, has_audio=True, limit_bytes=LIMIT_200_MB, name="day.mp4"
        )
    assert isinstance(caught.value, FileTooLargeError) and isinstance(caught.value, MediaError)
    assert str(caught.value) == (
        "day.mp4 is 600 minutes long, too long to fit in 200 MB even at the lowest quality; "
        "trim it to under 125 minutes and try again."
    )
    lowest = plan_shrink(125 * 60, 1920, 1080, 30, has_audio=True, limit_bytes=LIMIT_200_MB)
    assert (lowest.width, lowest.height) == (426, 240)  # what was promised does fit


def test_second_attempt_aims_lower_by_the_overshoot() -> None:
    assert retry_margin(110, 100) == pytest.approx(MARGIN * 100 / 110 * 0.95)
    assert retry_margin(110, 100) < MARGIN


# real re-encodes -----------------------------------------------------------------------------
def test_shrinks_under_a_small_limit_without_touching_the_original(
    media: Path, tmp_path: Path
) -> None:
    source = media / "noise.mp4"
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    assert source.stat().st_size > 1_000_000
    seen: list[float] = []
    done = shrink_video(source, tmp_path / "small.mp4", limit_bytes=200_000, progress=seen.append)
    assert done.size == (tmp_path / "small.mp4").stat().st_size <= 200_000
    info = probe(tmp_path / "small.mp4")
    assert (info.video_codec, info.audio_codec, info.container) == ("h264", "aac", "mp4")
    assert info.duration is not None and abs(info.duration - 2.0) < 0.1
    assert (info.width, info.height) == (done.plan.width, done.plan.height) == (320, 240)
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 5
    assert done.attempts == 1 and "re-encoded to fit the 200 KB limit" in done.summary
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.mp4"]


def test_rotated_video_comes_out_upright(media: Path, tmp_path: Path) -> None:
    done = shrink_video(media / "portrait.mov", tmp_path / "up.mp4", limit_bytes=150_000)
    info = probe(done.output)
    assert (info.width, info.height, info.rotation) == (180, 320, 0)
    import av

    with av.open(str(done.output)) as container:
        picture = next(container.decode(video=0)).to_image()  # type: ignore[no-untyped-call]
    # The white square in the stored top-left corner, turned 90 degrees counter-clockwise
    # as the display matrix says, is now bottom left.
    assert sum(mean_colour(picture, (0, 280, 40, 320))) > 600
    assert sum(mean_colour(picture, (140, 0, 180, 40))) < 600


def test_high_frame_rates_are_halved(media: Path, tmp_path: Path) -> None:
    done = shrink_video(media / "fast.mp4", tmp_path / "slow.mp4", limit_bytes=150_000)
    info = probe(done.output)
    assert info.fps == 30.0 and info.duration is not None and abs(info.duration - 1.0) < 0.05


def test_a_progress_callback_that_raises_stops_and_leaves_nothing(
    media: Path, tmp_path: Path
) -> None:
    class Stop(Exception):
        pass

    def stop_halfway(fraction: float) -> None:
        if fraction > 0.4:
            raise Stop

    with pytest.raises(Stop):
        shrink_video(
            media / "noise.mp4", tmp_path / "out.mp4", limit_bytes=200_000, progress=stop_halfway
        )
    assert list(tmp_path.iterdir()) == []


def test_only_videos_are_shrunk(media: Path, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="has no picture"):
        shrink_video(media / "song.m4a", tmp_path / "x.mp4", limit_bytes=100_000)


@pytest.mark.parametrize(("sizes", "attempts"), [((250_000, 150_000), 2), ((250_000, 220_000), 0)])
def test_a_result_over_the_limit_is_made_once_more_smaller(
    media: Path, tmp_path: Path, sizes: tuple[int, int], attempts: int
) -> None:
    """The retry logic, with a stand-in encoder that overshoots as told."""
    margins: list[float] = []
    told: list[float] = []

    def encoder(src: Path, dst: Path, info: MediaInfo, plan: ShrinkPlan, progress: object) -> int:
        margins.append(plan.target_bytes / 200_000)
        assert callable(progress)
        progress(0.5)
        progress(1.0)
        size = sizes[len(margins) - 1]
        dst.write_bytes(bytes(size))
        return size

    out = tmp_path / "out.mp4"
    if attempts:
        done = _shrink(media / "noise.mp4", out, 200_000, told.append, encoder)
        assert done.attempts == attempts and done.size == sizes[1] and out.exists()
    else:
        with pytest.raises(CannotShrinkError, match="still came out at 220 KB, over the 200 KB"):
            _shrink(media / "noise.mp4", out, 200_000, told.append, encoder)
        assert not out.exists()
    assert margins[0] == pytest.approx(MARGIN, abs=1e-5)
    assert margins[1] == pytest.approx(retry_margin(250_000, 200_000), abs=1e-5)
    assert told == sorted(told) and told[:2] == [0.45, 0.9] and told[2] == 0.95
