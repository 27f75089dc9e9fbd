"""Skill identity: SKILL.md frontmatter, install platform, and the five product skills.

Every backend request carries `X-Skill-Source`, `X-Skill-Version` and
`X-Skill-Platform`. The version comes from SKILL.md's YAML frontmatter, the
platform from where the skill is installed, and the source from the active
skill's name: one of the five public product skills of the backend.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path, PurePath
from typing import Any

from nemo_mcp.errors import SkillFileError

MB = 1000 * 1000

#: Upload types every skill accepts (BACKEND.md).
UPLOAD_TYPES: tuple[str, ...] = (
    "mp4", "mov", "avi", "webm", "mkv",
    "jpg", "png", "gif", "webp",
    "mp3", "wav", "m4a", "aac",
)  # fmt: skip

#: Script documents whose text `generate` reads locally and sends with the request.
SCRIPT_TYPES: tuple[str, ...] = ("txt", "md", "docx", "pdf")


@dataclass(frozen=True)
class Example:
    """A "Try saying" request (served as an MCP prompt): what the user says, and what it does."""

    text: str
    about: str


#: The same last step in every skill.
EXPORT = Example(
    "export the video as a 1080p MP4",
    "Render the current video and save the MP4 on this computer (free).",
)


@dataclass(frozen=True)
class Skill:
    """One product skill of the backend (its `name` is the `X-Skill-Source` value and
    NEMO_SKILL's choice): what its users bring and what it accepts."""

    name: str
    title: str
    brings: str
    max_upload_bytes: int
    try_saying: tuple[Example, ...]
    recommended_types: tuple[str, ...]
    accepts_scripts: bool = False
    upload_types: tuple[str, ...] = UPLOAD_TYPES

    @property
    def max_upload_label(self) -> str:
        return f"{self.max_upload_bytes / MB:g} MB"

    def limited_to(self, max_bytes: int | None) -> Skill:
        """This skill with a lower per-file upload limit (never a higher one)."""
        if max_bytes is None or max_bytes >= self.max_upload_bytes:
            return self
        return replace(self, max_upload_bytes=max_bytes)


SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill(
            name="ai-generator-generator",
            title="AI Generator Generator",
            brings="text prompts",
            max_upload_bytes=500 * MB,
            try_saying=(
                Example(
                    "make a video from my text prompt",
                    "Start a new video from a prompt: its subject, style, mood and length.",
                ),
                EXPORT,
                Example(
                    "generate a video from this prompt: "
                    "'a futuristic city at sunset with flying cars'",
                    "A ready-made example: a new clip of a city at sunset.",
                ),
            ),
            recommended_types=("mp4", "mov", "webm", "gif"),
        ),
        Skill(
            name="image-to-video-by-prompt",
            title="Image to Video by Prompt",
            brings="images and a motion prompt",
            max_upload_bytes=200 * MB,
            try_saying=(
                Example(
                    "animate my images the way I describe",
                    "Turn photos you upload into a video that moves as your prompt says.",
                ),
                EXPORT,
                Example(
                    "animate this image into a 5-second video of the shoes in motion on a track",
                    "A ready-made example: a product photo brought to life in 5 seconds.",
                ),
            ),
            recommended_types=("jpg", "png", "webp"),
        ),
        Skill(
            name="free-video-generator-from-script",
            title="Free Video Generator from Script",
            brings="a written script (TXT, Markdown, DOCX, PDF or plain text)",
            max_upload_bytes=500 * MB,
            try_saying=(
                Example(
                    "make a video from the script I paste or attach",
                    "A video of your script (TXT, Markdown, DOCX or PDF): a scene for each line.",
                ),
                EXPORT,
                Example(
                    "turn my script into a video with voiceover and matching visuals",
                    "A ready-made example: your script told with a voice and pictures to match.",
                ),
            ),
            recommended_types=("txt", "docx", "pdf"),
            accepts_scripts=True,
        ),
        Skill(
            name="meta-video-generation-free",
            title="Meta Video Generation Free",
            brings="text or images",
            max_upload_bytes=200 * MB,
            try_saying=(
                Example(
                    "make a video from my words or my photos",
                    "Start a video from a few words, or from photos you upload.",
                ),
                EXPORT,
                Example(
                    "generate a 30-second video from my product photos and tagline",
                    "A ready-made example: your product photos under your tagline.",
                ),
            ),
            recommended_types=("jpg", "png", "mp4", "mov"),
        ),
        Skill(
            name="ai-video-generation-online",
            title="AI Video Generation Online",
            brings="text or images, for promotional videos",
            max_upload_bytes=200 * MB,
            try_saying=(
                Example(
                    "make a 1080p promotional video from a short script or three product photos",
                    "A promotional video from a few lines of text, or from product photos.",
                ),
                Example(
                    "generate a 30-second promotional video from this product description",
                    "A ready-made example: a 30-second promo of a product you describe.",
                ),
                EXPORT,
            ),
            recommended_types=("mp4", "mov", "jpg", "png"),
        ),
    )
}

_FRONTMATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


@dataclass(frozen=True)
class SkillIdentity:
    """The three attribution header values, plus the active skill."""

    skill: Skill
    version: str
    platform: str
    skill_file: Path

    @property
    def source(self) -> str:
        return self.skill.name

    def headers(self) -> dict[str, str]:
        return {
            "X-Skill-Source": self.source,
            "X-Skill-Version": self.version,
            "X-Skill-Platform": self.platform,
        }


def parse_frontmatter(text: str) -> dict[str, Any]:
    """Return the YAML frontmatter of a skill document as a mapping."""
    import yaml  # not at start-up when the identity is remembered (`read_name_version`)

    match = _FRONTMATTER.match(text)
    if match is None:
        raise SkillFileError("SKILL.md has no YAML frontmatter between '---' lines")
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        raise SkillFileError(f"SKILL.md frontmatter is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise SkillFileError("SKILL.md frontmatter must be a mapping")
    return data


def frontmatter_name_version(data: dict[str, Any]) -> tuple[str, str]:
    """`name` and `version` from frontmatter; `version` may also sit under `metadata`."""
    name = data.get("name")
    version = data.get("version")
    metadata = data.get("metadata")
    if version is None and isinstance(metadata, dict):
        version = metadata.get("version")
    if not isinstance(name, str) or not name.strip():
        raise SkillFileError("SKILL.md frontmatter has no 'name'")
    if version is None or isinstance(version, (dict, list, bool)) or not str(version).strip():
        raise SkillFileError("SKILL.md frontmatter has no 'version'")
    return name.strip(), str(version).strip()


def read_name_version(text: str, remembered: Path | None = None) -> tuple[str, str]:
    """`name` and `version` of a SKILL.md's text, read with a YAML parser.

    With `remembered` (a small file in the state folder), the result for this exact text
    (by its SHA-256) is kept there, so later starts skip loading the YAML parser (about
    18 ms of a cold start). Any change to the text is read and checked again; a missing
    or damaged file is only a cache miss."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if remembered is not None:
        with contextlib.suppress(OSError, ValueError):
            known = json.loads(remembered.read_text(encoding="utf-8"))
            pair = known.get(digest) if isinstance(known, dict) else None
            if isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, str) for v in pair):
                return pair[0], pair[1]
    name, version = frontmatter_name_version(parse_frontmatter(text))
    if remembered is not None:
        with contextlib.suppress(OSError):
            remembered.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            part = remembered.with_name(f".{remembered.name}.{os.getpid()}.part")
            part.write_text(json.dumps({digest: [name, version]}), encoding="utf-8")
            os.replace(part, remembered)
    return name, version


def default_skill_file() -> Path:
    """SKILL.md as installed with the package, or at the top of a source checkout."""
    packaged = resources.files("nemo_mcp").joinpath("SKILL.md")
    if packaged.is_file():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "SKILL.md"


def detect_platform(install_path: str | PurePath) -> str:
    """`clawhub`, `cursor` or `unknown` from where the skill is installed, on any OS.

    `~/.clawhub/` and `~/.cursor/skills/` are matched as path segments with
    either slash and any letter case, so `C:\\Users\\me\\.cursor\\skills\\x` counts.
    """
    path = str(install_path).replace("\\", "/").lower().rstrip("/") + "/"
    if "/.clawhub/" in path:
        return "clawhub"
    if "/.cursor/skills/" in path:
        return "cursor"
    return "unknown"


def load_identity(
    *,
    skill: str | None = None,
    skill_source_override: str | None = None,
    skill_file: Path | None = None,
    install_path: str | PurePath | None = None,
    remembered: Path | None = None,
) -> SkillIdentity:
    """Resolve the attribution values once (`remembered`: see `read_name_version`).

    `skill` (NEMO_SKILL) picks the skill; else the one SKILL.md names.
    `skill_source_override` (SKILL_SOURCE) overrides the detected platform.
    """
    path = skill_file or default_skill_file()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SkillFileError(f"cannot read {path}: {err.strerror or err}") from err
    name, version = read_name_version(text, remembered)
    chosen = (skill or name).strip()
    if chosen not in SKILLS:
        choices = ", ".join(SKILLS)
        raise SkillFileError(f"unknown skill {chosen!r}; choose one of: {choices}")
    if skill_source_override and skill_source_override.strip():
        platform = skill_source_override.strip()
    else:
        platform = detect_platform(install_path or path.parent)
    return SkillIdentity(skill=SKILLS[chosen], version=version, platform=platform, skill_file=path)
