#!/usr/bin/env python3
"""Print the Cursor install link for each server entry in the given MCP manifests.

    cursor://anysphere.cursor-deeplink/mcp/install?name=<name>&config=<base64 of the entry>

With no arguments it prints the links `manifests/README.md` shows, one per line,
so the README can be checked against the manifests it describes. The entry is
encoded the way Cursor's own link generator does (`JSON.stringify`, then base64);
a `+` in the base64 is percent-encoded, since query parsers read a bare `+` as
a space (`/` and `=` are legal in a query value and stay as they are).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
LINK_BASE = "cursor://anysphere.cursor-deeplink/mcp/install"

#: The manifests whose links the README lists, in the README's order.
README_MANIFESTS: tuple[str, ...] = (
    "cursor-mcp.json",
    "cursor-mcp-http.json",
    "profiles/ai-generator-generator.json",
    "profiles/image-to-video-by-prompt.json",
    "profiles/free-video-generator-from-script.json",
    "profiles/meta-video-generation-free.json",
    "profiles/ai-video-generation-online.json",
)


def server_entries(manifest: Path) -> dict[str, dict[str, Any]]:
    """The `mcpServers` mapping of a Cursor/Claude Desktop style manifest."""
    data = json.loads(manifest.read_text(encoding="utf-8"))
    servers = data.get("mcpServers") if isinstance(data, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise ValueError(f"{manifest} has no 'mcpServers' entries")
    return servers


def cursor_link(name: str, entry: dict[str, Any]) -> str:
    """The install link for one server entry."""
    compact = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
    config = base64.b64encode(compact.encode("utf-8")).decode("ascii")
    return f"{LINK_BASE}?name={quote(name, safe='')}&config={quote(config, safe='/=')}"


def links_for(manifest: Path) -> list[str]:
    """One link per server entry in `manifest`."""
    return [cursor_link(name, entry) for name, entry in server_entries(manifest).items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "manifests",
        nargs="*",
        type=Path,
        help="manifest files (default: the ones manifests/README.md lists)",
    )
    args = parser.parse_args(argv)
    paths = args.manifests or [MANIFESTS / rel for rel in README_MANIFESTS]
    try:
        links = [link for path in paths for link in links_for(path)]
    except (OSError, ValueError) as err:
        print(f"cursor-link: {err}", file=sys.stderr)
        return 1
    print("\n".join(links))
    return 0


if __name__ == "__main__":
    sys.exit(main())
