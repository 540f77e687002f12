//! The index's own record of each file it holds: one point without vectors per file content
//! (fingerprint), listing every path where that content lives. It is written last, once all
//! of a file's segments are in, so a file without a record is one whose indexing did not
//! finish, and it is done again.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{file_id, Condition, Point, StoreError, VectorStore};

/// `record` payload value of a file's record point.
pub const FILE: &str = "file";
/// `record` payload value of a segment point.
pub const SEGMENT: &str = "segment";

/// Where one copy of the content lives, and its modification time there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub path: String,
    pub mtime_ns: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub fingerprint: String,
    pub places: Vec<Place>,
    pub size: u64,
    /// Seconds of video.
    pub duration: f64,
    pub frames_sampled: u64,
    pub frames_kept: u64,
    pub frames_captioned: u64,
    pub segments: u64,
    /// `backend/model` of the captioner.
    pub captioner: String,
    /// `id@version` of the prompt.
    pub prompt: String,
    pub style: String,
    /// Seconds since the Unix epoch.
    pub indexed_at: u64,
    pub indexer: String,
}

impl FileRecord {
    pub fn paths(&self) -> Vec<String> {
        self.places.iter().map(|p| p.path.clone()).collect()
    }
}

/// Every file record in the index.
pub fn all(store: &dyn VectorStore) -> Result<Vec<FileRecord>, StoreError> {
    store
        .scroll(&[Condition::equals("record", FILE)])?
        .into_iter()
        .map(|r| {
            serde_json::from_value(Value::Object(r.payload))
                .map_err(|e| StoreError::Engine(format!("a file record is unreadable: {e}")))
        })
        .collect()
}

/// Writes the record, and puts its paths on every segment of the file.
pub fn put(store: &dyn VectorStore, record: &FileRecord) -> Result<(), StoreError> {
    let mut payload = match serde_json::to_value(record).expect("records serialize") {
        Value::Object(map) => map,
        _ => unreachable!("a struct serializes to an object"),
    };
    payload.insert("record".into(), FILE.into());
    payload.extend(location(&record.paths()));
    store.upsert(vec![Point {
        id: file_id(&record.fingerprint),
        vectors: None,
        payload,
    }])?;
    store.set_payload(
        &[
            Condition::equals("fingerprint", record.fingerprint.as_str()),
            Condition::equals("record", SEGMENT),
        ],
        location(&record.paths()),
    )
}

/// Every file record of an index, by fingerprint and by path, kept in step with the store.
/// Lookups are by hash, so planning an archive of many thousands of files stays linear.
#[derive(Default)]
pub struct Catalog {
    records: HashMap<String, FileRecord>,
    /// Path -> fingerprints of the records that list it (normally one).
    claims: HashMap<String, Vec<String>>,
}

impl Catalog {
    pub fn load(store: &dyn VectorStore) -> Result<Catalog, StoreError> {
        let mut catalog = Catalog::default();
        for record in all(store)? {
            catalog.remember(record);
        }
        Ok(catalog)
    }

    pub fn records(&self) -> impl Iterator<Item = &FileRecord> {
        self.records.values()
    }

    pub fn get(&self, fingerprint: &str) -> Option<&FileRecord> {
        self.records.get(fingerprint)
    }

    /// The records that list this path.
    pub fn at(&self, path: &str) -> impl Iterator<Item = &FileRecord> {
        self.claims
            .get(path)
            .into_iter()
            .flatten()
            .filter_map(|f| self.records.get(f))
    }

    /// Every path listed, in no particular order.
    pub fn paths(&self) -> impl Iterator<Item = &String> {
        self.claims.keys()
    }

    /// Stores a new or updated record and remembers it.
    pub fn insert(
        &mut self,
        store: &dyn VectorStore,
        record: FileRecord,
    ) -> Result<(), StoreError> {
        put(store, &record)?;
        self.forget_claims(&record.fingerprint);
        self.remember(record);
        Ok(())
    }

    /// Takes a path away from every file but the one with fingerprint `keep` (its content there
    /// has changed, or is gone). Files left with no path are removed; their fingerprints are
    /// returned.
    pub fn detach(
        &mut self,
        store: &dyn VectorStore,
        path: &str,
        keep: &str,
    ) -> Result<Vec<String>, StoreError> {
        let holders: Vec<String> = self
            .claims
            .get(path)
            .into_iter()
            .flatten()
            .filter(|f| f.as_str() != keep)
            .cloned()
            .collect();
        let mut emptied = Vec::new();
        for fingerprint in holders {
            let Some(mut record) = self.records.get(&fingerprint).cloned() else {
                continue;
            };
            record.places.retain(|p| p.path != path);
            if record.places.is_empty() {
                remove(store, &fingerprint)?;
                self.forget_claims(&fingerprint);
                self.records.remove(&fingerprint);
                emptied.push(fingerprint);
            } else {
                self.insert(store, record)?;
            }
        }
        Ok(emptied)
    }

    fn remember(&mut self, record: FileRecord) {
        for place in &record.places {
            self.claims
                .entry(place.path.clone())
                .or_default()
                .push(record.fingerprint.clone());
        }
        self.records.insert(record.fingerprint.clone(), record);
    }

    fn forget_claims(&mut self, fingerprint: &str) {
        let Some(old) = self.records.get(fingerprint) else {
            return;
        };
        for place in &old.places {
            if let Some(holders) = self.claims.get_mut(&place.path) {
                holders.retain(|f| f != fingerprint);
                if holders.is_empty() {
                    self.claims.remove(&place.path);
                }
            }
        }
    }
}

/// Removes a file's segments and its record.
pub fn remove(store: &dyn VectorStore, fingerprint: &str) -> Result<(), StoreError> {
    store.delete(&[Condition::equals("fingerprint", fingerprint)])
}

/// A path as the index writes it: absolute with links resolved, or, for a path that no longer
/// exists (a file to forget), just absolute.
pub fn indexed_form(path: &std::path::Path) -> std::io::Result<std::path::PathBuf> {
    std::fs::canonicalize(path).or_else(|_| std::path::absolute(path))
}

/// The payload fields that say where a file is: its first path (`path`), every path (`paths`)
/// and every folder above them (`dirs`), which is what a path-prefix filter matches.
pub fn location(paths: &[String]) -> Map<String, Value> {
    let mut dirs: Vec<String> = Vec::new();
    for path in paths {
        for dir in std::path::Path::new(path).ancestors().skip(1) {
            let dir = dir.to_string_lossy().into_owned();
            if !dir.is_empty() && !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    let mut map = Map::new();
    map.insert(
        "path".into(),
        paths.first().cloned().unwrap_or_default().into(),
    );
    map.insert("paths".into(), paths.into());
    map.insert("dirs".into(), dirs.into());
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ancestor_folder_of_every_path_is_listed_once() {
        let map = location(&["/a/b/c.mp4".into(), "/a/d/c.mp4".into()]);
        assert_eq!(map["path"], "/a/b/c.mp4");
        assert_eq!(map["dirs"], serde_json::json!(["/a/b", "/a", "/", "/a/d"]));
    }
}
