"""Renders: start exactly once, poll adaptively, download to disk with the fallback.

A render id is made by `new_render_id` (a pure function) and recorded by the caller
before the start request is sent; it has a random part, so ids never collide across
processes, replicas or users. This module records nothing. A clean refusal of the start
(the backend answered, and said no) is `StartRefusedError`: the caller records a new
id and starts that, once, as the contract says. An unclear start (a 5xx, a gateway's page, a
timeout after the body left, a dropped connection, an unreadable answer) may have
started the render: it is sent again under the *same* id, and the backend's refusal of
a known id then proves it exists, so one request never starts two renders. Only the
backend's own JSON "not found" answer means a render never started; a failed status
read means "unknown", never "not there".
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import anyio
import httpx

from nemo_mcp import retrying
from nemo_mcp.backend.body import SMALL_ANSWER_LIMIT, decoded_chunks, read_answer
from nemo_mcp.backend.client import NemoClient
from nemo_mcp.backend.models import RenderStatus, parse_render_status
from nemo_mcp.backend.polling import AdaptivePoller
from nemo_mcp.backend.retry import MIN_TRANSFER_RATE, TRANSFER_TIMEOUT, translate
from nemo_mcp.errors import (
    AuthError,
    BackendError,
    ClientIdError,
    CreditsError,
    NemoError,
    PlanError,
    RateLimitError,
    RenderError,
    RenderSlowError,
    RenderUnclearError,
    ServerError,
    SessionNotFoundError,
    TransportError,
)

log = logging.getLogger(__name__)

#: Errors a new render id cannot fix.
_FINAL = (AuthError, CreditsError, PlanError, RateLimitError, SessionNotFoundError, ClientIdError)
#: How long a download may take before its average speed is held to `MIN_TRANSFER_RATE`.
DOWNLOAD_GRACE = 120.0


def new_render_id() -> str:
    """`render_<milliseconds>_<random>`: the documented form, never the same twice."""
    return f"render_{int(time.time() * 1000)}_{secrets.token_hex(4)}"


def _duplicate(err: BackendError) -> bool:
    """The backend's refusal of a render id it already knows."""
    low = err.message.lower()
    return err.code == 409 or err.http_status == 409 or "already exist" in low


class StartRefusedError(RenderError):
    """The backend answered the start of a render id it cannot know yet, and said no (a
    clean refusal): nothing started. The contract's answer is a new id, once."""

    def __init__(self, refusal: BackendError) -> None:
        super().__init__(refusal.message, code=refusal.code, http_status=refusal.http_status)
        self.refusal = refusal


async def start_render(
    client: NemoClient,
    draft: Any,
    *,
    render_id: str,
    session_id: str,
    output: dict[str, str],
    sent_before: bool,
) -> None:
    """Send the start of `render_id` (chosen, and recorded, by the caller) until the
    backend has it. `sent_before`: the id may have reached the backend already (an
    earlier, unclear send), so its duplicate-id refusal means the render exists.
    Returns once the render exists; raises `StartRefusedError` for a clean refusal of an
    id never sent before, and `RenderError` when it is refused otherwise or whether it
    started cannot be told. Records nothing."""
    last: NemoError | None = None
    waits = retrying.RENDER_START.waits()
    while True:
        try:
            await _send_start(client, render_id, draft, session_id=session_id, output=output)
            return
        except SessionNotFoundError as err:
            raise await client.session_lost(await client.session(), err) from err
        except _FINAL:
            raise
        except (BackendError, TransportError) as err:
            last = err
            if not retrying.unclear(err):
                assert isinstance(err, BackendError)
                if sent_before and _duplicate(err):
                    return  # the earlier, unclear send started it
                if not sent_before:
                    raise StartRefusedError(err) from err
                raise RenderError(
                    f"the render could not be started: {err.message}", code=err.code
                ) from err
            sent_before = True
            if await render_known(client, render_id):
                return
        wait = next(waits, None)
        if wait is None:
            break
        log.info("render start unclear (%s); sending it again under the same id", last)
        await client.sleep(wait)
    assert last is not None
    raise RenderUnclearError(
        f"the answer to the render start was lost ({last.message})",
        code=last.code,
        detail={"reason": last.message},
    ) from last


async def _send_start(
    client: NemoClient, render_id: str, draft: Any, *, session_id: str, output: dict[str, str]
) -> None:
    await client.request(
        "POST",
        "/api/render/proxy/lambda",
        json={"id": render_id, "sessionId": session_id, "draft": draft, "output": output},
        idempotent=False,
        what="starting the render",
    )


