"""Wire models: the backend's answers, with the backend's own field names.

Every model ignores fields it does not know and tolerates fields it expects
being absent, because the backend's documents disagree with one another.
"""

from __future__ import annotations

import math
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nemo_mcp.errors import ServerError


class Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


W = TypeVar("W", bound=Wire)


def parse_wire(model: type[W], data: Any, *, what: str) -> W:
    """`data` as `model`; an answer not in the documented form is a `ServerError`."""
    try:
        return model.model_validate(data if data is not None else {})
    except ValidationError as err:
        raise ServerError(
            f"the backend's answer to {what} is not in the documented form "
            f"({err.error_count()} problem(s), e.g. {err.errors()[0]['msg']})"
        ) from None


class AnonymousToken(Wire):
    token: str
    user_id: str | None = None
    expires_at: str | None = None
    credits: float | None = None


class Session(Wire):
    session_id: str
    task_id: str | None = None
    user_id: str | None = None

    @field_validator("session_id", "task_id", "user_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        # Session ids are numeric strings, but some answers send numbers.
        return str(value) if isinstance(value, int) else value


class ClaimToken(Wire):
    claim_token: str
    expires_in: float | None = None


class Credits(Wire):
    available: float = 0
    frozen: float = 0
    total: float = Field(0, description="available + frozen when the answer leaves it out")

    @model_validator(mode="before")
    @classmethod
    def _total(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        value = {**value}
        for key in ("available", "frozen"):
            if value.get(key) is None:
                value[key] = 0
        if value.get("total") is None:
            value["total"] = _sum(value["available"], value["frozen"])
        return value


def _sum(*values: Any) -> float:
    numbers = [_number(v) for v in values]
    return sum(n for n in numbers if n is not None)


class UploadedFile(Wire):
    filename: str | None = None
    file_type: str | None = None
    cdn_url: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    hash: str | None = None


class UploadResult(Wire):
    files: list[UploadedFile] = Field(default_factory=list)
    session_state_applied: bool | None = None


class SessionState(Wire):
    """The `state` object of the latest session state."""

    draft: Any = None
    video_infos: Any = None
    canvas_config: Any = None
    video_analyses: Any = None
    generated_media: Any = None


class StateSnapshot(Wire):
    session_id: str | None = None
    task_id: str | None = None
    task_name: str | None = None
    state: SessionState = Field(default_factory=SessionState)

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        return value if isinstance(value, dict) else {}


RenderPhase = Literal["pending", "processing", "completed", "failed", "cancelled", "unknown"]


class RenderStatus(BaseModel):
    """One render status, read from any of the three documented shapes."""

    id: str
    status: RenderPhase
    progress: float = Field(0.0, description="0.0 to 1.0")
    url: str | None = None
    duration: float | None = None
    size: int | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


_PHASES = {
    "pending": "pending",
    "queued": "pending",
    "waiting": "pending",
    "processing": "processing",
    "running": "processing",
    "rendering": "processing",
    "in_progress": "processing",
    "completed": "completed",
    "complete": "completed",
    "succeeded": "completed",
    "success": "completed",
    "done": "completed",
    "failed": "failed",
    "error": "failed",
    "cancelled": "cancelled",
    "canceled": "cancelled",
}


def _number(value: Any) -> float | None:
    """A finite number from a number or numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().rstrip("%"))
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def normalize_progress(value: Any, *, status: str) -> float:
    """Progress as a 0-1 fraction from either documented scale.

    A value above 1 is a percentage. A value of exactly 1 is ambiguous: it is
    100% only when the render says it is completed, else 1%.
    """
    number = _number(value)
    if number is None or number != number or number < 0:
        return 1.0 if status == "completed" else 0.0
    if number > 1 or (number == 1 and status != "completed"):
        number = number / 100
    return max(0.0, min(1.0, number))


def parse_render_status(body: Any, *, render_id: str) -> RenderStatus:
    """Read a render status in shape 1 (bare), 2 (`success/data`) or 3 (`code/data`).

    The envelope is already removed by the caller when it was recognised; this
    also unwraps any `data` layer left, so a nested form still reads.
    """
    obj = body
    for _ in range(3):
        if isinstance(obj, dict) and "status" not in obj and isinstance(obj.get("data"), dict):
            obj = obj["data"]
    if not isinstance(obj, dict):
        return RenderStatus(id=render_id, status="unknown")
    raw_status = str(obj.get("status", "")).strip().lower()
    status: RenderPhase = _PHASES.get(raw_status, "unknown")  # type: ignore[assignment]
    found = obj.get("output")
    output: dict[str, Any] = found if isinstance(found, dict) else {}
    url = output.get("url") or obj.get("outputUrl") or obj.get("output_url") or obj.get("url")
    error = obj.get("error") or obj.get("errorMessage") or obj.get("message")
    size = _number(output.get("size", obj.get("size")))
    return RenderStatus(
        id=str(obj.get("taskId") or obj.get("id") or render_id),
        status=status,
        progress=normalize_progress(obj.get("progress"), status=status),
        url=url if isinstance(url, str) and url else None,
        duration=_number(output.get("duration", obj.get("duration"))),
        size=int(size) if size is not None else None,
        error=str(error) if error and status == "failed" else None,
    )
