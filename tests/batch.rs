//! `index --batch` (issue 11): every frame through a provider's batch API at half price,
//! recorded before any waiting, collected by any later run that shares the cache, never a
//! dead end when a batch fails, and never a second batch for a create that timed out.

mod common;

use std::process::Output;
use std::time::Duration;

use common::archive::Archive;
use common::vlm::Fate;
use serde_json::Value;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn creates(archive: &Archive) -> usize {
    archive
        .mock
        .batch_calls()
        .iter()
        .filter(|c| *c == "POST /v1/batches" || *c == "POST /v1/messages/batches")
        .count()
}

fn statuses(lines: &[Value]) -> Vec<String> {
    let mut all: Vec<String> = lines
        .iter()
        .map(|l| l["status"].as_str().unwrap().to_string())
        .collect();
    all.sort();
    all
}

fn ledger(archive: &Archive) -> usize {
    let dir = archive.cache(common::archive::HERE).join("batches");
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
            .count()
    })
}

const FILES: [&str; 2] = ["colors.mp4", "cuts.mp4"];

/// Both providers: no synchronous request, one batch, the summary prices it at half, and
/// the index holds exactly what a synchronous run writes.
fn batch_run_matches_a_synchronous_one(archive: Archive) {
    let (output, lines, summary) = archive.index(&["--batch", "--poll", "0.05", "--price", "1,2"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["indexed", "indexed"]);
    assert!(archive.mock.seen().is_empty(), "no synchronous request");
    assert_eq!(creates(&archive), 1);
    let batch = &summary["batch"];
    let requests = batch["requests"].as_u64().unwrap();
    assert!(requests >= 5, "{summary}");
    assert_eq!(batch["answered"].as_u64(), Some(requests));
    assert_eq!(batch["unanswered"], 0);
    let (cost, saved) = (
        summary["cost"].as_f64().unwrap(),
        summary["saved"].as_f64().unwrap(),
    );
    assert!(
        cost > 0.0 && (cost - saved).abs() < 1e-6,
        "half price: {summary}"
    );
    assert_eq!(ledger(&archive), 0, "collected batches leave no record");

    let sync = Archive::new(&FILES);
    let (output, _, _) = sync.index(&[]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let times = |a: &Archive| {
        a.segments()
            .into_iter()
            .map(|(name, start, end, _)| (name, start, end))
            .collect::<Vec<_>>()
    };
    assert_eq!(times(&archive), times(&sync));
    let hits = archive.search("white square on a deep blue background", &["--limit", "1"]);
    assert!(
        hits[0]["path"].as_str().unwrap().ends_with("colors.mp4"),
        "{hits:?}"
    );
}

#[test]
fn issue11_index_batch_openai_writes_what_a_synchronous_run_would_at_half_price() {
    batch_run_matches_a_synchronous_one(Archive::new(&FILES));
}

#[test]
fn issue11_index_batch_anthropic_writes_what_a_synchronous_run_would_at_half_price() {
    batch_run_matches_a_synchronous_one(Archive::anthropic(&FILES));
}

/// `--batch-size` splits the requests; every batch is within it, and none is lost.
#[test]
fn issue11_batches_are_split_to_the_size_asked() {
    let archive = Archive::anthropic(&FILES);
    let (output, lines, summary) =
        archive.index(&["--batch", "--batch-size", "3", "--poll", "0.05"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["indexed", "indexed"]);
    let sizes = archive.mock.batch_sizes();
    assert!(
        sizes.len() >= 2 && sizes.iter().all(|&n| n <= 3),
        "{sizes:?}"
    );
    assert_eq!(
        sizes.iter().sum::<usize>() as u64,
        summary["batch"]["requests"].as_u64().unwrap()
    );
    assert!(archive.mock.seen().is_empty());
}

/// `--no-wait` returns once the batches are sent and recorded; another machine sharing the
/// cache collects them and indexes the files, with no second batch and no synchronous call.
#[test]
fn issue11_no_wait_returns_at_once_and_another_machine_collects_the_batch() {
    let archive = Archive::new(&FILES);
    archive.mock.batches_take(1_000_000);
    let (output, lines, summary) = archive.index(&["--batch", "--no-wait"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["waiting", "waiting"]);
    assert_eq!(summary["waiting"], 2);
    assert!(
        stderr(&output).contains("2 files wait for batches; run `scenedex index --batch` again"),
        "{}",
        stderr(&output)
    );
    assert_eq!(ledger(&archive), 1, "the batch is recorded");
    assert_eq!(archive.stats()["files"], 0, "nothing is half-written");

    // Still running: a second look sends nothing new.
    let (output, lines, _) = archive.index(&["--batch", "--no-wait"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["waiting", "waiting"]);
    assert_eq!(creates(&archive), 1);

    archive.mock.complete_batches();
    let mut other = archive.command_on("there", &["index", "--json", "--batch", "--no-wait"]);
    other.env("SCENEDEX_CACHE_DIR", archive.cache(common::archive::HERE));
    let output = other.arg(&archive.videos).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let (lines, summary) = common::json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(statuses(&lines), ["indexed", "indexed"]);
    assert_eq!(summary["batch"]["collected"], 1);
    assert_eq!(creates(&archive), 1, "no second batch");
    assert!(archive.mock.seen().is_empty(), "no synchronous request");
    assert_eq!(ledger(&archive), 0);
}

/// An expired batch: what it finished is kept, its record cleared with a one-line note, and
/// the rest goes in a new batch on the next run, which finishes the files.
#[test]
fn issue11_an_expired_batch_keeps_what_it_finished_and_the_rest_is_sent_again() {
    let archive = Archive::new(&FILES);
    archive.mock.batch_fates([Fate::Expire(2)]);
    let (output, lines, summary) = archive.index(&["--batch", "--poll", "0.05"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let requests = summary["batch"]["requests"].as_u64().unwrap();
    assert_eq!(summary["batch"]["answered"], 2);
    assert_eq!(summary["batch"]["unanswered"].as_u64(), Some(requests - 2));
    assert!(
        statuses(&lines).contains(&"waiting".to_string()),
        "{lines:?}"
    );
    let notes: Vec<String> = stderr(&output)
        .lines()
        .filter(|l| l.contains("expired"))
        .map(str::to_string)
        .collect();
    assert_eq!(notes.len(), 1, "{}", stderr(&output));
    assert!(
        notes[0].contains(&format!("2 of {requests} requests answered")),
        "{notes:?}"
    );
    assert!(notes[0].contains("sent again on the next run"), "{notes:?}");
    assert_eq!(ledger(&archive), 0, "its record is cleared");

    let (output, lines, _) = archive.index(&["--batch", "--poll", "0.05"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(
        statuses(&lines)
            .iter()
            .all(|s| s == "indexed" || s == "unchanged"),
        "{lines:?}"
    );
    assert_eq!(archive.stats()["files"], 2);
    assert_eq!(
        archive.mock.batch_sizes(),
        [requests as usize, requests as usize - 2]
    );
    assert!(archive.mock.seen().is_empty(), "no synchronous request");
}

/// A cancelled Anthropic batch is not a dead end either.
#[test]
fn issue11_a_cancelled_anthropic_batch_is_collected_and_resent() {
    let archive = Archive::anthropic(&["colors.mp4"]);
    archive.mock.batch_fates([Fate::Cancel(1)]);
    let (output, lines, _) = archive.index(&["--batch", "--poll", "0.05"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["waiting"]);
    assert!(
        stderr(&output).contains("cancelled with 1 of"),
        "{}",
        stderr(&output)
    );
    let (output, lines, _) = archive.index(&["--batch", "--poll", "0.05"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["indexed"]);
    assert!(archive.mock.seen().is_empty());
}

/// A failed batch answers nothing; `--batch-fallback sync` asks for those frames now, at the
/// full price, and only then.
#[test]
fn issue11_a_failed_batch_falls_back_to_synchronous_requests_only_when_asked() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.mock.batch_fates([Fate::Fail, Fate::Fail]);
    let (output, lines, summary) = archive.index(&["--batch", "--poll", "0.05"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["waiting"]);
    assert!(
        stderr(&output).contains("failed (the mock refused this batch)"),
        "{}",
        stderr(&output)
    );
    assert!(archive.mock.seen().is_empty());
    let requests = summary["batch"]["requests"].as_u64().unwrap() as usize;

    let (output, lines, summary) =
        archive.index(&["--batch", "--poll", "0.05", "--batch-fallback", "sync"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["indexed"]);
    assert_eq!(
        archive.mock.seen().len(),
        requests,
        "each frame once, synchronously"
    );
    assert_eq!(summary["calls"].as_u64(), Some(requests as u64));
}

/// A create whose answer never comes is looked for in the provider's list before anything is
/// sent again: one batch, found and used.
fn a_timed_out_create_is_found_not_repeated(archive: Archive) {
    archive.mock.stall_next_create(Duration::from_secs(4));
    let (output, lines, _) = archive.index(&[
        "--batch",
        "--poll",
        "0.05",
        "--timeout",
        "1",
        "--retries",
        "3",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["indexed"]);
    assert_eq!(creates(&archive), 1, "{:?}", archive.mock.batch_calls());
    assert!(
        stderr(&output).contains("found in the provider's list"),
        "{}",
        stderr(&output)
    );
    assert!(archive.mock.seen().is_empty());
}

#[test]
fn issue11_a_timed_out_openai_create_is_found_in_the_batch_list() {
    a_timed_out_create_is_found_not_repeated(Archive::new(&["colors.mp4"]));
}

#[test]
fn issue11_a_timed_out_anthropic_create_is_found_in_the_batch_list() {
    a_timed_out_create_is_found_not_repeated(Archive::anthropic(&["colors.mp4"]));
}

/// A provider refusing the key exits 6, says so on one line, and never shows the key.
#[test]
fn issue11_a_refused_key_exits_6_and_leaves_no_record() {
    let archive = Archive::new(&["colors.mp4"]);
    let output = archive
        .command(&["index", "--batch"])
        .env("OPENAI_API_KEY", "sk-wrong-key-000")
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(6), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("Error: ") && text.contains("HTTP 401"),
        "{text}"
    );
    assert!(!text.contains("sk-wrong-key-000"), "{text}");
    assert_eq!(ledger(&archive), 0);
}

/// Batch answers are read with the synchronous checks: moderation answers become fields.
#[test]
fn issue11_batch_answers_get_the_moderation_checks() {
    let archive = Archive::new(&["colors.mp4"]);
    let (output, _, _) = archive.index(&["--batch", "--poll", "0.05", "--style", "moderation"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let hits = archive.search(
        "square",
        &["--where", "contains_people=false", "--min-score", "0"],
    );
    assert!(!hits.is_empty());
    assert!(
        hits.iter()
            .all(|h| h["contains_people"] == false && h["setting"].is_string()),
        "{hits:?}"
    );
}

/// The reproduction of issue 25: a create whose answer is lost, and another program's batch
/// of as many requests made at the same moment. The list cannot tell them apart, so neither
/// is taken on its count: the record waits for both, and the one whose answers carry its
/// custom ids is collected. Nothing is sent twice, and no batch backs two records.
#[test]
fn issue25_a_lost_anthropic_create_beside_a_lookalike_is_told_by_its_answers_never_sent_again() {
    let archive = Archive::anthropic(&["colors.mp4"]);
    archive.mock.lookalike_next_create();
    archive.mock.stall_next_create(Duration::from_secs(4));
    archive.mock.batches_take(1_000_000);
    let args = ["--batch", "--no-wait", "--timeout", "1", "--retries", "0"];
    let (output, lines, _) = archive.index(&args);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(statuses(&lines), ["waiting"]);
    assert!(
        text.contains("msgbatch_2, msgbatch_1 may be it") && text.contains("not sent again"),
        "{text}"
    );
    let (output, lines, _) = archive.index(&args);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["waiting"], "still running: nothing sent");
    assert_eq!(creates(&archive), 1);

    archive.mock.complete_batches();
    let (output, lines, summary) = archive.index(&args);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(statuses(&lines), ["indexed"]);
    assert!(
        text.contains("batch msgbatch_2: found in the provider's list"),
        "{text}"
    );
    assert_eq!(summary["batch"]["collected"], 1, "{summary}");
    assert_eq!(creates(&archive), 1, "{:?}", archive.mock.batch_calls());
    assert!(archive.mock.seen().is_empty(), "no synchronous request");
    assert_eq!(ledger(&archive), 0);
}

/// OpenAI's list comes in pages: a lost create's batch behind a page of newer batches is
/// still found by its tag.
#[test]
fn issue25_a_lost_openai_create_is_found_past_the_first_page_of_the_list() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.mock.list_page(1);
    archive.mock.foreign_batches(common::vlm::Wire::OpenAi, 2);
    archive.mock.stall_next_create(Duration::from_secs(4));
    let (output, lines, _) = archive.index(&[
        "--batch",
        "--poll",
        "0.05",
        "--timeout",
        "1",
        "--retries",
        "0",
    ]);
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert_eq!(statuses(&lines), ["indexed"]);
    assert!(
        text.contains("batch batch_3: found in the provider's list"),
        "{text}"
    );
    assert_eq!(creates(&archive), 1);
    let pages = archive
        .mock
        .batch_calls()
        .iter()
        .filter(|c| c.starts_with("GET /v1/batches?"))
        .count();
    assert_eq!(pages, 3, "{:?}", archive.mock.batch_calls());
}

/// A recorded batch the provider no longer knows (404) is retired with one line naming it,
/// and its pictures go in one new batch; later runs are not stuck on it.
#[test]
fn issue25_a_batch_the_provider_no_longer_knows_is_retired_and_its_pictures_sent_once() {
    for archive in [Archive::new(&FILES), Archive::anthropic(&FILES)] {
        archive.mock.batches_take(1_000_000);
        let (output, _, _) = archive.index(&["--batch", "--no-wait"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        let first = match archive.mock.wire() {
            common::vlm::Wire::OpenAi => "batch_1",
            common::vlm::Wire::Anthropic => "msgbatch_1",
        };
        archive.mock.forget_batch(first);
        archive.mock.batches_take(0);
        let (output, lines, summary) = archive.index(&["--batch", "--poll", "0.05"]);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(0), "{text}");
        assert!(
            text.contains(&format!(
                "note: batch {first}: the provider no longer knows it"
            )),
            "{text}"
        );
        assert_eq!(statuses(&lines), ["indexed", "indexed"]);
        assert_eq!(summary["batch"]["retired"], 1, "{summary}");
        assert_eq!(creates(&archive), 2, "sent again once");
        let (output, _, _) = archive.index(&["--batch"]);
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        assert_eq!(creates(&archive), 2);
        assert_eq!(ledger(&archive), 0);
    }
}

/// Files whose frames are in one machine's batches are claimed while those run: a machine with
/// a cache of its own (and so a ledger of its own) does not batch them again.
#[test]
fn issue25_a_machine_with_its_own_cache_does_not_batch_a_file_another_machine_batched() {
    let archive = Archive::new(&FILES);
    archive.mock.batches_take(1_000_000);
    let (output, _, _) = archive.index(&["--batch", "--no-wait"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(creates(&archive), 1);

    let (output, lines, _) = archive.index_on("there", &["--batch", "--no-wait"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["claimed", "claimed"]);
    assert_eq!(lines[0]["claimed_by"]["host"], common::archive::HERE);
    assert_eq!(creates(&archive), 1, "not batched twice");

    archive.mock.complete_batches();
    let (output, lines, _) = archive.index(&["--batch", "--no-wait"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(statuses(&lines), ["indexed", "indexed"]);
    assert_eq!(creates(&archive), 1);
    assert!(archive.mock.seen().is_empty(), "no synchronous request");
}
