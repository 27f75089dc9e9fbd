"""The scripted agent's mind, without I/O: what a message asks for, how the draft
changes, and what the agent answers (in the backend's GUI phrasing).

Drafts use the backend's short keys (`t`, `tt`, `sg`, `s`, `d`, `m`); every
function returns a new draft and never changes the one it was given, and
tracks and segments keep their `id` across edits.

A request may bring words to tell rather than a prompt: a script (the text `generate` sends
after "Script:") or a product description ("... from this product description: ..."). Its
lines become a `Story`: a heading-like first line is the title, and every other line is shown
as a caption over its share of the video after the title (over one generated scene per line,
or over the uploaded photos when there are some).
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from nemo_mcp.sandbox.composition import music_name
from nemo_mcp.sandbox.world import new_id

VIDEO, AUDIO, TEXT = 0, 1, 7
DEFAULT_MS = 10_000
TITLE_MS = 3_000
DEFAULT_VOLUME = 0.35
IMAGE_MS = 3_000
CLIP_MS = 5_000
LINE_MS = 4_000  # a story line's share of the video when no length is asked
MAX_LINES = 12
TITLE_TRACK = "Title"
CAPTIONS_TRACK = "Captions"
#: How `generate` sends a script file's text after the request (`request_text`).
SCRIPT_MARK = "\n\nScript:\n"

#: Music styles by keyword; genres come before moods, so "upbeat jazz" is jazz.
MOODS: tuple[tuple[str, str], ...] = (
    (r"lo-?fi|chill", "Lo-fi Chill"),
    (r"jazz", "Smooth Jazz"),
    (r"rock|guitar", "Indie Rock"),
    (r"piano", "Gentle Piano"),
    (r"epic|cinematic|dramatic|orchestra", "Epic Cinematic"),
    (r"upbeat|happy|energetic|fun|pop|party", "Upbeat Pop"),
    (r"calm|relax|ambient|peaceful|soft|sleep|sad|emotional", "Calm Ambient"),
)
LIBRARY = tuple(name for _, name in MOODS)

_F = re.IGNORECASE
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”|「([^」]+)」|(?:(?<=\s)|^)\'([^\']+)\'(?=[\s.,!?;:]|$)')
_MUSIC = re.compile(r"\b(music|bgm|song|soundtrack|tune)\b|背景音乐|音乐", _F)
_TITLE = re.compile(r"\b(title|text|caption|heading)\b|标题|字幕", _F)
_REMOVE = re.compile(r"\b(remove|delete|drop|mute|no|without|take out|get rid of)\b|删除|去掉", _F)
_PERCENT = re.compile(r"(\d{1,3})\s*%|\bvolume\s+(?:to\s+|at\s+)?(\d{1,3})\b", _F)
_LOUDER = re.compile(r"\b(louder|turn (?:it |the music )?up|increase the volume)\b", _F)
_QUIETER = re.compile(
    r"\b(quieter|softer|turn (?:it |the music )?down|lower the (?:music|volume))\b", _F
)
_TITLED = re.compile(r"\b(title|tagline|slogan|headline)\b", _F)
_DESCRIPTION = re.compile(r"\bdescription\s*:\s*(.+)$", _F | re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_LINE_MARK = re.compile(r"^(?:#+|[-*\u2022]|\d+[.)])\s+")
_TITLE_LINE = re.compile(r"^title\s*:\s*", _F)
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)\s*-?\s*(?:s|secs?|seconds?)\b", _F)
_TRIM = re.compile(r"\b(trim|cut|shorten)\b", _F)
_SHORTER = re.compile(r"\bshorter\b", _F)
_GENERATE = re.compile(
    r"\b(generate|create|make|produce|render)\b(?:\s+me)?\s+(?:a|an|another|one|new|a new|some)\s+"
    r"(?:[\w-]+\s+){0,3}?(?:video|clip|movie|film|animation|reel)s?\b"
    r"|\bfrom (?:this|my|the following) (?:prompt|script)\b"
    r"|^\s*(?:a\s+)?video\s+(?:of|about|showing)\b",
    _F,
)
_VERB = re.compile(r"^\s*(?:please\s+)?(generate|create|produce)\b", _F)
_GREETING = re.compile(
    r"^\s*(hi|hello|hey|thanks|thank you|good (morning|afternoon|evening)|你好)\b", _F
)
_QUESTION = re.compile(
    r"^\s*(what|how|why|who|when|where|which|can|could|do|does|is|are|will|would)\b", _F
)
_PROMPT = re.compile(
    r"(?:prompt|script)\s*:\s*(.+)$|\b(?:video|clip|movie|film|animation|reel)s?\s+"
    r"(?:of|about|showing|featuring)\s+(.+)$",
    _F | re.DOTALL,
)
_CONNECTIVES = ("with", "and", "while", "that", "where")
_SMALL = {"a", "an", "the", "at", "of", "in", "on", "and", "or", "with", "for", "to", "by"}


# intents -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AddMusic:
    name: str | None = None  # None: chosen from the library


@dataclass(frozen=True)
class AddTitle:
    text: str | None = None  # None: the project's title


@dataclass(frozen=True)
class RemoveMusic:
    pass


@dataclass(frozen=True)
class RemoveTitle:
    pass


@dataclass(frozen=True)
class SetVolume:
    level: float | None = None  # absolute 0-1, else `step`
    step: float = 0.0


@dataclass(frozen=True)
class Trim:
    seconds: float | None = None  # None: a quarter shorter


Edit = AddMusic | AddTitle | RemoveMusic | RemoveTitle | SetVolume | Trim


@dataclass(frozen=True)
class Story:
    """Words brought to be told: the title they name (if any) and the lines to show."""

    title: str | None
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Intent:
    kind: Literal["generate", "edit", "chat"]
    prompt: str = ""
    edits: tuple[Edit, ...] = ()
    story: Story | None = None


def quoted(text: str) -> str | None:
    match = _QUOTED.search(text)
    return next((g for g in match.groups() if g), None) if match else None


def mood_music(text: str) -> str | None:
    for pattern, name in MOODS:
        if re.search(rf"\b(?:{pattern})\b", text, _F):
            return name
    return None


def parse_edits(text: str) -> list[Edit]:
    """The edits a message asks for, in a fixed order."""
    edits: list[Edit] = []
    removing = bool(_REMOVE.search(text))
    music, title = bool(_MUSIC.search(text)), bool(_TITLE.search(text))
    if removing and music:
        edits.append(RemoveMusic())
    if removing and title:
        edits.append(RemoveTitle())
    percent = _PERCENT.search(text)
    if percent and (music or "volume" in text.lower()):
        edits.append(SetVolume(level=min(100, int(percent.group(1) or percent.group(2))) / 100))
    elif _LOUDER.search(text):
        edits.append(SetVolume(step=0.15))
    elif _QUIETER.search(text):
        edits.append(SetVolume(step=-0.15))
    volume = any(isinstance(e, SetVolume) for e in edits)
    if music and not removing and not volume:
        edits.append(AddMusic(mood_music(text)))
    if title and not removing:
        edits.append(AddTitle(quoted(text)))
    seconds = _SECONDS.search(text)
    if _TRIM.search(text) and seconds:
        edits.append(Trim(float(seconds.group(1))))
    elif _SHORTER.search(text) or _TRIM.search(text):
        edits.append(Trim(None))
    return edits


def has_video(draft: dict[str, Any] | None) -> bool:
    return any(t.get("tt") == VIDEO and t.get("sg") for t in (draft or {}).get("t", []))


def request_of(text: str) -> str:
    """The request's own words, without a script sent after them."""
    return text.partition(SCRIPT_MARK)[0]


