"""Entry point of the nemo-mcp Claude Desktop extension: serve MCP over stdio.

`uv run` starts this file inside the environment the bundle's pyproject.toml
describes; with no arguments the command line serves stdio.
"""

import sys

from nemo_mcp.cli import main

if __name__ == "__main__":
    sys.exit(main())
