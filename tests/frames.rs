//! `scenedex frames` on the committed fixtures: what is sampled, when, and what becomes of it.
//! The times asserted here are the ones fixtures/make.sh builds into each file.

mod common;

use common::{assert_found, fixture, frames_json, scenedex};

/// One frame at the fixtures' 25 fps, plus rounding.
const FRAME: f64 = 0.0401;

#[test]
fn hard_cuts_are_found_within_one_frame() {
    for mode in ["scene", "auto"] {
        let run = frames_json("cuts.mp4", &["--sample", mode]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_found(&run.with_reason("scene"), &[2.0, 4.4, 6.8], FRAME);
    }
}

/// The coarse pass skips non-reference frames; the cut at 6.80 s lands on a B-frame and was
/// once reported one frame late, at 6.84 s.
#[test]
fn cut_on_a_skipped_b_frame_is_refined_to_the_exact_frame() {
    let run = frames_json("cuts.mp4", &["--sample", "scene"]);
    assert_found(&run.with_reason("scene"), &[2.0, 4.4, 6.8], 0.001);
}

#[test]
fn real_footage_cuts_are_found() {
    let run = frames_json("real.mp4", &["--sample", "scene"]);
    let expected = [5.28, 6.48, 8.32, 10.76, 12.76, 14.96, 15.28];
    let cuts = run.with_reason("scene");
    assert_found(&cuts, &expected, FRAME);
    assert!(
        cuts.len() <= expected.len() + 2,
        "too many false cuts: {cuts:?}"
    );
}

#[test]
fn every_shot_gets_a_kept_frame() {
    let cases: [(&str, &[(f64, f64)]); 3] = [
        (
            "cuts.mp4",
            &[(0.0, 2.0), (2.0, 4.4), (4.4, 6.8), (6.8, 9.0)],
        ),
        // Shot A before its fade, B after its fade-in, C after the dissolve.
        ("fades.mp4", &[(0.0, 2.0), (4.5, 6.5), (7.5, 10.0)]),
        (
            "real.mp4",
            &[
                (0.0, 5.28),
                (5.28, 6.48),
                (6.48, 8.32),
                (8.32, 10.76),
                (10.76, 12.76),
                (12.76, 14.96),
                (14.96, 19.28),
            ],
        ),
    ];
    for (file, shots) in cases {
        let run = frames_json(file, &[]);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        let kept: Vec<f64> = run
            .kept()
            .iter()
            .map(|f| f["time"].as_f64().unwrap())
            .collect();
        for (start, end) in shots {
            assert!(
                kept.iter().any(|t| *t >= start - 0.001 && *t < *end),
                "{file}: no kept frame in the shot {start}..{end}; kept {kept:?}"
            );
        }
    }
}

/// A fade or dissolve has two times: its frame is taken where it settles, and its stretch of
/// timeline begins where it began. The fade-in's stretch once began where it settled, 1.3 s
/// late, so a search hit for the new shot started after the viewer could see it.
#[test]
fn issue10_a_fade_or_dissolve_stretch_begins_where_the_change_began() {
    // fixtures/make.sh: A fades out over 2-3 s, B fades in from black over 3.5-4.5 s, and B
    // dissolves into C over 6.5-7.5 s.
    let changes = [(2.0, 3.0), (3.5, 4.5), (6.5, 7.5)];
    for mode in ["scene", "auto"] {
        let run = frames_json("fades.mp4", &["--sample", mode]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        let scenes: Vec<&serde_json::Value> = run
            .frames
            .iter()
            .filter(|f| f["reason"] == "scene")
            .collect();
        assert_eq!(scenes.len(), changes.len(), "{mode}: {scenes:?}");
        for (frame, (began, settled)) in scenes.iter().zip(changes) {
            let time = frame["time"].as_f64().unwrap();
            let start = frame["span"][0].as_f64().unwrap();
            assert!(time >= settled - FRAME, "{mode}: taken mid-change: {frame}");
            assert!(
                start > began - FRAME && start <= began + 3.0 * FRAME,
                "{mode}: the stretch should begin at {began} s: {frame}"
            );
        }
    }
}

/// A gap frame taken during a long dissolve lies after where the dissolve began: the settled
/// frame's stretch must not reach back to the gap frame's own time, or both stretches, and so
/// both segments and their ids, would start at one moment.
#[test]
fn issue10_every_stretch_starts_at_a_moment_of_its_own_when_gap_frames_fall_inside_a_dissolve() {
    let dir = tempfile::tempdir().unwrap();
    let slow = dir.path().join("slow.mp4");
    common::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=s=320x180:r=25:d=6",
            "-f",
            "lavfi",
            "-i",
            "smptehdbars=s=320x180:r=25:d=6",
            "-filter_complex",
            "[0:v][1:v]xfade=transition=fade:duration=3:offset=2,format=yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ],
        &slow,
    );
    let out = common::command()
        .arg("frames")
        .arg(&slow)
        .args([
            "--max-gap",
            "0.6",
            "--min-gap",
            "0.1",
            "--dup-distance",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let (frames, _) = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    let on_timeline: Vec<&serde_json::Value> = frames
        .iter()
        .filter(|f| f["verdict"] != "duplicate")
        .collect();
    assert!(on_timeline.len() >= 5, "{frames:?}");
    let starts: Vec<f64> = on_timeline
        .iter()
        .map(|f| f["span"][0].as_f64().unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "stretches sharing a start: {starts:?}"
    );
}

/// Two cuts 0.32 s apart, closer than --min-gap: auto mode once kept the first, so the 4 s
/// shot after the second had no frame at all.
#[test]
fn of_two_cuts_closer_than_the_min_gap_the_later_one_is_kept() {
    let run = frames_json("real.mp4", &[]);
    let kept: Vec<f64> = run
        .kept()
        .iter()
        .map(|f| f["time"].as_f64().unwrap())
        .collect();
    assert_found(&kept, &[15.28], 0.001);
    let last = (*run.kept().last().unwrap()).clone();
    assert_eq!(
        last["span"],
        serde_json::json!([14.96, 19.28]),
        "it stands for both shots"
    );
}

#[test]
fn one_frame_flash_is_not_a_cut() {
    let run = frames_json("flash.mp4", &["--sample", "scene"]);
    let near_flash: Vec<f64> = run
        .times()
        .into_iter()
        .filter(|t| (2.9..3.3).contains(t))
        .collect();
    assert!(
        near_flash.is_empty(),
        "sampled around the flash at 3.0 s: {near_flash:?}"
    );
}

#[test]
fn long_static_shot_folds_to_one_kept_frame() {
    let run = frames_json("static.mp4", &[]);
    assert_eq!(run.with_reason("gap"), vec![10.0, 20.0, 30.0]);
    let kept = run.kept();
    assert_eq!(kept.len(), 1, "{:?}", run.frames);
    assert_eq!(kept[0]["span"], serde_json::json!([0.0, 32.0]));
    assert!(run
        .frames
        .iter()
        .filter(|f| f["verdict"] == "duplicate")
        .all(|f| f["duplicate_of"] == 0.0));
}

#[test]
fn flat_colour_frames_of_different_colours_are_not_folded() {
    let run = frames_json("colors.mp4", &[]);
    let kept: Vec<f64> = run
        .kept()
        .iter()
        .map(|f| f["time"].as_f64().unwrap())
        .collect();
    assert_found(&kept, &[0.0, 2.0], FRAME);
    let black: Vec<_> = run
        .frames
        .iter()
        .filter(|f| f["blank"] == "black")
        .collect();
    assert_eq!(black.len(), 1, "{:?}", run.frames);
    assert_eq!(black[0]["kept"], false);
    assert_eq!(black[0]["verdict"], "uninformative");
    assert_eq!(
        black[0]["span"][1], 5.0,
        "an uninformative frame keeps its place on the timeline"
    );
}

const TIMED_FIXTURES: [&str; 9] = [
    "cuts.mp4",
    "flash.mp4",
    "fades.mp4",
    "static.mp4",
    "colors.mp4",
    "vfr.mkv",
    "offset.ts",
    "rotated.mp4",
    "real.mp4",
];

#[test]
fn timestamps_are_increasing_and_inside_the_video() {
    for file in TIMED_FIXTURES {
        for mode in ["auto", "scene", "keyframes", "interval:1"] {
            let run = frames_json(file, &["--sample", mode]);
            assert_eq!(run.code, 0, "{file} {mode}: {}", run.stderr);
            let duration = run.summary["duration"].as_f64().unwrap();
            let times = run.times();
            assert!(!times.is_empty(), "{file} {mode}: nothing sampled");
            assert!(
                times.windows(2).all(|w| w[0] < w[1]),
                "{file} {mode}: {times:?}"
            );
            assert!(
                times.iter().all(|t| (0.0..duration).contains(t)),
                "{file} {mode}: {times:?} vs {duration}"
            );
        }
    }
}

#[test]
fn timeline_spans_cover_the_video_without_gaps_or_overlaps() {
    for file in TIMED_FIXTURES {
        for mode in ["auto", "interval:1"] {
            let run = frames_json(file, &["--sample", mode]);
            let duration = run.summary["duration"].as_f64().unwrap();
            let spans: Vec<(f64, f64)> = run
                .timeline()
                .iter()
                .map(|f| {
                    (
                        f["span"][0].as_f64().unwrap(),
                        f["span"][1].as_f64().unwrap(),
                    )
                })
                .collect();
            assert_eq!(spans[0].0, 0.0, "{file} {mode}: {spans:?}");
            assert!(
                spans.windows(2).all(|w| w[0].1 == w[1].0),
                "{file} {mode}: {spans:?}"
            );
            assert_eq!(
                spans.last().unwrap().1,
                duration,
                "{file} {mode}: {spans:?}"
            );
        }
    }
}

#[test]
fn interval_mode_samples_every_n_seconds() {
    let run = frames_json("cuts.mp4", &["--sample", "interval:2"]);
    let times = run.times();
    assert_eq!(times.len(), 5, "{times:?}");
    assert_found(&times, &[0.0, 2.0, 4.0, 6.0, 8.0], 0.001);
}

#[test]
fn keyframes_mode_returns_exactly_the_key_frames() {
    let output = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-skip_frame",
            "nokey",
            "-select_streams",
            "v",
            "-show_entries",
            "frame=pts_time",
            "-of",
            "csv=p=0",
        ])
        .arg(fixture("real.mp4"))
        .output()
        .expect("ffprobe runs (the README's set-up installs it)");
    let expected: Vec<f64> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(
        expected.len() >= 4,
        "the real clip has a key frame per cut: {expected:?}"
    );
    let run = frames_json("real.mp4", &["--sample", "keyframes"]);
    assert_eq!(
        run.times().len(),
        expected.len(),
        "{:?} vs {expected:?}",
        run.times()
    );
    assert_found(&run.times(), &expected, 0.001);
    assert_eq!(
        run.summary["frames_decoded"].as_u64().unwrap(),
        expected.len() as u64
    );
}

#[test]
fn variable_frame_rate_times_are_exact() {
    let run = frames_json("vfr.mkv", &["--sample", "scene"]);
    assert_found(&run.with_reason("scene"), &[2.0, 3.0], 0.001);
    let run = frames_json("vfr.mkv", &["--sample", "interval:0.5"]);
    // After 2 s the frames are half a second apart: every sample lands exactly on one.
    let late: Vec<f64> = run.times().into_iter().filter(|t| *t >= 2.0).collect();
    assert_eq!(late, vec![2.0, 2.5, 3.0, 3.5, 4.0, 4.5]);
}

#[test]
fn time_counts_from_the_start_of_a_stream_that_does_not_start_at_zero() {
    let run = frames_json("offset.ts", &["--sample", "scene"]);
    assert_eq!(run.times()[0], 0.0);
    assert_found(&run.with_reason("scene"), &[2.0], 0.001);
    assert!(run.summary["duration"].as_f64().unwrap() < 4.1);
}

fn thumbnail(file: &str) -> image::RgbImage {
    let dir = tempfile::tempdir().unwrap();
    let out = scenedex([
        "frames".as_ref(),
        fixture(file).as_os_str(),
        "--out".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = dir.path().join("00-00-00.000.jpg");
    image::open(&first)
        .unwrap_or_else(|e| panic!("{}: {e}", first.display()))
        .to_rgb8()
}

#[test]
fn rotated_video_thumbnails_are_upright() {
    let ours = thumbnail("rotated.mp4");
    assert_eq!(ours.dimensions(), (180, 320));
    // FFmpeg's CLI applies the display matrix itself: its first frame is what a player shows.
    let dir = tempfile::tempdir().unwrap();
    let theirs_path = dir.path().join("ffmpeg.png");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(fixture("rotated.mp4"))
        .args(["-frames:v", "1"])
        .arg(&theirs_path)
        .status()
        .expect("ffmpeg runs (the README's set-up installs it)");
    assert!(status.success());
    let theirs = image::open(&theirs_path).unwrap().to_rgb8();
    assert_eq!(theirs.dimensions(), ours.dimensions());
    let diff: f64 = ours
        .as_raw()
        .iter()
        .zip(theirs.as_raw())
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / ours.as_raw().len() as f64;
    assert!(
        diff < 10.0,
        "thumbnail differs from the player's picture by {diff} per sample"
    );
}

#[test]
fn non_square_pixels_are_stretched_in_thumbnails() {
    assert_eq!(thumbnail("anamorphic.mkv").dimensions(), (320, 180));
}

#[test]
fn thumbnails_are_written_for_kept_frames_only() {
    let dir = tempfile::tempdir().unwrap();
    let out = scenedex([
        "frames".as_ref(),
        fixture("colors.mp4").as_os_str(),
        "--out".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert!(out.status.success());
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["00-00-00.000.jpg", "00-00-02.000.jpg"],
        "no black frame, no partial file"
    );
}

#[test]
fn audio_and_subtitle_streams_are_ignored() {
    let run = frames_json("with_audio.mp4", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary["video"]["codec"], "h264");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn common_containers_and_codecs_decode_every_frame() {
    for file in ["vp9.webm", "hevc.mov", "mpeg4.avi", "av1.mkv", "h264.mkv"] {
        let run = frames_json(&format!("formats/{file}"), &["--sample", "interval:0.2"]);
        assert_eq!(run.code, 0, "{file}: {}", run.stderr);
        assert_eq!(run.summary["frames_decoded"], 25, "{file}");
        assert_eq!(run.times().len(), 5, "{file}: {:?}", run.times());
    }
}

#[test]
fn bad_inputs_get_a_one_line_error_and_a_distinct_exit_code() {
    let cases = [
        ("bad/missing.mp4", 3, "no such file"),
        ("formats", 3, "is a directory"),
        ("bad/empty.mp4", 4, "file is empty"),
        ("bad/text.mp4", 4, "not a video FFmpeg can read"),
        ("bad/truncated.mp4", 4, "is it a complete download"),
        (
            "bad/truncated_faststart.mp4",
            4,
            "truncated: the video stops at",
        ),
        ("bad/audio_only.m4a", 4, "has no video stream"),
    ];
    for (file, code, message) in cases {
        let out = scenedex(["frames".as_ref(), fixture(file).as_os_str()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{file}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("Error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{file}: {stderr}");
        assert!(errors[0].contains(message), "{file}: {stderr}");
        assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    }
}

#[test]
fn truncated_file_still_reports_what_arrived() {
    let run = frames_json("bad/truncated_faststart.mp4", &[]);
    assert_eq!(run.code, 4);
    assert!(
        !run.frames.is_empty(),
        "the frames before the cut-off are not lost"
    );
    assert!(run.summary.is_object());
}

#[test]
fn corrupt_frame_in_the_middle_is_decoded_past_and_reported() {
    let run = frames_json("bad/corrupt_middle.mp4", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.summary["corrupt"].as_u64().unwrap() >= 1,
        "{:?}",
        run.summary
    );
    assert!(
        run.stderr.starts_with("warning: ") && run.stderr.lines().count() == 1,
        "{}",
        run.stderr
    );
    assert_found(&run.with_reason("scene"), &[6.8], FRAME);
}

#[test]
fn bad_flags_are_usage_errors() {
    let out = scenedex([
        "frames".as_ref(),
        fixture("cuts.mp4").as_os_str(),
        "--sample".as_ref(),
        "sometimes".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("use auto, scene, keyframes or interval:SECONDS"));
    let out = scenedex(["frames", "x.mp4", "--sample", "interval:-1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn closed_stdout_is_not_an_error() {
    use std::process::Stdio;
    let mut child = common::command()
        .args([
            "frames".as_ref(),
            fixture("cuts.mp4").as_os_str(),
            "--json".as_ref(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn json_output_snapshot() {
    let out = common::command()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["frames", "fixtures/cuts.mp4", "--json"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    insta::assert_json_snapshot!(lines, {
        "[].summary.wall_seconds" => "[wall]",
        "[].summary.speed" => "[speed]",
    });
}

/// Seeking must land on the same frames that decoding straight through finds. A seek once
/// measured the jump itself as a key-frame interval and stopped seeking after the first.
#[test]
fn interval_mode_seeks_past_long_gaps_and_lands_on_the_same_frames() {
    let seeking = frames_json("short_gop.mp4", &["--sample", "interval:3"]);
    assert_eq!(seeking.times(), vec![0.0, 3.0, 6.0, 9.0, 12.0, 15.0, 18.0]);
    let decoded = seeking.summary["frames_decoded"].as_u64().unwrap();
    assert!(
        decoded < 100,
        "seeking should skip most of the 200 frames; decoded {decoded}"
    );
    let through = frames_json("short_gop.mp4", &["--sample", "interval:1"]);
    for frame in &seeking.frames {
        let same_time = through
            .frames
            .iter()
            .find(|f| f["time"] == frame["time"])
            .unwrap();
        assert_eq!(same_time["hash"], frame["hash"], "at {}", frame["time"]);
    }
}

#[test]
fn the_config_file_sets_defaults_below_flags() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "max-gap = 4\ncolor_tolerance = 30\n").unwrap();
    let run = |extra: &[&str]| {
        let output = common::command()
            .env("SCENEDEX_CONFIG", &config)
            .args([
                "frames".as_ref(),
                fixture("static.mp4").as_os_str(),
                "--json".as_ref(),
            ])
            .args(extra)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let gaps: Vec<f64> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "gap")
            .map(|v| v["time"].as_f64().unwrap())
            .collect();
        (
            output.status.code(),
            gaps,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (code, gaps, stderr) = run(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(gaps, vec![4.0, 8.0, 12.0, 16.0, 20.0, 24.0, 28.0]);
    let (_, gaps, _) = run(&["--max-gap", "10"]);
    assert_eq!(gaps, vec![10.0, 20.0, 30.0], "a flag beats the file");
    std::fs::write(&config, "max-gapp = 4\n").unwrap();
    let (code, _, stderr) = run(&[]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with("Error: ")
            && stderr.contains("unknown setting 'max-gapp'")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// A full disk while writing thumbnails: a one-line error, exit 5, and no half-written file.
/// Needs root, to mount a 64 KiB tmpfs; says so and skips otherwise.
#[test]
fn a_full_disk_is_a_clear_error_and_leaves_no_partial_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let out = scenedex([
        "frames".as_ref(),
        fixture("real.mp4").as_os_str(),
        "--out".as_ref(),
        dir.path().as_os_str(),
    ]);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    let _ = std::process::Command::new("umount")
        .arg(dir.path())
        .status();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("Error: ") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
