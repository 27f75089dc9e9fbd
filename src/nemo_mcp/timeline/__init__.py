"""Draft JSON into timelines and change reports: pure functions, no I/O.

model.py    the tolerant draft parser (`parse_draft`)
wording.py  how times, volumes, segments and tracks read
summary.py  the one-line summary, the multi-line form, the structured view
changes.py  exact change reports between two drafts
"""

from nemo_mcp.timeline.changes import Change, ChangeKind, diff
from nemo_mcp.timeline.model import Draft, Segment, Track, TrackKind, parse_draft
from nemo_mcp.timeline.summary import (
    SegmentView,
    TimelineView,
    TrackView,
    describe,
    summarize,
    view,
)

__all__ = [
    "Change",
    "ChangeKind",
    "Draft",
    "Segment",
    "SegmentView",
    "TimelineView",
    "Track",
    "TrackKind",
    "TrackView",
    "describe",
    "diff",
    "parse_draft",
    "summarize",
    "view",
]
