"""Shrinking a video over an upload limit into an H.264/AAC MP4 that fits.

`plan_shrink` is pure: from the duration, picture size and limit it picks bitrates (with a
safety margin) and, when the bits per pixel would be too few, a smaller picture.
`shrink_video` carries a plan out as one blocking call meant for a worker thread
(`anyio.to_thread.run_sync`): frames stream from decoder to encoder one at a time (memory
stays flat whatever the size), the original is only read, the result is checked against the
limit and made once more, smaller, if it does not fit. A progress callback that raises stops
the work and leaves no output behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_mcp.media.convert import replacing
from nemo_mcp.media.errors import CannotShrinkError, DamagedFileError, MediaError
from nemo_mcp.media.probing import MediaInfo, open_input, picture_stream, probe

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame
    from av.container import InputContainer, OutputContainer
    from av.filter import Graph
    from av.video.frame import VideoFrame

MB = 1000 * 1000
#: The two upload limits of NemoVideo's skills.
LIMIT_200_MB = 200 * MB
LIMIT_500_MB = 500 * MB

#: Share of the limit the plan aims at; x264's average-bitrate mode lands within a few percent.
MARGIN = 0.92
#: The container's own bytes: about 1.5 KB per second of sample tables, plus a fixed part.
MUX_BYTES_PER_SECOND = 1500
MUX_BYTES_FIXED = 64 * 1024
MIN_VIDEO_BITRATE = 120_000
#: Bits per pixel per frame below which H.264 looks poor: a smaller picture is chosen instead.
MIN_BITS_PER_PIXEL = 0.06
#: Picture heights tried, largest first (of the short side, so portrait videos work alike).
RUNGS = (2160, 1440, 1080, 720, 540, 480, 360, 240)
MAX_FPS = 30.0
AUDIO_RATES = ((1_500_000, 128_000), (600_000, 96_000), (0, 64_000))
#: x264's settings besides the bitrate. The short lookahead (veryfast's is 10) keeps a 1080p
#: encode near 150 MB of memory; see bench/bench_media.py.
X264_OPTIONS: dict[str, str] = {"preset": "veryfast", "rc-lookahead": "5"}
#: Decoder threads: each holds frames of its own, so they are capped.
DECODE_THREADS = min(4, os.cpu_count() or 1)

Progress = Callable[[float], None]


@dataclass(frozen=True)
class ShrinkPlan:
    """Output settings: picture size as shown, frame rate, bitrates (bits per second)."""

    width: int
    height: int
    fps: float
    video_bitrate: int
    audio_bitrate: int  # 0: the source has no sound
    target_bytes: int


@dataclass(frozen=True)
class ShrinkResult:
    """A video that fits: its path, size, settings and a sentence saying what was done."""

    source: Path
    output: Path
    size: int
    limit: int
    plan: ShrinkPlan
    attempts: int
    summary: str


def _even(value: float) -> int:
    return max(2, round(value / 2) * 2)


def _size_label(size: float) -> str:
    if size >= 1e9:
        return f"{size / 1e9:.2f} GB"
    return f"{size / MB:.0f} MB" if size >= MB else f"{size / 1000:.0f} KB"


def _minutes(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} seconds"
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    return f"{seconds / 60:.0f} minutes"


def plan_shrink(
    duration: float,
    width: int,
    height: int,
    fps: float | None,
    *,
    has_audio: bool,
    limit_bytes: int,
    margin: float = MARGIN,
    name: str = "the video",
) -> ShrinkPlan:
    """The settings that make `duration` seconds of `width`x`height` (as shown) fit in
    `limit_bytes`; CannotShrinkError when even the lowest would not."""
    if duration <= 0 or width <= 0 or height <= 0:
        raise MediaError(f"{name} has no usable length or picture size, so it cannot be shrunk.")
    target = int(limit_bytes * margin)
    payload_bits = (target - MUX_BYTES_FIXED - MUX_BYTES_PER_SECOND * duration) * 8
    total = payload_bits / duration
    audio = next(rate for floor, rate in AUDIO_RATES if total >= floor) if has_audio else 0
    video = int(total - audio)
    if video < MIN_VIDEO_BITRATE:
        lowest = MIN_VIDEO_BITRATE + (AUDIO_RATES[-1][1] if has_audio else 0)
        fits = (limit_bytes * margin - MUX_BYTES_FIXED) * 8 / (lowest + MUX_BYTES_PER_SECOND * 8)
        raise CannotShrinkError(
            f"{name} is {_minutes(duration)} long, too long to fit in {_size_label(limit_bytes)} "
            f"even at the lowest quality; trim it to under {_minutes(max(1.0, fits))} and try "
            "again."
        )
    rate = min(fps or MAX_FPS, MAX_FPS)
    short, long = min(width, height), max(width, height)
    rungs = [short] + [r for r in RUNGS if r < short]
    chosen = rungs[-1]
    for rung in rungs:
        pixels = rung * (long * rung / short)
        if video / (pixels * rate) >= MIN_BITS_PER_PIXEL:
            chosen = rung
            break
    scale = chosen / short
    out_w, out_h = _even(width * scale), _even(height * scale)
    return ShrinkPlan(out_w, out_h, round(rate, 3), video, audio, target)


def _graph(stream_template: object, plan: ShrinkPlan, rotation: int) -> Graph:
    """Decoded frames -> upright -> scaled -> yuv420p."""
    import av

    graph = av.filter.Graph()
    node = graph.add_buffer(template=stream_template)  # type: ignore[arg-type]
    steps: list[tuple[str, str]] = []
    if rotation == 90:
        steps.append(("transpose", "cclock"))
    elif rotation == 270:
        steps.append(("transpose", "clock"))
    elif rotation == 180:
        steps += [("hflip", ""), ("vflip", "")]
    steps += [("scale", f"{plan.width}:{plan.height}:flags=bilinear"), ("format", "yuv420p")]
    for name, args in steps:
        nxt = graph.add(name, args) if args else graph.add(name)
        node.link_to(nxt)
        node = nxt
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    return graph


def _encode_all(
    container: InputContainer,
    out: OutputContainer,
    info: MediaInfo,
    plan: ShrinkPlan,
    progress: Callable[[float], None],
) -> None:
    import av

    video = picture_stream(container)
    assert video is not None
    audio = container.streams.audio[0] if plan.audio_bitrate and container.streams.audio else None
    video.codec_context.thread_type = "FRAME"
    video.codec_context.thread_count = DECODE_THREADS
    rate = Fraction(plan.fps).limit_denominator(1001)
    v_out = out.add_stream(
        "libx264",
        rate=rate,
        options={
            **X264_OPTIONS,
            "maxrate": str(plan.video_bitrate * 2),
            "bufsize": str(plan.video_bitrate * 2),
        },
    )
    v_out.width, v_out.height, v_out.pix_fmt = plan.width, plan.height, "yuv420p"
    v_out.bit_rate = plan.video_bitrate
    v_out.codec_context.time_base = 1 / rate
    a_out = None
    resampler = None
    if audio is not None:
        a_out = out.add_stream("aac", rate=48_000, layout="stereo")
        a_out.bit_rate = plan.audio_bitrate
        a_out.codec_context.options = {"aac_coder": "fast"}
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48_000)
    graph = _graph(video, plan, info.rotation)
    origin = (container.start_time or 0) / 1_000_000  # both streams are timed from here
    duration = info.duration or 0.0
    last_index = -1
    next_sample: int | None = None

    def put_video(frame: VideoFrame | None) -> None:
        nonlocal last_index
        graph.vpush(frame)
        while True:
            try:
                shown = graph.vpull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            if shown.pts is None or shown.time_base is None:
                continue
            seconds = float(shown.pts * shown.time_base) - origin
            index = round(seconds * rate)
            if index <= last_index:
                continue  # a frame rate above the plan's: drop, keep timing
            last_index = index
            shown.pts, shown.time_base = index, 1 / rate
            # The decoder's frame types would be forced on x264 (an I frame becomes a
            # keyframe, a B frame a B frame): let the encoder choose, as ffmpeg does.
            shown.pict_type = av.video.frame.PictureType.NONE
            out.mux(v_out.encode(shown))
            if duration:
                progress(min(1.0, seconds / duration))

    def put_audio(frame: AudioFrame | None) -> None:
        nonlocal next_sample
        assert a_out is not None and resampler is not None
        if next_sample is None and frame is not None:
            begins = frame.time if frame.time is not None else origin
            next_sample = max(0, round((begins - origin) * 48_000))
        for piece in resampler.resample(frame):
            piece.pts, piece.time_base = next_sample or 0, Fraction(1, 48_000)
            next_sample = (next_sample or 0) + piece.samples
            out.mux(a_out.encode(piece))

    streams = [s for s in (video, audio) if s is not None]
    for packet in container.demux(streams):
        for frame in packet.decode():
            if packet.stream is video:
                put_video(frame)  # type: ignore[arg-type]
            else:
                put_audio(frame)  # type: ignore[arg-type]
    put_video(None)
    out.mux(v_out.encode(None))
    if a_out is not None:
        put_audio(None)
        out.mux(a_out.encode(None))


def _run(source: Path, output: Path, info: MediaInfo, plan: ShrinkPlan, progress: Progress) -> int:
    import av

    container = open_input(source, "a video")
    try:
        with container, replacing(output) as partial:
            with av.open(str(partial), "w", format="mp4") as out:
                _encode_all(container, out, info, plan, progress)
            size = partial.stat().st_size
    except (av.error.FFmpegError, ValueError):
        raise DamagedFileError(
            f"{source.name} could not be read to its end: it looks damaged; export it again and "
            "retry."
        ) from None
    return size


Runner = Callable[[Path, Path, MediaInfo, ShrinkPlan, Progress], int]


def shrink_video(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    limit_bytes: int,
    progress: Progress | None = None,
) -> ShrinkResult:
    """Re-encode the video `source` into an H.264/AAC MP4 at `output` under `limit_bytes`.

    Blocking; run it in a worker thread. `progress` gets rising fractions up to 1: the first
    attempt spans 0-0.9; when its result is over the limit, a second one with fewer bits
    spans 0.9-1. Rotated videos come out upright. Raises CannotShrinkError when the video is
    too long for any setting, or when even the second attempt does not fit (no output then).
    """
    return _shrink(Path(source), Path(output), limit_bytes, progress, _run)


def retry_margin(size: int, limit_bytes: int, margin: float = MARGIN) -> float:
    """The margin of a second attempt: lower by as much as the first overshot, and 5% more."""
    return margin * (limit_bytes / size) * 0.95


def _shrink(
    src: Path, dst: Path, limit_bytes: int, progress: Progress | None, run: Runner
) -> ShrinkResult:
    info = probe(src)
    if info.kind != "video":
        raise MediaError(f"{src.name} has no picture; only videos can be shrunk.")
    if not info.duration:
        raise MediaError(f"{src.name} does not say how long it is, so it cannot be shrunk.")
    duration = info.duration
    width, height = info.display_width or 0, info.display_height or 0
    report = progress or (lambda _: None)
    reported = [0.0]

    def scaled(low: float, high: float) -> Progress:
        def tell(fraction: float) -> None:
            value = low + (high - low) * min(1.0, max(0.0, fraction))
            if value - reported[0] >= 0.002:
                reported[0] = value
                report(value)

        return tell

    def attempt(margin: float, low: float, high: float) -> tuple[ShrinkPlan, int]:
        plan = plan_shrink(
            duration,
            width,
            height,
            info.fps,
            has_audio=info.has_audio,
            limit_bytes=limit_bytes,
            margin=margin,
            name=src.name,
        )
        return plan, run(src, dst, info, plan, scaled(low, high))

    plan, size = attempt(MARGIN, 0.0, 0.9)
    attempts = 1
    if size > limit_bytes:
        plan, size = attempt(retry_margin(size, limit_bytes), 0.9, 1.0)
        attempts = 2
        if size > limit_bytes:
            dst.unlink(missing_ok=True)
            raise CannotShrinkError(
                f"{src.name} still came out at {_size_label(size)}, over the "
                f"{_size_label(limit_bytes)} limit; trim it and try again."
            )
    report(1.0)
    summary = (
        f"{src.name} ({_size_label(info.size)}) was re-encoded to fit the "
        f"{_size_label(limit_bytes)} limit: {_size_label(size)}, H.264 {plan.width}x{plan.height} "
        f"at {plan.video_bitrate / 1e6:.1f} Mbps."
    )
    return ShrinkResult(src, dst, size, limit_bytes, plan, attempts, summary)


__all__ = [
    "LIMIT_200_MB",
    "LIMIT_500_MB",
    "MARGIN",
    "Progress",
    "ShrinkPlan",
    "ShrinkResult",
    "plan_shrink",
    "retry_margin",
    "shrink_video",
]
