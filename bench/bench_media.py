"""The media kit and the sandbox's renders: contact sheet, HEIC to JPEG, shrinking a 1 GB video,
and rendering a 10 s timeline.

Inputs are made once with PyAV and pillow-heif and kept in `bench/out/` (gitignored): a 60 s
1080p H.264 file with x264's default keyframe interval (250) and one with a keyframe every
second, a 12 MP HEIC photo, and a 1080p30 H.264/AAC file of 1 GB (about 5 minutes at
26 Mbps, like 1080p60 phone footage; making it takes a few minutes the first time).

- contact sheet: `contact_sheet` (4x3 tiles, 320 px), median of 5 runs; goal < 1.5 s.
- HEIC -> JPEG: `heic_to_jpeg` of the 12 MP photo, median of 5 runs; goal < 1 s. Once as
  phones write it (a grid of 512-px tiles, which libheif decodes on one thread per core) and
  once as one HEVC picture (one thread), with the process's CPU seconds per run beside.
- shrink: `shrink_video` of the 1 GB file under the 200 MB limit, in a fresh process:
  input MB/s, and peak RSS growth (the process's `VmHWM` after minus before; not
  `ru_maxrss`, which a child started by fork inherits from its parent); goal < 200 MB growth.
- render: drawing a 10 s timeline (a generated clip, a title, music) with `compose.render`;
  the same with an uploaded 1080p video and a 12 MP photo; and the whole sandbox path over
  HTTP (render start -> `completed`, `render_seconds=0`, a new timeline each run so nothing is
  cached). Median of 3 runs; goal < 5 s.

    .venv/bin/python bench/bench_media.py                 # everything
    .venv/bin/python bench/bench_media.py --skip-shrink   # all but the 1 GB shrink
    .venv/bin/python bench/bench_media.py --heic-only     # HEIC -> JPEG alone
    .venv/bin/python bench/bench_media.py --startup-against ../other/.venv/bin/nemo-mcp

The last form only compares cold starts: spawn -> `initialize` -> `tools/list` -> exit of
this tree's `nemo-mcp` and another build's (a worktree without the media kit), alternately,
20 runs each, in one script, so a busy machine slows both alike.
"""

from __future__ import annotations

import argparse
import array
import itertools
import json
import math
import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, login, machine, median, sandbox_process, scratch, table

OUT = ROOT / "bench" / "out"
MB = 1000 * 1000
GB = 1000 * MB


# inputs (made once) ----------------------------------------------------------------------------
def _graph(width: int, height: int, fps: int) -> Any:
    import av

    graph = av.filter.Graph()
    chain = [
        graph.add("testsrc2", f"size={width}x{height}:rate={fps}"),
        graph.add("format", "yuv420p"),
        graph.add("buffersink"),
    ]
    for a, b in itertools.pairwise(chain):
        a.link_to(b)
    graph.configure()
    return graph


def make_video(
    path: Path,
    *,
    seconds: float | None,
    max_bytes: int | None = None,
    options: dict[str, str],
    fps: int = 30,
) -> Path:
    """1080p testsrc2 with a 440 Hz tone, for `seconds` or until the file reaches `max_bytes`."""
    import av

    if path.exists():
        return path
    partial = path.with_suffix(".part.mp4")
    graph = _graph(1920, 1080, fps)
    # One second of a 440 Hz tone (a whole number of periods), and a chunk more to slice from.
    wave = [0.2 * math.sin(2 * math.pi * 440 * n / 48_000) for n in range(48_000 + 1024)]
    wave_bytes = array.array("f", wave).tobytes()
    with av.open(str(partial), "w") as out:
        video = out.add_stream("libx264", rate=fps, options=options)
        video.width, video.height, video.pix_fmt = 1920, 1080, "yuv420p"
        audio = out.add_stream("aac", rate=48_000, layout="stereo")
        audio.codec_context.options = {"aac_coder": "fast"}
        sample, index = 0, 0
        while True:
            if seconds is not None and index >= seconds * fps:
                break
            if (
                max_bytes is not None
                and index % 30 == 0
                and partial.exists()
                and partial.stat().st_size >= max_bytes
            ):
                break
            frame = graph.vpull()
            frame.pts, frame.time_base = index, Fraction(1, fps)
            # testsrc2 marks every frame I, which x264 would obey: let it choose.
            frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(video.encode(frame))
            index += 1
            while sample < index * 48_000 / fps:
                start = 4 * (sample % 48_000)
                data = wave_bytes[start : start + 4096]
                tone = av.AudioFrame(format="fltp", layout="stereo", samples=1024)
                for plane in tone.planes:
                    plane.update(data)
                tone.sample_rate, tone.pts, tone.time_base = 48_000, sample, Fraction(1, 48_000)
                out.mux(audio.encode(tone))
                sample += 1024
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    partial.rename(path)
    return path


