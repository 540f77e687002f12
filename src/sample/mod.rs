//! sample: choose the frames worth describing, each with the reason it was chosen.

mod refine;
mod scene;
mod scout;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

use image::RgbImage;

use crate::decode::{
    Converter, DecodeError, Decoder, Frame, Skip, Truncation, VideoInfo, TIME_SLACK,
};
pub use scene::{Change, SceneConfig, SceneDetector, Verdict, LOOKAHEAD};

/// How frames are chosen (`--sample`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Key frames only; the rest are never decoded.
    Keyframes,
    /// One frame every so many seconds.
    Interval(f64),
    /// The first frame of every shot.
    Scene,
    /// Every shot, plus a frame every `max_gap` seconds inside long shots.
    Auto,
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keyframes" => Ok(Mode::Keyframes),
            "scene" => Ok(Mode::Scene),
            "auto" => Ok(Mode::Auto),
            _ => match s.strip_prefix("interval:").map(str::parse::<f64>) {
                Some(Ok(seconds)) if seconds.is_finite() && seconds > 0.0 => {
                    Ok(Mode::Interval(seconds))
                }
                Some(_) => Err(format!(
                    "'{s}': the interval must be a positive number of seconds, as in interval:5"
                )),
                None => Err(format!(
                    "'{s}': use auto, scene, keyframes or interval:SECONDS"
                )),
            },
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Keyframes => f.write_str("keyframes"),
            Mode::Interval(s) => write!(f, "interval:{s}"),
            Mode::Scene => f.write_str("scene"),
            Mode::Auto => f.write_str("auto"),
        }
    }
}

/// Why a frame was sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    First,
    Gap,
    Interval,
    Keyframe,
    Scene,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::First => "first",
            Reason::Gap => "gap",
            Reason::Interval => "interval",
            Reason::Keyframe => "keyframe",
            Reason::Scene => "scene",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SampleConfig {
    pub mode: Mode,
    pub scene: SceneConfig,
    /// Longest stretch of a shot without a sampled frame (auto).
    pub max_gap: f64,
    /// Two sampled frames are never closer than this (auto); a cut replaces an earlier frame.
    pub min_gap: f64,
    /// Longer side of the sampled pictures, in pixels.
    pub max_side: u32,
}

impl Default for SampleConfig {
    fn default() -> Self {
        SampleConfig {
            mode: Mode::Auto,
            scene: SceneConfig::default(),
            max_gap: 10.0,
            min_gap: 0.5,
            max_side: 1024,
        }
    }
}

/// A sampled frame: its picture as a player shows it and the stretch of timeline it starts.
#[derive(Clone, Debug)]
pub struct Sample {
    pub time: f64,
    /// Where the stretch this frame stands for begins; earlier than `time` when a fade or
    /// dissolve led up to this frame, or when it replaced a frame closer than the minimum gap.
    pub span_start: f64,
    pub reason: Reason,
    pub image: RgbImage,
}

/// Pulls frames from a decoder and yields the sampled ones in time order.
pub struct Sampler {
    decoder: Decoder,
    config: SampleConfig,
    converter: Converter,
    detector: SceneDetector,
    refiner: refine::Refiner,
    /// Decodes key frames ahead so that quiet key-frame intervals can go undecoded (scene and
    /// auto); dropped once it stops paying or a cut shows that this file's packets hide cuts.
    scout: Option<scout::Scout>,
    /// Frames decoded by a scout since dropped.
    scout_frames: u64,
    skip: Skip,
    /// Time of the last frame the detector judged: where a cut's frame gap starts.
    last_judged: Option<f64>,
    /// Decoded frames waiting for the detector's verdict, in step with its lookahead.
    waiting: VecDeque<Frame>,
    /// The latest sample, held back in case a stronger change within the minimum gap
    /// replaces it, with the change that caused it.
    held: Option<(Sample, Change)>,
    ready: VecDeque<Sample>,
    last_sample: Option<f64>,
    next_interval: f64,
    last_key: Option<f64>,
    /// Longest distance between key frames seen so far: what a seek may cost in decoding.
    longest_gop: f64,
    end: Option<f64>,
    finished: bool,
}

