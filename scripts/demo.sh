#!/usr/bin/env bash
# The main job on the fixtures, from a fresh Debian 12 machine: set up, build, run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
target/release/scenedex frames fixtures/real.mp4 --out target/demo-frames
echo "thumbnails of the kept frames: target/demo-frames/"
