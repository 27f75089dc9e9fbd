"""The plan as an OpenTimelineIO timeline, shaped for the format it is written in.

Pure functions: a `Plan`, where each media link was saved (relative to the timeline file),
and a format, give a `Timeline`; nothing is read or written. What each format carries:

- `otio`: everything. Volume is kept in each clip's `metadata["nemovideo"]["volume"]` (OTIO
  has no volume of its own); titles and captions are markers on the timeline.
- `xml` (Final Cut 7 XML, for Premiere): volume as each clip's "Audio Levels" filter, which
  Premiere and Final Cut 7 apply; titles and captions as sequence markers.
- `fcpxml` (Final Cut Pro X, DaVinci Resolve): the adapter writes no audio levels and no
  timeline markers, so volumes are listed as not carried, and titles and captions are markers
  on the clip under their start (`fcpx_places`): the main video track's, else another
  track's (a connected clip), else the gap there, which Final Cut Pro shows but OpenTimelineIO's
  reader (it rebuilds gaps from the clips' offsets and reads no gap element) and DaVinci
  Resolve drop, so that is said. Its audio hangs off the video line, so the video track is
  filled with a gap to the end when it is shorter than the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import opentimelineio as otio

from nemo_mcp.handoff import Format
from nemo_mcp.handoff.plan import Lane, Mark, Plan, percent, volume_notes

#: Where each format keeps what OpenTimelineIO has no field for.
NAMESPACE = "nemovideo"
#: Final Cut 7's audio level filter (Premiere reads it as the clip's volume).
#: Where the FCPXML adapter starts every gap's own time.
_GAP_START_SECONDS = 3600
_LEVELS = {"name": "Audio Levels", "effectid": "audiolevels", "effecttype": "audiolevels"}


def _time(frames: int, fps: float) -> otio.opentime.RationalTime:
    return otio.opentime.RationalTime(frames, fps)


def _range(start: int, duration: int, fps: float) -> otio.opentime.TimeRange:
    return otio.opentime.TimeRange(_time(start, fps), _time(duration, fps))


def levels_filter(volume: float) -> dict[str, Any]:
    """The Final Cut 7 XML `filter` element (as the adapter's metadata) setting `volume`."""
    return {
        "filter": {
            "effect": {
                **_LEVELS,
                "mediatype": "audio",
                "parameter": {
                    "parameterid": "level",
                    "name": "Level",
                    "valuemin": "0",
                    "valuemax": "3.98109",
                    "value": f"{volume:.6g}",
                },
            }
        }
    }


def fcpx_name(name: str) -> str:
    """A clip name the FCPXML adapter can look up (it quotes names with ' in its queries)."""
    return name.replace("'", "\u2019")


def _clip(
    clip_name: str,
    url: str | None,
    media: Mapping[str, str],
    start: int,
    duration: int,
    fps: float,
) -> otio.schema.Clip:
    where = media.get(url) if url is not None else None
    reference: otio.core.MediaReference
    if where is None:
        reference = otio.schema.MissingReference(name=clip_name)
    else:
        reference = otio.schema.ExternalReference(
            target_url=where, available_range=_range(0, start + duration, fps)
        )
    return otio.schema.Clip(
        name=clip_name, media_reference=reference, source_range=_range(start, duration, fps)
    )


def _gap(frames: int, fps: float, fmt: Format) -> otio.schema.Gap:
    """A gap; in FCPXML its own time starts at 3600 s (the adapter writes that), so that a
    marker on it is placed in that time."""
    start = round(_GAP_START_SECONDS * fps) if fmt == "fcpxml" else 0
    return otio.schema.Gap(source_range=_range(start, frames, fps))


def _track(lane: Lane, media: Mapping[str, str], fps: float, fmt: Format) -> otio.schema.Track:
    kind = otio.schema.TrackKind.Video if lane.kind == "video" else otio.schema.TrackKind.Audio
    track = otio.schema.Track(name=lane.name, kind=kind)
    at = 0
    for clip in lane.clips:
        if clip.start > at:
            track.append(_gap(clip.start - at, fps, fmt))
        if clip.url is None and fmt == "fcpxml":  # it would point at /tmp/<name>
            track.append(_gap(clip.duration, fps, fmt))
            at = clip.start + clip.duration
            continue
        name = fcpx_name(clip.name) if fmt == "fcpxml" else clip.name
        item = _clip(name, clip.url, media, 0, clip.duration, fps)
        if clip.volume is not None:
            item.metadata[NAMESPACE] = {"volume": clip.volume}
            if fmt == "xml":
                item.metadata["fcp_xml"] = levels_filter(clip.volume)
        track.append(item)
        at = clip.start + clip.duration
    return track


def _marker(mark: Mark, start: int, fps: float) -> otio.schema.Marker:
    return otio.schema.Marker(
        name=mark.text,
        marked_range=_range(start, mark.duration, fps),
        # Neither red nor green: FCPXML makes those to-do markers.
        color=otio.schema.MarkerColor.CYAN
        if mark.track == "Captions"
        else otio.schema.MarkerColor.PURPLE,
        metadata={NAMESPACE: {"track": mark.track}},
    )


def _pad(track: otio.schema.Track, frames: int, fps: float) -> None:
    """Fill `track` with a gap up to `frames`."""
    length = track.duration().to_frames()
    if length < frames:
        track.append(_gap(frames - length, fps, "fcpxml"))


def _mark_on_items(track: otio.schema.Track, mark: Mark, fps: float) -> None:
    """Put `mark` on the item of `track` under its start, in that item's own time."""
    for item in track:
        where = track.range_of_child(item)
        first = where.start_time.to_frames()
        if first <= mark.start < first + where.duration.to_frames():
            source = item.trimmed_range().start_time.to_frames()
            item.markers.append(_marker(mark, source + mark.start - first, fps))
            return


def fcpx_places(plan: Plan) -> list[int | None]:
    """For each of `plan.marks`: the lane (index into `plan.lanes`) whose clip with media is
    under its start, the first video lane first (FCPXML's main line), then the others; None
    when only a gap is there."""
    video = next((n for n, lane in enumerate(plan.lanes) if lane.kind == "video"), None)
    order = ([] if video is None else [video]) + [n for n in range(len(plan.lanes)) if n != video]

    def under(lane: Lane, frame: int) -> bool:
        return any(
            c.url is not None and c.start <= frame < c.start + c.duration for c in lane.clips
        )

    return [next((n for n in order if under(plan.lanes[n], m.start)), None) for m in plan.marks]


def build(plan: Plan, media: Mapping[str, str], fmt: Format) -> otio.schema.Timeline:
    """The timeline of `plan` for `fmt`; `media` maps each link to its file (relative)."""
    fps = plan.fps
    timeline = otio.schema.Timeline(name=plan.title)
    timeline.global_start_time = _time(0, fps)
    timeline.metadata[NAMESPACE] = {"fps": fps, "not_carried": list(not_carried(plan, fmt))}
    for lane in plan.lanes:
        timeline.tracks.append(_track(lane, media, fps, fmt))
    if fmt != "fcpxml":
        timeline.tracks.markers.extend(_marker(m, m.start, fps) for m in plan.marks)
        return timeline
    tracks = list(timeline.tracks)  # one per lane, in the plan's order
    videos = [t for t in tracks if t.kind == otio.schema.TrackKind.Video]
    if not videos:
        videos = [otio.schema.Track(name="Video", kind=otio.schema.TrackKind.Video)]
        timeline.tracks.insert(0, videos[0])
    _pad(videos[0], plan.duration, fps)
    for mark, place in zip(plan.marks, fcpx_places(plan), strict=True):
        _mark_on_items(videos[0] if place is None else tracks[place], mark, fps)
    return timeline


def not_carried(plan: Plan, fmt: Format) -> list[str]:
    """What `fmt` cannot hold of `plan`, as sentences (the plan's own notes first)."""
    notes = list(plan.not_carried)
    for lane in plan.lanes:
        for clip in lane.clips:
            if clip.url is None:
                instead = (
                    "FCPXML holds no clip without media, so a gap keeps its place"
                    if fmt == "fcpxml"
                    else "its clip is there without media (offline)"
                )
                notes.append(
                    f'"{clip.name}" on {lane.name} has no media link in the draft; {instead}.'
                )
    if plan.marks:
        where = "markers on the timeline" if fmt != "fcpxml" else "markers on the clips under them"
        notes.append(
            f"Flattened: the titles' and captions' style (font, size, colour, position); "
            f"their {len(plan.marks)} texts are {where}, at their times."
        )
    if fmt == "fcpxml":
        for mark, place in zip(plan.marks, fcpx_places(plan), strict=True):
            if place is None:
                notes.append(
                    f'"{mark.text}" ({mark.track}) starts where no clip plays: it is a marker '
                    "on the gap there, which Final Cut Pro shows and DaVinci Resolve may drop."
                )
        notes.extend(volume_notes(plan.lanes))
    return notes


__all__ = [
    "NAMESPACE",
    "Format",
    "build",
    "fcpx_name",
    "fcpx_places",
    "levels_filter",
    "not_carried",
    "percent",
]
