//! `scenedex caption` against a stand-in VLM service on loopback that speaks the real OpenAI
//! and Anthropic wire formats and checks every request.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::vlm::{Fault, MockVlm, Wire, KEY};
use common::{command, fixture, json_lines};
use serde_json::Value;

struct Run {
    lines: Vec<Value>,
    summary: Value,
    stdout: String,
    stderr: String,
    code: i32,
}

impl Run {
    fn captions(&self) -> Vec<&Value> {
        self.lines.iter().collect()
    }
}

/// Runs `scenedex caption` with the mock as the configured service and nothing else inherited.
fn caption(mock: &MockVlm, cache: &Path, args: &[&str]) -> Run {
    let output = mock_command(mock)
        .arg("caption")
        .args(args)
        .arg("--json")
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (lines, summary) = json_lines(&stdout);
    Run {
        lines,
        summary,
        stdout,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

/// scenedex configured for the mock service, as a user's environment would configure it.
fn mock_command(mock: &MockVlm) -> Command {
    let mut command = command();
    match mock.wire() {
        Wire::OpenAi => command
            .env("OPENAI_API_KEY", KEY)
            .env("OPENAI_BASE_URL", &mock.url),
        Wire::Anthropic => command
            .env("ANTHROPIC_API_KEY", KEY)
            .env("ANTHROPIC_BASE_URL", &mock.url),
    };
    command
}

fn path(file: &str) -> String {
    fixture(file).to_string_lossy().into_owned()
}

/// A one-colour PNG, for pictures with nothing to describe.
fn flat_png(dir: &Path, name: &str, rgb: [u8; 3]) -> String {
    let file = dir.join(name);
    image::RgbImage::from_pixel(64, 48, image::Rgb(rgb))
        .save(&file)
        .unwrap();
    file.to_string_lossy().into_owned()
}

/// A PNG with a red box on white: something to describe.
fn box_png(dir: &Path) -> String {
    let file = dir.join("box.png");
    image::RgbImage::from_fn(640, 480, |x, y| {
        if (100..400).contains(&x) && (100..300).contains(&y) {
            image::Rgb([220, 20, 20])
        } else {
            image::Rgb([250, 250, 250])
        }
    })
    .save(&file)
    .unwrap();
    file.to_string_lossy().into_owned()
}

#[test]
fn openai_requests_carry_the_model_the_prompt_and_a_scaled_jpeg() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let run = caption(
        &mock,
        cache.path(),
        &[
            &path("colors.mp4"),
            "--model",
            "test-model",
            "--max-side",
            "256",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen = mock.seen();
    assert_eq!(
        seen.len(),
        2,
        "one request per kept frame (the black frame is not sent)"
    );
    for request in &seen {
        assert_eq!(request.model, "test-model");
        assert_eq!(request.image_size, (256, 144));
        assert_eq!(request.max_tokens, 160);
        assert!(
            request
                .prompt
                .contains("Describe this video frame for search"),
            "{}",
            request.prompt
        );
        assert_eq!(
            request.body["messages"][1]["content"][1]["image_url"]["detail"],
            "low"
        );
    }
    let captions = run.captions();
    assert_eq!(captions[0]["time"], 0.0);
    assert!(
        captions[0]["caption"].as_str().unwrap().starts_with("red"),
        "{captions:?}"
    );
    assert!(
        captions[1]["caption"].as_str().unwrap().starts_with("blue"),
        "{captions:?}"
    );
    for c in &captions {
        assert_eq!(c["kind"], "description");
        assert_eq!(c["backend"], "openai");
        assert_eq!(c["model"], "test-model");
        assert_eq!(c["prompt"], "search@1");
        assert_eq!(c["style"], "search");
    }
    assert_eq!(run.summary["calls"], 2);
    assert_eq!(run.summary["input_tokens"], 240);
}

#[test]
fn anthropic_requests_use_the_messages_wire_format() {
    let mock = MockVlm::start(Wire::Anthropic);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = caption(
        &mock,
        cache.path(),
        &[
            &box_png(dir.path()),
            "--captioner",
            "anthropic",
            "--style",
            "description",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen = mock.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].model, "claude-haiku-4-5");
    assert_eq!(seen[0].image_size, (512, 384));
    assert!(seen[0].prompt.contains("three to five sentences"));
    assert_eq!(run.captions()[0]["backend"], "anthropic");
    assert_eq!(run.summary["output_tokens"], 25);
}

#[test]
fn a_second_run_of_the_same_video_makes_no_requests() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let first = caption(&mock, cache.path(), &[&path("real.mp4")]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let paid = mock.seen().len();
    assert_eq!(paid as u64, first.summary["calls"].as_u64().unwrap());
    let second = caption(&mock, cache.path(), &[&path("real.mp4")]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(mock.seen().len(), paid, "the cache answered everything");
    assert_eq!(second.summary["calls"], 0);
    assert_eq!(
        second.summary["cache_hits"].as_u64().unwrap() as usize,
        paid
    );
    assert!(second.captions().iter().all(|c| c["cached"] == true));
    let texts = |r: &Run| {
        r.captions()
            .iter()
            .map(|c| c["caption"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&first), texts(&second));
    // Another language is another caption, and is paid for.
    let french = caption(&mock, cache.path(), &[&path("real.mp4"), "--lang", "fr"]);
    assert_eq!(french.summary["calls"].as_u64().unwrap() as usize, paid);
    assert!(mock
        .seen()
        .last()
        .unwrap()
        .prompt
        .contains("language with code \"fr\""));
}

#[test]
fn rate_limits_and_server_errors_are_retried_after_retry_after() {
    let mock = MockVlm::start(Wire::OpenAi);
    mock.script([
        Fault::Status {
            code: 429,
            retry_after: Some(1),
        },
        Fault::Status {
            code: 503,
            retry_after: None,
        },
    ]);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = caption(&mock, cache.path(), &[&box_png(dir.path())]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen = mock.seen();
    assert_eq!(seen.len(), 3, "429, 503, then success");
    assert!(
        seen[1].at - seen[0].at >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured"
    );
    assert_eq!(run.summary["calls"], 1, "retries are one call");
    assert!(run.captions()[0]["caption"]
        .as_str()
        .unwrap()
        .contains("test pattern"));
}

/// Requests overlap up to --concurrency: with two slow answers, the second request arrives
/// before the first answer when two may be in flight, and only after it when one may.
#[test]
fn requests_are_in_flight_together_up_to_the_concurrency() {
    for (concurrency, overlapping) in [("2", true), ("1", false)] {
        let mock = MockVlm::start(Wire::OpenAi);
        mock.script([
            Fault::Stall(Duration::from_millis(1500)),
            Fault::Stall(Duration::from_millis(1500)),
        ]);
        let cache = tempfile::tempdir().unwrap();
        let run = caption(
            &mock,
            cache.path(),
            &[&path("colors.mp4"), "--concurrency", concurrency],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let seen = mock.seen();
        assert_eq!(seen.len(), 2);
        let gap = seen[1].at.duration_since(seen[0].at);
        assert_eq!(
            gap < Duration::from_millis(1500),
            overlapping,
            "concurrency {concurrency}: second request after {gap:?}"
        );
    }
}

#[test]
fn time_outs_malformed_and_truncated_answers_are_retried() {
    let mock = MockVlm::start(Wire::OpenAi);
    // A time-out of 3 s against a 6 s stall: a good answer is never late enough to be retried
    // on a machine busy with other tests (a 1 s time-out was, once: 5 requests).
    mock.script([
        Fault::Stall(Duration::from_secs(6)),
        Fault::Malformed,
        Fault::Truncated,
    ]);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = caption(
        &mock,
        cache.path(),
        &[&box_png(dir.path()), "--timeout", "3"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(mock.seen().len(), 4);
}

#[test]
fn other_client_errors_are_not_retried_and_fail_with_the_backend_and_status() {
    let mock = MockVlm::start(Wire::OpenAi);
    mock.script([Fault::Status {
        code: 401,
        retry_after: None,
    }]);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = caption(&mock, cache.path(), &[&box_png(dir.path())]);
    assert_eq!(run.code, 6, "{}", run.stderr);
    assert_eq!(mock.seen().len(), 1);
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert!(errors[0].contains("openai: HTTP 401"), "{}", run.stderr);
    assert!(run.captions()[0]["error"]
        .as_str()
        .unwrap()
        .contains("HTTP 401"));
}

#[test]
fn a_dead_server_is_a_clear_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let output = command()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", format!("http://127.0.0.1:{port}/v1"))
        .args([
            "caption",
            &box_png(dir.path()),
            "--retries",
            "1",
            "--no-cache",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(stderr.contains("cannot reach"), "{stderr}");
}

#[test]
fn decorative_and_uncertain_frames_are_marked_and_left_out() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let grey = caption(
        &mock,
        cache.path(),
        &[
            &flat_png(dir.path(), "grey.png", [128, 128, 128]),
            "--style",
            "alt-text",
        ],
    );
    assert_eq!(grey.captions()[0]["kind"], "decorative");
    assert_eq!(grey.captions()[0]["caption"], "");
    let dark = caption(
        &mock,
        cache.path(),
        &[&flat_png(dir.path(), "dark.png", [4, 4, 4])],
    );
    assert_eq!(dark.captions()[0]["kind"], "uncertain");
    assert_eq!(dark.code, 0);
}

#[test]
fn moderation_json_is_parsed_and_bad_json_is_retried_once_then_recorded() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let image = box_png(dir.path());
    let good = caption(&mock, cache.path(), &[&image, "--style", "moderation"]);
    assert_eq!(good.code, 0, "{}", good.stderr);
    let moderation = &good.captions()[0]["moderation"];
    assert_eq!(moderation["contains_people"], false);
    assert_eq!(moderation["people_count"], 0);
    assert_eq!(moderation["uncertain"], false);
    assert!(mock.seen()[0].prompt.contains("\"people_count\""));

    mock.script([Fault::Reply("Sure! Here it is: people yes".into())]);
    let retried = caption(
        &mock,
        cache.path(),
        &[&image, "--style", "moderation", "--no-cache"],
    );
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    assert_eq!(mock.seen().len(), 3, "one retry after the prose answer");

    mock.script([
        Fault::Reply("nope".into()),
        Fault::Reply("{\"contains_people\": true}".into()),
    ]);
    let failed = caption(
        &mock,
        cache.path(),
        &[&image, "--style", "moderation", "--no-cache"],
    );
    assert_eq!(failed.code, 6);
    assert_eq!(mock.seen().len(), 5, "exactly one retry");
    assert!(failed.captions()[0]["error"]
        .as_str()
        .unwrap()
        .contains("not the JSON"));
    assert!(!failed.stderr.contains("panicked"));
}

#[test]
fn the_api_key_never_appears_in_output_errors_or_the_cache() {
    let mock = MockVlm::start(Wire::OpenAi);
    mock.script([Fault::Status {
        code: 403,
        retry_after: None,
    }]);
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let failed = caption(&mock, cache.path(), &[&box_png(dir.path())]);
    let ok = caption(&mock, cache.path(), &[&path("colors.mp4")]);
    for run in [&failed, &ok] {
        assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY));
    }
    for entry in walk(cache.path()) {
        assert!(
            !std::fs::read_to_string(&entry).unwrap().contains(KEY),
            "{}",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_dry_run_spends_nothing_and_prices_the_run() {
    let mock = MockVlm::start(Wire::OpenAi);
    let cache = tempfile::tempdir().unwrap();
    let output = mock_command(&mock)
        .args([
            "caption",
            &path("real.mp4"),
            "--dry-run",
            "--json",
            "--price",
            "1,2",
            "--cache-dir",
        ])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(mock.seen().is_empty());
    let estimate: Value = serde_json::from_slice(&output.stdout).unwrap();
    let d = &estimate["dry_run"];
    assert_eq!(d["frames"], d["to_caption"]);
    assert!(d["frames"].as_u64().unwrap() >= 7);
    let frames = d["frames"].as_f64().unwrap();
    assert_eq!(d["output_tokens_at_most"].as_f64().unwrap(), 160.0 * frames);
    let cost = d["cost_at_most"].as_f64().unwrap();
    let expected = (d["input_tokens"].as_f64().unwrap() * 1.0 + 160.0 * frames * 2.0) / 1e6;
    assert!((cost - expected).abs() < 1e-9);
}

/// The batch is recorded before anything waits on it: a run stopped while the batch runs, and
/// run again, collects the same batch instead of paying for a second one.
/// Batch records in the ledger (its lock file aside).
fn records(dir: &Path) -> usize {
    walk(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .count()
}

#[test]
fn batch_mode_submits_once_and_is_collected_after_a_stop() {
    let mock = MockVlm::start(Wire::OpenAi);
    mock.batches_take(1_000_000);
    let cache = tempfile::tempdir().unwrap();
    let video = path("real.mp4");
    let args = [
        "caption",
        &video,
        "--batch",
        "--poll",
        "0.1",
        "--json",
        "--cache-dir",
    ];
    let mut first = mock_command(&mock)
        .args(args)
        .arg(cache.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !mock
        .batch_calls()
        .iter()
        .any(|c| c.starts_with("GET /v1/batches/"))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no batch was submitted: {:?}",
            mock.batch_calls()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(Command::new("kill")
        .args(["-INT", &first.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(first.wait().unwrap().code(), Some(130));
    assert_eq!(
        records(&cache.path().join("batches")),
        1,
        "the batch is recorded"
    );

    mock.complete_batches();
    let second = mock_command(&mock)
        .args(args)
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let calls = mock.batch_calls();
    assert_eq!(
        calls.iter().filter(|c| *c == "POST /v1/files").count(),
        1,
        "{calls:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| *c == "POST /v1/batches").count(),
        1,
        "{calls:?}"
    );
    assert!(
        mock.seen().is_empty(),
        "nothing went through the synchronous API"
    );
    let lines: Vec<Value> = String::from_utf8(second.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = &lines.last().unwrap()["summary"];
    let frames = lines.len() - 1;
    assert_eq!(
        summary["batch"]["answered"].as_u64().unwrap() as usize,
        frames
    );
    assert_eq!(summary["batch"]["failed"], 0);
    assert!(lines[..frames]
        .iter()
        .all(|l| l["caption"].as_str().unwrap().contains("test pattern")));
    assert!(
        records(&cache.path().join("batches")) == 0,
        "the record goes once collected"
    );

    let third = caption(&mock, cache.path(), &[&video, "--batch", "--poll", "0.1"]);
    assert_eq!(third.code, 0, "{}", third.stderr);
    assert_eq!(
        mock.batch_calls().len(),
        calls.len(),
        "all cached: no batch call"
    );
}

#[test]
fn batch_mode_needs_a_backend_with_a_batch_api() {
    let mock = MockVlm::start(Wire::Anthropic);
    let cache = tempfile::tempdir().unwrap();
    let run = caption(
        &mock,
        cache.path(),
        &[&path("colors.mp4"), "--captioner", "tagger", "--batch"],
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("--batch needs the openai or anthropic backend"),
        "{}",
        run.stderr
    );
}

/// Captions a red box with a real paid API, when its key is in the environment (a fraction
/// of a cent), and says so when it is skipped.
fn real_api_describes_a_red_box(key_variable: &str, extra: &[&str]) {
    let Ok(key) = std::env::var(key_variable) else {
        eprintln!("skipped: {key_variable} is not set, so the real API is not called");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = command()
        .env(key_variable, &key)
        .args(["caption", &box_png(dir.path()), "--json", "--no-cache"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.to_lowercase().contains("red"), "{stdout}");
    assert!(!stdout.contains(&key));
}

#[test]
fn real_openai_api_describes_a_fixture_picture() {
    real_api_describes_a_red_box("OPENAI_API_KEY", &[]);
}

#[test]
fn real_anthropic_api_describes_a_fixture_picture() {
    real_api_describes_a_red_box("ANTHROPIC_API_KEY", &["--captioner", "anthropic"]);
}

/// Issue 11: a redirect was followed with the key attached, `x-api-key` included, to any host.
#[test]
fn issue11_a_redirect_is_an_error_and_the_key_goes_nowhere_else() {
    for wire in [Wire::OpenAi, Wire::Anthropic] {
        let mock = MockVlm::start(wire);
        let elsewhere = MockVlm::start(wire);
        let target = match wire {
            Wire::OpenAi => format!("{}/chat/completions", elsewhere.url),
            Wire::Anthropic => format!("{}/v1/messages", elsewhere.url),
        };
        mock.script([Fault::Redirect(target)]);
        let cache = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run = caption(
            &mock,
            cache.path(),
            &[&box_png(dir.path()), "--retries", "0"],
        );
        assert_eq!(run.code, 6, "{wire:?}: {}", run.stderr);
        assert!(run.stderr.contains("307"), "{}", run.stderr);
        assert!(
            elsewhere.seen().is_empty(),
            "{wire:?}: the key went to the redirect's target"
        );
        assert!(!run.stderr.contains(KEY));
    }
}

/// Issue 11: every request in flight held a thread of its own (ureq). On the shared runtime,
/// `--concurrency 256` keeps hundreds of requests in flight with a handful of threads.
#[test]
fn issue11_hundreds_of_requests_in_flight_without_a_thread_each() {
    let mock = MockVlm::start(Wire::OpenAi);
    mock.set_latency(Duration::from_secs(2));
    // Files, not pipes: nobody reads a pipe while the process runs, and a full one would stop it.
    let dir = tempfile::tempdir().unwrap();
    let (stdout, stderr) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = mock_command(&mock)
        .args(["caption", &path("real.mp4"), "--sample", "interval:0.05"])
        .args([
            "--dup-distance",
            "0",
            "--concurrency",
            "256",
            "--no-cache",
            "--json",
        ])
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut most_threads = 0;
    while child.try_wait().unwrap().is_none() {
        let threads = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|n| n.trim().parse::<usize>().ok())
            })
            .unwrap_or(0);
        most_threads = most_threads.max(threads);
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    assert!(status.success(), "{stderr}");
    let (lines, _) = json_lines(&std::fs::read_to_string(&stdout).unwrap());
    assert!(lines.len() >= 200, "{} frames", lines.len());
    assert_eq!(mock.seen().len(), lines.len(), "one request per frame");
    assert!(
        mock.peak_in_flight() >= 150,
        "only {} at once",
        mock.peak_in_flight()
    );
    assert!(
        most_threads < 40,
        "{most_threads} threads for {} requests",
        lines.len()
    );
}