impl Sampler {
    pub fn open(path: &std::path::Path, config: SampleConfig) -> Result<Self, DecodeError> {
        let skip = match config.mode {
            Mode::Keyframes => Skip::NonKey,
            Mode::Scene | Mode::Auto => Skip::NonRef,
            Mode::Interval(_) => Skip::Nothing,
        };
        let decoder = Decoder::open(path, skip)?;
        // Key frames half a cut's change apart: a fade or a cut between them would set them
        // further apart than that, unless it came back, which the packets then show.
        let scout = match config.mode {
            Mode::Scene | Mode::Auto => scout::Scout::open(path, config.scene.threshold / 2.0),
            Mode::Keyframes | Mode::Interval(_) => None,
        };
        Ok(Sampler {
            decoder,
            config,
            converter: Converter::default(),
            detector: SceneDetector::new(config.scene),
            refiner: refine::Refiner::new(path),
            scout,
            scout_frames: 0,
            skip,
            last_judged: None,
            waiting: VecDeque::with_capacity(LOOKAHEAD + 1),
            held: None,
            ready: VecDeque::new(),
            last_sample: None,
            // The first frame is always sampled, even one shown before the start.
            next_interval: f64::NEG_INFINITY,
            last_key: None,
            longest_gop: 0.0,
            end: None,
            finished: false,
        })
    }

    pub fn info(&self) -> &VideoInfo {
        self.decoder.info()
    }

    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// All frames decoded: by the main pass, by cut refinement and by the key-frame scout.
    pub fn frames_decoded(&self) -> u64 {
        self.decoder.stats().frames
            + self.refiner.frames_decoded()
            + self.scout_frames
            + self.scout.as_ref().map_or(0, |s| s.frames_decoded())
    }

    /// Ends key-frame-first detection for this file: from here every interval is decoded.
    fn drop_scout(&mut self) {
        if let Some(scout) = self.scout.take() {
            self.scout_frames += scout.frames_decoded();
        }
    }

    /// End of the last decoded frame: the video's real length, known once decoding is done.
    pub fn end(&self) -> Option<f64> {
        self.end
    }

    /// Where the timeline ends once decoding is done: the end of the last frame, or of the
    /// stream if that reaches further. The last frame's stretch runs to here.
    pub fn timeline_end(&self) -> f64 {
        self.end
            .unwrap_or(0.0)
            .max(self.decoder().stats().stream_end)
    }

    /// Once decoding is done: whether the file stops well before the length its container
    /// declares (a download still running, or cut short).
    pub fn truncation(&self) -> Option<Truncation> {
        let declared = self.info().duration?;
        let at = self.timeline_end();
        let slack = 1.0_f64.max(declared * 0.02);
        let cut = self.decoder.stats().read_error || declared - at > slack;
        cut.then_some(Truncation { at, declared })
    }

    /// The next sampled frame, or None when the video is done.
    pub fn next_sample(&mut self) -> Result<Option<Sample>, DecodeError> {
        while self.ready.is_empty() && !self.finished {
            match self.decoder.next_frame()? {
                Some(frame) => self.take(frame)?,
                None => self.finish()?,
            }
        }
        Ok(self.ready.pop_front())
    }

    fn take(&mut self, frame: Frame) -> Result<(), DecodeError> {
        self.note_end(&frame);
        match self.config.mode {
            Mode::Keyframes => self.emit(frame, Reason::Keyframe, Change::None, None),
            Mode::Interval(every) => self.take_interval(frame, every),
            Mode::Scene | Mode::Auto => self.take_for_detector(frame),
        }
    }

    fn note_end(&mut self, frame: &Frame) {
        let end = frame.time + frame.duration;
        self.end = Some(self.end.map_or(end, |e| e.max(end)));
        if frame.key {
            if let Some(previous) = self.last_key {
                self.longest_gop = self.longest_gop.max(frame.time - previous);
            }
            self.last_key = Some(frame.time);
        }
    }

