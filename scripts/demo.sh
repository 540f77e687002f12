#!/usr/bin/env bash
# The main job on the fixtures with nothing configured: index them on the embedded defaults
# (offline tagger, all-MiniLM-L6-v2, qdrant-edge, in a throw-away index), then search.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
index=$(mktemp -d)
trap 'rm -rf "$index"' EXIT
./target/release/scenedex index fixtures/*.mp4 --index "$index"
./target/release/scenedex search "a bus in a city street" --index "$index" --limit 1
