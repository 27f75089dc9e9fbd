"""A do-nothing MCP server with one tool: the floor for `bench_startup.py` and `bench_http.py`.

python bench/noop_server.py                 # stdio
python bench/noop_server.py --http PORT     # streamable HTTP at 127.0.0.1:PORT/mcp
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("noop", version="0.0.0")


@server.tool(name="ping", description="Answer pong.")
async def ping() -> str:
    """Answer pong."""
    return "pong"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run(
            "streamable-http",
            host="127.0.0.1",
            port=int(sys.argv[2]),
            streamable_http_path="/mcp",
            json_response=False,
        )
    else:
        server.run()
