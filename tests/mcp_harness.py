"""Driving the MCP server through the SDK's real `Client` against the sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
from mcp import Client
from mcp_types import CallToolResult, ListRootsResult, Root

from nemo_mcp.server import create_server
from nemo_mcp.settings import Settings

FAST = dict(
    tool_timeout=20.0,
    recovery_delays=(0.2, 0.2, 0.2, 0.2, 0.2),
    render_shortest=0.3,
    stream_idle=3.0,
    stream_total=30.0,
)


def make_settings(tmp_path: Path, api_url: str, **overrides: Any) -> Settings:
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    values: dict[str, Any] = dict(
        api_url=api_url,
        web_url="https://web.test",
        home=tmp_path / "home",
        output_dir=tmp_path / "out",
        upload_dirs=(uploads,),
        **FAST,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Session:
    client: Client
    schemas: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: list[tuple[float, float | None, str | None]] = field(default_factory=list)

    async def call(self, name: str, args: dict[str, Any] | None = None) -> CallToolResult:
        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            self.progress.append((progress, total, message))

        result = await self.client.call_tool(name, args or {}, progress_callback=on_progress)
        if not result.is_error:
            assert result.structured_content is not None
            jsonschema.validate(result.structured_content, self.schemas[name])
        return result


def text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


@asynccontextmanager
async def connect(
    settings: Settings, *, mode: str = "auto", roots: list[Path] | None = None
) -> AsyncIterator[Session]:
    callback = None
    if roots is not None:

        async def list_roots(_ctx: Any) -> ListRootsResult:
            return ListRootsResult(roots=[Root(uri=p.as_uri()) for p in roots])

        callback = list_roots
    async with Client(create_server(settings), mode=mode, list_roots_callback=callback) as client:  # type: ignore[arg-type]
        tools = await client.list_tools()
        session = Session(client=client, schemas={t.name: t.output_schema for t in tools.tools})  # type: ignore[misc]
        yield session
