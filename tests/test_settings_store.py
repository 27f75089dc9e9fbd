"""Settings resolution (flag, env, default) and the atomic, private state store."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from nemo_mcp.errors import ConfigError
from nemo_mcp.settings import DEFAULT_API_URL, settings_from_env
from nemo_mcp.state_files import (
    AuthRecord,
    SessionRecord,
    StateStore,
    atomic_write,
    backend_key,
    create_once,
    valid_client_id,
)


def test_defaults() -> None:
    settings = settings_from_env({})
    assert settings.api_url == DEFAULT_API_URL
    assert settings.token is None
    assert settings.home == Path.home() / ".config" / "nemovideo"
    assert 0 < settings.tool_timeout < 60


def test_environment_then_flags(tmp_path: Path) -> None:
    env = {
        "NEMO_API_URL": "http://127.0.0.1:9/",
        "NEMO_TOKEN": "nmv_usr_abcdefgh",
        "NEMO_HOME": str(tmp_path),
        "NEMO_UPLOAD_DIRS": os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]),
        "NEMO_TOOL_TIMEOUT": "20",
        "SKILL_SOURCE": "clawhub",
        "NEMO_SKILL": "image-to-video-by-prompt",
    }
    settings = settings_from_env(env, api_url="http://127.0.0.1:10", tool_timeout=None)
    assert settings.api_url == "http://127.0.0.1:10"
    assert settings.token is not None and settings.token.get_secret_value() == "nmv_usr_abcdefgh"
    assert "nmv_usr_abcdefgh" not in repr(settings)
    assert settings.upload_dirs == (tmp_path / "a", tmp_path / "b")
    assert settings.tool_timeout == 20.0
    assert settings.skill_source == "clawhub" and settings.skill == "image-to-video-by-prompt"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEMO_API_URL": "ftp://x"}, "NEMO_API_URL must start with http"),
        ({"NEMO_TOOL_TIMEOUT": "soon"}, "NEMO_TOOL_TIMEOUT must be a number"),
        ({"NEMO_TOOL_TIMEOUT": "0"}, "above 0"),
    ],
)
def test_bad_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_blank_values_are_unset() -> None:
    assert settings_from_env({"NEMO_TOKEN": "  "}).token is None


def test_backend_key_separates_backends() -> None:
    assert backend_key("https://a.example") != backend_key("http://127.0.0.1:8765")
    assert backend_key("https://a.example/") == backend_key("https://a.example")


def test_store_round_trip_and_permissions(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "https://api.test")
    client_id = store.client_id()
    assert valid_client_id(client_id) and store.client_id() == client_id
    assert store.client_id("configured") == "configured"
    store.save_auth(AuthRecord(token="nmv_usr_x" * 3, user_id="anon_1"))
    store.save_session(SessionRecord(session_id="1", task_id="t"))
    fresh = StateStore(tmp_path, "https://api.test")
    assert fresh.load_auth().user_id == "anon_1"  # type: ignore[union-attr]
    assert fresh.load_session().session_id == "1"  # type: ignore[union-attr]
    for path in store.folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "nmv_usr" not in str(fresh.describe())


def test_damaged_state_file_is_moved_aside_and_described(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "https://api.test")
    store.folder.mkdir(parents=True)
    (store.folder / "session.json").write_text('{"session_id": "7741", "task_id": "t9", "us')
    assert store.load_session() is None
    damaged = store.damaged_session
    assert damaged is not None and damaged.problem == "cut short or not JSON"
    assert damaged.salvaged == {"session_id": "7741", "task_id": "t9"}
    assert not (store.folder / "session.json").exists()
    assert damaged.moved_to and Path(damaged.moved_to).read_text().startswith('{"session_id"')


def test_client_id_is_created_once(tmp_path: Path) -> None:
    target = tmp_path / "client_id"
    assert create_once(target, b"first\n", mode=0o644)
    assert not create_once(target, b"second\n", mode=0o644)
    assert target.read_bytes() == b"first\n"
    assert not list(tmp_path.glob(".client_id.*"))


def test_atomic_write_leaves_old_file_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "f.json"
    atomic_write(target, b"old")

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]
