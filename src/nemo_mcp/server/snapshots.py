"""A state snapshot as the agent and the studio see it: the structured timeline.

The `timeline` tool and the studio's `studio_state` both show it; it lives here, below
both, so each shows the same thing and the studio takes nothing from the tools.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nemo_mcp.server.outputs import TimelineOutput

if TYPE_CHECKING:
    from nemo_mcp.backend.models import StateSnapshot


def records(value: Any, limit: int = 50) -> list[dict[str, Any]]:
    """The objects in a state field that may be a list, a mapping of objects, or one object."""
    if isinstance(value, dict):
        objects = all(isinstance(v, dict) for v in value.values())
        value = list(value.values()) if objects else [value]
    if not isinstance(value, list):
        return []
    return [v for v in value if isinstance(v, dict)][:limit]


def timeline_output(
    snapshot: StateSnapshot, *, running: list[str], session_id: str | None
) -> TimelineOutput:
    """The structured timeline of a state snapshot."""
    from nemo_mcp.timeline import describe, parse_draft, summarize, view

    draft = parse_draft(snapshot.state.draft)
    dumped = view(draft).model_dump(mode="json")
    return TimelineOutput(
        summary=summarize(draft),
        detail=describe(draft),
        ready_for_export=draft.ready,
        duration_seconds=round(draft.duration_ms / 1000, 3) if draft.duration_ms else 0.0,
        tracks=list(dumped.get("tracks", [])),
        uploads=records(snapshot.state.video_infos),
        generated_media=records(snapshot.state.generated_media),
        running=running,
        session_id=snapshot.session_id or session_id,
    )


__all__ = ["records", "timeline_output"]
