"""The MCP edge: every expected failure becomes a `ToolError` written for the agent.

Each message says what failed, why, and what to do next. Every message goes
through `redaction.redact`, so no token can reach the agent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError

from nemo_mcp import redaction
from nemo_mcp.errors import (
    AgentError,
    AuthError,
    ConfigError,
    CreditsError,
    FileTooLargeError,
    InputError,
    NemoError,
    PlanError,
    RateLimitError,
    RenderError,
    ServerError,
    SessionNotFoundError,
    TransportError,
    UnsupportedFileError,
)

if TYPE_CHECKING:
    from nemo_mcp.backend.client import NemoClient


def message_for(err: NemoError, client: NemoClient | None) -> str:
    """The agent-facing text for `err`."""
    web = client.settings.web_url.rstrip("/") if client else "https://nemovideo.com"
    if isinstance(err, CreditsError):
        if client is not None and client.anonymous:
            return (
                "Out of credits (the free trial's 100 credits are used up). Register for free at "
                f"{client.registration_link()} to keep this project and get more credits, then "
                "try again. Exports stay free."
            )
        return f"Out of credits. Top up in your NemoVideo account at {web}, then try again."
    if isinstance(err, PlanError):
        return (
            "Export is blocked on the free plan (a plan limit, not credits). Register or upgrade "
            f"at {web} to unlock export."
        )
    if isinstance(err, AuthError):
        if "NEMO_TOKEN" in err.message:
            return err.message
        return (
            "NemoVideo refused the token twice (expired or invalid). Check NEMO_TOKEN, or remove "
            "it to use a free anonymous token, then try again."
        )
    if isinstance(err, SessionNotFoundError):
        return err.message
    if isinstance(err, RateLimitError):
        return err.message if "token" in err.message else (
            "NemoVideo is rate limiting requests. Wait a minute and try again."
        )
    if isinstance(err, UnsupportedFileError):
        return err.message if "Accepted" in err.message else (
            f"NemoVideo does not accept this file type ({err.message}). Accepted: mp4, mov, "
            "avi, webm, mkv, jpg, png, gif, webp, mp3, wav, m4a, aac."
        )
    if isinstance(err, FileTooLargeError):
        return err.message if "limit" in err.message else (
            f"The file is too large for NemoVideo ({err.message}). Compress or trim it and upload again."
        )
    if isinstance(err, (InputError, ConfigError, RenderError, AgentError)):
        return err.message
    if isinstance(err, ServerError):
        status = f" (HTTP {err.http_status})" if err.http_status else ""
        return f"NemoVideo had a server problem{status}: {err.message}. Try again in a minute."
    if isinstance(err, TransportError):
        return err.message[:1].upper() + err.message[1:]
    return err.message or type(err).__name__


def tool_error(err: NemoError, client: NemoClient | None) -> ToolError:
    return ToolError(redaction.redact(message_for(err, client)))
