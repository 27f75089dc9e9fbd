"""Timeline benchmark: reading, summarizing, describing, viewing and diffing large drafts.

Builds a draft of N segments over three tracks (video, audio, text; no ids, so the diff has to
match by label and timing), and an edited copy with a trim in every tenth clip, volume and text
changes, inserted, removed and shifted segments. Reports the median and best of several runs
per step and the peak memory (tracemalloc, measured in a separate pass so as not to slow the
timings).

    python bench/bench_timeline.py                      # 10,000 segments, 7 runs
    python bench/bench_timeline.py --sizes 2500 10000 40000 --runs 5
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from nemo_mcp.timeline import describe, diff, parse_draft, summarize, view


def build(segments: int) -> dict[str, Any]:
    """A draft of `segments` segments: 60% video clips, 20% audio, 20% captions."""
    video, audio = segments * 6 // 10, segments * 2 // 10
    text = segments - video - audio
    return {
        "m": {"title": "Benchmark", "width": 1920, "height": 1080},
        "t": [
            {
                "tt": 0,
                "m": {"name": "Video"},
                "sg": [
                    {"s": i * 2000, "d": 2000, "m": {"name": f"clip {i}"}} for i in range(video)
                ],
            },
            {
                "tt": 1,
                "m": {"name": "BGM"},
                "sg": [
                    {"s": i * 6000, "d": 6000, "m": {"name": f"song {i}", "volume": 0.35}}
                    for i in range(audio)
                ],
            },
            {
                "tt": 7,
                "m": {"name": "Captions"},
                "sg": [{"s": i * 6000, "d": 3000, "m": {"text": f"line {i}"}} for i in range(text)],
            },
        ],
        "d": video * 2000,
    }


def edit(draft: dict[str, Any]) -> dict[str, Any]:
    """A copy with edits spread over every track."""
    after = copy.deepcopy(draft)
    video, audio, text = (track["sg"] for track in after["t"])
    for item in video[::10]:
        item["d"] = 1500
    for item in audio[::7]:
        item["m"]["volume"] = 0.6
    for item in text[::5]:
        item["m"]["text"] += " (edited)"
    for item in text[len(text) // 2 :]:
        item["s"] += 500
    del video[len(video) // 3]
    video.insert(len(video) // 2, {"s": 1, "d": 500, "m": {"name": "inserted"}})
    after["d"] = draft["d"] - 500
    return after


def timings(step: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and best of `runs` timed calls, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def peak_bytes(step: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        step()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure(segments: int, runs: int) -> list[tuple[str, tuple[float, float], int, str]]:
    before_raw = build(segments)
    after_raw = edit(before_raw)
    same_raw = json.loads(json.dumps(before_raw))
    before, after, same = parse_draft(before_raw), parse_draft(after_raw), parse_draft(same_raw)
    changes = diff(before, after)
    steps: list[tuple[str, Callable[[], object], str]] = [
        ("parse_draft", lambda: parse_draft(before_raw), f"{len(before.tracks)} tracks"),
        ("summarize", lambda: summarize(before), f"{len(summarize(before))} chars"),
        ("describe", lambda: describe(before), f"{len(describe(before))} chars"),
        (
            "view",
            lambda: view(before),
            f"{sum(len(t.segments) for t in view(before).tracks)} segments",
        ),
        ("diff (edited)", lambda: diff(before, after), f"{len(changes)} changes"),
        ("diff (equal copy)", lambda: diff(before, same), f"{len(diff(before, same))} changes"),
        ("parse both + diff", lambda: diff(parse_draft(before_raw), parse_draft(after_raw)), ""),
    ]
    return [(name, timings(step, runs), peak_bytes(step), note) for name, step, note in steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--show-changes", action="store_true", help="print the edited diff")
    args = parser.parse_args()
    print(
        f"python {platform.python_version()}, nproc {os.cpu_count()}, "
        f"{platform.machine()}, median of {args.runs} runs"
    )
    for size in args.sizes:
        print(f"\n{size:,} segments\n")
        print("| step | median ms | best ms | median µs per segment | peak memory MiB | note |")
        print("|---|---:|---:|---:|---:|---|")
        for name, (median, best), peak, note in measure(size, args.runs):
            print(
                f"| {name} | {median * 1000:.2f} | {best * 1000:.2f} | "
                f"{median / size * 1e6:.2f} | {peak / 2**20:.2f} | {note} |"
            )
    if args.show_changes:
        raw = build(args.sizes[-1])
        for change in diff(parse_draft(raw), parse_draft(edit(raw))):
            print(f"{change.kind}: {change.text}")


if __name__ == "__main__":
    main()
