//! Watching folders that grow: after a run, `index --watch` waits for files to appear, change,
//! move or vanish (the platform's notifications, through `notify`), and for a periodic rescan
//! where notifications never come (network file systems); then it runs again over the same
//! paths, where unchanged files cost a stat each. A file still being written waits: one whose
//! size or modification time changed within the settle time, or that a process has open for
//! writing, is left out of the run and taken once it has been still that long. So a partial
//! copy is never indexed as a whole file, and the offline rules of a vanished file are those
//! of any run.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use notify::{Event, EventKind, RecursiveMode, Watcher};

use crate::decode::find::{is_video, Found};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{path}: cannot watch it: {detail}")]
    Watch { path: PathBuf, detail: String },
}

/// A file seen changing: its size and modification time then, and since when they held.
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

pub struct Watch {
    /// The watched paths, in full: what lies under them is seen as `find` sees it.
    roots: Vec<PathBuf>,
    settle: Duration,
    rescan: Duration,
    _watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Result<Event>>,
    changing: HashMap<PathBuf, Seen>,
    /// Something vanished or moved, or notifications were lost: the next run is due now.
    dirty: bool,
    last_run: Instant,
}

impl Watch {
    /// Starts watching `roots` (folders, recursively, and files).
    pub fn start(
        roots: &[PathBuf],
        settle: Duration,
        rescan: Duration,
    ) -> Result<Watch, WatchError> {
        let (send, events) = std::sync::mpsc::channel();
        let failed = |path: &Path, e: notify::Error| WatchError::Watch {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        let mut watcher =
            notify::recommended_watcher(send).map_err(|e| failed(Path::new("."), e))?;
        for root in roots {
            let mode = match root.is_dir() {
                true => RecursiveMode::Recursive,
                false => RecursiveMode::NonRecursive,
            };
            watcher.watch(root, mode).map_err(|e| failed(root, e))?;
        }
        Ok(Watch {
            roots: roots.iter().filter_map(|r| r.canonicalize().ok()).collect(),
            settle,
            rescan,
            _watcher: watcher,
            events,
            changing: HashMap::new(),
            dirty: false,
            last_run: Instant::now(),
        })
    }

    /// The files of a run without those still being written, which are watched until they
    /// have been still for the settle time.
    pub fn settled(&mut self, mut found: Found) -> Found {
        let writing = open_for_writing();
        let now = SystemTime::now();
        let mut deferred = HashSet::new();
        found.videos.retain(|path| {
            let Ok(meta) = std::fs::metadata(path) else {
                return true;
            };
            let modified = meta.modified().ok();
            let recent = modified
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age < self.settle);
            let moving = self
                .changing
                .get(path)
                .is_some_and(|seen| seen.since.elapsed() < self.settle);
            let held = is_open(path, &writing);
            if recent || moving || held {
                deferred.insert(path.clone());
                let seen = self.changing.entry(path.clone()).or_insert(Seen {
                    size: meta.len(),
                    modified,
                    since: Instant::now(),
                });
                if held {
                    seen.since = Instant::now();
                }
                return false;
            }
            self.changing.remove(path);
            true
        });
        // Only what this run left out is still waited for; the rest is done with.
        self.changing.retain(|path, _| deferred.contains(path));
        self.last_run = Instant::now();
        self.dirty = false;
        found
    }

    /// How many files wait to be still.
    pub fn waiting(&self) -> usize {
        self.changing.len()
    }

