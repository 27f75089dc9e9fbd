"""What every job kind knows of itself (its entry, handle, session and times), and what
its transitions need of the run holding it."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from nemo_mcp.ledger import State


class JobFacts(BaseModel):
    """The facts every job has, whatever its kind (each kind adds `kind` and `phase`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    handle: str
    session_id: str | None = None
    created_at: float
    finished_at: float | None = None
    fingerprint: str | None = None


class Journal(Protocol):
    """The run that holds a job (`server.work.Run`): its newest facts, and `save`, which
    records a phase and facts durably (and returns only once they are)."""

    memo: dict[str, Any]
    #: The request reached the backend: a failure now is final, never re-sent.
    sticky: bool

    @property
    def job(self) -> JobFacts: ...

    async def save(
        self, *, state: State | None = None, session_id: str | None = None, **memo: Any
    ) -> None: ...

    def phase(self, words: str, percent: float | None = None) -> None: ...


__all__ = ["JobFacts", "Journal"]
