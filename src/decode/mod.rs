//! decode: open a file with FFmpeg and stream the frames of its first video stream, each with
//! the exact time a player shows it.

pub mod find;
mod picture;

use std::path::{Path, PathBuf};
use std::sync::Once;

use ffmpeg::codec::discard::Discard;
use ffmpeg::codec::threading;
use ffmpeg::media;
use ffmpeg_next as ffmpeg;

pub use picture::{Converter, Rotation, Small, SMALL_H, SMALL_W};

/// Why a file could not be decoded. Each message names the file and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}: no such file")]
    NotFound(PathBuf),
    #[error("{0}: is a directory; give a file")]
    IsDirectory(PathBuf),
    #[error("{0}: cannot read: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error("{0}: file is empty")]
    Empty(PathBuf),
    #[error("{0}: not a video FFmpeg can read ({1}); is it a complete download?")]
    NotVideo(PathBuf, ffmpeg::Error),
    #[error("{0}: has no video stream (audio-only or data file)")]
    NoVideoStream(PathBuf),
    #[error("{path}: no decoder for codec '{codec}' in this FFmpeg build")]
    NoDecoder { path: PathBuf, codec: String },
    #[error("{0}: no frame could be decoded; the file is corrupt or truncated")]
    NoFrames(PathBuf),
    #[error("{path}: truncated: the video stops at {} of its declared {}; is the download complete?", clock(.cut.at), clock(.cut.declared))]
    Truncated { path: PathBuf, cut: Truncation },
    #[error("interrupted")]
    Interrupted,
    #[error("{path}: FFmpeg failed while {doing}: {source}")]
    Ffmpeg {
        path: PathBuf,
        doing: &'static str,
        source: ffmpeg::Error,
    },
}

/// How far a file that stops before the length its container declares goes.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Truncation {
    /// Seconds of video there are.
    pub at: f64,
    /// Seconds the container declares.
    pub declared: f64,
}

impl Truncation {
    pub fn error(self, path: &Path) -> DecodeError {
        DecodeError::Truncated {
            path: path.to_path_buf(),
            cut: self,
        }
    }
}

/// Decoder errors in a row after which a file is given up on: far more than any damage seen
/// in real files (a damaged stretch gives a handful), far fewer than would spin noticeably.
const MOST_FAILURES_IN_A_ROW: u32 = 10_000;

/// Which frames the decoder may skip without decoding them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    Nothing,
    /// Frames no other frame refers to (most B-frames) are not decoded: about half the work
    /// on typical H.264, at the price of gaps between the frames seen.
    NonRef,
    /// Only key frames are decoded; the rest are not even sent to the decoder.
    NonKey,
}

/// What the packets of one key-frame interval say before any of it is decoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GopNote {
    /// Time of the key frame that opens the interval.
    pub start: f64,
    /// Time of the next key frame, or of the stream's end.
    pub end: f64,
    /// A packet inside was far larger than the ones before it: a picture coded afresh where
    /// the encoder put no key frame, which is how a cut between key frames shows.
    pub burst: bool,
}

/// A packet this many times larger than the largest of the few before it is a burst...
const BURST_OVER_RECENT: f64 = 1.8;
/// ...and so is one past this share of the key frame's size, whatever came before.
const BURST_OF_KEY: f64 = 0.5;
/// Packets before a burst is judged against them; a short memory, as motion changes.
const RECENT_PACKETS: usize = 8;

/// Follows the packets of one stream, key-frame interval by interval.
#[derive(Default)]
struct PacketWatch {
    open: Option<GopNote>,
    key_size: usize,
    recent: std::collections::VecDeque<usize>,
    done: std::collections::VecDeque<GopNote>,
}

