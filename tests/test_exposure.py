"""The exposure decision (bind address x tokens x settings) and the path rules it implies.

Pure: settings in, an `Exposure` or a refusal out; a path and a `FilePolicy` in,
a checked path or a refusal out. The served path rules are checked as a
remote caller meets them, with files that exist and files that do not.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from nemo_mcp.errors import ConfigError, InputError, PathNotAllowedError
from nemo_mcp.server.exposure import Exposure, decide, identity_key, is_loopback
from nemo_mcp.server.paths import FilePolicy, check_path, classify
from nemo_mcp.settings import Settings, settings_from_env

from mcp_harness import connect, make_settings, text_of
from media_files import sample_mp4

TWO = "alice-secret-token-0123,bob-secret-token-4567"


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    made = {name: tmp_path / name for name in ("home", "out", "uploads")}
    for folder in made.values():
        folder.mkdir()
    return made


def _settings(folders: dict[str, Path], **env: str) -> Settings:
    base = {"NEMO_HOME": str(folders["home"]), "NEMO_OUTPUT_DIR": str(folders["out"])}
    return settings_from_env({**base, **env})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_addresses(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "my-host.example"])
def test_other_addresses(host: str) -> None:
    assert not is_loopback(host)


#: (id, http, host, environment, served, users, shared)
DECISIONS: list[tuple[str, bool, str, dict[str, str], bool, int, bool]] = [
    ("stdio", False, "127.0.0.1", {}, False, 0, False),
    ("stdio-ignores-tokens", False, "0.0.0.0", {"NEMO_HTTP_TOKENS": TWO}, False, 0, False),
    (
        "stdio-ignores-token-and-tokens",
        False,
        "127.0.0.1",
        {"NEMO_HTTP_TOKENS": TWO, "NEMO_TOKEN": "nmv_usr_x"},
        False,
        0,
        False,
    ),
    ("loopback", True, "127.0.0.1", {}, False, 0, False),
    ("localhost", True, "localhost", {}, False, 0, False),
    ("ipv6-loopback", True, "::1", {}, False, 0, False),
    ("loopback-token", True, "127.0.0.1", {"NEMO_TOKEN": "nmv_usr_x"}, False, 0, False),
    (
        "loopback-ignores-shared",
        True,
        "127.0.0.1",
        {"NEMO_HTTP_SHARED_ACCOUNT": "1"},
        False,
        0,
        False,
    ),
    ("loopback-tokens", True, "127.0.0.1", {"NEMO_HTTP_TOKENS": TWO}, True, 2, False),
    ("network-tokens", True, "0.0.0.0", {"NEMO_HTTP_TOKENS": TWO}, True, 2, False),
    ("one-token", True, "0.0.0.0", {"NEMO_HTTP_TOKENS": "a-token-123"}, True, 1, False),
    ("repeated-token", True, "0.0.0.0", {"NEMO_HTTP_TOKENS": "tok-1,tok-1"}, True, 1, False),
    (
        "one-user-with-token",
        True,
        "0.0.0.0",
        {"NEMO_HTTP_TOKENS": "a-token-123", "NEMO_TOKEN": "nmv_usr_x"},
        True,
        1,
        False,
    ),
    (
        "shared-account",
        True,
        "0.0.0.0",
        {"NEMO_HTTP_TOKENS": TWO, "NEMO_TOKEN": "nmv_usr_x", "NEMO_HTTP_SHARED_ACCOUNT": "yes"},
        True,
        2,
        True,
    ),
    (
        "shared-off",
        True,
        "127.0.0.1",
        {"NEMO_HTTP_TOKENS": TWO, "NEMO_HTTP_SHARED_ACCOUNT": "0"},
        True,
        2,
        False,
    ),
]


@pytest.mark.parametrize(
    ("http", "host", "env", "served", "users", "shared"),
    [pytest.param(*case[1:], id=case[0]) for case in DECISIONS],
)
def test_decision_table(
    folders: dict[str, Path],
    http: bool,
    host: str,
    env: dict[str, str],
    served: bool,
    users: int,
    shared: bool,
) -> None:
    exposure = decide(_settings(folders, **env), http=http, host=host)
    assert (exposure.served, exposure.users, exposure.shared_account) == (served, users, shared)
    assert exposure.upload_root is None
    assert ("served" if served else "local") in exposure.describe()


#: (id, host, environment, words the one-sentence refusal must contain)
REFUSALS: list[tuple[str, str, dict[str, str], tuple[str, ...]]] = [
    ("network-without-tokens", "0.0.0.0", {}, ("NEMO_HTTP_TOKENS", "127.0.0.1")),
    ("lan-without-tokens", "192.168.1.5", {}, ("NEMO_HTTP_TOKENS",)),
    ("hostname-without-tokens", "my-host.example", {}, ("NEMO_HTTP_TOKENS",)),
    (
        "token-across-users",
        "127.0.0.1",
        {"NEMO_HTTP_TOKENS": TWO, "NEMO_TOKEN": "nmv_usr_x"},
        ("NEMO_TOKEN is one NemoVideo account", "2 users", "NEMO_HTTP_SHARED_ACCOUNT=1"),
    ),
    (
        "token-across-users-network",
        "0.0.0.0",
        {"NEMO_HTTP_TOKENS": TWO, "NEMO_TOKEN": "nmv_usr_x", "NEMO_HTTP_SHARED_ACCOUNT": "0"},
        ("unset NEMO_TOKEN",),
    ),
    (
        "shared-without-token",
        "0.0.0.0",
        {"NEMO_HTTP_TOKENS": TWO, "NEMO_HTTP_SHARED_ACCOUNT": "1"},
        ("NEMO_TOKEN is not set",),
    ),
]


@pytest.mark.parametrize(
    ("host", "env", "words"), [pytest.param(*case[1:], id=case[0]) for case in REFUSALS]
)
def test_refusals(
    folders: dict[str, Path], host: str, env: dict[str, str], words: tuple[str, ...]
) -> None:
    with pytest.raises(ConfigError) as refused:
        decide(_settings(folders, **env), http=True, host=host)
    message = refused.value.message
    assert all(word in message for word in words), message
    assert "nmv_usr_x" not in message and "\n" not in message


def test_shared_switch_must_be_a_switch(folders: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="NEMO_HTTP_SHARED_ACCOUNT must be 1 or 0"):
        _settings(folders, NEMO_HTTP_SHARED_ACCOUNT="maybe")


@pytest.mark.parametrize(
    ("where", "words"),
    [
        (lambda f: f["uploads"], None),
        (lambda f: Path("srv/uploads"), "absolute"),
        (lambda f: f["uploads"] / "missing", "is not a folder"),
        (lambda f: f["out"], "overlaps NEMO_OUTPUT_DIR"),
        (lambda f: f["out"] / "inside", "overlaps NEMO_OUTPUT_DIR"),
        (lambda f: f["out"].parent, "overlaps NEMO_OUTPUT_DIR"),
        (lambda f: f["home"] / "inside", "overlaps NEMO_HOME"),
        (lambda f: f["uploads"] / "link-to-out", "overlaps NEMO_OUTPUT_DIR"),
    ],
    ids=["apart", "relative", "missing", "same", "inside-out", "holds-out", "inside-home", "link"],
)
def test_upload_root_rules(folders: dict[str, Path], where: Any, words: str | None) -> None:
    (folders["out"] / "inside").mkdir()
    (folders["home"] / "inside").mkdir()
    os.symlink(folders["out"], folders["uploads"] / "link-to-out")
    settings = _settings(folders, NEMO_HTTP_TOKENS=TWO, NEMO_HTTP_UPLOAD_ROOT=str(where(folders)))
    assert decide(settings, http=False).upload_root is None  # local: never looked at
    if words is None:
        assert decide(settings, http=True).upload_root == folders["uploads"].resolve()
        return
    with pytest.raises(ConfigError, match=words):
        decide(settings, http=True)


def test_each_user_gets_their_own_everything(folders: dict[str, Path]) -> None:
    settings = _settings(
        folders,
        NEMO_HTTP_TOKENS=TWO,
        NEMO_HTTP_UPLOAD_ROOT=str(folders["uploads"]),
        NEMO_CLIENT_ID="operator-client",
    )
    exposure = decide(settings, http=True, host="0.0.0.0")
    keys = [identity_key(t) for t in TWO.split(",")]
    users = [exposure.user_settings(settings, key) for key in keys]
    for key, user in zip(keys, users, strict=True):
        assert user.home == folders["home"] / "http-users" / key
        assert user.output_dir == folders["out"] / key
        assert user.upload_dirs == (folders["uploads"].resolve() / key,)
        assert user.client_id is None and user.token is None
        assert key not in TWO  # a hash, never the token
    places = [p for u in users for p in (u.home, u.output_dir, *u.upload_dirs)]
    for n, a in enumerate(places):
        for b in places[n + 1 :]:
            assert a != b and a not in b.parents and b not in a.parents, (a, b)
    with pytest.raises(InputError):
        exposure.user_settings(settings, None)  # a served caller is never the operator
    assert decide(settings, http=False).user_settings(settings, None) is settings


@pytest.mark.parametrize(
    ("tokens", "shared", "keeps"),
    [("a-token-123", "0", True), (TWO, "1", True)],
    ids=["only-user", "shared"],
)
def test_nemo_token_goes_to_users_only_when_theirs(
    folders: dict[str, Path], tokens: str, shared: str, keeps: bool
) -> None:
    settings = _settings(
        folders, NEMO_HTTP_TOKENS=tokens, NEMO_TOKEN="nmv_usr_x", NEMO_HTTP_SHARED_ACCOUNT=shared
    )
    exposure = decide(settings, http=True)
    assert (exposure.user_settings(settings, "k").token is not None) is keeps
    # Built by hand, past `decide`, several users never inherit it.
    several = Exposure(served=True, how="test", users=2)
    assert several.user_settings(settings, "k").token is None


def test_who_is_calling(folders: dict[str, Path]) -> None:
    served = decide(_settings(folders, NEMO_HTTP_TOKENS=TWO), http=True)
    assert served.user_key({"authorization": "Bearer alice-secret-token-0123"}) == identity_key(
        "alice-secret-token-0123"
    )
    with pytest.raises(InputError):
        served.user_key({})
    with pytest.raises(InputError):
        served.user_key(None)
    local = decide(_settings(folders, NEMO_HTTP_TOKENS=TWO), http=False)
    assert local.user_key({"authorization": "Bearer alice-secret-token-0123"}) is None


def test_roots_count_only_locally(folders: dict[str, Path]) -> None:
    settings = _settings(folders, NEMO_HTTP_TOKENS=TWO, NEMO_UPLOAD_DIRS=str(folders["uploads"]))
    local = decide(settings, http=False)
    assert local.file_policy(settings, [Path("/")]) == FilePolicy((Path("/"),))
    assert local.file_policy(settings, None) == FilePolicy((folders["uploads"],))
    served = decide(settings, http=True)
    user = served.user_settings(settings, "k")
    assert served.file_policy(user, [Path("/")]) == FilePolicy((), remote=True)
    assert served.file_policy(user, None) == FilePolicy((), remote=True)


# Path rules for a remote caller ---------------------------------------------------------
@pytest.fixture
def disk(tmp_path: Path) -> dict[str, Path]:
    """Two users' upload folders and the operator's files, as the server's disk holds them."""
    places = {
        "mine": tmp_path / "uploads" / "me",
        "theirs": tmp_path / "uploads" / "them",
        "operator": tmp_path / "operator",
    }
    for folder in places.values():
        folder.mkdir(parents=True)
    for folder in places.values():
        shutil.copyfile(sample_mp4(), folder / "clip.mp4")
    (places["mine"] / "script.txt").write_text("a script\n")
    os.symlink(places["theirs"] / "clip.mp4", places["mine"] / "link.mp4")
    os.symlink(places["theirs"], places["mine"] / "their-folder")
    (places["mine"] / "folder").mkdir()
    os.mkfifo(places["mine"] / "pipe")
    return places


