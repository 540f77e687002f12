//! Video a browser can play, and thumbnails made where they are missing.
//!
//! A file in a container and codec Chromium plays is served as it is, with range requests.
//! Any other gets a stretch around the scene as fragmented MP4: its packets copied when the
//! codec is playable (a remux), or re-encoded to H.264 when it is not. Either is kept on disk
//! by fingerprint and time range, so a second click costs nothing.

use std::path::{Path, PathBuf};

use ffmpeg::{codec, encoder, format, media, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;

use crate::decode::{ffmpeg_name, init, Decoder, FfmpegName, Skip};

/// How a file reaches a `<video>` element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Playback {
    /// As it is: the container and codec play in Chromium, Firefox and Safari.
    Native,
    /// Packets copied into fragmented MP4.
    Remux,
    /// Re-encoded to H.264 in fragmented MP4.
    Transcode,
}

/// Codecs every current browser decodes inside MP4.
const PLAYABLE_CODECS: [&str; 3] = ["h264", "vp9", "av1"];
/// Audio that can be copied into MP4 and played beside the video.
const PLAYABLE_AUDIO: [&str; 4] = ["aac", "mp3", "opus", "flac"];

pub fn playback(path: &Path, codec: &str, container: &str) -> Playback {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mp4 = container.contains("mp4") && ["mp4", "m4v", "mov"].contains(&extension.as_str());
    let webm = container.contains("webm") && extension == "webm";
    let playable = PLAYABLE_CODECS.contains(&codec) || (webm && codec == "vp8");
    match (mp4 || webm, playable) {
        (true, true) => Playback::Native,
        (false, true) if codec != "vp8" => Playback::Remux,
        _ => Playback::Transcode,
    }
}

/// A stretch of a video made playable: the file, and the time in the source its zero is at.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stretch {
    #[serde(skip)]
    pub file: PathBuf,
    pub offset: f64,
}

/// The stretch `[from, to)` seconds of `source`, made once and then read from `dir`.
pub fn stretch(
    source: &Path,
    how: Playback,
    from: f64,
    to: f64,
    dir: &Path,
) -> Result<Stretch, String> {
    let name = format!("{}-{}", (from * 1000.0) as u64, (to * 1000.0) as u64);
    let file = dir.join(format!("{name}.mp4"));
    let about = dir.join(format!("{name}.json"));
    if let Ok(text) = std::fs::read_to_string(&about) {
        if let Ok(known) = serde_json::from_str::<Stretch>(&text) {
            if file.is_file() {
                return Ok(Stretch { file, ..known });
            }
        }
    }
    crate::private::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let partial = dir.join(format!("{name}.partial.mp4"));
    let offset = match how {
        Playback::Transcode => transcode(source, from, to, &partial),
        _ => remux(source, from, to, &partial),
    }
    .map_err(|e| format!("cannot make {} playable: {e}", source.display()))?;
    std::fs::rename(&partial, &file).map_err(|e| e.to_string())?;
    let made = Stretch { file, offset };
    let _ = std::fs::write(&about, serde_json::to_string(&made).unwrap_or_default());
    Ok(made)
}

/// Fragmented MP4 plays while it downloads and needs no seeking back to write its index.
fn mp4_options() -> Dictionary<'static> {
    let mut options = Dictionary::new();
    options.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
    options
}

fn seconds_to(ts: f64, base: Rational) -> i64 {
    (ts * f64::from(base.denominator()) / f64::from(base.numerator())).round() as i64
}

fn to_seconds(ts: i64, base: Rational) -> f64 {
    ts as f64 * f64::from(base)
}

fn open(source: &Path) -> Result<(format::context::Input, FfmpegName), String> {
    init();
    let name = ffmpeg_name(source).map_err(|e| e.to_string())?;
    let input = format::input(&name.path).map_err(|e| e.to_string())?;
    Ok((input, name))
}

