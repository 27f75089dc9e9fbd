"""`python -m nemo_mcp.sandbox`: serve the sandbox backend until Ctrl-C.

    python -m nemo_mcp.sandbox --port 8765 --set envelope=success --set render_seconds=10 \\
        --fault "slow;route=credits;times=none;delay=2"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import uvicorn

from nemo_mcp.errors import ConfigError
from nemo_mcp.listening import bind, url_of
from nemo_mcp.sandbox.app import create_app
from nemo_mcp.sandbox.config import SandboxConfig
from nemo_mcp.sandbox.options import DESCRIPTION, EPILOG, add_arguments, config_from


def run(host: str = "127.0.0.1", port: int = 8765, config: SandboxConfig | None = None) -> int:
    """Serve the sandbox on `host:port` (0: any free port) until interrupted; the exit code."""
    try:
        sock = bind(host, port)
    except ConfigError as err:
        print(f"nemo-mcp sandbox: {err}", file=sys.stderr)
        return 1
    print(f"NemoVideo sandbox backend at {url_of(sock)} (Ctrl-C to stop)", file=sys.stderr)
    server = uvicorn.Server(
        uvicorn.Config(create_app(config), log_level="info", lifespan="on", ws="none")
    )
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The same options as `nemo-mcp sandbox` (defined once, in `nemo_mcp.sandbox.options`)."""
    parser = argparse.ArgumentParser(
        prog="python -m nemo_mcp.sandbox", description=DESCRIPTION, epilog=EPILOG
    )
    add_arguments(parser)
    return parser


def run_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Serve with the options `options.add_arguments` parsed; a bad option exits with why."""
    try:
        config = config_from(args.settings, args.faults)
    except ValueError as err:
        parser.error(str(err))
    return run(host=args.host, port=args.port, config=config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    return run_from_args(parser.parse_args(argv), parser)


if __name__ == "__main__":
    sys.exit(main())