#: (id, path from the disk, words the refusal must contain; None: allowed)
REMOTE: list[tuple[str, Any, str | None]] = [
    ("own-file", lambda d: d["mine"] / "clip.mp4", None),
    ("own-script", lambda d: d["mine"] / "script.txt", None),
    ("own-dotted", lambda d: f"{d['mine']}/./folder/../clip.mp4", None),
    ("their-file", lambda d: d["theirs"] / "clip.mp4", "not in your upload folder"),
    ("traversal", lambda d: f"{d['mine']}/../them/clip.mp4", "not in your upload folder"),
    ("operator-file", lambda d: d["operator"] / "clip.mp4", "not in your upload folder"),
    ("system-file", lambda d: "/etc/passwd", "not in your upload folder"),
    ("link-out", lambda d: d["mine"] / "link.mp4", "link pointing elsewhere"),
    ("linked-folder", lambda d: d["mine"] / "their-folder" / "clip.mp4", "link pointing elsewhere"),
    ("missing-own", lambda d: d["mine"] / "nothing.mp4", "no such file in your upload folder"),
    ("missing-elsewhere", lambda d: d["theirs"] / "nothing.mp4", "not in your upload folder"),
    ("relative", lambda d: "clip.mp4", "absolute path in your upload folder"),
    ("home", lambda d: "~/clip.mp4", "absolute path in your upload folder"),
    ("windows", lambda d: "C:\\Users\\me\\clip.mp4", "absolute path in your upload folder"),
    ("folder", lambda d: d["mine"] / "folder", "a folder"),
    ("pipe", lambda d: d["mine"] / "pipe", "not a regular file"),
    ("nul", lambda d: f"{d['mine']}/clip\x00.mp4", "NUL"),
]


