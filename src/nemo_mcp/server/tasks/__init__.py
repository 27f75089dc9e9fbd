"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`): a long job's handle.

    records.py    a task as kept: the ledger entry it follows, its caller, its end
    store.py      where tasks are kept: SQLite beside the ledger, or Redis (hosted)
    keeper.py     making, answering, finishing and cancelling tasks
    extension.py  the SDK extension: `tools/call` interception, `tasks/*` methods

`generate` and `export` ask `offer` once their job is in the ledger; clients that do not
declare the extension get exactly the answers they always got.
"""

from __future__ import annotations

from nemo_mcp.server.tasks.extension import TasksExtension, offer
from nemo_mcp.server.tasks.records import EXTENSION

__all__ = ["EXTENSION", "TasksExtension", "offer"]