    fn take_interval(&mut self, frame: Frame, every: f64) -> Result<(), DecodeError> {
        if frame.time + TIME_SLACK < self.next_interval {
            return Ok(());
        }
        // The next multiple of `every` after this frame, computed rather than stepped to: a file
        // whose timestamps jump to 1e12 s would otherwise keep the loop going for days.
        self.next_interval = ((frame.time + TIME_SLACK) / every)
            .floor()
            .mul_add(every, every);
        let time = frame.time;
        self.emit(frame, Reason::Interval, Change::None, None)?;
        // Seeking costs one key-frame interval of decoding; reading through costs the whole gap.
        if self.next_interval - time > self.seek_threshold() {
            self.decoder.seek(self.next_interval)?;
            // The jump is no key-frame interval: measure the next one afresh.
            self.last_key = None;
        }
        Ok(())
    }

    /// Until two key frames have been seen the cost of a seek is unknown, so it reads through.
    fn seek_threshold(&self) -> f64 {
        if self.longest_gop > 0.0 {
            self.longest_gop * 1.5
        } else {
            f64::INFINITY
        }
    }

    fn take_for_detector(&mut self, frame: Frame) -> Result<(), DecodeError> {
        if frame.key {
            self.skip_if_quiet(frame.time)?;
        }
        let small = self
            .converter
            .small(&frame.inner)
            .map_err(|e| self.convert_error(e))?;
        let verdict = self.detector.push(frame.time, small);
        self.waiting.push_back(frame);
        if let Some(verdict) = verdict {
            let judged = self
                .waiting
                .pop_front()
                .expect("one frame waits per pending verdict");
            self.judge(judged, verdict)?;
        }
        Ok(())
    }

    /// Leaves the key-frame interval that starts at `time` undecoded when the scout finds
    /// nothing in it. In auto mode an interval that a gap frame must fall in is decoded.
    fn skip_if_quiet(&mut self, time: f64) -> Result<(), DecodeError> {
        if self.skip != Skip::NonRef {
            self.drop_scout();
        }
        let deadline = (self.config.mode == Mode::Auto).then(|| {
            let last = self
                .last_sample
                .or_else(|| self.waiting.front().map(|f| f.time));
            last.unwrap_or(time) + self.config.max_gap
        });
        let Some(scout) = self.scout.as_mut() else {
            return Ok(());
        };
        if let Some(next) = scout.quiet_until(time, deadline)? {
            self.decoder.skip_to(next);
        }
        if !scout.pays() {
            self.drop_scout();
        }
        Ok(())
    }

    /// A cut between key frames that the packets did not announce: this file's encoder hides
    /// cuts from the scout, which could then pass over one. From here every interval is decoded.
    fn check_scout(&mut self, frame: &Frame) {
        let unannounced = self
            .scout
            .as_ref()
            .is_some_and(|s| !frame.key && s.burst_at(frame.time) == Some(false));
        if unannounced {
            self.drop_scout();
        }
    }

    fn judge(&mut self, frame: Frame, verdict: Verdict) -> Result<(), DecodeError> {
        let change = verdict.change;
        let before = self.last_judged.replace(frame.time);
        let frame = match before {
            Some(before) if change == Change::Cut && self.skipped_between(before, &frame) => {
                let exact = self
                    .refiner
                    .exact_cut(&mut self.converter, before, frame.time)?;
                self.stop_skipping_if_refining_costs_more();
                exact.unwrap_or(frame)
            }
            _ => frame,
        };
        if change == Change::Cut {
            self.check_scout(&frame);
        }
        let reason = match (change, self.last_sample) {
            (_, None) => Some(Reason::First),
            (Change::Cut | Change::Gradual, _) => Some(Reason::Scene),
            (Change::None, Some(last))
                if self.config.mode == Mode::Auto && frame.time - last >= self.config.max_gap =>
            {
                Some(Reason::Gap)
            }
            (Change::None, _) => None,
        };
        let began = (change == Change::Gradual).then_some(verdict.began);
        match reason {
            Some(reason) => self.emit(frame, reason, change, began),
            None => Ok(()),
        }
    }

