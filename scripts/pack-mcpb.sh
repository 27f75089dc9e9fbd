#!/usr/bin/env bash
# Pack the Claude Desktop extension (manifests/mcpb) into <out>/nemo-mcp-<version>.mcpb.
#
#   scripts/pack-mcpb.sh [out-dir]     (default out-dir: dist/)
#
# Uses the mcpb CLI pinned in package.json (run `npm ci` first); it is never
# fetched on the fly. Refuses to pack when the bundle's versions disagree with
# the package's __version__, since the bundle installs exactly that release.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/dist}"
bundle="$root/manifests/mcpb"

if [ ! -x "$root/node_modules/.bin/mcpb" ]; then
    echo "pack-mcpb: the mcpb CLI is not installed; run 'npm ci' in $root first" >&2
    exit 1
fi

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/src/nemo_mcp/__init__.py")"
if [ -z "$version" ]; then
    echo "pack-mcpb: no __version__ in src/nemo_mcp/__init__.py" >&2
    exit 1
fi
if ! grep -q "\"version\": \"$version\"" "$bundle/manifest.json"; then
    echo "pack-mcpb: manifests/mcpb/manifest.json version is not $version" >&2
    exit 1
fi
if ! grep -q "\"nemo-mcp==$version\"" "$bundle/pyproject.toml"; then
    echo "pack-mcpb: manifests/mcpb/pyproject.toml does not pin nemo-mcp==$version" >&2
    exit 1
fi

mkdir -p "$out"
cd "$root"
# `--no` keeps npx from downloading anything: only the local, pinned mcpb runs.
npx --no -- mcpb validate "$bundle/manifest.json"
npx --no -- mcpb pack "$bundle" "$out/nemo-mcp-$version.mcpb"
echo "$out/nemo-mcp-$version.mcpb"
