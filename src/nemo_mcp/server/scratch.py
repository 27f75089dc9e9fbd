"""Private scratch folders that go with the call that made them, however it ends.

A call's budget can run out mid-way (its scope is cancelled): cleaning up in a plain
`finally` that awaits a worker thread would then be cancelled too, and the folder (a
clip, or private copies of a user's files) left behind. The removal here is shielded.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio


@asynccontextmanager
async def scratch_folder(prefix: str) -> AsyncIterator[Path]:
    """A new folder only this process's user can read, removed on the way out."""
    folder = Path(await anyio.to_thread.run_sync(lambda: tempfile.mkdtemp(prefix=prefix)))
    try:
        yield folder
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(lambda: shutil.rmtree(folder, ignore_errors=True))


__all__ = ["scratch_folder"]
