"""Logging is configured once, at the entry point: building servers leaves it alone."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nemo_mcp import cli
from nemo_mcp.redaction import RedactingFilter
from nemo_mcp.server import create_server

from mcp_harness import make_settings


@contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger with no handlers (as in a process that configured none; pytest's
    own are set aside meanwhile), restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = []
    root.setLevel(logging.ERROR)
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def test_two_servers_leave_a_bare_root_logger_as_it_was(tmp_path: Path) -> None:
    with bare_root() as root:
        for _ in range(2):
            create_server(make_settings(tmp_path, "http://backend.test"))
        assert root.handlers == []
        assert root.level == logging.ERROR


def test_servers_leave_the_handlers_there_are_as_they_were(tmp_path: Path) -> None:
    mine = logging.StreamHandler()
    with bare_root() as root:
        root.addHandler(mine)
        for _ in range(2):
            create_server(make_settings(tmp_path, "http://backend.test"))
        assert root.handlers == [mine]
    assert mine.filters == []  # the embedding program's handler, untouched


def test_the_command_line_logs_through_one_redacting_handler(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with bare_root() as root:
        for _ in range(2):  # configuring again replaces, never adds
            cli.setup_logging("info")
        [handler] = root.handlers
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        assert root.level == logging.INFO
        logging.getLogger("nemo_mcp.test").info("sent Bearer nmv_usr_abcdef123456 upstream")
    err = capsys.readouterr().err
    assert "sent [redacted] upstream" in err and "nmv_usr_" not in err
