//! Clips: a stretch of a video written as a file of its own, with FFmpeg (ffmpeg-next).
//!
//! A stretch that starts on a key frame is copied packet for packet: fast and lossless. One
//! that starts between key frames cannot be copied from its first frame (the frames before the
//! next key frame depend on earlier ones), so its video is re-encoded to H.264 from exactly
//! that frame. Audio is copied in either case, from the same time, unless the clip is MP4 and
//! its codec is one browsers do not play there (AC-3, DTS): then it is re-encoded to AAC.

mod aac;

use std::path::Path;

use ffmpeg::{codec, encoder, format, media, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;
use nix::libc as libc_errno;

use crate::decode::{ffmpeg_name, init, start_seconds};

#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("{0}: cannot open it: {1}")]
    Open(std::path::PathBuf, String),
    #[error("{path}: FFmpeg failed while {doing}: {source}")]
    Ffmpeg {
        path: std::path::PathBuf,
        doing: &'static str,
        source: ffmpeg::Error,
    },
    #[error("{0}: no video stream")]
    NoVideo(std::path::PathBuf),
    #[error("{0}: no frame in that stretch")]
    Empty(std::path::PathBuf),
    #[error("this FFmpeg has no libx264 encoder; install Debian's libavcodec59 (it has one)")]
    NoEncoder,
    #[error("{0}: cannot write: {1}")]
    Write(std::path::PathBuf, std::io::Error),
    #[error("interrupted")]
    Interrupted,
}

/// How the output file is written.
#[derive(Clone, Debug)]
pub struct Output {
    /// The muxer: "mp4", "matroska", "avi", ...
    pub format: String,
    /// Fragmented MP4, which plays while it downloads.
    pub fragmented: bool,
    /// Re-encoded video: the longest side, and x264's preset.
    pub side: Option<u32>,
    pub preset: &'static str,
}

/// How far past its end a copied stretch may run while it looks for a key frame to end on.
const MOST_PAST: f64 = 30.0;

/// Audio codecs that MP4 holds and browsers play.
pub const MP4_AUDIO: [&str; 4] = ["aac", "mp3", "opus", "flac"];

/// What a clip did: its zero's time in the source, and whether its video was re-encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Made {
    pub zero: f64,
    pub encoded: bool,
}

/// The time of a key frame within half a frame of `time`, if there is one; the end of the
/// video counts as one, as nothing after it depends on what comes before.
pub fn keyframe_at(source: &Path, time: f64) -> Result<Option<f64>, ClipError> {
    let mut input = Input::open(source)?;
    let half = input.frame_seconds / 2.0;
    input.seek(time)?;
    let (video, base, start) = (input.video, input.bases[input.video], input.start);
    let mut last = None;
    for (stream, packet) in input.context.packets() {
        if stream.index() != video {
            continue;
        }
        let Some(ts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        let t = ts as f64 * f64::from(base) - start;
        if packet.is_key() && (t - time).abs() <= half {
            return Ok(Some(t));
        }
        if t > time + half {
            return Ok(None);
        }
        last = Some(t);
    }
    // The stream ended: past its last frame is a boundary.
    Ok(last.filter(|&t| time >= t + half).map(|_| time))
}

struct Input {
    context: format::context::Input,
    path: std::path::PathBuf,
    _name: crate::decode::FfmpegName,
    video: usize,
    audio: Option<usize>,
    bases: Vec<Rational>,
    start: f64,
    frame_seconds: f64,
}

impl Input {
    /// The file's length in seconds, when the container says.
    fn length(&self) -> Option<f64> {
        let whole = self.context.duration();
        (whole > 0).then(|| whole as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
    }

    fn open(source: &Path) -> Result<Input, ClipError> {
        init();
        let opened = |e: String| ClipError::Open(source.to_path_buf(), e);
        let name = ffmpeg_name(source).map_err(|e| opened(e.to_string()))?;
        let context = format::input_with_dictionary(&name.path, crate::decode::local_only())
            .map_err(|e| opened(e.to_string()))?;
        let video = context
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| ClipError::NoVideo(source.to_path_buf()))?;
        let (video_index, rate) = (video.index(), video.avg_frame_rate());
        let audio = context
            .streams()
            .best(media::Type::Audio)
            .map(|s| s.index());
        let bases: Vec<Rational> = context.streams().map(|s| s.time_base()).collect();
        let start = start_seconds(&context, video_index, f64::from(bases[video_index]));
        let frame_seconds = match f64::from(rate) {
            r if r.is_finite() && r > 0.0 => 1.0 / r,
            _ => 1.0 / 25.0,
        };
        Ok(Input {
            context,
            path: source.to_path_buf(),
            _name: name,
            video: video_index,
            audio,
            bases,
            start,
            frame_seconds,
        })
    }

    fn failed(&self, doing: &'static str) -> impl Fn(ffmpeg::Error) -> ClipError + '_ {
        move |source| ClipError::Ffmpeg {
            path: self.path.clone(),
            doing,
            source,
        }
    }

    /// Repositions on the key frame at or before `time`.
    fn seek(&mut self, time: f64) -> Result<(), ClipError> {
        let target = ((time + self.start) * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
        let result = self.context.seek(target, ..target);
        result.map_err(self.failed("seeking"))
    }

    fn audio_codec(&self) -> Option<&'static str> {
        let stream = self.context.stream(self.audio?)?;
        Some(stream.parameters().id().name())
    }
}

/// The muxer a clip of `source` is written with when its video is copied: its own container's,
/// where FFmpeg can write it, else Matroska, which takes any codec.
pub fn copy_format(source: &Path) -> &'static str {
    match source
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("mp4" | "m4v" | "mov") => "mp4",
        Some("webm") => "webm",
        Some("avi") => "avi",
        Some("ts" | "m2ts" | "mts") => "mpegts",
        _ => "matroska",
    }
}

