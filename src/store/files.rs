//! The index's own record of each file it holds. A file's content (its fingerprint) has one
//! record point without vectors, written last, once its segments and places are in: a
//! fingerprint without a record is an unfinished file, done again by the next run. Each path
//! where that content lives, on each machine, is a place point of its own, so that machines
//! add and remove their paths one point at a time and never rewrite each other's.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{file_id, place_id, Condition, Point, StoreError, VectorStore};

/// `record` payload value of a file's record point.
pub const FILE: &str = "file";
/// `record` payload value of a segment point.
pub const SEGMENT: &str = "segment";
/// `record` payload value of a place point.
pub const PLACE: &str = "place";
/// `record` payload value of a lease point.
pub const LEASE: &str = "lease";

/// Where one copy of a file's content lives: a path on one machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Place {
    pub fingerprint: String,
    /// The machine that saw the path: its host name, or `SCENEDEX_HOST`.
    pub host: String,
    /// The path as stored (see [`path_key`]).
    pub path: String,
    /// Modification time there, in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// The file system the file was on when this machine last saw it (`st_dev`): a folder of
    /// it that is now on another one is a disk no longer mounted there. None in places
    /// written before scenedex recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<u64>,
    /// When this machine first found the file gone, in seconds since the Unix epoch: it is
    /// offline since then, kept with everything paid for until it has stayed missing through
    /// `--prune-after`. None while the file is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_since: Option<u64>,
}

impl Place {
    pub fn id(&self) -> u64 {
        place_id(&self.host, &self.path)
    }

    /// The path on this machine's file system, byte for byte.
    pub fn os_path(&self) -> PathBuf {
        key_path(&self.path)
    }

    /// The path for people (bytes that are not UTF-8 shown as U+FFFD).
    pub fn shown(&self) -> String {
        shown(&self.path)
    }

    fn point(&self) -> Point {
        let mut payload = object(self);
        payload.insert("record".into(), PLACE.into());
        payload.insert("dirs".into(), ancestors(&self.path).into());
        Point {
            id: self.id(),
            vectors: None,
            payload,
        }
    }
}

/// What indexing a file's content produced, and what made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileRecord {
    pub fingerprint: String,
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
    /// The file stopped before its declared length when it was indexed (a download still
    /// running): what there was is indexed, and the file is indexed again when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<crate::decode::Truncation>,
    /// Paths as scenedex 0.1 listed them inside the record, before places had points of
    /// their own; read so that such an index keeps its paths until the next run writes places.
    #[serde(default, skip_serializing)]
    pub places: Vec<LegacyPlace>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LegacyPlace {
    pub path: String,
    pub mtime_ns: i64,
}

/// A path as the index stores it: the path itself when it is UTF-8; otherwise `b64:` and its
/// bytes in base64, so that any name a file system allows is kept byte for byte. Stored paths
/// are absolute, so a key that does not start with `/` is always an encoded one.
pub fn path_key(path: &Path) -> String {
    match path.to_str() {
        Some(text) if !text.starts_with("b64:") => text.to_string(),
        _ => format!("b64:{}", BASE64.encode(path.as_os_str().as_bytes())),
    }
}

/// The path a key stands for.
pub fn key_path(key: &str) -> PathBuf {
    match raw_bytes(key) {
        Some(bytes) => PathBuf::from(OsStr::from_bytes(&bytes)),
        None => PathBuf::from(key),
    }
}

/// The bytes of an encoded (not UTF-8) key; None for a plain one.
pub fn raw_bytes(key: &str) -> Option<Vec<u8>> {
    BASE64.decode(key.strip_prefix("b64:")?).ok()
}

/// The path a key stands for, for people.
pub fn shown(key: &str) -> String {
    key_path(key).to_string_lossy().into_owned()
}

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Every folder above the path, as keys: what a folder filter matches.
fn ancestors(key: &str) -> Vec<String> {
    key_path(key)
        .ancestors()
        .skip(1)
        .filter(|d| !d.as_os_str().is_empty())
        .map(path_key)
        .collect()
}

