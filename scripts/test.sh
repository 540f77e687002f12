#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: set up, then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${QDRANT_URL:-}" ]; then
  echo "note: QDRANT_URL is not set, so tests/server.rs skips its Qdrant server test" \
       "(start one, e.g. qdrant on its gRPC port 6334, and set QDRANT_URL=http://localhost:6334)"
fi
cargo test --locked "$@"
