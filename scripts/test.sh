#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: set up, then cargo test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --locked "$@"