fn object<T: Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value).expect("records serialize") {
        Value::Object(map) => map,
        _ => unreachable!("a struct serializes to an object"),
    }
}

/// Every file record and place in the index, as one machine sees them: lookups by fingerprint
/// and by this machine's paths are hash lookups, so planning an archive of many thousands of
/// files stays linear. Loaded once for planning; writes go to the store point by point.
#[derive(Default)]
pub struct Catalog {
    host: String,
    records: HashMap<String, FileRecord>,
    /// Fingerprint -> its places on every machine.
    places: HashMap<String, Vec<Place>>,
    /// This machine's places, by path key.
    mine: HashMap<String, Place>,
    /// Paths read from records of scenedex 0.1, which named no machine: they belong to none
    /// until a machine sees the file there (and writes a place of its own), so no machine
    /// prunes them. By path key.
    unclaimed: HashMap<String, Place>,
    /// One line for each point that this version cannot read; such points are left alone.
    pub unreadable: Vec<String>,
}

impl Catalog {
    pub fn load(store: &dyn VectorStore, host: &str) -> Result<Catalog, StoreError> {
        let mut catalog = Catalog {
            host: host.to_string(),
            ..Default::default()
        };
        for point in store.scroll(&[Condition::equals("record", PLACE)])? {
            match serde_json::from_value::<Place>(Value::Object(point.payload)) {
                Ok(place) => catalog.add_place(place),
                Err(e) => catalog.skip(point.id, "place", e),
            }
        }
        for point in store.scroll(&[Condition::equals("record", FILE)])? {
            match serde_json::from_value::<FileRecord>(Value::Object(point.payload)) {
                Ok(record) => catalog.add_record(record),
                Err(e) => catalog.skip(point.id, "file record", e),
            }
        }
        Ok(catalog)
    }

    /// A catalog of an index that does not exist yet.
    pub fn empty(host: &str) -> Catalog {
        Catalog {
            host: host.to_string(),
            ..Default::default()
        }
    }

    /// One line about the points this version cannot read, if there are any.
    pub fn unreadable_warning(&self) -> Option<String> {
        let first = self.unreadable.first()?;
        Some(format!(
            "{} points of the index are not this version's to read, and were left alone; first: {first}",
            self.unreadable.len()
        ))
    }

    fn skip(&mut self, id: u64, what: &str, error: serde_json::Error) {
        self.unreadable.push(format!(
            "point {id}: a {what} this version cannot read ({error}); left as it is"
        ));
    }

    fn add_place(&mut self, place: Place) {
        if place.host == self.host {
            self.mine.insert(place.path.clone(), place.clone());
        }
        self.places
            .entry(place.fingerprint.clone())
            .or_default()
            .push(place);
    }