/// Copies the packets of the video (and a playable audio track) from the key frame at or
/// before `from` to `to`, shifted so the key frame is at zero. Returns that key frame's time.
fn remux(source: &Path, from: f64, to: f64, out: &Path) -> Result<f64, String> {
    let (mut input, _name) = open(source)?;
    let video = input
        .streams()
        .best(media::Type::Video)
        .ok_or("no video stream")?
        .index();
    let audio = input
        .streams()
        .best(media::Type::Audio)
        .filter(|s| {
            let id = s.parameters().id();
            PLAYABLE_AUDIO.contains(&id.name())
        })
        .map(|s| s.index());
    let mut output = format::output_as(out, "mp4").map_err(|e| e.to_string())?;
    let mut mapping = vec![None; input.nb_streams() as usize];
    let mut bases = vec![Rational(1, 1); input.nb_streams() as usize];
    for (n, index) in [Some(video), audio].into_iter().flatten().enumerate() {
        let stream = input.stream(index).ok_or("stream vanished")?;
        let mut copy = output
            .add_stream(encoder::find(codec::Id::None))
            .map_err(|e| e.to_string())?;
        copy.set_parameters(stream.parameters());
        // The source container's codec tag may mean nothing in MP4; the muxer picks its own.
        unsafe { (*copy.parameters().as_mut_ptr()).codec_tag = 0 };
        mapping[index] = Some(n);
        bases[index] = stream.time_base();
    }
    output
        .write_header_with(mp4_options())
        .map_err(|e| e.to_string())?;
    let start = crate::decode::start_seconds(&input, video, f64::from(bases[video]));
    let target = seconds_to(from + start, Rational(1, ffmpeg::ffi::AV_TIME_BASE));
    input.seek(target, ..target).map_err(|e| e.to_string())?;
    let mut zero: Option<f64> = None;
    for (stream, mut packet) in input.packets() {
        if crate::stop::requested() {
            return Err("interrupted".into());
        }
        let index = stream.index();
        let Some(out_index) = mapping[index] else {
            continue;
        };
        let base = bases[index];
        let Some(pts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        let time = to_seconds(pts, base) - start;
        if index == video && zero.is_none() {
            if !packet.is_key() {
                continue;
            }
            zero = Some(time);
        }
        let Some(zero) = zero else { continue };
        if index == video && time > to {
            break;
        }
        if time < zero {
            continue;
        }
        let shift = seconds_to(zero + start, base);
        packet.set_pts(packet.pts().map(|t| t - shift));
        packet.set_dts(packet.dts().map(|t| t - shift));
        let out_base = output
            .stream(out_index)
            .ok_or("no output stream")?
            .time_base();
        packet.rescale_ts(base, out_base);
        packet.set_position(-1);
        packet.set_stream(out_index);
        packet
            .write_interleaved(&mut output)
            .map_err(|e| e.to_string())?;
    }
    output.write_trailer().map_err(|e| e.to_string())?;
    zero.ok_or_else(|| "no key frame in that stretch".into())
}

/// The longest side of a transcoded stretch: enough for a page, and quick to encode.
const TRANSCODE_SIDE: u32 = 1280;

/// Decodes `[from, to)` and encodes it to H.264 (video only), starting exactly at `from`.
fn transcode(source: &Path, from: f64, to: f64, out: &Path) -> Result<f64, String> {
    let mut decoder = Decoder::open(source, Skip::Nothing).map_err(|e| e.to_string())?;
    decoder.seek(from).map_err(|e| e.to_string())?;
    let info = decoder.info().clone();
    let (width, height) = even_fit(info.coded_width, info.coded_height, TRANSCODE_SIDE);
    let mut output = format::output_as(out, "mp4").map_err(|e| e.to_string())?;
    let x264 = encoder::find_by_name("libx264").ok_or("this FFmpeg has no libx264 encoder")?;
    let base = Rational(1, 1000);
    let mut context = codec::context::Context::new_with_codec(x264)
        .encoder()
        .video()
        .map_err(|e| e.to_string())?;
    context.set_width(width);
    context.set_height(height);
    context.set_format(format::Pixel::YUV420P);
    context.set_time_base(base);
    if let Some(rate) = info.frame_rate {
        context.set_frame_rate(Some(Rational((rate * 1000.0).round() as i32, 1000)));
    }
    if output
        .format()
        .flags()
        .contains(format::Flags::GLOBAL_HEADER)
    {
        context.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let mut options = Dictionary::new();
    options.set("preset", "ultrafast");
    options.set("crf", "23");
    let mut encoder = context.open_with(options).map_err(|e| e.to_string())?;
    output
        .add_stream(x264)
        .map_err(|e| e.to_string())?
        .set_parameters(&encoder);
    output
        .write_header_with(mp4_options())
        .map_err(|e| e.to_string())?;
    let out_base = output.stream(0).ok_or("no output stream")?.time_base();
    let mut scaler: Option<ffmpeg::software::scaling::Context> = None;
    let write = |encoder: &mut encoder::Video, output: &mut format::context::Output| {
        let mut packet = Packet::empty();
        while encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(base, out_base);
            packet
                .write_interleaved(output)
                .map_err(|e| e.to_string())?;
        }
        Ok::<(), String>(())
    };
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        if frame.time < from - 1e-3 {
            continue;
        }
        if frame.time >= to {
            break;
        }
        let source = &frame.inner;
        let scaler = match &mut scaler {
            Some(s) => s,
            None => scaler.insert(
                ffmpeg::software::scaling::Context::get(
                    source.format(),
                    source.width(),
                    source.height(),
                    format::Pixel::YUV420P,
                    width,
                    height,
                    ffmpeg::software::scaling::Flags::BILINEAR,
                )
                .map_err(|e| e.to_string())?,
            ),
        };
        let mut scaled = ffmpeg::frame::Video::empty();
        scaler.run(source, &mut scaled).map_err(|e| e.to_string())?;
        scaled.set_pts(Some(((frame.time - from) * 1000.0).round() as i64));
        encoder.send_frame(&scaled).map_err(|e| e.to_string())?;
        write(&mut encoder, &mut output)?;
    }
    encoder.send_eof().map_err(|e| e.to_string())?;
    write(&mut encoder, &mut output)?;
    output.write_trailer().map_err(|e| e.to_string())?;
    Ok(from)
}

