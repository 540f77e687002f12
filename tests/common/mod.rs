//! Helpers shared by the integration tests: run the real binary on the committed fixtures.
#![allow(dead_code)]

pub mod archive;
pub mod browser;
pub mod disk;
pub mod http;
pub mod qdrant;
pub mod serve;
pub mod vlm;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// The scenedex binary with none of the caller's settings: no API keys or endpoints, and no
/// config file, so a developer's own set-up cannot change what a test sees.
pub fn command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_scenedex"));
    for name in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "SCENEDEX_MODEL",
        "SCENEDEX_CACHE_DIR",
        "SCENEDEX_INDEX",
        "QDRANT_URL",
        "QDRANT_API_KEY",
    ] {
        command.env_remove(name);
    }
    command.env("SCENEDEX_CONFIG", "/nonexistent/scenedex-test-config.toml");
    // Tests of pictures do not pay for hearing; tests of speech ask for it (`--speech local`).
    command.env("SCENEDEX_SPEECH", "off");
    command
}

pub fn scenedex<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    command()
        .args(args)
        .output()
        .expect("the scenedex binary runs")
}

/// The JSON lines of a `--json` run: the per-item lines, and the final `summary` object.
pub fn json_lines(stdout: &str) -> (Vec<Value>, Value) {
    let mut lines = Vec::new();
    let mut summary = Value::Null;
    for line in stdout.lines() {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        match value.get("summary") {
            Some(s) => summary = s.clone(),
            None => lines.push(value),
        }
    }
    (lines, summary)
}

/// The JSON lines of one `scenedex frames --json` run.
pub struct FramesRun {
    pub frames: Vec<Value>,
    pub summary: Value,
    pub stderr: String,
    pub code: i32,
}

impl FramesRun {
    pub fn times(&self) -> Vec<f64> {
        self.frames
            .iter()
            .map(|f| f["time"].as_f64().unwrap())
            .collect()
    }

    pub fn kept(&self) -> Vec<&Value> {
        self.frames.iter().filter(|f| f["kept"] == true).collect()
    }

    /// Frames that stand on the timeline: kept and uninformative ones (not duplicates).
    pub fn timeline(&self) -> Vec<&Value> {
        self.frames
            .iter()
            .filter(|f| f["verdict"] != "duplicate")
            .collect()
    }

    pub fn with_reason(&self, reason: &str) -> Vec<f64> {
        self.frames
            .iter()
            .filter(|f| f["reason"] == reason)
            .map(|f| f["time"].as_f64().unwrap())
            .collect()
    }
}

pub fn frames_json(file: &str, extra: &[&str]) -> FramesRun {
    let path = fixture(file);
    let mut args = vec!["frames".into(), path.into_os_string(), "--json".into()];
    args.extend(extra.iter().map(|a| std::ffi::OsString::from(*a)));
    let output = scenedex(&args);
    let (frames, summary) = json_lines(&String::from_utf8(output.stdout).expect("stdout is UTF-8"));
    FramesRun {
        frames,
        summary,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        code: output.status.code().unwrap_or(-1),
    }
}

/// What ffprobe prints of these entries of a file's first video stream (and its container),
/// in this output format (`json`, `csv=p=0`).
pub fn probe_video(file: &std::path::Path, entries: &str, format: &str) -> String {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            entries,
        ])
        .args(["-of", format])
        .arg(file)
        .output()
        .expect("ffprobe runs (the README's set-up installs it)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Makes a test video: `ffmpeg -v error -y ARGS OUT`, which must succeed.
pub fn ffmpeg(args: &[&str], out: &std::path::Path) {
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg runs (the README's set-up installs it)");
    assert!(made.success(), "ffmpeg {args:?} failed");
}

/// Asserts every expected time has a found time within `tolerance`, and says which are missing.
pub fn assert_found(found: &[f64], expected: &[f64], tolerance: f64) {
    for e in expected {
        assert!(
            found.iter().any(|f| (f - e).abs() <= tolerance),
            "no time within {tolerance} s of {e} in {found:?}"
        );
    }
}

/// Sends SIGINT to the child and waits at most 20 s for it to end; its exit status.
pub fn interrupt(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("no stop within 20 s of SIGINT");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