impl PacketWatch {
    fn packet(&mut self, time: f64, size: usize, key: bool) {
        if key {
            self.close(time);
            self.open = Some(GopNote {
                start: time,
                end: f64::INFINITY,
                burst: false,
            });
            self.key_size = size;
            self.recent.clear();
            return;
        }
        let Some(open) = self.open.as_mut() else {
            return;
        };
        let most_recent = self.recent.iter().copied().max();
        let burst = most_recent.is_some_and(|m| size as f64 > BURST_OVER_RECENT * m as f64)
            || size as f64 > BURST_OF_KEY * self.key_size as f64;
        open.burst |= burst;
        if self.recent.len() == RECENT_PACKETS {
            self.recent.pop_front();
        }
        self.recent.push_back(size);
    }

    fn close(&mut self, end: f64) {
        if let Some(mut note) = self.open.take() {
            note.end = end;
            self.done.push_back(note);
        }
    }
}

/// Slack for comparing times in seconds that went through floating point: half a millisecond
/// absorbs the rounding of time bases such as 1001/30000.
pub const TIME_SLACK: f64 = 0.0005;

/// Seconds as HH:MM:SS.mmm, rounded to the millisecond; a frame shown before the file's start
/// (rare: an open GOP's leading frames) gets a minus sign.
pub fn clock(seconds: f64) -> String {
    let ms = (seconds.abs() * 1000.0).round() as u64;
    let sign = if seconds < 0.0 && ms > 0 { "-" } else { "" };
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    format!("{sign}{h:02}:{m:02}:{:02}.{:03}", rest / 1000, rest % 1000)
}

/// What is known about the video before decoding it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VideoInfo {
    pub codec: String,
    pub container: String,
    pub coded_width: u32,
    pub coded_height: u32,
    /// Size as a player shows it: sample aspect ratio and rotation applied.
    pub display_width: u32,
    pub display_height: u32,
    pub rotation: Rotation,
    /// Declared duration in seconds, when the container gives one.
    pub duration: Option<f64>,
    pub frame_rate: Option<f64>,
}

/// One decoded frame and the time, in seconds from the start of the video, a player shows it.
pub struct Frame {
    pub time: f64,
    /// How long the frame stays on screen, in seconds.
    pub duration: f64,
    pub key: bool,
    pub inner: ffmpeg::frame::Video,
}

/// Counts kept while decoding, for the run summary.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct DecodeStats {
    pub frames: u64,
    /// Damaged places: the rejected packets and flagged frames up to the next clean key frame
    /// count once, as damage spreads to the frames predicted from it, and which of them FFmpeg's
    /// frame threads report varies from run to run.
    pub corrupt: u64,
    /// The container stopped delivering data before its end (a truncated file).
    pub read_error: bool,
    /// End of the last packet of the stream that was read, in seconds: how far the file goes,
    /// whether or not those frames were decoded.
    pub stream_end: f64,
    /// Frames dropped for a time no video has (see `PLAUSIBLE`).
    pub implausible: u64,
}

/// Frame times beyond this many seconds from the start, either way, are damage or a crafted
/// file, not a recording (31 years): such a frame is dropped and counted, so one bad timestamp
/// cannot stretch the timeline, or the last segment, across a trillion seconds.
pub const PLAUSIBLE: f64 = 1e9;

/// Whether `seconds` from the start is a time a video has.
fn plausible(seconds: f64) -> bool {
    seconds.is_finite() && seconds.abs() <= PLAUSIBLE
}

/// The warning for frames left out for their time, the same from every front end.
pub fn implausible_note(path: &Path, frames: u64) -> String {
    let what = if frames == 1 { "frame" } else { "frames" };
    format!(
        "{}: {frames} {what} left out: their times lie more than 31 years from the start, \
         which is damage, not video",
        path.display()
    )
}

pub struct Decoder {
    path: PathBuf,
    input: ffmpeg::format::context::Input,
    stream: usize,
    decoder: ffmpeg::decoder::Video,
    time_base: f64,
    start: f64,
    skip: Skip,
    info: VideoInfo,
    stats: DecodeStats,
    eof_sent: bool,
    /// Damage was seen since the last clean key frame.
    damaged: bool,
    /// Errors from the decoder in a row, with no frame between them.
    failures_in_a_row: u32,
    last_time: Option<f64>,
    /// Switch to decoding every frame once a packet at or after this time is read.
    decode_all_from: Option<f64>,
    /// Packets shown before this time are not decoded (`skip_to`).
    skip_before: Option<f64>,
    watch: Option<PacketWatch>,
}

