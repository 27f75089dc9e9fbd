"""The `nemo-mcp` command line: serve (stdio or HTTP), sandbox, demo, doctor.

Settings are resolved here, once: flag, then environment, then default.
Logs go to stderr (stdout belongs to the MCP protocol over stdio), through a
filter that removes tokens.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from nemo_mcp import __version__
from nemo_mcp.identity import SKILLS
from nemo_mcp.sandbox import options as sandbox_options

#: The skill `nemo-mcp demo` shows without `--skill` (nemo_mcp.demo.DEFAULT_SKILL).
DEFAULT_DEMO_SKILL = "ai-generator-generator"

SERVE_EPILOG = (
    "It talks to the NemoVideo API at NEMO_API_URL. To work offline, start nemo-mcp sandbox "
    "and set NEMO_API_URL to its address, for example "
    f"NEMO_API_URL=http://127.0.0.1:{sandbox_options.DEFAULT_PORT}."
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nemo-mcp",
        description="MCP server for NemoVideo. With no command it serves MCP over stdio.",
    )
    parser.add_argument("--version", action="version", version=f"nemo-mcp {__version__}")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default) or ERROR")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="serve MCP (stdio by default, or --http)", epilog=SERVE_EPILOG
    )
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")

    sandbox = commands.add_parser(
        "sandbox",
        help="run the local sandbox backend",
        description=sandbox_options.DESCRIPTION,
        epilog=sandbox_options.EPILOG,
    )
    sandbox_options.add_arguments(sandbox)

    demo = commands.add_parser("demo", help="the whole job offline, against the sandbox")
    demo.add_argument(
        "--output-dir", default=None, help="where to save the MP4s (default ./nemo-demo)"
    )
    which = demo.add_mutually_exclusive_group()
    which.add_argument(
        "--skill",
        default=None,
        choices=list(SKILLS),
        help=f"the skill to show (default {DEFAULT_DEMO_SKILL}: text prompts)",
    )
    which.add_argument("--all", action="store_true", help="show the five skills in turn")
    demo.add_argument(
        "--handoff",
        action="store_true",
        help="also hand the timeline to editors: a folder per format (otio for Resolve, "
        "fcpxml for Final Cut Pro, xml for Premiere), no render (needs the handoff extra)",
    )

    doctor = commands.add_parser(
        "doctor", help="check settings, exposure, state folder, token and backend"
    )
    doctor.add_argument(
        "--http",
        action="store_true",
        default=None,
        help="check as for serve --http (implied by --host or NEMO_HTTP_TOKENS)",
    )
    doctor.add_argument("--host", default=None, help="the HTTP bind address to check")
    return parser


def setup_logging(level: str | None) -> None:
    from nemo_mcp.logformat import formatter
    from nemo_mcp.redaction import RedactingFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(formatter(os.environ.get("NEMO_LOG_FORMAT")))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("NEMO_LOG_LEVEL") or "WARNING").upper())


def _serve(args: argparse.Namespace) -> int:
    from nemo_mcp.errors import ConfigError
    from nemo_mcp.server import create_server
    from nemo_mcp.server.exposure import decide
    from nemo_mcp.settings import settings_from_env

    http = bool(getattr(args, "http", False))
    host = str(getattr(args, "host", "127.0.0.1"))
    try:
        settings = settings_from_env()
        exposure = decide(settings, http=http, host=host)
        server = create_server(settings, exposure=exposure)
    except ConfigError as err:
        print(f"nemo-mcp: {err}", file=sys.stderr)
        return 2
    if http:
        from nemo_mcp.server.http import serve_http

        return serve_http(
            server,
            exposure,
            settings.http_tokens,
            host=host,
            port=args.port,
            public_url=settings.public_url,
        )
    server.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if args.command in (None, "serve"):
        try:
            return _serve(args)
        except KeyboardInterrupt:
            return 130
    if args.command == "sandbox":
        from nemo_mcp.sandbox.__main__ import run_from_args

        return run_from_args(args, parser)
    if args.command == "demo":
        from nemo_mcp.demo import main as demo_main

        return demo_main(
            output_dir=args.output_dir, skill=args.skill, every=args.all, handoff=args.handoff
        )
    if args.command == "doctor":
        from nemo_mcp.doctor import main as doctor_main

        return doctor_main(http=args.http, host=args.host)
    return 2
