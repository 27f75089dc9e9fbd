"""The redaction registry with many users: bounded, and arranged once per change (never
sorted per log line), with every secret still masked however many there are."""

from __future__ import annotations

from collections import OrderedDict

import pytest

from nemo_mcp import redaction


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry of this test's own (the module's is left as it was)."""
    monkeypatch.setattr(redaction, "_known", OrderedDict())
    monkeypatch.setattr(redaction, "_longest", None)
    monkeypatch.setattr(redaction, "_index", None)


def _secret(n: int) -> str:
    return f"user-{n:05d}-secret-token"


def test_the_registry_keeps_the_most_recent_secrets_up_to_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redaction, "MAX_SECRETS", 200)
    for n in range(250):
        redaction.register(_secret(n))
        if n == 100:
            redaction.register(_secret(0))  # registered again: recent again
    assert len(redaction._known) == 200
    assert redaction.redact(f"a {_secret(249)} b") == f"a {redaction.MASK} b"
    assert redaction.redact(f"a {_secret(0)} b") == f"a {redaction.MASK} b"
    assert redaction.redact(f"a {_secret(1)} b") == f"a {_secret(1)} b"  # forgotten


def test_the_registry_is_arranged_once_per_change_not_per_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    built = []
    rebuild = redaction._rebuild

    def counted() -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
        built.append(len(redaction._known))
        return rebuild()

    monkeypatch.setattr(redaction, "_rebuild", counted)
    for n in range(500):
        redaction.register(_secret(n))
    for n in range(200):
        assert redaction.redact(f"line {n} for {_secret(n)}") == f"line {n} for {redaction.MASK}"
    redaction.register(_secret(0))  # known already: nothing to arrange
    redaction.redact("another line")
    redaction.register("a-new-secret-here")
    redaction.redact("and another")
    assert built == [500, 501]


@pytest.mark.parametrize("count", [3, 300], ids=["few", "many"])
def test_every_secret_is_masked_longest_first(count: int) -> None:
    for n in range(count):
        redaction.register(_secret(n))
    redaction.register("abcdef123")
    redaction.register("abcdef12345")  # shares its start with the one above
    text = f"x{_secret(count - 1)}y abcdef12345 abcdef123 {_secret(0)}{_secret(0)} abcdef"
    masked = redaction.redact(text)
    mask = redaction.MASK
    assert masked == f"x{mask}y {mask} {mask} {mask}{mask} abcdef"
