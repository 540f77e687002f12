//! `scenedex reembed`: an index's segments embedded again by another model, without decoding,
//! captioning or hearing anything. Every point is copied into a new shard (embedded) or a new
//! collection (server) beside the old one: segments get the new model's vectors of the texts
//! they were made of and keep their words as they are; records, places and shared answers are
//! copied as they are. Once the copy is whole the index switches to it in one step, and only
//! then is the old one removed. Stopped or killed, a second run goes on where the first left:
//! what the new index holds already is not embedded again.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde_json::{Map, Value};

use crate::backends::{SetupError, StoreSettings};
use crate::caption::Kind;
use crate::embed::{normalize, EmbedError, Embedder};
use crate::store::files::SEGMENT;
use crate::store::{
    Condition, EdgeStore, Point, ServerStore, StoreError, Stored, VectorStore, Vectors,
};

/// Points read, embedded and written at a time.
const PAGE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ReembedError {
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{}{}", .0, again(.0))]
    Embed(#[from] EmbedError),
    #[error("the index {place} is already embedded with {model}")]
    Same { place: String, model: String },
    #[error(
        "{files} file(s) of {place} are being indexed (by {hosts}); run reembed once they are done"
    )]
    Busy {
        place: String,
        files: usize,
        hosts: String,
    },
    #[error("stopped; run the same command again to go on where it stopped")]
    Stopped,
}

/// The advice after a failure to embed: to run again, where a second run may get past it (a
/// service, a computation), not where it cannot (a model missing or broken).
fn again(e: &EmbedError) -> &'static str {
    match e {
        EmbedError::Compute(_) | EmbedError::Remote(_) => {
            "; run the same command again to go on where it stopped"
        }
        _ => "",
    }
}

/// How far a run has come, for a progress bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Segments in the new index, of `total`.
    pub done: u64,
    pub total: u64,
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Summary {
    pub index: String,
    pub from: String,
    pub to: String,
    /// Segments the new index holds.
    pub segments: u64,
    /// Of those, found already embedded by a run before this one.
    pub resumed: u64,
    /// Texts this run embedded.
    pub texts_embedded: u64,
    /// Segments made before indexes kept their texts, embedded from their caption alone.
    pub from_caption_only: u64,
    /// Records, places and shared answers copied.
    pub other_points: u64,
    pub seconds: f64,
}

/// The old index and the new one being filled.
// One per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Pair {
    Edge(EdgeStore, EdgeStore),
    Server(ServerStore, ServerStore),
}

impl Pair {
    fn old(&self) -> &dyn VectorStore {
        match self {
            Pair::Edge(old, _) => old,
            Pair::Server(old, _) => old,
        }
    }

    fn target(&self) -> &dyn VectorStore {
        match self {
            Pair::Edge(_, new) => new,
            Pair::Server(_, new) => new,
        }
    }

    fn switch(self) -> Result<(), StoreError> {
        match self {
            Pair::Edge(old, new) => old.switch(new),
            Pair::Server(old, new) => old.switch(new),
        }
    }
}

