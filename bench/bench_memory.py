"""Server memory against the size of a backend answer: the code before answers were capped vs now.

A `nemo-mcp` server process (stdio, driven by the SDK's `Client`) reads the timeline while
the sandbox (a separate `nemo-mcp sandbox` process, its `huge_body` fault) pads the state
answer to 1, 10, 100 and 300 MB: a gateway gone wrong. The state is the answer with the
largest cap (4 MiB). For each size, a fresh server of each version: one warm-up call (token,
session, every module loaded), then the measured call. Peak RSS growth is the server's
VmHWM after minus before the call, RSS kept is VmRSS after minus before (from /proc: Linux).

"before" is the tree just before answers were capped (the parent of the commit that added
`src/nemo_mcp/backend/body.py`, unless `--before REV`), unpacked from git into a temporary
folder and run with the same interpreter and packages; "after" is this working tree. Both
talk to the same sandbox, which is this working tree's.

    .venv/bin/python bench/bench_memory.py                     # 1, 10, 100, 300 MB
    .venv/bin/python bench/bench_memory.py --sizes 50 300 --before main
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, machine, sandbox_process, scratch, server_env, table

SIZES = (1, 10, 100, 300)
GOAL_MB = 100


def base_revision() -> str:
    """The commit just before answers were capped."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/nemo_mcp/backend/body.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit("no commit adds src/nemo_mcp/backend/body.py: pass --before REV")
    return f"{added[-1]}^"


def unpack(revision: str, into: Path) -> tuple[str, Path]:
    """`revision`'s `src` folder (and the SKILL.md it reads) under `into`; returns
    (short hash, the `src` folder)."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", revision],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    archive = subprocess.run(
        ["git", "archive", commit, "src", "SKILL.md"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit, into / "src"


def child_with(home: Path) -> int:
    """The pid of our child process whose NEMO_HOME is `home` (the server)."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == me and f"NEMO_HOME={home}".encode() in environ.split(b"\0"):
            return int(entry.name)
    raise RuntimeError(f"no server process with NEMO_HOME={home}")


def memory_kib(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(value.split()[0])
    return values


def outcome(result: Any) -> str:
    if not result.is_error:
        return "answered"
    text = " ".join(getattr(block, "text", "") for block in result.content)
    return "refused: too large" if "more than" in text else f"error: {text[:60]}"


async def one(url: str, src: Path, home: Path, mb: int) -> dict[str, Any]:
    """One fresh server of the code in `src`: warm up, then read a state of `mb` MB."""
    env = server_env(url, home, PYTHONPATH=str(src), NEMO_TOOL_TIMEOUT="300")
    params = StdioServerParameters(command=PYTHON, args=["-m", "nemo_mcp"], env=env)
    async with Client(params) as client:
        pid = child_with(home / "home")
        warm = await client.call_tool("timeline", {})
        assert not warm.is_error, warm
        before = memory_kib(pid)
        async with httpx.AsyncClient(base_url=url) as control:
            fault = {"name": "huge_body", "route": "state", "times": None, "mb": mb}
            (await control.post("/_sandbox/faults", json=fault)).raise_for_status()
            start = time.perf_counter()
            result = await client.call_tool("timeline", {})
            seconds = time.perf_counter() - start
            after = memory_kib(pid)
            (await control.delete("/_sandbox/faults")).raise_for_status()
    return {
        "outcome": outcome(result),
        "seconds": seconds,
        "growth": (after["VmHWM"] - before["VmHWM"]) / 1024,
        "kept": (after["VmRSS"] - before["VmRSS"]) / 1024,
        "peak": after["VmHWM"] / 1024,
    }


async def measure(sizes: list[int], revision: str) -> str:
    with scratch() as tmp, sandbox_process() as url:
        commit, old_src = unpack(revision, tmp)
        versions = [(f"before ({commit})", old_src), ("after", ROOT / "src")]
        rows = []
        results: dict[tuple[str, int], dict[str, Any]] = {}
        for mb in sizes:
            for label, src in versions:
                home = tmp / f"{label.split()[0]}-{mb}"
                home.mkdir()
                got = await one(url, src, home, mb)
                results[(label, mb)] = got
                rows.append(
                    [
                        mb,
                        label,
                        got["outcome"],
                        f"{got['seconds']:.2f}",
                        f"{got['growth']:.1f}",
                        f"{got['kept']:.1f}",
                        f"{got['peak']:.0f}",
                    ]
                )
    lines = [
        "The timeline read once per server while the state answer is padded to each size "
        "(one fresh server process per row).",
        "",
        table(
            [
                "answer MB",
                "code",
                "outcome",
                "call s",
                "peak RSS growth MiB",
                "RSS kept MiB",
                "process peak MiB",
            ],
            rows,
        ),
        "",
    ]
    largest = max(sizes)
    old, new = results[(versions[0][0], largest)], results[("after", largest)]
    met = "met" if new["growth"] < GOAL_MB else "missed"
    lines.append(
        f"{largest} MB answer: peak RSS growth **{old['growth']:.0f} MiB before, "
        f"{new['growth']:.1f} MiB after** (goal < {GOAL_MB} MB: {met}); "
        f"RSS kept after the call {old['kept']:.0f} MiB before, {new['kept']:.1f} MiB after."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="MB each")
    parser.add_argument("--before", help="the revision to compare with (default: see above)")
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        raise SystemExit("this benchmark reads server memory from /proc (Linux only)")
    print(f"Machine: {machine()}\n")
    print(anyio.run(measure, args.sizes, args.before or base_revision()))


if __name__ == "__main__":
    main()
