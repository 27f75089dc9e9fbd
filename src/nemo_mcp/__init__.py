"""nemo-mcp: an MCP server that drives the NemoVideo backend for AI agents."""

__version__ = "0.1.0"
