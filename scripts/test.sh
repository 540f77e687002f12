#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: set up, then cargo test (with fail points,
# which some tests use to stop a run at an exact step).
#
# The Qdrant server tests (tests/server.rs) run against QDRANT_URL when it is set, and start
# clusters of their own on loopback from a Qdrant binary: SCENEDEX_QDRANT_BIN, else `qdrant` on
# PATH or in ~/.local/bin. Without either they say they were skipped. The page of `scenedex serve`
# is tested in a real headless Chromium (tests/browser.rs), which setup.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
bin=${SCENEDEX_QDRANT_BIN:-$(command -v qdrant || true)}
[ -n "$bin" ] || [ ! -x "$HOME/.local/bin/qdrant" ] || bin="$HOME/.local/bin/qdrant"
if [ -n "$bin" ]; then
  export SCENEDEX_QDRANT_BIN=$bin
  echo "note: tests/server.rs starts Qdrant clusters on loopback from $bin" \
       "${QDRANT_URL:+(and uses QDRANT_URL=$QDRANT_URL for the rest)}"
elif [ -n "${QDRANT_URL:-}" ]; then
  echo "note: tests/server.rs uses QDRANT_URL=$QDRANT_URL; its tests that start clusters of" \
       "their own (a node dying, an API key) are skipped without a Qdrant binary (SCENEDEX_QDRANT_BIN)"
else
  echo "note: no Qdrant server or binary, so tests/server.rs skips its server tests" \
       "(set QDRANT_URL=http://localhost:6334 for a running server, or SCENEDEX_QDRANT_BIN to a Qdrant 1.16+ binary)"
fi
# setup.sh installed Chromium and chromedriver, so the browser tests (tests/browser.rs) must run.
export SCENEDEX_REQUIRE_BROWSER=1
cargo test --locked --features failpoints "$@"
