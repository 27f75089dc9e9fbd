"""`credits`: the balance, and what it is enough for."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult

from nemo_mcp.backend.budget import time_bound
from nemo_mcp.server.icons import icon
from nemo_mcp.server.outputs import CreditsOutput
from nemo_mcp.server.spending import EDIT_COST
from nemo_mcp.server.spending import NEW_CLIP_COST as GENERATION_COST
from nemo_mcp.server.tools.common import guarded, hints, result, service_of

if TYPE_CHECKING:
    from nemo_mcp.backend.models import Credits

NAME = "credits"
TITLE = "Check credits"
DESCRIPTION = (
    "Show the NemoVideo credit balance: available, frozen (held for work in progress) and "
    "total. Free. A new clip costs about 100 credits, an edit about 50, export nothing."
)


def credits_output(balance: Credits, *, anonymous: bool, registration_link: str) -> CreditsOutput:
    """The balance with a note on what it pays for."""
    notes = []
    if balance.frozen:
        notes.append(f"{balance.frozen:g} are held for work in progress and return if it fails.")
    if balance.available < EDIT_COST:
        more = (
            f" Register at {registration_link} for more." if anonymous else " Top up to continue."
        )
        notes.append(
            f"Not enough for an edit (~{EDIT_COST}) or a new clip (~{GENERATION_COST}).{more}"
        )
    elif balance.available < GENERATION_COST:
        notes.append(f"Enough for an edit (~{EDIT_COST}) but not a new clip (~{GENERATION_COST}).")
    return CreditsOutput(
        available=balance.available,
        frozen=balance.frozen,
        total=balance.total,
        anonymous=anonymous,
        note=" ".join(notes),
    )


def credits_text(out: CreditsOutput) -> str:
    """The agent's text for a `credits` result."""
    text = f"Credits: {out.available:g} available, {out.frozen:g} frozen, {out.total:g} total."
    return f"{text} {out.note}".strip()


@guarded("Reading the credits")
async def credits(ctx: Context) -> Annotated[CallToolResult, CreditsOutput]:
    service = await service_of(ctx)
    client = service.client
    with time_bound(
        service.settings.tool_timeout, api_url=client.api_url, what="reading the credits"
    ):
        balance = await client.credits()
    out = credits_output(
        balance, anonymous=client.anonymous, registration_link=client.registration_link()
    )
    return result(credits_text(out), out, notices=service.take_notices())


def register(mcp: MCPServer[Any]) -> None:
    mcp.add_tool(
        credits,
        name=NAME,
        title=TITLE,
        description=DESCRIPTION,
        annotations=hints(read_only=True, idempotent=True),
        icons=[icon("credits")],
    )
