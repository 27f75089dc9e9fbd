#!/usr/bin/env bash
# Publish nemo-mcp to PyPI in one command: build the sdist and the wheel, check them
# (scripts/build-dist.sh: twine check, the wheel's data files), then upload both.
#
#   scripts/release.sh              build, check, upload to PyPI
#   scripts/release.sh --check      build and check only (nothing leaves the machine)
#
# twine takes the credentials as it always does (TWINE_USERNAME=__token__ and
# TWINE_PASSWORD=<PyPI API token>, or ~/.pypirc); TWINE_REPOSITORY_URL points it at
# another index (TestPyPI: https://test.pypi.org/legacy/). It refuses to upload from CI
# (CI is set), from a checkout with uncommitted changes, or when the manifests pin
# another version than the package's.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
out="$root/dist"
upload=1
case "${1:-}" in
    "") ;;
    --check) upload=0 ;;
    *) echo "usage: scripts/release.sh [--check]" >&2; exit 2 ;;
esac

if [ "$upload" = 1 ] && [ -n "${CI:-}" ]; then
    echo "release: CI is set; CI never uploads (run scripts/release.sh --check there)" >&2
    exit 1
fi
if [ "$upload" = 1 ] && [ -n "$(git -C "$root" status --porcelain)" ]; then
    echo "release: the checkout has uncommitted changes; commit them first" >&2
    exit 1
fi
version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/nemo_mcp/__init__.py")"
for pinned in manifests/mcpb/manifest.json manifests/mcpb/pyproject.toml manifests/server.json; do
    if ! grep -q "$version" "$root/$pinned"; then
        echo "release: $pinned does not name version $version" >&2
        exit 1
    fi
done

PYTHON="$python" "$root/scripts/build-dist.sh" "$out"
if [ "$upload" = 0 ]; then
    echo "release: nemo-mcp $version built and checked in $out (not uploaded)"
    exit 0
fi
"$python" -m twine upload "$out/nemo_mcp-$version.tar.gz" "$out/nemo_mcp-$version-py3-none-any.whl"
echo "release: nemo-mcp $version uploaded"
