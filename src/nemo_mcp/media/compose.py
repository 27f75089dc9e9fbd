"""Composing a simple timeline into an H.264/AAC MP4 (the sandbox's renders).

`render` draws a `Composition` (see `scene.py`) frame by frame at a fixed size and rate
(pictures from `pictures.py`, sound from `tones.py`), streams every frame straight into the
encoder (memory stays flat whatever the length), and writes the file only when it is whole.
The same composition always gives the same bytes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from nemo_mcp.media.convert import replacing
from nemo_mcp.media.pictures import Source, open_source, text_layer
from nemo_mcp.media.scene import (
    RENDERER_VERSION,
    Caption,
    Card,
    Composition,
    Footage,
    Motion,
    Rendered,
    RenderStopped,
    Shot,
    Still,
    Tone,
    Visual,
    palette,
)
from nemo_mcp.media.tones import CHORDS, CHUNK, SAMPLE_RATE, Sound

if TYPE_CHECKING:
    from av.audio.stream import AudioStream
    from av.container import OutputContainer


def _top_shot(shots: list[Shot], ms: float) -> int | None:
    best: int | None = None
    for index, shot in enumerate(shots):
        if shot.start_ms <= ms < shot.start_ms + shot.duration_ms and (
            best is None or (shot.layer, shot.start_ms) >= (shots[best].layer, shots[best].start_ms)
        ):
            best = index
    return best


def _add_audio(out: OutputContainer) -> AudioStream:
    stream = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")  # a stand-in: one voice
    stream.bit_rate = 96_000
    stream.codec_context.options = {"aac_coder": "fast"}
    return stream


def render(
    composition: Composition,
    output: str | os.PathLike[str],
    *,
    progress: Callable[[float], None] | None = None,
    stop: threading.Event | None = None,
) -> Rendered:
    """Draw `composition` into an MP4 at `output` (H.264 + AAC, faststart).

    Blocking; run it in a worker thread. `stop` set: RenderStopped, and no file is left.
    """
    import av
    from PIL import Image

    size = (composition.width, composition.height)
    shots = sorted(composition.shots, key=lambda s: (s.start_ms, s.layer))
    captions = [
        (
            c,
            *text_layer(
                c.text,
                size,
                height=max(12, composition.height // 10),
                band=True,
                middle=0.78,
                lines=2,
            ),
        )
        for c in composition.captions
        if c.text.strip() and c.duration_ms > 0
    ]
    sound = Sound(composition.tones)
    total = composition.frames
    samples_total = round(composition.duration_ms * SAMPLE_RATE / 1000)
    sources: dict[int, Source] = {}
    dst = Path(output)
    try:
        with replacing(dst) as partial:
            with av.open(
                str(partial), "w", format="mp4", options={"movflags": "+faststart"}
            ) as out:
                video = out.add_stream(
                    "libx264",
                    rate=composition.fps,
                    # One thread: the same bytes every time, and a core left for everything else.
                    options={
                        "preset": "ultrafast",
                        "crf": "23",
                        "threads": "1",
                        "g": str(composition.fps * 2),
                    },
                )
                video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
                audio = _add_audio(out)
                to_yuv = av.video.reformatter.VideoReformatter()
                sample = 0
                for index in range(total):
                    if stop is not None and stop.is_set():
                        raise RenderStopped
                    ms = index * 1000 / composition.fps
                    for done in [
                        i for i in sources if shots[i].start_ms + shots[i].duration_ms <= ms
                    ]:
                        sources.pop(done).close()
                    top = _top_shot(shots, ms)
                    if top is None:
                        image = Image.new("RGB", size, (0, 0, 0))
                    else:
                        if top not in sources:
                            sources[top] = open_source(shots[top], size)
                        image = sources[top].frame((ms - shots[top].start_ms) / 1000)
                    for caption, layer, at in captions:
                        if caption.start_ms <= ms < caption.start_ms + caption.duration_ms:
                            image.paste(layer, at, layer)
                    rgb = av.VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
                    frame = to_yuv.reformat(rgb, format="yuv420p", interpolation="POINT")
                    frame.pts = index
                    out.mux(video.encode(frame))
                    until = min(samples_total, round((index + 1) * SAMPLE_RATE / composition.fps))
                    sample = _put_sound(out, audio, sound, sample, until)
                    if progress is not None and index % 12 == 0:
                        progress(index / total)
                _put_sound(out, audio, sound, sample, samples_total)
                out.mux(video.encode(None))
                out.mux(audio.encode(None))
            size_bytes = partial.stat().st_size
    finally:
        for source in sources.values():
            source.close()
    if progress is not None:
        progress(1.0)
    return Rendered(dst, size_bytes, total, total / composition.fps)


def _put_sound(
    out: OutputContainer, stream: AudioStream, sound: Sound, sample: int, until: int
) -> int:
    import av

    while sample < until:
        count = min(CHUNK, until - sample)
        data = sound.chunk(sample, count)
        frame = av.AudioFrame(format="fltp", layout="mono", samples=count)
        frame.planes[0].update(data)
        frame.sample_rate, frame.pts = SAMPLE_RATE, sample
        frame.time_base = Fraction(1, SAMPLE_RATE)
        out.mux(stream.encode(frame))
        sample += count
    return sample


__all__ = [
    "CHORDS",
    "RENDERER_VERSION",
    "Caption",
    "Card",
    "Composition",
    "Footage",
    "Motion",
    "RenderStopped",
    "Rendered",
    "Shot",
    "Still",
    "Tone",
    "Visual",
    "palette",
    "render",
]
