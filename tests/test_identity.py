"""Skill identity: frontmatter read with a YAML parser, platform from the install path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nemo_mcp.errors import SkillFileError
from nemo_mcp.identity import SKILLS, detect_platform, load_identity, parse_frontmatter


@pytest.mark.parametrize(
    ("path", "platform"),
    [
        ("/home/me/.clawhub/skills/nemo", "clawhub"),
        ("~/.clawhub/nemo", "clawhub"),
        ("/Users/Me/.cursor/skills/nemo-mcp", "cursor"),
        ("C:\\Users\\Me\\.cursor\\skills\\nemo-mcp", "cursor"),
        ("C:\\Users\\Me\\.CLAWHUB\\nemo", "clawhub"),
        ("/home/me/.cursor/extensions/x", "unknown"),
        ("/opt/nemo", "unknown"),
        ("/home/me/my.clawhub.backup/x", "unknown"),
    ],
)
def test_detect_platform(path: str, platform: str) -> None:
    assert detect_platform(path) == platform


def write_skill(tmp_path: Path, front: str) -> Path:
    path = tmp_path / "SKILL.md"
    path.write_text(f"---\n{front}\n---\n# body\n", encoding="utf-8")
    return path


def test_repo_skill_md_names_a_skill() -> None:
    identity = load_identity()
    assert identity.source in SKILLS
    assert identity.version
    assert set(identity.headers()) == {"X-Skill-Source", "X-Skill-Version", "X-Skill-Platform"}


@pytest.mark.parametrize(
    ("front", "version"),
    [
        ("name: ai-generator-generator\nversion: 1.2.3", "1.2.3"),
        ("name: ai-generator-generator\nversion: 1.4", "1.4"),
        ("name: ai-generator-generator\nversion: '2.0'", "2.0"),
        ("name: ai-generator-generator\nmetadata:\n  version: 3.1.0", "3.1.0"),
        ("name: ai-generator-generator\ndescription: >\n  a: b --- c\nversion: 9", "9"),
    ],
)
def test_version_from_frontmatter(tmp_path: Path, front: str, version: str) -> None:
    identity = load_identity(skill_file=write_skill(tmp_path, front))
    assert identity.version == version
    assert identity.source == "ai-generator-generator"


def test_skill_override_and_platform_override(tmp_path: Path) -> None:
    path = write_skill(tmp_path, "name: ai-generator-generator\nversion: 1")
    identity = load_identity(
        skill="image-to-video-by-prompt", skill_source_override="cursor", skill_file=path
    )
    assert identity.headers() == {
        "X-Skill-Source": "image-to-video-by-prompt",
        "X-Skill-Version": "1",
        "X-Skill-Platform": "cursor",
    }
    assert identity.skill.max_upload_bytes == 200 * 1000 * 1000


def test_platform_detected_from_install_path(tmp_path: Path) -> None:
    folder = tmp_path / ".cursor" / "skills" / "nemo"
    folder.mkdir(parents=True)
    path = write_skill(folder, "name: ai-generator-generator\nversion: 1")
    assert load_identity(skill_file=path).platform == "cursor"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("# no frontmatter", "no YAML frontmatter"),
        ("---\nname: [unclosed\n---\n", "not valid YAML"),
        ("---\n- a list\n---\n", "must be a mapping"),
        ("---\nversion: 1\n---\n", "no 'name'"),
        ("---\nname: ai-generator-generator\n---\n", "no 'version'"),
        ("---\nname: nope\nversion: 1\n---\n", "unknown skill"),
    ],
)
def test_bad_skill_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "SKILL.md"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SkillFileError, match=message):
        load_identity(skill_file=path)


def test_missing_skill_file(tmp_path: Path) -> None:
    with pytest.raises(SkillFileError, match="cannot read"):
        load_identity(skill_file=tmp_path / "nope.md")


def test_frontmatter_with_bom_and_crlf() -> None:
    assert parse_frontmatter("\ufeff---\r\nname: x\r\nversion: 1\r\n---\r\nbody") == {
        "name": "x",
        "version": 1,
    }


def test_skills_match_the_seeds() -> None:
    limits = {name: s.max_upload_bytes // 1_000_000 for name, s in SKILLS.items()}
    assert limits == {
        "ai-generator-generator": 500,
        "image-to-video-by-prompt": 200,
        "free-video-generator-from-script": 500,
        "meta-video-generation-free": 200,
        "ai-video-generation-online": 200,
    }
    assert all(len(s.try_saying) >= 3 for s in SKILLS.values())
    assert SKILLS["free-video-generator-from-script"].accepts_scripts


def test_a_remembered_identity_skips_the_yaml_parser_until_the_text_changes(
    tmp_path: Path,
) -> None:
    skill = tmp_path / "SKILL.md"
    skill.write_text("---\nname: image-to-video-by-prompt\nversion: 2.1.0\n---\n# x\n")
    remembered = tmp_path / "home" / "nemo-mcp" / "skill-identity.json"
    probe = (
        "import sys; from pathlib import Path; from nemo_mcp.identity import load_identity; "
        f"i = load_identity(skill_file=Path({str(skill)!r}), remembered=Path({str(remembered)!r})); "
        "print(i.source, i.version, 'yaml' in sys.modules)"
    )

    def start() -> str:
        done = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() or done.stderr

    assert start() == "image-to-video-by-prompt 2.1.0 True"  # read and checked once
    assert start() == "image-to-video-by-prompt 2.1.0 False"  # then remembered
    skill.write_text("---\nname: image-to-video-by-prompt\nversion: 2.2.0\n---\n# x\n")
    assert start() == "image-to-video-by-prompt 2.2.0 True"  # a change is read again
    skill.write_text("---\nname: [unclosed\n---\n")
    assert "not valid YAML" in start()  # and checked: nothing remembered covers it
    remembered.write_bytes(b"\xff not json")
    skill.write_text("---\nname: image-to-video-by-prompt\nversion: 2.2.0\n---\n# x\n")
    assert start() == "image-to-video-by-prompt 2.2.0 True"  # a damaged file is a miss