/// Embeds the index `settings` name again with `embedder`, and switches it over.
pub fn run(
    settings: &StoreSettings,
    embedder: &dyn Embedder,
    progress: &mut dyn FnMut(Progress),
) -> Result<Summary, ReembedError> {
    let started = Instant::now();
    let to = (embedder.model(), embedder.dimension());
    let pair = open(settings, (to.0, to.1))?;
    let mut summary = Summary {
        index: pair.old().describe(),
        from: pair.old().model(),
        to: to.0.to_string(),
        ..Summary::default()
    };
    let segment = [Condition::equals("record", SEGMENT)];
    let total = pair.old().count(&segment)?;
    let resuming = pair.target().count(&[])? > 0;
    let mut done = pair.target().count(&segment)?;
    progress(Progress { done, total });
    pass(&pair, embedder, &mut summary, &mut |written| {
        done = (done + written).min(total);
        progress(Progress { done, total });
    })?;
    // The old index may have changed since a run before this one copied part of it (embedded:
    // an `index` run between the two), and a server's while this one copied (a place marked
    // offline by a planning run): a second pass copies what changed, and what the old one no
    // longer holds goes.
    if resuming || settings.is_server() {
        let mut again = Summary::default();
        let kept = pass(&pair, embedder, &mut again, &mut |_| {})?;
        summary.texts_embedded += again.texts_embedded;
        summary.other_points += again.other_points;
        remove_gone(&pair, &kept)?;
    }
    if settings.is_server() {
        // Checked again last: an indexer that began since would lose what it writes next.
        idle(pair.old())?;
    }
    summary.segments = pair.target().count(&segment)?;
    pair.switch()?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Copies every page of the old index that the new one lacks or holds otherwise; returns the
/// ids of the old one's points.
fn pass(
    pair: &Pair,
    embedder: &dyn Embedder,
    summary: &mut Summary,
    written: &mut dyn FnMut(u64),
) -> Result<HashSet<u64>, ReembedError> {
    let mut seen = HashSet::new();
    let mut from = None;
    loop {
        if crate::stop::requested() {
            return Err(ReembedError::Stopped);
        }
        let page = pair.old().page(from, page_size())?;
        seen.extend(page.points.iter().map(|p| p.id));
        let segments = copy(&page.points, pair.target(), embedder, summary)?;
        // The embedded engine keeps only what was flushed through a kill: each page's work is
        // kept before the next is begun.
        pair.target().flush()?;
        written(segments);
        fail::fail_point!("reembed-after-page", |_| {
            // A test kills the process here: it says so, then waits.
            eprintln!("reembed: paused");
            std::thread::sleep(std::time::Duration::from_secs(600));
            Err(ReembedError::Stopped)
        });
        match page.next {
            Some(next) => from = Some(next),
            None => return Ok(seen),
        }
    }
}

/// Removes from the new index what the old one no longer holds.
fn remove_gone(pair: &Pair, kept: &HashSet<u64>) -> Result<(), ReembedError> {
    let mut gone = Vec::new();
    let mut from = None;
    loop {
        let page = pair.target().page(from, page_size())?;
        gone.extend(
            page.points
                .iter()
                .filter(|p| !kept.contains(&p.id))
                .map(|p| p.id),
        );
        match page.next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    // A server's own meta point is the new collection's.
    let meta = crate::store::hash_id("scenedex#meta");
    gone.retain(|&id| id != meta);
    for chunk in gone.chunks(1000) {
        pair.target().delete(&[Condition::Ids(chunk.to_vec())])?;
    }
    Ok(())
}

/// Points per page: `PAGE`, or what a test asks for.
fn page_size() -> usize {
    fail::fail_point!("reembed-page-size", |size| size
        .and_then(|s| s.parse().ok())
        .unwrap_or(PAGE));
    PAGE
}

/// The old index and the new one for `to`.
fn open(settings: &StoreSettings, to: (&str, usize)) -> Result<Pair, ReembedError> {
    let same = |old: &dyn VectorStore| -> Result<(), ReembedError> {
        match old.model() == to.0 {
            true => Err(ReembedError::Same {
                place: old.describe(),
                model: to.0.to_string(),
            }),
            false => Ok(()),
        }
    };
    if !settings.is_server() {
        let old = EdgeStore::open(&settings.index_dir()?, None, false)?;
        same(&old)?;
        let new = old.next(to.0, to.1)?;
        return Ok(Pair::Edge(old, new));
    }
    let key = settings.qdrant_key();
    let old = ServerStore::open(
        &settings.qdrant_urls,
        key.as_ref(),
        &settings.collection,
        None,
        None,
    )?;
    same(&old)?;
    // Before the new collection is made: a refusal leaves nothing behind.
    idle(&old)?;
    let new = old.next(to.0, to.1)?;
    Ok(Pair::Server(old, new))
}

/// Fails while another machine indexes into the collection: what it wrote after the copy
/// would be lost with the old collection.
fn idle(store: &dyn VectorStore) -> Result<(), ReembedError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let live: Vec<Map<String, Value>> = store
        .scroll(&[Condition::equals("record", crate::store::files::LEASE)])?
        .into_iter()
        .map(|r| r.payload)
        .filter(|p| p.get("expires").and_then(Value::as_f64).unwrap_or(0.0) > now)
        .collect();
    if live.is_empty() {
        return Ok(());
    }
    let hosts: HashSet<&str> = live
        .iter()
        .filter_map(|p| p.get("host").and_then(Value::as_str))
        .collect();
    let mut hosts: Vec<&str> = hosts.into_iter().collect();
    hosts.sort_unstable();
    Err(ReembedError::Busy {
        place: store.describe(),
        files: live.len(),
        hosts: hosts.join(", "),
    })
}

/// Writes the page's points that `new` lacks, or holds with another payload; returns how many
/// segments it wrote.
fn copy(
    points: &[Stored],
    new: &dyn VectorStore,
    embedder: &dyn Embedder,
    summary: &mut Summary,
) -> Result<u64, ReembedError> {
    let ids: Vec<u64> = points.iter().map(|p| p.id).collect();
    let present: HashMap<u64, Map<String, Value>> = new
        .get(&ids)?
        .into_iter()
        .map(|r| (r.id, r.payload))
        .collect();
    let same = |p: &Stored| present.get(&p.id) == Some(&p.payload);
    let wanted: Vec<&Stored> = points.iter().filter(|p| !same(p) && copied(p)).collect();
    summary.resumed += points.iter().filter(|p| is_segment(p) && same(p)).count() as u64;
    write(&wanted, new, embedder, summary)
}

/// Embeds what `points` say and writes them to `new`; returns the segments written.
fn write(
    points: &[&Stored],
    new: &dyn VectorStore,
    embedder: &dyn Embedder,
    summary: &mut Summary,
) -> Result<u64, ReembedError> {
    let made: Vec<Option<Vec<(String, usize)>>> = points
        .iter()
        .map(|p| is_segment(p).then(|| texts_of(&p.payload)))
        .collect();
    summary.from_caption_only += points
        .iter()
        .filter(|p| is_segment(p) && !p.payload.contains_key("texts") && !is_speech(p))
        .count() as u64;
    let mut distinct: Vec<&str> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (text, _) in made.iter().flatten().flatten() {
        if !index.contains_key(text.as_str()) {
            index.insert(text, distinct.len());
            distinct.push(text);
        }
    }
    let vectors = match distinct.is_empty() {
        true => Vec::new(),
        false => embedder.embed(&distinct)?,
    };
    summary.texts_embedded += distinct.len() as u64;
    let mut out = Vec::with_capacity(points.len());
    let mut segments = 0;
    for (point, texts) in points.iter().zip(&made) {
        let vectors = texts.as_ref().map(|texts| {
            segments += 1;
            let mut dense = vec![0.0; embedder.dimension()];
            for (text, frames) in texts {
                let v = &vectors[index[text.as_str()]];
                let weight = *frames as f32;
                dense.iter_mut().zip(v).for_each(|(d, x)| *d += weight * x);
            }
            normalize(&mut dense);
            let text = texts
                .iter()
                .map(|(t, _)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            Vectors {
                dense,
                text,
                words: point.words.clone(),
            }
        });
        out.push(Point {
            id: point.id,
            vectors,
            payload: point.payload.clone(),
        });
    }
    summary.other_points += out.len() as u64 - segments;
    if !out.is_empty() {
        new.upsert(out)?;
    }
    Ok(segments)
}

/// A speech segment's vector is its text's alone.
fn is_speech(point: &Stored) -> bool {
    point.payload.get("kind").and_then(Value::as_str) == Some("speech")
}

fn is_segment(point: &Stored) -> bool {
    point.payload.get("record").and_then(Value::as_str) == Some(SEGMENT)
}

/// Every point but a lease (a claim of the old index's, live or left by a crash) and a
/// server's meta point, which the new collection has its own of.
fn copied(point: &Stored) -> bool {
    !matches!(
        point.payload.get("record").and_then(Value::as_str),
        Some("meta") | Some(crate::store::files::LEASE)
    )
}

/// The texts a segment's vector was made of, and how many frames said each: as recorded, or
/// for a segment written before they were, its caption.
fn texts_of(payload: &Map<String, Value>) -> Vec<(String, usize)> {
    if let Some(Value::Array(texts)) = payload.get("texts") {
        let texts: Vec<(String, usize)> = texts
            .iter()
            .filter_map(|t| {
                let text = t.get("text")?.as_str()?.to_string();
                let frames = t.get("frames").and_then(Value::as_u64).unwrap_or(1) as usize;
                Some((text, frames.max(1)))
            })
            .collect();
        if !texts.is_empty() {
            return texts;
        }
    }
    let caption = payload.get("caption").and_then(Value::as_str).unwrap_or("");
    let kind: Kind = payload
        .get("kind")
        .cloned()
        .and_then(|k| serde_json::from_value(k).ok())
        .unwrap_or(Kind::Description);
    vec![(crate::index::readable(caption, kind), 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_s_texts_are_read_with_their_frames() {
        let payload = serde_json::json!({
            "caption": "a dog",
            "texts": [{"text": "a dog", "frames": 3}, {"text": "a dog swims", "frames": 1}],
        });
        let texts = texts_of(payload.as_object().unwrap());
        assert_eq!(
            texts,
            vec![("a dog".to_string(), 3), ("a dog swims".to_string(), 1)]
        );
    }

    #[test]
    fn a_segment_written_before_texts_were_kept_is_its_caption_s_words() {
        let payload = serde_json::json!({
            "caption": "tags: dog (0.53), swimming pool (0.12)",
            "kind": "tags",
        });
        let texts = texts_of(payload.as_object().unwrap());
        assert_eq!(texts, vec![("dog, swimming pool".to_string(), 1)]);
    }
}