def _story_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = " ".join(_LINE_MARK.sub("", raw.strip()).split())
        if line:
            lines.append(line)
    return lines


def story_of(text: str) -> Story | None:
    """The script sent with `text`, else the product description it gives, as a `Story`."""
    head, mark, script = text.partition(SCRIPT_MARK)
    if mark:
        lines = _story_lines(script)
    else:
        found = _DESCRIPTION.search(head)
        if found is None:
            return None
        lines = [
            part
            for line in _story_lines(found.group(1).strip().strip("\"'“”"))
            for part in _SENTENCE_END.split(line)
            if part.strip()
        ]
    title = None
    if len(lines) > 1 and (
        _TITLE_LINE.match(lines[0])
        or (len(lines[0].split()) <= 8 and not lines[0].endswith((".", "!", "?", ",", ";")))
    ):
        title = _TITLE_LINE.sub("", lines.pop(0)).strip().rstrip(":") or None
    if not lines:
        return None
    return Story(title, tuple(lines[:MAX_LINES]))


def classify(text: str, draft: dict[str, Any] | None) -> Intent:
    """Generation, edit or chat: what the backend's agent would do with `text`.

    A script sent with the request is always for a new video: that is what scripts are for."""
    head = request_of(text)
    if head != text or _GENERATE.search(head):
        return Intent("generate", prompt=extract_prompt(head), story=story_of(text))
    edits = tuple(parse_edits(text))
    if has_video(draft):
        return Intent("edit", edits=edits) if edits else Intent("chat")
    if _GREETING.search(text) or _QUESTION.search(text) or text.strip().endswith("?"):
        return Intent("chat")
    if edits and not _VERB.search(text):
        return Intent("chat")  # an edit with nothing to edit yet
    return Intent("generate", prompt=extract_prompt(text), story=story_of(text))


