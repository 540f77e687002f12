//! store: segments as points in Qdrant, one point per segment, with a dense vector of the
//! caption and a BM25 sparse vector of its words, fused at query time (reciprocal rank fusion)
//! so that exact words and paraphrases both find their scene. Each indexed file also has one
//! point without vectors, its record (`files`), so the index alone knows what it holds.

mod edge;
pub mod files;
pub mod fingerprint;
pub mod held;
mod server;
pub mod words;

use std::path::PathBuf;

pub use qdrant_edge::SparseVector;

pub use edge::{EdgeStore, Shape};
pub use held::Shared;
pub use server::{Cluster, ServerStore};

/// A point to store: segments carry vectors, file records do not.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub id: u64,
    pub vectors: Option<Vectors>,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Vectors {
    /// The caption's embedding (unit length).
    pub dense: Vec<f32>,
    /// The caption's words, for the BM25 vector.
    pub text: String,
    /// Words already made, copied from another index (`reembed`): stored as they are, and
    /// `text` is not read.
    pub words: Option<SparseVector>,
}

impl Vectors {
    pub fn new(dense: Vec<f32>, text: String) -> Vectors {
        Vectors {
            dense,
            text,
            words: None,
        }
    }
}

/// A point as stored, with its words: what `reembed` copies.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stored {
    pub id: u64,
    pub payload: serde_json::Map<String, serde_json::Value>,
    /// The BM25 vector; None for a point without vectors.
    pub words: Option<SparseVector>,
}

/// Points in id order, and the id the next page starts at.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Page {
    pub points: Vec<Stored>,
    pub next: Option<u64>,
}

/// A stored point's id and payload.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub id: u64,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A search hit: the point, its fused score, and the cosine similarity of its dense vector to
/// the query's (an absolute measure, where the fused score only ranks).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
    pub similarity: f32,
    /// Whether the segment's words include one of the query's (after stemming and stopwords):
    /// an exact word on screen or a name is a match whatever the similarity.
    pub shares_words: bool,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// One condition on a payload field; a filter is a list of them that must all hold.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// The field (or one element of an array field) equals the value: a string, bool or integer.
    Equals(String, serde_json::Value),
    /// The numeric field lies within `[min, max]`; either end may be open.
    Between {
        field: String,
        min: Option<f64>,
        max: Option<f64>,
    },
    /// The keyword field (or one element of it) is one of these.
    AnyOf(String, Vec<String>),
    /// The point is one of these.
    Ids(Vec<u64>),
    /// At least one of these holds.
    Either(Vec<Condition>),
}

impl Condition {
    pub fn equals(field: &str, value: impl Into<serde_json::Value>) -> Condition {
        Condition::Equals(field.to_string(), value.into())
    }
}

/// What a search asks for.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub dense: &'a [f32],
    pub text: &'a str,
    pub limit: usize,
    pub filter: Vec<Condition>,
}

/// Dense vectors a segment of the store holds before it gets its HNSW graph, in KB (about
/// 13,000 of MiniLM's): below it a search reads them all in a few milliseconds, above it they
/// are worth a graph. Both stores build graphs as the index grows, a segment at a time, so a
/// big first run never ends with the whole graph to build and is never searched by brute force.
pub const INDEXING_THRESHOLD_KB: usize = 20_000;

/// The largest segment the embedded store makes by merging, in KB of dense vectors (about
/// 130,000 of MiniLM's). A merge copies the segments it joins, so without a cap each new
/// segment's worth would copy the whole index again. The price is one graph per capped
/// segment, searched one after another: nine at a million segments, 10 ms p50 (README).
pub const MAX_SEGMENT_KB: usize = 200_000;

