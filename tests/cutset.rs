//! The labelled cut set (fixtures/cutset, made by its make.sh): every change a file holds is
//! listed in labels.txt, and the sampler must find each one, in every codec, container and GOP
//! structure there, including those made to hide a cut from key-frame-first detection.

mod common;

use common::{frames_json, FramesRun};

/// Two frames at 25 fps, and a little for rounding.
const SLACK: f64 = 0.081;

/// A labelled change: a hard cut when `from == to`, else a fade or dissolve.
#[derive(Debug)]
struct Change {
    from: f64,
    to: f64,
}

fn labels() -> Vec<(String, Vec<Change>)> {
    let text = std::fs::read_to_string(common::fixture("cutset/labels.txt")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|line| {
            let (name, rest) = line.split_once(':').unwrap();
            let changes = rest
                .split_whitespace()
                .map(|item| {
                    let (from, to) = item.split_once('-').unwrap_or((item, item));
                    Change {
                        from: from.parse().unwrap(),
                        to: to.parse().unwrap(),
                    }
                })
                .collect();
            (name.to_string(), changes)
        })
        .collect()
}

/// The changes a run claims: each scene frame's stretch, from where it begins to the frame.
fn claims(run: &FramesRun) -> Vec<(f64, f64)> {
    run.frames
        .iter()
        .filter(|f| f["reason"] == "scene")
        .map(|f| (f["span"][0].as_f64().unwrap(), f["time"].as_f64().unwrap()))
        .collect()
}

/// A hard cut is found by a stretch beginning within two frames of it; a fade or dissolve by a
/// stretch that overlaps it.
fn found(change: &Change, (begins, taken): (f64, f64)) -> bool {
    if change.from == change.to {
        (begins - change.from).abs() <= SLACK
    } else {
        begins <= change.to + SLACK && taken >= change.from - SLACK
    }
}

fn missed_in(mode: &str) -> Vec<String> {
    let mut missed = Vec::new();
    for (name, changes) in labels() {
        let run = frames_json(&format!("cutset/{name}"), &["--sample", mode]);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let claims = claims(&run);
        for change in &changes {
            if !claims.iter().any(|c| found(change, *c)) {
                missed.push(format!("{name} at {:.2} (claims: {claims:?})", change.from));
            }
        }
    }
    missed
}

#[test]
fn issue10_auto_finds_every_labelled_change_in_the_cut_set() {
    let missed = missed_in("auto");
    assert!(missed.is_empty(), "missed: {missed:#?}");
}

#[test]
fn issue10_scene_finds_every_labelled_change_in_the_cut_set() {
    let missed = missed_in("scene");
    assert!(missed.is_empty(), "missed: {missed:#?}");
}

fn decoded(run: &FramesRun) -> u64 {
    run.summary["frames_decoded"].as_u64().unwrap()
}

/// A 20 s file of a still shot and a moving one, a key frame every second: the still shot's
/// intervals have look-alike key frames and quiet packets, so they go undecoded.
#[test]
fn issue10_key_frame_first_leaves_quiet_intervals_undecoded() {
    let run = frames_json("cutset/still_gop1s.mp4", &[]);
    assert_eq!(claims(&run), vec![(10.48, 10.48)], "the cut, exact");
    // 500 frames; decoding the reference frames of all of them takes every one (no B-frames).
    assert!(decoded(&run) < 250, "decoded {} of 500", decoded(&run));
}

/// A cutaway shorter than a GOP, inside one GOP whose key frames both show the shot it cuts
/// away from: the key frames look alike, so only the packets can tell. The cutaway is a flat
/// colour after a still shot, the cheapest picture to code.
#[test]
fn issue10_a_cutaway_between_look_alike_key_frames_is_found_from_its_packets() {
    let run = frames_json("cutset/aba_flat.mp4", &[]);
    let claims = claims(&run);
    assert_eq!(claims.len(), 2, "{claims:?}");
    assert!(
        found(&Change { from: 4.4, to: 4.4 }, claims[0]),
        "{claims:?}"
    );
    assert!(
        found(&Change { from: 5.2, to: 5.2 }, claims[1]),
        "{claims:?}"
    );
    // 225 frames: the other GOPs went undecoded, so the scout was at work.
    assert!(decoded(&run) < 200, "decoded {} of 225", decoded(&run));
}

/// The white frames of flashes.mp4 (one frame at 2 s and 4 s, two at 6 s) are not cuts.
#[test]
fn issue10_flashes_in_the_cut_set_are_not_cuts() {
    let run = frames_json("cutset/flashes.mp4", &[]);
    assert_eq!(claims(&run), vec![(8.0, 8.0)]);
}

/// In still_gop1s.mp4 a gap frame falls at 10.00 s (`--max-gap 10`) and the cut comes 0.48 s
/// later, inside `--min-gap`: the cut's frame replaces the gap frame. It took the gap frame's
/// stretch too, so the new shot's segment, and a search hit on it, began 0.48 s early.
#[test]
fn issue10_a_cut_replacing_a_gap_frame_does_not_take_its_stretch() {
    let run = frames_json("cutset/still_gop1s.mp4", &[]);
    let spans: Vec<&serde_json::Value> = run.timeline().iter().map(|f| &f["span"]).collect();
    assert_eq!(
        spans,
        [
            &serde_json::json!([0.0, 10.48]),
            &serde_json::json!([10.48, 20.0])
        ]
    );
}