fn out_context(path: &Path, output: &Output) -> Result<format::context::Output, ClipError> {
    format::output_as(path, &output.format).map_err(written(path, "creating the clip"))
}

/// A failure to write the clip `out`: the system's own error (a full disk, a folder not
/// writable) when FFmpeg passed one on, else what FFmpeg says.
fn written<'a>(
    out: &'a Path,
    doing: &'static str,
) -> impl Fn(ffmpeg::Error) -> ClipError + Copy + 'a {
    move |source| match source {
        // The errors of a file that cannot take more bytes; a muxer's or encoder's own
        // complaint (EINVAL) is about the input, not the disk.
        ffmpeg::Error::Other { errno }
            if [
                libc_errno::ENOSPC,
                libc_errno::EDQUOT,
                libc_errno::EIO,
                libc_errno::EACCES,
                libc_errno::EROFS,
                libc_errno::EFBIG,
                libc_errno::EPERM,
            ]
            .contains(&errno) =>
        {
            ClipError::Write(out.to_path_buf(), std::io::Error::from_raw_os_error(errno))
        }
        source => ClipError::Ffmpeg {
            path: out.to_path_buf(),
            doing,
            source,
        },
    }
}

/// Ends the clip: its trailer, and every byte FFmpeg still buffers pushed to the file, where a
/// full disk shows (closing it would drop that error).
fn finish(context: &mut format::context::Output, out: &Path) -> Result<(), ClipError> {
    context
        .write_trailer()
        .map_err(written(out, "finishing the clip"))?;
    // SAFETY: `pb` is the open file the context writes, kept until the context drops.
    let error = unsafe {
        let pb = (*context.as_mut_ptr()).pb;
        if pb.is_null() {
            0
        } else {
            ffmpeg::ffi::avio_flush(pb);
            (*pb).error
        }
    };
    match error {
        0.. => Ok(()),
        e => Err(written(out, "finishing the clip")(ffmpeg::Error::from(e))),
    }
}

fn header_options(output: &Output) -> Dictionary<'static> {
    let mut options = Dictionary::new();
    if output.fragmented {
        options.set("movflags", "frag_keyframe+empty_moov+default_base_moof");
    }
    options
}

/// Adds a stream that takes `source`'s packets as they are.
fn copied_stream(
    out: &mut format::context::Output,
    parameters: codec::Parameters,
) -> Result<usize, ffmpeg::Error> {
    let mut stream = out.add_stream(encoder::find(codec::Id::None))?;
    stream.set_parameters(parameters);
    // The source container's codec tag may mean nothing in the clip's; the muxer picks its own.
    // SAFETY: the parameters belong to the stream just added, alive while `stream` is.
    unsafe { (*stream.parameters().as_mut_ptr()).codec_tag = 0 };
    Ok(stream.index())
}