/// FFmpeg's own log lines would break the one-line error rule; the decoder reports instead.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        ffmpeg::util::log::set_level(ffmpeg::util::log::Level::Fatal);
    });
}

impl Decoder {
    pub fn open(path: &Path, skip: Skip) -> Result<Self, DecodeError> {
        Self::open_with_threads(path, skip, decode_threads())
    }

    /// `open` with this many frame threads: a decoder that runs beside another needs fewer,
    /// and each holds pictures of its own.
    pub fn open_with_threads(path: &Path, skip: Skip, threads: usize) -> Result<Self, DecodeError> {
        init();
        check_file(path)?;
        let name = ffmpeg_name(path).map_err(|e| DecodeError::Unreadable(path.into(), e))?;
        // The interrupt callback lets Ctrl-C end a read that waits on a slow pipe or network.
        let input = ffmpeg::format::input_with_interrupt_and_dictionary(
            &name.path,
            crate::stop::requested,
            local_only(),
        )
        .map_err(|e| match e {
            ffmpeg::Error::Exit if crate::stop::requested() => DecodeError::Interrupted,
            e => DecodeError::NotVideo(path.to_path_buf(), e),
        })?;
        drop(name);
        let stream =
            first_video_stream(&input).ok_or_else(|| DecodeError::NoVideoStream(path.into()))?;
        let (decoder, info, time_base) = open_stream(path, &input, stream, threads)?;
        let start = start_seconds(&input, stream, time_base);
        let mut decoder = Decoder {
            path: path.to_path_buf(),
            input,
            stream,
            decoder,
            time_base,
            start,
            skip,
            info,
            stats: DecodeStats::default(),
            eof_sent: false,
            damaged: false,
            failures_in_a_row: 0,
            last_time: None,
            decode_all_from: None,
            skip_before: None,
            watch: None,
        };
        decoder.set_skip(skip);
        Ok(decoder)
    }

    pub fn info(&self) -> &VideoInfo {
        &self.info
    }

    pub fn stats(&self) -> DecodeStats {
        self.stats
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame in presentation order, or None at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, DecodeError> {
        loop {
            if crate::stop::requested() {
                return Err(DecodeError::Interrupted);
            }
            let mut frame = ffmpeg::frame::Video::empty();
            match self.decoder.receive_frame(&mut frame) {
                Ok(()) => {
                    self.failures_in_a_row = 0;
                    match self.wrap(frame) {
                        Some(frame) => return Ok(Some(frame)),
                        None => continue,
                    }
                }
                Err(ffmpeg::Error::Eof) => return Ok(None),
                Err(ffmpeg::Error::Other { errno }) if errno == libc_eagain() => {}
                // A decoder that keeps failing without a frame between would spin forever.
                Err(source) if self.failures_in_a_row >= MOST_FAILURES_IN_A_ROW => {
                    return Err(self.ffmpeg_error("decoding (the decoder keeps failing)", source))
                }
                Err(_) => {
                    self.failures_in_a_row += 1;
                    self.damage();
                    continue;
                }
            }
            if self.eof_sent {
                return Ok(None);
            }
            self.feed()?;
        }
    }

    /// Changes which frames are skipped from the next packet on.
    pub fn set_skip(&mut self, skip: Skip) {
        self.skip = skip;
        self.decoder.skip_frame(match skip {
            Skip::Nothing => Discard::Default,
            Skip::NonRef => Discard::NonReference,
            Skip::NonKey => Discard::NonKey,
        });
    }

    /// Skips as now until the packets reach `seconds`, then decodes every frame. Frames after
    /// a point are only ever predicted from reference frames, so this yields every frame from
    /// there on at a fraction of the cost of decoding all of them from the key frame.
    pub fn decode_all_from(&mut self, seconds: f64) {
        self.decode_all_from = Some(seconds);
    }

    /// Leaves undecoded every packet shown before `seconds`, a key frame's time: the rest of
    /// a key-frame interval judged to hold nothing new, and the leading pictures of the next
    /// (an open GOP's), which refer to what was left out.
    pub fn skip_to(&mut self, seconds: f64) {
        self.skip_before = Some(seconds);
    }

    /// From now on, notes what the packets of each key-frame interval say (`gop_notes`).
    pub fn watch_packets(&mut self) {
        self.watch = Some(PacketWatch::default());
    }

    /// Notes on the key-frame intervals whose packets have all been read, oldest first.
    pub fn gop_notes(&mut self) -> impl Iterator<Item = GopNote> + '_ {
        self.watch.iter_mut().flat_map(|w| w.done.drain(..))
    }

