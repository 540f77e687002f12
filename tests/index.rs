//! `scenedex index` and `scenedex search` end to end: real decoding, real MiniLM embeddings,
//! the real qdrant-edge engine, and the stand-in VLM describing the fixture frames.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::archive::{file_name, holds, stderr, Archive};
use common::disk::Mounted;
use common::fixture;
use common::vlm::Fault;
use serde_json::Value;

#[test]
fn a_paraphrase_finds_its_scene_by_meaning_and_an_on_screen_name_by_its_exact_word() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 2);
    assert_eq!(summary["failed"], 0);
    assert!(summary["segments"].as_u64().unwrap() >= 5, "{summary}");

    // Its meaning in other words, here another language's: no word in common with the caption.
    // (multilingual-e5-small misses English synonyms such as "a pale box over a scarlet
    // backdrop", which all-MiniLM-L6-v2 found: see the README.)
    let hits = archive.search("ein weißes Quadrat auf rotem Grund", &["--limit", "3"]);
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
fn issue24_search_stats_export_and_cut_answer_while_index_runs() {
    let archive = Archive::new(&["colors.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::fs::copy(fixture("cuts.mp4"), archive.videos.join("cuts.mp4")).unwrap();
    // The run stops for 25 s before it records cuts.mp4: an index surely mid-run.
    let asked = archive.mock.seen().len();
    let mut running = archive
        .command(&["index"])
        .arg(&archive.videos)
        .env("FAILPOINTS", "index-before-record=sleep(25000)")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    archive.wait_for_requests(asked + 1);
    let socket = archive.index.join("holder.sock");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "only its owner reaches the holder");
    }
    let hits = archive.search("a white square on a bright red background", &[]);
    assert_eq!(file_name(&hits[0]), "colors.mp4", "{hits:?}");
    assert_eq!(archive.stats()["files"], 1, "what is done so far");
    let colors = archive.videos.join("colors.mp4");
    let track = archive.command(&["export"]).arg(&colors).output().unwrap();
    assert!(track.status.success(), "{}", stderr(&track));
    assert!(String::from_utf8_lossy(&track.stdout).contains("bright red background"));
    let clips = archive.dir.path().join("clips");
    let cut = archive
        .command(&["cut", "a bright red background", "--limit", "1", "--out"])
        .arg(&clips)
        .output()
        .unwrap();
    assert!(cut.status.success(), "{}", stderr(&cut));
    assert_eq!(std::fs::read_dir(&clips).unwrap().count(), 1);
    assert!(
        running.try_wait().unwrap().is_none(),
        "the index was still running throughout"
    );

    let status = running.wait().unwrap();
    assert!(status.success());
    assert!(!socket.exists(), "the holder's socket goes with it");
    let hits = archive.search("colourful abstract shapes", &[]);
    assert_eq!(file_name(&hits[0]), "cuts.mp4", "{hits:?}");
}

