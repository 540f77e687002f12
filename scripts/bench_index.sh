#!/usr/bin/env bash
# Index and search benchmark, for the README's table.
#
#   scripts/bench_index.sh [SIZES...]     (default: 10000 100000; 1000000 takes about 13 minutes)
#
# 1. The embedded store at each size (examples/bench_store.rs), written 1,000 segments at a
#    time while it builds its HNSW graphs: at each tenth, the insert rate, the longest write,
#    and hybrid query p50 and p99; then the run's last optimize, and the size on disk; then
#    MiniLM throughput.
# 2. The whole pipeline on real footage with nothing configured (tagger, MiniLM, qdrant-edge):
#    hours of video per hour, segments and bytes per hour of video.
# 3. Cold `scenedex search`: a new process each time, from start to printed results (median
#    of 10), on that index.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-10000 100000}")
scripts/setup.sh
cargo build --release --quiet --bin scenedex --example bench_store
# shellcheck disable=SC2068
./target/release/examples/bench_store ${sizes[@]}

b=target/bench
mkdir -p $b
if [ ! -f $b/real.mp4 ]; then
  ffmpeg -hide_banner -loglevel error -y -i fixtures/real.mp4 -i fixtures/real.mp4 -i fixtures/real.mp4 \
    -filter_complex "[0:v][1:v][2:v]concat=n=3:v=1:a=0,scale=1280:720,format=yuv420p" \
    -c:v libx264 -preset veryfast -crf 23 $b/real.mp4
fi
index=$(mktemp -d)
trap 'rm -rf "$index"' EXIT
scenedex=./target/release/scenedex
echo
$scenedex index $b/real.mp4 --index "$index" --captioner tagger --no-cache --json | tail -1 |
  python3 -c '
import json, sys
s = json.load(sys.stdin)["summary"]
print("pipeline (tagger, MiniLM, qdrant-edge): %.1f s of video in %.1f s, %.0f h of video per hour; "
      "%d segments, %.0f per hour of video"
      % (s["hours"] * 3600, s["wall_seconds"], s["speed"], s["segments"], s["segments"] / s["hours"]))'
$scenedex stats --index "$index" --json | python3 -c '
import json, os, sys
s = json.load(sys.stdin)
thumbs = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(s["index"], "thumbs")) for f in fs)
print("thumbnails: %.1f kB per segment, %.1f MB per hour of video"
      % (thumbs / s["segments"] / 1e3, thumbs / s["hours"] / 1e6))'
times=()
for _ in $(seq 10); do
  start=$(date +%s%N)
  $scenedex search "a bus in a city street" --index "$index" --limit 5 > /dev/null
  times+=($(( ($(date +%s%N) - start) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "cold scenedex search, process start to printed results: median ${sorted[5]} ms, max ${sorted[9]} ms (10 runs)"