    /// Skipping pays when the encoder puts its cuts on reference frames, as x264, x265 and
    /// libvpx do by default. A second cut between reference frames says this one does not, and
    /// that refining every cut would cost more than skipping saves: from then on every frame is
    /// decoded, and cuts are exact without refinement.
    fn stop_skipping_if_refining_costs_more(&mut self) {
        const REFINEMENTS_BEFORE_FULL_DECODE: u64 = 2;
        if self.refiner.refinements() >= REFINEMENTS_BEFORE_FULL_DECODE {
            self.decoder.set_skip(Skip::Nothing);
            self.skip = Skip::Nothing;
        }
    }

    /// Whether the coarse pass skipped frames between `before` and this frame.
    fn skipped_between(&self, before: f64, frame: &Frame) -> bool {
        self.skip == Skip::NonRef && frame.time - before > 1.5 * frame.duration
    }

    fn finish(&mut self) -> Result<(), DecodeError> {
        for verdict in self.detector.finish() {
            let frame = self
                .waiting
                .pop_front()
                .expect("one frame waits per pending verdict");
            self.judge(frame, verdict)?;
        }
        if self.last_sample.is_none() && self.held.is_none() {
            return Err(DecodeError::NoFrames(self.decoder.path().to_path_buf()));
        }
        self.ready
            .extend(self.held.take().map(|(sample, _)| sample));
        self.finished = true;
        Ok(())
    }

    /// Samples a frame. `began`, for a fade or dissolve, is where its stretch starts, unless
    /// the sample before lies after it.
    fn emit(
        &mut self,
        frame: Frame,
        reason: Reason,
        change: Change,
        began: Option<f64>,
    ) -> Result<(), DecodeError> {
        let image = self
            .converter
            .rgb(
                &frame.inner,
                self.decoder.info().rotation,
                self.config.max_side,
            )
            .map_err(|e| self.convert_error(e))?;
        let floor = self.last_sample.unwrap_or(f64::NEG_INFINITY);
        // A fade that began before the previous sample leaves that sample its own stretch: two
        // stretches starting at one time would share a segment id.
        let span_start = match began {
            Some(began) if began > floor => began.min(frame.time),
            _ => frame.time,
        };
        self.last_sample = Some(frame.time);
        let sample = Sample {
            time: frame.time,
            span_start,
            reason,
            image,
        };
        self.hold(sample, change);
        Ok(())
    }

    /// Applies the minimum gap in auto mode: of two frames closer than it, the one from the
    /// stronger change stays (a cut over a fade over any other reason), and stands for the
    /// stretch of timeline of both. Between equals the later stays: the earlier one starts a
    /// shot shorter than the gap, the later one may start a long one.
    fn hold(&mut self, mut sample: Sample, change: Change) {
        let Some((held, held_change)) = self.held.take() else {
            self.held = Some((sample, change));
            return;
        };
        let too_close =
            self.config.mode == Mode::Auto && sample.time - held.time < self.config.min_gap;
        if !too_close {
            self.ready.push_back(held);
            self.held = Some((sample, change));
        } else if change >= held_change && change != Change::None {
            // A gap frame is the shot before going on: its stretch falls back to the sample
            // before it, not to the new shot. The first frame's stays: the timeline starts there.
            if held_change != Change::None || held.reason == Reason::First {
                sample.span_start = sample.span_start.min(held.span_start);
            }
            self.held = Some((sample, change));
        } else {
            self.held = Some((held, held_change));
        }
    }

    fn convert_error(&self, source: ffmpeg_next::Error) -> DecodeError {
        DecodeError::Ffmpeg {
            path: self.decoder.path().to_path_buf(),
            doing: "converting a frame",
            source,
        }
    }
}
