"""What every job kind knows of itself: its entry, handle, session and times."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class JobFacts(BaseModel):
    """The facts every job has, whatever its kind (each kind adds `kind` and `phase`)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    handle: str
    session_id: str | None = None
    created_at: float
    finished_at: float | None = None
    fingerprint: str | None = None


__all__ = ["JobFacts"]
