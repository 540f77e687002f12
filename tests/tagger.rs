//! The offline tagger on real weights (put in place by scripts/setup.sh): no network, no key.

mod common;

use common::{command, fixture, json_lines};
use serde_json::Value;

fn tag(args: &[&str], env: &[(&str, &str)]) -> (Vec<Value>, String, i32) {
    let mut command = command();
    command.envs(env.iter().copied());
    let output = command
        .arg("caption")
        .args(args)
        .args(["--json", "--no-cache"])
        .output()
        .unwrap();
    let (lines, _) = json_lines(&String::from_utf8(output.stdout).unwrap());
    (
        lines,
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.code().unwrap_or(-1),
    )
}

fn caption_at(lines: &[Value], time: f64) -> String {
    let line = lines
        .iter()
        .find(|l| l["time"] == time)
        .unwrap_or_else(|| panic!("no caption at {time}: {lines:?}"));
    line["caption"].as_str().unwrap().to_string()
}

#[test]
fn known_frames_get_the_expected_labels() {
    let (lines, stderr, code) = tag(
        &[
            fixture("real.mp4").to_str().unwrap(),
            "--captioner",
            "tagger",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    let expectations: [(f64, &[&str]); 3] = [
        (6.48, &["suit"]), // a man in a suit, walking past cars
        (8.32, &["minibus", "ambulance", "police van"]), // a van in the foreground
        (15.28, &["bow tie", "Windsor tie"]), // carphone: a man in a bow tie
    ];
    for (time, any_of) in expectations {
        let caption = caption_at(&lines, time);
        assert!(caption.starts_with("tags: "), "{caption}");
        assert!(
            any_of.iter().any(|label| caption.contains(label)),
            "at {time}: {caption}"
        );
    }
    for line in &lines {
        assert_eq!(
            line["kind"], "tags",
            "labelled as tags, not as a description"
        );
        assert_eq!(line["backend"], "tagger");
        assert_eq!(line["prompt"], "none");
        assert_eq!(line["usage"]["input_tokens"], 0);
    }
}

#[test]
fn on_screen_text_is_read() {
    let (lines, stderr, code) = tag(
        &[
            fixture("slide.png").to_str().unwrap(),
            "--captioner",
            "tagger",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        caption_at(&lines, 0.0).contains("text: \"EXIT ONLY\""),
        "{lines:?}"
    );
}

#[test]
fn with_nothing_configured_the_tagger_runs_and_one_line_says_how_to_get_descriptions() {
    let (lines, stderr, code) = tag(&[fixture("slide.png").to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("OPENAI_API_KEY")
            && stderr.contains("OPENAI_BASE_URL")
            && stderr.contains("ANTHROPIC_API_KEY")
    );
    assert_eq!(lines[0]["backend"], "tagger");
}

#[test]
fn missing_weights_say_how_to_install_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr, code) = tag(
        &[
            fixture("slide.png").to_str().unwrap(),
            "--captioner",
            "tagger",
        ],
        &[("SCENEDEX_TAGGER_DIR", dir.path().to_str().unwrap())],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.starts_with("Error: ") && stderr.contains("scripts/setup.sh"),
        "{stderr}"
    );
}
