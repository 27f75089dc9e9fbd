"""Upload and export download: the project's client vs curl, side by side, on one sandbox.

Upload: a sparse file (1 GiB by default) sent by `NemoClient.upload_files` vs `curl -F files=@...`
to the same endpoint with the same token and headers. Download: `nemo_mcp.backend.render.download`
of a render whose file is `render_output_bytes` long vs `curl -o` of the same output URL.
Each client runs in its own process: our peak RSS growth is `ru_maxrss` after minus before
the transfer, inside the worker; curl's whole-process peak RSS comes from `wait4`.
The sandbox (a separate `nemo-mcp sandbox` process) parses and hashes every uploaded byte,
so on 2 cores both clients share the machine with it alike.

A third client, plain httpx with blocking 1 MiB file reads/writes, is the reference: the same
HTTP stack without the project's client code, to tell httpx's own limit from ours.

    .venv/bin/python bench/bench_transfer.py                  # 1 GiB, 3 runs of each
    .venv/bin/python bench/bench_transfer.py --mib 480 --runs 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PYTHON, ROOT, login, machine, median, sandbox_process, scratch, table

WORKER = str(ROOT / "bench" / "transfer_worker.py")
MIB = 1024 * 1024
PLAIN = "reference: plain httpx, blocking file I/O"


def measured(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, bytes]:
    """Run `argv`: wall seconds, peak RSS (KiB) of that process, its stdout."""
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}
    )
    out, err = b"", b""
    assert process.stdout is not None and process.stderr is not None
    out = process.stdout.read()
    err = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(
            f"{Path(argv[0]).name} failed ({process.returncode}): {err.decode()[-2000:]}"
        )
    return seconds, usage.ru_maxrss, out


def finished_render(url: str) -> dict[str, Any]:
    """A completed render's status body (generation and render are instant in this sandbox)."""
    headers, sid = login(url)
    with httpx.Client(base_url=url, headers=headers, timeout=60.0) as http:
        body = {
            "app_name": "nemo_agent",
            "user_id": "me",
            "session_id": sid,
            "new_message": {"parts": [{"text": "generate a video of a city timelapse"}]},
        }
        with http.stream(
            "POST",
            "/run_sse",
            json=body,
            headers={"Accept": "text/event-stream", "X-Sandbox-Variant": "generation_seconds=0"},
        ) as r:
            r.read()
        draft = http.get(f"/api/state/nemo_agent/me/{sid}/latest").json()["data"]["state"]["draft"]
        render_id = f"render_{time.time_ns()}"
        started = http.post(
            "/api/render/proxy/lambda",
            json={
                "id": render_id,
                "sessionId": sid,
                "draft": draft,
                "output": {"format": "mp4", "quality": "high"},
            },
        )
        started.raise_for_status()
        for _ in range(100):
            status = http.get(f"/api/render/proxy/lambda/{render_id}").json()
            if status.get("status") == "completed":
                return dict(status)
            time.sleep(0.05)
    raise RuntimeError("the render did not complete")


def curl_headers(folder: Path, headers: dict[str, str]) -> Path:
    """The headers (token included) in a private file, so the token is never on a command line."""
    path = folder / "curl-headers"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"{k}: {v}\n" for k, v in headers.items()))
    return path


