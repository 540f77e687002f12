//! The README is a contract: one regression test for each claim issue 12 found broken (named
//! `issue12_N_...` after its item), one for each rough edge fixed, and `scripts/readme_check.sh`,
//! which runs every command the README shows and compares what comes out.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::archive::{stderr, Archive};
use common::vlm::{Fault, MockVlm, Wire, KEY};
use common::{command, fixture, json_lines, scenedex};
use serde_json::Value;

/// scenedex configured for the stand-in VLM, with a caption cache of its own.
fn with_vlm(mock: &MockVlm, cache: &Path) -> Command {
    let mut command = command();
    command
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &mock.url)
        .env("SCENEDEX_CACHE_DIR", cache);
    command
}

fn code(output: &Output) -> i32 {
    output.status.code().unwrap_or(-1)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn issue12_1_a_truncated_file_is_partial_in_every_command_and_indexed_again_once_whole() {
    let truncated = fixture("bad/truncated_faststart.mp4");
    let frames = scenedex(["frames".as_ref(), truncated.as_os_str(), "--json".as_ref()]);
    let (lines, _) = json_lines(&text(&frames.stdout));
    assert_eq!(code(&frames), 4, "{}", text(&frames.stderr));
    assert!(!lines.is_empty(), "what there is is printed");
    assert!(text(&frames.stderr).contains("truncated"));

    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let caption = with_vlm(&mock, cache.path())
        .arg("caption")
        .arg(&truncated)
        .arg("--json")
        .output()
        .unwrap();
    let (captions, _) = json_lines(&text(&caption.stdout));
    assert_eq!(code(&caption), 4, "{}", text(&caption.stderr));
    assert!(captions.iter().all(|c| c["caption"].is_string()));
    assert!(text(&caption.stderr).contains("truncated"));

    let archive = Archive::new(&[]);
    let download = archive.videos.join("download.mp4");
    std::fs::copy(&truncated, &download).unwrap();
    let (first, lines, summary) = archive.index(&[]);
    assert_eq!(code(&first), 4, "{}", stderr(&first));
    assert_eq!(lines[0]["status"], "partial", "{lines:?}");
    assert!(lines[0]["segments"].as_u64().unwrap() > 0);
    assert_eq!(
        (summary["partial"].as_u64(), summary["failed"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(
        !archive.segments().is_empty(),
        "what there is is searchable"
    );
    let asked = archive.mock.seen().len();
    let (again, lines, _) = archive.index(&[]);
    assert_eq!(code(&again), 4, "still incomplete: {}", stderr(&again));
    assert_eq!(lines[0]["status"], "partial");
    assert_eq!(
        archive.mock.seen().len(),
        asked,
        "nothing decoded or paid twice"
    );

    // The download completes: the file changes, and is indexed whole.
    std::fs::copy(fixture("cuts.mp4"), &download).unwrap();
    let (done, lines, _) = archive.index(&[]);
    assert_eq!(code(&done), 0, "{}", stderr(&done));
    assert_eq!(lines[0]["status"], "indexed");
}

#[test]
fn issue12_2_a_missing_image_exits_3_like_a_missing_video() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    for path in ["/nonexistent/picture.png", "/nonexistent/clip.mp4"] {
        let output = with_vlm(&mock, cache.path())
            .args(["caption", path])
            .output()
            .unwrap();
        assert_eq!(code(&output), 3, "{path}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains(path));
    }
}

#[test]
fn issue12_3_max_segment_caps_a_still_shot_whose_duplicates_one_frame_absorbed() {
    let archive = Archive::new(&["static.mp4"]);
    let (output, _, _) = archive.index(&["--max-segment", "5"]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let segments = archive.segments();
    assert!(segments.len() >= 7, "{segments:?}");
    let tiny = archive
        .command(&["index", "--max-segment", "0.001"])
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert_eq!(
        code(&tiny),
        2,
        "a hit under a second is refused: {}",
        stderr(&tiny)
    );
    assert!(segments.iter().all(|s| s.2 - s.1 <= 5000), "{segments:?}");
    assert!(
        segments.windows(2).all(|w| w[0].2 == w[1].1),
        "they tile: {segments:?}"
    );
    assert_eq!((segments[0].1, segments.last().unwrap().2), (0, 32000));
}

#[test]
fn issue12_4_a_dry_run_exits_with_the_first_failure_and_does_not_count_it_to_index() {
    let archive = Archive::new(&["cuts.mp4"]);
    std::fs::copy(fixture("bad/text.mp4"), archive.videos.join("text.mp4")).unwrap();
    std::fs::copy(
        fixture("bad/truncated_faststart.mp4"),
        archive.videos.join("truncated.mp4"),
    )
    .unwrap();
    let (output, _, _) = archive.index(&["--dry-run"]);
    assert_eq!(code(&output), 4, "{}", stderr(&output));
    let dry: Value = text(&output.stdout)
        .lines()
        .find_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()?
                .get("dry_run")
                .cloned()
        })
        .expect("a dry_run line");
    assert_eq!(dry["files"], 3);
    assert_eq!(dry["failed"], 1, "{dry}");
    assert_eq!(
        dry["files_to_index"], 2,
        "the truncated file is indexed as far as it goes"
    );
    assert_eq!(dry["partial"], 1, "{dry}");
}

#[test]
fn issue12_5_index_into_a_closed_pipe_indexes_everything_and_keeps_its_exit_status() {
    let archive = Archive::new(&["cuts.mp4", "colors.mp4", "fades.mp4"]);
    std::fs::copy(fixture("bad/text.mp4"), archive.videos.join("text.mp4")).unwrap();
    let mut child = archive
        .command(&["index", "--json", "--jobs", "1"])
        .arg(&archive.videos)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    // `| head -1`: the reader goes after one line.
    let output = child.wait_with_output().unwrap();
    let errors = text(&output.stderr);
    assert_eq!(code(&output), 4, "the failure still counts: {errors}");
    assert!(errors.contains("standard output closed early"), "{errors}");
    assert_eq!(archive.stats()["files"], 3, "every file was indexed");
}

#[test]
fn issue12_6_search_and_frames_settings_come_from_the_config_file_and_the_environment() {
    let archive = Archive::new(&["cuts.mp4", "colors.mp4"]);
    archive.index(&[]);
    let config = archive.dir.path().join("config.toml");
    std::fs::write(
        &config,
        "limit = 1\nper-file = 1\nmin-score = 0\nthumb-size = 64\n",
    )
    .unwrap();
    let hits = |extra: &[(&str, &str)]| {
        let mut command = archive.command(&["search", "shapes", "--json"]);
        command.env("SCENEDEX_CONFIG", &config);
        for (k, v) in extra {
            command.env(k, v);
        }
        let output = command.output().unwrap();
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        json_lines(&text(&output.stdout)).0.len()
    };
    assert_eq!(hits(&[]), 1, "limit from the file");
    assert_eq!(
        hits(&[("SCENEDEX_LIMIT", "3")]),
        2,
        "the environment beats the file; per-file 1"
    );
    assert_eq!(
        hits(&[("SCENEDEX_LIMIT", "3"), ("SCENEDEX_PER_FILE", "2")]),
        3
    );

    let out = archive.dir.path().join("thumbs");
    let frames = archive
        .command(&["frames", "--out"])
        .arg(&out)
        .arg(fixture("colors.mp4"))
        .env("SCENEDEX_CONFIG", &config)
        .output()
        .unwrap();
    assert_eq!(code(&frames), 0, "{}", stderr(&frames));
    let thumb = std::fs::read_dir(&out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let (w, h) = image::image_dimensions(thumb).unwrap();
    assert_eq!(w.max(h), 64);
}

#[test]
fn issue12_7_summaries_count_the_work_a_failed_file_paid_for_and_the_paths_removed() {
    let archive = Archive::new(&["cuts.mp4"]);
    // Every answer for the last frames fails, after the first ones were paid for.
    archive.mock.script(std::iter::repeat_n(
        Fault::Status {
            code: 400,
            retry_after: None,
        },
        1,
    ));
    let (output, _, summary) = archive.index(&["--concurrency", "1", "--retries", "0"]);
    assert_eq!(code(&output), 6, "{}", stderr(&output));
    assert_eq!(summary["failed"], 1);
    assert!(summary["calls"].as_u64().unwrap() >= 1, "{summary}");
    assert!(
        summary["frames_sampled"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    assert!(summary["input_tokens"].as_u64().unwrap() > 0, "{summary}");

    std::fs::copy(fixture("cuts.mp4"), archive.videos.join("copy.mp4")).unwrap();
    let (output, _, _) = archive.index(&[]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    std::fs::remove_file(archive.videos.join("copy.mp4")).unwrap();
    let (_, lines, summary) = archive.index(&["--prune-after", "0"]);
    assert!(lines.iter().any(|l| l["status"] == "removed"), "{lines:?}");
    assert_eq!(summary["removed"], 1, "{summary}");
}

#[test]
fn issue12_7_a_dry_run_for_the_batch_api_quotes_the_batch_price() {
    let cache = tempfile::tempdir().unwrap();
    let quote = |batch: bool| {
        let mut command = command();
        command
            .env("OPENAI_API_KEY", KEY)
            .env("SCENEDEX_CACHE_DIR", cache.path())
            .arg("caption")
            .arg(fixture("cuts.mp4"))
            .args(["--dry-run", "--json"]);
        if batch {
            command.arg("--batch");
        }
        let output = command.output().unwrap();
        assert_eq!(code(&output), 0, "{}", text(&output.stderr));
        let line: Value = serde_json::from_slice(&output.stdout).unwrap();
        line["dry_run"]["cost_at_most"].as_f64().unwrap()
    };
    let (full, batch) = (quote(false), quote(true));
    assert!(full > 0.0);
    assert!((batch - full / 2.0).abs() < 1e-9, "{batch} vs {full}");
}

#[test]
fn issue12_7_a_batch_summary_counts_its_requests_and_tokens() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let output = with_vlm(&mock, cache.path())
        .arg("caption")
        .arg(fixture("cuts.mp4"))
        .args(["--batch", "--poll", "0.1", "--json", "--price", "1,1"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let (lines, summary) = json_lines(&text(&output.stdout));
    let n = lines.len() as u64;
    assert_eq!(summary["batch"]["requests"].as_u64(), Some(n));
    assert_eq!(
        summary["cache_hits"], 0,
        "paid for now, through the batch: {summary}"
    );
    // The stand-in bills 120 tokens in and 30 out per answer; the batch, half of $1/M.
    assert_eq!(summary["input_tokens"], 120 * n, "{summary}");
    assert_eq!(summary["output_tokens"], 30 * n, "{summary}");
    let cost = summary["cost"].as_f64().unwrap();
    assert!((cost - 150.0 * n as f64 / 2e6).abs() < 1e-6, "{summary}");
}

#[test]
fn issue12_8_an_uncertain_moderation_answer_has_no_caption() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let dark = cache.path().join("dark.png");
    image::RgbImage::from_pixel(64, 48, image::Rgb([4, 4, 4]))
        .save(&dark)
        .unwrap();
    let output = with_vlm(&mock, cache.path())
        .arg("caption")
        .arg(&dark)
        .args(["--style", "moderation", "--json"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    let (lines, _) = json_lines(&text(&output.stdout));
    assert_eq!(lines[0]["kind"], "uncertain");
    assert_eq!(lines[0]["caption"], "", "{}", lines[0]);
    assert!(lines[0].get("moderation").is_none(), "{}", lines[0]);
}

#[test]
fn issue12_9_damage_is_counted_the_same_on_every_run_and_shown_in_the_summary() {
    let file = fixture("bad/corrupt_middle.mp4");
    let counts: Vec<Value> = (0..6)
        .map(|_| {
            let output = scenedex(["frames".as_ref(), file.as_os_str(), "--json".as_ref()]);
            json_lines(&text(&output.stdout)).1["corrupt"].clone()
        })
        .collect();
    assert!(counts.iter().all(|c| *c == counts[0]), "{counts:?}");
    assert!(counts[0].as_u64().unwrap() >= 1);
    let output = scenedex(["frames".as_ref(), file.as_os_str()]);
    assert!(
        text(&output.stdout).contains(&format!("{} damaged stretch", counts[0])),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn issue12_10_the_frames_table_says_the_verdicts_the_readme_documents() {
    let mut verdicts = Vec::new();
    for file in ["static.mp4", "colors.mp4"] {
        let output = scenedex(["frames".as_ref(), fixture(file).as_os_str()]);
        let table = text(&output.stdout);
        for row in table.lines().skip(1).take_while(|l| !l.is_empty()) {
            verdicts.push(row.split_whitespace().nth(5).unwrap().to_string());
        }
    }
    verdicts.sort();
    verdicts.dedup();
    assert_eq!(verdicts, ["duplicate", "kept", "uninformative"]);
}

#[test]
fn the_frames_table_shows_stretches_that_tile_the_timeline() {
    let output = scenedex(["frames".as_ref(), fixture("real.mp4").as_os_str()]);
    let table = text(&output.stdout);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() >= 7, "{table}");
    assert_eq!(rows[0][2], "00:00:00.000");
    for pair in rows.windows(2) {
        assert_eq!(pair[0][3], pair[1][2], "a gap between rows:\n{table}");
    }
    // The 0.32 s shot at 14.960 that --min-gap folded into the frame at 15.280.
    assert!(
        rows.iter()
            .any(|r| r[0] == "00:00:15.280" && r[2] == "00:00:14.960"),
        "{table}"
    );
}

#[test]
fn usage_mistakes_get_the_status_and_words_that_fit_them() {
    let output = scenedex(["stats", "--qdrant-url", "notaurl"]);
    assert_eq!(
        code(&output),
        2,
        "a malformed URL is a usage error: {}",
        text(&output.stderr)
    );
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let output = with_vlm(&mock, cache.path())
        .arg("caption")
        .arg(fixture("formats"))
        .output()
        .unwrap();
    let error = text(&output.stderr);
    assert_eq!(code(&output), 3, "{error}");
    assert!(
        error.contains("is a directory") && !error.contains("not a video"),
        "{error}"
    );
}

#[test]
fn the_first_ctrl_c_says_it_waits_for_requests_in_flight() {
    let mock = MockVlm::start(Wire::OpenAi);
    mock.script([Fault::Stall(std::time::Duration::from_secs(3))]);
    let cache = tempfile::tempdir().unwrap();
    let child = with_vlm(&mock, cache.path())
        .arg("caption")
        .arg(fixture("cuts.mp4"))
        .args(["--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while mock.seen().is_empty() && started.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let output = child.wait_with_output().unwrap();
    let error = text(&output.stderr);
    assert_eq!(code(&output), 130, "{error}");
    assert!(
        error.contains("stopping after the requests in flight; Ctrl-C again to quit now"),
        "{error}"
    );
}

#[test]
fn issue12_11_the_readme_shows_what_a_fresh_run_prints() {
    let check = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/readme_check.sh");
    let output = Command::new("bash")
        .arg(check)
        .env("SCENEDEX", env!("CARGO_BIN_EXE_scenedex"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

#[test]
fn issue12_12_errors_name_the_file_the_setting_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let run = |file_text: &str| {
        std::fs::write(&config, file_text).unwrap();
        let output = command()
            .env("SCENEDEX_CONFIG", &config)
            .arg("frames")
            .arg(fixture("cuts.mp4"))
            .output()
            .unwrap();
        (code(&output), text(&output.stderr))
    };
    let (status, error) = run("max-gap = 3\nmax-gap = 4\n");
    assert_eq!(status, 2);
    assert!(
        error.contains("'max-gap' is set twice") && error.contains("config.toml"),
        "{error}"
    );
    let (status, error) = run("max-gap = \"abc\"\n");
    assert_eq!(status, 2);
    assert!(
        error.contains("'abc'")
            && error.contains("in the config file")
            && error.contains("config.toml"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1, "{error}");

    let mock = MockVlm::start(Wire::OpenAi);
    mock.script(std::iter::repeat_n(
        Fault::Status {
            code: 400,
            retry_after: None,
        },
        100,
    ));
    let cache = tempfile::tempdir().unwrap();
    let video = fixture("cuts.mp4");
    let output = with_vlm(&mock, cache.path())
        .arg("caption")
        .arg(&video)
        .output()
        .unwrap();
    let error = text(&output.stderr);
    assert_eq!(code(&output), 6, "{error}");
    let last = error.lines().last().unwrap();
    assert!(
        last.contains(&*video.to_string_lossy()) && last.contains("failed"),
        "{last}"
    );
}

#[test]
fn filters_that_can_never_match_are_refused_or_warned_about() {
    let archive = Archive::new(&["cuts.mp4"]);
    archive.index(&[]);
    for bad in [
        &["--from", "12", "--to", "3"][..],
        &["--where", "nosuchfield=1"],
        &["--where", "people_count=two"],
        &["--where", "contains_people=maybe"],
        &["--min-score", "2"],
    ] {
        let output = archive
            .command(&["search", "shapes"])
            .args(bad)
            .output()
            .unwrap();
        assert_eq!(code(&output), 2, "{bad:?}: {}", stderr(&output));
    }
    let output = archive
        .command(&["index", "--merge-similarity", "1.5"])
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    for (args, warning) in [
        (
            &["--path", "/nope"][..],
            "nothing in the index is at or under /nope",
        ),
        (
            &["--where", "contains_people=false"],
            "no segment of this index has the field contains_people",
        ),
    ] {
        let output = archive
            .command(&["search", "shapes"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&output), 0);
        assert!(stderr(&output).contains(warning), "{}", stderr(&output));
    }
}

#[test]
fn an_index_folder_that_holds_other_files_is_refused() {
    let archive = Archive::new(&["cuts.mp4"]);
    let output = archive
        .command(&["index", "--index"])
        .arg(&archive.videos)
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert_eq!(code(&output), 2, "{}", stderr(&output));
    assert!(stderr(&output).contains("holds other files and no scenedex index"));
    let names: Vec<_> = std::fs::read_dir(&archive.videos).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing was written among the videos");
}

#[test]
fn a_dry_run_needs_no_key_and_creates_no_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("captions");
    let output = command()
        .env("SCENEDEX_CACHE_DIR", &cache)
        .args(["index", "--captioner", "openai", "--dry-run", "--index"])
        .arg(dir.path().join("index"))
        .arg(fixture("cuts.mp4"))
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("to caption with openai/gpt-4o-mini"));
    assert!(!cache.exists(), "a dry run writes nothing");
    assert!(!dir.path().join("index").exists());
    let tagger = command()
        .env("SCENEDEX_CACHE_DIR", &cache)
        .args(["caption", "--dry-run"])
        .arg(fixture("cuts.mp4"))
        .output()
        .unwrap();
    let said = text(&tagger.stdout);
    assert!(
        said.contains("to tag with tagger/") && !said.contains("tokens"),
        "{said}"
    );
}

#[test]
fn the_tagger_note_is_said_only_when_something_is_captioned_and_never_for_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let index = |path: &Path| {
        command()
            .env("SCENEDEX_CACHE_DIR", dir.path().join("cache"))
            .args(["index", "--index"])
            .arg(dir.path().join("index"))
            .arg(path)
            .output()
            .unwrap()
    };
    let first = index(&fixture("cuts.mp4"));
    assert_eq!(code(&first), 0, "{}", text(&first.stderr));
    assert!(text(&first.stderr).contains("note: captioning with the offline tagger"));
    assert!(text(&first.stdout).contains("pictures tagged with tagger/"));
    let again = index(&fixture("cuts.mp4"));
    assert!(
        !text(&again.stderr).contains("note:"),
        "{}",
        text(&again.stderr)
    );
    let missing = command()
        .args(["caption", "/nonexistent/clip.mp4"])
        .output()
        .unwrap();
    assert!(
        !text(&missing.stderr).contains("note:"),
        "{}",
        text(&missing.stderr)
    );
}

#[test]
fn an_emptied_index_has_no_negative_zero_hours() {
    let archive = Archive::new(&["cuts.mp4"]);
    archive.index(&[]);
    let output = archive
        .command(&["forget"])
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(text(&output.stdout).trim(), "forgot 1 path");
    let output = archive.command(&["stats"]).output().unwrap();
    let shown = text(&output.stdout);
    assert!(shown.contains("video:      0.000 h"), "{shown}");
}

/// Issue 12's item 11: how many pictures came from the cache varied between runs, as two files
/// in flight at once could both pay for a picture they share. Now the second waits for the
/// first's answer, so a run asks what a run of one file at a time asks, and says so alike.
#[test]
fn issue12_11_a_picture_shared_by_files_in_flight_is_paid_for_once() {
    // Both open on the same test card: their first pictures are byte for byte the same.
    let files = ["cuts.mp4", "flash.mp4"];
    let run = |jobs: &str| {
        let archive = Archive::new(&files);
        // Slow enough that the first answer is still on its way when the second file asks.
        archive
            .mock
            .set_latency(std::time::Duration::from_millis(1500));
        let (output, _, summary) = archive.index(&["--jobs", jobs]);
        assert_eq!(code(&output), 0, "{}", stderr(&output));
        (
            archive.mock.seen().len() as u64,
            summary["calls"].clone(),
            summary["cache_hits"].clone(),
        )
    };
    let one_at_a_time = run("1");
    let all_at_once = run("2");
    assert_eq!(all_at_once, one_at_a_time);
    assert!(
        one_at_a_time.2.as_u64().unwrap() > 0,
        "the fixtures share pictures"
    );
}

#[test]
fn issue24_a_mistyped_flag_is_one_line_that_says_what_to_do() {
    let output = command()
        .args(["search", "a dog", "--limt", "3"])
        .output()
        .unwrap();
    let error = text(&output.stderr);
    assert_eq!(code(&output), 2, "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.starts_with("Error: unexpected argument '--limt' found")
            && error.contains("did you mean '--limit'?")
            && error.contains("`scenedex search --help`"),
        "{error}"
    );
    let output = command()
        .env("SCENEDEX_LIMIT", "abc")
        .args(["search", "a dog"])
        .output()
        .unwrap();
    let error = text(&output.stderr);
    assert_eq!(code(&output), 2, "{error}");
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.contains("'abc'") && error.contains("the environment variable SCENEDEX_LIMIT"),
        "{error}"
    );
}

#[test]
fn issue24_a_broken_config_file_does_not_hide_help() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "max-gap = 3\nmax-gap = 4\n").unwrap();
    for args in [&["--help"][..], &["index", "--help"], &["--version"]] {
        let output = command()
            .env("SCENEDEX_CONFIG", &config)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(code(&output), 0, "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stdout).is_empty(), "{args:?}");
    }
    let output = command()
        .env("SCENEDEX_CONFIG", &config)
        .args(["search", "a dog"])
        .output()
        .unwrap();
    assert_eq!(code(&output), 2, "the file is still refused for work");
}

#[test]
fn issue24_search_and_serve_pointed_at_a_folder_of_videos_say_so() {
    let archive = Archive::new(&["cuts.mp4"]);
    for command in [
        &["search", "a dog"][..],
        &["serve", "--bind", "127.0.0.1:0"],
        &["stats"],
        &["export", "x.mp4"],
    ] {
        let output = archive
            .command(command)
            .arg("--index")
            .arg(&archive.videos)
            .output()
            .unwrap();
        let error = stderr(&output);
        assert_eq!(code(&output), 2, "{command:?}: {error}");
        assert_eq!(error.lines().count(), 1, "{error}");
        assert!(
            error.contains("holds other files and no scenedex index")
                && !error.contains("run `scenedex index"),
            "{command:?}: {error}"
        );
    }
    let names: Vec<_> = std::fs::read_dir(&archive.videos).unwrap().collect();
    assert_eq!(names.len(), 1, "nothing was written among the videos");
}
