"""Parsers of environment values shared by the settings and the scale settings: each
takes the variable's name and its text, and raises `ConfigError` in one sentence."""

from __future__ import annotations

from nemo_mcp.errors import ConfigError


def positive_float(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds (got {value!r})") from None
    if not number > 0:
        raise ConfigError(f"{name} must be above 0 (got {value!r})")
    return number


def switch(name: str, value: str) -> bool:
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be 1 or 0 (got {value!r})")


__all__ = ["positive_float", "switch"]
