"""nemo-mcp: an MCP server that drives the NemoVideo backend for AI agents.

The package is in layers (README, "Layout"; `lint-imports` keeps them): the command
line; the server's composition (`server.app`) beside the sandbox; the tools beside
hosted mode; the server's core; the backend client, the ledger, the media kit, the
timeline, replies and documents, apart from each other; identity and the client's
state; the state files; settings and redaction; errors at the bottom.
"""

__version__ = "0.1.0"