@pytest.mark.parametrize(("where", "words"), [pytest.param(w, m, id=i) for i, w, m in REMOTE])
def test_remote_caller_path_rules(disk: dict[str, Path], where: Any, words: str | None) -> None:
    text = str(where(disk))
    policy = FilePolicy((disk["mine"],), remote=True)
    if words is None:
        assert check_path(text, policy).parent == disk["mine"]
        return
    with pytest.raises(PathNotAllowedError) as refused:
        check_path(text, policy)
    assert words in refused.value.message, refused.value.message


def test_a_refusal_never_tells_whether_a_file_exists(disk: dict[str, Path]) -> None:
    policy = FilePolicy((disk["mine"],), remote=True)
    said = []
    for name in ("clip.mp4", "nothing.mp4"):
        path = str(disk["theirs"] / name)
        with pytest.raises(PathNotAllowedError) as refused:
            check_path(path, policy)
        said.append(refused.value.message.replace(path, "<path>"))
    assert said[0] == said[1]


@pytest.mark.parametrize("kind", ["upload", "script"])
def test_without_an_upload_folder_nothing_on_disk_is_read(disk: dict[str, Path], kind: Any) -> None:
    policy = FilePolicy((), remote=True)
    instead = "give an http(s) URL" if kind == "upload" else "paste the script's text"
    for text in (str(disk["operator"] / "clip.mp4"), "/etc/passwd", "clip.mp4", "/no/such"):
        with pytest.raises(PathNotAllowedError) as refused:
            check_path(text, policy, kind)
        message = refused.value.message
        assert "reads no files from its own disk" in message and instead in message, message
        assert message.count(".") <= 2  # one plain sentence (the dots of a path aside)