/// Players turn a picture by its stream's display matrix (a phone held upright): the clip's
/// video stream gets the source's, whether its packets are copied or re-encoded.
fn carry_rotation(
    source: &format::stream::Stream,
    out: &mut format::context::Output,
    index: usize,
) {
    use ffmpeg::codec::packet::side_data::Type;
    let Some(matrix) = source.side_data().find(|d| d.kind() == Type::DisplayMatrix) else {
        return;
    };
    let data = matrix.data();
    // SAFETY: `index` is a stream of this live output context, added before its header is
    // written; FFmpeg allocates `data.len()` bytes of side data on it, which are filled here.
    unsafe {
        let stream = *(*out.as_mut_ptr()).streams.add(index);
        let kind = ffmpeg::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX;
        let room = ffmpeg::ffi::av_stream_new_side_data(stream, kind, data.len() as _);
        if !room.is_null() {
            std::ptr::copy_nonoverlapping(data.as_ptr(), room, data.len());
        }
    }
}

/// Whether the audio is copied into a clip of this container.
fn audio_fits(input: &Input, output: &Output) -> bool {
    match output.format.as_str() {
        "mp4" => input.audio_codec().is_some_and(|c| MP4_AUDIO.contains(&c)),
        _ => input.audio.is_some(),
    }
}

/// The source's audio that an MP4 clip re-encodes to AAC (it cannot play as it is), with its
/// new stream added to `out`.
fn aac_for(
    input: &Input,
    output: &Output,
    out: &mut format::context::Output,
) -> Result<Option<(usize, aac::Aac)>, ClipError> {
    let Some(index) = input.audio.filter(|_| !audio_fits(input, output)) else {
        return Ok(None);
    };
    if output.format != "mp4" {
        return Ok(None);
    }
    let Some(parameters) = input.context.stream(index).map(|s| s.parameters()) else {
        return Ok(None);
    };
    let track = aac::Aac::add(out, parameters).map_err(input.failed("adding an AAC stream"))?;
    Ok(Some((index, track)))
}

/// Copies `[from, to)` of `source` from the key frame at or before `from`, shifted so that key
/// frame is at zero.
pub fn copy(
    source: &Path,
    from: f64,
    to: f64,
    out: &Path,
    output: &Output,
) -> Result<Made, ClipError> {
    let mut input = Input::open(source)?;
    let mut context = out_context(out, output)?;
    let audio = input.audio.filter(|_| audio_fits(&input, output));
    let mut mapping = vec![None; input.bases.len()];
    for index in [Some(input.video), audio].into_iter().flatten() {
        let parameters = input.context.stream(index).map(|s| s.parameters());
        let parameters = parameters.ok_or_else(|| ClipError::NoVideo(source.to_path_buf()))?;
        let out_index =
            copied_stream(&mut context, parameters).map_err(input.failed("adding a stream"))?;
        if index == input.video {
            if let Some(stream) = input.context.stream(index) {
                carry_rotation(&stream, &mut context, out_index);
            }
        }
        mapping[index] = Some(out_index);
    }
    let mut aac = aac_for(&input, output, &mut context)?;
    context
        .write_header_with(header_options(output))
        .map_err(written(out, "writing the clip's header"))?;
    if from > 0.0 {
        input.seek(from)?;
    }
    let mut zero: Option<f64> = None;
    let video = input.video;
    let bases = input.bases.clone();
    let start = input.start;
    let half = input.frame_seconds / 2.0;
    for (stream, mut packet) in input.context.packets() {
        if crate::stop::requested() {
            return Err(ClipError::Interrupted);
        }
        let index = stream.index();
        let Some(ts) = packet.pts().or(packet.dts()) else {
            continue;
        };
        let time = ts as f64 * f64::from(bases[index]) - start;
        if let Some((_, track)) = aac.as_mut().filter(|(source, _)| *source == index) {
            if let Some(zero) = zero.filter(|&z| time >= z - 1e-6 && time < to) {
                track
                    .push(&packet, time - zero, &mut context)
                    .map_err(written(out, "re-encoding the sound"))?;
            }
            continue;
        }
        let Some(out_index) = mapping[index] else {
            continue;
        };
        if index == video && zero.is_none() {
            if !packet.is_key() {
                continue;
            }
            zero = Some(time);
        }
        let Some(zero) = zero else { continue };
        // Frames before the next key frame may be shown before `to` yet decoded after a frame
        // shown after it: the clip ends at a key frame, so no frame loses what it refers to.
        if index == video
            && time > zero
            && ((packet.is_key() && time >= to - half) || time > to + MOST_PAST)
        {
            break;
        }
        if time < zero - 1e-6 || (index != video && time >= to) {
            continue;
        }
        write_shifted(
            &mut context,
            &mut packet,
            bases[index],
            zero + start,
            out_index,
        )
        .map_err(written(out, "writing the clip"))?;
    }
    let finishing = written(out, "finishing the clip");
    if let Some((_, track)) = &mut aac {
        track.finish(&mut context).map_err(finishing)?;
    }
    finish(&mut context, out)?;
    let zero = zero.ok_or_else(|| ClipError::Empty(source.to_path_buf()))?;
    Ok(Made {
        zero,
        encoded: false,
    })
}

