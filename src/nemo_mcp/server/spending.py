"""Asking before spending credits: what a request costs, when to ask, and the question.

`generate` asks the user (MCP elicitation, through the SDK's portable `Resolve`/`Elicit`
resolvers, so it works on the 2026-07-28 protocol and on the older handshake) before a
request that costs credits, when the client supports elicitation and the setting
(`NEMO_CONFIRM_SPENDING`) says so. Pure values in, values out; the resolver that reads
the backend lives with the tool (`tools/generate.py`).

Never asked: requests found in the ledger (asking again costs nothing), requests that
belong to another tool, and requests the balance cannot pay for (the backend refuses
those for free, and the answer carries the registration link).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from nemo_mcp.settings import SpendingRule

#: The backend's own estimates (SKILL.md): a new clip, and an edit of the current one.
NEW_CLIP_COST = 100
EDIT_COST = 50


class SpendConfirmation(BaseModel):
    """The user's answer to the question (a form with one yes/no field)."""

    send: bool = Field(
        title="Spend the credits",
        description="Send the request to NemoVideo and spend the credits",
    )


@dataclass(frozen=True)
class Estimate:
    """What a request will cost, and why."""

    cost: int
    edit: bool

    @property
    def what(self) -> str:
        return "an edit of the current video" if self.edit else "a new clip"


def is_edit(draft: Any, *, new_project: bool) -> bool:
    """A request is an edit when it goes to a project whose timeline already has a video."""
    if new_project or draft is None:
        return False
    from nemo_mcp.timeline import parse_draft

    return any(t.kind == "video" and t.segments for t in parse_draft(draft).tracks)


def estimate(*, edit: bool) -> Estimate:
    return Estimate(cost=EDIT_COST if edit else NEW_CLIP_COST, edit=edit)


def should_ask(rule: SpendingRule, *, available: float | None, cost: int) -> bool:
    """Whether the rule asks before spending `cost` from `available` (None: unknown).

    An unknown balance asks under `below` (a careful default); a balance that cannot pay
    for the request is not asked about: the backend refuses it without charging."""
    if rule.mode == "never":
        return False
    if available is not None and available < cost:
        return False
    if rule.mode == "always":
        return True
    return available is None or available - cost < rule.threshold


def question(message: str, cost: Estimate, *, available: float | None, anonymous: bool) -> str:
    """The question shown to the user: what is asked for, its cost, the balance."""
    words = " ".join(message.split())
    shown = words if len(words) <= 160 else words[:159] + "…"
    lines = [
        f'Send this request to NemoVideo? "{shown}"',
        f"It is {cost.what}: about {cost.cost} credits.",
    ]
    if available is None:
        lines.append("The balance could not be read just now.")
    else:
        account = " (free trial)" if anonymous else ""
        lines.append(
            f"Balance{account}: {available:g} credits; about {max(available - cost.cost, 0):g} "
            "after this request."
        )
    lines.append("Nothing is sent or charged unless you agree.")
    return "\n".join(lines)


def not_sent_reply(outcome: str) -> str:
    """What the agent is told when the user did not agree (`declined` or `cancelled`)."""
    why = "declined to spend" if outcome == "declined" else "dismissed the question about"
    return (
        f"Not sent: the user {why} the credits this request costs, so nothing was sent or "
        "charged. Ask the user what they want before trying again."
    )


__all__ = [
    "EDIT_COST",
    "NEW_CLIP_COST",
    "Estimate",
    "SpendConfirmation",
    "estimate",
    "is_edit",
    "not_sent_reply",
    "question",
    "should_ask",
]
