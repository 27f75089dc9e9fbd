"""The sandbox's own temporary folder: uploaded bytes kept for renders, and rendered MP4s.

Uploads are kept while they stream in, within a per-file and a total cap; a file over either
is only hashed and counted (renders show a stand-in for it). Rendered files are named by
their composition's digest, so the same timeline is drawn once; at most `RENDER_FILES` of
them (and `RENDER_BYTES`) are kept, the least recently used going first unless a live render
still serves it. The folder is made on first use and removed by `close()` (the app's
shutdown), and at the latest when the interpreter exits.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import weakref
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

RENDER_FILES = 64
RENDER_BYTES = 512 * 1000 * 1000


@dataclass
class Kept:
    """An upload's bytes on disk, and the facts its probe found (empty: not media we read)."""

    path: Path
    size: int
    facts: dict[str, Any] = field(default_factory=dict)
    usable: bool = True


class Keeper:
    """Writes one upload as it streams in; gives up (and deletes) once over its allowance."""

    def __init__(self, path: Path, allowance: int, release: Any) -> None:
        self.path = path
        self.allowance = allowance
        self.size = 0
        self._release = release
        self._file: BinaryIO | None = path.open("wb") if allowance > 0 else None

    @property
    def keeping(self) -> bool:
        return self._file is not None

    def write(self, data: bytes) -> None:
        if self._file is None:
            return
        self.size += len(data)
        if self.size > self.allowance:
            self.abandon()
            return
        self._file.write(data)

    def finish(self) -> Path | None:
        """The written file, or None when it was not kept."""
        if self._file is None:
            return None
        self._file.close()
        self._file = None
        self._release(self.allowance)
        return self.path

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            self._release(self.allowance)
        self.path.unlink(missing_ok=True)


class SandboxFiles:
    """Kept uploads (by SHA-256) and rendered files (by composition digest)."""

    def __init__(self, render_files: int = RENDER_FILES, render_bytes: int = RENDER_BYTES) -> None:
        self.render_files, self.render_bytes = render_files, render_bytes
        self._root: Path | None = None
        self._cleanup: weakref.finalize[Any, SandboxFiles] | None = None
        self.uploads: dict[str, Kept] = {}
        self.kept_bytes = 0
        self.reserved = 0  # allowances of uploads still streaming in
        self.renders: OrderedDict[str, Path] = OrderedDict()

    @property
    def root(self) -> Path:
        if self._root is None:
            root = Path(tempfile.mkdtemp(prefix="nemo-sandbox-"))
            (root / "uploads").mkdir()
            (root / "renders").mkdir()
            (root / "work").mkdir()
            self._root = root
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(root), True)
        return self._root

    def scratch(self, suffix: str) -> Path:
        """A fresh path in the work folder (nothing is created)."""
        return self.root / "work" / f"{secrets.token_hex(8)}{suffix}"

    # uploads ---------------------------------------------------------------------------
    def keeper(self, ext: str, per_file: int, total: int) -> Keeper:
        """A writer for one incoming upload, allowed what the caps leave."""
        allowance = max(0, min(per_file, total - self.kept_bytes - self.reserved))
        self.reserved += allowance

        def release(amount: int) -> None:
            self.reserved -= amount

        path = self.scratch(f".{ext or 'bin'}") if allowance else Path(os.devnull)
        return Keeper(path, allowance, release)

    def keep(self, written: Path, sha256: str, ext: str) -> Kept:
        """Adopt a finished upload under its digest (a second copy of the same bytes is
        dropped)."""
        known = self.uploads.get(sha256)
        if known is not None:
            written.unlink(missing_ok=True)
            return known
        path = self.root / "uploads" / f"{sha256}.{ext or 'bin'}"
        os.replace(written, path)
        kept = Kept(path, path.stat().st_size)
        self.uploads[sha256] = kept
        self.kept_bytes += kept.size
        return kept

    def upload(self, sha256: object) -> Kept | None:
        kept = self.uploads.get(sha256) if isinstance(sha256, str) else None
        return kept if kept is not None and kept.usable else None

    def clear_uploads(self) -> None:
        for kept in self.uploads.values():
            kept.path.unlink(missing_ok=True)
        self.uploads.clear()
        self.kept_bytes = 0

    # renders ---------------------------------------------------------------------------
    def cached_render(self, key: str) -> Path | None:
        path = self.renders.get(key)
        if path is None or not path.is_file():
            self.renders.pop(key, None)
            return None
        self.renders.move_to_end(key)
        return path

    def add_render(self, key: str, produced: Path, in_use: Collection[Path] = ()) -> Path:
        """Adopt a rendered file under `key`; evict the oldest beyond the caps (never one in
        `in_use`)."""
        path = self.root / "renders" / f"{key}.mp4"
        os.replace(produced, path)
        self.renders[key] = path
        self.renders.move_to_end(key)
        total = sum(p.stat().st_size for p in self.renders.values() if p.is_file())
        for old in list(self.renders):
            if len(self.renders) <= self.render_files and total <= self.render_bytes:
                break
            old_path = self.renders[old]
            if old == key or old_path in in_use:
                continue
            total -= old_path.stat().st_size if old_path.is_file() else 0
            old_path.unlink(missing_ok=True)
            del self.renders[old]
        return path

    def close(self) -> None:
        """Remove the folder and everything in it."""
        if self._cleanup is not None:
            self._cleanup()
        self._root = None
        self._cleanup = None
        self.uploads.clear()
        self.renders.clear()
        self.kept_bytes = 0


__all__ = ["RENDER_BYTES", "RENDER_FILES", "Keeper", "Kept", "SandboxFiles"]
