//! index: bringing an index up to date. `plan` decides what each file found needs, `lease`
//! lets several indexers share one collection without doing a file twice, `run` carries a
//! whole run out, and this module takes one video through the pipeline: decode → sample →
//! dedup → caption → embed → segment, into segment points and thumbnails.

pub mod answers;
pub mod batch;
mod file;
pub mod lease;
pub mod plan;
pub mod run;
pub mod speech;
pub mod thumbs;
pub mod watch;

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::caption::cache::Cache;
use crate::caption::run::{Settings, Totals};
use crate::caption::{encode, Caption, CaptionError, Captioner, Encoded, Kind, Picture};
use crate::decode::{DecodeError, Truncation};
use crate::dedup::{DedupConfig, Deduper, FrameRecord, Verdict};
use crate::embed::{EmbedError, Embedder};
use crate::sample::{Reason, SampleConfig, Sampler};
use crate::segment::{segments, Moment, Segment, SegmentConfig};
use crate::store::files::SEGMENT;
use crate::store::Point;
use thumbs::Thumbs;

/// Recorded in every point, so an index can tell which release wrote what.
pub const INDEXER: &str = concat!("scenedex ", env!("CARGO_PKG_VERSION"));

/// Everything the pipeline needs, shared by the files in flight.
#[derive(Clone)]
pub struct Pipeline<'a> {
    pub sampling: SampleConfig,
    pub dedup: DedupConfig,
    pub picture: Picture,
    pub captioner: &'a dyn Captioner,
    pub settings: &'a Settings<'a>,
    pub cache: Option<&'a Cache>,
    pub embedder: &'a dyn Embedder,
    pub segmenting: SegmentConfig,
    pub thumbs: Thumbs,
    /// What is said is heard too, when set.
    pub hearing: Option<speech::Hearing<'a>>,
}

/// How far one file has got, for a progress bar.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Decoding: seconds reached, of the duration when known.
    Sampling {
        at: f64,
        duration: Option<f64>,
    },
    /// Captioning: pictures done of the total.
    Captioning {
        done: u64,
        total: u64,
    },
    Embedding,
    /// The file is done with, one way or another.
    Done,
}

