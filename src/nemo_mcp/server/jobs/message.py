"""A message job: one creative request to the agent, as the ledger holds it, typed.

Its phases and the moves between them (each saved before the step it guards acts):

    queued -> sending          the evidence is read; the request is about to leave
    sending -> sending         sent again, once, after nothing showed it arrived (crash)
    sending -> streaming       the agent's stream opened: the backend has it
    sending -> recovering      the answer was lost (unclear) and the evidence shows it arrived
    streaming -> recovering    the stream closed or broke: the outcome is read from the state
    any -> done | failed       the outcome, or the failure, is recorded
    queued -> cancelled        dropped by a cancel before it was sent (`Ledger.drop`)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from nemo_mcp.server.jobs.common import JobFacts

MessagePhase = Literal[
    "queued", "sending", "streaming", "recovering", "done", "failed", "cancelled"
]

#: The moves a message may make (the two ends are reachable from every phase).
MESSAGE_MOVES: dict[str, frozenset[str]] = {
    "queued": frozenset({"sending"}),
    "sending": frozenset({"sending", "streaming", "recovering"}),
    "streaming": frozenset({"recovering"}),
    "recovering": frozenset({"recovering"}),
}


class MessageJob(JobFacts):
    """What is known of one message: what was asked, and what a later run needs."""

    kind: Literal["message"] = "message"
    phase: MessagePhase
    message: str = ""
    new_project: bool = False
    before: Any = Field(None, description="the draft before the request was sent")
    credits: dict[str, float] | None = Field(None, description="the balance before it")
    new_session: str | None = None
    resent: bool = False
    unclear: str | None = Field(None, description="why the send's answer was lost, if it was")


__all__ = ["MESSAGE_MOVES", "MessageJob", "MessagePhase"]
