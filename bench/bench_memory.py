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
    .venv/bin/python bench/bench_memory.py --hostile           # the two rows below only

Two hostile rows follow, each before -> after (`--hostile-before REV`, default the commit
before the one adding `src/nemo_mcp/wordxml.py`, the bounded document reader):

- a stacked-encoding answer: a gateway in front of the sandbox answers `credits` with a
  few KiB coded `gzip, gzip` that unpack to 256 MiB;
- a document bomb: `generate` with a 60 KB .docx script of 3 million empty paragraphs.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
from mcp import Client, StdioServerParameters

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    PYTHON,
    ROOT,
    free_port,
    machine,
    sandbox_process,
    scratch,
    server_env,
    table,
    wait_http,
)

SIZES = (1, 10, 100, 300)
GOAL_MB = 100


def base_revision(added_file: str = "src/nemo_mcp/backend/body.py") -> str:
    """The commit just before `added_file` was added (answers capped, by default)."""
    added = subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", added_file],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    if not added:
        raise SystemExit(f"no commit adds {added_file}: pass the revision to compare with")
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


# hostile rows -------------------------------------------------------------------------
def stacked_bomb(mib: int = 256) -> bytes:
    """`mib` MiB of zeros coded gzip, then gzip again: a few KiB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1024 * 1024)
    inner = b"".join(packer.compress(block) for _ in range(mib)) + packer.flush()
    return gzip.compress(inner, compresslevel=9)


def document_bomb(path: Path, paragraphs: int = 3_000_000) -> Path:
    """A real Word package (python-docx's own template) whose body is `paragraphs` empty
    paragraphs."""
    import docx

    template = path.with_name("template.docx")
    docx.Document().save(str(template))
    body = b"<w:p/>" * paragraphs
    with (
        zipfile.ZipFile(template) as source,
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as target,
    ):
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "word/document.xml":
                head, _, rest = data.partition(b"<w:body>")
                data = head + b"<w:body>" + body + b"</w:body>" + rest.partition(b"</w:body>")[2]
            target.writestr(item.filename, data)
    template.unlink()
    return path


@contextmanager
def gateway(upstream: str, bomb: bytes) -> Iterator[tuple[str, threading.Event]]:
    """A gateway in front of `upstream`: it passes every request on, except `credits`
    once the event is set, answered with `bomb` coded `gzip, gzip`. Yields (its URL,
    the event)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    armed = threading.Event()

    async def forward(request: Request) -> Response:
        if armed.is_set() and "credit" in request.url.path:
            headers = {"content-encoding": "gzip, gzip", "content-type": "application/json"}
            return Response(bomb, headers=headers)
        async with httpx.AsyncClient(base_url=upstream, timeout=60) as http:
            answer = await http.request(
                request.method,
                request.url.path,
                params=request.query_params,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k != "host"},
            )
        kept = {
            k: v
            for k, v in answer.headers.items()
            if k not in ("content-encoding", "content-length", "transfer-encoding")
        }
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH"]
    app = Starlette(routes=[Route("/{path:path}", forward, methods=methods)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/")
        yield f"http://127.0.0.1:{port}", armed
    finally:
        server.should_exit = True
        thread.join(timeout=10)


async def hostile_call(
    src: Path, home: Path, api: str, tool: str, args: dict[str, Any], arm: threading.Event | None
) -> dict[str, Any]:
    """One fresh server of the code in `src` against `api`: warm up, then one `tool` call."""
    env = server_env(api, home, PYTHONPATH=str(src), NEMO_TOOL_TIMEOUT="300")
    env["NEMO_UPLOAD_DIRS"] = str(home / "uploads")
    params = StdioServerParameters(command=PYTHON, args=["-m", "nemo_mcp"], env=env)
    async with Client(params) as client:
        pid = child_with(home / "home")
        warm = await client.call_tool("credits", {})
        assert not warm.is_error, warm
        before = memory_kib(pid)
        if arm is not None:
            arm.set()
        start = time.perf_counter()
        result = await client.call_tool(tool, args)
        seconds = time.perf_counter() - start
        after = memory_kib(pid)
        if arm is not None:
            arm.clear()
    text = " ".join(getattr(block, "text", "") for block in result.content)
    text = text.split(f"tool {tool}: ", 1)[-1]
    return {
        "outcome": "answered" if not result.is_error else f"refused: {text[:60]}…",
        "seconds": seconds,
        "growth": (after["VmHWM"] - before["VmHWM"]) / 1024,
    }


async def measure_hostile(revision: str) -> str:
    rows = []
    with scratch() as tmp, sandbox_process() as url:
        commit, old_src = unpack(revision, tmp)
        versions = [(f"before ({commit})", old_src), ("after", ROOT / "src")]
        with gateway(url, stacked_bomb()) as (proxy, armed):
            for label, src in versions:
                home = tmp / f"coded-{label.split()[0]}"
                (home / "uploads").mkdir(parents=True)
                got = await hostile_call(src, home, proxy, "credits", {}, armed)
                rows.append(["stacked gzip, gzip (256 MiB unpacked)", label, got])
        for label, src in versions:
            home = tmp / f"docx-{label.split()[0]}"
            (home / "uploads").mkdir(parents=True)
            script = document_bomb(home / "uploads" / "script.docx")
            args = {"message": "make a video of this script", "script_file": str(script)}
            got = await hostile_call(src, home, url, "generate", args, None)
            rows.append([f"document bomb ({script.stat().st_size // 1000} KB .docx)", label, got])
    return "\n".join(
        [
            "One hostile call per fresh server process, after a warm-up call.",
            "",
            table(
                ["input", "code", "outcome", "call s", "peak RSS growth MiB"],
                [
                    [what, label, got["outcome"], f"{got['seconds']:.2f}", f"{got['growth']:.1f}"]
                    for what, label, got in rows
                ],
            ),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="MB each")
    parser.add_argument("--before", help="the revision to compare with (default: see above)")
    parser.add_argument("--hostile", action="store_true", help="only the two hostile rows")
    parser.add_argument("--hostile-before", help="the revision for the hostile rows")
    args = parser.parse_args()
    if not Path("/proc/self/status").exists():
        raise SystemExit("this benchmark reads server memory from /proc (Linux only)")
    print(f"Machine: {machine()}\n")
    if not args.hostile:
        print(anyio.run(measure, args.sizes, args.before or base_revision()))
        print()
    hostile = args.hostile_before or base_revision("src/nemo_mcp/wordxml.py")
    print(anyio.run(measure_hostile, hostile))


if __name__ == "__main__":
    main()
