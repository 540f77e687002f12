//! `scenedex export`: an index's segments as timed text tracks that real parsers (FFmpeg's)
//! read back, with exact times and nothing that does not describe the picture.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::archive::{stderr, Archive};

fn export(archive: &Archive, args: &[&str]) -> Output {
    let mut all = vec!["export"];
    all.extend(args);
    archive.command(&all).output().unwrap()
}

/// What FFmpeg makes of a track: its subtitle decoder and encoder, turned into SubRip.
fn read_back_by_ffmpeg(track: &Path) -> String {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(track)
        .args(["-f", "srt", "-"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        "",
        "ffmpeg complained about {}",
        track.display()
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_vtt_and_an_srt_track_hold_each_segment_to_the_millisecond_and_ffmpeg_reads_them() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let video = archive.videos.join("colors.mp4");
    let video = video.to_str().unwrap();

    let vtt = export(&archive, &[video]);
    assert!(vtt.status.success(), "{}", stderr(&vtt));
    let text = String::from_utf8(vtt.stdout).unwrap();
    assert!(text.starts_with("WEBVTT"), "{text}");
    assert!(
        text.contains(
            "00:00:00.000 --> 00:00:02.000\nA white square sits on a bright red background."
        ),
        "{text}"
    );
    assert!(
        text.contains("00:00:02.000 --> 00:00:04.000\nA white square on a deep blue"),
        "{text}"
    );
    // The black tail is uninformative: no cue.
    assert_eq!(text.matches(" --> ").count(), 2, "{text}");
    let track = archive.dir.path().join("colors.vtt");
    std::fs::write(&track, &text).unwrap();
    let srt = read_back_by_ffmpeg(&track);
    assert!(srt.contains("00:00:02,000 --> 00:00:04,000"), "{srt}");
    assert!(srt.contains("Kowalczyk"), "{srt}");

    let srt = export(&archive, &[video, "--format", "srt"]);
    assert!(srt.status.success(), "{}", stderr(&srt));
    let text = String::from_utf8(srt.stdout).unwrap();
    assert!(
        text.starts_with("1\n00:00:00,000 --> 00:00:02,000\n"),
        "{text}"
    );
    let track = archive.dir.path().join("colors.srt");
    std::fs::write(&track, &text).unwrap();
    assert!(read_back_by_ffmpeg(&track).contains("bright red background"));

    let jsonl = export(&archive, &[video, "--format", "jsonl"]);
    let lines: Vec<serde_json::Value> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[1]["start"].as_f64(), lines[1]["end"].as_f64()),
        (Some(2.0), Some(4.0))
    );
    assert!(lines[1]["text"].as_str().unwrap().contains("Kowalczyk"));
    assert_eq!(lines[1]["kind"], "description");
}

#[test]
fn a_folder_exports_one_track_per_file_and_never_overwrites_without_force() {
    let archive = Archive::new(&["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let videos = archive.videos.to_str().unwrap();

    let many = export(&archive, &[videos]);
    assert_eq!(many.status.code(), Some(2), "{}", stderr(&many));
    assert!(
        stderr(&many).contains("2 indexed files match; give --out DIR"),
        "{}",
        stderr(&many)
    );

    let out = archive.dir.path().join("tracks");
    let out_arg = out.to_str().unwrap();
    let first = export(&archive, &[videos, "--out", out_arg]);
    assert!(first.status.success(), "{}", stderr(&first));
    let colors = std::fs::read_to_string(out.join("colors.vtt")).unwrap();
    assert!(colors.contains("bright red"), "{colors}");
    assert!(out.join("cuts.vtt").is_file());
    read_back_by_ffmpeg(&out.join("cuts.vtt"));

    std::fs::write(out.join("cuts.vtt"), "mine").unwrap();
    let again = export(&archive, &[videos, "--out", out_arg]);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("exists already; --force replaces it"),
        "{}",
        stderr(&again)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("cuts.vtt")).unwrap(),
        "mine"
    );

    let forced = export(&archive, &[videos, "--out", out_arg, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(std::fs::read_to_string(out.join("cuts.vtt"))
        .unwrap()
        .starts_with("WEBVTT"));
}

#[test]
fn exporting_a_file_the_index_does_not_hold_says_so_with_exit_3() {
    let archive = Archive::new(&["colors.mp4"]);
    archive.index(&[]);
    let elsewhere = archive.dir.path().join("elsewhere.mp4");
    let output = export(&archive, &[elsewhere.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.starts_with("Error: ") && message.contains("run `scenedex index"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn issue25_every_track_a_run_writes_has_a_name_of_its_own_even_when_the_fallback_is_taken() {
    let archive = Archive::new(&[]);
    let names = ["a.mkv.mp4", "a.mp4", "a.mkv"];
    for name in names {
        std::fs::copy(common::fixture("colors.mp4"), archive.videos.join(name)).unwrap();
    }
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = archive.dir.path().join("tracks");
    let mut args = vec!["--out", out.to_str().unwrap()];
    let paths: Vec<String> = names
        .iter()
        .map(|n| archive.videos.join(n).to_string_lossy().into_owned())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    for force in [false, true] {
        let mut args = args.clone();
        if force {
            args.push("--force");
        }
        let output = export(&archive, &args);
        assert!(output.status.success(), "{}", stderr(&output));
        let mut written: Vec<String> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        written.sort();
        assert_eq!(
            written,
            ["a.mkv-2.vtt", "a.mkv.vtt", "a.vtt"],
            "force: {force}"
        );
    }
}

#[test]
fn issue24_export_jsonl_carries_every_field_search_json_has() {
    let archive = Archive::new(&["colors.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let video = archive.videos.join("colors.mp4");
    let jsonl = export(&archive, &[video.to_str().unwrap(), "--format", "jsonl"]);
    assert!(jsonl.status.success(), "{}", stderr(&jsonl));
    let lines: Vec<serde_json::Value> = String::from_utf8(jsonl.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // What ranks a hit or says where its file is belongs to a search, not to a track.
    let of_a_search = [
        "rank",
        "score",
        "similarity",
        "path",
        "path_bytes",
        "host",
        "mpv",
        "paths",
    ];
    let hits = archive.search("red background", &["--min-score", "0"]);
    assert!(!hits.is_empty());
    for hit in &hits {
        let line = lines
            .iter()
            .find(|l| l["start"] == hit["start"])
            .unwrap_or_else(|| panic!("no line at {}: {lines:?}", hit["start"]));
        assert!(hit.get("thumbnail").is_some(), "{hit}");
        for (field, value) in hit.as_object().unwrap() {
            if !of_a_search.contains(&field.as_str()) {
                assert_eq!(&line[field], value, "{field} of {line}");
            }
        }
    }
}
