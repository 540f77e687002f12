//! store: segments as points in Qdrant, one point per segment, with a dense vector of the
//! caption and a BM25 sparse vector of its words, fused at query time (reciprocal rank fusion)
//! so that exact words and paraphrases both find their scene.

mod edge;

use std::path::PathBuf;

pub use edge::EdgeStore;

/// A segment ready to store.
#[derive(Clone, Debug)]
pub struct SegmentPoint {
    pub id: u64,
    /// The caption's embedding (unit length).
    pub dense: Vec<f32>,
    /// The caption's text, for the BM25 vector.
    pub text: String,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// A search hit: the point and its fused score.
#[derive(Clone, Debug)]
pub struct Hit {
    pub id: u64,
    pub score: f32,
    pub payload: serde_json::Map<String, serde_json::Value>,
}

/// What a search asks for.
#[derive(Clone, Debug)]
pub struct Query<'a> {
    pub dense: &'a [f32],
    pub text: &'a str,
    pub limit: usize,
    /// Payload fields that must hold exactly these values (keyword or bool fields).
    pub equals: Vec<(&'a str, serde_json::Value)>,
}

/// Storage backends: the embedded engine, and a Qdrant server.
pub trait VectorStore {
    /// Inserts or replaces points; the same id twice is one point.
    fn upsert(&self, points: Vec<SegmentPoint>) -> Result<(), StoreError>;
    /// Removes every point whose payload `field` equals `value`.
    fn delete_where(&self, field: &str, value: &str) -> Result<(), StoreError>;
    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError>;
    fn count(&self) -> Result<u64, StoreError>;
    /// Makes everything written so far durable.
    fn flush(&self) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the index {dir} is in use by process {pid}; wait for it to finish, or use another --index"
    )]
    InUse { dir: PathBuf, pid: String },
    #[error(
        "the index {dir} was built with {built_with} ({built_dimension} dimensions), not {asked} \
         ({asked_dimension}); use the same embedding model, or another --index"
    )]
    ModelMismatch {
        dir: PathBuf,
        built_with: String,
        built_dimension: usize,
        asked: String,
        asked_dimension: usize,
    },
    #[error("the index {0} does not exist yet; run `scenedex index` first")]
    Missing(PathBuf),
    #[error("{dir}: {detail}")]
    Io { dir: PathBuf, detail: String },
    #[error("the vector store failed: {0}")]
    Engine(String),
}

/// A point id that depends only on the file and the segment's start, so writing the same
/// segment again replaces it instead of adding a second one.
pub fn point_id(fingerprint: &str, start: f64) -> u64 {
    use sha2::{Digest, Sha256};
    let millis = (start * 1000.0).round() as i64;
    let digest = Sha256::digest(format!("{fingerprint}@{millis}").as_bytes());
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
    }
}
