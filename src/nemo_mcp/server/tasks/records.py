"""A task as the server keeps it: the handle of one ledger entry, for one caller.

A task (the MCP Tasks extension, `io.modelcontextprotocol/tasks`) names a job that is
already in the ledger (`nemo_mcp.ledger.Entry`): its id is new, its work is the entry's.
The record keeps what the caller who created it needs when the job finishes (whether
they are on this computer, the call's ask id) and, once it is terminal, the answer
itself: the `CallToolResult` as that caller would have got it, or the JSON-RPC error.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Final, Literal

#: The extension's identifier, as declared by clients and listed by `server/discover`.
EXTENSION: Final = "io.modelcontextprotocol/tasks"
#: How long a task (and its result) is kept after it was created: as long as results are.
TTL_SECONDS: Final = 24 * 3600
#: The largest stored result; a bigger one keeps its text and drops its pictures.
MAX_RESULT_BYTES: Final = 1_500_000

Status = Literal["working", "input_required", "completed", "cancelled", "failed"]
TERMINAL: Final[frozenset[str]] = frozenset({"completed", "cancelled", "failed"})


def new_task_id() -> str:
    """An unguessable id: knowing one task's id tells nothing of another's."""
    return secrets.token_urlsafe(18)


@dataclass
class TaskRecord:
    """One task: the entry it follows, its caller's view, and how it ended."""

    id: str
    entry: str
    tool: str
    #: The ask id the creating call was given by the ledger (its delivery is recorded).
    ask: str
    #: The caller is on another machine: no link to this server's disk in the result.
    remote: bool
    created_at: float
    updated_at: float
    status: Status = "working"
    #: Said with the status: why it was cancelled, or that a cancel came too late.
    message: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    #: When a cancel was asked for (wall clock), if it was.
    cancel_asked: float | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def expired(self, now: float) -> bool:
        return now >= self.created_at + TTL_SECONDS

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, raw: str | bytes) -> TaskRecord:
        return cls(**json.loads(raw))


def iso(seconds: float) -> str:
    """An ISO 8601 UTC timestamp, as the extension's `createdAt`/`lastUpdatedAt` are."""
    return (
        datetime.fromtimestamp(seconds, timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def bounded(result: dict[str, Any], limit: int = MAX_RESULT_BYTES) -> dict[str, Any]:
    """`result` (a dumped `CallToolResult`), within `limit` bytes of JSON: pictures are
    dropped first, with a line saying so; the text and structured content stay."""
    if len(json.dumps(result, separators=(",", ":"))) <= limit:
        return result
    content = [b for b in result.get("content", []) if b.get("type") == "text"]
    content.append(
        {
            "type": "text",
            "text": "(The picture of this result was too large to keep with the task; "
            "call the tool again to see it.)",
        }
    )
    return {**result, "content": content}


__all__ = [
    "EXTENSION",
    "MAX_RESULT_BYTES",
    "TERMINAL",
    "TTL_SECONDS",
    "Status",
    "TaskRecord",
    "bounded",
    "iso",
    "new_task_id",
]
