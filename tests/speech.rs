//! Hearing, on the real weights set-up installs (Whisper base and tiny.en, Silero VAD) and the
//! speech fixtures (`fixtures/speech/make.sh`: flite and espeak-ng voices at known times).

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use common::archive::{stderr, Archive};
use common::{command, fixture, json_lines};
use serde_json::Value;

/// A phrase the fixtures say, where, and in which language.
struct Phrase {
    file: String,
    start: f64,
    lang: String,
    said: String,
}

fn phrases(file: &str) -> Vec<Phrase> {
    let text = std::fs::read_to_string(fixture("speech/phrases.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["file"] == file)
        .map(|v| Phrase {
            file: v["file"].as_str().unwrap().into(),
            start: v["start"].as_f64().unwrap(),
            lang: v["lang"].as_str().unwrap().into(),
            said: v["said"].as_str().unwrap().into(),
        })
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The share of the phrase's words that were heard (synthetic voices are not always clear).
fn heard_share(said: &str, heard: &str) -> f64 {
    let heard: HashSet<String> = words(heard).into_iter().collect();
    let said = words(said);
    said.iter().filter(|w| heard.contains(*w)).count() as f64 / said.len() as f64
}

fn listen(file: &str, extra: &[&str]) -> (Vec<Value>, Value, String, i32) {
    let output = command()
        .arg("listen")
        .arg(fixture(file))
        .args(["--json"])
        .args(extra)
        .output()
        .unwrap();
    let (lines, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
    (
        lines,
        summary,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

/// Every phrase is heard, in its language, starting within half a second of its sound.
fn assert_every_phrase_heard(file: &str, utterances: &[Value]) {
    for phrase in phrases(file) {
        let found = utterances.iter().find(|u| {
            (u["start"].as_f64().unwrap() - phrase.start).abs() <= 0.5
                && heard_share(&phrase.said, u["text"].as_str().unwrap()) >= 0.6
        });
        let u = found.unwrap_or_else(|| {
            panic!(
                "{}: \"{}\" at {} s not heard: {utterances:?}",
                phrase.file, phrase.said, phrase.start
            )
        });
        assert_eq!(u["lang"], phrase.lang.as_str(), "{u}");
    }
}

#[test]
fn each_phrase_is_heard_at_its_second() {
    let (utterances, summary, stderr, code) = listen("speech/talk.mp4", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_every_phrase_heard("talk.mp4", &utterances);
    assert_eq!(summary["model"], "whisper-base");
}

#[test]
fn a_file_that_switches_language_keeps_every_language() {
    let (utterances, summary, stderr, code) = listen("speech/switch.mp4", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_every_phrase_heard("switch.mp4", &utterances);
    assert_eq!(summary["languages"], serde_json::json!(["de", "en", "es"]));
}

#[test]
fn music_noise_and_silence_say_nothing() {
    for file in ["speech/music.mp4", "speech/noise.mp4", "speech/silent.mp4"] {
        let (utterances, summary, stderr, code) = listen(file, &[]);
        assert_eq!(code, 0, "{file}: {stderr}");
        assert!(utterances.is_empty(), "{file}: invented {utterances:?}");
        assert_eq!(summary["utterances"], 0, "{file}");
    }
}

#[test]
fn the_english_model_hears_english_and_refuses_another_language() {
    let (utterances, summary, stderr, code) =
        listen("speech/talk.mp4", &["--speech-model", "tiny.en"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(summary["model"], "whisper-tiny.en");
    assert_every_phrase_heard("talk.mp4", &utterances);
    let (_, _, stderr, code) = listen(
        "speech/talk.mp4",
        &["--speech-model", "tiny.en", "--speech-lang", "de"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("does not know the language 'de'"),
        "{stderr}"
    );
}

#[test]
fn eight_channels_at_192_khz_are_mixed_down_and_heard() {
    let (utterances, _, stderr, code) = listen("speech/surround192k.mkv", &[]);
    assert_eq!(code, 0, "{stderr}");
    let first = &phrases("talk.mp4")[0];
    assert!(
        utterances.iter().any(
            |u| (u["start"].as_f64().unwrap() - first.start).abs() <= 0.5
                && heard_share(&first.said, u["text"].as_str().unwrap()) >= 0.6
        ),
        "{utterances:?}"
    );
}

#[test]
fn sound_that_goes_on_after_the_picture_ends_is_heard() {
    // 3 s of picture, 24 s of sound.
    let (utterances, _, stderr, code) = listen("speech/long_sound.mkv", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_every_phrase_heard("talk.mp4", &utterances);
}

#[test]
fn issue22_a_video_whose_sound_goes_on_longer_is_not_called_truncated() {
    // Matroska gives no stream a duration of its own but a tag; the file's is the sound's 24 s.
    let archive = Archive::new(&["speech/long_sound.mkv"]);
    let (output, lines, summary) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines[0]["status"], "indexed", "{lines:?}");
    assert_eq!(summary["partial"], 0, "{summary}");
    assert_eq!(summary["speech_segments"], 3, "{summary}");
}

#[test]
fn issue22_sound_damaged_midway_keeps_what_was_heard_and_the_pictures_and_is_partial() {
    // broken_sound.mkv: talk.mp4 with every audio packet after 12 s damaged.
    let archive = Archive::new(&["speech/broken_sound.mkv"]);
    let (output, lines, summary) = archive.index(&["--speech", "local"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(lines[0]["status"], "partial", "{lines:?}");
    assert!(
        lines[0]["error"]
            .as_str()
            .unwrap()
            .contains("could not be decoded"),
        "{lines:?}"
    );
    assert_eq!(summary["speech_segments"], 2, "{summary}");
    // The pictures are indexed to the end, past where the sound broke.
    let segments = archive.segments();
    assert!(
        segments.iter().any(|s| s.1 <= 20_000 && 20_000 < s.2),
        "{segments:?}"
    );
    let said = archive.search("the train to London", &["--where", "kind=speech"]);
    assert!(
        (said[0]["start"].as_f64().unwrap() - 9.0).abs() <= 0.5,
        "{said:?}"
    );
    let lost = archive.search(
        "our garden is full of yellow flowers",
        &["--where", "kind=speech", "--limit", "5"],
    );
    assert!(
        lost.iter()
            .all(|h| !h["caption"].as_str().unwrap().contains("garden")),
        "{lost:?}"
    );
}

#[test]
fn issue22_a_sound_stream_of_no_channels_is_said_in_one_line_and_the_pictures_indexed() {
    let (_, _, stderr_text, code) = listen("speech/zero_channels.mkv", &[]);
    assert_eq!(code, 4, "{stderr_text}");
    assert_eq!(stderr_text.trim().lines().count(), 1, "{stderr_text}");
    assert!(stderr_text.contains("has no channels"), "{stderr_text}");
    let archive = Archive::new(&["speech/zero_channels.mkv"]);
    let (output, lines, summary) = archive.index(&["--speech", "local"]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(lines[0]["status"], "partial", "{lines:?}");
    assert!(summary["segments"].as_u64().unwrap() >= 1, "{summary}");
    assert_eq!(summary["speech_segments"], 0, "{summary}");
}

#[test]
fn audio_stream_picks_which_sound_is_heard() {
    let (first, _, _, code) = listen("speech/two_tracks.mkv", &[]);
    assert_eq!(code, 0);
    assert!(first.is_empty(), "the first stream is silent: {first:?}");
    let (second, _, stderr, code) = listen("speech/two_tracks.mkv", &["--audio-stream", "1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_every_phrase_heard("talk.mp4", &second);
    let (_, _, stderr, code) = listen("speech/two_tracks.mkv", &["--audio-stream", "5"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("has no audio stream 5 (it has 2"),
        "{stderr}"
    );
}

#[test]
fn a_file_without_sound_says_nothing_and_succeeds() {
    let (utterances, summary, stderr, code) = listen("cuts.mp4", &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(utterances.is_empty());
    assert_eq!(summary["audio_seconds"], 0.0);
}

/// The candle port of Silero VAD gives what the package's own ONNX file gives, 32 ms by 32 ms
/// (tests/data/vad_reference.json, from scripts/make_vad_reference.py).
#[test]
fn voice_activity_matches_silero_s_own_network() {
    use scenedex::speech::{audio::Audio, vad::Vad, Ear};
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/vad_reference.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let expected: Vec<f64> = reference["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect();
    let dir = Ear::default_dir().unwrap();
    let vad = Vad::load(&dir.join(scenedex::speech::VAD_FILE)).unwrap();
    let mut audio = Audio::open(&fixture("speech/switch.mp4"), None)
        .unwrap()
        .unwrap();
    let mut samples = Vec::new();
    while let Some(more) = audio.next().unwrap() {
        samples.extend(more);
    }
    let mut stream = vad.stream().unwrap();
    // Fed in uneven pieces, as packets come.
    let mut got = Vec::new();
    for piece in samples.chunks(1000) {
        got.extend(stream.push(piece, false).unwrap());
    }
    assert!(
        got.len() >= expected.len(),
        "{} of {}",
        got.len(),
        expected.len()
    );
    let worst = expected
        .iter()
        .zip(&got)
        .map(|(e, g)| (e - f64::from(*g)).abs())
        .fold(0.0, f64::max);
    assert!(worst < 1e-3, "largest difference {worst}");
}

#[test]
fn what_is_said_is_searchable_beside_what_is_seen() {
    let archive = Archive::new(&["speech/talk.mp4", "speech/switch.mp4", "speech/music.mp4"]);
    let (output, lines, summary) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 3, "{lines:?}");
    assert_eq!(summary["speech_segments"], 6, "{summary}");

    let hits = archive.search("bring the red umbrella to the kitchen", &["--limit", "3"]);
    let top = &hits[0];
    assert_eq!(top["kind"], "speech", "{top}");
    assert!(top["path"].as_str().unwrap().ends_with("talk.mp4"), "{top}");
    assert!((top["start"].as_f64().unwrap() - 2.0).abs() <= 0.5, "{top}");
    assert_eq!(top["lang"], "en");

    // A German phrase found by its German words, and kind= narrows to what is said or seen.
    let hits = archive.search(
        "Zug nach München",
        &["--where", "kind=speech", "--limit", "1"],
    );
    assert_eq!(hits[0]["lang"], "de", "{hits:?}");
    assert!(
        (hits[0]["start"].as_f64().unwrap() - 9.0).abs() <= 0.5,
        "{hits:?}"
    );
    // Issue 23: an English query finds what was said in German.
    // (talk.mp4 has an English train of its own: switch.mp4's phrases are asked among.)
    let switch = archive.videos.join("speech/switch.mp4");
    let hits = archive.search(
        "the train to Munich leaves at eight o'clock",
        &[
            "--where",
            "kind=speech",
            "--path",
            switch.to_str().unwrap(),
            "--limit",
            "1",
        ],
    );
    assert_eq!(hits[0]["lang"], "de", "{hits:?}");
    let pictures = archive.search(
        "red umbrella",
        &["--where", "kind=description", "--min-score", "0"],
    );
    assert!(!pictures.is_empty());
    assert!(
        pictures.iter().all(|h| h["kind"] == "description"),
        "{pictures:?}"
    );

    // The human line quotes what was said.
    let output = archive
        .command(&[
            "search",
            "bring the red umbrella to the kitchen",
            "--limit",
            "1",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("said (en): \""), "{text}");

    // An unchanged archive is neither decoded nor heard again.
    let (output, _, summary) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["unchanged"], 3, "{summary}");
    assert_eq!(summary["transcribed_seconds"], 0.0, "{summary}");
}

#[test]
fn a_kind_no_segment_has_is_refused() {
    let archive = Archive::new(&[]);
    let output = archive
        .command(&["search", "x", "--where", "kind=speach"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert!(text.contains("kind is description, tags, speech"), "{text}");
}

#[test]
fn a_transcript_is_kept_by_the_sound_so_a_forgotten_file_is_not_heard_again() {
    let archive = Archive::new(&["speech/talk.mp4"]);
    let (output, _, summary) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        summary["transcribed_seconds"].as_f64().unwrap() > 20.0,
        "{summary}"
    );
    let forget = archive
        .command(&["forget"])
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert!(forget.status.success(), "{}", stderr(&forget));
    let (output, _, summary) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1);
    assert_eq!(summary["transcribed_seconds"], 0.0, "{summary}");
    assert_eq!(summary["speech_segments"], 3, "{summary}");
}

#[test]
fn subtitles_of_what_is_said_are_exported() {
    let archive = Archive::new(&["speech/talk.mp4"]);
    let (output, _, _) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = archive
        .command(&["export", "--where", "kind=speech", "--format", "srt"])
        .arg(archive.videos.join("speech/talk.mp4"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let srt = String::from_utf8_lossy(&output.stdout);
    assert!(srt.starts_with("1\n00:00:01,"), "{srt}");
    assert!(srt.contains("umbrella") && srt.contains("garden"), "{srt}");
    assert_eq!(srt.matches(" --> ").count(), 3, "{srt}");
    // Without a kind, a track is what is seen: what is said would overlap it.
    let output = archive
        .command(&["export", "--format", "srt"])
        .arg(archive.videos.join("speech/talk.mp4"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let seen = String::from_utf8_lossy(&output.stdout);
    assert!(
        seen.contains(" --> ") && !seen.contains("umbrella"),
        "{seen}"
    );
}

#[test]
fn kill_minus_9_mid_file_loses_no_transcript() {
    let archive = Archive::new(&["speech/talk.mp4"]);
    let transcripts = archive.cache(common::archive::HERE).join("transcripts");
    let mut child = archive.index_held_before_record(&["--speech", "local"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let heard = || {
        files_under(&transcripts)
            .iter()
            .any(|p| p.extension().is_some_and(|e| e == "json"))
    };
    while !heard() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(heard(), "no transcript was kept before the kill");
    let (output, _, summary) = archive.index(&["--speech", "local"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1, "{summary}");
    assert_eq!(summary["transcribed_seconds"], 0.0, "{summary}");
    let hits = archive.search("yellow flowers in the garden", &["--where", "kind=speech"]);
    assert_eq!(hits.len(), 1, "{hits:?}");
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// A golden set of what the two talking fixtures say, each phrase given 3 s from its start.
fn speech_golden(dir: &Path) -> std::path::PathBuf {
    let lines: Vec<String> = ["talk.mp4", "switch.mp4"]
        .iter()
        .flat_map(|f| phrases(f))
        .map(|p| {
            serde_json::json!({
                "video": fixture(&format!("speech/{}", p.file)),
                "said": p.said,
                "start": p.start,
                "end": p.start + 3.0,
            })
            .to_string()
        })
        .collect();
    let file = dir.join("golden.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    file
}

#[test]
fn eval_scores_what_is_heard_and_finds_it_by_its_words() {
    let dir = tempfile::tempdir().unwrap();
    let golden = speech_golden(dir.path());
    let output = command()
        .args([
            "eval",
            "--json",
            "--captioner",
            "tagger",
            "--speech",
            "local",
        ])
        .arg(&golden)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let line: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let scores = &line;
    let wer = scores["speech_word_error_rate"].as_f64().unwrap();
    // Synthetic voices: a few words are heard wrong ("um acht" as "umacht"), most are not.
    assert!((0.0..0.35).contains(&wer), "{line}");
    assert_eq!(scores["speech_recall_at_5"].as_f64(), Some(1.0), "{line}");
    assert!(
        scores["speech_recall_at_1"].as_f64().unwrap() >= 0.8,
        "{line}"
    );
    // Nothing about pictures or picture searches was asked.
    assert!(
        scores["recall_at_1"].is_null() && scores["keyword_recall"].is_null(),
        "{line}"
    );
    assert!(
        line["config"]["speech"].as_str().unwrap().contains("base"),
        "{line}"
    );
}

#[test]
fn eval_of_speech_without_hearing_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let golden = speech_golden(dir.path());
    let output = command()
        .args(["eval", "--captioner", "tagger", "--speech", "off"])
        .arg(&golden)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("speech is off"), "{text}");
}

fn transcription_calls(archive: &Archive) -> Vec<f64> {
    archive
        .mock
        .batch_calls()
        .iter()
        .filter_map(|c| c.strip_prefix("POST /v1/audio/transcriptions "))
        .map(|seconds| seconds.parse().unwrap())
        .collect()
}

/// `--speech openai` against the stand-in (OpenAI's verbose_json wire): only the stretches
/// with a voice are sent, one request each, and what comes back lands at the file's second.
#[test]
fn openai_transcription_is_sent_only_speech_and_paid_for_once() {
    let archive = Archive::new(&["speech/talk.mp4", "speech/music.mp4"]);
    let (output, lines, summary) =
        archive.index(&["--speech", "openai", "--speech-price", "0.006"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 2, "{lines:?}");
    let calls = transcription_calls(&archive);
    assert_eq!(
        calls.len(),
        3,
        "one request per phrase, none for the music: {calls:?}"
    );
    assert!(calls.iter().all(|&s| s > 2.0 && s < 6.0), "{calls:?}");
    assert_eq!(summary["speech"], "openai/whisper-1", "{summary}");
    let sent = summary["sent_seconds"].as_f64().unwrap();
    assert!((sent - calls.iter().sum::<f64>()).abs() < 0.01, "{summary}");
    let cost = summary["speech_cost"].as_f64().unwrap();
    assert!((cost - sent / 60.0 * 0.006).abs() < 1e-5, "{summary}");

    let hits = archive.search(
        "stand-in heard seconds of voice",
        &["--where", "kind=speech"],
    );
    assert_eq!(hits.len(), 3, "{hits:?}");
    let mut starts: Vec<f64> = hits.iter().map(|h| h["start"].as_f64().unwrap()).collect();
    starts.sort_by(f64::total_cmp);
    for (start, phrase) in starts.iter().zip(phrases("talk.mp4")) {
        assert!(
            (start - phrase.start).abs() <= 0.5,
            "{start} for {}",
            phrase.start
        );
    }
    assert!(
        hits.iter()
            .all(|h| h["lang"] == "en" && h["backend"] == "openai" && h["model"] == "whisper-1"),
        "{hits:?}"
    );

    // The human summary says what was sent and what it cost.
    let forget = archive
        .command(&[
            "forget",
            archive.videos.join("speech/talk.mp4").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(forget.status.success(), "{}", stderr(&forget));
    let videos = archive.videos.to_str().unwrap();
    let again = archive
        .command(&["index", "--speech", "openai", videos])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        transcription_calls(&archive).len(),
        3,
        "a transcript is never paid for twice"
    );
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        !text.contains("min of speech sent"),
        "nothing was sent: {text}"
    );
}

#[test]
fn openai_transcription_refused_fails_the_file_for_the_next_run_and_hides_the_key() {
    let archive = Archive::new(&["speech/talk.mp4"]);
    let wrong = "sk-wrong-0123456789secret";
    let output = archive
        .command(&[
            "index",
            "--speech",
            "openai",
            "--retries",
            "0",
            "--captioner",
            "tagger",
            archive.videos.to_str().unwrap(),
        ])
        .env("OPENAI_API_KEY", wrong)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        stderr(&output)
    );
    assert!(
        !all.contains(wrong) && !all.contains("0123456789secret"),
        "{all}"
    );
    assert!(
        stderr(&output).contains("could not be transcribed"),
        "{all}"
    );
    // Nothing was recorded, so the next run, with the right key, hears the file.
    let (output, _, summary) = archive.index(&["--speech", "openai", "--speech-price", "0.006"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1, "{summary}");
    assert_eq!(summary["speech_segments"], 3, "{summary}");
}

#[test]
fn openai_transcription_without_a_key_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let output = command()
        .args([
            "index",
            "--speech",
            "openai",
            "--captioner",
            "tagger",
            "--index",
        ])
        .arg(dir.path().join("index"))
        .arg(fixture("speech/talk.mp4"))
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("OPENAI_API_KEY is not set"), "{text}");
}

#[test]
fn openai_dry_run_says_the_most_the_sound_could_cost() {
    let archive = Archive::new(&["speech/talk.mp4", "speech/music.mp4"]);
    let output = archive
        .command(&[
            "index",
            "--speech",
            "openai",
            "--speech-price",
            "0.006",
            "--dry-run",
            "--json",
            archive.videos.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let (lines, _) = json_lines(&String::from_utf8_lossy(&output.stdout));
    let speech = lines
        .iter()
        .find_map(|l| l.get("speech"))
        .unwrap_or_else(|| panic!("no speech estimate: {lines:?}"));
    assert_eq!(speech["service"], "openai/whisper-1");
    let seconds = speech["sound_seconds"].as_f64().unwrap();
    assert!((seconds - 39.0).abs() < 0.5, "{speech}");
    let cost = speech["cost_at_most"].as_f64().unwrap();
    assert!((cost - seconds / 60.0 * 0.006).abs() < 1e-5, "{speech}");
    assert!(
        transcription_calls(&archive).is_empty(),
        "a dry run sends nothing"
    );
}

#[test]
fn openai_stretches_already_paid_for_are_not_sent_again_after_a_failure() {
    let archive = Archive::new(&["speech/talk.mp4"]);
    archive.mock.fail_transcriptions_after(Some(2));
    let videos = archive.videos.to_str().unwrap();
    let output = archive
        .command(&["index", "--speech", "openai", "--retries", "0", videos])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    assert_eq!(transcription_calls(&archive).len(), 2);
    archive.mock.fail_transcriptions_after(None);
    let (output, _, summary) = archive.index(&["--speech", "openai"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["speech_segments"], 3, "{summary}");
    assert_eq!(
        transcription_calls(&archive).len(),
        3,
        "only the third stretch is sent again"
    );
}