/// Moves a packet `shift` seconds earlier and into the clip's stream and time base.
fn write_shifted(
    context: &mut format::context::Output,
    packet: &mut Packet,
    base: Rational,
    shift: f64,
    out_index: usize,
) -> Result<(), ffmpeg::Error> {
    let ticks = (shift / f64::from(base)).round() as i64;
    packet.set_pts(packet.pts().map(|t| t - ticks));
    packet.set_dts(packet.dts().map(|t| t - ticks));
    let out_base = context
        .stream(out_index)
        .map(|s| s.time_base())
        .ok_or(ffmpeg::Error::StreamNotFound)?;
    packet.rescale_ts(base, out_base);
    packet.set_position(-1);
    packet.set_stream(out_index);
    packet.write_interleaved(context)
}

/// Decodes `[from, to)` and encodes its video to H.264 from exactly the frame on screen at
/// `from`; audio is copied from `from`.
pub fn encode(
    source: &Path,
    from: f64,
    to: f64,
    out: &Path,
    output: &Output,
) -> Result<Made, ClipError> {
    match encode_after(source, from, to, out, output, true) {
        // A file without an index (MPEG-TS) may seek to a point after which no key frame comes
        // (one key frame, at its start): nothing decodes there, so it is read from its start.
        Err(ClipError::Empty(_)) => encode_after(source, from, to, out, output, false),
        made => made,
    }
}

