"""Run every benchmark and rewrite its section of bench/RESULTS.md.

Each benchmark owns one `## <Section>`; only the part between its `<!-- bench:begin -->` and
`<!-- bench:end -->` markers is replaced, so notes written under a section by hand, and other
sections (e.g. `## Timeline`), stay as they are. A missing section is appended.

    .venv/bin/python bench/run_all.py                     # all
    .venv/bin/python bench/run_all.py startup calls       # some, by key
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, machine

RESULTS = ROOT / "bench" / "RESULTS.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"

#: key -> (section heading, script, arguments)
BENCHMARKS: dict[str, tuple[str, str, list[str]]] = {
    "startup": ("Cold start", "bench_startup.py", []),
    "calls": ("Per-call overhead (stdio)", "bench_calls.py", []),
    "transfer": ("Upload and download", "bench_transfer.py", []),
    "polling": ("Render detection", "bench_polling.py", []),
    "stream": ("Stream decoding", "bench_stream.py", []),
    "http": ("HTTP transport", "bench_http.py", []),
    "memory": ("Answer size and server memory", "bench_memory.py", []),
    "ledger": ("Work ledger", "bench_ledger.py", []),
    "turns": ("Agent turns per video", "bench_turns.py", []),
    "hosted": ("Hosted: replicas behind HAProxy", "bench_hosted.py", []),
    "media": ("Media kit and sandbox renders", "bench_media.py", []),
    "tokens": ("Context cost of a demo session", "bench_tokens.py", []),
}


def run_one(script: str, args: list[str]) -> tuple[str, str, float]:
    """(command as typed, its output without the machine line, seconds)."""
    command = f".venv/bin/python bench/{script}" + "".join(f" {a}" for a in args)
    start = time.perf_counter()
    done = subprocess.run(
        [PYTHON, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{script} failed:\n{done.stderr[-3000:]}")
    lines = [line for line in done.stdout.splitlines() if not line.startswith("Machine: ")]
    return command, "\n".join(lines).strip(), seconds


def block(command: str, output: str, seconds: float, load: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            BEGIN,
            f"Command: `{command}` ({seconds:.0f} s; {stamp}).",
            f"Machine: {machine()}; load average before the run: {load}.",
            "",
            output,
            END,
        ]
    )


def replace_section(text: str, heading: str, generated: str) -> str:
    """Put `generated` into `## heading` (between the markers), keeping everything else."""
    pattern = re.compile(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", re.DOTALL | re.MULTILINE)
    match = pattern.search(text)
    if match is None:
        return text.rstrip("\n") + f"\n\n## {heading}\n\n{generated}\n"
    body = match.group(1)
    if BEGIN in body and END in body:
        before, rest = body.split(BEGIN, 1)
        _, after = rest.split(END, 1)
        body = before + generated + after
    else:
        body = "\n" + generated + "\n" + body
    return text[: match.start(1)] + body + text[match.end(1) :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "keys", nargs="*", help=f"which to run: {', '.join(BENCHMARKS)} (default all)"
    )
    args = parser.parse_args()
    unknown = set(args.keys) - set(BENCHMARKS)
    if unknown:
        parser.error(
            f"unknown benchmark {', '.join(sorted(unknown))}; choose from {', '.join(BENCHMARKS)}"
        )
    keys = args.keys or list(BENCHMARKS)
    for key in keys:
        heading, script, extra = BENCHMARKS[key]
        load = (
            " ".join(Path("/proc/loadavg").read_text().split()[:3])
            if os.path.exists("/proc/loadavg")
            else "n/a"
        )
        command, output, seconds = run_one(script, extra)
        print(f"## {heading}\n\n{output}\n", flush=True)
        # Re-read each time: another section may have been edited meanwhile.
        text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
        RESULTS.write_text(replace_section(text, heading, block(command, output, seconds, load)))


if __name__ == "__main__":
    main()