    /// Waits until the next run is due: a file has been still for the settle time, one
    /// vanished or moved, or the rescan is due. None once `stop` says so.
    pub fn wait(&mut self, stop: &dyn Fn() -> bool) -> Option<()> {
        loop {
            if stop() {
                return None;
            }
            match self.events.recv_timeout(Duration::from_millis(250)) {
                Ok(Ok(event)) => self.note(event),
                // Notifications were lost (an overflowed queue): look at everything again.
                Ok(Err(_)) => self.dirty = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
            while let Ok(event) = self.events.try_recv() {
                match event {
                    Ok(event) => self.note(event),
                    Err(_) => self.dirty = true,
                }
            }
            self.refresh();
            if self.due() {
                return Some(());
            }
        }
    }

    fn note(&mut self, event: Event) {
        match event.kind {
            EventKind::Remove(_) | EventKind::Modify(notify::event::ModifyKind::Name(_)) => {
                self.dirty = true;
            }
            EventKind::Access(_) => return,
            _ => {}
        }
        for path in event.paths {
            // Only what a run would take: a video, outside hidden folders, named as `find`
            // names it. Other files (subtitles, an index kept under the folder) change
            // nothing a run does.
            let Ok(path) = path.canonicalize() else {
                continue;
            };
            let hidden = self
                .roots
                .iter()
                .find_map(|root| path.strip_prefix(root).ok())
                .is_none_or(|inside| {
                    inside
                        .components()
                        .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
                });
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() && !hidden && is_video(&path) => {
                    let seen = Seen {
                        size: meta.len(),
                        modified: meta.modified().ok(),
                        since: Instant::now(),
                    };
                    self.changing.insert(path, seen);
                }
                // A folder moved in or made: its files are found by the next run.
                Ok(meta) if meta.is_dir() => self.dirty = true,
                _ => {}
            }
        }
    }

    /// Looks at each file seen changing: a new size or time starts its settle time again.
    fn refresh(&mut self) {
        self.changing.retain(|path, seen| {
            let Ok(meta) = std::fs::metadata(path) else {
                return false;
            };
            let (size, modified) = (meta.len(), meta.modified().ok());
            if size != seen.size || modified != seen.modified {
                *seen = Seen {
                    size,
                    modified,
                    since: Instant::now(),
                };
            }
            true
        });
    }

    /// Whether a run is due; a file still open for writing starts its settle time again
    /// rather than make a run that would leave it out.
    fn due(&mut self) -> bool {
        if self.dirty || self.last_run.elapsed() >= self.rescan {
            return true;
        }
        let settle = self.settle;
        if !self
            .changing
            .values()
            .any(|seen| seen.since.elapsed() >= settle)
        {
            return false;
        }
        let writing = open_for_writing();
        let mut ready = false;
        for (path, seen) in &mut self.changing {
            if seen.since.elapsed() < settle {
                continue;
            }
            match is_open(path, &writing) {
                true => seen.since = Instant::now(),
                false => ready = true,
            }
        }
        ready
    }
}

/// Whether `path` is among the files open for writing (which `/proc` names in full).
fn is_open(path: &Path, writing: &HashSet<PathBuf>) -> bool {
    let named = |p: &PathBuf| p.file_name() == path.file_name();
    writing.iter().any(named) && path.canonicalize().is_ok_and(|p| writing.contains(&p))
}

/// The files some process of this user has open for writing, as `/proc` shows them.
fn open_for_writing() -> HashSet<PathBuf> {
    const WRITE: u32 = 0o1 | 0o2; // O_WRONLY | O_RDWR
    let mut open = HashSet::new();
    let Ok(processes) = std::fs::read_dir("/proc") else {
        return open;
    };
    for process in processes.flatten() {
        let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let info = process.path().join("fdinfo").join(fd.file_name());
            let flags = std::fs::read_to_string(info).ok().and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("flags:"))?;
                u32::from_str_radix(line.trim_start_matches("flags:").trim(), 8).ok()
            });
            if flags.is_some_and(|f| f & WRITE != 0) {
                open.insert(target);
            }
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_open_for_writing_is_seen_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copying.mp4");
        let mut file = std::fs::File::create(&path).unwrap();
        file.write_all(b"partial").unwrap();
        let path = path.canonicalize().unwrap();
        assert!(open_for_writing().contains(&path));
        drop(file);
        assert!(!open_for_writing().contains(&path));
    }
}
