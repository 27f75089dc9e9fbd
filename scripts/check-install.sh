#!/usr/bin/env bash
# What users install, as they install it: build and check the sdist and the wheel
# (scripts/build-dist.sh), install the wheel WITHOUT extras into a fresh virtual environment
# outside the checkout, and from there run `nemo-mcp --version`, `nemo-mcp doctor` against
# the sandbox backend, and `nemo-mcp demo --all`, checking that each skill's demo saved its
# MP4 (their paths are printed).
#
#   scripts/check-install.sh
#
# PYTHON (default .venv/bin/python) builds; python3 makes the fresh environment.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
sandbox_pid=""
cleanup() {
    if [ -n "$sandbox_pid" ]; then
        kill "$sandbox_pid" 2>/dev/null || true
        wait "$sandbox_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

"$root/scripts/build-dist.sh" "$work/dist"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$(ls "$work"/dist/nemo_mcp-*.whl)"
nemo="$work/venv/bin/nemo-mcp"
cd "$work"  # nothing of the checkout is importable from here

echo "== nemo-mcp --version"
"$nemo" --version

echo "== nemo-mcp doctor (against the sandbox)"
"$nemo" sandbox --port 0 >"$work/sandbox.out" 2>"$work/sandbox.log" &
sandbox_pid=$!
url=""
for _ in $(seq 1 300); do  # up to 30 s for it to listen
    url="$(sed -n 's/^NemoVideo sandbox backend at \(http[^ ]*\).*/\1/p' "$work/sandbox.log")"
    [ -n "$url" ] && break
    kill -0 "$sandbox_pid" 2>/dev/null || { cat "$work/sandbox.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$url" ] || { echo "check-install: the sandbox did not start" >&2; exit 1; }
env -u NEMO_TOKEN NEMO_API_URL="$url" NEMO_HOME="$work/home" NEMO_OUTPUT_DIR="$work/out" \
    "$nemo" doctor

echo "== nemo-mcp demo --all"
env -u NEMO_TOKEN "$nemo" demo --all --output-dir "$work/demo" >"$work/demo.log" 2>&1 \
    || { cat "$work/demo.log" >&2; exit 1; }
tail -n 12 "$work/demo.log"

echo "== the five skills' MP4s"
skills="$("$work/venv/bin/python" -c 'from nemo_mcp.demo import DEMOS; print(*DEMOS)')"
count=0
for skill in $skills; do
    video="$(find "$work/demo/$skill" -maxdepth 1 -name '*.mp4' -size +10k | head -n 1)"
    if [ -z "$video" ]; then
        echo "check-install: the $skill demo saved no MP4" >&2
        exit 1
    fi
    grep -qF "Saved: $video" "$work/demo.log" || { echo "check-install: $video was not reported" >&2; exit 1; }
    if [ "$(head -c 8 "$video" | tail -c 4)" != "ftyp" ]; then
        echo "check-install: $video is not an MP4" >&2
        exit 1
    fi
    echo "$video ($(wc -c <"$video") bytes)"
    count=$((count + 1))
done
[ "$count" -eq 5 ] || { echo "check-install: $count skills, expected 5" >&2; exit 1; }
echo "check-install: the plain install works (5 skills, 5 MP4s)"
