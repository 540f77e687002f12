//! Files nobody vetted (issue 10, "hostile and odd files"): a crafted file must never make
//! sampling reach the network, hang, or lose data.

mod common;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{command, fixture, json_lines};

/// A loopback port that records whether anything connected to it.
fn trap() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

fn connected(listener: &TcpListener) -> bool {
    listener.accept().is_ok()
}

/// Runs scenedex and returns what it printed, failing the test if it is still running after
/// a minute (a hang, or a connection left waiting), instead of never ending.
fn within_a_minute(command: &mut Command) -> std::process::Output {
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running after 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// A file named like a URL (`tcp:127.0.0.1:PORT.mp4`, a name any file system allows) is that
/// file: FFmpeg is handed `file:` names and allows the file protocol only.
#[test]
fn issue10_a_file_named_like_a_url_is_read_as_that_file_and_reaches_no_network() {
    let (listener, port) = trap();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("tcp:127.0.0.1:{port}.mp4");
    std::fs::copy(fixture("cuts.mp4"), dir.path().join(&name)).unwrap();
    let output = within_a_minute(
        command()
            .current_dir(dir.path())
            .args(["frames", &name, "--json"]),
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let (frames, _) = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert!(frames.len() >= 4, "the video was read: {frames:?}");
    assert!(
        !connected(&listener),
        "scenedex connected to a port named in a file name"
    );
}

/// A playlist whose segments are on a web server, in a file that looks like a video.
#[test]
fn issue10_a_playlist_of_web_segments_fails_as_not_a_video_and_fetches_nothing() {
    let (listener, port) = trap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["clip.m3u8", "clip.mp4"] {
        let playlist = dir.path().join(name);
        std::fs::write(
            &playlist,
            format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\n\
                 http://127.0.0.1:{port}/segment.ts\n#EXT-X-ENDLIST\n"
            ),
        )
        .unwrap();
        let output = within_a_minute(command().arg("frames").arg(&playlist));
        assert_eq!(output.status.code(), Some(4), "{name}");
        assert!(!connected(&listener), "{name}: a segment was fetched");
    }
}

/// `interval:N` stepped to the next sample time one interval at a time: a file whose
/// timestamps jump a trillion seconds ahead kept it stepping for days, deaf to Ctrl-C. The
/// frames after such a jump are now left out, with a warning, instead of stretching the
/// timeline across 31,000 years.
#[test]
fn issue10_interval_sampling_of_a_file_whose_timestamps_jump_ends_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let jump = dir.path().join("jump.nut");
    common::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x90:r=10:d=2",
            "-vf",
            "setpts='if(gte(N,10),PTS+1e12/TB,PTS)'",
            "-fps_mode",
            "passthrough",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-bf",
            "0",
        ],
        &jump,
    );
    let output = within_a_minute(command().arg("frames").arg(&jump).args([
        "--sample",
        "interval:1",
        "--json",
    ]));
    assert_eq!(output.status.code(), Some(0));
    let (frames, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
    let times: Vec<f64> = frames.iter().map(|f| f["time"].as_f64().unwrap()).collect();
    assert_eq!(times, vec![0.0]);
    assert_eq!(frames[0]["span"], serde_json::json!([0.0, 1.0]));
    assert_eq!(summary["duration"], 1.0);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("10 frames left out") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// The highest peak RSS, in MB, seen in /proc while `command` runs.
fn peak_rss_mb(command: &mut Command) -> (std::process::ExitStatus, f64) {
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0.0f64;
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, peak_kb / 1024.0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still running"
        );
        let text = std::fs::read_to_string(&status_file).unwrap_or_default();
        let hwm = text
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
        peak_kb = peak_kb.max(hwm.unwrap_or(0.0));
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every packet the decoder skipped (another stream's, or a non-key frame's with
/// `--sample keyframes`) was read into one reused packet that FFmpeg never released, so memory
/// grew with the file: `--sample keyframes` peaked at 223 MB on a 148 MB file, ffmpeg at 84 MB.
/// Here a 2-minute video carries 370 MB of audio that sampling skips.
#[test]
fn issue10_skipped_packets_are_released_so_memory_does_not_grow_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let loud = dir.path().join("loud.mkv");
    common::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=160x90:r=5:d=120",
            "-f",
            "lavfi",
            "-i",
            "sine=r=96000:d=120",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
            "-ac",
            "8",
            "-c:a",
            "pcm_s32le",
        ],
        &loud,
    );
    let size_mb = std::fs::metadata(&loud).unwrap().len() as f64 / 1e6;
    assert!(size_mb > 300.0, "{size_mb} MB");
    for mode in ["keyframes", "auto"] {
        let (status, peak) = peak_rss_mb(
            command()
                .arg("frames")
                .arg(&loud)
                .args(["--sample", mode, "--json"]),
        );
        assert!(status.success());
        assert!(
            peak < 150.0,
            "{mode}: peaked at {peak:.0} MB reading a {size_mb:.0} MB file"
        );
    }
}
