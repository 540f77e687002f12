//! `scenedex eval` (issue 11): a configuration scored on a golden set against the stand-in
//! service, whose answers are known, so every score can be worked out by hand.

mod common;

use std::path::Path;
use std::process::Output;

use common::vlm::{MockVlm, Wire, KEY};
use common::{command, fixture};
use serde_json::Value;

fn eval(mock: &MockVlm, cache: &Path, args: &[&str]) -> Output {
    command()
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &mock.url)
        .env("SCENEDEX_CAPTIONER", "openai")
        .env("SCENEDEX_CACHE_DIR", cache)
        .arg("eval")
        .args(args)
        .output()
        .unwrap()
}

fn objects(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn at(name: &str) -> String {
    fixture(name).to_string_lossy().into_owned()
}

/// A golden set over the fixtures, in a folder of its own (absolute paths are kept as they are).
fn golden(dir: &Path, lines: &[String]) -> String {
    let file = dir.join("golden.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();
    file.to_string_lossy().into_owned()
}

/// The stand-in answers "red, test pattern, …" for the red frame, "blue, …" for the blue one,
/// UNCERTAIN for black, and "white, …" for the slide: keyword recall 3 of 6, one caption of
/// three with a forbidden word, one uncertain of four.
#[test]
fn issue11_eval_scores_captions_and_searches_on_a_golden_set() {
    let mock = MockVlm::start(Wire::OpenAi);
    let dir = tempfile::tempdir().unwrap();
    let colors = at("colors.mp4");
    let set = golden(
        dir.path(),
        &[
            format!(
                r#"{{"video": "{colors}", "time": 1.0, "must": ["red", "pattern"], "must_not": ["blue"]}}"#
            ),
            format!(
                r#"{{"video": "{colors}", "time": 3.0, "must": ["blue", "square"], "must_not": ["red"]}}"#
            ),
            format!(r#"{{"video": "{colors}", "time": 5.0, "must": ["black"]}}"#),
            format!(
                r#"{{"image": "{}", "must": ["exit"], "must_not": ["white"]}}"#,
                at("slide.png")
            ),
            format!(
                r#"{{"query": "blue test pattern", "video": "{colors}", "start": 2.0, "end": 4.0}}"#
            ),
            format!(
                r#"{{"query": "red test pattern", "video": "{colors}", "start": 0.0, "end": 2.0}}"#
            ),
        ],
    );
    let cache = dir.path().join("cache");
    let output = eval(&mock, &cache, &[&set, "--json", "--price", "1,2"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let scores = objects(&output);
    assert_eq!(scores.len(), 1);
    let s = &scores[0];
    assert_eq!(s["config"]["captioner"], "openai/gpt-4o-mini");
    assert_eq!(s["config"]["prompt"], "search@1");
    assert_eq!(s["keyword_recall"], 0.5);
    assert_eq!(s["hallucination_rate"], 0.3333);
    assert_eq!(s["uncertain_rate"], 0.25);
    assert_eq!(s["decorative_rate"], 0.0);
    assert_eq!(
        s["moderation_accuracy"],
        Value::Null,
        "the search style gives no fields"
    );
    assert_eq!(s["alt_text_compliance"], Value::Null);
    assert_eq!(s["recall_at_1"], 1.0);
    assert_eq!(s["recall_at_5"], 1.0);
    assert_eq!(s["mrr"], 1.0);
    // Every answer of the stand-in is 120 tokens in and 30 out: $0.00018 a frame at $1/$2.
    let frames = s["frames"].as_u64().unwrap();
    assert_eq!(frames as usize, mock.seen().len(), "each frame asked once");
    assert!(frames > 4, "the searches' index was captioned too");
    assert_eq!(s["tokens_per_1000"], 150_000.0);
    assert!(
        (s["cost_per_1000"].as_f64().unwrap() - 0.18).abs() < 1e-9,
        "{s}"
    );
    assert!(
        !cache.exists(),
        "nothing written to the caption cache unless asked"
    );
}

/// `--against` scores a second configuration on the same set, named in every figure; the
/// moderation style's fields are checked against the golden ones.
#[test]
fn issue11_eval_against_scores_two_configurations_side_by_side() {
    let mock = MockVlm::start(Wire::OpenAi);
    let dir = tempfile::tempdir().unwrap();
    let colors = at("colors.mp4");
    let set = golden(
        dir.path(),
        &[
            format!(
                r#"{{"video": "{colors}", "time": 1.0, "must": ["red"], "moderation": {{"contains_people": false, "setting": "Red test pattern"}}}}"#
            ),
            format!(
                r#"{{"video": "{colors}", "time": 3.0, "must": ["blue"], "moderation": {{"contains_people": true}}}}"#
            ),
        ],
    );
    let options = dir.path().join("moderation.toml");
    std::fs::write(&options, "style = \"moderation\"\nmax-side = 256\n").unwrap();
    let cache = dir.path().join("cache");
    let against = options.to_string_lossy().into_owned();
    let output = eval(
        &mock,
        &cache,
        &[&set, "--json", "--price", "1,2", "--against", &against],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let scores = objects(&output);
    assert_eq!(scores.len(), 2);
    assert_eq!(scores[0]["config"]["style"], "search");
    assert_eq!(scores[1]["config"]["style"], "moderation");
    assert_eq!(scores[0]["moderation_accuracy"], Value::Null);
    assert_eq!(
        scores[1]["moderation_accuracy"], 0.6667,
        "2 of 3 fields right"
    );
    assert_eq!(scores[0]["keyword_recall"], 1.0);
    for s in &scores {
        assert_eq!(
            s["recall_at_1"],
            Value::Null,
            "no searches: nothing to measure"
        );
        assert_eq!(s["mrr"], Value::Null);
        assert_eq!(s["cost_per_1000"].as_f64().map(|c| c > 0.0), Some(true));
    }
    let sizes: Vec<(u32, u32)> = mock.seen().iter().map(|s| s.image_size).collect();
    assert!(
        sizes[2..].iter().all(|(w, h)| (*w).max(*h) <= 256),
        "{sizes:?}"
    );

    let table = eval(&mock, &cache, &[&set, "--against", &against]);
    assert_eq!(table.status.code(), Some(0), "{}", stderr(&table));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("A: openai/gpt-4o-mini, prompt search@1, style search"),
        "{text}"
    );
    assert!(
        text.contains("B: openai/gpt-4o-mini, prompt moderation@1, style moderation"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("moderation_accuracy") && l.ends_with("0.6667")),
        "{text}"
    );
}

/// The golden set in fixtures/ runs whole against the stand-in.
#[test]
fn issue11_the_fixture_golden_set_runs() {
    let mock = MockVlm::start(Wire::OpenAi);
    let dir = tempfile::tempdir().unwrap();
    let output = eval(
        &mock,
        dir.path(),
        &[
            &at("golden/golden.jsonl"),
            "--json",
            "--style",
            "moderation",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let s = &objects(&output)[0];
    for key in [
        "config",
        "keyword_recall",
        "hallucination_rate",
        "decorative_rate",
        "uncertain_rate",
        "moderation_accuracy",
        "recall_at_1",
        "recall_at_5",
        "mrr",
        "cost_per_1000",
    ] {
        assert!(s.get(key).is_some(), "{key} missing: {s}");
    }
    assert!(s["moderation_accuracy"].as_f64().is_some(), "{s}");
    assert!(s["recall_at_5"].as_f64().is_some(), "{s}");
}

/// A bad golden line is one line naming the file and the line, exit 4; a missing file is 3.
#[test]
fn issue11_a_bad_golden_line_is_named() {
    let mock = MockVlm::start(Wire::OpenAi);
    let dir = tempfile::tempdir().unwrap();
    let set = golden(
        dir.path(),
        &[
            format!(r#"{{"image": "{}", "must": ["exit"]}}"#, at("slide.png")),
            r#"{"video": "clip.mp4", "must": ["dog"]}"#.to_string(),
        ],
    );
    let output = eval(&mock, dir.path(), &[&set]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(&format!("Error: {set}, line 2: ")),
        "{text}"
    );
    assert!(
        mock.seen().is_empty(),
        "nothing is paid for a golden set that cannot be read"
    );
    let missing = eval(&mock, dir.path(), &["/nonexistent/golden.jsonl"]);
    assert_eq!(missing.status.code(), Some(3), "{}", stderr(&missing));
}

#[test]
fn issue24_a_missing_golden_picture_is_exit_3_in_one_line_and_nothing_is_paid() {
    let mock = MockVlm::start(Wire::OpenAi);
    let dir = tempfile::tempdir().unwrap();
    let set = golden(
        dir.path(),
        &[
            format!(r#"{{"image": "{}", "must": ["exit"]}}"#, at("slide.png")),
            r#"{"image": "gone.png", "must": ["dog"]}"#.to_string(),
        ],
    );
    let output = eval(&mock, dir.path(), &[&set]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    let gone = dir.path().join("gone.png");
    assert!(
        text.starts_with(&format!("Error: {}: no such file", gone.display())),
        "{text}"
    );
    assert!(
        mock.seen().is_empty(),
        "nothing is paid for a set with a hole"
    );
}