    /// Repositions on the key frame at or before `seconds`; the next frames decoded are from there.
    pub fn seek(&mut self, seconds: f64) -> Result<(), DecodeError> {
        let ts = ((seconds + self.start) * f64::from(ffmpeg::ffi::AV_TIME_BASE)) as i64;
        self.input
            .seek(ts, ..ts)
            .map_err(|source| self.ffmpeg_error("seeking", source))?;
        self.decoder.flush();
        self.eof_sent = false;
        self.skip_before = None;
        Ok(())
    }

    /// Sends the next packet of our stream to the decoder, or end-of-stream.
    fn feed(&mut self) -> Result<(), DecodeError> {
        loop {
            if crate::stop::requested() {
                return Err(DecodeError::Interrupted);
            }
            // A new packet for every read: FFmpeg's read wants a blank one and does not release
            // what a reused packet held, so every skipped packet (another stream's, a non-key
            // frame's) stayed in memory until the file was done.
            let mut packet = ffmpeg::Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {}
                Err(ffmpeg::Error::Eof) => return self.send_eof(),
                Err(_) => {
                    // A truncated or damaged container: decode what arrived, and say so.
                    self.stats.read_error = true;
                    return self.send_eof();
                }
            }
            if packet.stream() != self.stream {
                continue;
            }
            self.note_packet_end(&packet);
            self.maybe_decode_all(&packet);
            if self.skip == Skip::NonKey && !packet.is_key() || self.skipped_over(&packet) {
                continue;
            }
            if self.decoder.send_packet(&packet).is_err() {
                self.damage();
            }
            return Ok(());
        }
    }

    /// Seconds from the start of the video of a timestamp in the stream's time base.
    fn seconds(&self, ts: i64) -> f64 {
        ts as f64 * self.time_base - self.start
    }

    fn packet_time(&self, packet: &ffmpeg::Packet) -> Option<f64> {
        let time = self.seconds(packet.pts()?);
        plausible(time).then_some(time)
    }

    fn skipped_over(&self, packet: &ffmpeg::Packet) -> bool {
        let (Some(before), Some(time)) = (self.skip_before, self.packet_time(packet)) else {
            return false;
        };
        time < before - TIME_SLACK
    }

    fn maybe_decode_all(&mut self, packet: &ffmpeg::Packet) {
        let Some(from) = self.decode_all_from else {
            return;
        };
        let reached = packet
            .pts()
            .is_some_and(|pts| self.seconds(pts) >= from - TIME_SLACK);
        if reached {
            self.decode_all_from = None;
            self.set_skip(Skip::Nothing);
        }
    }

    fn note_packet_end(&mut self, packet: &ffmpeg::Packet) {
        if let (Some(time), Some(watch)) = (self.packet_time(packet), self.watch.as_mut()) {
            watch.packet(time, packet.size(), packet.is_key());
        }
        if let Some(pts) = packet.pts() {
            let end = self.seconds(pts + packet.duration().max(0));
            if plausible(end) {
                self.stats.stream_end = self.stats.stream_end.max(end);
            }
        }
    }

    fn damage(&mut self) {
        if !self.damaged {
            self.stats.corrupt += 1;
        }
        self.damaged = true;
    }

    fn send_eof(&mut self) -> Result<(), DecodeError> {
        self.eof_sent = true;
        let end = self.stats.stream_end;
        if let Some(watch) = self.watch.as_mut() {
            watch.close(end);
        }
        // A decoder left in error by a damaged last packet may refuse the flush; what it
        // still holds is then lost, and that is counted like any other damage.
        if self.decoder.send_eof().is_err() {
            self.damage();
        }
        Ok(())
    }

    /// The frame with its time, or None for a frame whose time is implausible.
    fn wrap(&mut self, frame: ffmpeg::frame::Video) -> Option<Frame> {
        self.stats.frames += 1;
        if frame.is_corrupt() || frame.has_decode_errors() {
            self.damage();
        } else if frame.is_key() {
            self.damaged = false;
        }
        // Not clamped at 0: frames shown before the start keep their order, and so their own
        // segments and point ids.
        let time = match frame.timestamp().or(frame.pts()) {
            Some(ts) => self.seconds(ts),
            // No timestamp at all: assume the nominal frame rate after the previous frame.
            None => self.last_time.map_or(0.0, |t| t + self.frame_period()),
        };
        if !plausible(time) {
            self.stats.implausible += 1;
            return None;
        }
        self.last_time = Some(time);
        let packet_duration = frame.packet().duration;
        let duration = if packet_duration > 0 {
            packet_duration as f64 * self.time_base
        } else {
            self.frame_period()
        };
        Some(Frame {
            time,
            duration,
            key: frame.is_key(),
            inner: frame,
        })
    }

    fn frame_period(&self) -> f64 {
        self.info.frame_rate.map_or(1.0 / 25.0, |r| 1.0 / r)
    }

    fn ffmpeg_error(&self, doing: &'static str, source: ffmpeg::Error) -> DecodeError {
        DecodeError::Ffmpeg {
            path: self.path.clone(),
            doing,
            source,
        }
    }
}

