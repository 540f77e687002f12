//! speech: what is said in a file, beside what is seen. The file's sound is decoded and
//! resampled to 16 kHz mono as it streams (`audio`), a voice-activity detector finds the
//! stretches where someone speaks (`vad`), and only those are transcribed by Whisper
//! (`whisper`, over `network` and `mel`), each stretch in the language detected for it.
//! Utterances then merge into phrase-sized segments (`phrases`) that the index stores beside
//! the picture segments.

pub mod audio;
pub mod mel;
pub mod network;
pub mod openai;
pub mod vad;
pub mod whisper;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::caption::cache::Cache;
use mel::SAMPLE_RATE;
use vad::{Rules, Stretches, Vad};
use whisper::Whisper;

/// The Whisper models set-up installs, by the name `--speech-model` takes.
pub const MODELS: [&str; 2] = ["base", "tiny.en"];
/// The voice-activity detector's weights, in the speech folder.
pub const VAD_FILE: &str = "silero_vad.safetensors";
/// Stretches closer than this, and together no longer than a window, are read as one.
const JOIN_GAP: f64 = 1.0;

#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    #[error(
        "the speech model is not in {0} (run scripts/setup.sh, or point SCENEDEX_SPEECH_DIR at it)"
    )]
    Missing(PathBuf),
    #[error("the speech model in {dir} cannot be read: {detail} (run scripts/setup.sh again)")]
    BrokenModel { dir: PathBuf, detail: String },
    #[error("speech model failed: {0}")]
    Model(String),
    #[error(transparent)]
    Decode(crate::decode::DecodeError),
    #[error("{0}: cannot read: {1}")]
    Unreadable(PathBuf, std::io::Error),
    #[error("{path}: FFmpeg failed while {doing}: {source}")]
    Ffmpeg {
        path: PathBuf,
        doing: &'static str,
        source: ffmpeg_next::Error,
    },
    #[error("{path}: has no audio stream {asked} (it has {there}; --audio-stream counts from 0)")]
    NoSuchStream {
        path: PathBuf,
        asked: usize,
        there: usize,
    },
    #[error("{0}: its audio stream has no channels")]
    NoChannels(PathBuf),
    #[error("{0}: the audio stream is broken beyond this point")]
    Broken(PathBuf),
    #[error("transcription failed: {0}")]
    Service(crate::caption::CaptionError),
    #[error("interrupted")]
    Interrupted,
}

/// Words heard between two times of the file, in one language.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Utterance {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub lang: String,
    pub avg_logprob: f64,
    pub no_speech: f64,
}

/// Everything heard in a file's sound.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Heard {
    pub utterances: Vec<Utterance>,
    /// Seconds of sound decoded, and of them the seconds the detector found speech in.
    pub seconds: f64,
    pub speech_seconds: f64,
    /// Seconds of sound handed to the transcriber (what a service charges for).
    #[serde(default)]
    pub sent_seconds: f64,
    /// The sound broke off (too much damage in a row) after `seconds`.
    #[serde(default)]
    pub broken: bool,
    /// Audio packets the decoder refused.
    pub damaged: u64,
}

/// How to listen: which model, which stream, and a language to force.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub stream: Option<usize>,
    pub lang: Option<String>,
}

/// What turns a stretch of speech into words: Whisper on this machine, or a service.
pub trait Transcriber: Send + Sync {
    /// What is said in `samples` (16 kHz mono, at most `longest`), which start `at`
    /// seconds into the file, on the file's timeline; in `lang` when it is given. `pauses` are
    /// where within them a stretch of speech ended, where a window best ends.
    fn transcribe(
        &self,
        samples: &[f32],
        pauses: &[usize],
        at: f64,
        lang: Option<&str>,
    ) -> Result<Vec<Utterance>, SpeechError>;
    /// Who hears, as recorded with each segment: `whisper` (local) or `openai`.
    fn backend(&self) -> &str;
    /// The model, as recorded: `whisper-base`, `whisper-1`.
    fn model(&self) -> String;
    /// Whether it can be told to hear `lang`.
    fn knows(&self, lang: &str) -> bool;
    /// The most samples one call is given. A service gets stretches of at most a window, as
    /// its kept answers are keyed by the stretch sent; Whisper reads longer talk window by
    /// window, so what one window leaves unread opens the next rather than a window of its own.
    fn longest(&self) -> usize {
        mel::WINDOW
    }
    /// Dollars per minute of sound sent, for a paid service.
    fn price_per_minute(&self) -> Option<f64> {
        None
    }
}

/// The models that hear: a voice-activity detector and a transcriber.
pub struct Ear {
    vad: Vad,
    transcriber: Box<dyn Transcriber>,
    rules: Rules,
}