fn encode_after(
    source: &Path,
    from: f64,
    to: f64,
    out: &Path,
    output: &Output,
    seek: bool,
) -> Result<Made, ClipError> {
    let mut input = Input::open(source)?;
    let stream = input
        .context
        .stream(input.video)
        .ok_or_else(|| ClipError::NoVideo(source.to_path_buf()))?;
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(input.failed("opening the decoder"))?;
    let (width, height) = even_fit(
        decoder.width(),
        decoder.height(),
        output.side.unwrap_or(u32::MAX),
    );
    let mut context = out_context(out, output)?;
    let shape = Shape {
        width,
        height,
        aspect: decoder.aspect_ratio(),
        rate: stream.avg_frame_rate(),
    };
    let mut video = Encoder::open(&mut context, shape, output)
        .map_err(input.failed("opening the H.264 encoder"))?;
    carry_rotation(&stream, &mut context, video.out_index);
    let audio = input.audio.filter(|_| audio_fits(&input, output));
    let audio_out = match audio {
        Some(index) => {
            let parameters = input.context.stream(index).map(|s| s.parameters());
            let parameters = parameters.ok_or_else(|| ClipError::NoVideo(source.to_path_buf()))?;
            Some(copied_stream(&mut context, parameters).map_err(input.failed("adding a stream"))?)
        }
        None => None,
    };
    let mut aac = aac_for(&input, output, &mut context)?;
    context
        .write_header_with(header_options(output))
        .map_err(written(out, "writing the clip's header"))?;
    // A file just opened is at its start: seeking there can only land past it.
    if seek && from > 0.0 {
        input.seek(from)?;
    }
    let (index, bases, start) = (input.video, input.bases.clone(), input.start);
    let written = written(out, "writing the clip");
    // The frame on screen at `from` is the last one that starts at or before it.
    let mut pending: Option<(f64, ffmpeg::frame::Video)> = None;
    let mut frames = 0usize;
    let mut send =
        |time: f64, frame: &ffmpeg::frame::Video, context: &mut format::context::Output| {
            frames += 1;
            video.push(frame, (time - from).max(0.0), context)
        };
    let mut decoded = ffmpeg::frame::Video::empty();
    // Takes what the decoder has ready; true once a frame at or past `to` came.
    let mut take = |decoder: &mut ffmpeg::decoder::Video,
                    context: &mut format::context::Output|
     -> Result<bool, ffmpeg::Error> {
        while decoder.receive_frame(&mut decoded).is_ok() {
            let Some(ts) = decoded.timestamp() else {
                continue;
            };
            let time = ts as f64 * f64::from(bases[index]) - start;
            if time >= to {
                return Ok(true);
            }
            if time <= from + 1e-6 {
                pending = Some((time, decoded.clone()));
                continue;
            }
            if let Some((t, frame)) = pending.take() {
                send(t.max(from), &frame, context)?;
            }
            send(time, &decoded, context)?;
        }
        Ok(false)
    };
    let mut done = false;
    // Reading stops once the video and the sound have both passed `to`, not at the file's end.
    let mut sound_done = audio.is_none() && aac.is_none();
    for (stream, mut packet) in input.context.packets() {
        if crate::stop::requested() {
            return Err(ClipError::Interrupted);
        }
        if done && sound_done {
            break;
        }
        let i = stream.index();
        if let Some((_, track)) = aac.as_mut().filter(|(source, _)| *source == i) {
            let Some(ts) = packet.pts() else { continue };
            let time = ts as f64 * f64::from(bases[i]) - start;
            sound_done |= time >= to;
            if time >= from - 1e-6 && time < to {
                track
                    .push(&packet, time - from, &mut context)
                    .map_err(written)?;
            }
            continue;
        }
        if Some(i) == audio {
            let Some(ts) = packet.pts() else { continue };
            let time = ts as f64 * f64::from(bases[i]) - start;
            sound_done |= time >= to;
            if time >= from - 1e-6 && time < to {
                write_shifted(
                    &mut context,
                    &mut packet,
                    bases[i],
                    from + start,
                    audio_out.unwrap_or(0),
                )
                .map_err(written)?;
            }
            continue;
        }
        if i != index || done {
            continue;
        }
        let _ = decoder.send_packet(&packet);
        done = take(&mut decoder, &mut context).map_err(written)?;
    }
    // The file ended before `to`: the frames the decoder holds back for reordering (the
    // last ones, with B-frames) come out only once it is told so.
    if !done && decoder.send_eof().is_ok() {
        take(&mut decoder, &mut context).map_err(written)?;
    }
    if let Some((t, frame)) = pending.take() {
        send(t.max(from), &frame, &mut context).map_err(written)?;
    }
    video.finish(&mut context).map_err(written)?;
    if let Some((_, track)) = &mut aac {
        track.finish(&mut context).map_err(written)?;
    }
    finish(&mut context, out)?;
    if frames == 0 {
        return Err(ClipError::Empty(source.to_path_buf()));
    }
    Ok(Made {
        zero: from,
        encoded: true,
    })
}

/// The re-encoded video's size, pixel shape and frame rate.
#[derive(Clone, Copy)]
struct Shape {
    width: u32,
    height: u32,
    aspect: Rational,
    rate: Rational,
}

/// libx264 behind a scaler to 4:2:0 at the clip's size, in milliseconds.
struct Encoder {
    encoder: encoder::Video,
    scaler: Option<ffmpeg::software::scaling::Context>,
    width: u32,
    height: u32,
    out_index: usize,
    frame_millis: i64,
}

const MILLIS: Rational = Rational(1, 1000);