#[test]
fn issue24_an_index_held_by_a_process_that_answers_no_one_is_exit_7_naming_it() {
    let archive = Archive::new(&["colors.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    // flock(1) holds the index's lock as an older scenedex would: without a socket.
    let mut holder = std::process::Command::new("flock")
        .arg(archive.index.join("lock"))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let second = archive.command(&["search", "anything"]).output().unwrap();
    let waited = started.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(second.status.code(), Some(7), "{}", stderr(&second));
    let message = stderr(&second);
    assert!(
        message.starts_with("Error: the index ")
            && message.contains("is held by process ")
            && (message.contains("(flock)") || message.contains("(sleep)"))
            && message.contains("answers no other command"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1);
    assert!(waited < Duration::from_secs(20), "no hang: {waited:?}");
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
            "was built with multilingual-e5-small (384 dimensions), not text-embedding-3-small (8)"
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
    assert_eq!(before["embedder"], "multilingual-e5-small");
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

#[test]
fn a_file_whose_name_is_not_utf8_is_indexed_once_across_three_runs() {
    common::archive::name_that_is_not_utf8_is_kept(&Archive::new(&["cuts.mp4"]));
}

#[test]
fn two_identical_files_met_in_one_run_count_as_one_indexed_and_one_copy() {
    let archive = Archive::new(&["colors.mp4"]);
    std::fs::copy(fixture("colors.mp4"), archive.videos.join("twin.mp4")).unwrap();
    let (output, lines, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (summary["indexed"].as_u64(), summary["copies"].as_u64()),
        (Some(1), Some(1)),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
}

#[test]
fn a_full_disk_under_the_index_is_one_line_and_exit_5_and_keeps_what_was_written() {
    let archive = Archive::new(&["colors.mp4"]);
    let disk = archive.dir.path().join("disk");
    std::fs::create_dir_all(&disk).unwrap();
    let Some(mounted) = Mounted::tmpfs(&disk, 100) else {
        return;
    };
    let index = disk.join("index");
    let index_arg = ["--index", index.to_str().unwrap()];
    let (output, _, summary) = archive.index(&index_arg);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1);

    let filler = mounted.fill(16);
    std::fs::copy(fixture("cuts.mp4"), archive.videos.join("cuts.mp4")).unwrap();
    let (output, _, _) = archive.index(&index_arg);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(5), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.starts_with("Error: ") && error.contains("the disk is full"),
        "{error}"
    );

    std::fs::remove_file(filler).unwrap();
    let (output, _, summary) = archive.index(&index_arg);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (summary["indexed"].as_u64(), summary["unchanged"].as_u64()),
        (Some(1), Some(1))
    );
    let search = archive
        .command(&[
            "search",
            "Kowalczyk",
            "--json",
            "--limit",
            "50",
            "--min-score",
            "0",
        ])
        .args(index_arg)
        .output()
        .unwrap();
    let names: std::collections::BTreeSet<String> =
        common::json_lines(&String::from_utf8_lossy(&search.stdout))
            .0
            .iter()
            .map(|h| file_name(h).to_string())
            .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn the_count_of_failed_files_never_exceeds_the_files_regression_two_of_one_failed() {
    let archive = Archive::new(&["colors.mp4"]);
    let missing = archive.videos.join("missing.mp4");
    let output = archive
        .command(&["index"])
        .arg(&missing)
        .arg(archive.videos.join("colors.mp4"))
        .output()
        .unwrap();
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    let last = error.lines().last().unwrap();
    assert!(
        last.starts_with("Error: 1 of 2 files failed (each one reported above); first: ")
            && last.contains("missing.mp4"),
        "{error}"
    );
}

#[test]
fn a_point_this_version_cannot_read_is_left_alone_with_a_warning() {
    use scenedex::store::{EdgeStore, Point, VectorStore};
    let archive = Archive::new(&["colors.mp4"]);
    archive.index(&[]);
    {
        let store = EdgeStore::open(&archive.index, None, false).unwrap();
        let foreign = serde_json::json!({"record": "file", "fingerprint": "not ours"});
        let old_place = serde_json::json!({"record": "place", "path": 42});
        for (id, payload) in [(7, foreign), (8, old_place)] {
            let point = Point {
                id,
                vectors: None,
                payload: payload.as_object().unwrap().clone(),
            };
            store.upsert(vec![point]).unwrap();
        }
        store.flush().unwrap();
    }
    for args in [
        &["stats"][..],
        &["index", archive.videos.to_str().unwrap()],
        &["forget", "/nowhere"],
    ] {
        let output = archive.command(args).output().unwrap();
        let error = stderr(&output);
        assert!(output.status.success(), "{args:?}: {error}");
        assert!(
            error.contains("warning: 2 points of the index are not this version's to read"),
            "{args:?}: {error}"
        );
    }
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert_eq!(file_name(&hits[0]), "colors.mp4");
}

#[test]
fn a_query_with_no_close_match_says_so_and_min_score_0_shows_the_weak_hits() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let query = "a dog jumps into a swimming pool";
    let output = archive
        .command(&["search", query, "--json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(output.stdout.is_empty(), "weak hits shown as answers");
    let note = stderr(&output);
    assert!(
        note.starts_with("no close match: ")
            && note.contains("(similarity below 0.80) hidden; --min-score 0 shows them"),
        "{note}"
    );
    let all = archive.search(query, &["--min-score", "0"]);
    assert!(!all.is_empty());
    assert!(all.iter().all(|h| h["similarity"].as_f64().unwrap() < 0.80));
    let refused = archive
        .command(&["search", query, "--min-score", "2"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
}

/// A search hit for the shot a dissolve leads into starts where the dissolve began (6.5 s in
/// fades.mp4), not where it settled about a second later.
#[test]
fn issue10_the_segment_after_a_dissolve_starts_where_the_dissolve_began() {
    let archive = Archive::new(&["fades.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let starts: Vec<i64> = archive.segments().iter().map(|s| s.1).collect();
    assert!(
        starts.iter().any(|&ms| (6500..=6620).contains(&ms)),
        "a segment should start at the dissolve, 6.5 s: {starts:?}"
    );
    assert!(
        !starts.iter().any(|&ms| (7000..8000).contains(&ms)),
        "none where it settled: {starts:?}"
    );
}

/// Two pictures taking turns every 0.6 s for 30 s, encoded losslessly, so each comes back as the
/// same bytes: 50 kept frames, 2 distinct pictures.
fn two_pictures_taking_turns(path: &Path) {
    common::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "smptebars=s=320x180:r=25:d=30",
            "-f",
            "lavfi",
            "-i",
            "rgbtestsrc=s=320x180:r=25:d=30",
            "-filter_complex",
            "[0:v][1:v]overlay=enable='lt(mod(t,1.2),0.6)',format=yuv444p",
            "-c:v",
            "libx264",
            "-qp",
            "0",
            "-preset",
            "ultrafast",
        ],
        path,
    );
}

/// `index` held every kept picture of a file until the file was done, so its memory grew with
/// the video's length. Pictures now go through in windows (32 at --concurrency 1): a picture
/// that comes back in a later window must still be paid for once, with no cache to catch it,
/// and each segment keeps exactly one thumbnail.
#[test]
fn issue10_a_picture_seen_again_in_a_later_window_is_paid_for_once() {
    let archive = Archive::new(&[]);
    two_pictures_taking_turns(&archive.videos.join("turns.mkv"));
    let (output, _, summary) = archive.index(&["--no-cache", "--concurrency", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["frames_kept"], 50, "{summary}");
    assert_eq!(summary["calls"], 2, "{summary}");
    assert_eq!(archive.mock.seen().len(), 2);

    let hits = archive.search("anything", &["--limit", "1000", "--min-score", "0"]);
    assert_eq!(hits.len() as u64, summary["segments"].as_u64().unwrap());
    let mut shown: Vec<std::path::PathBuf> = hits
        .iter()
        .map(|h| std::path::PathBuf::from(h["thumbnail"].as_str().unwrap()))
        .collect();
    shown.sort();
    shown.dedup();
    assert_eq!(shown.len(), hits.len(), "one thumbnail per segment");
    let folder = shown[0].parent().unwrap();
    let mut present: Vec<std::path::PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    present.sort();
    assert_eq!(present, shown, "the other frames' pictures are removed");
    for (hit, path) in hits.iter().zip(&shown) {
        let start = (hit["start"].as_f64().unwrap() * 1000.0).round() as i64;
        assert!(
            shown.iter().any(|p| p.ends_with(format!("{start}.jpg"))),
            "{hit}"
        );
        assert!(image::open(path).is_ok(), "{}", path.display());
    }
}

/// Copies a file keeping its modification time, as a disk mounted again brings it back.
fn copy_keeping_time(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    let modified = std::fs::metadata(from).unwrap().modified().unwrap();
    std::fs::File::options()
        .write(true)
        .open(to)
        .unwrap()
        .set_modified(modified)
        .unwrap();
}

#[test]
fn issue25_a_disk_unmounted_under_the_folder_indexed_loses_nothing_and_comes_back_at_no_cost() {
    let archive = Archive::new(&[]);
    let (a, b) = (archive.videos.join("a"), archive.videos.join("b"));
    for disk in [&a, &b] {
        std::fs::create_dir_all(disk).unwrap();
    }
    let Some(_disk_b) = Mounted::tmpfs(&b, 64) else {
        return;
    };
    let Some(disk_a) = Mounted::tmpfs(&a, 64) else {
        return;
    };
    copy_keeping_time(&fixture("colors.mp4"), &a.join("colors.mp4"));
    for name in ["cuts.mp4", "fades.mp4"] {
        copy_keeping_time(&fixture(name), &b.join(name));
    }
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 3);
    let asked = archive.mock.seen().len();
    let segments = archive.segments();
    let thumbs = std::fs::read_dir(archive.index.join("thumbs"))
        .unwrap()
        .count();
    let saved = archive.dir.path().join("saved.mp4");
    copy_keeping_time(&a.join("colors.mp4"), &saved);

    drop(disk_a);
    let (output, lines, summary) = archive.index(&[]);
    let error = stderr(&output);
    assert_eq!(output.status.code(), Some(3), "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains(&format!(
            "{}: the folder is on another file system",
            a.display()
        )) && error.contains("unmounted disk"),
        "{error}"
    );
    assert_eq!(
        (summary["removed"].as_u64(), summary["offline"].as_u64()),
        (Some(0), Some(1)),
        "{lines:?}"
    );
    assert_eq!(archive.segments(), segments, "nothing paid for is lost");
    let thumbs_now = std::fs::read_dir(archive.index.join("thumbs"))
        .unwrap()
        .count();
    assert_eq!(thumbs_now, thumbs);
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert!(hits[0]["offline_since"].is_string(), "{:?}", hits[0]);
    assert_eq!(archive.stats()["offline"], 1);

    // The disk mounted again: online at no cost.
    let Some(_disk_a) = Mounted::tmpfs(&a, 64) else {
        return;
    };
    copy_keeping_time(&saved, &a.join("colors.mp4"));
    let (output, lines, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        (summary["unchanged"].as_u64(), summary["offline"].as_u64()),
        (Some(3), Some(0)),
        "{lines:?}"
    );
    assert_eq!(archive.mock.seen().len(), asked, "nothing asked again");
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert!(hits[0]["offline_since"].is_null(), "{:?}", hits[0]);
}

#[test]
fn issue25_a_deleted_file_stays_searchable_offline_until_gone_through_prune_after() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4", "fades.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let segments = archive.segments();
    std::fs::remove_file(archive.videos.join("colors.mp4")).unwrap();

    for _ in 0..2 {
        let (output, lines, summary) = archive.index(&[]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(summary["removed"], 0, "{lines:?}");
        assert_eq!(summary["offline"], 1, "{lines:?}");
        let offline: Vec<_> = lines.iter().filter(|l| l["status"] == "offline").collect();
        assert_eq!(offline.len(), 1, "{lines:?}");
        assert_eq!(file_name(offline[0]), "colors.mp4");
    }
    assert_eq!(archive.segments(), segments);
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert_eq!(file_name(&hits[0]), "colors.mp4");
    assert!(hits[0]["offline_since"].is_string(), "{:?}", hits[0]);
    let human = archive
        .command(&["search", "Kowalczyk", "--limit", "1"])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&human.stdout);
    assert!(shown.contains("colors.mp4 (offline since "), "{shown}");

    let (output, lines, summary) = archive.index(&["--prune-after", "1h"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["removed"], 0, "an hour has not passed: {lines:?}");
    let (output, lines, summary) = archive.index(&["--prune-after", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["removed"], 1, "{lines:?}");
    assert_eq!(summary["offline"], 0, "{lines:?}");
    assert!(archive.segments().iter().all(|s| s.0 != "colors.mp4"));
}

/// Reads `index --watch --json`'s lines until a summary comes; returns the lines before it
/// and the summary.
fn next_pass(lines: &std::sync::mpsc::Receiver<String>) -> (Vec<Value>, Value) {
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no summary came; lines so far: {seen:?}"));
        let value: Value = serde_json::from_str(&line).unwrap();
        if value.get("summary").is_some() {
            return (seen, value["summary"].clone());
        }
        seen.push(value);
    }
}

#[test]
fn issue24_index_watch_takes_a_copied_file_once_it_is_whole_and_notes_one_that_vanishes() {
    use std::io::{BufRead, Write};
    let archive = Archive::new(&["colors.mp4"]);
    // The fixture was just copied in: still for the settle time, it is taken at once.
    std::thread::sleep(Duration::from_millis(1500));
    let mut watching = archive
        .command(&[
            "index", "--watch", "--settle", "1s", "--rescan", "1h", "--json",
        ])
        .arg(&archive.videos)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = watching.stdout.take().unwrap();
    let (send, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    let (_, first) = next_pass(&lines);
    assert_eq!(first["indexed"], 1, "{first}");

    // A copy that stalls halfway, open for writing, for longer than the settle time.
    let whole = std::fs::read(fixture("cuts.mp4")).unwrap();
    let target = archive.videos.join("cuts.mp4");
    let mut copy = std::fs::File::create(&target).unwrap();
    copy.write_all(&whole[..whole.len() / 2]).unwrap();
    copy.flush().unwrap();
    std::thread::sleep(Duration::from_secs(4));
    copy.write_all(&whole[whole.len() / 2..]).unwrap();
    drop(copy);
    let (outcomes, pass) = next_pass(&lines);
    assert_eq!(pass["indexed"], 1, "{pass} {outcomes:?}");
    assert_eq!(
        (pass["partial"].as_u64(), pass["failed"].as_u64()),
        (Some(0), Some(0)),
        "{pass}"
    );
    let hits = archive.search("colourful abstract shapes", &[]);
    assert_eq!(
        file_name(&hits[0]),
        "cuts.mp4",
        "found while watching: {hits:?}"
    );
    let duration = |name: &str| {
        archive
            .segments()
            .iter()
            .filter(|s| s.0 == name)
            .map(|s| s.2)
            .max()
            .unwrap()
    };
    let indexed_end = duration("cuts.mp4");
    let copy_end = {
        let probe = std::process::Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
            ])
            .arg(fixture("cuts.mp4"))
            .output()
            .unwrap();
        let seconds: f64 = String::from_utf8_lossy(&probe.stdout)
            .trim()
            .parse()
            .unwrap();
        (seconds * 1000.0) as i64
    };
    assert!(
        (indexed_end - copy_end).abs() < 1000,
        "the whole file was indexed: segments end at {indexed_end} ms of {copy_end} ms"
    );

    // A file that vanishes is offline, as in any run.
    std::fs::remove_file(archive.videos.join("colors.mp4")).unwrap();
    let (_, pass) = next_pass(&lines);
    assert_eq!(pass["offline"], 1, "{pass}");

    // Ctrl-C stops it.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watching.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = watching.wait().unwrap();
    assert_eq!(status.code(), Some(130));
}
