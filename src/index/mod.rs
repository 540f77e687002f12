//! index: bringing an index up to date. `plan` decides what each file found needs, `lease`
//! lets several indexers share one collection without doing a file twice, `run` carries a
//! whole run out, and this module takes one video through the pipeline: decode → sample →
//! dedup → caption → embed → segment, into segment points and thumbnails.

pub mod batch;
pub mod lease;
pub mod plan;
pub mod run;
pub mod thumbs;

use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::caption::cache::Cache;
use crate::caption::run::{caption_all, Settings, Totals};
use crate::caption::{encode, Caption, CaptionError, Captioner, Encoded, Kind, Picture};
use crate::decode::{DecodeError, Truncation};
use crate::dedup::{DedupConfig, Deduper, FrameRecord, Verdict};
use crate::embed::{normalize, EmbedError, Embedder};
use crate::sample::{Reason, SampleConfig, Sampler};
use crate::segment::{segments, Moment, Segment, SegmentConfig};
use crate::store::files::SEGMENT;
use crate::store::{point_id, Point, Vectors};
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

#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
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

/// Decodes and samples one video, reporting how far it got.
pub fn sample(
    path: &Path,
    sampling: SampleConfig,
    dedup: DedupConfig,
    picture: Picture,
    on: &(dyn Fn(Progress) + Sync),
) -> Result<Timeline, FileError> {
    let mut sampler = Sampler::open(path, sampling)?;
    let duration = sampler.info().duration;
    let mut deduper = Deduper::new(dedup);
    let (mut frames, mut pictures, mut sampled) = (Vec::new(), Vec::new(), 0);
    let mut take = |records: Vec<FrameRecord>| -> Result<(), FileError> {
        for record in records {
            sampled += 1;
            let index = match record.verdict {
                Verdict::Duplicate { .. } => continue,
                Verdict::Uninformative { .. } => None,
                Verdict::Kept => {
                    let encoded = encode(&record.image, picture).map_err(FileError::Picture)?;
                    pictures.push(encoded);
                    Some(pictures.len() - 1)
                }
            };
            frames.push(Frame {
                time: record.time,
                span: record.span,
                starts_shot: matches!(record.reason, Reason::First | Reason::Scene),
                picture: index,
            });
        }
        Ok(())
    };
    while let Some(sample) = sampler.next_sample()? {
        on(Progress::Sampling {
            at: sample.time,
            duration,
        });
        take(deduper.push(sample))?;
    }
    let end = sampler.timeline_end();
    take(deduper.finish(end))?;
    let truncated = sampler.truncation();
    Ok(Timeline {
        frames,
        pictures,
        // A truncated file lasts as long as what there is of it.
        duration: match truncated {
            Some(_) => end,
            None => duration.unwrap_or(end).max(end),
        },
        frames_sampled: sampled,
        truncated,
        implausible: sampler.decoder().stats().implausible,
    })
}

impl Pipeline<'_> {
    /// Turns one file into segment points.
    pub fn run(
        &self,
        path: &Path,
        fingerprint: &str,
        on: &(dyn Fn(Progress) + Sync),
    ) -> Result<Indexed, FileError> {
        let Timeline {
            frames,
            pictures,
            duration,
            frames_sampled,
            truncated,
            implausible,
        } = sample(path, self.sampling, self.dedup, self.picture, on)?;
        let mut stats = FileStats {
            duration,
            frames_sampled,
            truncated,
            implausible,
            frames_kept: pictures.len() as u64,
            ..Default::default()
        };
        let total = pictures.len() as u64;
        let done = std::sync::atomic::AtomicU64::new(0);
        let tick = || {
            let done = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            on(Progress::Captioning { done, total });
        };
        let (outcomes, totals) =
            caption_all(&pictures, self.captioner, self.settings, self.cache, &tick);
        if crate::stop::requested() {
            return Err(FileError::Interrupted);
        }
        stats.captioning = totals;
        stats.frames_captioned = total;
        let mut captions = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome.caption {
                Ok(caption) => captions.push(caption),
                Err(first) => {
                    return Err(FileError::Caption {
                        failed: totals.failures,
                        total,
                        first,
                        spent: Box::new(stats),
                    })
                }
            }
        }
        on(Progress::Embedding);
        let vectors = self.embed(&captions)?;
        let moments: Vec<Moment> = frames
            .iter()
            .map(|f| Moment {
                time: f.time,
                span: f.span,
                starts_shot: f.starts_shot,
                vector: f.picture.and_then(|i| vectors[i].as_deref()),
            })
            .collect();
        let found = segments(&moments, self.segmenting);
        stats.segments = found.len() as u64;
        let mut points = Vec::with_capacity(found.len());
        for segment in &found {
            let member = |m: usize| frames[m].picture.expect("segments hold kept frames");
            let representative = member(segment.representative);
            let thumbnail =
                self.thumbnail(fingerprint, segment.start, &pictures[representative])?;
            let mut dense = vec![0.0; self.embedder.dimension()];
            for &m in &segment.moments {
                let v = vectors[member(m)]
                    .as_ref()
                    .expect("segments hold searchable frames");
                dense.iter_mut().zip(v).for_each(|(d, x)| *d += x);
            }
            normalize(&mut dense);
            let members: Vec<&Caption> = segment
                .moments
                .iter()
                .map(|&m| &captions[member(m)])
                .collect();
            points.push(Point {
                id: point_id(fingerprint, segment.start),
                vectors: Some(Vectors {
                    dense,
                    text: words(&members),
                }),
                payload: payload(
                    segment,
                    &frames,
                    &members,
                    &captions[representative],
                    fingerprint,
                    &thumbnail,
                ),
            });
        }
        Ok(Indexed { points, stats })
    }

    /// The file sampled as indexing would sample it, for an estimate of its pictures.
    pub fn timeline(&self, path: &Path) -> Result<Timeline, FileError> {
        sample(path, self.sampling, self.dedup, self.picture, &|_| {})
    }

    /// One vector per caption; None for a caption that must not be searchable.
    fn embed(&self, captions: &[Caption]) -> Result<Vec<Option<Vec<f32>>>, FileError> {
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

    /// Writes the segment's picture, as sent to the captioner, as its thumbnail.
    fn thumbnail(
        &self,
        fingerprint: &str,
        start: f64,
        picture: &Encoded,
    ) -> Result<PathBuf, FileError> {
        self.thumbs
            .write(fingerprint, start, &picture.jpeg)
            .map_err(|(path, source)| FileError::Thumbnail { path, source })
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
    let mut texts: Vec<String> = Vec::new();
    for caption in members {
        let text = searchable_text(caption);
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    texts.join("\n")
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
