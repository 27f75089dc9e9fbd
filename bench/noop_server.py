"""A do-nothing MCP server with one tool, served over stdio: the floor for `bench_startup.py`."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("noop", version="0.0.0")


@server.tool(name="ping", description="Answer pong.")
async def ping() -> str:
    """Answer pong."""
    return "pong"


if __name__ == "__main__":
    server.run()