/// Payload fields that filters use, and so get an index: (name, kind).
pub const INDEXED_FIELDS: [(&str, FieldKind); 11] = [
    ("record", FieldKind::Keyword),
    ("fingerprint", FieldKind::Keyword),
    ("host", FieldKind::Keyword),
    ("path", FieldKind::Keyword),
    ("dirs", FieldKind::Keyword),
    ("start", FieldKind::Float),
    ("end", FieldKind::Float),
    ("contains_people", FieldKind::Bool),
    ("contains_text", FieldKind::Bool),
    ("people_count", FieldKind::Integer),
    ("setting", FieldKind::Keyword),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Keyword,
    Float,
    Integer,
    Bool,
}

/// Storage backends: the embedded engine, and a Qdrant server. Several threads of one run use
/// a store at once (workers claim files while the run's thread writes).
pub trait VectorStore: Send + Sync {
    /// A short name for messages: the index folder, or the server's URL and collection.
    fn describe(&self) -> String;
    /// The embedding model that built the index.
    fn model(&self) -> String;
    /// Inserts or replaces points; the same id twice is one point.
    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError>;
    /// Qdrant's conditional upsert: new points are inserted, and a point that exists is
    /// replaced only if it matches `filter`. Ordered strictly against every other write to the
    /// same points, so two processes racing for one point see one winner.
    fn upsert_where(&self, points: Vec<Point>, filter: &[Condition]) -> Result<(), StoreError>;
    /// Replaces the points that exist and match `filter`, and inserts none: a renewal that
    /// must never bring back a point another process removed. A Qdrant server older than the
    /// update modes ignores this and inserts a missing point, so callers read first.
    fn update_where(&self, points: Vec<Point>, filter: &[Condition]) -> Result<(), StoreError>;
    /// These points, as far as they exist, read from a majority of a cluster's replicas.
    fn get(&self, ids: &[u64]) -> Result<Vec<Record>, StoreError>;
    /// The distinct values of a keyword field over the points that match.
    fn distinct(&self, field: &str, filter: &[Condition]) -> Result<Vec<String>, StoreError>;
    /// Removes every point that matches.
    fn delete(&self, filter: &[Condition]) -> Result<(), StoreError>;
    /// Every point that matches, without vectors.
    fn scroll(&self, filter: &[Condition]) -> Result<Vec<Record>, StoreError>;
    /// Up to `limit` points in id order from `from` on (the whole store), each with its
    /// payload and words but not its dense vector.
    fn page(&self, from: Option<u64>, limit: usize) -> Result<Page, StoreError>;
    /// The points that match, nearest the query first. Only points with vectors (segments)
    /// can be hits.
    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError>;
    fn count(&self, filter: &[Condition]) -> Result<u64, StoreError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Builds search indexes for what was written and is over the indexing threshold; a
    /// server does this by itself, and the embedded store as it goes, so this is what is left.
    fn optimize(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum StoreError {
    #[error(
        "the index {dir} is in use by process {pid}; wait for it to finish, or use another --index"
    )]
    InUse { dir: PathBuf, pid: String },
    /// Held by a process that answers no others: an older scenedex, or another program.
    #[error(
        "the index {dir} is held by process {pid} ({program}), which answers no other command (an older scenedex, or another program); wait for it to finish, or use another --index"
    )]
    HeldSilently {
        dir: PathBuf,
        pid: String,
        program: String,
    },
    /// The process that held the index stopped answering, and none took its place in time.
    #[error("the process holding the index {dir} stopped answering ({detail}); run again")]
    HolderGone { dir: PathBuf, detail: String },
    #[error(
        "the index {place} was built with {built_with} ({built_dimension} dimensions), not {asked} \
         ({asked_dimension}); use the same embedding model, or another index"
    )]
    ModelMismatch {
        place: String,
        built_with: String,
        built_dimension: usize,
        asked: String,
        asked_dimension: usize,
    },
    #[error("the index {0} does not exist yet; run `scenedex index PATH` first")]
    Missing(String),
    #[error("{0} holds other files and no scenedex index; --index names the folder the index is kept in, not the videos: give it a new or empty folder, or leave it out")]
    NotAnIndex(PathBuf),
    #[error("{dir}: {detail}")]
    Io { dir: PathBuf, detail: String },
    #[error("cannot reach the Qdrant server at {url} ({detail}); is it running, and is this its gRPC port (6334 by default)?")]
    Unreachable { url: String, detail: String },
    #[error("the Qdrant server at {url} refused the API key; set QDRANT_API_KEY to the key the server was started with")]
    KeyRefused { url: String },
    #[error("{dir}: the disk is full ({detail}); free some space and run again: what was written before is kept")]
    DiskFull { dir: PathBuf, detail: String },
    #[error("the vector store failed: {0}")]
    Engine(String),
    /// A write that could not finish before this process's hold on the file lapsed
    /// (`with_deadline`): it was given up, and the file is another indexer's now.
    #[error("a write to the index could not finish while this indexer held the file")]
    Late,
}

