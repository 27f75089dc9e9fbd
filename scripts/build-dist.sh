#!/usr/bin/env bash
# Build the sdist and the wheel into <out-dir>, check them with twine, and check that the
# wheel carries every file of the package that is not Python source (SKILL.md, the demo's
# inputs, the studio page, py.typed): a plain install has nothing else.
#
#   scripts/build-dist.sh [out-dir]     (default out-dir: dist/)
#
# Uses `build` and `twine` from the test extra (PYTHON, default .venv/bin/python).
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/dist}"
python="${PYTHON:-$root/.venv/bin/python}"

mkdir -p "$out"
rm -f "$out"/nemo_mcp-*.whl "$out"/nemo_mcp-*.tar.gz
"$python" -m build --outdir "$out" "$root" >/dev/null
"$python" -m twine check --strict "$out"/nemo_mcp-*.whl "$out"/nemo_mcp-*.tar.gz

# The package's data files, as git tracks them, each at its place in the wheel.
wheel="$(ls "$out"/nemo_mcp-*.whl)"
"$python" - "$wheel" "$root" <<'PY'
import subprocess
import sys
import zipfile
from pathlib import PurePosixPath

wheel, root = sys.argv[1], sys.argv[2]
tracked = subprocess.run(
    ["git", "-C", root, "ls-files", "src/nemo_mcp"], check=True, capture_output=True, text=True
).stdout.split()
wanted = {str(PurePosixPath(p).relative_to("src")) for p in tracked if not p.endswith(".py")}
wanted.add("nemo_mcp/SKILL.md")
inside = set(zipfile.ZipFile(wheel).namelist())
missing = sorted(wanted - inside)
if missing:
    sys.exit(f"build-dist: the wheel lacks {', '.join(missing)}")
print(f"build-dist: {PurePosixPath(wheel).name} carries all {len(wanted)} data files")
PY
ls "$out"/nemo_mcp-*
