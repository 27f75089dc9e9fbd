"""The `nemo-mcp` command line: serve (stdio or HTTP), sandbox, demo, doctor."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from nemo_mcp import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemo-mcp",
        description="MCP server for NemoVideo. With no command it serves MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"nemo-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    sandbox = commands.add_parser("sandbox", help="run the local sandbox backend")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8765)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sandbox":
        from nemo_mcp.sandbox.__main__ import run

        return run(host=args.host, port=args.port)
    print("nemo-mcp: the MCP server is not built yet", file=sys.stderr)
    return 2
