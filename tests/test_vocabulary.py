"""One word in code for the five product skills: `skill` (SKILL.md, NEMO_SKILL, `--skill`,
`X-Skill-Source`), never profile, face or slug, which once named the same thing."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nemo_mcp"
#: The old words, alone or inside an identifier (`upload_profile`, `FACES`).
OLD = re.compile(r"[A-Za-z_]*(?:profile|face|slug)[A-Za-z_]*", re.IGNORECASE)
#: Words that contain an old one and mean something else.
OTHER_MEANINGS = frozenset({"interface", "interfaces", "surface", "surfaces", "icc_profile"})
#: Files where an old word means something else: a font face, a photo's colour profile,
#: a music file's name made from its title.
ELSEWHERE = {
    "media/pictures.py": {"face"},
    "media/convert.py": {"profile"},
    "sandbox/composition.py": {"slug"},
}


def old_words() -> dict[str, set[str]]:
    """Each module's old words for a skill, by path under the package."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        words = {w for w in OLD.findall(path.read_text(encoding="utf-8"))}
        words -= OTHER_MEANINGS | ELSEWHERE.get(name, set())
        if words:
            found[name] = words
    return found


def test_code_says_skill_for_a_skill() -> None:
    found = old_words()
    assert found == {}, found
