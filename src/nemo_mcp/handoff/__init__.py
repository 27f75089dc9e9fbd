"""Hand-off to an editor: the timeline as OpenTimelineIO, FCPXML or Final Cut 7 XML, in a folder
with its media, for DaVinci Resolve, Final Cut Pro or Premiere Pro.

`export` with a timeline format runs `job.run_handoff` instead of a render: nothing is rendered
and nothing is spent. The parts, from pure to effectful:

- `plan`: the draft laid out in whole frames (tracks, clips, gaps, volumes, titles as marks)
  and what does not carry over.
- `timeline`: the plan as an OpenTimelineIO timeline, shaped for each format.
- `media`: the draft's media links downloaded into the folder under readable names.
- `folder`: the folder, the timeline file written by OpenTimelineIO's adapters, the README.
- `job`: the ledger entry's executor tying them together.

OpenTimelineIO and its two adapters are the `handoff` extra; without them a hand-off is
refused with one sentence saying how to install them (`missing_sentence`).
"""

from __future__ import annotations

import importlib.util
from typing import Literal, get_args

Format = Literal["otio", "fcpxml", "xml"]
#: The timeline formats `export` hands off in (beside "mp4", which renders).
FORMATS: tuple[Format, ...] = get_args(Format)
_PACKAGES = {
    "opentimelineio": "opentimelineio",
    "otio_fcpx_xml_adapter": "otio-fcpx-xml-adapter",
    "otio_fcp_adapter": "otio-fcp-adapter",
}


def missing_sentence() -> str | None:
    """Why a hand-off cannot run here (its packages are not installed), or None."""
    absent = [
        dist for module, dist in _PACKAGES.items() if importlib.util.find_spec(module) is None
    ]
    if not absent:
        return None
    return (
        f"Handing the timeline to an editor needs {', '.join(absent)}: install nemo-mcp with "
        "the handoff extra (pip install 'nemo-mcp[handoff]', or uvx --from 'nemo-mcp[handoff]' "
        "nemo-mcp), then export again; nothing was sent."
    )


__all__ = ["FORMATS", "Format", "missing_sentence"]
