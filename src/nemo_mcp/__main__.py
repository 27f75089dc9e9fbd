"""`python -m nemo_mcp` runs the same command line as `nemo-mcp`."""

from nemo_mcp.cli import main

raise SystemExit(main())
