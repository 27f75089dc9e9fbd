"""The server's and the tools' icons: small inline SVGs, as data URIs (nothing to fetch)."""

from __future__ import annotations

import base64

from mcp_types import Icon

_FRAME = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" '
    'stroke="#6d4aff" stroke-width="2" stroke-linecap="round" stroke-linejoin="round">{}</svg>'
)

#: One glyph per icon: 24x24 paths in one stroke colour.
GLYPHS = {
    # A clapperboard: the server.
    "server": '<rect x="3" y="8" width="18" height="13" rx="2"/>'
    '<path d="M3 8l2-5 16 3-1 2M8 4l2 3.5M13 5l2 3.5"/>',
    # A play button with a spark: make or edit.
    "generate": '<rect x="3" y="5" width="18" height="14" rx="2"/><path d="M10 9l5 3-5 3z"/>'
    '<path d="M19 2v3M17.5 3.5h3"/>',
    # An arrow up into a tray.
    "upload": '<path d="M12 15V4M7 9l5-5 5 5"/><path d="M4 15v4a1 1 0 0 0 1 1h14a1 1 0 0 0 1-1v-4"/>',
    # An arrow down out of a film frame.
    "export": '<rect x="3" y="3" width="18" height="12" rx="2"/><path d="M12 8v13M8 17l4 4 4-4"/>',
    # A coin.
    "credits": '<circle cx="12" cy="12" r="9"/><path d="M15 9.5a3 2.5 0 1 0-3 3 3 2.5 0 1 1-3 3'
    'M12 5.5v13"/>',
    # Tracks on a timeline.
    "timeline": '<path d="M3 6h10M3 12h16M3 18h7"/><path d="M17 3v6M21 15v6"/>',
}


def svg(name: str) -> str:
    """The SVG document of the icon `name`."""
    return _FRAME.format(GLYPHS[name])


def icon(name: str) -> Icon:
    """The icon `name` as MCP `Icon`: an SVG data URI, any size."""
    data = base64.b64encode(svg(name).encode("utf-8")).decode("ascii")
    return Icon(src=f"data:image/svg+xml;base64,{data}", mime_type="image/svg+xml", sizes=["any"])


__all__ = ["GLYPHS", "icon", "svg"]
