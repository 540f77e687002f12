#!/usr/bin/env bash
# One indexer against two on one collection, for the README's table: a 3-node Qdrant cluster on
# loopback (scripts/cluster.sh; the collection has 3 shards and 2 replicas), a generated archive
# of short videos with a cut each, and captions from the stand-in VLM (examples/stand_in_vlm.rs)
# answering after a latency like a real model's. Each run starts from an empty collection and
# empty caption caches. Prints the wall time of each way (median of RUNS), their ratio, and the
# caption requests each way took.
#
#   scripts/bench_cluster.sh [FILES] [LATENCY_MS] [RUNS]     (defaults: 24 files, 800 ms, 3 runs)
#
# Needs a Qdrant binary (SCENEDEX_QDRANT_BIN, qdrant on PATH, or ~/.local/bin/qdrant).
set -euo pipefail
cd "$(dirname "$0")/.."
files=${1:-24} latency=${2:-800} runs=${3:-3}
scripts/setup.sh
cargo build --release --quiet --bin scenedex --example stand_in_vlm
scenedex=$PWD/target/release/scenedex

work=$(mktemp -d /tmp/scenedex-bench-cluster.XXXXXX)
cleanup() {
  [ -z "${vlm_pid:-}" ] || kill "$vlm_pid" 2>/dev/null || true
  scripts/cluster.sh stop "$work/cluster" || true
  sleep 1
  rm -rf "$work"
}
trap cleanup EXIT

# The archive: each file 4 s of a test card, tinted its own way, then 4 s of a game of life
# with its own seed: distinct content, one cut.
mkdir -p "$work/archive"
for i in $(seq "$files"); do
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=640x360:rate=25:duration=4,hue=h=$((i * 13))" \
    -f lavfi -i "life=size=640x360:rate=25:seed=$i:mold=10:ratio=0.2:life_color=#33cc66:death_color=#202060,trim=duration=4" \
    -filter_complex "[0:v][1:v]concat=n=2:v=1:a=0,format=yuv420p" \
    -c:v libx264 -preset veryfast -g 50 "$work/archive/clip$(printf %02d "$i").mp4"
done

cluster=$(scripts/cluster.sh --nodes 3 --dir "$work/cluster" --port 26333)
url=$(sed -n 's/^QDRANT_URL=//p' <<<"$cluster")
./target/release/examples/stand_in_vlm --latency-ms "$latency" --count-file "$work/requests" \
  >"$work/vlm-url" &
vlm_pid=$!
for _ in $(seq 100); do [ -s "$work/vlm-url" ] && break; sleep 0.1; done
vlm=$(head -1 "$work/vlm-url")

requests() { cat "$work/requests" 2>/dev/null || echo 0; }

# Runs N indexers at once on the archive into a new collection; prints "wall requests".
run() {
  local n=$1 tag=$2
  local before started pids=()
  before=$(requests)
  started=$(date +%s.%N)
  for m in $(seq "$n"); do
    env QDRANT_URL="$url" SCENEDEX_COLLECTION="bench-$tag" SCENEDEX_HOST="machine-$m" \
      SCENEDEX_CACHE_DIR="$work/cache-$tag-$m" SCENEDEX_INDEX="$work/index-$tag-$m" \
      OPENAI_BASE_URL="$vlm" OPENAI_API_KEY=sk-test-0123456789abcdef SCENEDEX_CAPTIONER=openai \
      SCENEDEX_CONFIG=/nonexistent "$scenedex" index "$work/archive" --shards 3 --replicas 2 --json \
      >"$work/out-$tag-$m" 2>"$work/err-$tag-$m" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  sleep 0.3 # the request count file is written every 100 ms
  echo "$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { print a - b }') $(($(requests) - before))"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

one=() two=() req_one=0 req_two=0
for r in $(seq "$runs"); do
  read -r wall req < <(run 1 "one-$r"); one+=("$wall"); req_one=$req
  read -r wall req < <(run 2 "two-$r"); two+=("$wall"); req_two=$req
  for m in 1 2; do
    grep -c '"status":"indexed"' "$work/out-two-$r-$m" >"$work/indexed-$r-$m" || true
  done
done
t1=$(printf '%s\n' "${one[@]}" | median)
t2=$(printf '%s\n' "${two[@]}" | median)
split="$(cat "$work/indexed-$runs-1") + $(cat "$work/indexed-$runs-2")"
echo
echo "$files files, stand-in latency $latency ms, 3-node cluster, 3 shards x 2 replicas, median of $runs"
echo
echo "| indexers | wall s | caption requests | files indexed by each |"
echo "|---|---|---|---|"
printf '| 1 | %.1f | %s | %s |\n' "$t1" "$req_one" "$files"
printf '| 2 at once | %.1f | %s | %s |\n' "$t2" "$req_two" "$split"
echo
awk -v t1="$t1" -v t2="$t2" \
  'BEGIN { printf "two indexers take %.2fx the wall time of one (%.2fx as fast)\n", t2 / t1, t1 / t2 }'
