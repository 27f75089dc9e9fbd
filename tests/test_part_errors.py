"""Errors name the part that failed: a full disk as a full disk, Redis as Redis.

A disk that filled during an edit was "an unexpected problem"; a Redis restarting in the
middle of a call too. Through the SDK's `Client`: the disk is a real, tiny tmpfs (skipped
where one cannot be mounted), Redis a real `redis-server` (tests/hosted_harness.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from nemo_mcp.hosted.local import RedisServer, missing

from hosted_harness import connect as connect_http
from hosted_harness import replicas
from mcp_harness import connect, make_settings, text_of
from processes import until

TOKEN = "dora-secret-token-4242"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs for NEMO_HOME, unmounted afterwards."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip("a tmpfs cannot be mounted here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(folder: Path) -> None:
    """Fill the disk under `folder` to the last byte."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 512, 1):
            while True:
                try:
                    os.write(fd, b"\0" * size)
                except OSError:
                    break
    finally:
        os.close(fd)


async def test_a_disk_that_fills_during_an_edit_is_named_as_a_full_disk(
    tmp_path: Path, sandbox: Any, small_disk: Path
) -> None:
    sandbox.control.set(generation_seconds=0.2)
    settings = make_settings(tmp_path, sandbox.url, home=small_disk / "home")
    async with connect(settings) as session:
        made = await session.call("generate", {"message": "a video of a tram at night"})
        assert not made.is_error, text_of(made)
        _fill(small_disk)
        edit = await session.call("generate", {"message": "add a drum beat"})
    text = text_of(edit)
    assert edit.is_error, text
    assert "The disk is full" in text and str(small_disk / "home") in text, text
    assert "unexpected problem" not in text and "connection" not in text
    assert "Traceback" not in text


async def test_redis_restarting_mid_call_is_named(tmp_path: Path, sandbox: Any) -> None:
    if reason := missing("redis-server"):
        pytest.skip(reason)
    sandbox.control.set(generation_seconds=1.5)
    redis = RedisServer(tmp_path / "redis").start()
    try:
        env = {"NEMO_STATE_URL": redis.url, "NEMO_HTTP_TOKENS": TOKEN, "NEMO_TOOL_TIMEOUT": "10"}
        with replicas(tmp_path / "replicas", sandbox, **env) as running:
            running.count = 1
            url = running.all[0].url
            async with connect_http(url, TOKEN) as client:
                assert not (await client.call_tool("credits", {})).is_error
                answer: list[Any] = []

                async def ask() -> None:
                    answer.append(await client.call_tool("generate", {"message": "a tram"}))

                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(ask)
                    await until(lambda: bool(sandbox.control.stats()["messages"]))
                    redis.kill()  # Redis goes away while the message is being answered
            text = text_of(answer[0])
            assert answer[0].is_error, text
            assert "Redis (this server's shared state) could not be reached" in text, text
            assert "unexpected problem" not in text
            redis.start()  # back: the next call works again
            async with connect_http(url, TOKEN) as client:
                again = await client.call_tool("credits", {})
            assert not again.is_error, text_of(again)
    finally:
        redis.stop()


@pytest.mark.parametrize("wrapped", [True, False])
async def test_a_full_disk_under_any_failure_is_named_by_the_boundary(wrapped: bool) -> None:
    """A download or state file that hits ENOSPC, raised as is or under a stream error."""
    import errno

    from mcp.server.mcpserver.exceptions import ToolError

    from nemo_mcp.errors import StreamBrokenError
    from nemo_mcp.server.boundary import tool_boundary

    @tool_boundary("Saving the video", lambda ctx: None)
    async def work() -> None:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/out/clip.mp4.part")
        except OSError as err:
            if wrapped:
                raise StreamBrokenError("the connection dropped mid-way") from err
            raise

    with pytest.raises(ToolError) as caught:
        await work()
    text = str(caught.value)
    assert "The disk is full: /out/clip.mp4.part could not be written." in text, text
    assert "connection" not in text and "unexpected" not in text