impl Encoder {
    fn open(
        context: &mut format::context::Output,
        shape: Shape,
        output: &Output,
    ) -> Result<Encoder, ffmpeg::Error> {
        let Shape {
            width,
            height,
            aspect,
            rate,
        } = shape;
        let x264 = encoder::find_by_name("libx264").ok_or(ffmpeg::Error::EncoderNotFound)?;
        let mut setup = codec::context::Context::new_with_codec(x264)
            .encoder()
            .video()?;
        setup.set_width(width);
        setup.set_height(height);
        setup.set_format(format::Pixel::YUV420P);
        // Non-square pixels (anamorphic DVD, HDV) keep their shape on screen.
        if aspect.numerator() > 0 {
            setup.set_aspect_ratio(aspect);
        }
        setup.set_time_base(MILLIS);
        if rate.numerator() > 0 {
            setup.set_frame_rate(Some(rate));
        }
        if context
            .format()
            .flags()
            .contains(format::Flags::GLOBAL_HEADER)
        {
            setup.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let mut options = Dictionary::new();
        options.set("preset", output.preset);
        options.set("crf", "20");
        // Without B-frames no frame is decoded before it is shown, so the clip needs no edit
        // list to start at its first frame, which some players ignore (and then lose it).
        options.set("bf", "0");
        let encoder = setup.open_with(options)?;
        let mut stream = context.add_stream(x264)?;
        stream.set_parameters(&encoder);
        let out_index = stream.index();
        let frame_millis = match f64::from(rate) {
            r if r.is_finite() && r > 0.0 => (1000.0 / r).round() as i64,
            _ => 40,
        };
        Ok(Encoder {
            encoder,
            scaler: None,
            width,
            height,
            out_index,
            frame_millis,
        })
    }

    fn push(
        &mut self,
        frame: &ffmpeg::frame::Video,
        seconds: f64,
        context: &mut format::context::Output,
    ) -> Result<(), ffmpeg::Error> {
        if self.scaler.is_none() {
            self.scaler = Some(ffmpeg::software::scaling::Context::get(
                frame.format(),
                frame.width(),
                frame.height(),
                format::Pixel::YUV420P,
                self.width,
                self.height,
                ffmpeg::software::scaling::Flags::BILINEAR,
            )?);
        }
        let mut scaled = ffmpeg::frame::Video::empty();
        if let Some(scaler) = &mut self.scaler {
            scaler.run(frame, &mut scaled)?;
        }
        scaled.set_pts(Some((seconds * 1000.0).round() as i64));
        self.encoder.send_frame(&scaled)?;
        self.drain(context)
    }

    fn drain(&mut self, context: &mut format::context::Output) -> Result<(), ffmpeg::Error> {
        let out_base = context
            .stream(self.out_index)
            .map(|s| s.time_base())
            .ok_or(ffmpeg::Error::StreamNotFound)?;
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            // MP4 ends a track at its last sample's end: a duration of 0 would hide that frame.
            if packet.duration() <= 0 {
                packet.set_duration(self.frame_millis);
            }
            packet.set_stream(self.out_index);
            packet.rescale_ts(MILLIS, out_base);
            packet.write_interleaved(context)?;
        }
        Ok(())
    }

    fn finish(&mut self, context: &mut format::context::Output) -> Result<(), ffmpeg::Error> {
        self.encoder.send_eof()?;
        self.drain(context)
    }
}

/// A size with the same shape, at most `side` on its longer side, in even numbers (4:2:0).
fn even_fit(width: u32, height: u32, side: u32) -> (u32, u32) {
    let scale = (f64::from(side) / f64::from(width.max(height))).min(1.0);
    let even = |x: u32| ((f64::from(x) * scale) as u32 / 2 * 2).max(2);
    (even(width), even(height))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_sizes_are_even_and_keep_their_shape() {
        assert_eq!(even_fit(1920, 1080, 1280), (1280, 720));
        assert_eq!(even_fit(321, 241, u32::MAX), (320, 240));
    }

    #[test]
    fn a_copied_clip_keeps_its_container_where_ffmpeg_writes_it() {
        assert_eq!(copy_format(Path::new("a.MP4")), "mp4");
        assert_eq!(copy_format(Path::new("a.mkv")), "matroska");
        assert_eq!(copy_format(Path::new("a.ts")), "mpegts");
        assert_eq!(copy_format(Path::new("noext")), "matroska");
    }
}

