"""The layers `lint-imports` keeps (pyproject.toml) place every module of the package."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "nemo_mcp"
#: Packages whose modules sit in different layers: they are containers, not a place.
CONTAINERS = {"nemo_mcp", "nemo_mcp.server"}


def modules() -> set[str]:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


def layers() -> list[set[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    [contract] = [c for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"]
    return [set(re.split(r"\s*[|:]\s*", layer.strip())) for layer in contract["layers"]]


def test_every_module_has_a_layer() -> None:
    placed = set().union(*layers())
    unplaced = {
        module
        for module in modules()
        if not any(module == p or module.startswith(p + ".") for p in placed)
    }
    assert unplaced == CONTAINERS


def test_each_module_is_in_one_layer() -> None:
    named = [name for layer in layers() for name in layer]
    assert len(named) == len(set(named))
    assert all(name in modules() for name in named)  # no layer names a module that is gone
