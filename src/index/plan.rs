//! Planning an index run: what each video found needs, decided from the index's catalog and
//! the files' sizes, times and (for new or changed ones) fingerprints. Nothing is written here;
//! `run` carries the plan out. A machine plans with its own paths only: another machine's
//! paths under a folder of the same name are another disk, and are never checked or pruned.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::decode::find::Found;
use crate::decode::Truncation;
use crate::store::files::{path_key, Catalog, Place};
use crate::store::fingerprint::{fingerprint, stat};

/// What may be removed from the index.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rules {
    /// Keep files that vanished from the folders walked.
    pub keep_missing: bool,
    /// Prune even where it looks like an unmounted disk rather than a deletion.
    pub prune_all: bool,
}

/// How a path new to this machine relates to content the index holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// The same content at the same path, with a new modification time.
    Touched,
    /// It left a path of this machine that no longer exists.
    Moved,
    /// The same content is indexed at another path, here or on another machine.
    Copy,
}

#[derive(Debug)]
pub enum Action {
    /// Size and time match this machine's place. `truncated` when the file was incomplete
    /// when indexed, and still is.
    Unchanged {
        path: PathBuf,
        fingerprint: String,
        truncated: Option<Truncation>,
    },
    /// Known content at a path: add the place, drop `moved_from` (this machine's places of it
    /// that are gone), and let go of `replaces` (the content this path held before).
    Known {
        path: PathBuf,
        how: Known,
        place: Place,
        moved_from: Vec<Place>,
        replaces: Option<String>,
    },
    /// New or changed content: the plan's job with this number.
    Index(usize),
    /// The same new content as a job, at another path: written with it, as a copy.
    CopyOf { path: PathBuf, job: usize },
    /// The file could not be read.
    Failed {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A file to run through the pipeline.
#[derive(Debug)]
pub struct Job {
    pub path: PathBuf,
    pub fingerprint: String,
    pub size: u64,
    /// Every path with this content found in this run, the first being `path`.
    pub places: Vec<Place>,
    /// Contents these paths held before, to be let go of once this one is written.
    pub replaces: Vec<String>,
}

/// A folder whose missing files are kept because it looks unmounted, not emptied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub folder: PathBuf,
    /// Videos found under it in this run.
    pub found: usize,
    /// This machine's files indexed under it.
    pub indexed: usize,
    /// Of those, how many are gone.
    pub vanished: usize,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// One action per video found, in the order found.
    pub actions: Vec<Action>,
    pub jobs: Vec<Job>,
    /// This machine's places under the folders walked whose files are gone: to remove.
    pub vanished: Vec<Place>,
    /// Places whose files could not be checked (permissions, I/O, a stale NFS handle): kept.
    pub unreachable: Vec<(Place, std::io::Error)>,
    pub refused: Vec<Refusal>,
}

/// Whether a file is gone for sure; any other failure to look at it (permission, I/O, a stale
/// network handle) is not a reason to forget what was paid for.
pub fn is_gone(path: &Path) -> bool {
    match std::fs::metadata(path) {
        Err(e) => matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory),
        Ok(_) => false,
    }
}

pub fn plan(catalog: &Catalog, found: &Found, rules: Rules) -> Plan {
    let mut plan = Plan::default();
    let mut queued: HashMap<String, usize> = HashMap::new();
    let mut seen: HashSet<String> = HashSet::new();
    for path in &found.videos {
        let key = path_key(path);
        let action = plan.one(catalog, path, &key, &mut queued);
        if let Action::Known { moved_from, .. } = &action {
            seen.extend(moved_from.iter().map(|p| p.path.clone()));
        }
        seen.insert(key);
        plan.actions.push(action);
    }
    if !rules.keep_missing {
        plan.prune(catalog, found, &seen, rules.prune_all);
    }
    plan
}

impl Plan {
    fn one(
        &mut self,
        catalog: &Catalog,
        path: &Path,
        key: &str,
        queued: &mut HashMap<String, usize>,
    ) -> Action {
        let failed = |error| Action::Failed {
            path: path.to_path_buf(),
            error,
        };
        let stat = match stat(path) {
            Ok(stat) => stat,
            Err(e) => return failed(e),
        };
        let mine = catalog.mine_at(key);
        if let Some(place) = mine {
            let record = catalog.get(&place.fingerprint);
            let same_size = record.is_some_and(|r| r.size == stat.size);
            if same_size && place.mtime_ns == stat.mtime_ns {
                return Action::Unchanged {
                    path: path.to_path_buf(),
                    fingerprint: place.fingerprint.clone(),
                    truncated: record.and_then(|r| r.truncated),
                };
            }
        }
        let fingerprint = match fingerprint(path) {
            Ok(f) => f,
            Err(e) => return failed(e),
        };
        let replaces = mine
            .filter(|p| p.fingerprint != fingerprint)
            .map(|p| p.fingerprint.clone());
        let place = Place {
            fingerprint: fingerprint.clone(),
            host: catalog.host().to_string(),
            path: key.to_string(),
            mtime_ns: stat.mtime_ns,
        };
        if catalog.get(&fingerprint).is_some() {
            let moved_from: Vec<Place> = catalog
                .places_of(&fingerprint)
                .iter()
                .filter(|p| p.host == catalog.host() && p.path != key && is_gone(&p.os_path()))
                .cloned()
                .collect();
            let how = if replaces.is_none() && mine.is_some() {
                Known::Touched
            } else if !moved_from.is_empty() {
                Known::Moved
            } else {
                Known::Copy
            };
            return Action::Known {
                path: path.to_path_buf(),
                how,
                place,
                moved_from,
                replaces,
            };
        }
        if let Some(&job) = queued.get(&fingerprint) {
            self.jobs[job].places.push(place);
            self.jobs[job].replaces.extend(replaces);
            return Action::CopyOf {
                path: path.to_path_buf(),
                job,
            };
        }
        queued.insert(fingerprint.clone(), self.jobs.len());
        self.jobs.push(Job {
            path: path.to_path_buf(),
            fingerprint,
            size: stat.size,
            places: vec![place],
            replaces: replaces.into_iter().collect(),
        });
        Action::Index(self.jobs.len() - 1)
    }