/// A clip to write: where from, which stretch, whether its video can be copied, and where to.
#[derive(Clone, Debug)]
pub struct Plan {
    pub source: std::path::PathBuf,
    pub from: f64,
    pub to: f64,
    pub copy: bool,
    pub out: std::path::PathBuf,
    format: String,
}

/// Plans the clip `[from, to)` of `source` in `dir`, named by the file and the times: copied
/// when both ends are on key frames, else re-encoded from exactly `from`.
pub fn plan(source: &Path, from: f64, to: f64, dir: &Path) -> Result<Plan, ClipError> {
    let input = Input::open(source)?;
    // Padding past the end would name a clip by a time it does not reach.
    let to = match input.length() {
        Some(length) if length > from => to.min(length),
        _ => to,
    };
    let on_key = keyframe_at(source, from)?;
    let copy = on_key.is_some() && keyframe_at(source, to)?.is_some();
    let format = match copy {
        true => copy_format(source).to_string(),
        false => {
            let plays = input.audio_codec().is_none_or(|c| MP4_AUDIO.contains(&c));
            (if plays { "mp4" } else { "matroska" }).to_string()
        }
    };
    let extension = match format.as_str() {
        "matroska" => "mkv",
        "mpegts" => "ts",
        other => other,
    };
    let stem = source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "clip".into());
    let name = format!("{stem}_{}-{}.{extension}", stamp(from), stamp(to));
    Ok(Plan {
        source: source.to_path_buf(),
        from: on_key.unwrap_or(from),
        to,
        copy,
        out: dir.join(name),
        format,
    })
}

/// `01h02m03.450s`: a time that sorts, reads, and is safe in a file name everywhere.
fn stamp(seconds: f64) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}h{:02}m{:02}.{:03}s",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    )
}

/// Writes a planned clip whole or not at all.
pub fn write(plan: &Plan) -> Result<Made, ClipError> {
    let partial = plan.out.with_extension(format!(
        "partial.{}",
        plan.out
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("mkv")
    ));
    let output = Output {
        format: plan.format.clone(),
        fragmented: false,
        side: None,
        preset: "veryfast",
    };
    let made = match plan.copy {
        true => copy(&plan.source, plan.from, plan.to, &partial, &output),
        false => encode(&plan.source, plan.from, plan.to, &partial, &output),
    };
    let made = made.inspect_err(|_| {
        let _ = std::fs::remove_file(&partial);
    })?;
    std::fs::rename(&partial, &plan.out).map_err(|e| ClipError::Write(plan.out.clone(), e))?;
    Ok(made)
}

/// The clips of a search's hits, from this machine's copies that are still the files indexed,
/// `pad` seconds wider on each side; and a line for each hit with no such copy, saying why.
pub fn plans_for(
    hits: &[crate::search::Found],
    host: &str,
    pad: f64,
    dir: &Path,
) -> Result<(Vec<Plan>, Vec<String>), ClipError> {
    let (mut plans, mut skipped) = (Vec::new(), Vec::new());
    for hit in hits {
        let path = match hit.here(host) {
            Ok(path) => path,
            Err(why) => {
                skipped.push(format!("no clip of {}: {why}", hit.place.shown()));
                continue;
            }
        };
        let time = |field| {
            hit.hit
                .payload
                .get(field)
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0)
        };
        let from = (time("start") - pad).max(0.0);
        let mut planned = plan(&path, from, time("end") + pad, dir)?;
        // Padding can make two hits one stretch: one clip. Files of one name in two folders
        // get a number each.
        if plans
            .iter()
            .any(|p: &Plan| p.out == planned.out && p.source == planned.source)
        {
            continue;
        }
        let (stem, extension) = (
            planned
                .out
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
            planned
                .out
                .extension()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned(),
        );
        let mut n = 1;
        while plans.iter().any(|p: &Plan| p.out == planned.out) {
            n += 1;
            planned.out = dir.join(format!("{stem}-{n}.{extension}"));
        }
        plans.push(planned);
    }
    Ok((plans, skipped))
}
