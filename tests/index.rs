//! `scenedex index` and `scenedex search` end to end: real decoding, real MiniLM embeddings,
//! the real qdrant-edge engine, and the stand-in VLM describing the fixture frames.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::vlm::{mean_colour, use_scene_book, Fault, MockVlm, Wire, KEY};
use common::{command, fixture, json_lines};
use serde_json::Value;

/// What the stand-in says about the fixture frames: colors.mp4 is a white box on red (0-2 s),
/// then on blue (2-4 s), then black; everything else is an abstract pattern.
fn scene_book(image: &image::RgbImage) -> Option<String> {
    let (r, g, b) = mean_colour(image);
    Some(if r > g + 60.0 && r > b + 60.0 {
        "A white square sits on a bright red background.".into()
    } else if b > r + 60.0 && b > g + 60.0 {
        "A white square on a deep blue background. A name tag reads Kowalczyk.".into()
    } else {
        "Colourful abstract shapes and stripes fill the screen.".into()
    })
}

/// A folder of videos, an index and a caption cache, all temporary, and a stand-in VLM.
struct Archive {
    _dir: tempfile::TempDir,
    videos: PathBuf,
    index: PathBuf,
    cache: PathBuf,
    mock: MockVlm,
}

impl Archive {
    fn new(files: &[&str]) -> Archive {
        use_scene_book(scene_book);
        let dir = tempfile::tempdir().unwrap();
        let videos = dir.path().join("videos");
        std::fs::create_dir_all(&videos).unwrap();
        for name in files {
            std::fs::copy(fixture(name), videos.join(name)).unwrap();
        }
        Archive {
            videos: std::fs::canonicalize(videos).unwrap(),
            index: dir.path().join("index"),
            cache: dir.path().join("cache"),
            _dir: dir,
            mock: MockVlm::start(Wire::OpenAi),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = command();
        command
            .args(args)
            .arg("--index")
            .arg(&self.index)
            .env("OPENAI_BASE_URL", &self.mock.url)
            .env("OPENAI_API_KEY", KEY)
            .env("SCENEDEX_CACHE_DIR", &self.cache)
            .env("SCENEDEX_CAPTIONER", "openai");
        command
    }

    fn index(&self, extra: &[&str]) -> (Output, Vec<Value>, Value) {
        let mut args = vec!["index", "--json"];
        args.extend(extra);
        let output = self.command(&args).arg(&self.videos).output().unwrap();
        let (lines, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
        (output, lines, summary)
    }

    fn search(&self, query: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["search", query, "--json"];
        args.extend(extra);
        let output = self.command(&args).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        json_lines(&String::from_utf8_lossy(&output.stdout)).0
    }

    /// Starts indexing with every answer a quarter of a second late, and returns once the
    /// captioner has been asked `requests` times: a run caught in the middle.
    fn slow_index_midway(&self, requests: usize) -> std::process::Child {
        self.mock
            .script((0..100).map(|_| Fault::Stall(Duration::from_millis(250))));
        let child = self
            .command(&["index", "--jobs", "1", "--concurrency", "1"])
            .arg(&self.videos)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.mock.seen().len() < requests && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        child
    }

    /// Every segment in the index, as (file name, start, end, fingerprint), sorted.
    fn segments(&self) -> Vec<(String, i64, i64, String)> {
        let mut all: Vec<_> = self
            .search("anything", &["--limit", "1000"])
            .iter()
            .map(|h| {
                let name = Path::new(h["path"].as_str().unwrap())
                    .strip_prefix(&self.videos)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let ms = |f: &str| (h[f].as_f64().unwrap() * 1000.0).round() as i64;
                (
                    name,
                    ms("start"),
                    ms("end"),
                    h["fingerprint"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        all.sort();
        all
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn file_name(hit: &Value) -> &str {
    Path::new(hit["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
}

fn holds(hit: &Value, moment: f64) -> bool {
    hit["start"].as_f64().unwrap() <= moment && moment < hit["end"].as_f64().unwrap()
}

#[test]
fn a_paraphrase_finds_its_scene_by_meaning_and_an_on_screen_name_by_its_exact_word() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 2);
    assert_eq!(summary["failed"], 0);
    assert!(summary["segments"].as_u64().unwrap() >= 5, "{summary}");

    let hits = archive.search("a pale box over a scarlet backdrop", &["--limit", "3"]);
    assert_eq!(file_name(&hits[0]), "colors.mp4", "{hits:#?}");
    assert!(holds(&hits[0], 1.0), "{:#?}", hits[0]);
    assert!(hits[0]["caption"].as_str().unwrap().contains("red"));
    assert!(Path::new(hits[0]["thumbnail"].as_str().unwrap()).is_file());
    assert!(hits[0]["mpv"]
        .as_str()
        .unwrap()
        .starts_with("mpv --start=0.000 --end="));

    let hits = archive.search("Kowalczyk", &["--limit", "3"]);
    assert_eq!(file_name(&hits[0]), "colors.mp4", "{hits:#?}");
    assert!(holds(&hits[0], 3.0), "{:#?}", hits[0]);
}

#[test]
fn the_black_tail_of_a_video_belongs_to_no_segment_and_the_rest_tiles_its_timeline() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.index(&[]);
    let segments = archive.segments();
    let bounds: Vec<(i64, i64)> = segments.iter().map(|s| (s.1, s.2)).collect();
    assert_eq!(bounds, [(0, 2000), (2000, 4000)], "{segments:?}");
}

#[test]
fn reindexing_an_unchanged_folder_asks_nothing_and_writes_nothing() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let asked = archive.mock.seen().len();
    let before = archive.segments();
    let (output, lines, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(archive.mock.seen().len(), asked);
    assert_eq!(summary["unchanged"], 2);
    assert_eq!(
        (summary["indexed"].as_u64(), summary["segments"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(lines.iter().all(|l| l["status"] == "unchanged"));
    assert_eq!(archive.segments(), before);
}

#[test]
fn changing_one_file_replaces_its_segments_and_leaves_the_others_alone() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let before = archive.segments();
    std::fs::copy(fixture("fades.mp4"), archive.videos.join("colors.mp4")).unwrap();
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (summary["indexed"].as_u64(), summary["unchanged"].as_u64()),
        (Some(1), Some(1))
    );
    let after = archive.segments();
    let of = |all: &[(String, i64, i64, String)], name: &str| {
        all.iter()
            .filter(|s| s.0 == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(of(&after, "cuts.mp4"), of(&before, "cuts.mp4"));
    let old = &of(&before, "colors.mp4")[0].3;
    let new = of(&after, "colors.mp4");
    assert!(!new.is_empty());
    assert!(
        new.iter().all(|s| &s.3 != old),
        "old segments left beside new: {new:?}"
    );
    assert!(archive
        .search("Kowalczyk", &[])
        .iter()
        .all(|h| file_name(h) != "colors.mp4" || h["fingerprint"].as_str() != Some(old)));
}

#[test]
fn a_renamed_file_costs_nothing_and_is_found_at_its_new_path() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let asked = archive.mock.seen().len();
    std::fs::create_dir_all(archive.videos.join("moved")).unwrap();
    std::fs::rename(
        archive.videos.join("colors.mp4"),
        archive.videos.join("moved/renamed.mp4"),
    )
    .unwrap();
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        archive.mock.seen().len(),
        asked,
        "a move was paid for again"
    );
    assert_eq!(
        (summary["moved"].as_u64(), summary["indexed"].as_u64()),
        (Some(1), Some(0))
    );
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert!(
        hits[0]["path"]
            .as_str()
            .unwrap()
            .ends_with("moved/renamed.mp4"),
        "{hits:#?}"
    );
    let names: Vec<String> = archive.segments().into_iter().map(|s| s.0).collect();
    assert!(names.iter().all(|n| n != "colors.mp4"), "{names:?}");
}

#[test]
fn a_run_killed_with_sigkill_and_run_again_leaves_the_segments_of_one_clean_run() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4", "real.mp4"]);
    let mut child = archive.slow_index_midway(6);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let asked_before_kill = archive.mock.seen().len();
    assert!(asked_before_kill >= 6);

    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let resumed = archive.segments();

    let clean = Archive::new(&["colors.mp4", "cuts.mp4", "real.mp4"]);
    clean.index(&[]);
    let distinct_frames = clean.mock.seen().len();
    assert_eq!(resumed, clean.segments());
    // At most the one request in flight when the process died is asked again.
    assert!(
        archive.mock.seen().len() <= distinct_frames + 1,
        "{} requests for {distinct_frames} frames",
        archive.mock.seen().len()
    );
}

#[test]
fn a_second_process_on_the_same_index_gets_a_clear_in_use_error() {
    let archive = Archive::new(&["real.mp4"]);
    // The first answer takes three seconds: the first process is surely mid-run meanwhile.
    archive.mock.script([Fault::Stall(Duration::from_secs(3))]);
    let mut first = archive
        .command(&["index", "--concurrency", "1"])
        .arg(&archive.videos)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while archive.mock.seen().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = archive.command(&["search", "anything"]).output().unwrap();
    first.kill().unwrap();
    first.wait().unwrap();
    assert_eq!(second.status.code(), Some(7), "{}", stderr(&second));
    let message = stderr(&second);
    assert!(
        message.starts_with("Error: the index ")
            && message.contains(&format!("in use by process {}", first.id())),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1);
}

#[test]
fn a_corrupt_file_is_reported_and_the_others_are_indexed() {
    let archive = Archive::new(&["colors.mp4"]);
    std::fs::copy(
        fixture("bad/truncated.mp4"),
        archive.videos.join("broken.mp4"),
    )
    .unwrap();
    std::fs::write(archive.videos.join("notes.txt"), "not a video").unwrap();
    let (output, lines, summary) = archive.index(&[]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    assert_eq!(
        (summary["indexed"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(1))
    );
    let failed: Vec<&Value> = lines.iter().filter(|l| l["status"] == "failed").collect();
    assert!(failed[0]["path"].as_str().unwrap().ends_with("broken.mp4"));
    assert!(!failed[0]["error"].as_str().unwrap().is_empty());
    assert_eq!(lines.len(), 2, "notes.txt is not a video: {lines:?}");
}

#[test]
fn filters_narrow_hits_by_folder_time_and_moderation_fields() {
    let archive = Archive::new(&["cuts.mp4"]);
    std::fs::create_dir_all(archive.videos.join("sub")).unwrap();
    std::fs::copy(fixture("colors.mp4"), archive.videos.join("sub/colors.mp4")).unwrap();
    let (output, _, _) = archive.index(&["--style", "moderation"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let sub = archive.videos.join("sub");
    let hits = archive.search(
        "test pattern",
        &["--path", sub.to_str().unwrap(), "--limit", "50"],
    );
    assert!(!hits.is_empty() && hits.iter().all(|h| file_name(h) == "colors.mp4"));
    let late = archive.search("test pattern", &["--from", "00:00:06.000", "--limit", "50"]);
    assert!(!late.is_empty() && late.iter().all(|h| h["end"].as_f64().unwrap() >= 6.0));
    let early = archive.search("test pattern", &["--to", "1.5", "--limit", "50"]);
    assert!(!early.is_empty() && early.iter().all(|h| h["start"].as_f64().unwrap() <= 1.5));
    assert!(archive
        .search("test pattern", &["--where", "contains_people=true"])
        .is_empty());
    let nobody = archive.search("test pattern", &["--where", "contains_people=false"]);
    assert!(!nobody.is_empty() && nobody.iter().all(|h| h["contains_people"] == false));
    let one_each = archive.search("test pattern", &["--per-file", "1"]);
    assert_eq!(one_each.len(), 2);
}

#[test]
fn search_errors_are_one_clear_line_each() {
    let archive = Archive::new(&["colors.mp4"]);
    let missing = archive.command(&["search", "a dog"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(3));
    assert!(stderr(&missing).contains("does not exist yet; run `scenedex index PATH` first"));
    archive.index(&[]);
    let empty = archive.command(&["search", "  "]).output().unwrap();
    assert_eq!(empty.status.code(), Some(2));
    assert!(stderr(&empty).starts_with("Error: the query is empty"));
    let other = archive
        .command(&["search", "a dog", "--embedder", "openai"])
        .arg(format!("--embedding-url={}", archive.mock.url))
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(
        stderr(&other).contains(
            "was built with all-MiniLM-L6-v2 (384 dimensions), not text-embedding-3-small (8)"
        ),
        "{}",
        stderr(&other)
    );
    for output in [missing, empty, other] {
        assert_eq!(stderr(&output).lines().count(), 1, "{}", stderr(&output));
    }
}

#[test]
fn stats_counts_what_the_index_holds_and_forget_removes_a_file() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let stats = |a: &Archive| -> Value {
        let output = a.command(&["stats", "--json"]).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    };
    let before = stats(&archive);
    assert_eq!(before["files"], 2);
    assert_eq!(before["embedder"], "all-MiniLM-L6-v2");
    assert!(
        (before["hours"].as_f64().unwrap() * 3600.0 - 14.0).abs() < 0.2,
        "{before}"
    );
    assert_eq!(
        before["segments"].as_u64().unwrap() as usize,
        archive.segments().len()
    );
    assert!(before["captioners"]["openai/gpt-4o-mini"] == 2, "{before}");

    let output = archive
        .command(&["forget"])
        .arg(archive.videos.join("colors.mp4"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let after = stats(&archive);
    assert_eq!(after["files"], 1);
    assert!(archive.segments().iter().all(|s| s.0 == "cuts.mp4"));
}

#[test]
fn search_json_output_snapshot() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.index(&["--style", "moderation"]);
    // "red" is in one caption only, so the order cannot depend on a tie.
    let hits = archive.search("red test pattern", &["--limit", "2"]);
    insta::assert_json_snapshot!(hits, {
        "[].score" => "[score]",
        "[].similarity" => "[similarity]",
        "[].path" => "[path]",
        "[].paths" => "[paths]",
        "[].mpv" => insta::dynamic_redaction(|value, _| {
            assert!(value.as_str().unwrap().ends_with("/colors.mp4"));
            value.as_str().unwrap().split(" /").next().unwrap().to_string() + " [path]"
        }),
        "[].thumbnail" => "[thumbnail]",
        "[].fingerprint" => "[fingerprint]",
        "[].indexer" => "[indexer]",
    });
}

#[test]
fn sigint_stops_indexing_with_status_130_and_the_next_run_finishes_the_job() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4", "real.mp4"]);
    let mut child = archive.slow_index_midway(4);
    let status = common::interrupt(&mut child);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(!said.contains("Error"), "{said}");
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["failed"], 0);
    let names: std::collections::BTreeSet<String> =
        archive.segments().into_iter().map(|s| s.0).collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn a_copy_is_indexed_once_and_found_at_both_paths() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.index(&[]);
    let asked = archive.mock.seen().len();
    std::fs::copy(
        archive.videos.join("colors.mp4"),
        archive.videos.join("copy.mp4"),
    )
    .unwrap();
    let (output, lines, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(archive.mock.seen().len(), asked);
    assert_eq!(summary["copies"], 1, "{lines:?}");
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    let paths: Vec<&str> = hits[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    let copy = archive.videos.join("copy.mp4");
    let at_copy = archive.search("Kowalczyk", &["--path", copy.to_str().unwrap()]);
    assert!(!at_copy.is_empty());
    assert!(at_copy.iter().all(|h| h["paths"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p == copy.to_str().unwrap())));
}

#[test]
fn dry_run_counts_only_what_is_not_indexed_yet_and_spends_nothing() {
    let archive = Archive::new(&["colors.mp4"]);
    let dry = |a: &Archive| -> Value {
        let output = a
            .command(&["index", "--dry-run", "--json", "--price", "0.15,0.60"])
            .arg(&a.videos)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()["dry_run"].clone()
    };
    let before = dry(&archive);
    assert_eq!(
        (before["files"].as_u64(), before["files_to_index"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(before["to_caption"], 2, "{before}");
    assert!(before["cost_at_most"].as_f64().unwrap() > 0.0);
    assert!(
        archive.mock.seen().is_empty(),
        "a dry run asked the captioner"
    );
    assert!(!archive.index.exists(), "a dry run created the index");

    archive.index(&[]);
    std::fs::copy(fixture("cuts.mp4"), archive.videos.join("cuts.mp4")).unwrap();
    let after = dry(&archive);
    assert_eq!(
        (after["files"].as_u64(), after["files_to_index"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(after["to_caption"].as_u64().unwrap() >= 4, "{after}");
}

#[test]
fn a_touched_file_is_unchanged_and_not_paid_for_again() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.index(&[]);
    let asked = archive.mock.seen().len();
    let file = std::fs::File::options()
        .write(true)
        .open(archive.videos.join("colors.mp4"))
        .unwrap();
    file.set_modified(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let (output, lines, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(lines[0]["status"], "unchanged", "{lines:?}");
    assert_eq!(
        (summary["unchanged"].as_u64(), summary["copies"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(archive.mock.seen().len(), asked);
    // And again, now by size and time alone.
    let (_, _, again) = archive.index(&[]);
    assert_eq!(again["unchanged"], 1);
}