impl Ear {
    /// `$SCENEDEX_SPEECH_DIR`, or `~/.local/share/scenedex/speech` where set-up puts the files.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SCENEDEX_SPEECH_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::data_dir().map(|d| d.join("scenedex").join("speech")))
    }

    /// Whether `model`'s files are installed under `dir`.
    pub fn installed(dir: &Path, model: &str) -> bool {
        dir.join(VAD_FILE).is_file() && Whisper::dir(dir, model).join("config.json").is_file()
    }

    /// Local Whisper `model` and the detector, from `dir`.
    pub fn load(dir: &Path, model: &str) -> Result<Ear, SpeechError> {
        let whisper = Whisper::load(&Whisper::dir(dir, model), model)?;
        Ear::with(dir, Box::new(whisper))
    }

    /// The detector from `dir`, in front of any transcriber.
    pub fn with(dir: &Path, transcriber: Box<dyn Transcriber>) -> Result<Ear, SpeechError> {
        let vad_file = dir.join(VAD_FILE);
        if !vad_file.is_file() {
            return Err(SpeechError::Missing(dir.to_path_buf()));
        }
        let vad = Vad::load(&vad_file).map_err(|e| SpeechError::BrokenModel {
            dir: dir.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(Ear {
            vad,
            transcriber,
            rules: Rules::default(),
        })
    }

    /// The model, as recorded with each segment (`whisper-base`, `whisper-1`).
    pub fn model(&self) -> String {
        self.transcriber.model()
    }

    pub fn backend(&self) -> &str {
        self.transcriber.backend()
    }

    pub fn price_per_minute(&self) -> Option<f64> {
        self.transcriber.price_per_minute()
    }

    /// Whether this model can be told to hear `lang`.
    pub fn knows(&self, lang: &str) -> bool {
        self.transcriber.knows(lang)
    }

    /// What makes two transcripts of one sound alike: recorded with each speech segment and
    /// part of the transcript cache's key.
    pub fn settings(&self, options: &Options) -> String {
        let r = self.rules;
        format!(
            "{} vad=silero6 start={} end={} silence={} pad={} lang={}",
            match self.backend() {
                "whisper" => self.model(),
                service => format!("{service}/{}", self.model()),
            },
            r.start,
            r.end,
            r.silence,
            r.pad,
            options.lang.as_deref().unwrap_or("auto"),
        )
    }

    /// Listens to `path`: None when it has no audio stream. `on` hears how many seconds of
    /// sound are done, and answers whether to go on.
    pub fn listen(
        &self,
        path: &Path,
        options: &Options,
        on: &dyn Fn(f64) -> bool,
    ) -> Result<Option<Heard>, SpeechError> {
        self.listen_keeping(path, options, None, on)
    }

    /// `listen`, keeping each stretch a paid service transcribes in `kept` as it comes, so a
    /// file cut short (a failure, Ctrl-C, a crash) never pays for it again.
    pub fn listen_keeping(
        &self,
        path: &Path,
        options: &Options,
        kept: Option<&Transcripts>,
        on: &dyn Fn(f64) -> bool,
    ) -> Result<Option<Heard>, SpeechError> {
        let Some(mut audio) = audio::Audio::open(path, options.stream)? else {
            return Ok(None);
        };
        let paid = self.backend() != "whisper";
        let mut listening = Listening {
            kept: kept.filter(|_| paid),
            settings: self.settings(options),
            ear: self,
            lang: options.lang.as_deref(),
            stream: self.vad.stream().map_err(model_error)?,
            stretches: Stretches::new(self.rules),
            buffer: Vec::new(),
            buffer_start: 0,
            total: 0,
            chunk: None,
            pauses: Vec::new(),
            heard: Heard::default(),
            origin: 0.0,
        };
        let mut broken = false;
        loop {
            let samples = match audio.next() {
                Ok(Some(samples)) => samples,
                Ok(None) => break,
                // What was heard before the sound broke is kept, and said to be all there is.
                Err(SpeechError::Broken(_)) => {
                    broken = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            listening.origin = audio.origin();
            listening.push(&samples, false)?;
            if !on(listening.total as f64 / SAMPLE_RATE as f64) {
                return Err(SpeechError::Interrupted);
            }
        }
        listening.origin = audio.origin();
        listening.push(&[], true)?;
        let mut heard = listening.heard;
        heard.seconds = listening.total as f64 / SAMPLE_RATE as f64;
        heard.damaged = audio.damaged;
        heard.broken = broken;
        Ok(Some(heard))
    }
}

fn model_error(e: candle_core::Error) -> SpeechError {
    SpeechError::Model(e.to_string())
}

/// One file's sound on its way through: the samples not yet settled, and the stretch of
/// speech being gathered for Whisper.
struct Listening<'e> {
    ear: &'e Ear,
    /// Where a paid service's answers are kept, stretch by stretch.
    kept: Option<&'e Transcripts>,
    settings: String,
    lang: Option<&'e str>,
    stream: vad::Stream<'e>,
    stretches: Stretches,
    /// Samples from `buffer_start` on (counted from the stream's first).
    buffer: Vec<f32>,
    buffer_start: usize,
    total: usize,
    /// Stretches gathered to be read together: first sample, last sample.
    chunk: Option<(usize, usize)>,
    /// Where each stretch of the chunk but its last ended.
    pauses: Vec<usize>,
    heard: Heard,
    origin: f64,
}

impl Listening<'_> {
    fn push(&mut self, samples: &[f32], last: bool) -> Result<(), SpeechError> {
        self.buffer.extend_from_slice(samples);
        self.total += samples.len();
        let probabilities = self.stream.push(samples, last).map_err(model_error)?;
        self.stretches.push(&probabilities);
        if last {
            self.stretches.finish();
        }
        for (start, end) in self.stretches.take() {
            let end = end.min(self.total);
            self.heard.speech_seconds += (end - start) as f64 / SAMPLE_RATE as f64;
            self.gather(start, end)?;
        }
        // A gathered chunk that nothing can join any more is read now, so memory stays flat.
        let settled = self.stretches.settled();
        if let Some((_, end)) = self.chunk {
            if last || settled > end + (JOIN_GAP * SAMPLE_RATE as f64) as usize {
                self.read_chunk()?;
            }
        }
        let keep_from = self.chunk.map_or(settled, |(s, _)| s.min(settled));
        self.forget_before(keep_from);
        Ok(())
    }

    fn gather(&mut self, start: usize, end: usize) -> Result<(), SpeechError> {
        let joins = |(first, last): (usize, usize)| {
            start <= last + (JOIN_GAP * SAMPLE_RATE as f64) as usize
                && end - first <= self.ear.transcriber.longest()
        };
        match self.chunk {
            Some(chunk) if joins(chunk) => {
                self.pauses.push(chunk.1);
                self.chunk = Some((chunk.0, end.max(chunk.1)));
            }
            Some(_) => {
                self.read_chunk()?;
                self.chunk = Some((start, end));
            }
            None => self.chunk = Some((start, end)),
        }
        Ok(())
    }

    fn read_chunk(&mut self) -> Result<(), SpeechError> {
        let Some((start, end)) = self.chunk.take() else {
            return Ok(());
        };
        let from = start.max(self.buffer_start) - self.buffer_start;
        let to = (end.min(self.total) - self.buffer_start).max(from);
        let at = self.origin + (from + self.buffer_start) as f64 / SAMPLE_RATE as f64;
        let first = from + self.buffer_start;
        let pauses: Vec<usize> = std::mem::take(&mut self.pauses)
            .into_iter()
            .filter(|&p| p > first && p < to + self.buffer_start)
            .map(|p| p - first)
            .collect();
        let said = self.transcribe(from, to, &pauses, at)?;
        self.heard.sent_seconds += (to - from) as f64 / SAMPLE_RATE as f64;
        self.heard.utterances.extend(said);
        Ok(())
    }

    /// The samples `from..to` of the buffer, which start `at`, transcribed or as kept.
    fn transcribe(
        &self,
        from: usize,
        to: usize,
        pauses: &[usize],
        at: f64,
    ) -> Result<Vec<Utterance>, SpeechError> {
        let samples = &self.buffer[from..to];
        let transcriber = &self.ear.transcriber;
        let Some(kept) = self.kept else {
            return transcriber.transcribe(samples, pauses, at, self.lang);
        };
        let mut hash = Sha256::new();
        for x in samples {
            hash.update(x.to_le_bytes());
        }
        let sound = format!("stretch {:x}", hash.finalize());
        let key = Transcripts::key(&sound, &self.settings);
        // Kept relative to the stretch, as the same sound may lie elsewhere in another file.
        let shift = |mut u: Utterance, by: f64| {
            u.start += by;
            u.end += by;
            u
        };
        if let Some(said) = kept.cache.get_entry::<Vec<Utterance>>(&key) {
            return Ok(said.into_iter().map(|u| shift(u, at)).collect());
        }
        let said = transcriber.transcribe(samples, pauses, at, self.lang)?;
        let relative: Vec<Utterance> = said.iter().cloned().map(|u| shift(u, -at)).collect();
        let _ = crate::private::create_dir_all(kept.cache.dir())
            .and_then(|()| kept.cache.put_entry(&key, &relative));
        Ok(said)
    }

    fn forget_before(&mut self, sample: usize) {
        if sample > self.buffer_start {
            let n = (sample - self.buffer_start).min(self.buffer.len());
            self.buffer.drain(..n);
            self.buffer_start += n;
        }
    }
}

/// A stretch of speech the index stores: adjacent utterances in one language, up to a phrase.
#[derive(Clone, Debug, PartialEq)]
pub struct Phrase {
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub lang: String,
}

/// Utterances merged while they follow each other within `pause` seconds, in one language,
/// and stay within `longest` seconds.
pub fn phrases(utterances: &[Utterance], pause: f64, longest: f64) -> Vec<Phrase> {
    let mut out: Vec<Phrase> = Vec::new();
    for u in utterances {
        match out.last_mut() {
            Some(p)
                if p.lang == u.lang && u.start - p.end <= pause && u.end - p.start <= longest =>
            {
                p.end = p.end.max(u.end);
                p.text.push(' ');
                p.text.push_str(&u.text);
            }
            _ => out.push(Phrase {
                start: u.start,
                end: u.end,
                text: u.text.clone(),
                lang: u.lang.clone(),
            }),
        }
    }
    out
}

/// Transcripts kept by the sound's content and the settings that heard it, so a file moved,
/// copied, or met by another machine sharing the cache is never transcribed again.
pub struct Transcripts {
    cache: Cache,
}

impl Transcripts {
    /// The caption cache's folder `transcripts`.
    pub fn beside(captions: &Cache) -> Transcripts {
        Transcripts::open(&captions.dir().join("transcripts"))
    }

    /// Transcripts in a folder of their own (created when the first is kept).
    pub fn open(dir: &Path) -> Transcripts {
        Transcripts {
            cache: Cache::lookup_only(dir),
        }
    }

    pub fn key(sound: &str, settings: &str) -> String {
        Cache::key(&crate::caption::cache::KeyParts {
            jpeg: sound.as_bytes(),
            backend: "speech",
            model: settings,
            prompt: "",
            lang: None,
            detail: "",
        })
    }

    pub fn get(&self, key: &str) -> Option<Heard> {
        self.cache.get_entry(key)
    }

    pub fn put(&self, key: &str, heard: &Heard) -> std::io::Result<()> {
        crate::private::create_dir_all(self.cache.dir())?;
        self.cache.put_entry(key, heard)
    }
}

/// Hears `path` through the cache: the transcript kept for its sound and these settings, or
/// a fresh one, kept. None when it has no audio stream; `fresh` says whether it was heard now.
pub fn hear(
    ear: &Ear,
    transcripts: Option<&Transcripts>,
    path: &Path,
    options: &Options,
    on: &dyn Fn(f64) -> bool,
) -> Result<Option<(Heard, bool)>, SpeechError> {
    let key = match transcripts {
        Some(_) => audio::content_key(path, options.stream)?
            .map(|sound| Transcripts::key(&sound, &ear.settings(options))),
        None => None,
    };
    if let (Some(t), Some(key)) = (transcripts, &key) {
        if let Some(heard) = t.get(key) {
            return Ok(Some((heard, false)));
        }
    }
    let Some(heard) = ear.listen_keeping(path, options, transcripts, on)? else {
        return Ok(None);
    };
    // A transcript of a sound that broke off is not kept: a later run hears it again.
    if let (Some(t), Some(key), false) = (transcripts, &key, heard.broken) {
        // A transcript that cannot be kept costs time later, not correctness.
        let _ = t.put(key, &heard);
    }
    Ok(Some((heard, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(start: f64, end: f64, text: &str, lang: &str) -> Utterance {
        Utterance {
            start,
            end,
            text: text.into(),
            lang: lang.into(),
            avg_logprob: -0.2,
            no_speech: 0.01,
        }
    }

    #[test]
    fn utterances_merge_into_phrases_but_never_across_a_pause_or_a_language() {
        let u = [
            said(1.0, 2.0, "The bridge", "en"),
            said(2.2, 3.5, "opens in May.", "en"),
            said(6.0, 7.0, "After a pause.", "en"),
            said(7.1, 8.0, "Guten Tag.", "de"),
        ];
        let p = phrases(&u, 1.0, 15.0);
        let texts: Vec<&str> = p.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(
            texts,
            ["The bridge opens in May.", "After a pause.", "Guten Tag."]
        );
        assert_eq!((p[0].start, p[0].end), (1.0, 3.5));
    }
}