fn libc_eagain() -> i32 {
    // FFmpeg reports "need more input" as AVERROR(EAGAIN), which ffmpeg-next maps to Other.
    ffmpeg::util::error::EAGAIN
}

/// A name under which FFmpeg can open `path`. ffmpeg-next hands FFmpeg a path as UTF-8 and
/// panics on any other, while a file's name may be any bytes; such a file is opened here and
/// named `/proc/self/fd/N`, which FFmpeg opens anew, so the name is needed only until then.
/// Either way the name starts with `file:`, so that a file called `tcp:host:port.mp4` is that
/// file, not a connection.
pub(crate) struct FfmpegName {
    pub path: PathBuf,
    _open: Option<std::fs::File>,
}

/// Options every input is opened with: files only. FFmpeg would otherwise open whatever
/// protocol a name or a crafted file asks for (a file named `tcp:host:port.mp4`, a playlist's
/// segments), so indexing a stranger's files could reach the network.
pub(crate) fn local_only() -> ffmpeg::Dictionary<'static> {
    let mut options = ffmpeg::Dictionary::new();
    options.set("protocol_whitelist", "file");
    options
}

pub(crate) fn ffmpeg_name(path: &Path) -> std::io::Result<FfmpegName> {
    use std::os::fd::AsRawFd;
    if let Some(text) = path.to_str() {
        return Ok(FfmpegName {
            path: PathBuf::from(format!("file:{text}")),
            _open: None,
        });
    }
    let file = std::fs::File::open(path)?;
    Ok(FfmpegName {
        path: PathBuf::from(format!("file:/proc/self/fd/{}", file.as_raw_fd())),
        _open: Some(file),
    })
}

/// Whether a path is a file that can be read, with the error a missing or unreadable input
/// gets from every command.
/// The picture a player shows at `time`, scaled so its longer side is at most `side`: for a
/// thumbnail, or a golden frame to caption.
pub fn image_at_side(path: &Path, time: f64, side: u32) -> Result<image::RgbImage, String> {
    let mut decoder = Decoder::open(path, Skip::Nothing).map_err(|e| e.to_string())?;
    decoder.seek(time).map_err(|e| e.to_string())?;
    let rotation = decoder.info().rotation;
    let mut converter = Converter::default();
    let mut last = None;
    while let Some(frame) = decoder.next_frame().map_err(|e| e.to_string())? {
        let reached = frame.time + frame.duration > time;
        last = Some(frame);
        if reached {
            break;
        }
    }
    let frame = last.ok_or("no frame at that time")?;
    converter
        .rgb(&frame.inner, rotation, side)
        .map_err(|e| e.to_string())
}

