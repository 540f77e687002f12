#!/usr/bin/env bash
# The `scenedex serve` benchmark, for the README's table: in a real headless Chromium, the time
# from a click to the first frame (a native MP4, and an MKV remuxed on the click), search as
# you type at 100k segments, and the server's memory idle and under 20 concurrent searches.
# About five minutes, most of it building the HNSW graph of the 100k-segment index.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
SCENEDEX_REQUIRE_BROWSER=1 cargo test --release --locked --test browser -- --ignored --nocapture --exact bench_serve