    /// This machine's places under the folders walked that this run did not see. A folder
    /// that now holds no video, or that lost more than half of its files at once, is more
    /// likely an unmounted disk than a deletion: its places are kept unless `prune_all`.
    fn prune(&mut self, catalog: &Catalog, found: &Found, seen: &HashSet<String>, all: bool) {
        let mut taken: HashSet<String> = HashSet::new();
        for folder in &found.folders {
            let mut indexed = 0;
            let mut vanished = Vec::new();
            for place in catalog.mine() {
                let path = place.os_path();
                if !path.starts_with(folder) {
                    continue;
                }
                indexed += 1;
                if seen.contains(&place.path) {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Err(e)
                        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                    {
                        vanished.push(place.clone())
                    }
                    Err(e) if taken.insert(place.path.clone()) => {
                        self.unreachable.push((place.clone(), e))
                    }
                    // Still there, but not a video this run found (hidden now, say): kept.
                    _ => {}
                }
            }
            if vanished.is_empty() {
                continue;
            }
            let found_here = found
                .videos
                .iter()
                .filter(|v| v.starts_with(folder))
                .count();
            if !all && (found_here == 0 || vanished.len() * 2 > indexed) {
                self.refused.push(Refusal {
                    folder: folder.clone(),
                    found: found_here,
                    indexed,
                    vanished: vanished.len(),
                });
                continue;
            }
            for place in vanished {
                if taken.insert(place.path.clone()) {
                    self.vanished.push(place);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::files::{put_places, put_record, FileRecord};
    use crate::store::EdgeStore;

    /// A folder of small files, an embedded index, and what a run of `host` would plan.
    struct Setup {
        dir: tempfile::TempDir,
        store: EdgeStore,
    }

    impl Setup {
        fn new() -> Setup {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("videos")).unwrap();
            let store = EdgeStore::open(&dir.path().join("index"), Some(("m", 4)), true).unwrap();
            Setup { dir, store }
        }

        fn videos(&self) -> PathBuf {
            std::fs::canonicalize(self.dir.path().join("videos")).unwrap()
        }

        fn file(&self, name: &str, content: &str) -> PathBuf {
            let path = self.videos().join(name);
            std::fs::write(&path, content).unwrap();
            path
        }

        /// Records the file as indexed by `host`.
        fn indexed(&self, path: &Path, host: &str) {
            let stat = stat(path).unwrap();
            let fingerprint = fingerprint(path).unwrap();
            put_places(
                &self.store,
                &[Place {
                    fingerprint: fingerprint.clone(),
                    host: host.into(),
                    path: path_key(path),
                    mtime_ns: stat.mtime_ns,
                }],
            )
            .unwrap();
            put_record(&self.store, &record(&fingerprint, stat.size)).unwrap();
        }

        fn plan(&self, host: &str, rules: Rules) -> Plan {
            let catalog = Catalog::load(&self.store, host).unwrap();
            let found = crate::decode::find::Found {
                videos: walk(&self.videos()),
                folders: vec![self.videos()],
                problems: vec![],
            };
            plan(&catalog, &found, rules)
        }
    }

    fn walk(folder: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    fn record(fingerprint: &str, size: u64) -> FileRecord {
        FileRecord {
            fingerprint: fingerprint.into(),
            size,
            duration: 1.0,
            frames_sampled: 1,
            frames_kept: 1,
            frames_captioned: 1,
            segments: 1,
            captioner: "c".into(),
            prompt: "p".into(),
            style: "s".into(),
            indexed_at: 0,
            indexer: "test".into(),
            places: vec![],
            truncated: None,
        }
    }

    fn kinds(plan: &Plan) -> Vec<String> {
        plan.actions
            .iter()
            .map(|a| match a {
                Action::Unchanged { .. } => "unchanged".to_string(),
                Action::Known { how, .. } => format!("{how:?}").to_lowercase(),
                Action::Index(_) => "index".into(),
                Action::CopyOf { .. } => "copy of job".into(),
                Action::Failed { .. } => "failed".into(),
            })
            .collect()
    }

    #[test]
    fn two_identical_files_met_in_one_run_are_one_job_and_a_copy() {
        let setup = Setup::new();
        setup.file("a.mp4", "same");
        setup.file("b.mp4", "same");
        setup.file("c.mp4", "other");
        let plan = setup.plan("here", Rules::default());
        assert_eq!(kinds(&plan), ["index", "copy of job", "index"]);
        assert_eq!(plan.jobs[0].places.len(), 2);
    }

    #[test]
    fn unchanged_moved_copied_and_changed_files_are_told_apart() {
        let setup = Setup::new();
        let same = setup.file("same.mp4", "1");
        let moved = setup.file("old-name.mp4", "2");
        let copied = setup.file("copied.mp4", "3");
        let changed = setup.file("changed.mp4", "4");
        for path in [&same, &moved, &copied, &changed] {
            setup.indexed(path, "here");
        }
        std::fs::rename(&moved, setup.videos().join("new-name.mp4")).unwrap();
        std::fs::copy(&copied, setup.videos().join("copy.mp4")).unwrap();
        std::fs::write(&changed, "44").unwrap();
        let plan = setup.plan("here", Rules::default());
        // Sorted: changed, copied, copy, new-name, same.
        assert_eq!(
            kinds(&plan),
            ["index", "unchanged", "copy", "moved", "unchanged"]
        );
        assert_eq!(
            plan.jobs[0].replaces.len(),
            1,
            "the old content is let go of"
        );
        assert!(plan.vanished.is_empty(), "a move is not a removal");
    }

    #[test]
    fn another_machines_paths_under_the_same_folder_are_never_pruned() {
        let setup = Setup::new();
        let theirs = setup.file("theirs.mp4", "t");
        setup.indexed(&theirs, "there");
        std::fs::remove_file(&theirs).unwrap();
        let mine = setup.file("mine.mp4", "m");
        setup.indexed(&mine, "here");
        let plan = setup.plan("here", Rules::default());
        assert!(plan.vanished.is_empty() && plan.refused.is_empty());
        assert_eq!(kinds(&plan), ["unchanged"]);
    }

    #[test]
    fn an_emptied_folder_is_refused_as_an_unmounted_disk_unless_prune_all() {
        let setup = Setup::new();
        for name in ["a.mp4", "b.mp4", "c.mp4"] {
            let path = setup.file(name, name);
            setup.indexed(&path, "here");
            std::fs::remove_file(path).unwrap();
        }
        let plan = setup.plan("here", Rules::default());
        assert!(plan.vanished.is_empty());
        assert_eq!(
            plan.refused,
            [Refusal {
                folder: setup.videos(),
                found: 0,
                indexed: 3,
                vanished: 3
            }]
        );
        let all = setup.plan(
            "here",
            Rules {
                prune_all: true,
                ..Rules::default()
            },
        );
        assert_eq!(all.vanished.len(), 3);
    }

    #[test]
    fn more_than_half_gone_at_once_is_refused_and_a_few_deletions_are_pruned() {
        let setup = Setup::new();
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| setup.file(&format!("{i}.mp4"), &i.to_string()))
            .collect();
        for path in &paths {
            setup.indexed(path, "here");
        }
        std::fs::remove_file(&paths[0]).unwrap();
        std::fs::remove_file(&paths[1]).unwrap();
        let half = setup.plan("here", Rules::default());
        assert_eq!(half.vanished.len(), 2, "half is not more than half");
        std::fs::remove_file(&paths[2]).unwrap();
        let most = setup.plan("here", Rules::default());
        assert!(most.vanished.is_empty());
        assert_eq!(most.refused[0].vanished, 3);
    }

    #[test]
    fn only_a_file_that_is_surely_gone_is_pruned_and_one_that_cannot_be_checked_is_kept() {
        let setup = Setup::new();
        let sub = setup.videos().join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        let under_file = sub.join("a.mp4");
        std::fs::write(&under_file, "a").unwrap();
        setup.indexed(&under_file, "here");
        let looped = setup.videos().join("loop");
        std::fs::create_dir_all(&looped).unwrap();
        let unreadable = looped.join("b.mp4");
        std::fs::write(&unreadable, "b").unwrap();
        setup.indexed(&unreadable, "here");
        for name in ["c.mp4", "d.mp4", "e.mp4"] {
            let path = setup.file(name, name);
            setup.indexed(&path, "here");
        }
        // A file where a folder was: the path cannot exist any more.
        std::fs::remove_dir_all(&sub).unwrap();
        std::fs::write(setup.dir.path().join("sub"), "x").unwrap();
        std::fs::rename(setup.dir.path().join("sub"), &sub).unwrap();
        // A link to itself where a folder was: looking fails, but says nothing of the file.
        std::fs::remove_dir_all(&looped).unwrap();
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let plan = setup.plan("here", Rules::default());
        let gone: Vec<&str> = plan.vanished.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(gone, [under_file.to_str().unwrap()]);
        assert_eq!(plan.unreachable.len(), 1);
        assert_eq!(plan.unreachable[0].0.os_path(), unreadable);
    }
}
