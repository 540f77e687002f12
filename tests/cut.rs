//! `scenedex cut`: the hits of a search as clips that play on their own, starting at the
//! scene's first frame, with their sound, whether the scene starts on a key frame or not.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::archive::{stderr, Archive};
use common::vlm::mean_colour;
use serde_json::Value;

fn probe(clip: &Path) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-show_entries"])
        .arg("stream=codec_type,codec_name,nb_read_frames:format=duration")
        .args(["-of", "json"])
        .arg(clip)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The clip's first and last pictures, as FFmpeg decodes them.
fn end_pictures(clip: &Path) -> (image::RgbImage, image::RgbImage) {
    let picture = |args: &[&str]| {
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin"])
            .args(args)
            .arg("-i")
            .arg(clip)
            .args(["-frames:v", "1", "-f", "image2pipe", "-vcodec", "png", "-"])
            .output()
            .unwrap();
        image::load_from_memory(&output.stdout).unwrap().to_rgb8()
    };
    (picture(&[]), picture(&["-sseof", "-0.15"]))
}

fn is_blue(picture: &image::RgbImage) -> bool {
    let (r, g, b) = mean_colour(picture);
    b > r + 60.0 && b > g + 60.0
}

fn is_red(picture: &image::RgbImage) -> bool {
    let (r, g, b) = mean_colour(picture);
    r > g + 60.0 && r > b + 60.0
}

fn cut(archive: &Archive, query: &str, extra: &[&str]) -> (std::process::Output, Vec<PathBuf>) {
    let out = archive.dir.path().join("clips");
    let mut args = vec!["cut", query, "--limit", "1", "--out", out.to_str().unwrap()];
    args.extend(extra);
    let output = archive.command(&args).output().unwrap();
    let clips = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| PathBuf::from(l.split("  (").next().unwrap()))
        .collect();
    (output, clips)
}

/// The picture `at` seconds into a clip.
fn picture_at(clip: &Path, at: f64) -> image::RgbImage {
    let output = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(clip)
        .args([
            "-ss",
            &at.to_string(),
            "-frames:v",
            "1",
            "-f",
            "image2pipe",
            "-vcodec",
            "png",
            "-",
        ])
        .output()
        .unwrap();
    image::load_from_memory(&output.stdout).unwrap().to_rgb8()
}

fn streams(clip: &Path) -> (Value, u64, bool) {
    let probe = probe(clip);
    let streams = probe["streams"].as_array().unwrap().clone();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap()
        .clone();
    let frames = video["nb_read_frames"].as_str().unwrap().parse().unwrap();
    let audio = streams.iter().any(|s| s["codec_type"] == "audio");
    (video, frames, audio)
}

/// An archive of colors_audio.mp4: colors.mp4 with a tone and key frames at 0, 2 and 4 s.
fn with_sound() -> Archive {
    let archive = Archive::new(&[]);
    let name = "colors_audio.mp4";
    std::fs::copy(
        common::fixture(&format!("formats/{name}")),
        archive.videos.join(name),
    )
    .unwrap();
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    archive
}

