//! A file's sound as 16 kHz mono, streamed: one audio stream decoded by FFmpeg and resampled
//! by its resampler, handed on a packet's worth at a time, each sample on the file's timeline.

use std::path::{Path, PathBuf};

use ffmpeg::format::sample::Type as SampleType;
use ffmpeg::format::Sample;
use ffmpeg::{media, ChannelLayout};
use ffmpeg_next as ffmpeg;
use sha2::{Digest, Sha256};

use crate::decode::{ffmpeg_name, init, local_only, start_seconds};

use super::mel::SAMPLE_RATE;
use super::SpeechError;

/// Undecodable packets in a row after which the stream is given up on as broken.
const MOST_FAILURES_IN_A_ROW: u32 = 200;
/// A frame this much later than the sound so far says some was lost.
const HOLE_SECONDS: f64 = 0.1;

pub struct Audio {
    path: PathBuf,
    input: ffmpeg::format::context::Input,
    stream: usize,
    decoder: ffmpeg::decoder::Audio,
    resampler: Option<ffmpeg::software::resampling::Context>,
    time_base: f64,
    start: f64,
    /// Where the first sample handed on lies on the file's timeline, once known.
    origin: Option<f64>,
    ended: bool,
    failures_in_a_row: u32,
    /// Packets the decoder refused.
    pub damaged: u64,
    /// Samples handed on so far.
    produced: usize,
}

/// Which audio stream to hear: the first, or the Nth audio stream (from 0).
pub fn audio_streams(input: &ffmpeg::format::context::Input) -> Vec<usize> {
    input
        .streams()
        .filter(|s| s.parameters().medium() == media::Type::Audio)
        .map(|s| s.index())
        .collect()
}

/// How long the chosen audio stream says it lasts (else the file), for a dry run's estimate;
/// None when there is no such stream or nothing says.
pub fn declared_seconds(path: &Path, choice: Option<usize>) -> Option<f64> {
    init();
    let input = open_input(path).ok()?;
    let stream = *audio_streams(&input).get(choice.unwrap_or(0))?;
    let stream = input.stream(stream)?;
    let own = stream.duration() as f64 * f64::from(stream.time_base());
    let file = input.duration() as f64 / f64::from(ffmpeg::ffi::AV_TIME_BASE);
    [own, file].into_iter().find(|s| s.is_finite() && *s > 0.0)
}

