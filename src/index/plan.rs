//! Planning an index run: what each video found needs, decided from the index's catalog and
//! the files' sizes, times and (for new or changed ones) fingerprints. Nothing is written here;
//! `run` carries the plan out. A machine plans with its own paths only: another machine's
//! paths under a folder of the same name are another disk, and are never checked or pruned.
//!
//! A file that vanished is not deleted at once: it goes offline, kept with everything paid
//! for, and is removed only once it has stayed missing through `--prune-after`. One whose disk
//! looks unmounted (its folder now on another file system, or an empty mount point, at any
//! depth under the folders walked) is never removed without `--prune-all`.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::decode::find::Found;
use crate::decode::Truncation;
use crate::store::files::{path_key, Catalog, Place};
use crate::store::fingerprint::{fingerprint, stat, Stat};

/// How long a vanished file stays offline before it is removed, by default.
pub const PRUNE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// What may be removed from the index.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// Keep files that vanished from the folders walked, offline, however long they stay gone.
    pub keep_missing: bool,
    /// Remove vanished files at once, even where it looks like an unmounted disk.
    pub prune_all: bool,
    /// How long a vanished file stays offline before a run removes it.
    pub prune_after: Duration,
}

impl Default for Rules {
    fn default() -> Rules {
        Rules {
            keep_missing: false,
            prune_all: false,
            prune_after: PRUNE_AFTER,
        }
    }
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
    /// when indexed, and still is. `refresh` is the place to write again when what the index
    /// says of it is out of date: the file is back from offline, on a disk mounted anew, or at
    /// a path of scenedex 0.1 that this machine now claims.
    Unchanged {
        path: PathBuf,
        fingerprint: String,
        truncated: Option<Truncation>,
        refresh: Option<Place>,
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

/// Why a folder's missing files look like a disk that is not mounted rather than deletions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unmounted {
    /// The folder is on another file system than its files were when indexed.
    OtherDisk,
    /// The folder is empty, as a mount point is without its disk (files indexed before
    /// scenedex recorded their file system).
    EmptyFolder,
    /// A folder walked now holds no video at all.
    NoVideo,
    /// A folder walked lost more than half of its files at once.
    MostGone,
}

/// A folder whose missing files are kept (offline) because it looks unmounted, not emptied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub folder: PathBuf,
    pub why: Unmounted,
    /// Videos found under it in this run.
    pub found: usize,
    /// This machine's files indexed under it.
    pub indexed: usize,
    /// Of those, how many are gone.
    pub vanished: usize,
}

