//! What a file says, as segment points beside its picture segments: heard (or found in the
//! transcript cache), merged into phrases, embedded by the index's embedder, and shown with
//! the picture of the scene they fall in.

use std::path::Path;

use serde_json::{json, Map, Value};

use super::{FileError, INDEXER};
use crate::embed::Embedder;
use crate::speech::{self, Ear, Heard, Options, Phrase, SpeechError, Transcripts};
use crate::store::files::SEGMENT;
use crate::store::{hash_id, millis, Point, Vectors};

/// Utterances this close merge into one phrase, up to this long.
const PAUSE: f64 = 1.5;
const LONGEST: f64 = 20.0;

/// The speech stage's models and settings, shared by the files in flight.
#[derive(Clone, Copy)]
pub struct Hearing<'a> {
    pub ear: &'a Ear,
    pub options: &'a Options,
    pub transcripts: Option<&'a Transcripts>,
}

/// What hearing a file gave.
#[derive(Debug, Default)]
pub struct Listened {
    pub heard: Heard,
    /// Transcribed now, not taken from the cache.
    pub fresh: bool,
}

impl Hearing<'_> {
    /// The file's transcript; an empty one when it has no sound. `go_on` is asked between
    /// packets whether the file is still wanted.
    pub fn hear(&self, path: &Path, go_on: &dyn Fn() -> bool) -> Result<Listened, SpeechError> {
        let stop = |_: f64| go_on();
        match speech::hear(self.ear, self.transcripts, path, self.options, &stop)? {
            Some((heard, fresh)) => Ok(Listened { heard, fresh }),
            None => Ok(Listened::default()),
        }
    }

    /// Recorded with every speech segment: which model heard it, and how.
    pub fn settings(&self) -> String {
        self.ear.settings(self.options)
    }
}

/// A speech segment's id: its own, apart from a picture segment that starts at the same time.
pub fn point_id(fingerprint: &str, start: f64) -> u64 {
    hash_id(&format!("{fingerprint}@{}#speech", millis(start)))
}

/// The phrases heard, as points; each shows the picture of the picture segment it starts in.
pub fn points(
    heard: &Heard,
    fingerprint: &str,
    embedder: &dyn Embedder,
    hearing: &Hearing,
    pictures: &[Point],
) -> Result<Vec<Point>, FileError> {
    let phrases = speech::phrases(&heard.utterances, PAUSE, LONGEST);
    if phrases.is_empty() {
        return Ok(Vec::new());
    }
    let texts: Vec<&str> = phrases.iter().map(|p| p.text.as_str()).collect();
    let vectors = embedder.embed(&texts)?;
    let settings = hearing.settings();
    Ok(phrases
        .iter()
        .zip(vectors)
        .map(|(phrase, dense)| Point {
            id: point_id(fingerprint, phrase.start),
            vectors: Some(Vectors::new(dense, phrase.text.clone())),
            payload: payload(
                phrase,
                fingerprint,
                (hearing.ear.backend(), &hearing.ear.model()),
                &settings,
                pictures,
            ),
        })
        .collect())
}

fn payload(
    phrase: &Phrase,
    fingerprint: &str,
    (backend, model): (&str, &str),
    settings: &str,
    pictures: &[Point],
) -> Map<String, Value> {
    let round = |t: f64| (t * 1e6).round() / 1e6;
    let mut map = json!({
        "record": SEGMENT,
        "fingerprint": fingerprint,
        "start": round(phrase.start),
        "end": round(phrase.end),
        "caption": phrase.text,
        "kind": "speech",
        "frames": [],
        "style": "speech",
        "backend": backend,
        "model": model,
        "prompt": settings,
        "lang": phrase.lang,
        "indexer": INDEXER,
    });
    if let Some(thumbnail) = picture_at(pictures, phrase.start) {
        map["thumbnail"] = thumbnail;
    }
    map.as_object().expect("an object").clone()
}

/// The thumbnail of the picture segment showing at `time`, else the last one before it.
fn picture_at(pictures: &[Point], time: f64) -> Option<Value> {
    let start = |p: &Point| p.payload.get("start").and_then(Value::as_f64);
    pictures
        .iter()
        .filter(|p| start(p).is_some_and(|s| s <= time))
        .max_by(|a, b| start(a).unwrap_or(0.0).total_cmp(&start(b).unwrap_or(0.0)))
        .or_else(|| {
            pictures
                .iter()
                .min_by(|a, b| start(a).unwrap_or(0.0).total_cmp(&start(b).unwrap_or(0.0)))
        })
        .and_then(|p| p.payload.get("thumbnail").cloned())
}
