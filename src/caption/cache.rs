//! The caption cache: one small JSON file per (picture, backend, model, prompt@version,
//! language, detail), so that a repeated or interrupted run pays for nothing twice.
//!
//! Files are written under a temporary name, synced and renamed into place: a crash leaves
//! either the whole entry or none, never a torn one, and a damaged entry reads as a miss.
//!
//! Machines that index into one Qdrant server rarely share a file system: there the answers
//! also travel with the index (`Shared`), looked up after this cache and written beside it, so
//! a picture every machine meets (a station ident, a slate) is paid for once.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, OnceLock};

use sha2::{Digest, Sha256};

use super::Caption;

pub struct Cache {
    dir: PathBuf,
    /// Keys being asked about now, by any file in flight in this process.
    asking: Mutex<HashSet<String>>,
    answered: Condvar,
    /// Answers shared with other machines, when the index is on a server.
    shared: OnceLock<Box<dyn Shared>>,
}

/// Answers kept where every machine of an index finds them, with short claims so that two
/// machines meeting a new picture at once pay for it once. A failure to reach them is a miss
/// (paying is better than stopping), said once by the implementation.
pub trait Shared: Send + Sync {
    fn get(&self, key: &str) -> Option<Caption>;
    fn put(&self, key: &str, caption: &Caption);
    /// Claims the picture for a while: false while another machine holds it.
    fn claim(&self, key: &str) -> bool;
    fn release(&self, key: &str);
}

/// Holds a key while its picture is asked about; other askers of the key wait, then find the
/// answer in the cache instead of paying for it again.
pub struct Asking<'a> {
    cache: &'a Cache,
    key: String,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        let mut asking = self.cache.asking.lock().unwrap_or_else(|e| e.into_inner());
        asking.remove(&self.key);
        self.cache.answered.notify_all();
    }
}

/// Everything that makes two requests give the same caption.
pub struct KeyParts<'a> {
    pub jpeg: &'a [u8],
    pub backend: &'a str,
    pub model: &'a str,
    pub prompt: &'a str,
    pub lang: Option<&'a str>,
    pub detail: &'a str,
}

impl Cache {
    pub fn open(dir: &Path) -> std::io::Result<Cache> {
        crate::private::create_dir_all(dir)?;
        Ok(Self::lookup_only(dir))
    }

    /// A cache to look answers up in, without creating its folder: for a dry run, which
    /// writes nothing.
    pub fn lookup_only(dir: &Path) -> Cache {
        Cache {
            dir: dir.to_path_buf(),
            asking: Mutex::new(HashSet::new()),
            answered: Condvar::new(),
            shared: OnceLock::new(),
        }
    }

    /// Shares answers through `shared` too, from now on (once).
    pub fn share(&self, shared: Box<dyn Shared>) {
        let _ = self.shared.set(shared);
    }

    pub fn shared(&self) -> Option<&dyn Shared> {
        self.shared.get().map(Box::as_ref)
    }