def make_heic(path: Path, *, tile: int = 0) -> Path:
    """A 12 MP (4032x3024) photo-like HEIC: smooth gradients, fine detail and a little grain
    (a few MB, as phones make), EXIF orientation 6; with `tile`, a grid of tiles that size
    (phones write 512-px tiles), else one picture."""
    if path.exists():
        return path
    import pillow_heif
    from PIL import Image

    pillow_heif.register_heif_opener()
    size = (4032, 3024)
    red = Image.linear_gradient("L").resize(size)
    green = Image.radial_gradient("L").resize(size)
    blue = Image.effect_mandelbrot(size, (-2.2, -1.2, 1.0, 1.2), 60)
    grain = Image.effect_noise(size, 12)
    photo = Image.merge("RGB", [Image.blend(c, grain, 0.15) for c in (red, green, blue)])
    exif = Image.Exif()
    exif[0x0112] = 6
    partial = path.with_suffix(".part.heic")
    before, pillow_heif.options.GRID_TILE_SIZE = pillow_heif.options.GRID_TILE_SIZE, tile
    try:
        photo.save(partial, format="HEIF", quality=80, exif=exif.tobytes())
    finally:
        pillow_heif.options.GRID_TILE_SIZE = before
    partial.rename(path)
    return path


def inputs(with_big: bool) -> dict[str, Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    made = {
        "60s_default_gop": make_video(
            OUT / "media-60s-1080p-gop250.mp4",
            seconds=60,
            options={"preset": "veryfast", "crf": "23", "g": "250"},
        ),
        "60s_1s_gop": make_video(
            OUT / "media-60s-1080p-gop30.mp4",
            seconds=60,
            options={"preset": "veryfast", "crf": "23", "g": "30"},
        ),
        "heic": make_heic(OUT / "media-12mp.heic"),
        "heic_tiled": make_heic(OUT / "media-12mp-tiles512.heic", tile=512),
    }
    if with_big:
        made["1gb"] = make_video(
            OUT / "media-1gb-1080p.mp4",
            seconds=None,
            max_bytes=GB,
            options={"preset": "ultrafast", "crf": "12"},
        )
    return made


# measurements ----------------------------------------------------------------------------------
def timed(runs: int, job: Any) -> list[float]:
    seconds = []
    for index in range(runs):
        start = time.perf_counter()
        job(index)
        seconds.append(time.perf_counter() - start)
    return seconds


def contact_sheets(files: dict[str, Path], folder: Path) -> list[tuple[Any, ...]]:
    from nemo_mcp.media import contact_sheet, probe

    rows = []
    for key, label in (
        ("60s_default_gop", "keyframe every 250 frames (x264's default)"),
        ("60s_1s_gop", "keyframe every 30 frames (1 s, as phones record)"),
    ):
        source = files[key]
        probe(source)  # PyAV and Pillow loaded, the file in the page cache: the sheet alone
        sheets = [folder / f"sheet-{key}-{i}.jpg" for i in range(5)]
        made: list[Any] = []
        seconds = timed(5, lambda i, s=source, o=sheets, m=made: m.append(contact_sheet(s, o[i])))
        sheet = made[-1]
        rows.append(
            (
                f"60 s 1080p H.264, {label}",
                f"{median(seconds):.2f}",
                f"{max(seconds):.2f}",
                f"{sheet.width}x{sheet.height}, {sheet.size / 1000:.0f} KB",
                f"{sheet.frames_decoded} of 1800",
                "< 1.5 s: " + ("met" if median(seconds) < 1.5 else "missed"),
            )
        )
    return rows


def heic(files: dict[str, Path], folder: Path) -> list[tuple[Any, ...]]:
    """`heic_to_jpeg` of the 12 MP photo as phones write it (512-px tiles, decoded on one
    thread per core) and as one picture, each with the decoder alone beside it."""
    rows = []
    for key, how in (("heic_tiled", "512-px tiles, as phones write"), ("heic", "one picture")):
        rows += _heic_rows(files[key], how, folder)
    return rows


def _heic_rows(source: Path, how: str, folder: Path) -> list[tuple[Any, ...]]:
    import pillow_heif

    from nemo_mcp.media import heic_to_jpeg, probe
    from nemo_mcp.media.probing import register_heif

    probe(source)
    register_heif()  # decoding threads as the kit sets them
    made: list[Any] = []
    cpu_before = time.process_time()
    seconds = timed(5, lambda i: made.append(heic_to_jpeg(source, folder / f"p{i}.jpg")))
    cpu = (time.process_time() - cpu_before) / 5
    done = made[-1]
    # The floor: libheif/libde265 decoding the picture, nothing else.
    floor = timed(5, lambda i: pillow_heif.open_heif(source).data)
    size = f"{source.stat().st_size / MB:.1f} MB"
    threads = pillow_heif.options.DECODE_THREADS
    return [
        (
            f"12 MP HEIC ({how}, {size}) -> JPEG; CPU {cpu:.2f} s a run, {threads} threads",
            f"{median(seconds):.2f}",
            f"{max(seconds):.2f}",
            f"{done.info.width}x{done.info.height}, {done.info.size / MB:.1f} MB",
            "-",
            "< 1 s: " + ("met" if median(seconds) < 1 else "missed"),
        ),
        (
            f"floor: decoding that HEIC alone ({how}; libde265 via pillow-heif)",
            f"{median(floor):.2f}",
            f"{max(floor):.2f}",
            "-",
            "-",
            "-",
        ),
    ]


def peak_kib() -> int:
    """This process's peak resident memory (KiB) since it started its program."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def shrink_worker(source: str, output: str, limit: int) -> None:
    """In a fresh process: the shrink alone, with its peak RSS before and after."""
    import gc

    from nemo_mcp.media import probe, shrink_video

    probe(Path(source))  # libraries loaded before the baseline is taken
    gc.collect()
    before = peak_kib()
    start = time.perf_counter()
    done = shrink_video(source, output, limit_bytes=limit)
    seconds = time.perf_counter() - start
    after = peak_kib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "rss_before": before,
                "rss_after": after,
                "size": done.size,
                "attempts": done.attempts,
                "plan": [done.plan.width, done.plan.height, done.plan.video_bitrate],
            }
        )
    )


def shrink(files: dict[str, Path], folder: Path, limit: int) -> list[str]:
    from nemo_mcp.media import probe

    source = files["1gb"]
    info = probe(source)
    output = folder / "shrunk.mp4"
    done = subprocess.run(
        [PYTHON, __file__, "--worker-shrink", str(source), str(output), str(limit)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"shrink worker failed: {done.stderr[-2000:]}")
    r = json.loads(done.stdout)
    growth = (r["rss_after"] - r["rss_before"]) * 1024 / MB  # VmHWM is in KiB
    rate = info.size / MB / r["seconds"]
    width, height, bitrate = r["plan"]
    return [
        f"Input: {info.size / MB:.0f} MB, {info.duration:.0f} s of 1080p30 H.264 + AAC "
        f"({info.size * 8 / (info.duration or 1) / 1e6:.0f} Mbps). Limit {limit / MB:.0f} MB.",
        "",
        table(
            ["result", "seconds", "input MB/s", "realtime", "peak RSS growth MB", "attempts"],
            [
                (
                    f"{r['size'] / MB:.0f} MB, {width}x{height} at {bitrate / 1e6:.1f} Mbps",
                    f"{r['seconds']:.0f}",
                    f"{rate:.1f}",
                    f"{(info.duration or 0) / r['seconds']:.2f}x",
                    f"{growth:.0f}",
                    r["attempts"],
                )
            ],
        ),
        "",
        f"Peak RSS growth **{growth:.0f} MB** (goal < 200 MB: "
        f"{'met' if growth < 200 else 'missed'}); throughput **{rate:.1f} MB/s** of input.",
    ]


def renders(files: dict[str, Path], folder: Path) -> list[tuple[Any, ...]]:
    from nemo_mcp.media import probe
    from nemo_mcp.media.compose import render
    from nemo_mcp.sandbox.composition import Upload, composition_of

    photo = folder / "photo.jpg"
    from nemo_mcp.media import heic_to_jpeg

    heic_to_jpeg(files["heic"], photo)
    clip = folder / "clip.mp4"
    make_video(clip, seconds=5, options={"preset": "veryfast", "crf": "23"})

    def draft(title: str, uploads: bool) -> dict[str, Any]:
        if uploads:
            video = [
                {"s": 0, "d": 5000, "m": {"name": "clip.mp4", "url": "u/clip"}},
                {"s": 5000, "d": 5000, "m": {"name": "photo.jpg", "url": "u/photo"}},
            ]
        else:
            video = [{"s": 0, "d": 10000, "m": {"name": "city", "prompt": f"a city at {title}"}}]
        return {
            "t": [
                {"tt": 0, "sg": video},
                {
                    "tt": 1,
                    "sg": [{"s": 0, "d": 10000, "m": {"name": "Lo-fi Chill", "volume": 0.35}}],
                },
                {"tt": 7, "sg": [{"s": 0, "d": 3000, "m": {"text": title}}]},
            ],
            "d": 10000,
        }

    known = {
        "u/clip": Upload("clip.mp4", "video", clip),
        "u/photo": Upload("photo.jpg", "image", photo),
    }

    def resolve(segment: Any) -> Upload | None:
        return known.get(segment.raw["m"].get("url"))

    rows = []
    for label, uploads in (
        ("generated clip, title, music", False),
        ("uploaded 1080p video + 12 MP photo, title, music", True),
    ):
        seconds = timed(
            3,
            lambda i, u=uploads: render(
                composition_of(draft(f"dusk {i} {u}", u), resolve), folder / f"r{i}.mp4"
            ),
        )
        info = probe(folder / "r0.mp4")
        rows.append(
            (
                f"draw: {label}",
                f"{median(seconds):.2f}",
                f"{max(seconds):.2f}",
                f"{info.duration:.2f} s, {info.size / MB:.1f} MB",
                "-",
                "< 5 s: " + ("met" if median(seconds) < 5 else "missed"),
            )
        )
    with sandbox_process(render_seconds=0, generation_seconds=0, initial_credits=100_000) as url:
        import httpx

        headers, sid = login(url)
        with httpx.Client(base_url=url, headers=headers, timeout=60) as http:

            def whole(index: int) -> None:
                body = {
                    "app_name": "nemo_agent",
                    "user_id": "me",
                    "session_id": sid,
                    "new_message": {
                        "parts": [
                            {
                                "text": f"generate a video of a harbour "
                                f"number {index} {time.time_ns()}"
                            }
                        ]
                    },
                }
                with http.stream(
                    "POST", "/run_sse", json=body, headers={"Accept": "text/event-stream"}
                ) as r:
                    r.read()
                state = http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()
                draft_now = state["data"]["state"]["draft"]
                render_id = f"render_{time.time_ns()}"
                start = time.perf_counter()
                http.post(
                    "/api/render/proxy/lambda",
                    json={"id": render_id, "sessionId": sid, "draft": draft_now},
                )
                while http.get(f"/api/render/proxy/lambda/{render_id}").json()["status"] != (
                    "completed"
                ):
                    time.sleep(0.05)
                measured.append(time.perf_counter() - start)

            measured: list[float] = []
            for index in range(3):
                whole(index)
        rows.append(
            (
                "sandbox over HTTP: start -> completed (10 s draft)",
                f"{median(measured):.2f}",
                f"{max(measured):.2f}",
                "-",
                "-",
                "< 5 s: " + ("met" if median(measured) < 5 else "missed"),
            )
        )
    return rows


def startup_against(other: str, runs: int) -> str:
    """Median cold start of this tree's `nemo-mcp` and `other`, run alternately."""
    from bench_startup import handshake

    from _common import NEMO_MCP, server_env

    seconds: dict[str, list[float]] = {"this tree": [], other: []}
    with scratch() as home:
        env = server_env("http://127.0.0.1:9", home)
        for index in range(runs):
            pair = [("this tree", NEMO_MCP), (other, other)]
            for name, command in pair if index % 2 == 0 else pair[::-1]:
                seconds[name].append(handshake([command], env)[0] * 1000)
    rows = [
        (name, f"{median(v):.0f}", f"{sorted(v)[int(len(v) * 0.9)]:.0f}")
        for name, v in seconds.items()
    ]
    difference = median(seconds["this tree"]) - median(seconds[other])
    return "\n".join(
        [
            f"Cold start, {runs} alternating runs each (spawn -> initialize -> tools/list -> exit):",
            "",
            table(["nemo-mcp", "median ms", "p90 ms"], rows),
            "",
            f"This tree minus the other: **{difference:+.0f} ms** (median).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-shrink", action="store_true", help="leave out the 1 GB shrink")
    parser.add_argument("--heic-only", action="store_true", help="only HEIC -> JPEG")
    parser.add_argument("--limit-mb", type=int, default=200, help="shrink limit (200 or 500)")
    parser.add_argument(
        "--startup-against",
        metavar="NEMO_MCP",
        help="compare cold starts with another build's nemo-mcp, and stop",
    )
    parser.add_argument("--runs", type=int, default=20, help="runs each for --startup-against")
    parser.add_argument(
        "--worker-shrink", nargs=3, metavar=("SOURCE", "OUTPUT", "LIMIT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker_shrink:
        source, output, limit = args.worker_shrink
        shrink_worker(source, output, int(limit))
        return
    print(f"Machine: {machine()}\n")
    if args.startup_against:
        print(startup_against(args.startup_against, args.runs))
        return
    if args.heic_only:
        OUT.mkdir(parents=True, exist_ok=True)
        photos = {
            "heic": make_heic(OUT / "media-12mp.heic"),
            "heic_tiled": make_heic(OUT / "media-12mp-tiles512.heic", tile=512),
        }
        with scratch() as folder:
            rows = heic(photos, folder)
        print(table(["what", "median s", "max s", "output", "frames decoded", "goal"], rows))
        return
    files = inputs(with_big=not args.skip_shrink)
    with scratch() as folder:
        rows = contact_sheets(files, folder) + heic(files, folder) + renders(files, folder)
        print(table(["what", "median s", "max s", "output", "frames decoded", "goal"], rows))
        if not args.skip_shrink:
            print("\nShrinking 1 GB (one run, in a fresh process):\n")
            print("\n".join(shrink(files, folder, args.limit_mb * MB)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
