//! search: a text query against the index. The query is embedded with the model that built
//! the index, both retrievers (meaning and exact words) run under the same filters, and the
//! fused ranking comes back, optionally cut by similarity and capped per file.

use crate::embed::{EmbedError, Embedder};
use crate::store::files::{indexed_form, SEGMENT};
use crate::store::{Condition, Hit, Query, StoreError, VectorStore};

/// Candidates fetched per hit wanted when some will be dropped (by similarity or per file).
const OVERFETCH: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct Request {
    pub query: String,
    pub limit: usize,
    /// At most this many hits from one file.
    pub per_file: Option<usize>,
    /// Hits less similar than this (cosine, -1 to 1) to the query are dropped.
    pub min_similarity: Option<f32>,
    pub filter: Vec<Condition>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the query is empty; say what the scene shows, e.g. scenedex search \"a dog jumps into a pool\"")]
    EmptyQuery,
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The best segments for the request, best first.
pub fn search(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    request: &Request,
) -> Result<Vec<Hit>, SearchError> {
    let text = request.query.trim();
    if text.is_empty() {
        return Err(SearchError::EmptyQuery);
    }
    let dense = embedder.embed(&[text])?.remove(0);
    let mut filter = vec![Condition::equals("record", SEGMENT)];
    filter.extend(request.filter.iter().cloned());
    let dropping = request.per_file.is_some() || request.min_similarity.is_some();
    let fetch = if dropping {
        request.limit * OVERFETCH
    } else {
        request.limit
    };
    let hits = store.search(&Query {
        dense: &dense,
        text,
        limit: fetch,
        filter,
    })?;
    Ok(keep(hits, request))
}

/// Applies the similarity floor and the per-file cap, then the limit.
fn keep(hits: Vec<Hit>, request: &Request) -> Vec<Hit> {
    let mut per_file: std::collections::HashMap<String, usize> = Default::default();
    hits.into_iter()
        .filter(|h| request.min_similarity.is_none_or(|m| h.similarity >= m))
        .filter(|h| {
            let Some(cap) = request.per_file else {
                return true;
            };
            let path = h.payload.get("path").and_then(|p| p.as_str()).unwrap_or("");
            let seen = per_file.entry(path.to_string()).or_default();
            *seen += 1;
            *seen <= cap
        })
        .take(request.limit)
        .collect()
}

/// The condition that keeps segments of one file, or of every file under a folder.
pub fn under(path: &std::path::Path) -> Condition {
    let absolute = indexed_form(path).unwrap_or_else(|_| path.to_path_buf());
    let field = if absolute.is_file() { "paths" } else { "dirs" };
    let text = absolute.to_string_lossy().trim_end_matches('/').to_string();
    let text = if text.is_empty() {
        "/".to_string()
    } else {
        text
    };
    Condition::equals(field, text)
}

/// The condition that keeps segments overlapping `[from, to]` seconds of their file.
pub fn overlapping(from: Option<f64>, to: Option<f64>) -> Vec<Condition> {
    let mut conditions = Vec::new();
    if from.is_some() {
        conditions.push(Condition::Between {
            field: "end".into(),
            min: from,
            max: None,
        });
    }
    if to.is_some() {
        conditions.push(Condition::Between {
            field: "start".into(),
            min: None,
            max: to,
        });
    }
    conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hit(path: &str, similarity: f32) -> Hit {
        Hit {
            id: 0,
            score: 0.0,
            similarity,
            payload: json!({ "path": path }).as_object().unwrap().clone(),
        }
    }

    #[test]
    fn per_file_caps_each_file_and_the_limit_counts_what_is_left() {
        let hits = vec![
            hit("a", 0.9),
            hit("a", 0.8),
            hit("a", 0.7),
            hit("b", 0.6),
            hit("c", 0.5),
        ];
        let request = Request {
            limit: 3,
            per_file: Some(1),
            ..Default::default()
        };
        let kept: Vec<String> = keep(hits, &request)
            .iter()
            .map(|h| h.payload["path"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kept, ["a", "b", "c"]);
    }

    #[test]
    fn hits_below_the_similarity_floor_are_dropped() {
        let request = Request {
            limit: 10,
            min_similarity: Some(0.65),
            ..Default::default()
        };
        assert_eq!(keep(vec![hit("a", 0.9), hit("b", 0.6)], &request).len(), 1);
    }

    #[test]
    fn a_folder_filter_matches_ancestors_and_a_file_filter_matches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.mp4");
        std::fs::write(&file, b"x").unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        assert_eq!(
            under(dir.path()),
            Condition::equals("dirs", root.to_string_lossy().as_ref())
        );
        assert_eq!(
            under(&file),
            Condition::equals("paths", root.join("x.mp4").to_string_lossy().as_ref())
        );
    }
}