#[test]
fn a_clip_between_key_frames_is_re_encoded_from_its_exact_first_frame_and_keeps_its_sound() {
    let archive = with_sound();
    // The blue scene is 2-4 s; half a second either side starts and ends between key frames
    // (0, 2 and 4 s): in the red scene, and in the black tail.
    let (output, clips) = cut(
        &archive,
        "a name tag that reads Kowalczyk",
        &["--pad", "0.5"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(clips.len(), 1);
    let clip = &clips[0];
    assert_eq!(
        clip.file_name().unwrap(),
        "colors_audio_00h00m01.500s-00h00m04.500s.mp4"
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("(re-encoded)"));
    // Red until 0.5 s into the clip, blue from there: it starts at 1.5 s to the frame.
    assert!(is_red(&picture_at(clip, 0.0)) && is_red(&picture_at(clip, 0.46)));
    assert!(is_blue(&picture_at(clip, 0.5)) && is_blue(&picture_at(clip, 2.46)));
    let (video, frames, audio) = streams(clip);
    assert_eq!(video["codec_name"], "h264");
    // The frame on screen at 1.5 s (shown from 1.48 s), then the 75 that start in 1.5-4.5 s.
    assert_eq!(frames, 76);
    assert!(audio, "the sound is kept");
}

#[test]
fn a_scene_from_key_frame_to_key_frame_is_copied_and_an_existing_clip_is_kept_without_force() {
    let archive = with_sound();
    let (output, clips) = cut(&archive, "a name tag that reads Kowalczyk", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8_lossy(&output.stdout).contains("(copied)"));
    let clip = &clips[0];
    assert_eq!(
        clip.file_name().unwrap(),
        "colors_audio_00h00m02.000s-00h00m04.000s.mp4"
    );
    let (first, last) = end_pictures(clip);
    assert!(is_blue(&first) && is_blue(&last));
    let (_, frames, audio) = streams(clip);
    assert_eq!(
        frames, 50,
        "2 s at 25 fps, every frame of the scene and none after it"
    );
    assert!(audio);

    std::fs::write(clip, b"mine").unwrap();
    let (again, _) = cut(&archive, "a name tag that reads Kowalczyk", &[]);
    assert_eq!(again.status.code(), Some(5), "{}", stderr(&again));
    assert!(stderr(&again).contains("exists already; --force replaces it"));
    assert_eq!(std::fs::read(clip).unwrap(), b"mine");
    let (forced, _) = cut(&archive, "a name tag that reads Kowalczyk", &["--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(is_blue(&end_pictures(clip).0));
}

#[test]
fn scenes_of_two_files_of_one_name_get_a_clip_each_regression_name_clash() {
    let archive = Archive::new(&[]);
    let source = common::fixture("formats/colors_audio.mp4");
    for folder in ["a", "b"] {
        std::fs::create_dir_all(archive.videos.join(folder)).unwrap();
    }
    std::fs::copy(&source, archive.videos.join("a/colors_audio.mp4")).unwrap();
    // The same pictures in other bytes: another file to the index, with the same scene times.
    let remuxed = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&source)
        .args(["-c", "copy", "-metadata", "title=b"])
        .arg(archive.videos.join("b/colors_audio.mp4"))
        .status()
        .unwrap();
    assert!(remuxed.success());
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 2, "{summary}");
    let out = archive.dir.path().join("clips");
    let output = archive
        .command(&[
            "cut",
            "a name tag that reads Kowalczyk",
            "--limit",
            "2",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "colors_audio_00h00m02.000s-00h00m04.000s-2.mp4",
            "colors_audio_00h00m02.000s-00h00m04.000s.mp4"
        ]
    );
}

/// One entry of a file's first video stream, as ffprobe prints it.
fn video_entry(file: &Path, entry: &str) -> String {
    common::probe_video(file, entry, "csv=p=0")
        .trim()
        .to_string()
}

#[test]
fn a_phone_video_held_upright_stays_upright_in_copied_and_re_encoded_clips() {
    let dir = tempfile::tempdir().unwrap();
    let source = common::fixture("rotated.mp4");
    let output = scenedex::clip::Output {
        format: "mp4".into(),
        fragmented: false,
        side: None,
        preset: "ultrafast",
    };
    let copied = dir.path().join("copied.mp4");
    let encoded = dir.path().join("encoded.mp4");
    scenedex::clip::copy(&source, 0.0, 2.0, &copied, &output).unwrap();
    let made = scenedex::clip::encode(&source, 0.5, 1.5, &encoded, &output).unwrap();
    assert!(made.encoded && (made.zero - 0.5).abs() < 1e-9);
    for clip in [&copied, &encoded] {
        let rotation = video_entry(clip, "stream_side_data=rotation");
        assert_eq!(
            rotation,
            video_entry(&source, "stream_side_data=rotation"),
            "{}",
            clip.display()
        );
        assert!(!rotation.is_empty());
    }
}

#[test]
fn non_square_pixels_keep_their_shape_in_a_re_encoded_clip() {
    let dir = tempfile::tempdir().unwrap();
    let source = common::fixture("anamorphic.mkv");
    let output = scenedex::clip::Output {
        format: "mp4".into(),
        fragmented: false,
        side: None,
        preset: "ultrafast",
    };
    let clip = dir.path().join("encoded.mp4");
    scenedex::clip::encode(&source, 0.5, 1.5, &clip, &output).unwrap();
    let shape = |file: &Path| video_entry(file, "stream=sample_aspect_ratio");
    assert_ne!(shape(&source), "1:1");
    assert_eq!(shape(&clip), shape(&source));
}

/// Frames a stream of the clip holds, as ffprobe counts them.
fn video_frames(clip: &Path) -> u64 {
    probe(clip)["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == "video")
        .and_then(|s| s["nb_read_frames"].as_str()?.parse().ok())
        .unwrap()
}

#[test]
fn issue25_a_re_encoded_stretch_at_the_end_of_a_file_keeps_its_last_frames() {
    let dir = tempfile::tempdir().unwrap();
    // Two seconds at 25 frames a second, one key frame, three B-frames between references:
    // the decoder holds the last frames back until it is told the file has ended.
    let source = dir.path().join("bframes.mp4");
    common::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc=duration=2:size=160x120:rate=25",
            "-c:v",
            "libx264",
            "-bf",
            "3",
            "-g",
            "250",
            "-pix_fmt",
            "yuv420p",
        ],
        &source,
    );
    let out = dir.path().join("end.mp4");
    let output = scenedex::clip::Output {
        format: "mp4".into(),
        fragmented: false,
        side: None,
        preset: "ultrafast",
    };
    let made = scenedex::clip::encode(&source, 1.5, 5.0, &out, &output).unwrap();
    assert!(made.encoded);
    assert_eq!(video_frames(&out), 13, "the frames from 1.50 s to 1.96 s");
}

#[test]
fn issue25_cut_makes_no_clip_of_a_file_that_changed_since_it_was_indexed_and_says_so() {
    let archive = with_sound();
    let file = archive.videos.join("colors_audio.mp4");
    // Another video written over it, its modification time put back: only the size tells.
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    std::fs::copy(common::fixture("cuts.mp4"), &file).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let (output, clips) = cut(&archive, "a name tag that reads Kowalczyk", &[]);
    let text = stderr(&output);
    assert!(output.status.success(), "{text}");
    assert!(clips.is_empty(), "{clips:?}");
    assert!(
        text.contains("changed since it was indexed; run `scenedex index` on it"),
        "{text}"
    );
}

/// The sound's mean volume in dB, as FFmpeg measures it; None without sound.
fn mean_volume(clip: &Path) -> Option<f64> {
    let output = Command::new("ffmpeg")
        .args(["-v", "info", "-nostdin", "-i"])
        .arg(clip)
        .args(["-map", "0:a:0", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .find_map(|l| {
            l.split("mean_volume: ")
                .nth(1)?
                .trim_end_matches(" dB")
                .parse()
                .ok()
        })
}

#[test]
fn issue25_broadcast_sound_plays_in_a_stretch_as_aac_instead_of_silence() {
    let dir = tempfile::tempdir().unwrap();
    for codec in ["ac3", "eac3"] {
        let source = dir.path().join(format!("broadcast-{codec}.mkv"));
        common::ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                "testsrc=duration=4:size=160x120:rate=25",
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:duration=4:sample_rate=48000",
                "-ac",
                "6",
                "-c:v",
                "libx264",
                "-g",
                "25",
                "-pix_fmt",
                "yuv420p",
                "-c:a",
                codec,
            ],
            &source,
        );
        let output = scenedex::clip::Output {
            format: "mp4".into(),
            fragmented: true,
            side: None,
            preset: "ultrafast",
        };
        for encode in [false, true] {
            let out = dir.path().join(format!("{codec}-{encode}.mp4"));
            match encode {
                false => scenedex::clip::copy(&source, 1.0, 3.0, &out, &output),
                true => scenedex::clip::encode(&source, 1.5, 3.0, &out, &output),
            }
            .unwrap();
            let streams = probe(&out)["streams"].clone();
            let audio = streams
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["codec_type"] == "audio")
                .unwrap_or_else(|| panic!("{codec}, encode {encode}: no sound in {streams}"))
                .clone();
            assert_eq!(audio["codec_name"], "aac", "{codec}");
            let volume = mean_volume(&out).unwrap();
            assert!(
                volume > -40.0,
                "{codec}, encode {encode}: {volume} dB, silent"
            );
        }
    }
}

