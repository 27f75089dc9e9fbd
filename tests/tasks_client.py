"""A JSON-RPC client of the 2026-07-28 protocol over streamable HTTP, as a tasks-aware
agent host (Claude Code) is: every request carries its envelope in `params._meta`, the
Tasks extension declared per request when `tasks` is on, and the routing headers
(`Mcp-Method`, `Mcp-Name`). It counts its requests by method.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import anyio
import httpx

VERSION = "2026-07-28"
TASKS = "io.modelcontextprotocol/tasks"
#: Methods whose `Mcp-Name` header carries a parameter.
NAMED = {"tools/call": "name", "tasks/get": "taskId", "tasks/update": "taskId"}
NAMED["tasks/cancel"] = "taskId"


class RpcError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.code = int(error["code"])
        self.message = str(error.get("message"))
        self.data = error.get("data")


class TasksClient:
    """Requests to one MCP endpoint; `tasks` declares the extension on each request."""

    def __init__(
        self,
        url: str,
        *,
        tasks: bool = True,
        token: str | None = None,
        capabilities: dict[str, Any] | None = None,
    ) -> None:
        self.url = url
        self.tasks = tasks
        self.token = token
        #: Other capabilities declared on every request (e.g. `elicitation`).
        self.capabilities = capabilities or {}
        self.sent: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._http = httpx.AsyncClient(timeout=60.0)

    async def __aenter__(self) -> TasksClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    def _meta(self, tasks: bool) -> dict[str, Any]:
        capabilities: dict[str, Any] = dict(self.capabilities)
        if tasks:
            capabilities["extensions"] = {TASKS: {}}
        return {
            "io.modelcontextprotocol/protocolVersion": VERSION,
            "io.modelcontextprotocol/clientInfo": {"name": "tasks-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        }

    async def request(
        self, method: str, params: dict[str, Any] | None = None, *, tasks: bool | None = None
    ) -> dict[str, Any]:
        """The result of `method`; a JSON-RPC error is raised as `RpcError`."""
        declared = self.tasks if tasks is None else tasks
        body_params = {**(params or {}), "_meta": self._meta(declared)}
        request_id = next(self._ids)
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": VERSION,
            "Mcp-Method": method,
        }
        if method in NAMED:
            headers["Mcp-Name"] = str(body_params[NAMED[method]])
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.sent[method] += 1
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": body_params}
        response = await self._http.post(self.url, json=body, headers=headers)
        message = _answer(response, request_id)
        if "error" in message:
            raise RpcError(message["error"])
        result: dict[str, Any] = message["result"]
        return result

    async def call(
        self, name: str, arguments: dict[str, Any] | None = None, **more: Any
    ) -> dict[str, Any]:
        """`tools/call`; `more` adds params (a retry's `inputResponses`, `requestState`)."""
        params = {"name": name, "arguments": arguments or {}, **more}
        return await self.request("tools/call", params)

    async def get(self, task_id: str, *, tasks: bool | None = None) -> dict[str, Any]:
        return await self.request("tasks/get", {"taskId": task_id}, tasks=tasks)

    async def cancel(self, task_id: str) -> dict[str, Any]:
        return await self.request("tasks/cancel", {"taskId": task_id})

    async def poll(
        self,
        task_id: str,
        *,
        until: frozenset[str] = frozenset({"completed", "failed", "cancelled"}),
        seconds: float = 60.0,
    ) -> dict[str, Any]:
        """`tasks/get` until the task's status is in `until` (a terminal one by default),
        no faster than a tenth of a second, whatever `pollIntervalMs` says."""
        with anyio.fail_after(seconds):
            while True:
                task = await self.get(task_id)
                if task["status"] in until:
                    return task
                await anyio.sleep(min(0.1, task.get("pollIntervalMs", 100) / 1000))


def _answer(response: httpx.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC response to `request_id`, from a JSON body or an SSE stream."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        for block in response.text.split("\n\n"):
            data = "\n".join(
                line[5:].lstrip() for line in block.splitlines() if line.startswith("data:")
            )
            if data:
                message = json.loads(data)
                if message.get("id") == request_id:
                    return dict(message)
        raise AssertionError(f"no answer to {request_id} in the stream: {response.text[:500]}")
    message = response.json()
    assert isinstance(message, dict), message
    return message


def text_of(result: dict[str, Any]) -> str:
    return "\n".join(b["text"] for b in result.get("content", []) if b.get("type") == "text")