impl Audio {
    /// The file's `choice`th audio stream (the first when None); None when it has no audio.
    pub fn open(path: &Path, choice: Option<usize>) -> Result<Option<Audio>, SpeechError> {
        init();
        let input = open_input(path)?;
        let streams = audio_streams(&input);
        let stream = match (choice, streams.first()) {
            (None, None) => return Ok(None),
            (None, Some(&first)) => first,
            (Some(n), _) => *streams.get(n).ok_or_else(|| SpeechError::NoSuchStream {
                path: path.into(),
                asked: n,
                there: streams.len(),
            })?,
        };
        let failed = |doing: &'static str| {
            move |source| SpeechError::Ffmpeg {
                path: path.into(),
                doing,
                source,
            }
        };
        let parameters = input.stream(stream).expect("listed stream").parameters();
        // A decoder refuses to open a stream of no channels with a bare "Invalid argument".
        // SAFETY: the parameters belong to the open input, which outlives this read.
        if unsafe { (*parameters.as_ptr()).ch_layout.nb_channels } == 0 {
            return Err(SpeechError::NoChannels(path.into()));
        }
        let context = ffmpeg::codec::context::Context::from_parameters(parameters)
            .map_err(failed("reading the audio's codec parameters"))?;
        let decoder = context
            .decoder()
            .audio()
            .map_err(failed("opening the audio decoder"))?;
        if decoder.channels() == 0 {
            return Err(SpeechError::NoChannels(path.into()));
        }
        let time_base = f64::from(input.stream(stream).expect("listed stream").time_base());
        let start = start_seconds(&input, stream, time_base);
        Ok(Some(Audio {
            path: path.into(),
            input,
            stream,
            decoder,
            resampler: None,
            time_base,
            start,
            origin: None,
            ended: false,
            failures_in_a_row: 0,
            damaged: 0,
            produced: 0,
        }))
    }

    /// Seconds on the file's timeline of the first sample handed on.
    pub fn origin(&self) -> f64 {
        self.origin.unwrap_or(0.0)
    }

    /// The next samples (at 16 kHz, mono), or None at the end.
    pub fn next(&mut self) -> Result<Option<Vec<f32>>, SpeechError> {
        loop {
            if crate::stop::requested() {
                return Err(SpeechError::Interrupted);
            }
            if self.ended {
                return Ok(None);
            }
            let mut out = Vec::new();
            match self.input.packets().next() {
                Some((stream, packet)) if stream.index() == self.stream => {
                    match self.decoder.send_packet(&packet) {
                        Ok(()) => self.failures_in_a_row = 0,
                        Err(_) => self.refused()?,
                    }
                }
                Some(_) => continue,
                None => {
                    let _ = self.decoder.send_eof();
                    self.ended = true;
                }
            }
            self.receive(&mut out)?;
            if self.ended {
                self.flush(&mut out);
            }
            if !out.is_empty() || self.ended {
                self.produced += out.len();
                return Ok(Some(out).filter(|o| !o.is_empty()));
            }
        }
    }

    fn refused(&mut self) -> Result<(), SpeechError> {
        self.damaged += 1;
        self.failures_in_a_row += 1;
        if self.failures_in_a_row >= MOST_FAILURES_IN_A_ROW {
            return Err(SpeechError::Broken(self.path.clone()));
        }
        Ok(())
    }

    fn receive(&mut self, out: &mut Vec<f32>) -> Result<(), SpeechError> {
        let mut frame = ffmpeg::frame::Audio::empty();
        while self.decoder.receive_frame(&mut frame).is_ok() {
            if frame.channels() == 0 || frame.rate() == 0 {
                self.refused()?;
                continue;
            }
            if frame.channel_layout().is_empty() {
                frame.set_channel_layout(ChannelLayout::default(i32::from(frame.channels())));
            }
            let at = frame
                .pts()
                .map(|pts| pts as f64 * self.time_base - self.start);
            match (self.origin, at) {
                (None, at) => self.origin = Some(at.unwrap_or(0.0)),
                // Sound lost to damage leaves a hole in the timeline: it is kept as silence, so
                // every later word keeps its time.
                (Some(origin), Some(at)) => {
                    let expected = origin + (self.produced + out.len()) as f64 / SAMPLE_RATE as f64;
                    if at - expected > HOLE_SECONDS {
                        let missing = ((at - expected) * SAMPLE_RATE as f64) as usize;
                        out.resize(out.len() + missing, 0.0);
                    }
                }
                (Some(_), None) => {}
            }
            self.resample(&frame, out)?;
        }
        Ok(())
    }

    /// A resampler serves one input shape, so a stream that changes shape (broadcast sound
    /// between programmes) gets a new one.
    fn resample(
        &mut self,
        frame: &ffmpeg::frame::Audio,
        out: &mut Vec<f32>,
    ) -> Result<(), SpeechError> {
        let shape = (frame.format(), frame.channel_layout(), frame.rate());
        let same = self.resampler.as_ref().is_some_and(|r| {
            let input = r.input();
            (input.format, input.channel_layout, input.rate) == shape
        });
        if !same {
            self.flush(out);
            let made = ffmpeg::software::resampling::Context::get(
                shape.0,
                shape.1,
                shape.2,
                Sample::F32(SampleType::Packed),
                ChannelLayout::MONO,
                SAMPLE_RATE as u32,
            );
            self.resampler = Some(made.map_err(|source| SpeechError::Ffmpeg {
                path: self.path.clone(),
                doing: "resampling the audio",
                source,
            })?);
        }
        let mut mono = ffmpeg::frame::Audio::empty();
        let resampler = self.resampler.as_mut().expect("made above");
        if resampler.run(frame, &mut mono).is_err() {
            return self.refused();
        }
        keep(&mono, out);
        Ok(())
    }

    /// What the resampler holds back, kept.
    fn flush(&mut self, out: &mut Vec<f32>) {
        let Some(mut resampler) = self.resampler.take() else {
            return;
        };
        let mut rest = ffmpeg::frame::Audio::empty();
        if resampler.flush(&mut rest).is_ok() {
            keep(&rest, out);
        }
    }
}

