//! The batches sent and not yet collected: one small JSON file each, in `batches/` beside the
//! caption cache, written atomically. A file lock makes "which pictures are already in a
//! batch" and "record this batch" one step for every process sharing the cache.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Batcher, Settings};
use crate::caption::cache::Cache;
use crate::caption::Style;

/// One batch, or one about to be created (no id yet).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Record {
    #[serde(default = "openai")]
    pub backend: String,
    /// The API's base URL ("" in records of scenedex 0.1, which only knew OpenAI).
    #[serde(default)]
    pub endpoint: String,
    /// Names the batch where the provider keeps a name, and the record's file.
    #[serde(default)]
    pub tag: String,
    #[serde(default, alias = "batch_id")]
    pub id: Option<String>,
    /// A create that did not answer, with batches that may be it: which one carries these
    /// requests is told by their answers, once they end.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<String>,
    /// The cache keys the batch answers, which are also its requests' custom ids.
    pub keys: Vec<String>,
    /// When the create was sent, in Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// How the answers are read and recorded.
    #[serde(default = "search")]
    pub style: Style,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub prompt: String,
    #[serde(default)]
    pub lang: Option<String>,
}

fn openai() -> String {
    "openai".into()
}

fn search() -> Style {
    Style::Search
}

impl Record {
    pub fn new(
        batcher: &dyn Batcher,
        settings: &Settings,
        keys: Vec<String>,
        created: u64,
    ) -> Record {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(std::process::id().to_le_bytes());
        hash.update(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
                .to_le_bytes(),
        );
        hash.update(keys[0].as_bytes());
        Record {
            backend: batcher.captioner().backend().to_string(),
            endpoint: batcher.endpoint().to_string(),
            tag: format!("scenedex-{}", &format!("{:x}", hash.finalize())[..24]),
            id: None,
            candidates: Vec::new(),
            keys,
            created,
            style: settings.style,
            model: batcher.captioner().model().to_string(),
            prompt: settings.prompt.tag(),
            lang: settings.lang.map(str::to_string),
        }
    }
}

pub struct Ledger {
    dir: PathBuf,
    backend: String,
    endpoint: String,
}

impl Ledger {
    pub fn new(cache: &Cache, batcher: &dyn Batcher) -> Ledger {
        Ledger {
            dir: cache.dir().join("batches"),
            backend: batcher.captioner().backend().to_string(),
            endpoint: batcher.endpoint().to_string(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn dir_created(&self) -> std::io::Result<&Path> {
        crate::private::create_dir_all(&self.dir)?;
        Ok(&self.dir)
    }

    /// This endpoint's records, oldest first; files that cannot be read are left alone.
    pub fn records(&self) -> Result<Vec<(PathBuf, Record)>, super::CaptionError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(super::CaptionError::Ledger(format!(
                    "{}: {e}",
                    self.dir.display()
                )))
            }
        };
        let mut records: Vec<(PathBuf, Record)> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .filter_map(|path| {
                let mut record: Record =
                    serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
                if record.tag.is_empty() {
                    record.tag = path.file_stem()?.to_string_lossy().into_owned();
                }
                Some((path, record))
            })
            .filter(|(_, r)| {
                r.backend == self.backend && (r.endpoint == self.endpoint || r.endpoint.is_empty())
            })
            .collect();
        records.sort_by_key(|(_, r)| r.created);
        Ok(records)
    }

    /// Writes a record whole (a temporary file renamed), synced before it counts.
    pub fn write(&self, record: &Record) -> std::io::Result<PathBuf> {
        let path = self.dir_created()?.join(format!("{}.json", record.tag));
        let temporary = self
            .dir
            .join(format!(".{}.{}.tmp", record.tag, std::process::id()));
        let file = std::fs::File::create(&temporary)?;
        serde_json::to_writer(&file, record).expect("records serialize");
        file.sync_all()?;
        std::fs::rename(&temporary, &path)?;
        Ok(path)
    }

    pub fn remove(&self, path: &Path) {
        let _ = std::fs::remove_file(path);
    }

    /// Held while a process checks what is in a batch and records a new one.
    pub fn lock(&self) -> std::io::Result<std::fs::File> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir_created()?.join("lock"))?;
        file.lock()?;
        Ok(file)
    }
}
