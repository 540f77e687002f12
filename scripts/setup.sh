#!/usr/bin/env bash
# Installs what scenedex needs to build and test on Debian 12, and nothing that is already there.
# Safe to run again and again: each step checks before it acts.
set -euo pipefail

packages=(
  pkg-config clang libclang-dev                                   # bindgen, for ffmpeg-sys-next
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev    # FFmpeg 5.1, decoding
  ffmpeg                                                          # the CLI, for fixtures and tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
