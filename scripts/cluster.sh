#!/usr/bin/env bash
# Starts a Qdrant cluster of N nodes on this machine's loopback, each with its own ports and
# storage, joined by P2P bootstrap; prints each node's ports, then QDRANT_URL for scenedex.
# For tests, benchmarks, and trying out an archive on several machines.
#
#   scripts/cluster.sh [--nodes N] [--dir DIR] [--port P] [--bin QDRANT] [--key KEY] [--watch PID]
#   scripts/cluster.sh stop DIR
#
#   --nodes N    nodes to start (default 3)
#   --dir DIR    where each node keeps its storage and log, DIR/nodeI (default: a new temporary folder)
#   --port P     node I listens on REST P+10(I-1), gRPC one above, P2P two above (default 6333)
#   --bin QDRANT the server binary (default: $SCENEDEX_QDRANT_BIN, qdrant on PATH, ~/.local/bin/qdrant)
#   --key KEY    an API key every node requires
#   --watch PID  stop the nodes when process PID ends (tests use it: nothing outlives them)
#   --clean      with --watch: then remove DIR too
#
# Prints, once every node is in the cluster:
#   node 1 grpc=http://127.0.0.1:6334 rest=http://127.0.0.1:6333 p2p=6335 pid=4242 dir=DIR/node1
#   ...
#   QDRANT_URL=http://127.0.0.1:6334,http://127.0.0.1:6344,http://127.0.0.1:6354
set -euo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }

if [ "${1:-}" = stop ]; then
  [ -n "${2:-}" ] || die "usage: cluster.sh stop DIR"
  for pidfile in "$2"/node*/pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  exit 0
fi

nodes=3 dir="" port=6333 bin="${SCENEDEX_QDRANT_BIN:-}" key="" watch="" clean=""
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --key) key=$2; shift 2 ;;
    --watch) watch=$2; shift 2 ;;
    --clean) clean=1; shift ;;
    *) die "unknown option $1 (see the top of $0)" ;;
  esac
done
if [ -z "$bin" ]; then
  bin=$(command -v qdrant || true)
  [ -n "$bin" ] || bin="$HOME/.local/bin/qdrant"
fi
[ -x "$bin" ] || die "no Qdrant binary at $bin: build one (../shared/qdrant/README.md) or give --bin"
command -v curl >/dev/null || die "curl is needed: apt-get install curl"
[ -n "$dir" ] || dir=$(mktemp -d /tmp/scenedex-cluster.XXXXXX)
mkdir -p "$dir"

rest_of() { echo $((port + 10 * ($1 - 1))); }
grpc_of() { echo $((port + 10 * ($1 - 1) + 1)); }
p2p_of() { echo $((port + 10 * ($1 - 1) + 2)); }

# Waits up to 60 s for a command to succeed.
wait_for() {
  local what=$1; shift
  for _ in $(seq 600); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  die "$what did not happen within 60 s; see the logs in $dir"
}

auth=()
[ -z "$key" ] || auth=(-H "api-key: $key")
peers() { curl -sf "${auth[@]}" "http://127.0.0.1:$(rest_of 1)/cluster" | grep -o '"uri"' | wc -l; }
has_peers() { [ "$(peers)" -ge "$1" ]; }

start() {
  local i=$1; shift
  local home="$dir/node$i"
  mkdir -p "$home/storage" "$home/snapshots"
  for p in "$(rest_of "$i")" "$(grpc_of "$i")" "$(p2p_of "$i")"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      die "port $p is taken: give another --port"
    fi
  done
  (
    cd "$home"
    export QDRANT__SERVICE__HOST=127.0.0.1 \
      QDRANT__SERVICE__HTTP_PORT="$(rest_of "$i")" \
      QDRANT__SERVICE__GRPC_PORT="$(grpc_of "$i")" \
      QDRANT__CLUSTER__ENABLED=true \
      QDRANT__CLUSTER__P2P__PORT="$(p2p_of "$i")" \
      QDRANT__STORAGE__STORAGE_PATH="$home/storage" \
      QDRANT__STORAGE__SNAPSHOTS_PATH="$home/snapshots" \
      QDRANT__TELEMETRY_DISABLED=true \
      QDRANT__LOG_LEVEL=WARN
    [ -z "$key" ] || export QDRANT__SERVICE__API_KEY="$key"
    exec "$bin" --uri "http://127.0.0.1:$(p2p_of "$i")" "$@" </dev/null >"$home/log" 2>&1
  ) &
  echo $! >"$home/pid"
}

start 1
wait_for "node 1 answering" curl -sf "${auth[@]}" "http://127.0.0.1:$(rest_of 1)/readyz"
for i in $(seq 2 "$nodes"); do
  start "$i" --bootstrap "http://127.0.0.1:$(p2p_of 1)"
  wait_for "node $i joining" has_peers "$i"
  wait_for "node $i answering" curl -sf "${auth[@]}" "http://127.0.0.1:$(rest_of "$i")/readyz"
done

if [ -n "$watch" ]; then
  (
    while kill -0 "$watch" 2>/dev/null; do sleep 1; done
    "$0" stop "$dir"
    if [ -n "$clean" ]; then sleep 2; rm -rf "$dir"; fi
  ) </dev/null >/dev/null 2>&1 &
fi

urls=()
for i in $(seq "$nodes"); do
  echo "node $i grpc=http://127.0.0.1:$(grpc_of "$i") rest=http://127.0.0.1:$(rest_of "$i")" \
    "p2p=$(p2p_of "$i") pid=$(cat "$dir/node$i/pid") dir=$dir/node$i"
  urls+=("http://127.0.0.1:$(grpc_of "$i")")
done
(IFS=,; echo "QDRANT_URL=${urls[*]}")