def run(size: int, runs: int) -> str:
    rows: list[tuple[Any, ...]] = []
    verdicts: list[str] = []
    config = {"upload_limit_bytes": 2 * size, "render_output_bytes": size, "render_seconds": 0}
    with sandbox_process(**config) as url, scratch() as folder:
        source = folder / "clip.mp4"
        with open(source, "wb") as handle:
            handle.truncate(size)  # sparse: reads cost no disk time, for both clients alike
        headers, sid = login(url)
        header_file = curl_headers(folder, headers)
        upload_url = f"{url}/api/upload-video/nemo_agent/me/{sid}"
        status = finished_render(url)
        output_url = status["output"]["url"]
        target = folder / "curl.mp4"

        def ours_upload(i: int) -> tuple[float, float, int]:
            state = folder / f"state-up-{i}"
            _, peak, out = measured([PYTHON, WORKER, "upload", url, str(source), str(state)])
            r = json.loads(out)
            return r["seconds"], (r["rss_after"] - r["rss_before"]) / 1024, peak

        def curl_upload(i: int) -> tuple[float, float, int]:
            reply = folder / "curl-reply.json"
            _, peak, out = measured(
                [
                    "curl",
                    "-sS",
                    "-o",
                    str(reply),
                    "-w",
                    "%{time_total} %{http_code}",
                    "-H",
                    f"@{header_file}",
                    "-H",
                    "Expect:",
                    "-F",
                    f"files=@{source};type=video/mp4",
                    upload_url,
                ]
            )
            seconds, code = out.decode().split()
            body = json.loads(reply.read_text())
            if code != "200" or body.get("code") not in (0, None):
                raise RuntimeError(f"curl upload answered {code}: {str(body)[:300]}")
            return float(seconds), float("nan"), peak

        def ours_download(i: int) -> tuple[float, float, int]:
            state = folder / f"state-down-{i}"
            out_dir = folder / f"out-{i}"
            _, peak, out = measured(
                [PYTHON, WORKER, "download", url, json.dumps(status), str(out_dir), str(state)]
            )
            r = json.loads(out)
            assert r["bytes"] == size, r
            return r["seconds"], (r["rss_after"] - r["rss_before"]) / 1024, peak

        def curl_download(i: int) -> tuple[float, float, int]:
            _, peak, out = measured(
                ["curl", "-sS", "-f", "-o", str(target), "-w", "%{time_total}", output_url]
            )
            got = target.stat().st_size
            target.unlink()
            assert got == size, got
            return float(out.decode()), float("nan"), peak

        def plain_upload(i: int) -> tuple[float, float, int]:
            # The token travels in the child's environment, never on argv or in output.
            _, peak, out = measured(
                [PYTHON, WORKER, "httpx-upload", upload_url, str(source)],
                env={"BENCH_HEADERS": json.dumps(headers)},
            )
            r = json.loads(out)
            return r["seconds"], (r["rss_after"] - r["rss_before"]) / 1024, peak

        def plain_download(i: int) -> tuple[float, float, int]:
            _, peak, out = measured(
                [PYTHON, WORKER, "httpx-download", output_url, str(folder / f"plain-{i}")]
            )
            r = json.loads(out)
            assert r["bytes"] == size, r
            return r["seconds"], (r["rss_after"] - r["rss_before"]) / 1024, peak

        for label, ours, theirs, plain in (
            ("upload", ours_upload, curl_upload, plain_upload),
            ("download", ours_download, curl_download, plain_download),
        ):
            results: dict[str, list[tuple[float, float, int]]] = {
                "nemo-mcp": [],
                "curl": [],
                PLAIN: [],
            }
            for i in range(runs):
                order = [("nemo-mcp", ours), ("curl", theirs), (PLAIN, plain)]
                for name, fn in order[i % 3 :] + order[: i % 3]:
                    results[name].append(fn(i))
            speed = {n: size / MIB / median([r[0] for r in rs]) for n, rs in results.items()}
            growth = max(r[1] for r in results["nemo-mcp"])
            for name, rs in results.items():
                rows.append(
                    (
                        label,
                        name,
                        f"{median([r[0] for r in rs]):.2f}",
                        f"{speed[name]:.0f}",
                        f"{speed[name] / speed['curl']:.2f}",
                        f"{max(r[1] for r in rs):.1f}" if name != "curl" else "-",
                        f"{max(r[2] for r in rs) / 1024:.0f}",
                    )
                )
            ratio = speed["nemo-mcp"] / speed["curl"]
            ok = ratio >= 0.8 and growth <= 64
            verdicts.append(
                f"{label}: **{ratio:.2f}x curl** throughput, peak RSS growth {growth:.1f} MiB "
                f"(goal >= 0.8x and <= 64 MiB: {'met' if ok else 'missed'})."
            )
    return "\n".join(
        [
            f"{size / MIB:.0f} MiB, {runs} alternating runs of each; times are medians of the transfer alone.",
            "",
            table(
                [
                    "transfer",
                    "client",
                    "median s",
                    "MiB/s",
                    "vs curl",
                    "peak RSS growth MiB",
                    "process peak RSS MiB",
                ],
                rows,
            ),
            "",
            *verdicts,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="file size in MiB (default 1024)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(run(args.mib * MIB, args.runs))


if __name__ == "__main__":
    main()
