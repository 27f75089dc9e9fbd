"""Local files opened once, then checked: a file swapped for a link to a server file, in any
window between the check and the reading, never sends the server file.

Through the SDK's `Client` against the sandbox, counting its uploads, the bytes it
received and the messages it was sent. The race is made certain, not lucky: a hook swaps
the caller's file for a link to a file outside the folder at the moment named, every try.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.errors import PathNotAllowedError
from nemo_mcp.server.paths import FilePolicy

from mcp_harness import connect, make_settings, text_of
from media_files import image

TRIES = 12
SECRET_TEXT = b"-----BEGIN PRIVATE KEY----- the server's own key\n"


@dataclass
class Race:
    root: Path
    mine: Path
    secret: Path
    swaps: int = 0

    def swap(self) -> None:
        """The caller's file becomes a link to the server file (its bytes parked aside)."""
        os.replace(self.mine, self.mine.with_name("parked"))
        os.symlink(self.secret, self.mine)
        self.swaps += 1

    def restore(self) -> None:
        if self.mine.is_symlink():
            self.mine.unlink()
            os.replace(self.mine.with_name("parked"), self.mine)


def _race(tmp_path: Path, mine: str, secret: str) -> Race:
    root = tmp_path / "project"
    elsewhere = tmp_path / "server"
    root.mkdir()
    elsewhere.mkdir()
    if mine.endswith(".png"):
        return Race(
            root,
            image(root / mine, size=(32, 24)),
            image(elsewhere / secret, size=(640, 480)),  # another size: its bytes are told apart
        )
    (root / mine).write_bytes(b"A lighthouse at dawn. Waves. Gulls.\n")
    (elsewhere / secret).write_bytes(SECRET_TEXT)
    return Race(root, root / mine, elsewhere / secret)


@pytest.fixture
def picture_race(tmp_path: Path) -> Iterator[Race]:
    race = _race(tmp_path, "mine.png", "secret.png")
    yield race
    race.restore()


@pytest.fixture
def script_race(tmp_path: Path) -> Iterator[Race]:
    race = _race(tmp_path, "mine.txt", "id_rsa.txt")
    yield race
    race.restore()


def swap_after_resolving(monkeypatch: pytest.MonkeyPatch, race: Race) -> None:
    """The widest window between check and open: right after the path is resolved."""
    real = Path.resolve

    def resolving(self: Path, strict: bool = False) -> Path:
        resolved = real(self, strict=strict)
        if self == race.mine and not race.mine.is_symlink():
            race.swap()
        return resolved

    monkeypatch.setattr(Path, "resolve", resolving)


def swap_before(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, race: Race) -> None:
    """Swap the caller's file just before `target.name` runs (after the file was opened)."""
    real: Callable[..., Any] = getattr(target, name)

    def swapping(*args: Any, **kwargs: Any) -> Any:
        if not race.mine.is_symlink():
            race.swap()
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, swapping)


def _stats(sandbox: Any) -> dict[str, Any]:
    return dict(sandbox.control.stats())


async def _upload_tries(tmp_path: Path, sandbox: Any, race: Race) -> list[Any]:
    results = []
    async with connect(make_settings(tmp_path, sandbox.url), roots=[race.root]) as session:
        for _ in range(TRIES):
            results.append(await session.call("upload", {"sources": [str(race.mine)]}))
            race.restore()
    return results


async def _script_tries(tmp_path: Path, sandbox: Any, race: Race) -> list[Any]:
    sandbox.control.set(generation_seconds=0.05, generation_cost=1, initial_credits=1000)
    results = []
    async with connect(make_settings(tmp_path, sandbox.url), roots=[race.root]) as session:
        for n in range(TRIES):
            results.append(
                await session.call(
                    "generate",
                    {
                        "message": f"make a video of this script, take {n}",
                        "script_file": str(race.mine),
                    },
                )
            )
            race.restore()
    return results