# words from a prompt ---------------------------------------------------------------------
def extract_prompt(text: str) -> str:
    match = _PROMPT.search(text)
    prompt = next((g for g in match.groups() if g), text) if match else text
    return " ".join(prompt.strip().strip("\"'“”「」").split()).rstrip(".!")


def label_of(prompt: str) -> str:
    """A short clip label: 'a futuristic city at sunset with cars' -> 'futuristic city at
    sunset'."""
    words = prompt.replace(",", " ,").split()
    while words and words[0].lower() in ("a", "an", "the"):
        words.pop(0)
    cut: list[str] = []
    for word in words:
        if (cut and word == ",") or (len(cut) >= 2 and word.lower() in _CONNECTIVES):
            break
        cut.append(word)
    label = " ".join(cut[:6]).strip(" ,")
    return label[:48] or "video"


def title_of(label: str) -> str:
    words = label.split()
    return " ".join(
        w if i and w.lower() in _SMALL else w[:1].upper() + w[1:] for i, w in enumerate(words)
    )


def asked_ms(text: str) -> int | None:
    """Milliseconds asked for ('a 30-second clip'), within 3-60 s; None when none is."""
    match = _SECONDS.search(text)
    if not match:
        return None
    return int(min(60.0, max(3.0, float(match.group(1)))) * 1000)


def duration_of(text: str) -> int:
    """Milliseconds asked for ('a 30-second clip'), within 3-60 s; else 10 s."""
    asked = asked_ms(text)
    return DEFAULT_MS if asked is None else asked


def named_title(text: str) -> str | None:
    """The words a request quotes as its title, tagline or slogan."""
    head = request_of(text)
    return quoted(head) if _TITLED.search(head) else None


def shares(total: int, count: int) -> list[int]:
    """`total` ms cut into `count` whole-millisecond parts that add up to it exactly."""
    edges = [round(total * n / count) for n in range(count + 1)]
    return [b - a for a, b in itertools.pairwise(edges)]