#[test]
fn issue24_cut_pad_never_names_a_clip_past_the_file_s_end() {
    let archive = with_sound();
    // The blue scene is 2-4 s of a file about 5 s long: 10 s of padding reaches far past it.
    let (output, clips) = cut(
        &archive,
        "a name tag that reads Kowalczyk",
        &["--pad", "10"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(clips.len(), 1);
    let source = probe(&archive.videos.join("colors_audio.mp4"));
    let length: f64 = source["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let millis = (length * 1000.0).round() as u64;
    let end = format!("-00h00m{:02}.{:03}s", millis / 1000, millis % 1000);
    let name = clips[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("colors_audio_00h00m00.000s") && name.contains(&end),
        "{name} should end at the file's end, {length} s"
    );
    let clip: f64 = probe(&clips[0])["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (clip - length).abs() < 0.1,
        "the clip is {clip} s of {length} s"
    );
}

#[test]
fn issue24_a_full_disk_in_cut_is_exit_5_naming_the_clip_and_leaves_no_file() {
    let archive = with_sound();
    let disk = archive.dir.path().join("small");
    std::fs::create_dir(&disk).unwrap();
    let Some(_mounted) = common::disk::Mounted::tmpfs_of(&disk, "8k") else {
        return;
    };
    for pad in ["0", "0.5"] {
        // Key frame to key frame is copied; half a second wider is re-encoded.
        let output = archive
            .command(&["cut", "a name tag that reads Kowalczyk", "--limit", "1"])
            .args(["--pad", pad, "--out"])
            .arg(&disk)
            .output()
            .unwrap();
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(5), "--pad {pad}: {text}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.starts_with(&format!("Error: {}/colors_audio_", disk.display()))
                && text.contains("No space left on device"),
            "the clip is named, not the video: {text}"
        );
        let left: Vec<_> = std::fs::read_dir(&disk).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
