"""Cold start: spawn the server, MCP `initialize`, `tools/list`, close stdin, wait for exit.

Whole-process wall time, median of N alternating runs, for three commands:
the import floor (`python -c "import mcp.server"`), a do-nothing MCPServer with one
tool (`bench/noop_server.py`), and `nemo-mcp`. Then `-X importtime` of both servers:
the modules `nemo-mcp` imports that the do-nothing server does not, grouped by package.

    .venv/bin/python bench/bench_startup.py             # 15 runs each
    .venv/bin/python bench/bench_startup.py --runs 25
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import NEMO_MCP, PYTHON, ROOT, machine, median, pct, scratch, server_env, table

NOOP = str(ROOT / "bench" / "noop_server.py")
INIT = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "bench", "version": "0"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}}


def _send(process: subprocess.Popen[bytes], message: dict[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message).encode() + b"\n")
    process.stdin.flush()


def _answer(process: subprocess.Popen[bytes], wanted: int) -> dict[str, Any]:
    assert process.stdout is not None
    while True:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the server closed stdout before answering")
        message = json.loads(line)
        if message.get("id") == wanted:
            if "error" in message:
                raise RuntimeError(f"server error: {message['error']}")
            return message


def handshake(
    argv: list[str], env: dict[str, str], *, stderr: Any = subprocess.DEVNULL
) -> tuple[float, int, bytes]:
    """Seconds from spawn to exit for initialize + tools/list; the tool count; stderr bytes."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, env=env
    )
    _send(process, INIT)
    _answer(process, 1)
    _send(process, INITIALIZED)
    _send(process, LIST)
    tools = len(_answer(process, 2)["result"]["tools"])
    assert process.stdin is not None
    process.stdin.close()
    err = process.stderr.read() if process.stderr is not None else b""
    process.wait(30)
    return time.perf_counter() - start, tools, err


def plain(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def importtimes(stderr: bytes) -> dict[str, tuple[int, int]]:
    """`-X importtime` output as {module: (self us, cumulative us)}."""
    found: dict[str, tuple[int, int]] = {}
    for line in stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = (
            part.strip() for part in line[len("import time:") :].split("|")
        )
        found[name] = (int(self_us), int(cumulative))
    return found


def extra_imports(env: dict[str, str]) -> tuple[list[tuple[str, float, int]], float]:
    """Packages imported by nemo-mcp but not by the do-nothing server: (package, ms, modules)."""
    _, _, ours = handshake(
        [PYTHON, "-X", "importtime", "-m", "nemo_mcp"], env, stderr=subprocess.PIPE
    )
    _, _, floor = handshake([PYTHON, "-X", "importtime", NOOP], env, stderr=subprocess.PIPE)
    mine, base = importtimes(ours), importtimes(floor)
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, (self_us, _) in mine.items():
        if name in base:
            continue
        top = name.split(".")[0]
        key = ".".join(name.split(".")[:2]) if top == "nemo_mcp" else top
        groups[key][0] += self_us
        groups[key][1] += 1
    rows = sorted(((k, v[0] / 1000, v[1]) for k, v in groups.items()), key=lambda r: -r[1])
    return rows, sum(r[1] for r in rows)


def run(runs: int) -> str:
    with scratch() as home:
        env = server_env("http://127.0.0.1:9", home)
        commands = {
            "floor: python -c 'import mcp.server'": lambda: plain(
                [PYTHON, "-c", "import mcp.server"], env
            ),
            "do-nothing MCPServer (1 tool)": lambda: handshake([PYTHON, NOOP], env)[0],
            "nemo-mcp": lambda: handshake([NEMO_MCP], env)[0],
        }
        # Warm the page cache and .pyc files once; then alternate so drift hits all alike.
        for measure in commands.values():
            measure()
        times: dict[str, list[float]] = {name: [] for name in commands}
        names = list(commands)
        for i in range(runs):
            for name in names[i % 3 :] + names[: i % 3]:
                times[name].append(commands[name]())
        tools = handshake([NEMO_MCP], env)[1]
        extras, extra_total = extra_imports(env)
    noop_ms = median(times["do-nothing MCPServer (1 tool)"]) * 1000
    rows = []
    for name, values in times.items():
        ms = [v * 1000 for v in values]
        rows.append(
            (name, f"{median(ms):.0f}", f"{pct(ms, 90):.0f}", f"{median(ms) - noop_ms:+.0f}")
        )
    ours = median(times["nemo-mcp"]) * 1000 - noop_ms
    verdict = "met" if ours <= 100 else f"missed by {ours - 100:.0f} ms"
    out = [
        f"Spawn -> initialize -> tools/list -> exit ({runs} alternating runs each; nemo-mcp lists {tools} tools).",
        "",
        table(["command", "median ms", "p90 ms", "vs do-nothing"], rows),
        "",
        f"Our own cost over the do-nothing server: **{ours:.0f} ms** median (goal <= 100 ms: {verdict}).",
        "",
        (
            f"Imported by nemo-mcp at start-up but not by the do-nothing server: {extra_total:.0f} ms of "
            "import self-time (one `-X importtime` run; sum of each package's modules' self time):"
        ),
        "",
        table(
            ["package", "import ms", "modules"], [(k, f"{ms:.1f}", n) for k, ms, n in extras[:15]]
        ),
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(args.runs))


if __name__ == "__main__":
    main()