thread_local! {
    static DEADLINE: std::cell::Cell<Option<std::time::Instant>> = const { std::cell::Cell::new(None) };
}

/// Runs `work` with its store requests on this thread given up at `deadline` (`StoreError::Late`)
/// instead of waiting out a server's full patience: a write of a file must finish while its
/// writer holds the file's lease. A request the server already took may still land; this
/// narrows the window from a request's whole patience to the hold's end.
pub fn with_deadline<T>(deadline: std::time::Instant, work: impl FnOnce() -> T) -> T {
    /// Puts the deadline before back however `work` ends.
    struct Restore(Option<std::time::Instant>);
    impl Drop for Restore {
        fn drop(&mut self) {
            DEADLINE.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(DEADLINE.with(|d| d.replace(Some(deadline))));
    work()
}

/// This thread's deadline, if it has one.
fn deadline() -> Option<std::time::Instant> {
    DEADLINE.with(|d| d.get())
}

/// A point id that depends only on the file and the segment's start, so writing the same
/// segment again replaces it instead of adding a second one.
pub fn point_id(fingerprint: &str, start: f64) -> u64 {
    hash_id(&format!("{fingerprint}@{}", millis(start)))
}

/// A time as whole milliseconds, the unit of point ids and thumbnail names. Signed: a frame a
/// file shows before its start keeps a time, and an id, of its own.
pub fn millis(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

/// The id of a file's record point.
pub fn file_id(fingerprint: &str) -> u64 {
    hash_id(&format!("{fingerprint}#file"))
}

/// The id of the lease point through which one indexer at a time works on a file.
pub fn lease_id(fingerprint: &str) -> u64 {
    hash_id(&format!("{fingerprint}#lease"))
}

/// The id of a shared answer's point: one caption cache key.
pub fn answer_id(key: &str) -> u64 {
    hash_id(&format!("{key}#answer"))
}

/// The id of a place point: one path of one machine.
pub fn place_id(host: &str, path: &str) -> u64 {
    // Length-prefixed, so no host and path pair hashes like another.
    hash_id(&format!("place#{}#{host}#{path}", host.len()))
}

/// A model's name as part of a folder or collection name: lower case letters, digits and `-`.
pub fn slug(name: &str) -> String {
    name.chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '-',
        })
        .collect()
}

pub fn hash_id(text: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    u64::from_le_bytes(digest[..8].try_into().expect("a digest has 32 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_ids_are_stable_and_distinct_per_millisecond() {
        assert_eq!(point_id("f", 1.0), point_id("f", 1.0004));
        assert_ne!(point_id("f", 1.0), point_id("f", 1.001));
        assert_ne!(point_id("f", 1.0), point_id("g", 1.0));
        assert_ne!(point_id("f", 0.0), file_id("f"));
        assert_ne!(point_id("f", -0.04), point_id("f", 0.0));
        assert_ne!(point_id("f", -0.04), point_id("f", 0.04));
        assert_ne!(file_id("f"), lease_id("f"));
        assert_ne!(place_id("a#b", "/c"), place_id("a", "b#/c"));
    }
}