# drafts -----------------------------------------------------------------------------------
def _track(tt: int, name: str, segments: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": new_id("trk_"), "tt": tt, "m": {"name": name}, "sg": segments}


def _segment(start: int, length: int, meta: dict[str, Any]) -> dict[str, Any]:
    return {"id": new_id("seg_"), "s": start, "d": length, "m": meta}


Clip = tuple[str, str, int] | tuple[str, str, int, Mapping[str, Any]]


def raw_draft(title: str, clips: Sequence[Clip]) -> dict[str, Any]:
    """A draft holding only the video track: `clips` are (name, url, ms[, more metadata]) in
    order. Generated clips carry their `prompt`, uploads their `type` ("video", "image"),
    in `m` beside `name` and `url` (the link a render finds the upload by)."""
    segments, start = [], 0
    for name, url, length, *more in clips:
        extra = dict(more[0]) if more else {}
        segments.append(_segment(start, length, {"name": name, "url": url, **extra}))
        start += length
    return {
        "t": [_track(VIDEO, "Video", segments)],
        "d": start,
        "m": {"title": title, "width": 1920, "height": 1080},
    }


def _tracks(draft: dict[str, Any], tt: int) -> list[dict[str, Any]]:
    return [t for t in draft["t"] if t.get("tt") == tt]


def _is_captions(track: dict[str, Any]) -> bool:
    return track.get("tt") == TEXT and track.get("m", {}).get("name") == CAPTIONS_TRACK


def _title_tracks(draft: dict[str, Any]) -> list[dict[str, Any]]:
    """Text tracks holding a title (every text track but the captions)."""
    return [t for t in _tracks(draft, TEXT) if not _is_captions(t)]


def story_scenes(story: Story, asked: int | None) -> list[int]:
    """The length of the scene of each of `story`'s lines, so that scene and caption meet: the
    first scene also holds the title. `asked` (ms) is the whole video's length, when asked."""
    count = len(story.lines)
    total = asked or TITLE_MS + LINE_MS * count
    after = captions_from(total)
    lengths = shares(total - after, count)
    lengths[0] += after
    return lengths


def captions_from(total: int) -> int:
    """Where a story's captions start in a video of `total` ms: after the title."""
    return TITLE_MS if total > TITLE_MS else 0


def with_captions(draft: dict[str, Any], lines: Sequence[str], after: int = 0) -> dict[str, Any]:
    """`draft` with `lines` as captions, in order, sharing the time from `after` (where the
    title ends: text never covers text) to the end equally."""
    new = copy.deepcopy(draft)
    new["t"] = [t for t in new["t"] if not _is_captions(t)]
    start = after if 0 <= after < new["d"] else 0
    if lines:
        segments = []
        for line, length in zip(lines, shares(new["d"] - start, len(lines)), strict=True):
            segments.append(_segment(start, length, {"text": line}))
            start += length
        new["t"].append(_track(TEXT, CAPTIONS_TRACK, segments))
    return new


def with_music(
    draft: dict[str, Any], name: str, url: str | None = None, *, library: str | None = None
) -> dict[str, Any]:
    """`draft` with its BGM set to `name` (replacing any, keeping its volume): an upload at
    its `url`, else library music, linked to its file under the sandbox's URL `library`."""
    new = copy.deepcopy(draft)
    if url is None and library is not None:
        url = f"{library}/files/music/{music_name(name, new['d'])}"
    old = _tracks(new, AUDIO)
    volume = (
        old[0]["sg"][0]["m"].get("volume", DEFAULT_VOLUME)
        if old and old[0]["sg"]
        else DEFAULT_VOLUME
    )
    meta: dict[str, Any] = {"name": name, "volume": volume}
    if url:
        meta["url"] = url
    if old:
        segment = old[0]["sg"][0] if old[0]["sg"] else _segment(0, new["d"], {})
        old[0]["sg"] = [{**segment, "s": 0, "d": new["d"], "m": meta}]
        new["t"] = [t for t in new["t"] if t.get("tt") != AUDIO or t is old[0]]
    else:
        new["t"].append(_track(AUDIO, "BGM", [_segment(0, new["d"], meta)]))
    return new


def with_title(draft: dict[str, Any], text: str) -> dict[str, Any]:
    new = copy.deepcopy(draft)
    old = _title_tracks(new)
    length = min(TITLE_MS, new["d"])
    if old and old[0]["sg"]:
        old[0]["sg"][0]["m"] = {**old[0]["sg"][0]["m"], "text": text}
    elif old:
        old[0]["sg"] = [_segment(0, length, {"text": text})]
    else:
        new["t"].append(_track(TEXT, TITLE_TRACK, [_segment(0, length, {"text": text})]))
    return new


def without(draft: dict[str, Any], tt: int) -> dict[str, Any]:
    """`draft` without its tracks of type `tt` (for text: its titles; captions stay)."""
    new = copy.deepcopy(draft)
    new["t"] = [t for t in new["t"] if t.get("tt") != tt or (tt == TEXT and _is_captions(t))]
    return new


def trimmed(draft: dict[str, Any], ms: int) -> dict[str, Any]:
    """Every track cut at `ms`; segments that would start after it are dropped."""
    new = copy.deepcopy(draft)
    for track in new["t"]:
        kept = []
        for seg in track["sg"]:
            if seg["s"] < ms:
                seg["d"] = min(seg["d"], ms - seg["s"])
                kept.append(seg)
        track["sg"] = kept
    new["d"] = ms
    return new


def music_volume(draft: dict[str, Any]) -> float | None:
    music = _tracks(draft, AUDIO)
    return (
        music[0]["sg"][0]["m"].get("volume", DEFAULT_VOLUME) if music and music[0]["sg"] else None
    )


def _pct(volume: float) -> int:
    return round(volume * 100)


@dataclass(frozen=True)
class Applied:
    """One edit's outcome: the new draft (None: nothing changed), its tool call, the reply."""

    draft: dict[str, Any] | None
    tool: str
    args: dict[str, Any]
    reply: str


def apply_edit(draft: dict[str, Any], edit: Edit, *, library: str | None = None) -> Applied:
    """`edit` applied to `draft`; music added from the library links its file under the
    sandbox's URL `library`."""
    export = "click the Export button to download your video."
    if isinstance(edit, AddMusic):
        current = _tracks(draft, AUDIO)
        now = current[0]["sg"][0]["m"].get("name") if current and current[0]["sg"] else None
        name = edit.name or next((n for n in LIBRARY if n != now), LIBRARY[0])
        new = with_music(draft, name, library=library)
        verb = (
            f'replaced the background music with "{name}"'
            if now
            else (f'added "{name}" as background music at {_pct(music_volume(new) or 0)}% volume')
        )
        return Applied(
            new,
            "add_bgm",
            {"name": name},
            f"I {verb}. Open the music panel to adjust it, then {export}",
        )
    if isinstance(edit, AddTitle):
        text = edit.text or draft.get("m", {}).get("title") or "My Video"
        had = bool(_title_tracks(draft))
        reply = (
            f'I changed the title to "{text}".'
            if had
            else f'I added the title "{text}" at the start.'
        )
        return Applied(
            with_title(draft, text),
            "add_title",
            {"text": text},
            f"{reply} Drag the text on the timeline to move it, then {export}",
        )
    if isinstance(edit, (RemoveMusic, RemoveTitle)):
        tt, what = (AUDIO, "background music") if isinstance(edit, RemoveMusic) else (TEXT, "title")
        if not (_tracks(draft, tt) if tt == AUDIO else _title_tracks(draft)):
            return Applied(
                None,
                "remove_track",
                {"track_type": tt},
                f"There is no {what} to remove. Open the "
                f"{'music' if tt == AUDIO else 'text'} panel to add one.",
            )
        return Applied(
            without(draft, tt),
            "remove_track",
            {"track_type": tt},
            f"I removed the {what}. Preview in timeline, then {export}",
        )
    if isinstance(edit, SetVolume):
        current_volume = music_volume(draft)
        if current_volume is None:
            return Applied(
                None,
                "set_volume",
                {},
                "There is no background music yet. Open the music panel to add some.",
            )
        level = edit.level if edit.level is not None else current_volume + edit.step
        level = round(max(0.05, min(1.0, level)), 2)
        new = copy.deepcopy(draft)
        for track in _tracks(new, AUDIO):
            for seg in track["sg"]:
                seg["m"]["volume"] = level
        return Applied(
            None if level == current_volume else new,
            "set_volume",
            {"volume": level},
            f"I set the music volume to {_pct(level)}%. Open the music panel to fine-tune it.",
        )
    length = draft.get("d", 0)
    target = (
        int(edit.seconds * 1000)
        if edit.seconds is not None
        else max(1000, round(length * 0.75 / 1000) * 1000)
    )
    if target <= 0 or target >= length:
        return Applied(
            None,
            "trim_video",
            {"duration_ms": target},
            f"The video is already {length / 1000:g} seconds long. "
            "Drag the clip edges on the timeline to change its length.",
        )
    return Applied(
        trimmed(draft, target),
        "trim_video",
        {"duration_ms": target},
        f"I trimmed the video to {target / 1000:g} seconds. "
        f"Drag the clip edges on the timeline to adjust the cut, then {export}",
    )


# replies ----------------------------------------------------------------------------------
RAW_READY = (
    'Your raw clip is ready: "{label}" ({seconds:g}s, 1920x1080). '
    "I'm adding background music and a title now."
)
FINISHED = (
    "I added background music and a title. Preview in timeline, then click the Export "
    "button to download your video."
)
TEMPORARY_ISSUE = "I encountered a temporary issue"


def chat_reply(text: str, draft: dict[str, Any] | None) -> str:
    if has_video(draft):
        names = [
            t.get("m", {}).get("name", "Track") for t in (draft or {}).get("t", []) if t.get("sg")
        ]
        return (
            f"Your video has {len(names)} track{'s' if len(names) != 1 else ''}: "
            f"{', '.join(names)}. "
            "Open the timeline panel to see them, or ask me to add music, change the title, "
            "adjust the volume or trim it. Click the Export button when you're done."
        )
    if parse_edits(text):
        return (
            "There is no video in this project yet. Describe the video you want and I'll "
            "generate it first."
        )
    return (
        'Hello! Tell me what video you\'d like, for example "a futuristic city at sunset", '
        "and I'll generate it. When it's ready, click the Export button to download it."
    )


__all__ = [
    "AddMusic",
    "AddTitle",
    "Applied",
    "Edit",
    "Intent",
    "RemoveMusic",
    "RemoveTitle",
    "SetVolume",
    "Story",
    "Trim",
    "apply_edit",
    "asked_ms",
    "captions_from",
    "chat_reply",
    "classify",
    "duration_of",
    "extract_prompt",
    "has_video",
    "label_of",
    "mood_music",
    "named_title",
    "parse_edits",
    "quoted",
    "raw_draft",
    "request_of",
    "shares",
    "story_of",
    "story_scenes",
    "title_of",
    "with_captions",
    "with_music",
    "with_title",
]
