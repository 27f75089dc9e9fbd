"""How long a tool call may wait before answering "still running", by client.

Most clients end a tool call after a fixed time (Claude Desktop and claude.ai after
about 60 s, whatever the server sends), so a call answers within `NEMO_TOOL_TIMEOUT`
and the agent calls again. A few clients are known to keep a call open longer; for them
one call can carry a whole generation or render, and the agent needs fewer turns:

- **VS Code** (`clientInfo.name` "Visual Studio Code", also "- Insiders"): its MCP client
  sets no timeout on `tools/call` (only the user's cancel ends one) and shows each
  progress message in the chat (microsoft/vscode,
  `src/vs/workbench/contrib/mcp/common/mcpServerRequestHandler.ts`: `sendRequest` has a
  cancellation token and no timer; microsoft/vscode#274094: a call answered after five
  minutes is still received).
- **MCP Inspector 2.x TUI** ("inspector-tui"): the TypeScript SDK's 60 s request
  timeout, restarted by every progress notification (`resetTimeoutOnProgress` and
  `progress` default to true in `core/mcp/inspectorClient.ts`; the TUI keeps both;
  @modelcontextprotocol/inspector 2.12.0). Only while the call carries a progress token,
  so only then. The CLI ("inspector-cli") turns progress off (`progress: false`), so its
  60 s timer is never restarted; the web Inspector ("mcp-inspector") can set a total cap.
  Both keep the default.
- **Goose** ("goose"): one timeout per extension, 300 s unless configured
  (block/goose, `DEFAULT_EXTENSION_TIMEOUT`), not reset by progress; it gets 4/5 of it.

Everyone else (Claude Desktop "claude-ai", Claude Code, Cursor, unknown clients) keeps
`NEMO_TOOL_TIMEOUT`. The longest wait for a known client is `NEMO_LONG_TOOL_TIMEOUT`
(0 turns this off); a call never waits less than `NEMO_TOOL_TIMEOUT`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from nemo_mcp.settings import Settings


@dataclass(frozen=True)
class KnownClient:
    """A client whose tool-call limit is known from its own code or documentation."""

    names: tuple[str, ...]
    #: The call stays open only while progress notifications reach it.
    needs_progress: bool = False
    #: The client's own limit, when it has one regardless of progress (seconds).
    limit: float | None = None


KNOWN_CLIENTS = (
    KnownClient(names=("visual studio code", "visual studio code - insiders")),
    KnownClient(names=("inspector-tui",), needs_progress=True),
    KnownClient(names=("goose",), limit=300.0),
)
#: Of a client's own fixed limit, the share a call may use (the rest absorbs delays).
LIMIT_SHARE = 0.8


@dataclass(frozen=True)
class Caller:
    """What a tool call tells about its client."""

    name: str | None
    version: str | None
    progress: bool


def known_client(name: str | None) -> KnownClient | None:
    wanted = (name or "").strip().lower()
    return next((c for c in KNOWN_CLIENTS if wanted in c.names), None)


def wait_budget(caller: Caller, settings: Settings) -> float:
    """Seconds a tool call waits for its work before answering that it is still running."""
    base = settings.tool_timeout
    client = known_client(caller.name)
    if client is None or settings.long_tool_timeout <= 0:
        return base
    if client.needs_progress and not caller.progress:
        return base
    longest = settings.long_tool_timeout
    if client.limit is not None:
        longest = min(longest, client.limit * LIMIT_SHARE)
    return max(base, longest)


def caller_of(ctx: Context[Any, Any]) -> Caller:
    """The client's name and version (from `initialize`, or the 2026 request envelope)
    and whether this call asked for progress."""
    try:
        request = ctx.request_context
    except ValueError:  # outside a request: nothing is known
        return Caller(name=None, version=None, progress=False)
    params = request.session.client_params
    info = params.client_info if params is not None else None
    meta = request.meta or {}
    return Caller(
        name=info.name if info is not None else None,
        version=info.version if info is not None else None,
        progress=meta.get("progress_token") is not None,
    )


__all__ = ["KNOWN_CLIENTS", "Caller", "KnownClient", "caller_of", "known_client", "wait_budget"]