    /// `ask` for a future: waits without blocking its thread, on which other requests of the
    /// same run are in flight (one of which may hold a key another file waits for).
    pub async fn ask_async(&self, key: &str) -> Asking<'_> {
        loop {
            {
                let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
                if asking.insert(key.to_string()) {
                    return Asking {
                        cache: self,
                        key: key.to_string(),
                    };
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Waits until no one else in this process is asking about `key`, then holds it: two files
    /// in flight with the same picture pay for it once (single flight).
    pub fn ask(&self, key: &str) -> Asking<'_> {
        let mut asking = self.asking.lock().unwrap_or_else(|e| e.into_inner());
        while asking.contains(key) {
            asking = self
                .answered
                .wait(asking)
                .unwrap_or_else(|e| e.into_inner());
        }
        asking.insert(key.to_string());
        Asking {
            cache: self,
            key: key.to_string(),
        }
    }

    /// `$XDG_CACHE_HOME/scenedex/captions`, or `~/.cache/scenedex/captions`.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("scenedex").join("captions"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(parts: &KeyParts) -> String {
        let mut hash = Sha256::new();
        hash.update(Sha256::digest(parts.jpeg));
        for field in [
            parts.backend,
            parts.model,
            parts.prompt,
            parts.lang.unwrap_or(""),
            parts.detail,
        ] {
            // Length-prefixed, so that no two different field lists hash alike.
            hash.update((field.len() as u64).to_le_bytes());
            hash.update(field.as_bytes());
        }
        format!("{:x}", hash.finalize())
    }

    /// This machine's answer, else one another machine shared (kept here from then on).
    pub fn get(&self, key: &str) -> Option<Caption> {
        if let Some(caption) = self.get_local(key) {
            return Some(caption);
        }
        let caption = self.shared()?.get(key)?;
        let _ = self.put_local(key, &caption);
        Some(caption)
    }

    /// This machine's answer only.
    pub fn get_local(&self, key: &str) -> Option<Caption> {
        let mut caption: Caption = self.get_entry(key)?;
        // Entries an older release wrote may hold the text of an uncertain answer.
        if !caption.kind.searchable() {
            caption.text.clear();
            caption.moderation = None;
        }
        Some(caption)
    }

    /// Keeps an answer here, and shares it.
    pub fn put(&self, key: &str, caption: &Caption) -> std::io::Result<()> {
        if let Some(shared) = self.shared() {
            shared.put(key, caption);
        }
        self.put_local(key, caption)
    }

    /// Keeps an answer on this machine only.
    pub fn put_local(&self, key: &str, caption: &Caption) -> std::io::Result<()> {
        self.put_entry(key, caption)
    }

    /// Any entry kept under `key` (a transcript cache holds transcripts); a damaged one is a
    /// miss.
    pub fn get_entry<T: serde::de::DeserializeOwned>(&self, key: &str) -> Option<T> {
        let text = std::fs::read_to_string(self.path(key)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Keeps any entry under `key`, whole or not at all.
    pub fn put_entry<T: serde::Serialize>(&self, key: &str, entry: &T) -> std::io::Result<()> {
        let path = self.path(key);
        let folder = path.parent().expect("entries live in a sub-folder");
        crate::private::create_dir_all(folder)?;
        let temporary = folder.join(format!(
            ".{key}.{}.{:?}.tmp",
            std::process::id(),
            std::thread::current().id()
        ));
        let result =
            write_synced(&temporary, entry).and_then(|()| std::fs::rename(&temporary, &path));
        if result.is_err() {
            let _ = std::fs::remove_file(&temporary);
        }
        result
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(&key[..2]).join(format!("{key}.json"))
    }
}

fn write_synced<T: serde::Serialize>(path: &Path, entry: &T) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(&serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caption::{Kind, Usage};

    fn caption() -> Caption {
        Caption {
            text: "a dog".into(),
            kind: Kind::Description,
            moderation: None,
            backend: "openai".into(),
            model: "m".into(),
            prompt: "search@1".into(),
            lang: None,
            usage: Usage::default(),
        }
    }

    fn parts<'a>(jpeg: &'a [u8], lang: Option<&'a str>) -> KeyParts<'a> {
        KeyParts {
            jpeg,
            backend: "openai",
            model: "m",
            prompt: "search@1",
            lang,
            detail: "low",
        }
    }

    #[test]
    fn entries_round_trip_and_keys_depend_on_every_part() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = Cache::key(&parts(b"jpeg", None));
        assert!(cache.get(&key).is_none());
        cache.put(&key, &caption()).unwrap();
        assert_eq!(cache.get(&key), Some(caption()));
        assert_ne!(key, Cache::key(&parts(b"jpeg", Some("fr"))));
        assert_ne!(key, Cache::key(&parts(b"other", None)));
    }

    #[test]
    fn a_torn_entry_reads_as_a_miss_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let key = Cache::key(&parts(b"jpeg", None));
        std::fs::create_dir_all(cache.path(&key).parent().unwrap()).unwrap();
        std::fs::write(cache.path(&key), b"{\"text\": \"a d").unwrap();
        assert!(cache.get(&key).is_none());
        cache.put(&key, &caption()).unwrap();
        assert_eq!(cache.get(&key), Some(caption()));
    }
}
