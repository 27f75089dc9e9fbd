"""One measured transfer by the project's own client, in a fresh process (for a clean peak RSS).

    transfer_worker.py upload <api_url> <file> <state_dir>
    transfer_worker.py download <api_url> <render status JSON> <folder> <state_dir>
    BENCH_HEADERS=<headers JSON> transfer_worker.py httpx-upload <upload_url> <file>
    transfer_worker.py httpx-download <file_url> <folder>

The `httpx-*` modes are the reference: plain httpx with plain blocking file I/O in 1 MiB
pieces, i.e. the same HTTP stack without the client's per-chunk thread hops.

Prints one JSON line: bytes, seconds (the transfer alone), and the peak RSS before and
after it (`ru_maxrss`, KiB), so the growth is what the transfer itself needed.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import resource
import sys
import time
from pathlib import Path

import anyio
import httpx

from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.models import parse_render_status
from nemo_mcp.backend.render import download
from nemo_mcp.identity import load_identity
from nemo_mcp.settings import Settings
from nemo_mcp.state_files import StateStore


def peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def client_for(api_url: str, state: Path, files: Path) -> NemoClient:
    settings = Settings(
        api_url=api_url, home=state / "home", output_dir=state / "out", upload_dirs=(files,)
    )
    identity = load_identity()
    # The skills cap uploads at 500 MB; a 1 GiB run needs a larger cap on both ends
    # (the sandbox gets `upload_limit_bytes`), so the bench raises the client's copy too.
    skill = dataclasses.replace(identity.skill, max_upload_bytes=1 << 40)
    identity = dataclasses.replace(identity, skill=skill)
    return NemoClient(settings, identity, StateStore(settings.home, api_url))


async def upload(api_url: str, file: Path, state: Path) -> dict[str, float]:
    async with client_for(api_url, state, file.parent) as client:
        await client.credits()  # token and connection first: only the transfer is timed
        await client.session()
        gc.collect()
        before = peak_kib()
        start = time.perf_counter()
        result = await client.upload_files([file])
        seconds = time.perf_counter() - start
        assert result.files, "the upload returned no files"
        return {
            "bytes": file.stat().st_size,
            "seconds": seconds,
            "rss_before": before,
            "rss_after": peak_kib(),
        }


async def fetch(api_url: str, status_json: str, folder: Path, state: Path) -> dict[str, float]:
    data = json.loads(status_json)
    status = parse_render_status(data, render_id=str(data.get("taskId") or data.get("id")))
    async with client_for(api_url, state, folder) as client:
        await client.credits()
        gc.collect()
        before = peak_kib()
        start = time.perf_counter()
        saved = await download(client, status, folder, stem="bench")
        seconds = time.perf_counter() - start
        saved.path.unlink()
        return {
            "bytes": saved.size,
            "seconds": seconds,
            "rss_before": before,
            "rss_after": peak_kib(),
        }


async def plain_upload(url: str, file: Path, headers_json: str) -> dict[str, float]:
    size = file.stat().st_size
    boundary = "bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{file.name}"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    async def body():  # type: ignore[no-untyped-def]
        yield head
        with open(file, "rb") as handle:
            while chunk := handle.read(1024 * 1024):
                yield chunk
        yield tail

    headers = {
        **json.loads(headers_json),
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail)),
    }
    async with httpx.AsyncClient(timeout=600.0) as http:
        gc.collect()
        before = peak_kib()
        start = time.perf_counter()
        response = await http.post(url, content=body(), headers=headers)
        seconds = time.perf_counter() - start
        response.raise_for_status()
        return {"bytes": size, "seconds": seconds, "rss_before": before, "rss_after": peak_kib()}


async def plain_download(url: str, folder: Path) -> dict[str, float]:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "httpx.mp4"
    written = 0
    async with httpx.AsyncClient(timeout=600.0) as http:
        gc.collect()
        before = peak_kib()
        start = time.perf_counter()
        async with http.stream("GET", url) as response:
            response.raise_for_status()
            with open(target, "wb") as handle:
                async for chunk in response.aiter_bytes(1024 * 1024):
                    handle.write(chunk)
                    written += len(chunk)
        seconds = time.perf_counter() - start
    target.unlink()
    return {"bytes": written, "seconds": seconds, "rss_before": before, "rss_after": peak_kib()}


def main(argv: list[str]) -> None:
    if argv[0] == "httpx-upload":
        # Headers (with the token) come in the environment: argv is visible to every user.
        result = anyio.run(plain_upload, argv[1], Path(argv[2]), os.environ["BENCH_HEADERS"])
    elif argv[0] == "httpx-download":
        result = anyio.run(plain_download, argv[1], Path(argv[2]))
    elif argv[0] == "upload":
        result = anyio.run(upload, argv[1], Path(argv[2]), Path(argv[3]))
    else:
        result = anyio.run(fetch, argv[1], argv[2], Path(argv[3]), Path(argv[4]))
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
