//! store: segments as points in Qdrant, one point per segment, with a dense vector of the
//! caption and a BM25 sparse vector of its words, fused at query time (reciprocal rank fusion)
//! so that exact words and paraphrases both find their scene. Each indexed file also has one
//! point without vectors, its record (`files`), so the index alone knows what it holds.

mod edge;
pub mod files;
pub mod fingerprint;
mod server;

use std::path::PathBuf;

pub use edge::EdgeStore;
pub use server::ServerStore;

/// A point to store: segments carry vectors, file records do not.
#[derive(Clone, Debug)]
pub struct Point {
    pub id: u64,
    pub vectors: Option<Vectors>,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

#[derive(Clone, Debug)]
pub struct Vectors {
    /// The caption's embedding (unit length).
    pub dense: Vec<f32>,
    /// The caption's words, for the BM25 vector.
    pub text: String,
}

/// A stored point's id and payload.
#[derive(Clone, Debug)]
pub struct Record {
    pub id: u64,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A search hit: the point, its fused score, and the cosine similarity of its dense vector to
/// the query's (an absolute measure, where the fused score only ranks).
#[derive(Clone, Debug)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
    pub similarity: f32,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// One condition on a payload field; a filter is a list of them that must all hold.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// The field (or one element of an array field) equals the value: a string, bool or integer.
    Equals(String, serde_json::Value),
    /// The numeric field lies within `[min, max]`; either end may be open.
    Between {
        field: String,
        min: Option<f64>,
        max: Option<f64>,
    },
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

/// Payload fields that filters use, and so get an index: (name, kind).
pub const INDEXED_FIELDS: [(&str, FieldKind); 10] = [
    ("record", FieldKind::Keyword),
    ("fingerprint", FieldKind::Keyword),
    ("paths", FieldKind::Keyword),
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

/// Storage backends: the embedded engine, and a Qdrant server.
pub trait VectorStore {
    /// A short name for messages: the index folder, or the server's URL and collection.
    fn describe(&self) -> String;
    /// The embedding model that built the index.
    fn model(&self) -> String;
    /// Inserts or replaces points; the same id twice is one point.
    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError>;
    /// Removes every point that matches.
    fn delete(&self, filter: &[Condition]) -> Result<(), StoreError>;
    /// Sets these payload fields (others are kept) on every point that matches.
    fn set_payload(
        &self,
        filter: &[Condition],
        payload: serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), StoreError>;
    /// Every point that matches, without vectors.
    fn scroll(&self, filter: &[Condition]) -> Result<Vec<Record>, StoreError>;
    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError>;
    fn count(&self, filter: &[Condition]) -> Result<u64, StoreError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Builds search indexes for what was written; a server does this by itself.
    fn optimize(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the index {dir} is in use by process {pid}; wait for it to finish, or use another --index"
    )]
    InUse { dir: PathBuf, pid: String },
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
    #[error("{dir}: {detail}")]
    Io { dir: PathBuf, detail: String },
    #[error("cannot reach the Qdrant server at {url} ({detail}); is it running, and is this its gRPC port (6334 by default)?")]
    Unreachable { url: String, detail: String },
    #[error("the vector store failed: {0}")]
    Engine(String),
}

/// A point id that depends only on the file and the segment's start, so writing the same
/// segment again replaces it instead of adding a second one.
pub fn point_id(fingerprint: &str, start: f64) -> u64 {
    let millis = (start * 1000.0).round() as i64;
    hash_id(&format!("{fingerprint}@{millis}"))
}

/// The id of a file's record point.
pub fn file_id(fingerprint: &str) -> u64 {
    hash_id(&format!("{fingerprint}#file"))
}

pub(crate) fn hash_id(text: &str) -> u64 {
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
    }
}