fn keep(mono: &ffmpeg::frame::Audio, out: &mut Vec<f32>) {
    let samples = mono.samples();
    if samples > 0 {
        // Float sound can hold NaN or infinities, which would make every later check pass.
        let clean = |x: &f32| {
            if x.is_finite() {
                x.clamp(-1.0, 1.0)
            } else {
                0.0
            }
        };
        out.extend(mono.plane::<f32>(0)[..samples].iter().map(clean));
    }
}

fn open_input(path: &Path) -> Result<ffmpeg::format::context::Input, SpeechError> {
    crate::decode::check_file(path).map_err(SpeechError::Decode)?;
    let name = ffmpeg_name(path).map_err(|e| SpeechError::Unreadable(path.into(), e))?;
    ffmpeg::format::input_with_interrupt_and_dictionary(
        &name.path,
        crate::stop::requested,
        local_only(),
    )
    .map_err(|e| match e {
        ffmpeg::Error::Exit if crate::stop::requested() => SpeechError::Interrupted,
        source => SpeechError::Ffmpeg {
            path: path.into(),
            doing: "opening the file",
            source,
        },
    })
}

/// What identifies a file's sound: SHA-256 over the chosen audio stream's codec, its
/// parameters, where its first packet lies on the file's timeline (transcripts hold file
/// times) and every packet's bytes, read without decoding. A file moved, copied or remuxed
/// into another container keeps it; None when the file has no such stream.
pub fn content_key(path: &Path, choice: Option<usize>) -> Result<Option<String>, SpeechError> {
    init();
    let mut input = open_input(path)?;
    let streams = audio_streams(&input);
    let Some(&stream) = streams.get(choice.unwrap_or(0)) else {
        return Ok(None);
    };
    let mut hash = Sha256::new();
    {
        let parameters = input.stream(stream).expect("listed stream").parameters();
        // A decoder refuses to open a stream of no channels with a bare "Invalid argument".
        // SAFETY: the parameters belong to the open input, which outlives this read.
        if unsafe { (*parameters.as_ptr()).ch_layout.nb_channels } == 0 {
            return Err(SpeechError::NoChannels(path.into()));
        }
        let context = ffmpeg::codec::context::Context::from_parameters(parameters);
        if let Ok(context) = context {
            if let Ok(audio) = context.decoder().audio() {
                hash.update(format!(
                    "{:?}/{}/{}",
                    audio.id(),
                    audio.rate(),
                    audio.channels()
                ));
            }
        }
    }
    let time_base = f64::from(input.stream(stream).expect("listed stream").time_base());
    let start = start_seconds(&input, stream, time_base);
    let mut placed = false;
    for (s, packet) in input.packets() {
        if crate::stop::requested() {
            return Err(SpeechError::Interrupted);
        }
        if s.index() == stream {
            if let (false, Some(pts)) = (placed, packet.pts()) {
                hash.update(format!("at {:.3}", pts as f64 * time_base - start));
                placed = true;
            }
            if let Some(data) = packet.data() {
                hash.update((data.len() as u64).to_le_bytes());
                hash.update(data);
            }
        }
    }
    Ok(Some(format!("{:x}", hash.finalize())))
}