/// A file turned into segment points, and what it took.
#[derive(Debug)]
pub struct Indexed {
    pub points: Vec<Point>,
    pub stats: FileStats,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct FileStats {
    pub duration: f64,
    pub frames_sampled: u64,
    pub frames_kept: u64,
    pub frames_captioned: u64,
    #[serde(flatten)]
    pub captioning: Totals,
    pub segments: u64,
    /// The file stops before its declared length: what there is was indexed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
    /// Frames left out for an implausible time (`decode::PLAUSIBLE`).
    #[serde(skip_serializing_if = "is_zero")]
    pub implausible: u64,
    /// Segments of what is said, among `segments`.
    pub speech_segments: u64,
    /// Seconds of sound transcribed now (none when the transcript was cached).
    pub transcribed_seconds: f64,
    /// Of them, seconds of speech sent to the transcriber (what a service charges for).
    pub sent_seconds: f64,
    /// Why what is said could not be heard, though the pictures were indexed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unheard: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{failed} of {total} frames could not be captioned; first: {first}")]
    Caption {
        failed: u64,
        total: u64,
        first: CaptionError,
        /// What the file cost before it failed: its other frames were paid for and cached.
        spent: Box<FileStats>,
    },
    #[error("cannot prepare a frame: {0}")]
    Picture(CaptionError),
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error("cannot write the thumbnail {path}: {source}")]
    Thumbnail {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Store(#[from] crate::store::StoreError),
    /// The transcription service failed: the file is tried again on the next run (its
    /// pictures' captions are in the cache).
    #[error("what is said could not be transcribed: {error}")]
    Transcribe {
        error: CaptionError,
        /// What the file's pictures cost: they were captioned and cached.
        spent: Box<FileStats>,
    },
    /// The local speech model could not be used: the file is tried again on the next run.
    #[error("what is said could not be heard: {error}")]
    Hear {
        error: String,
        /// What the file's pictures cost: they were captioned and cached.
        spent: Box<FileStats>,
    },
    #[error("interrupted")]
    Interrupted,
}

/// A frame on the timeline: kept (with its picture as sent) or uninformative.
pub struct Frame {
    pub time: f64,
    /// The stretch of timeline it stands for.
    pub span: (f64, f64),
    pub starts_shot: bool,
    /// Its picture in `Timeline::pictures`, when it is kept.
    pub picture: Option<usize>,
}

/// A video sampled and deduplicated: its timeline and the pictures worth captioning, encoded
/// as they will be sent. `caption` and `index` both start here.
pub struct Timeline {
    pub frames: Vec<Frame>,
    pub pictures: Vec<Encoded>,
    /// Seconds of video: the declared duration, or the timeline's end if that is later.
    pub duration: f64,
    pub frames_sampled: u64,
    /// The file stops before the length its container declares.
    pub truncated: Option<Truncation>,
    /// Frames left out for an implausible time.
    pub implausible: u64,
}

/// Frames in the order of the timeline, with the kept pictures among them, handed on as a
/// window fills: `index` captions one window while the next is sampled, so a file's pictures
/// are never all held at once.
#[derive(Default)]
pub struct Window {
    pub frames: Vec<Frame>,
    /// The file's picture number of `pictures[0]`; `Frame::picture` counts from the file's start.
    pub first: usize,
    pub pictures: Vec<Encoded>,
    /// Frames sampled for this window, duplicates included.
    pub sampled: u64,
}

/// What sampling a whole file tells, beyond its windows.
pub struct Sampled {
    /// Seconds of video: the declared duration, or the timeline's end if that is later.
    pub duration: f64,
    pub frames_sampled: u64,
    pub truncated: Option<Truncation>,
    pub implausible: u64,
}

/// Decodes and samples one video, reporting how far it got, and hands each window of `size`
/// kept pictures to `each` as it fills (the last may hold fewer).
pub fn sample_windows(
    path: &Path,
    sampling: SampleConfig,
    dedup: DedupConfig,
    picture: Picture,
    on: &(dyn Fn(Progress) + Sync),
    size: usize,
    each: &mut dyn FnMut(Window) -> Result<(), FileError>,
) -> Result<Sampled, FileError> {
    let mut sampler = Sampler::open(path, sampling)?;
    let duration = sampler.info().duration;
    let mut deduper = Deduper::new(dedup);
    let mut gather = Gather {
        window: Window::default(),
        picture,
        sampled: 0,
    };
    while let Some(sample) = sampler.next_sample()? {
        on(Progress::Sampling {
            at: sample.time,
            duration,
        });
        gather.take(deduper.push(sample))?;
        if gather.window.pictures.len() >= size {
            each(gather.cut())?;
        }
    }
    let end = sampler.timeline_end();
    gather.take(deduper.finish(end))?;
    each(gather.cut())?;
    let truncated = sampler.truncation();
    Ok(Sampled {
        // A truncated file lasts as long as what there is of it.
        duration: match truncated {
            Some(_) => end,
            None => duration.unwrap_or(end).max(end),
        },
        frames_sampled: gather.sampled,
        truncated,
        implausible: sampler.decoder().stats().implausible,
    })
}

/// Decodes and samples one video whole, reporting how far it got.
pub fn sample(
    path: &Path,
    sampling: SampleConfig,
    dedup: DedupConfig,
    picture: Picture,
    on: &(dyn Fn(Progress) + Sync),
) -> Result<Timeline, FileError> {
    let (mut frames, mut pictures) = (Vec::new(), Vec::new());
    let sampled = sample_windows(path, sampling, dedup, picture, on, usize::MAX, &mut |w| {
        frames.extend(w.frames);
        pictures.extend(w.pictures);
        Ok(())
    })?;
    Ok(Timeline {
        frames,
        pictures,
        duration: sampled.duration,
        frames_sampled: sampled.frames_sampled,
        truncated: sampled.truncated,
        implausible: sampled.implausible,
    })
}

/// Deduplicated records becoming the frames and pictures of the window being filled.
struct Gather {
    window: Window,
    picture: Picture,
    sampled: u64,
}

impl Gather {
    fn take(&mut self, records: Vec<FrameRecord>) -> Result<(), FileError> {
        for record in records {
            let w = &mut self.window;
            w.sampled += 1;
            let index = match record.verdict {
                Verdict::Duplicate { .. } => continue,
                Verdict::Uninformative { .. } => None,
                Verdict::Kept => {
                    let encoded =
                        encode(&record.image, self.picture).map_err(FileError::Picture)?;
                    w.pictures.push(encoded);
                    Some(w.first + w.pictures.len() - 1)
                }
            };
            w.frames.push(Frame {
                time: record.time,
                span: record.span,
                starts_shot: matches!(record.reason, Reason::First | Reason::Scene),
                picture: index,
            });
        }
        Ok(())
    }

    /// The window so far; the next one numbers its pictures on from it.
    fn cut(&mut self) -> Window {
        self.sampled += self.window.sampled;
        let next = Window {
            first: self.window.first + self.window.pictures.len(),
            ..Window::default()
        };
        std::mem::replace(&mut self.window, next)
    }
}

impl Pipeline<'_> {
    /// The file sampled as indexing samples it, its pictures handed on in the same windows:
    /// for an estimate, or a batch, that never holds a whole file's pictures.
    pub fn windows(
        &self,
        path: &Path,
        each: &mut dyn FnMut(Window) -> Result<(), FileError>,
    ) -> Result<Sampled, FileError> {
        let size = file::window_size(self.settings.concurrency);
        sample_windows(
            path,
            self.sampling,
            self.dedup,
            self.picture,
            &|_| {},
            size,
            each,
        )
    }

    /// One vector per caption; None for a caption that must not be searchable.
    fn embed(&self, captions: &[Caption]) -> Result<Vec<Option<Vec<f32>>>, FileError> {
        if captions.is_empty() {
            return Ok(Vec::new());
        }
        // A tagger that found nothing confident leaves no words: nothing to search for.
        let (searchable, texts): (Vec<usize>, Vec<String>) = (0..captions.len())
            .filter(|&i| captions[i].kind.searchable())
            .map(|i| (i, searchable_text(&captions[i])))
            .filter(|(_, text)| !text.is_empty())
            .unzip();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let mut vectors = self.embedder.embed(&refs)?.into_iter();
        let mut out = vec![None; captions.len()];
        for i in searchable {
            out[i] = vectors.next();
        }
        Ok(out)
    }
}

/// The words a caption contributes to search: a tagger's confidence numbers are left out.
pub fn searchable_text(caption: &Caption) -> String {
    readable(&caption.text, caption.kind)
}

/// A caption's text for reading and searching: a tagger's labels without their confidences.
pub fn readable(text: &str, kind: Kind) -> String {
    if kind != Kind::Tags {
        return text.to_string();
    }
    let mut lines = Vec::new();
    for line in text.lines() {
        let Some(tags) = line.strip_prefix("tags:") else {
            lines.push(line.trim().to_string());
            continue;
        };
        // "dog (0.53), swimming pool (0.12)" → "dog, swimming pool"
        let labels: Vec<&str> = tags
            .split(',')
            .map(|t| t.split(" (").next().unwrap_or("").trim())
            .filter(|t| !t.is_empty() && !t.starts_with('('))
            .collect();
        if !labels.is_empty() {
            lines.push(labels.join(", "));
        }
    }
    lines.join("\n")
}

/// The BM25 text of a segment: every distinct caption of its frames, so a word seen in one of
/// them (a name on screen) finds the whole segment.
fn words(members: &[&Caption]) -> String {
    let texts: Vec<String> = distinct_texts(members)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    texts.join("\n")
}

/// Each distinct searchable text of a segment's frames, in order, and how many frames say it:
/// the segment's vector is the normalized sum of theirs, which `reembed` makes again from
/// these without the pictures.
fn distinct_texts(members: &[&Caption]) -> Vec<(String, usize)> {
    let mut texts: Vec<(String, usize)> = Vec::new();
    for caption in members {
        let text = searchable_text(caption);
        match texts.iter_mut().find(|(t, _)| *t == text) {
            Some((_, frames)) => *frames += 1,
            None => texts.push((text, 1)),
        }
    }
    texts
}

/// The texts a segment's vector is made of, as stored (`"texts"`): `[{"text", "frames"}]`.
pub fn texts_field(members: &[&Caption]) -> Value {
    distinct_texts(members)
        .into_iter()
        .map(|(text, frames)| json!({"text": text, "frames": frames}))
        .collect()
}

fn payload(
    segment: &Segment,
    frames: &[Frame],
    members: &[&Caption],
    representative: &Caption,
    fingerprint: &str,
    thumbnail: &Path,
) -> Map<String, Value> {
    let round = |t: f64| (t * 1e6).round() / 1e6;
    let times: Vec<f64> = segment
        .moments
        .iter()
        .map(|&m| round(frames[m].time))
        .collect();
    let mut map = json!({
        "record": SEGMENT,
        "fingerprint": fingerprint,
        "start": round(segment.start),
        "end": round(segment.end),
        "caption": representative.text,
        "kind": representative.kind,
        "frames": times,
        "style": style_of(representative),
        "backend": representative.backend,
        "model": representative.model,
        "prompt": representative.prompt,
        "lang": representative.lang,
        "thumbnail": thumbnail.to_string_lossy(),
        "indexer": INDEXER,
        "texts": texts_field(members),
    });
    let map_mut = map.as_object_mut().expect("an object");
    map_mut.extend(moderation(members, representative));
    map.as_object().expect("an object").clone()
}

/// The prompt id is the style's name (`search@1` → `search`); a tagger answers no prompt.
fn style_of(caption: &Caption) -> String {
    match caption.kind {
        Kind::Tags => "tags".into(),
        _ => caption.prompt.split('@').next().unwrap_or("").to_string(),
    }
}

/// Moderation fields over the whole segment: people or text seen in any frame, the largest
/// head count, and the representative frame's setting.
fn moderation(members: &[&Caption], representative: &Caption) -> Map<String, Value> {
    let answers: Vec<_> = members
        .iter()
        .filter_map(|c| c.moderation.as_ref())
        .collect();
    let mut map = Map::new();
    if answers.is_empty() {
        return map;
    }
    let mut texts: Vec<&str> = Vec::new();
    for a in &answers {
        if !a.visible_text.is_empty() && !texts.contains(&a.visible_text.as_str()) {
            texts.push(&a.visible_text);
        }
    }
    map.insert(
        "contains_people".into(),
        answers.iter().any(|a| a.contains_people).into(),
    );
    map.insert(
        "people_count".into(),
        answers
            .iter()
            .map(|a| a.people_count)
            .max()
            .unwrap_or(0)
            .into(),
    );
    map.insert(
        "contains_text".into(),
        answers.iter().any(|a| a.contains_text).into(),
    );
    map.insert("visible_text".into(), texts.join(" / ").into());
    if let Some(m) = &representative.moderation {
        map.insert("setting".into(), m.setting.clone().into());
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caption(text: &str, kind: Kind) -> Caption {
        Caption {
            text: text.into(),
            kind,
            moderation: None,
            backend: "tagger".into(),
            model: "m".into(),
            prompt: "search@1".into(),
            lang: None,
            usage: Default::default(),
        }
    }

    #[test]
    fn tagger_confidences_are_not_searchable_words() {
        let tags = caption(
            "tags: dog (0.53), swimming pool (0.12)\ntext: \"EXIT\"",
            Kind::Tags,
        );
        assert_eq!(searchable_text(&tags), "dog, swimming pool\ntext: \"EXIT\"");
        let nothing = caption("tags: (none confident)", Kind::Tags);
        assert_eq!(searchable_text(&nothing), "");
        let description = caption("A dog (a poodle) swims.", Kind::Description);
        assert_eq!(searchable_text(&description), "A dog (a poodle) swims.");
    }

    #[test]
    fn a_segment_is_searchable_by_every_distinct_caption_of_its_frames() {
        let a = caption("a red door", Kind::Description);
        let b = caption("a sign reads EXIT", Kind::Description);
        assert_eq!(words(&[&a, &b, &a]), "a red door\na sign reads EXIT");
    }
}
