//! Ctrl-C ends a run at a clean point with status 130, like the best Unix tools.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::fixture;

#[test]
fn sigint_exits_130_without_an_error_message() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("live.ts");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // A live stream: ffmpeg feeds the pipe in real time, so scenedex is mid-run when signalled.
    let mut feeder = Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-i"])
        .arg(fixture("static.mp4"))
        .args(["-c", "copy", "-f", "mpegts", "-y"])
        .arg(&fifo)
        .stdin(Stdio::null())
        .spawn()
        .expect("ffmpeg runs (the README's set-up installs it)");
    let mut child = common::command()
        .args([
            "frames".as_ref(),
            fifo.as_os_str(),
            "--sample".as_ref(),
            "keyframes".as_ref(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "scenedex ended before the signal"
    );
    // If scenedex hangs, the helper kills it, and the feeder then fails on a closed pipe.
    let status = common::interrupt(&mut child);
    let _ = feeder.kill();
    let _ = feeder.wait();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}