/// A size with the same shape, at most `side` on its longer side, in even numbers (4:2:0).
fn even_fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    let scale = (f64::from(side) / f64::from(width.max(height))).min(1.0);
    let even = |x: u32| ((f64::from(x) * scale) as u32 / 2 * 2).max(2);
    (even(width), even(height))
}

/// The picture at `time` seconds in `source`, as a JPEG whose longer side is `side`.
pub fn picture_at(source: &Path, time: f64, side: u32) -> Result<Vec<u8>, String> {
    let mut decoder = Decoder::open(source, Skip::Nothing).map_err(|e| e.to_string())?;
    decoder.seek(time).map_err(|e| e.to_string())?;
    let rotation = decoder.info().rotation;
    let mut converter = crate::decode::Converter::default();
    let mut last = None;
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        let reached = frame.time + frame.duration > time;
        last = Some(frame);
        if reached {
            break;
        }
    }
    let frame = last.ok_or("no frame at that time")?;
    let image = converter
        .rgb(&frame.inner, rotation, side)
        .map_err(|e| e.to_string())?;
    let settings = crate::caption::Picture {
        max_side: side,
        quality: 80,
    };
    crate::caption::encode(&image, settings)
        .map(|e| e.jpeg)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_browsers_play_is_served_as_it_is() {
        let mp4 = "mov,mp4,m4a,3gp,3g2,mj2";
        assert_eq!(playback(Path::new("a.mp4"), "h264", mp4), Playback::Native);
        assert_eq!(
            playback(Path::new("a.mkv"), "h264", "matroska,webm"),
            Playback::Remux
        );
        assert_eq!(
            playback(Path::new("a.webm"), "vp8", "matroska,webm"),
            Playback::Native
        );
        assert_eq!(
            playback(Path::new("a.mp4"), "hevc", mp4),
            Playback::Transcode
        );
        assert_eq!(
            playback(Path::new("a.avi"), "mpeg4", "avi"),
            Playback::Transcode
        );
        assert_eq!(
            playback(Path::new("a.ts"), "mpeg2video", "mpegts"),
            Playback::Transcode
        );
    }

    #[test]
    fn transcoded_sizes_are_even_and_keep_their_shape() {
        assert_eq!(even_fit(1920, 1080, 1280), (1280, 720));
        assert_eq!(even_fit(321, 241, 1280), (320, 240));
    }
}
