"""The MCP server: five tools over the NemoVideo backend."""

from nemo_mcp.server.app import create_server

__all__ = ["create_server"]
