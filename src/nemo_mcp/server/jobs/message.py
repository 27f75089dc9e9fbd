"""A message job: one creative request to the agent, as the ledger holds it, typed.

Its phases and the moves between them (each saved before the step it guards acts):

    queued -> sending          the evidence is read; the request is about to leave
    sending -> sending         sent again, once, after nothing showed it arrived (crash)
    sending -> streaming       the agent's stream opened: the backend has it
    sending -> recovering      the answer was lost (unclear) and the evidence shows it arrived
    streaming -> recovering    the stream closed or broke: the outcome is read from the state
    any -> done | failed       the outcome, or the failure, is recorded
    queued -> cancelled        dropped by a cancel before it was sent (`Ledger.drop`)

Each move is a function below that records it and returns once it is durable; the
executor (`server.generation`) acts only after. The backend records nothing: it gives
the stream's `OpenedEvent`, and `opened` is what is made of it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from nemo_mcp.server.jobs.common import JobFacts, Journal

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


def message_of(run: Journal) -> MessageJob:
    """The message as `run` knows it now (its newest facts)."""
    job = run.job
    assert isinstance(job, MessageJob), type(job).__name__
    return job


async def new_project(run: Journal, session_id: str) -> None:
    """(queued) The new project asked for exists: kept, so a later run never makes another."""
    await run.save(session_id=session_id, new_session=session_id)


async def sending(
    run: Journal,
    *,
    session_id: str,
    before: Any,
    credits: dict[str, float] | None,
    resent: bool = False,
) -> None:
    """queued -> sending, or (`resent`) sending -> sending, sent again once after nothing
    showed it arrived: the evidence a later run reads (the draft and the credits before)
    is durable before the request leaves."""
    facts: dict[str, Any] = {"resent": True} if resent else {}
    await run.save(state="sending", session_id=session_id, before=before, credits=credits, **facts)


async def opened(run: Journal) -> None:
    """sending -> streaming, on the stream's `OpenedEvent`: the backend has the message,
    so nothing is ever sent again."""
    run.sticky = True
    await run.save(state="streaming")


async def unclear(run: Journal, why: str) -> None:
    """(sending) The send's answer was lost: recorded before the evidence is read, so a
    restart keeps checking and never sends it again."""
    if not message_of(run).unclear:
        await run.save(unclear=why)


async def recovering(run: Journal) -> None:
    """sending | streaming -> recovering: the outcome is read from the state from now on."""
    if message_of(run).phase != "recovering":
        await run.save(state="recovering")


__all__ = [
    "MESSAGE_MOVES",
    "MessageJob",
    "MessagePhase",
    "message_of",
    "new_project",
    "opened",
    "recovering",
    "sending",
    "unclear",
]
