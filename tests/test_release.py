"""Publishing is one command (scripts/release.sh), and CI checks what users install
(scripts/check-install.sh from .ci/run) without ever uploading."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from test_manifests import pyproject

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"


def release(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPTS / "release.sh"), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_release_refuses_to_upload_from_ci() -> None:
    done = release(CI="true")
    assert done.returncode == 1 and "CI never uploads" in done.stderr
    assert "twine" not in done.stdout  # refused before anything was built


def test_release_takes_only_check() -> None:
    done = release("--upload-now")
    assert done.returncode == 2 and "usage: scripts/release.sh [--check]" in done.stderr


def test_ci_checks_the_plain_install_and_never_uploads() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert "scripts/check-install.sh" in ci
    for script in (ROOT / ".ci" / "run", SCRIPTS / "check-install.sh", SCRIPTS / "build-dist.sh"):
        text = script.read_text(encoding="utf-8")
        assert "twine upload" not in text and "release.sh" not in text, script
    check = (SCRIPTS / "check-install.sh").read_text(encoding="utf-8")
    # The wheel, without extras, outside the checkout; the three commands a user runs first.
    assert 'pip" install -q "$(ls "$work"/dist/nemo_mcp-*.whl)"' in check
    assert 'cd "$work"' in check
    for command in ('"$nemo" --version', '"$nemo" doctor', '"$nemo" demo --all'):
        assert command in check


def test_the_test_extra_builds_and_checks() -> None:
    project = pyproject(ROOT / "pyproject.toml")["project"]
    names = {d.split(">")[0].split("=")[0] for d in project["optional-dependencies"]["test"]}
    assert {"build", "twine"} <= names
    assert "docs" not in project["optional-dependencies"]  # part of the plain install now
