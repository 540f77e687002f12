#!/usr/bin/env bash
# Updates the README's picture of `scenedex serve` (docs/serve.png): the browser test that
# searches, plays a scene and shows its captions takes it, in a real headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
SCENEDEX_SCREENSHOT="$PWD/docs/serve.png" SCENEDEX_REQUIRE_BROWSER=1 \
  cargo test --locked --test browser -- --exact \
  typing_shows_the_right_thumbnail_first_and_a_click_plays_the_scene_from_its_start
echo "screenshot: docs/serve.png"
