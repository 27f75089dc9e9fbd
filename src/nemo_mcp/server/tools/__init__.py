"""The five tools, one module each: a handler, and pure functions from its output to text.

    generate.py  any creative request or edit, sent once to the agent
    upload.py    local files or URLs into the project
    export.py    one render per request, saved as an MP4
    credits.py   the balance
    timeline.py  the tracks, readiness, and work still running

Each module's `register(mcp)` adds its tool; `common.py` holds what they share.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer

from nemo_mcp.server.tasks import TasksExtension
from nemo_mcp.server.tools import credits, export, generate, timeline, upload

MODULES = (generate, upload, export, credits, timeline)


def register(mcp: MCPServer[Any]) -> None:
    """Add the five tools to `mcp`."""
    for module in MODULES:
        module.register(mcp)


def tasks_extension() -> TasksExtension:
    """The Tasks extension for the two tools whose work outlasts a call."""
    return TasksExtension(
        {generate.NAME: generate.finished_result, export.NAME: export.finished_result}
    )