pub fn check_file(path: &Path) -> Result<(), DecodeError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DecodeError::NotFound(path.into()),
        _ => DecodeError::Unreadable(path.into(), e),
    })?;
    if meta.is_dir() {
        return Err(DecodeError::IsDirectory(path.into()));
    }
    if !meta.is_file() {
        // A pipe or device: opening it here would consume what its writer sends.
        return Ok(());
    }
    if meta.len() == 0 {
        return Err(DecodeError::Empty(path.into()));
    }
    // Opening for reading catches permission problems with an io::Error instead of FFmpeg's vaguer one.
    std::fs::File::open(path).map_err(|e| DecodeError::Unreadable(path.into(), e))?;
    Ok(())
}

/// The first video stream that is not a cover picture.
fn first_video_stream(input: &ffmpeg::format::context::Input) -> Option<usize> {
    input
        .streams()
        .find(|s| {
            s.parameters().medium() == media::Type::Video
                && !s
                    .disposition()
                    .contains(ffmpeg::format::stream::Disposition::ATTACHED_PIC)
        })
        .map(|s| s.index())
}

fn open_stream(
    path: &Path,
    input: &ffmpeg::format::context::Input,
    index: usize,
    threads: usize,
) -> Result<(ffmpeg::decoder::Video, VideoInfo, f64), DecodeError> {
    let stream = input.stream(index).expect("index comes from this input");
    let parameters = stream.parameters();
    let codec_id = parameters.id();
    let codec = codec_id.name().to_string();
    if ffmpeg::decoder::find(codec_id).is_none() {
        return Err(DecodeError::NoDecoder {
            path: path.into(),
            codec,
        });
    }
    let mut context = ffmpeg::codec::context::Context::from_parameters(parameters)
        .map_err(|source| ffmpeg_error(path, "reading codec parameters", source))?;
    context.set_threading(threading::Config {
        kind: threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let decoder = context
        .decoder()
        .video()
        .map_err(|source| ffmpeg_error(path, "opening the decoder", source))?;
    let time_base = f64::from(stream.time_base());
    let rotation = Rotation::from_stream(&stream);
    let (display_width, display_height) = picture::display_size(
        decoder.width(),
        decoder.height(),
        decoder.aspect_ratio(),
        rotation,
    );
    let info = VideoInfo {
        codec,
        container: input.format().name().to_string(),
        coded_width: decoder.width(),
        coded_height: decoder.height(),
        display_width,
        display_height,
        rotation,
        duration: duration_seconds(input, &stream, time_base),
        frame_rate: positive(f64::from(stream.avg_frame_rate()))
            .or_else(|| positive(f64::from(stream.rate()))),
    };
    Ok((decoder, info, time_base))
}

/// Frame threads: two more than the cores. FFmpeg's own choice (one more) left a core idle
/// about a tenth of the time while threads waited on reference frames; measured on 2 cores,
/// 720p H.264, 1.33 s against 1.19 s, for about 20 MB more memory at 1080p.
fn decode_threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 2
}

fn ffmpeg_error(path: &Path, doing: &'static str, source: ffmpeg::Error) -> DecodeError {
    DecodeError::Ffmpeg {
        path: path.into(),
        doing,
        source,
    }
}

/// Players count time from the container's start (mpv rebases it to 0), so that is our zero.
pub(crate) fn start_seconds(
    input: &ffmpeg::format::context::Input,
    index: usize,
    time_base: f64,
) -> f64 {
    // SAFETY: the pointer comes from a live, opened input context.
    let format_start = unsafe { (*input.as_ptr()).start_time };
    if format_start != ffmpeg::ffi::AV_NOPTS_VALUE {
        return format_start as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE);
    }
    let stream_start = input
        .stream(index)
        .map_or(ffmpeg::ffi::AV_NOPTS_VALUE, |s| s.start_time());
    if stream_start != ffmpeg::ffi::AV_NOPTS_VALUE {
        return stream_start as f64 * time_base;
    }
    0.0
}