def test_remote_refusals_say_what_to_do(disk: dict[str, Path]) -> None:
    policy = FilePolicy((disk["mine"],), remote=True)
    for kind, instead in (("upload", "give an http(s) URL"), ("script", "paste the script's")):
        with pytest.raises(PathNotAllowedError) as refused:
            check_path(str(disk["theirs"] / "clip.mp4"), policy, kind)  # type: ignore[arg-type]
        assert instead in refused.value.message
        assert f"put the file in your upload folder {disk['mine']}{os.sep}" in refused.value.message
        assert (
            "roots" not in refused.value.message and "NEMO_UPLOAD_DIRS" not in refused.value.message
        )


def test_file_urls_from_a_remote_caller_get_the_same_refusal(disk: dict[str, Path]) -> None:
    policy = FilePolicy((), remote=True)
    with pytest.raises(PathNotAllowedError, match="give an http\\(s\\) URL"):
        classify([(disk["operator"] / "clip.mp4").as_uri()], policy)
    assert classify(["https://example.com/a.mp4"], policy)[0].url == "https://example.com/a.mp4"
    with pytest.raises(InputError, match="not a file:// URL"):  # locally: give the path
        classify([(disk["operator"] / "clip.mp4").as_uri()], FilePolicy((disk["operator"],)))


async def test_locally_the_clients_roots_still_decide(
    tmp_path: Path, sandbox: Any, disk: dict[str, Path]
) -> None:
    """The same `file:///` root that a served server ignores opens the disk to the local user
    (the person at the keyboard may upload anything they can read)."""
    settings = make_settings(tmp_path, sandbox.url)
    async with connect(settings, roots=[Path("/")]) as session:
        result = await session.call("upload", {"sources": [str(disk["operator"] / "clip.mp4")]})
    assert not result.is_error, text_of(result)
    assert sandbox.control.stats()["requests"]["upload"] == 1