async def test_an_upload_swapped_between_check_and_open_is_refused_every_time(
    tmp_path: Path, sandbox: Any, picture_race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    swap_after_resolving(monkeypatch, picture_race)
    results = await _upload_tries(tmp_path, sandbox, picture_race)
    assert picture_race.swaps == TRIES
    for result in results:
        assert result.is_error and "changed while it was being opened" in text_of(result)
    stats = _stats(sandbox)
    assert stats["requests"].get("upload", 0) == 0 and stats["upload_bytes"] == 0


async def test_an_upload_swapped_after_it_was_opened_sends_what_was_opened(
    tmp_path: Path, sandbox: Any, picture_race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemo_mcp.server import uploading

    size = picture_race.mine.stat().st_size
    swap_before(monkeypatch, uploading, "probe_all", picture_race)  # probing, converting, sending
    results = await _upload_tries(tmp_path, sandbox, picture_race)
    assert picture_race.swaps == TRIES
    assert all(not r.is_error for r in results), [text_of(r) for r in results if r.is_error]
    stats = _stats(sandbox)
    assert stats["requests"]["upload"] == TRIES
    assert stats["upload_bytes"] == TRIES * size  # the caller's bytes, never the server file's


async def test_a_script_swapped_between_check_and_open_is_refused_every_time(
    tmp_path: Path, sandbox: Any, script_race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    swap_after_resolving(monkeypatch, script_race)
    results = await _script_tries(tmp_path, sandbox, script_race)
    assert script_race.swaps == TRIES
    for result in results:
        assert result.is_error and "changed while it was being opened" in text_of(result)
    assert _stats(sandbox)["messages"] == []


async def test_a_script_swapped_after_it_was_opened_sends_what_was_opened(
    tmp_path: Path, sandbox: Any, script_race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nemo_mcp import documents

    swap_before(monkeypatch, documents, "read_script", script_race)
    results = await _script_tries(tmp_path, sandbox, script_race)
    assert script_race.swaps == TRIES
    assert all(not r.is_error for r in results), [text_of(r) for r in results if r.is_error]
    messages = [m["text"] for m in _stats(sandbox)["messages"]]
    assert len(messages) == TRIES
    assert all("lighthouse" in m and "PRIVATE KEY" not in m for m in messages)


def test_a_served_upload_folder_opens_only_what_it_checked(
    script_race: Race, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The served policy (NEMO_HTTP_UPLOAD_ROOT): the same race, many tries, never a byte
    of the server file."""
    from nemo_mcp.server.paths import open_path

    policy = FilePolicy((script_race.root,), remote=True)
    swap_after_resolving(monkeypatch, script_race)
    for _ in range(TRIES):
        with pytest.raises(PathNotAllowedError, match="changed while it was being opened"):
            open_path(str(script_race.mine), policy, "script").close()
        script_race.restore()
    assert script_race.swaps == TRIES
    monkeypatch.undo()
    opened = open_path(str(script_race.mine), policy, "script")
    with opened.handle:
        assert opened.handle.read() == script_race.mine.read_bytes()


def test_a_folder_that_is_a_link_still_works_and_links_inside_stay_inside(tmp_path: Path) -> None:
    from nemo_mcp.server.paths import open_path

    real = tmp_path / "private" / "tmp"
    real.mkdir(parents=True)
    (real / "clips").mkdir()
    (real / "clips" / "a.txt").write_bytes(b"inside")
    os.symlink(real, tmp_path / "tmp")  # like macOS's /tmp -> /private/tmp
    os.symlink(real / "clips" / "a.txt", real / "alias.txt")  # inside, to inside
    (tmp_path / "outside.txt").write_bytes(b"outside")
    os.symlink(tmp_path / "outside.txt", real / "escape.txt")
    for policy in (FilePolicy((tmp_path / "tmp",)), FilePolicy((tmp_path / "tmp",), remote=True)):
        for name in ("clips/a.txt", "alias.txt"):
            opened = open_path(str(tmp_path / "tmp" / name), policy, "script")
            with opened.handle:
                assert opened.handle.read() == b"inside"
        with pytest.raises(PathNotAllowedError):
            open_path(str(tmp_path / "tmp" / "escape.txt"), policy, "script")