/// The declared duration, unless FFmpeg only guessed it from the bit rate (MPEG-TS, raw streams)
/// or it is no time a video has (`PLAUSIBLE`).
fn duration_seconds(
    input: &ffmpeg::format::context::Input,
    stream: &ffmpeg::format::stream::Stream,
    time_base: f64,
) -> Option<f64> {
    // SAFETY: the pointer comes from a live, opened input context.
    let method = unsafe { (*input.as_ptr()).duration_estimation_method };
    if method == ffmpeg::ffi::AVDurationEstimationMethod::AVFMT_DURATION_FROM_BITRATE {
        return None;
    }
    let stream_duration = stream.duration();
    if stream_duration > 0 && stream_duration != ffmpeg::ffi::AV_NOPTS_VALUE {
        return positive(stream_duration as f64 * time_base).filter(|d| plausible(*d));
    }
    // Matroska keeps each stream's length in a tag; the file's is its longest stream's, and a
    // sound that goes on after the picture is not a truncated video.
    if let Some(tagged) = stream.metadata().get("DURATION").and_then(clock_seconds) {
        return positive(tagged).filter(|d| plausible(*d));
    }
    positive(input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE))
        .filter(|d| plausible(*d))
}

/// `HH:MM:SS.fffffffff`, as Matroska's DURATION tag writes it.
fn clock_seconds(text: &str) -> Option<f64> {
    let mut parts = text.trim().splitn(3, ':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    let seconds =
        h.parse::<f64>().ok()? * 3600.0 + m.parse::<f64>().ok()? * 60.0 + s.parse::<f64>().ok()?;
    seconds.is_finite().then_some(seconds)
}

fn positive(x: f64) -> Option<f64> {
    (x.is_finite() && x > 0.0).then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets of one key-frame interval: a key frame, then P- and B-frame sizes.
    fn interval(watch: &mut PacketWatch, start: f64, key: usize, rest: &[usize]) {
        watch.packet(start, key, true);
        for (i, size) in rest.iter().enumerate() {
            watch.packet(start + 0.04 * (i + 1) as f64, *size, false);
        }
    }

    #[test]
    fn issue22_a_matroska_stream_s_own_length_is_read_from_its_duration_tag() {
        assert_eq!(clock_seconds("00:00:03.064000000"), Some(3.064));
        assert_eq!(clock_seconds("01:02:03.5"), Some(3723.5));
        assert_eq!(clock_seconds("garbage"), None);
    }

    #[test]
    fn issue10_a_picture_coded_afresh_between_key_frames_is_a_burst() {
        let mut watch = PacketWatch::default();
        let steady = [900, 300, 280, 310, 950, 290, 300, 320, 880, 310];
        interval(&mut watch, 0.0, 20_000, &steady);
        let mut cut = steady.to_vec();
        cut[5] = 6_000;
        interval(&mut watch, 2.0, 20_000, &cut);
        // A cheap picture after a still shot's tiny ones, far below the key frame's size.
        interval(&mut watch, 4.0, 20_000, &[60, 50, 55, 400, 60]);
        watch.close(6.0);
        let notes: Vec<GopNote> = watch.done.drain(..).collect();
        let bursts: Vec<(f64, f64, bool)> =
            notes.iter().map(|n| (n.start, n.end, n.burst)).collect();
        assert_eq!(
            bursts,
            vec![(0.0, 2.0, false), (2.0, 4.0, true), (4.0, 6.0, true)]
        );
    }

    #[test]
    fn issue10_a_packet_near_the_key_frames_size_is_a_burst_even_first_in_its_interval() {
        let mut watch = PacketWatch::default();
        interval(&mut watch, 0.0, 10_000, &[6_000, 500, 400]);
        watch.close(1.0);
        assert!(watch.done[0].burst);
    }
}