/// A file of this machine's that is gone, kept in the index.
#[derive(Clone, Debug, PartialEq)]
pub struct Offline {
    /// The place, `missing_since` set.
    pub place: Place,
    /// Found gone in this run: the place is to be written so.
    pub newly: bool,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// One action per video found, in the order found.
    pub actions: Vec<Action>,
    pub jobs: Vec<Job>,
    /// This machine's places under the folders walked whose files stayed gone through
    /// `--prune-after` (or at once with `--prune-all`): to remove.
    pub vanished: Vec<Place>,
    /// This machine's places under the folders walked whose files are gone, kept.
    pub offline: Vec<Offline>,
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
    // A disk mounted again gets a new device number (NFS, FUSE, USB disks detected in
    // another order): its files still there tell the old number from the new one.
    let remounted: HashMap<u64, u64> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::Unchanged {
                refresh: Some(new),
                path,
                ..
            } => {
                let old = catalog.mine_at(&path_key(path))?;
                Some((old.dev?, new.dev?)).filter(|(a, b)| a != b)
            }
            _ => None,
        })
        .collect();
    Pruning {
        rules,
        now: now(),
        disks: HashMap::new(),
        taken: HashSet::new(),
        remounted,
    }
    .run(&mut plan, catalog, found, &seen);
    plan
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
        if let Some(place) = mine.or_else(|| catalog.unclaimed_at(key)) {
            let record = catalog.get(&place.fingerprint);
            let same_size = record.is_some_and(|r| r.size == stat.size);
            if same_size && place.mtime_ns == stat.mtime_ns {
                return Action::Unchanged {
                    path: path.to_path_buf(),
                    fingerprint: place.fingerprint.clone(),
                    truncated: record.and_then(|r| r.truncated),
                    refresh: refreshed(place, catalog.host(), &stat),
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
            dev: Some(stat.dev),
            missing_since: None,
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
}

/// The place as this machine sees the unchanged file now, when the index says otherwise.
fn refreshed(place: &Place, host: &str, stat: &Stat) -> Option<Place> {
    let now = Place {
        host: host.to_string(),
        dev: Some(stat.dev),
        missing_since: None,
        ..place.clone()
    };
    (now != *place).then_some(now)
}

/// Deciding the fate of this machine's places that a run did not see.
struct Pruning {
    rules: Rules,
    now: u64,
    /// By a vanished file's folder and recorded file system: the folder that makes its disk
    /// look unmounted, if any.
    disks: HashMap<(PathBuf, Option<u64>), Option<(PathBuf, Unmounted)>>,
    /// Places already decided (folders walked may nest).
    taken: HashSet<String>,
    /// Device numbers of disks mounted again under a new one: old to new.
    remounted: HashMap<u64, u64>,
}

impl Pruning {
    /// This machine's places under the folders walked that this run did not see. A file
    /// whose disk looks unmounted is kept offline; so is every file of a folder walked that
    /// now holds no video, or that lost more than half of its files at once, unless
    /// `prune_all`. The rest go offline, and are removed once they stayed gone long enough.
    fn run(&mut self, plan: &mut Plan, catalog: &Catalog, found: &Found, seen: &HashSet<String>) {
        let mut unmounted: Vec<Refusal> = Vec::new();
        for folder in &found.folders {
            let mut indexed = 0;
            let mut vanished = Vec::new();
            for place in catalog.mine() {
                let path = place.os_path();
                if !path.starts_with(folder) {
                    continue;
                }
                indexed += 1;
                if seen.contains(&place.path) || self.taken.contains(&place.path) {
                    continue;
                }
                match std::fs::metadata(&path) {
                    Err(e)
                        if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) =>
                    {
                        match self.disk(place) {
                            Some((at, why)) if !self.rules.prune_all => {
                                self.taken.insert(place.path.clone());
                                refuse(&mut unmounted, at, why, found);
                                self.offline(plan, place, false);
                            }
                            _ => vanished.push(place),
                        }
                    }
                    Err(e) if self.taken.insert(place.path.clone()) => {
                        plan.unreachable.push((place.clone(), e))
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
            let why = match found_here {
                0 => Unmounted::NoVideo,
                _ => Unmounted::MostGone,
            };
            let looks_unmounted = found_here == 0 || vanished.len() * 2 > indexed;
            let refused = looks_unmounted && !self.rules.prune_all && !self.rules.keep_missing;
            if refused {
                plan.refused.push(Refusal {
                    folder: folder.clone(),
                    why,
                    found: found_here,
                    indexed,
                    vanished: vanished.len(),
                });
            }
            for place in vanished {
                if self.taken.insert(place.path.clone()) {
                    self.offline(plan, place, !refused);
                }
            }
        }
        if self.rules.keep_missing {
            // Nothing is removed, so nothing needs defending or checking.
            plan.unreachable.clear();
        } else {
            for refusal in &mut unmounted {
                refusal.indexed = catalog
                    .mine()
                    .filter(|p| p.os_path().starts_with(&refusal.folder))
                    .count();
            }
            plan.refused.extend(unmounted);
        }
    }

    /// Keeps a vanished file offline, or removes it: at once with `prune_all`, or once it has
    /// stayed gone through `prune_after` when `removable`.
    fn offline(&self, plan: &mut Plan, place: &Place, removable: bool) {
        let rules = &self.rules;
        let since = place.missing_since;
        let overdue =
            since.is_some_and(|s| self.now.saturating_sub(s) >= rules.prune_after.as_secs());
        if rules.prune_all
            || (removable && !rules.keep_missing && (overdue || rules.prune_after.is_zero()))
        {
            plan.vanished.push(place.clone());
            return;
        }
        plan.offline.push(Offline {
            place: Place {
                missing_since: Some(since.unwrap_or(self.now)),
                ..place.clone()
            },
            newly: since.is_none(),
        });
    }

    /// Whether a vanished file's disk looks unmounted, and at which folder: the nearest folder
    /// above the file that exists is on another file system than the file was, or (for
    /// places that never recorded one) is empty, as a mount point without its disk.
    fn disk(&mut self, place: &Place) -> Option<(PathBuf, Unmounted)> {
        let path = place.os_path();
        let parent = path.parent()?.to_path_buf();
        let remounted = place.dev.and_then(|d| self.remounted.get(&d).copied());
        self.disks
            .entry((parent.clone(), place.dev))
            .or_insert_with(|| unmounted_at(&parent, place.dev, remounted))
            .clone()
    }
}

/// `remounted` is the device number the file's disk has now, when it was mounted again.
fn unmounted_at(
    parent: &Path,
    dev: Option<u64>,
    remounted: Option<u64>,
) -> Option<(PathBuf, Unmounted)> {
    let mut folder = parent;
    loop {
        match std::fs::metadata(folder) {
            Ok(meta) if meta.is_dir() => {
                let why = match dev {
                    Some(dev) => (dev != meta.dev() && remounted != Some(meta.dev()))
                        .then_some(Unmounted::OtherDisk),
                    // Without a recorded file system, a file's folder that is gone (an
                    // automounter removes the mount point) or empty may be a disk unmounted.
                    None => {
                        (folder != parent || is_empty(folder)).then_some(Unmounted::EmptyFolder)
                    }
                };
                return why.map(|why| (folder.to_path_buf(), why));
            }
            // A file where a folder was: what was under it is surely gone.
            Ok(_) => return None,
            Err(_) => folder = folder.parent()?,
        }
    }
}

fn is_empty(folder: &Path) -> bool {
    std::fs::read_dir(folder).is_ok_and(|mut entries| entries.next().is_none())
}

/// Counts a vanished file under the refusal of its folder, one refusal per folder.
fn refuse(refusals: &mut Vec<Refusal>, folder: PathBuf, why: Unmounted, found: &Found) {
    if let Some(r) = refusals.iter_mut().find(|r| r.folder == folder) {
        r.vanished += 1;
        return;
    }
    let found_here = found
        .videos
        .iter()
        .filter(|v| v.starts_with(&folder))
        .count();
    refusals.push(Refusal {
        folder,
        why,
        found: found_here,
        indexed: 0,
        vanished: 1,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::files::{put_places, put_record, FileRecord};
    use crate::store::{EdgeStore, VectorStore};

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

        /// Files of these names (and contents) in the folder, indexed by this machine: enough
        /// of them that one or two gone is no folder emptied.
        fn indexed_files(&self, names: &[&str]) {
            for name in names {
                let path = self.file(name, name);
                self.indexed(&path, "here");
            }
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
                    dev: Some(stat.dev),
                    missing_since: None,
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

    /// Vanished files removed at once, as before files went offline first.
    fn at_once() -> Rules {
        Rules {
            prune_after: Duration::ZERO,
            ..Rules::default()
        }
    }

    fn walk(folder: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
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
                Action::Unchanged { refresh: None, .. } => "unchanged".to_string(),
                Action::Unchanged { .. } => "unchanged, refreshed".to_string(),
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
        let plan = setup.plan("here", at_once());
        assert!(plan.vanished.is_empty());
        assert_eq!(plan.offline.len(), 3, "kept, offline");
        assert_eq!(
            plan.refused,
            [Refusal {
                folder: setup.videos(),
                why: Unmounted::NoVideo,
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
        let half = setup.plan("here", at_once());
        assert_eq!(half.vanished.len(), 2, "half is not more than half");
        std::fs::remove_file(&paths[2]).unwrap();
        let most = setup.plan("here", at_once());
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
        setup.indexed_files(&["c.mp4", "d.mp4", "e.mp4"]);
        // A file where a folder was: the path cannot exist any more.
        std::fs::remove_dir_all(&sub).unwrap();
        std::fs::write(setup.dir.path().join("sub"), "x").unwrap();
        std::fs::rename(setup.dir.path().join("sub"), &sub).unwrap();
        // A link to itself where a folder was: looking fails, but says nothing of the file.
        std::fs::remove_dir_all(&looped).unwrap();
        std::os::unix::fs::symlink(&looped, &looped).unwrap();
        let plan = setup.plan("here", at_once());
        let gone: Vec<&str> = plan.vanished.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(gone, [under_file.to_str().unwrap()]);
        assert_eq!(plan.unreachable.len(), 1);
        assert_eq!(plan.unreachable[0].0.os_path(), unreadable);
    }

    /// Writes what a run writes of the plan's offline places.
    fn mark_offline(setup: &Setup, plan: &Plan) {
        let newly: Vec<Place> = plan
            .offline
            .iter()
            .filter(|o| o.newly)
            .map(|o| o.place.clone())
            .collect();
        put_places(&setup.store, &newly).unwrap();
    }

    #[test]
    fn issue25_a_vanished_file_goes_offline_and_is_removed_only_once_gone_through_prune_after() {
        let setup = Setup::new();
        let paths: Vec<PathBuf> = (0..4)
            .map(|i| setup.file(&format!("{i}.mp4"), &i.to_string()))
            .collect();
        for path in &paths {
            setup.indexed(path, "here");
        }
        let kept = setup.dir.path().join("away.mp4");
        std::fs::rename(&paths[0], &kept).unwrap();
        let first = setup.plan("here", Rules::default());
        assert!(first.vanished.is_empty() && first.refused.is_empty());
        assert_eq!(first.offline.len(), 1);
        assert!(first.offline[0].newly);
        let since = first.offline[0].place.missing_since.unwrap();
        mark_offline(&setup, &first);

        let second = setup.plan("here", Rules::default());
        assert_eq!(second.offline.len(), 1);
        assert!(!second.offline[0].newly, "written once");
        assert_eq!(second.offline[0].place.missing_since, Some(since));
        let week_later = setup.plan(
            "here",
            Rules {
                prune_after: Duration::from_secs(0),
                ..Rules::default()
            },
        );
        assert_eq!(week_later.vanished.len(), 1, "gone through --prune-after");
        let keep = setup.plan(
            "here",
            Rules {
                keep_missing: true,
                prune_after: Duration::ZERO,
                ..Rules::default()
            },
        );
        assert!(keep.vanished.is_empty() && keep.offline.len() == 1);

        // Back where it was: online again, nothing to do but say so.
        std::fs::rename(&kept, &paths[0]).unwrap();
        let back = setup.plan("here", Rules::default());
        assert!(back.offline.is_empty() && back.jobs.is_empty());
        let Action::Unchanged {
            refresh: Some(place),
            ..
        } = &back.actions[0]
        else {
            panic!("{:?}", back.actions[0]);
        };
        assert_eq!(place.missing_since, None);
    }

    #[test]
    fn issue25_a_disk_unmounted_below_the_folder_walked_is_never_pruned() {
        let setup = Setup::new();
        let disk = setup.videos().join("disk-a");
        std::fs::create_dir_all(&disk).unwrap();
        let on_disk = disk.join("trip.mp4");
        std::fs::write(&on_disk, "a").unwrap();
        setup.indexed_files(&["b.mp4", "c.mp4", "d.mp4", "e.mp4"]);
        // Indexed while another file system was mounted at disk-a.
        let stat = stat(&on_disk).unwrap();
        let place = Place {
            fingerprint: fingerprint(&on_disk).unwrap(),
            host: "here".into(),
            path: path_key(&on_disk),
            mtime_ns: stat.mtime_ns,
            dev: Some(stat.dev + 1),
            missing_since: None,
        };
        put_places(&setup.store, std::slice::from_ref(&place)).unwrap();
        put_record(&setup.store, &record(&place.fingerprint, stat.size)).unwrap();
        // Unmounted: the mount point is an empty folder of the file system above.
        std::fs::remove_file(&on_disk).unwrap();
        let plan = setup.plan("here", at_once());
        assert!(plan.vanished.is_empty(), "{:?}", plan.vanished);
        assert_eq!(plan.offline.len(), 1);
        assert_eq!(
            plan.refused,
            [Refusal {
                folder: disk.clone(),
                why: Unmounted::OtherDisk,
                found: 0,
                indexed: 1,
                vanished: 1
            }]
        );
        // Its folder gone too (an automounter's): the nearest folder left is on another disk.
        std::fs::remove_dir(&disk).unwrap();
        let plan = setup.plan("here", at_once());
        assert!(plan.vanished.is_empty());
        assert_eq!(plan.refused[0].folder, setup.videos());
        assert_eq!(plan.refused[0].why, Unmounted::OtherDisk);
        let all = setup.plan(
            "here",
            Rules {
                prune_all: true,
                ..Rules::default()
            },
        );
        assert_eq!(all.vanished, [place]);
    }

    #[test]
    fn issue25_an_empty_mount_point_keeps_files_indexed_before_file_systems_were_recorded() {
        let setup = Setup::new();
        let disk = setup.videos().join("disk-b");
        std::fs::create_dir_all(&disk).unwrap();
        let on_disk = disk.join("trip.mp4");
        std::fs::write(&on_disk, "b").unwrap();
        setup.indexed(&on_disk, "here");
        setup.indexed_files(&["c.mp4", "d.mp4", "e.mp4"]);
        let mut old = Catalog::load(&setup.store, "here")
            .unwrap()
            .mine_at(&path_key(&on_disk))
            .unwrap()
            .clone();
        old.dev = None;
        put_places(&setup.store, std::slice::from_ref(&old)).unwrap();
        std::fs::remove_file(&on_disk).unwrap();
        let plan = setup.plan("here", at_once());
        assert!(plan.vanished.is_empty());
        assert_eq!(plan.refused[0].why, Unmounted::EmptyFolder);
        assert_eq!(plan.refused[0].folder, disk);
        // A folder with something left in it is a deletion.
        std::fs::write(disk.join("notes.txt"), "x").unwrap();
        let plan = setup.plan("here", at_once());
        assert_eq!(plan.vanished, [old]);
    }

    #[test]
    fn issue25_paths_of_scenedex_0_1_belong_to_no_machine_until_one_sees_the_file() {
        let setup = Setup::new();
        let there = setup.file("there.mp4", "t");
        let stat = stat(&there).unwrap();
        let fingerprint = fingerprint(&there).unwrap();
        let mut old = serde_json::to_value(record(&fingerprint, stat.size)).unwrap();
        old["places"] = serde_json::json!([
            {"path": path_key(&there), "mtime_ns": stat.mtime_ns},
            {"path": path_key(&setup.videos().join("elsewhere.mp4")), "mtime_ns": 1}
        ]);
        let mut payload = old.as_object().unwrap().clone();
        payload.insert("record".into(), "file".into());
        setup
            .store
            .upsert(vec![crate::store::Point {
                id: crate::store::file_id(&fingerprint),
                vectors: None,
                payload,
            }])
            .unwrap();
        let plan = setup.plan("here", at_once());
        assert!(plan.vanished.is_empty() && plan.offline.is_empty() && plan.refused.is_empty());
        assert_eq!(kinds(&plan), ["unchanged, refreshed"]);
        let Action::Unchanged {
            refresh: Some(place),
            ..
        } = &plan.actions[0]
        else {
            unreachable!()
        };
        assert_eq!(place.host, "here", "this machine claims the path it saw");
    }
}