    fn add_record(&mut self, mut record: FileRecord) {
        let legacy = std::mem::take(&mut record.places);
        if !self.places.contains_key(&record.fingerprint) {
            for old in legacy {
                let place = Place {
                    fingerprint: record.fingerprint.clone(),
                    host: String::new(),
                    path: old.path,
                    mtime_ns: old.mtime_ns,
                    dev: None,
                    missing_since: None,
                };
                self.unclaimed.insert(place.path.clone(), place);
            }
        }
        self.records.insert(record.fingerprint.clone(), record);
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn records(&self) -> impl Iterator<Item = &FileRecord> {
        self.records.values()
    }

    pub fn get(&self, fingerprint: &str) -> Option<&FileRecord> {
        self.records.get(fingerprint)
    }

    /// Where this content lives, on every machine.
    pub fn places_of(&self, fingerprint: &str) -> &[Place] {
        self.places.get(fingerprint).map_or(&[], Vec::as_slice)
    }

    /// This machine's place at this path.
    pub fn mine_at(&self, key: &str) -> Option<&Place> {
        self.mine.get(key)
    }

    /// A path of scenedex 0.1's records, which no machine has claimed yet (see `unclaimed`).
    pub fn unclaimed_at(&self, key: &str) -> Option<&Place> {
        self.unclaimed.get(key)
    }

    /// This machine's places.
    pub fn mine(&self) -> impl Iterator<Item = &Place> {
        self.mine.values()
    }

    /// Every place, of every machine.
    pub fn all_places(&self) -> impl Iterator<Item = &Place> {
        self.places.values().flatten()
    }

    /// Paths known only from records of scenedex 0.1, which no machine has claimed yet.
    pub fn unclaimed(&self) -> impl Iterator<Item = &Place> {
        self.unclaimed.values()
    }

    /// The machines that hold paths, sorted.
    pub fn hosts(&self) -> Vec<&str> {
        let mut hosts: Vec<&str> = self.all_places().map(|p| p.host.as_str()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        hosts
    }
}

/// Writes a file's record: the last write of indexing it.
pub fn put_record(store: &dyn VectorStore, record: &FileRecord) -> Result<(), StoreError> {
    let mut payload = object(record);
    payload.insert("record".into(), FILE.into());
    store.upsert(vec![Point {
        id: file_id(&record.fingerprint),
        vectors: None,
        payload,
    }])
}

/// Writes places; a place replaces whatever this machine had at the same path.
pub fn put_places(store: &dyn VectorStore, places: &[Place]) -> Result<(), StoreError> {
    if places.is_empty() {
        return Ok(());
    }
    store.upsert(places.iter().map(Place::point).collect())
}

/// Removes one machine's place at one path.
pub fn drop_place(store: &dyn VectorStore, place: &Place) -> Result<(), StoreError> {
    store.delete(&[Condition::Ids(vec![place.id()])])
}

/// Whether no machine holds this content at any path any more, read from the store itself
/// rather than from a catalog loaded earlier, which another machine may have outdated.
pub fn unplaced(store: &dyn VectorStore, fingerprint: &str) -> Result<bool, StoreError> {
    let count = store.count(&[
        Condition::equals("record", PLACE),
        Condition::equals("fingerprint", fingerprint),
    ])?;
    Ok(count == 0)
}

/// Removes everything of one content but its lease: segments, places, record.
pub fn remove(store: &dyn VectorStore, fingerprint: &str) -> Result<(), StoreError> {
    store.delete(&[
        Condition::equals("fingerprint", fingerprint),
        Condition::AnyOf(
            "record".into(),
            vec![SEGMENT.into(), PLACE.into(), FILE.into()],
        ),
    ])
}

/// The records of these fingerprints that exist, by fingerprint: each as read, or None where
/// this version cannot read it (such a record is still there, and is left alone).
pub fn records_of(
    store: &dyn VectorStore,
    fingerprints: &[String],
) -> Result<HashMap<String, Option<FileRecord>>, StoreError> {
    let by_id: HashMap<u64, &String> = fingerprints.iter().map(|f| (file_id(f), f)).collect();
    let ids: Vec<u64> = by_id.keys().copied().collect();
    Ok(store
        .get(&ids)?
        .into_iter()
        .filter_map(|r| {
            let fingerprint = by_id.get(&r.id)?;
            let record = serde_json::from_value::<FileRecord>(Value::Object(r.payload)).ok();
            Some((fingerprint.to_string(), record))
        })
        .collect())
}

/// The places of these fingerprints, on every machine.
pub fn places_of(
    store: &dyn VectorStore,
    fingerprints: &[String],
) -> Result<Vec<Place>, StoreError> {
    if fingerprints.is_empty() {
        return Ok(Vec::new());
    }
    Ok(store
        .scroll(&[
            Condition::equals("record", PLACE),
            Condition::AnyOf("fingerprint".into(), fingerprints.to_vec()),
        ])?
        .into_iter()
        .filter_map(|r| serde_json::from_value::<Place>(Value::Object(r.payload)).ok())
        .collect())
}

/// The path of a place, if the file there is still the one indexed (as `index` judges it: the
/// same modification time, and the same size where the record's is known); else why not. A
/// file replaced or grown at the same path is not the one the index describes.
pub fn current(place: &Place, size: Option<u64>) -> Result<PathBuf, String> {
    let path = place.os_path();
    match super::fingerprint::stat(&path) {
        Ok(now)
            if now.mtime_ns == place.mtime_ns
                && size.is_none_or(|size| size == now.size)
                && path.is_file() =>
        {
            Ok(path)
        }
        Ok(_) => Err(format!(
            "the file at {} changed since it was indexed; run `scenedex index` on it",
            place.shown()
        )),
        Err(_) => Err(format!("the file is not at {} any more", place.shown())),
    }
}

/// A path as the index writes it: absolute with links resolved, or, for a path that no longer
/// exists (a file to forget), just absolute.
pub fn indexed_form(path: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(path).or_else(|_| std::path::absolute(path))
}

/// The condition on place points that keeps the file at `key`, or every file under it.
pub fn at_or_under(key: &str) -> Condition {
    let key = if key.len() > 1 {
        key.trim_end_matches('/')
    } else {
        key
    };
    Condition::Either(vec![
        Condition::equals("path", key),
        Condition::equals("dirs", key),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_that_are_not_utf8_are_kept_byte_for_byte() {
        let bytes = b"/archive/caf\xe9 2019.mp4";
        let path = Path::new(OsStr::from_bytes(bytes));
        let key = path_key(path);
        assert!(key.starts_with("b64:"), "{key}");
        assert_eq!(key_path(&key).as_os_str().as_bytes(), bytes);
        assert_eq!(shown(&key), "/archive/caf\u{fffd} 2019.mp4");
        assert_eq!(path_key(Path::new("/a/b.mp4")), "/a/b.mp4");
        assert_eq!(key_path("/a/b.mp4"), Path::new("/a/b.mp4"));
    }

    #[test]
    fn every_ancestor_folder_is_a_key_too() {
        assert_eq!(ancestors("/a/b/c.mp4"), ["/a/b", "/a", "/"]);
        let odd = path_key(Path::new(OsStr::from_bytes(b"/x\xff/c.mp4")));
        let dirs = ancestors(&odd);
        assert_eq!(key_path(&dirs[0]).as_os_str().as_bytes(), b"/x\xff");
        assert_eq!(&dirs[1..], ["/"]);
    }

    #[test]
    fn a_record_of_scenedex_0_1_still_reads_with_its_paths() {
        let old = serde_json::json!({
            "fingerprint": "0123456789abcdef0123456789abcdef", "size": 10, "duration": 1.0,
            "frames_sampled": 1, "frames_kept": 1, "frames_captioned": 1, "segments": 1,
            "captioner": "tagger/x", "prompt": "none", "style": "tags", "indexed_at": 1,
            "indexer": "scenedex 0.1.0", "record": "file", "path": "/v/a.mp4",
            "paths": ["/v/a.mp4"], "dirs": ["/v", "/"],
            "places": [{"path": "/v/a.mp4", "mtime_ns": 5}]
        });
        let mut catalog = Catalog {
            host: "here".into(),
            ..Default::default()
        };
        catalog.add_record(serde_json::from_value(old).unwrap());
        assert!(
            catalog.mine_at("/v/a.mp4").is_none(),
            "no machine saw it yet"
        );
        let place = catalog.unclaimed_at("/v/a.mp4").unwrap();
        assert_eq!((place.host.as_str(), place.mtime_ns), ("", 5));
        assert_eq!(catalog.hosts(), Vec::<&str>::new());
    }
}
