"""The sandbox's command-line options, shared by `nemo-mcp sandbox` and
`python -m nemo_mcp.sandbox`: defined here, below both, so neither imports the other."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nemo_mcp.sandbox.config import SandboxConfig

DESCRIPTION = "A local NemoVideo backend that speaks the whole contract, with fault switches."
DEFAULT_PORT = 8765
#: How a server meets a sandbox: said in the sandbox's help (and `serve`'s).
EPILOG = (
    "Point nemo-mcp at it with NEMO_API_URL, for example "
    f"NEMO_API_URL=http://127.0.0.1:{DEFAULT_PORT} nemo-mcp serve "
    "(NEMO_WEB_URL too, for browser links that stay on this computer)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sandbox's options, added to `parser`."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"the port to listen on, 0 for any free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config field, e.g. envelope=success or render_seconds=10 (repeatable)",
    )
    parser.add_argument(
        "--fault",
        dest="faults",
        action="append",
        default=[],
        metavar="SPEC",
        help='a fault to queue, e.g. "rate_limited;route=credits;times=2;retry_after=3"',
    )


def config_from(settings: Sequence[str], faults: Sequence[str]) -> SandboxConfig:
    """The sandbox's configuration from `--set` and `--fault` values; ValueError says which
    one is wrong."""
    # Loaded here, not above: `nemo-mcp --help` reads these options and nothing more.
    from nemo_mcp.sandbox.config import SandboxConfig, parse_assignments, parse_fault_spec

    changes: dict[str, object] = {}
    for item in settings:
        changes.update(parse_assignments(item, separator="\0"))
    config = SandboxConfig().merged(changes)
    config.faults = [parse_fault_spec(spec) for spec in faults]
    return config