def not_found(err: NemoError) -> bool:
    """The backend's own JSON answer that it knows no such render (a gateway's page
    with a 404 is a `ServerError`, which says nothing about the render)."""
    return (
        isinstance(err, BackendError)
        and not isinstance(err, ServerError)
        and 404 in (err.code, err.http_status)
    )


async def render_known(client: NemoClient, render_id: str) -> bool | None:
    """Whether the backend knows `render_id`: True, False (its own "not found"), or
    None when the status could not be read (unknown: keep checking)."""
    try:
        await render_status(client, render_id)
    except NemoError as err:
        if not_found(err):
            return False
        log.info("render %s: status unknown (%s)", render_id, err)
        return None
    return True


async def render_status(client: NemoClient, render_id: str) -> RenderStatus:
    data = await client.request(
        "GET",
        f"/api/render/proxy/lambda/{quote(render_id)}",
        idempotent=True,
        max_bytes=SMALL_ANSWER_LIMIT,
        what="reading the render status",
    )
    return parse_render_status(data, render_id=render_id)


async def wait_render(
    client: NemoClient,
    render_id: str,
    *,
    started_at: float,
    on_status: Callable[[RenderStatus], Awaitable[None]] | None = None,
    shortest: float = 30.0,
    give_up_after: float = 15 * 60,
    clock: Callable[[], float] = time.time,
) -> RenderStatus:
    """Poll until the render is done; `started_at` is its wall-clock start (resumable)."""
    poller = AdaptivePoller(shortest=shortest)
    failures = 0
    while True:
        elapsed = clock() - started_at
        if elapsed > give_up_after:
            raise RenderSlowError(
                f"render {render_id} has not finished after {elapsed / 60:.0f} minutes",
                detail={"render_id": render_id, "minutes": round(elapsed / 60)},
            )
        await client.sleep(max(0.0, poller.next_delay() - (elapsed - _last_sample(poller))))
        try:
            status = await render_status(client, render_id)
        except (TransportError, BackendError) as err:
            failures += 1
            if isinstance(err, _FINAL) or failures >= retrying.RENDER_STATUS.attempts:
                raise
            log.info("render status read failed (%s); will retry", err)
            continue
        failures = 0
        if on_status is not None:
            await on_status(status)
        if status.done:
            return status
        poller.observe(clock() - started_at, status.progress)


def _last_sample(poller: AdaptivePoller) -> float:
    return poller.samples[-1][0] if poller.samples else 0.0


# downloads -----------------------------------------------------------------------
@dataclass(frozen=True)
class Download:
    path: Path
    size: int
    sha256: str
    source: str
    used_fallback: bool


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_stem(text: str, fallback: str = "video") -> str:
    stem = _SAFE.sub("-", text).strip("-.")[:60]
    return stem or fallback


def _claim_name(folder: Path, stem: str, suffix: str, tmp: Path) -> Path:
    """Move `tmp` to the first free `stem[-N].suffix` in `folder`; never overwrite."""
    for n in range(1, 10_000):
        candidate = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            os.link(tmp, candidate)
        except FileExistsError:
            continue
        except OSError:
            if candidate.exists():
                continue
            os.replace(tmp, candidate)
            return candidate
        os.unlink(tmp)
        return candidate
    raise RenderError(f"no free file name for {stem}{suffix} in {folder}")


@dataclass
class _Written:
    size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)


