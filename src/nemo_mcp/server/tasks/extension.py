"""The MCP Tasks extension (`io.modelcontextprotocol/tasks`) on the SDK's `Extension` hook.

- `server/discover` lists it (the SDK advertises every applied extension).
- `tools/call`: for a request of the 2026-07-28 protocol that declares the extension, a
  tool that has a finisher (`generate`, `export`) may answer with a task: its body asks
  `offer` once its job is in the ledger, and the interceptor turns the call's answer
  into the `CreateTaskResult`. The resolvers (reading a script, asking before
  spending) run before the body, so a question is settled before any task exists and a
  decline makes none. Every other request gets exactly what it got before.
- `tasks/get`, `tasks/update`, `tasks/cancel` (2026-07-28 only): `-32021` when the
  request does not declare the extension, `-32602` for a task id this user does not
  have (another user's answers the same way as one never made).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolRequestParams, CallToolResult, RequestParams, TextContent
from mcp_types.jsonrpc import INVALID_PARAMS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from nemo_mcp.ledger import Entry
from nemo_mcp.server.tasks.keeper import Finisher, TaskKeeper, UnknownTask
from nemo_mcp.server.tasks.records import EXTENSION, TaskRecord

if TYPE_CHECKING:
    from nemo_mcp.server.service import NemoService, Services
    from nemo_mcp.server.work import Ticket


class TaskParams(RequestParams):
    task_id: str = Field(alias="taskId", min_length=1, max_length=200)


class UpdateTaskParams(TaskParams):
    input_responses: dict[str, Any] | None = Field(default=None, alias="inputResponses")


@dataclass
class _Offer:
    """The interceptor's slot for one eligible `tools/call`: filled if a task is made."""

    keeper: TaskKeeper
    tool: str
    #: The request declared the extension (else the call is answered as always).
    declared: bool
    made: tuple[TaskRecord, Entry] | None = field(default=None)


_offer: ContextVar[_Offer | None] = ContextVar("nemo_task_offer", default=None)


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request (2026-07-28) declared the extension in its capabilities."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    capabilities = ctx.session.client_capabilities
    declared = capabilities.extensions if capabilities is not None else None
    return bool(declared) and EXTENSION in (declared or {})


async def offer(
    ctx: Context, service: NemoService, ticket: Ticket, *, remote: bool
) -> CallToolResult | None:
    """Ask whether this call answers with a task, once its ledger entry exists.

    Yes (the task is made durable now, and the call's answer becomes it) when the request
    declared the extension and the entry's work is still to finish; None to answer as
    always. `remote`: the caller is on another machine (no local file link)."""
    slot = _offer.get()
    if slot is None or ticket.entry.finished:
        return None
    if not slot.declared:
        await slot.keeper.wait_on(service, ticket)  # a cancel must not stop its work
        return None
    slot.made = await slot.keeper.create(service, ticket, slot.tool, remote=remote)
    record = slot.made[0]
    # Replaced by the task on the wire; kept truthful should anything show it.
    return CallToolResult(content=[TextContent(type="text", text=f"Task {record.id} made.")])


class TasksExtension(Extension):
    """Tasks for the tools given finishers (tool name -> the finished result's builder)."""

    identifier = EXTENSION

    def __init__(self, finishers: dict[str, Finisher]) -> None:
        self.keeper = TaskKeeper(finishers)

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskParams, self._get, modern),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, modern),
            MethodBinding("tasks/cancel", TaskParams, self._cancel, modern),
        )

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        if params.name not in self.keeper.finishers:
            return await call_next(ctx)
        slot = _Offer(self.keeper, params.name, declares_tasks(ctx))
        reset = _offer.set(slot)
        try:
            answer = await call_next(ctx)
        finally:
            _offer.reset(reset)
        if slot.made is None:
            return answer
        record, entry = slot.made
        service = await _service(ctx)
        shaped = self.keeper.shape(record, entry, service.settings.render_shortest)
        return {"resultType": "task", **shaped}

    # tasks/* ------------------------------------------------------------------------
    async def _get(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        service = await _checked(ctx)
        try:
            return {"resultType": "complete", **await self.keeper.detailed(service, params.task_id)}
        except UnknownTask:
            raise _unknown() from None

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        service = await _checked(ctx)
        try:
            await self.keeper.record(service, params.task_id)
        except UnknownTask:
            raise _unknown() from None
        # No task here ever waits for input: responses match no outstanding request.
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        service = await _checked(ctx)
        try:
            await self.keeper.cancel(service, params.task_id)
        except UnknownTask:
            raise _unknown() from None
        return {"resultType": "complete"}


def _unknown() -> MCPError:
    return MCPError(
        code=INVALID_PARAMS,
        message="Failed to retrieve task: no task with this id is kept for you (tasks are "
        "kept 24 hours).",
    )


async def _service(ctx: ServerRequestContext[Any, Any]) -> NemoService:
    """The caller's service, as the tools find it (by the request's bearer token)."""
    services: Services = ctx.lifespan_context["services"]
    headers = getattr(ctx.request, "headers", None)
    return await services.get(services.exposure.user_key(headers))


async def _checked(ctx: ServerRequestContext[Any, Any]) -> NemoService:
    require_client_extension(ctx, EXTENSION)
    return await _service(ctx)


__all__ = ["TaskParams", "TasksExtension", "UpdateTaskParams", "declares_tasks", "offer"]
