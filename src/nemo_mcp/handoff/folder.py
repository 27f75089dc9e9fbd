"""The hand-off folder: a free name under the output folder, the timeline file written through
OpenTimelineIO's adapters, and a README saying how to open it and what did not carry over."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from nemo_mcp.backend.render import safe_stem
from nemo_mcp.handoff import Format
from nemo_mcp.handoff.plan import Plan

#: Each format's adapter (by its OpenTimelineIO name) and file suffix.
ADAPTERS: dict[Format, tuple[str, str]] = {
    "otio": ("otio_json", ".otio"),
    "fcpxml": ("fcpx_xml", ".fcpxml"),
    "xml": ("fcp_xml", ".xml"),
}
EDITORS: dict[Format, str] = {
    "otio": "DaVinci Resolve (or any OpenTimelineIO tool)",
    "fcpxml": "Final Cut Pro or DaVinci Resolve",
    "xml": "Premiere Pro (Final Cut 7 XML)",
}
HOW_TO_OPEN: dict[Format, tuple[str, ...]] = {
    "otio": (
        "DaVinci Resolve 18 or later: File > Import > Timeline..., choose the .otio file.",
        "Other tools: any OpenTimelineIO reader (otioview, Nuke Studio, Hiero, Premiere with "
        "the OTIO plug-in).",
    ),
    "fcpxml": (
        "Final Cut Pro: File > Import > XML..., choose the .fcpxml file.",
        "DaVinci Resolve: File > Import > Timeline..., choose the .fcpxml file.",
    ),
    "xml": (
        "Premiere Pro: File > Import..., choose the .xml file (Premiere reads Final Cut 7 XML, "
        "not FCPXML).",
        "DaVinci Resolve also reads it: File > Import > Timeline....",
    ),
}
RELINK = (
    "The media sits in the `media` folder beside the timeline file, referenced by relative "
    "paths, so the folder can be moved or zipped whole. If the editor shows clips as offline "
    "or missing, relink them to the `media` folder (Resolve: Relink Clips; Premiere: Link "
    "Media; Final Cut Pro: File > Relink Files)."
)


def new_folder(parent: Path, title: str, fmt: Format) -> Path:
    """A new, empty folder `<title>-<format>[-N]` in `parent`; never an existing one."""
    parent.mkdir(parents=True, exist_ok=True)
    stem = f"{safe_stem(title, 'nemovideo')}-{fmt}"
    for n in range(1, 10_000):
        folder = parent / (stem if n == 1 else f"{stem}-{n}")
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return folder
    raise OSError(f"no free folder name for {stem} in {parent}")


def write_text(path: Path, text: str) -> None:
    """Write `path` whole or not at all (through a `.part` file beside it)."""
    part = path.with_name(f".nemo-{path.name}.part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)


def readme(
    plan: Plan, fmt: Format, timeline: str, media: Mapping[str, str], not_carried: Sequence[str]
) -> str:
    """The README beside the timeline file."""
    lines = [
        f"# {plan.title}",
        "",
        f"A NemoVideo timeline handed off for {EDITORS[fmt]}: `{timeline}`, "
        f"{plan.duration} frames at {plan.fps:g} fps, {len(plan.lanes)} tracks, "
        f"{sum(len(lane.clips) for lane in plan.lanes)} clips, {len(plan.marks)} titles and "
        "captions.",
        "",
        "## Open it",
        "",
        *(f"- {step}" for step in HOW_TO_OPEN[fmt]),
        "",
        RELINK,
        "",
        "## Media",
        "",
        *(f"- `{where}`" for where in dict.fromkeys(media.values())),
    ]
    if not media:
        lines.append("- (none: the draft links no media)")
    lines += ["", "## Not carried over", ""]
    lines += [f"- {note}" for note in not_carried] or ["- Nothing: everything carried over."]
    return "\n".join(lines) + "\n"


def timeline_text(timeline: object, fmt: Format) -> str:
    """The timeline in `fmt`, through its OpenTimelineIO adapter."""
    import opentimelineio as otio

    assert isinstance(timeline, otio.schema.Timeline)
    text = otio.adapters.write_to_string(timeline, adapter_name=ADAPTERS[fmt][0])
    return text if isinstance(text, str) else str(text)


__all__ = [
    "ADAPTERS",
    "EDITORS",
    "HOW_TO_OPEN",
    "new_folder",
    "readme",
    "timeline_text",
    "write_text",
]


def answer(*, fmt: str, folder: str, file: str, not_carried: Sequence[str], reused: bool) -> str:
    """The agent's text for a finished hand-off."""
    known: Format = fmt if fmt in ("otio", "fcpxml", "xml") else "otio"  # type: ignore[assignment]
    head = "Already handed off this exact timeline" if reused else "Handed off"
    lines = [
        f"{head} for {EDITORS[known]}: {folder} (nothing rendered, no credits).",
        f"Timeline file: {file}",
        *HOW_TO_OPEN[known],
        "The media is in its media folder, referenced relatively; the README there says how to "
        "relink if the editor asks.",
    ]
    if not_carried:
        lines.append("Not carried over (also in the README):")
        lines += [f"- {note}" for note in not_carried]
    else:
        lines.append("Everything carried over.")
    return "\n".join(lines)


def waiting(
    *, fmt: str, queued: bool, ahead: int, progress: str, request_id: str | None = None
) -> str:
    """The agent's text for a hand-off still waiting its turn or under way."""
    how = f'request_id="{request_id}" (or format {fmt})' if request_id else f"format {fmt}"
    again = f"Call `export` with {how} again to wait for it (nothing is rendered)."
    if queued:
        earlier = "request runs" if ahead == 1 else "requests run"
        return (
            f"Queued: {ahead} earlier {earlier} first on this project, then the hand-off. {again}"
        )
    return f"Handing off: {progress}. {again}"