async def _fetch(
    client: NemoClient,
    url: str,
    dest: Path,
    *,
    on_progress: Callable[[int, int | None], None] | None,
    hops: int = 0,
    max_bytes: int | None = None,
) -> _Written:
    """Stream `url` into `dest`; the bearer token goes only to the API host.

    Bounded as a whole: after `DOWNLOAD_GRACE` seconds the average speed must stay
    above `MIN_TRANSFER_RATE`, so a link that trickles ends instead of holding the
    export for ever (each read has its own timeout besides)."""
    same_host = urlsplit(url).netloc in ("", urlsplit(client.api_url).netloc)
    headers = await client.authorized_headers() if same_host else {}
    written = _Written()
    started = anyio.current_time()
    with anyio.CancelScope(deadline=started + DOWNLOAD_GRACE) as scope:
        async with client.http.stream(
            "GET", url, headers=headers, timeout=TRANSFER_TIMEOUT, follow_redirects=True
        ) as response:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if response.status_code != 200 or kind in (
                "application/json",
                "text/html",
                "text/plain",
            ):
                # Not the file: only a JSON answer (a link to it) is read, and under a cap.
                if response.status_code == 200 and kind == "application/json":
                    data = await read_answer(
                        response, limit=SMALL_ANSWER_LIMIT, what="reading the download link"
                    )
                    link = data.get("url") if isinstance(data, dict) else None
                    if isinstance(link, str) and link != url and hops < 2:
                        return await _fetch(
                            client,
                            link,
                            dest,
                            on_progress=on_progress,
                            hops=hops + 1,
                            max_bytes=max_bytes,
                        )
                raise RenderError(
                    f"the file answered HTTP {response.status_code} ({kind or 'no type'})"
                )
            total = (
                int(response.headers["content-length"])
                if "content-length" in response.headers
                else None
            )
            # The socket's own chunks as they come: re-chunking them to a fixed size,
            # or a thread hop per write, costs more than the transfer itself.
            with open(dest, "wb") as handle:  # noqa: ASYNC230 - page-cache writes, measured faster
                async with aclosing(decoded_chunks(response)) as chunks:
                    async for chunk in chunks:
                        handle.write(chunk)
                        written.digest.update(chunk)
                        written.size += len(chunk)
                        if max_bytes is not None and written.size > max_bytes:
                            raise RenderError(f"the file is larger than {max_bytes:,} bytes")
                        scope.deadline = started + DOWNLOAD_GRACE + written.size / MIN_TRANSFER_RATE
                        if on_progress is not None:
                            on_progress(written.size, total)
    if scope.cancelled_caught:
        seconds = anyio.current_time() - started
        raise RenderError(
            f"the download slowed below {MIN_TRANSFER_RATE // 1024} KiB/s on average "
            f"({written.size:,} bytes in {seconds:.0f} s) and was stopped"
        )
    if written.size == 0:
        raise RenderError("the file was empty")
    return written


async def download(
    client: NemoClient,
    status: RenderStatus,
    folder: Path,
    *,
    stem: str,
    suffix: str = ".mp4",
    expected_size: int | None = None,
    part_name: str | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    fallback: bool = True,
    max_bytes: int | None = None,
    before_claim: Callable[[], Awaitable[None]] | None = None,
) -> Download:
    """Save the render's file under `folder` with a unique name, trying `output.url`
    first and the documented download endpoint second.

    The bytes go to `part_name` (else a unique `.part` name) and reach their final name
    only when whole: when the render reported a size, exactly that many bytes. A
    connection that ends early, cleanly or not, is a failed download. Without `fallback`
    (a file that is not a render) only `status.url` is tried; `max_bytes` bounds the file.
    `before_claim` (the holder's fence) runs just before the final name is taken: when it
    raises, the part is removed and nothing is named."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - one local call
    attempts = [(status.url, False)] if status.url else []
    if fallback:
        attempts.append((f"{client.api_url}/api/render/proxy/{quote(status.id)}/download", True))
    reasons: list[str] = []
    for url, is_fallback in attempts:
        tmp = folder / (part_name or f".nemo-{uuid.uuid4().hex}.part")
        try:
            written = await _fetch(client, url, tmp, on_progress=on_progress, max_bytes=max_bytes)
            if expected_size is not None and written.size != expected_size:
                raise RenderError(
                    f"the download ended after {written.size:,} of {expected_size:,} bytes"
                )
        except (NemoError, httpx.HTTPError, OSError) as err:
            tmp.unlink(missing_ok=True)
            if isinstance(err, httpx.HTTPError):
                err = translate(err, api_url=url, what="downloading the video")
            elif isinstance(err, OSError):
                err = RenderError(f"the file could not be written ({err.strerror or err})")
            reasons.append(f"{'fallback' if is_fallback else 'output URL'}: {err}")
            continue
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if before_claim is not None:
            try:
                await before_claim()
            except BaseException:
                tmp.unlink(missing_ok=True)  # this holder's own part, named for it alone
                raise
        path = _claim_name(folder, stem, suffix, tmp)
        with contextlib.suppress(OSError):
            os.chmod(path, 0o644)  # the temporary file was private; the video is the user's
        return Download(
            path=path,
            size=written.size,
            sha256=written.digest.hexdigest(),
            source=url,
            used_fallback=is_fallback,
        )
    raise RenderError("the video could not be downloaded (" + "; ".join(reasons) + ")")
