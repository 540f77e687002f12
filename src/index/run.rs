//! One index run, for any front end: plan what the files found need, claim and run new ones
//! through the pipeline on worker threads while this thread alone writes to the store, prune
//! what vanished, and report each file's fate to an `Observer` as it is decided.
//!
//! Writes for one file go in a fixed order: stale segments of its content removed, segments,
//! places, then its record, then its lease given up. Whatever the moment a run dies, the next
//! one sees either a finished file or an unrecorded one, which it does again (captions come
//! from the cache), after sweeping what the dead run left.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::batch::{Batching, CacheOnly};
use super::lease::{Claim, Fenced, Holder, Leases, Owner, DEFAULT_TTL};
use super::plan::{self, Action, Job, Known, Offline, Refusal, Rules};
use super::thumbs::Thumbs;
use super::{FileError, FileStats, Indexed, Pipeline, Progress, INDEXER};
use crate::caption::run::Estimate;
use crate::caption::{Captioner, Prompt, Style, Usage};
use crate::decode::find::Found;
use crate::decode::Truncation;
use crate::store::files::{self, Catalog, FileRecord, Place, SEGMENT};
use crate::store::{Condition, StoreError, VectorStore};

/// Points written to the store in one request.
const CHUNK: usize = 256;

/// How a run goes about its work.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Files in flight at once.
    pub jobs: usize,
    pub rules: Rules,
    /// How long a claim on a file lasts without renewal.
    pub lease: Duration,
    /// The name this machine's paths are tagged with.
    pub host: String,
}

/// What made a file's captions, for its record (also when it has no segment to show it).
#[derive(Clone, Debug)]
pub struct Provenance {
    /// `backend/model`
    pub captioner: String,
    /// `id@version`, or `none` for a tagger, which answers no prompt.
    pub prompt: String,
    pub style: String,
}

impl Provenance {
    pub fn new(captioner: &dyn Captioner, prompt: &Prompt, style: Style) -> Provenance {
        let tags = captioner.makes_tags();
        Provenance {
            captioner: format!("{}/{}", captioner.backend(), captioner.model()),
            prompt: if tags { "none".into() } else { prompt.tag() },
            style: if tags { "tags" } else { style.name() }.into(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Indexed,
    Unchanged,
    Moved,
    Copy,
    Removed,
    /// Gone from its folder, and kept in the index with everything paid for, until it has
    /// stayed missing through `--prune-after` (or its disk is mounted again).
    Offline,
    /// Another indexer is working on this content now.
    Claimed,
    /// This indexer lost its claim on the file while working on it (it stalled past its
    /// lease, or could not reach the index to renew it): it stopped asking and wrote nothing,
    /// and another indexer or the next run does the file.
    Lost,
    /// Stops before its declared length (a download still running): what there is is
    /// indexed, and it is indexed again once the file changes.
    Partial,
    /// Its frames are in batches still running, or that ended without answering them all:
    /// a later run indexes it (`index --batch`).
    Waiting,
    Failed,
}

/// Why a path failed.
#[derive(Debug)]
pub enum Failure {
    /// A path given that does not exist or cannot be listed.
    Missing(String),
    /// The file cannot be read.
    Unreadable(std::io::Error),
    File(Arc<FileError>),
    /// A file indexed before that cannot be checked now; it stays in the index.
    Unchecked(std::io::Error),
    /// Files gone from a folder that looks unmounted rather than emptied; they stay.
    Refused(Refusal),
    /// Indexed as far as it goes: the file stops before its declared length.
    Partial(Truncation),
    /// The pictures are indexed, and what is said only in part or not at all: why.
    Unheard(String),
}

/// One path's fate in a run.
pub struct Outcome<'a> {
    pub path: &'a Path,
    pub status: Status,
    pub fingerprint: Option<&'a str>,
    pub segments: Option<u64>,
    /// Who holds a file claimed by another indexer.
    pub holder: Option<&'a Holder>,
    pub failure: Option<&'a Failure>,
}

/// What a front end hears of a run while it goes.
pub trait Observer: Sync {
    /// A path's fate, as soon as it is decided; called on the run's own thread.
    fn outcome(&self, outcome: &Outcome);
    fn warning(&self, text: &str);
    /// How many files will go through the pipeline.
    fn jobs(&self, _count: usize) {}
    /// A batch was sent, moved on or ended (`index --batch`).
    fn batch(&self, _event: &crate::caption::batch::Event) {}
    /// A worker starts on a file; what it returns hears of the file's progress, last `Done`.
    fn begin(&self, _path: &Path) -> Box<dyn Fn(Progress) + Send + Sync + '_> {
        Box::new(|_| {})
    }
}

/// What a run did, counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    /// Videos found.
    pub files: usize,
    pub indexed: usize,
    pub unchanged: usize,
    pub moved: usize,
    /// Files whose content is indexed at another path too.
    pub copies: usize,
    pub removed: usize,
    /// Files gone from their folders, kept in the index (offline).
    pub offline: usize,
    /// Files another indexer was working on.
    pub claimed: usize,
    /// Files this indexer lost its claim on while working, and left alone.
    pub lost: usize,
    /// Files indexed as far as they go, which stop before their declared length.
    pub partial: usize,
    /// Files waiting for batches (`index --batch`).
    pub waiting: usize,
    pub failed: usize,
    /// Segments left by crashed writes, swept away.
    pub orphans_removed: u64,
    pub hours: f64,
    pub frames_sampled: u64,
    pub frames_kept: u64,
    pub frames_captioned: u64,
    pub cache_hits: u64,
    pub calls: u64,
    pub segments: u64,
    /// Segments of what is said, among `segments`.
    pub speech_segments: u64,
    /// Seconds of sound transcribed in this run (a cached transcript costs none).
    pub transcribed_seconds: f64,
    /// Of them, seconds of speech sent to the transcriber.
    pub sent_seconds: f64,
    #[serde(skip)]
    pub usage: Usage,
    /// What the batches did (`index --batch`); their tokens are not in `usage`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<crate::caption::batch::Tally>,
    /// Paths that got a status other than removed: what "N of M failed" counts against.
    #[serde(skip)]
    pub checked: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Batch(#[from] crate::caption::CaptionError),
    #[error("interrupted")]
    Interrupted,
}

/// What a worker hands the run's thread about one job.
enum Done {
    Indexed(Result<Indexed, FileError>),
    /// Another indexer holds it.
    Claimed(Holder),
    /// Another indexer finished it between planning and claiming.
    Finished,
    /// This process lost the file's lease while working on it; what it had spent so far.
    Lost(Option<FileStats>),
    Store(StoreError),
}

/// Everything a run needs besides the files found.
pub struct Context<'a> {
    pub store: &'a dyn VectorStore,
    pub pipeline: &'a Pipeline<'a>,
    pub made_by: &'a Provenance,
    pub settings: &'a Settings,
    pub observer: &'a dyn Observer,
    /// Captions through a batch API first (`index --batch`).
    pub batching: Option<&'a Batching<'a>>,
}

struct Run<'a> {
    cx: &'a Context<'a>,
    leases: &'a Leases<'a>,
    summary: Summary,
}

/// Brings the index up to date with the videos found.
pub fn run(found: &Found, cx: &Context) -> Result<Summary, RunError> {
    let owner = Owner::this_process(&cx.settings.host);
    let leases = Leases::new(cx.store, owner, cx.settings.lease);
    let mut run = Run {
        cx,
        leases: &leases,
        summary: Summary {
            files: found.videos.len(),
            ..Default::default()
        },
    };
    run.summary.orphans_removed = leases.sweep(false)?.segments;
    let catalog = Catalog::load(cx.store, &cx.settings.host)?;
    if let Some(warning) = catalog.unreadable_warning() {
        cx.observer.warning(&warning);
    }
    for (path, why) in &found.problems {
        run.failed(path, None, Failure::Missing(why.clone()));
    }
    let plan = plan::plan(&catalog, found, cx.settings.rules);
    drop(catalog);
    for action in plan.actions {
        run.apply(action)?;
    }
    run.prune(plan.vanished, plan.offline, plan.unreachable, plan.refused)?;
    match cx.batching {
        None => run.jobs(&plan.jobs)?,
        Some(batching) => run.batched(plan.jobs, batching)?,
    }
    if crate::stop::requested() {
        return Err(RunError::Interrupted);
    }
    if run.summary.indexed > 0 {
        match cx.store.optimize() {
            // Everything is written; only searching is slower until a run with more room.
            Err(StoreError::DiskFull { detail, .. }) => cx.observer.warning(&format!(
                "the index is up to date, but its search graph was not rebuilt ({detail}); \
                 searches stay right, and get slower as it grows, until a run with more room"
            )),
            done => done?,
        }
    }
    Ok(run.summary)
}

impl Run<'_> {
    fn store(&self) -> &dyn VectorStore {
        self.cx.store
    }

    fn thumbs(&self) -> &Thumbs {
        &self.cx.pipeline.thumbs
    }

    fn report(&mut self, outcome: Outcome) {
        let s = &mut self.summary;
        match outcome.status {
            Status::Indexed => s.indexed += 1,
            Status::Unchanged => s.unchanged += 1,
            Status::Moved => s.moved += 1,
            Status::Copy => s.copies += 1,
            Status::Removed => s.removed += 1,
            Status::Offline => s.offline += 1,
            Status::Claimed => s.claimed += 1,
            Status::Lost => s.lost += 1,
            Status::Partial => s.partial += 1,
            Status::Waiting => s.waiting += 1,
            Status::Failed => s.failed += 1,
        }
        if !matches!(outcome.status, Status::Removed | Status::Offline) {
            s.checked += 1;
        }
        self.cx.observer.outcome(&outcome);
    }

    fn simple(&mut self, path: &Path, status: Status, fingerprint: Option<&str>) {
        self.report(Outcome {
            path,
            status,
            fingerprint,
            segments: None,
            holder: None,
            failure: None,
        });
    }

    fn failed(&mut self, path: &Path, fingerprint: Option<&str>, failure: Failure) {
        self.report(Outcome {
            path,
            status: Status::Failed,
            fingerprint,
            segments: None,
            holder: None,
            failure: Some(&failure),
        });
    }

    fn apply(&mut self, action: Action) -> Result<(), StoreError> {
        match action {
            Action::Unchanged {
                path,
                fingerprint,
                truncated,
                refresh,
            } => {
                if let Some(place) = refresh {
                    files::put_places(self.store(), std::slice::from_ref(&place))?;
                }
                match truncated {
                    None => self.simple(&path, Status::Unchanged, Some(&fingerprint)),
                    Some(cut) => self.report(Outcome {
                        path: &path,
                        status: Status::Partial,
                        fingerprint: Some(&fingerprint),
                        segments: None,
                        holder: None,
                        failure: Some(&Failure::Partial(cut)),
                    }),
                }
            }
            Action::Known {
                path,
                how,
                place,
                moved_from,
                replaces,
            } => {
                // Under the content's lease, as a machine that lets go of it takes it too: a
                // new copy is never recorded just as the content is being removed.
                if let Claim::Held(holder) = self.leases.claim(&place.fingerprint)? {
                    self.report(Outcome {
                        path: &path,
                        status: Status::Claimed,
                        fingerprint: Some(&place.fingerprint),
                        segments: None,
                        holder: Some(&holder),
                        failure: None,
                    });
                    return Ok(());
                }
                // The new place first, the old ones after: a crash between leaves an extra
                // path, which the next run prunes, never a file with no path.
                files::put_places(self.store(), std::slice::from_ref(&place))?;
                for old in &moved_from {
                    files::drop_place(self.store(), old)?;
                }
                self.leases.release(&place.fingerprint)?;
                self.let_go(replaces.iter())?;
                let status = match how {
                    Known::Touched => Status::Unchanged,
                    Known::Moved => Status::Moved,
                    Known::Copy => Status::Copy,
                };
                self.simple(&path, status, Some(&place.fingerprint));
            }
            Action::Failed { path, error } => {
                self.failed(&path, None, Failure::Unreadable(error));
            }
            // Reported once their job is done.
            Action::Index(_) | Action::CopyOf { .. } => {}
        }
        Ok(())
    }

    fn let_go<'s>(&self, fingerprints: impl Iterator<Item = &'s String>) -> Result<(), StoreError> {
        for fingerprint in fingerprints {
            let_go(self.leases, self.thumbs(), fingerprint, &|w| {
                self.cx.observer.warning(w)
            })?;
        }
        Ok(())
    }

    /// Reports a file whose lease this process lost while working on it.
    fn lost(&mut self, job: &Job, spent: Option<&FileStats>) -> Result<(), StoreError> {
        if let Some(spent) = spent {
            self.add(spent);
        }
        // Only removes the lease if it is still this process's (it lapsed unconfirmed).
        self.leases.release(&job.fingerprint)?;
        for place in &job.places {
            self.simple(&place.os_path(), Status::Lost, Some(&job.fingerprint));
        }
        Ok(())
    }

    fn prune(
        &mut self,
        vanished: Vec<Place>,
        offline: Vec<Offline>,
        unreachable: Vec<(Place, std::io::Error)>,
        refused: Vec<Refusal>,
    ) -> Result<(), StoreError> {
        for place in &vanished {
            files::drop_place(self.store(), place)?;
            self.let_go(std::iter::once(&place.fingerprint))?;
            self.simple(&place.os_path(), Status::Removed, Some(&place.fingerprint));
        }
        let newly: Vec<Place> = offline
            .iter()
            .filter(|o| o.newly)
            .map(|o| o.place.clone())
            .collect();
        for chunk in newly.chunks(CHUNK) {
            files::put_places(self.store(), chunk)?;
        }
        for Offline { place, .. } in &offline {
            self.simple(&place.os_path(), Status::Offline, Some(&place.fingerprint));
        }
        for (place, error) in unreachable {
            let path = place.os_path();
            self.failed(&path, Some(&place.fingerprint), Failure::Unchecked(error));
        }
        for refusal in refused {
            let folder = refusal.folder.clone();
            self.failed(&folder, None, Failure::Refused(refusal));
        }
        Ok(())
    }

    /// Runs the jobs whose frames batches answered, with a pipeline that pays for nothing
    /// more unless a fallback was asked for; the others wait for a later run.
    fn batched(&mut self, jobs: Vec<Job>, batching: &Batching) -> Result<(), RunError> {
        let prepared = super::batch::prepare(jobs, self.cx, batching, self.leases)?;
        self.summary.batch = Some(prepared.tally);
        for job in prepared.running.iter().chain(&prepared.unanswered) {
            for place in &job.places {
                self.simple(&place.os_path(), Status::Waiting, Some(&job.fingerprint));
            }
        }
        for (job, holder) in &prepared.held {
            for place in &job.places {
                self.report(Outcome {
                    path: &place.os_path(),
                    status: Status::Claimed,
                    fingerprint: Some(&job.fingerprint),
                    segments: None,
                    holder: Some(holder),
                    failure: None,
                });
            }
        }
        if batching.fallback_sync {
            return self.jobs(&prepared.ready);
        }
        let cache_only = CacheOnly {
            inner: self.cx.pipeline.captioner,
        };
        let pipeline = self.cx.pipeline.with_captioner(&cache_only);
        let cx = Context {
            pipeline: &pipeline,
            ..*self.cx
        };
        let mut run = Run {
            cx: &cx,
            leases: self.leases,
            summary: std::mem::take(&mut self.summary),
        };
        let done = run.jobs(&prepared.ready);
        self.summary = run.summary;
        done
    }

    /// Runs the jobs; those another indexer held are tried once more at the end, in case it
    /// finished them (or died) meanwhile.
    fn jobs(&mut self, jobs: &[Job]) -> Result<(), RunError> {
        self.cx.observer.jobs(jobs.len());
        let all: Vec<usize> = (0..jobs.len()).collect();
        let held = self.pass(jobs, &all)?;
        let again: Vec<usize> = held.iter().map(|(i, _)| *i).collect();
        let still = if again.is_empty() || crate::stop::requested() {
            held
        } else {
            self.pass(jobs, &again)?
        };
        for (i, holder) in still {
            for place in &jobs[i].places {
                self.report(Outcome {
                    path: &place.os_path(),
                    status: Status::Claimed,
                    fingerprint: Some(&jobs[i].fingerprint),
                    segments: None,
                    holder: Some(&holder),
                    failure: None,
                });
            }
        }
        Ok(())
    }

    /// Runs these jobs on worker threads, `settings.jobs` at a time, writing each as it
    /// finishes; the leases held meanwhile are renewed by a thread of their own. Returns the
    /// jobs another indexer holds.
    fn pass(&mut self, jobs: &[Job], order: &[usize]) -> Result<Vec<(usize, Holder)>, RunError> {
        let cx = self.cx;
        let leases = self.leases;
        let next = AtomicUsize::new(0);
        let working = AtomicBool::new(true);
        let (sender, receiver) = mpsc::channel::<(usize, Done)>();
        let mut held = Vec::new();
        let mut written: Result<(), StoreError> = Ok(());
        std::thread::scope(|scope| {
            scope.spawn(|| renew(leases, &working, cx.observer));
            for _ in 0..cx.settings.jobs.clamp(1, order.len().max(1)) {
                let sender = sender.clone();
                let next = &next;
                scope.spawn(move || {
                    while let Some(&i) = order.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if crate::stop::requested() {
                            break;
                        }
                        let done = work(cx, leases, &jobs[i]);
                        if sender.send((i, done)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            for (i, done) in receiver {
                // After a store failure nothing more is written; the workers are let finish.
                if written.is_err() {
                    continue;
                }
                match done {
                    Done::Claimed(holder) => held.push((i, holder)),
                    done => {
                        written = self.take(&jobs[i], done);
                        if written.is_err() {
                            crate::stop::request();
                        }
                    }
                }
            }
            working.store(false, Ordering::Relaxed);
        });
        written?;
        Ok(held)
    }

    /// Writes one finished job, or reports why it failed.
    fn take(&mut self, job: &Job, done: Done) -> Result<(), StoreError> {
        let fingerprint = job.fingerprint.as_str();
        match done {
            Done::Store(e) => return Err(e),
            Done::Claimed(_) => unreachable!("held jobs are kept for later"),
            Done::Lost(spent) => self.lost(job, spent.as_ref())?,
            Done::Finished => {
                files::put_places(self.store(), &job.places)?;
                self.leases.release(fingerprint)?;
                self.let_go(job.replaces.iter())?;
                for place in &job.places {
                    self.simple(&place.os_path(), Status::Copy, Some(fingerprint));
                }
            }
            Done::Indexed(Err(
                FileError::Interrupted | FileError::Decode(crate::decode::DecodeError::Interrupted),
            )) => self.leases.release(fingerprint)?,
            Done::Indexed(Err(FileError::Store(e))) => return Err(e),
            Done::Indexed(Err(error)) => {
                let spent = match &error {
                    FileError::Caption { spent, .. }
                    | FileError::Transcribe { spent, .. }
                    | FileError::Hear { spent, .. } => Some(spent.as_ref().clone()),
                    _ => None,
                };
                if !self.leases.confirm(fingerprint)? {
                    return self.lost(job, spent.as_ref());
                }
                if let Some(spent) = &spent {
                    self.add(spent);
                }
                // What an earlier, crashed attempt left of this content goes too.
                files::remove(self.store(), fingerprint)?;
                self.leases.release(fingerprint)?;
                let error = Arc::new(error);
                for place in &job.places {
                    self.failed(
                        &place.os_path(),
                        Some(fingerprint),
                        Failure::File(error.clone()),
                    );
                }
            }
            Done::Indexed(Ok(indexed)) => self.write(job, indexed)?,
        }
        Ok(())
    }

    /// Writes a file's segments, places and record, each step only while this process holds
    /// the file's lease: confirmed with the store before the first and before the record, and
    /// by its own clock before each step between. A lease lost on the way leaves the rest to
    /// the indexer that took the file over, which removes the segments before writing its own.
    fn write(&mut self, job: &Job, indexed: Indexed) -> Result<(), StoreError> {
        let store = self.cx.store;
        let fingerprint = job.fingerprint.as_str();
        let leases = self.leases;
        let lost = |me: &mut Self| me.lost(job, Some(&indexed.stats));
        // Each step under a deadline: the end of the hold just confirmed.
        let held = |work: &dyn Fn() -> Result<(), StoreError>| -> Result<bool, StoreError> {
            if !leases.confirm(fingerprint)? {
                return Ok(false);
            }
            let Some(end) = leases.hold_ends(fingerprint) else {
                return Ok(false);
            };
            match crate::store::with_deadline(end, work) {
                Err(StoreError::Late) => Ok(false),
                done => done.map(|()| true),
            }
        };
        let segments = || {
            // Segments left by a run that stopped before this content's record was written.
            store.delete(&[
                Condition::equals("fingerprint", fingerprint),
                Condition::equals("record", SEGMENT),
            ])?;
            // Each chunk under the hold as renewals have extended it meanwhile.
            for chunk in indexed.points.chunks(CHUNK) {
                let end = leases
                    .hold_ends(fingerprint)
                    .filter(|end| Instant::now() < *end)
                    .ok_or(StoreError::Late)?;
                crate::store::with_deadline(end, || store.upsert(chunk.to_vec()))?;
            }
            Ok(())
        };
        if !held(&segments)? {
            return lost(self);
        }
        fail::fail_point!("index-before-record");
        let finished = || {
            files::put_places(store, &job.places)?;
            files::put_record(store, &record(job, &indexed.stats, self.cx.made_by))
        };
        if !held(&finished)? {
            return lost(self);
        }
        store.flush()?;
        self.leases.release(fingerprint)?;
        self.let_go(job.replaces.iter())?;
        self.add(&indexed.stats);
        if indexed.stats.implausible > 0 {
            let note = crate::decode::implausible_note(&job.path, indexed.stats.implausible);
            self.cx.observer.warning(&note);
        }
        let partial = indexed
            .stats
            .truncated
            .map(Failure::Partial)
            .or_else(|| indexed.stats.unheard.clone().map(Failure::Unheard));
        for (n, place) in job.places.iter().enumerate() {
            let (status, segments) = match (n, &partial) {
                (_, Some(_)) => (Status::Partial, Some(indexed.stats.segments)),
                (0, None) => (Status::Indexed, Some(indexed.stats.segments)),
                _ => (Status::Copy, None),
            };
            self.report(Outcome {
                path: &place.os_path(),
                status,
                fingerprint: Some(fingerprint),
                segments,
                holder: None,
                failure: partial.as_ref(),
            });
        }
        Ok(())
    }

    fn add(&mut self, stats: &FileStats) {
        let s = &mut self.summary;
        s.hours += stats.duration / 3600.0;
        s.frames_sampled += stats.frames_sampled;
        s.frames_kept += stats.frames_kept;
        s.frames_captioned += stats.frames_captioned;
        s.cache_hits += stats.captioning.cache_hits;
        s.calls += stats.captioning.calls;
        s.segments += stats.segments;
        s.speech_segments += stats.speech_segments;
        s.transcribed_seconds += stats.transcribed_seconds;
        s.sent_seconds += stats.sent_seconds;
        s.usage += stats.captioning.usage;
    }
}

/// Forgets content that no machine holds at any path any more: its segments, record and
/// thumbnails. Whether it was forgotten. Done under the content's lease, which a machine
/// recording a new copy of it holds too, and looked at again once held.
fn let_go(
    leases: &Leases,
    thumbs: &Thumbs,
    fingerprint: &str,
    warn: &dyn Fn(&str),
) -> Result<bool, StoreError> {
    let store = leases.store();
    // A content this process is indexing now is not to be let go of (nor its lease given up).
    if leases.holds(fingerprint)
        || !files::unplaced(store, fingerprint)?
        || leases.claim(fingerprint)? != Claim::Won
    {
        return Ok(false);
    }
    let removed = files::unplaced(store, fingerprint).and_then(|unplaced| {
        if unplaced {
            files::remove(store, fingerprint)?;
        }
        Ok(unplaced)
    });
    leases.release(fingerprint)?;
    if !removed? {
        return Ok(false);
    }
    if let Err(e) = thumbs.remove(fingerprint) {
        warn(&format!(
            "cannot remove the thumbnails of {fingerprint}: {e}"
        ));
    }
    Ok(true)
}

/// What `forget` took out of the index.
#[derive(Debug, Default)]
pub struct Forgotten {
    /// This machine's paths removed.
    pub paths: usize,
    /// Contents no machine holds any more, removed with their segments.
    pub files: usize,
    /// Paths asked for under which nothing of this machine's was indexed.
    pub nothing_at: Vec<std::path::PathBuf>,
}

/// Removes this machine's paths at or under `targets` (they need not exist any more), and
/// every content left with no path on any machine.
pub fn forget(
    store: &dyn VectorStore,
    thumbs: &Thumbs,
    host: &str,
    targets: &[std::path::PathBuf],
    warn: &dyn Fn(&str),
) -> Result<Forgotten, StoreError> {
    let catalog = Catalog::load(store, host)?;
    if let Some(warning) = catalog.unreadable_warning() {
        warn(&warning);
    }
    let leases = Leases::new(store, Owner::this_process(host), DEFAULT_TTL);
    let mut forgotten = Forgotten::default();
    let mut done = std::collections::HashSet::new();
    let mut gone = std::collections::HashSet::new();
    for target in targets {
        let target = files::indexed_form(target).unwrap_or_else(|_| target.clone());
        // Paths of scenedex 0.1's records belong to no machine (listed in the record, or kept
        // as place points of no machine once another of them was forgotten), but are
        // forgotten when named. Whether each is a point of its own.
        let points = catalog
            .mine()
            .chain(catalog.all_places().filter(|p| p.host.is_empty()));
        let matching: Vec<(Place, bool)> = points
            .map(|p| (p, true))
            .chain(catalog.unclaimed().map(|p| (p, false)))
            .filter(|(p, _)| p.os_path().starts_with(&target) && !done.contains(&p.path))
            .map(|(p, point)| (p.clone(), point))
            .collect();
        if matching.is_empty() {
            forgotten.nothing_at.push(target);
        }
        done.extend(matching.iter().map(|(p, _)| p.path.clone()));
        for (place, point) in matching {
            if !point {
                keep_other_unclaimed(store, &catalog, &place, &done)?;
            }
            // An unclaimed path may have become a point of no machine when another of its
            // record's paths was forgotten before: that point goes too.
            files::drop_place(store, &place)?;
            forgotten.paths += 1;
            if let_go(&leases, thumbs, &place.fingerprint, warn)?
                && gone.insert(place.fingerprint.clone())
            {
                forgotten.files += 1;
            }
        }
    }
    store.flush()?;
    Ok(forgotten)
}

/// Forgetting one path of a scenedex 0.1 record, which lists its paths itself: the record's
/// other paths, but those being forgotten, become place points of no machine, so they
/// outlive it.
fn keep_other_unclaimed(
    store: &dyn VectorStore,
    catalog: &Catalog,
    forgotten: &Place,
    forgetting: &std::collections::HashSet<String>,
) -> Result<(), StoreError> {
    let others: Vec<Place> = catalog
        .unclaimed()
        .filter(|p| p.fingerprint == forgotten.fingerprint && !forgetting.contains(&p.path))
        .cloned()
        .collect();
    files::put_places(store, &others)
}

/// A worker's part of one job: claim it, and if it is still to do, run it.
fn work(cx: &Context, leases: &Leases, job: &Job) -> Done {
    match leases.claim(&job.fingerprint) {
        Err(e) => Done::Store(e),
        Ok(Claim::Held(holder)) => Done::Claimed(holder),
        Ok(Claim::Won) => match files::records_of(cx.store, std::slice::from_ref(&job.fingerprint))
        {
            Err(e) => Done::Store(e),
            Ok(records) if !records.is_empty() => Done::Finished,
            Ok(_) => {
                let fenced = Fenced {
                    inner: cx.pipeline.captioner,
                    leases,
                    fingerprint: &job.fingerprint,
                };
                let pipeline = cx.pipeline.with_captioner(&fenced);
                let progress = cx.observer.begin(&job.path);
                let result = pipeline.run(&job.path, &job.fingerprint, &*progress);
                progress(Progress::Done);
                let lost = matches!(
                    &result,
                    Err(FileError::Caption {
                        first: crate::caption::CaptionError::LeaseLost,
                        ..
                    })
                );
                match (leases.holds(&job.fingerprint) && !lost, result) {
                    (true, result) => Done::Indexed(result),
                    (false, Ok(indexed)) => Done::Lost(Some(indexed.stats)),
                    (
                        false,
                        Err(
                            FileError::Caption { spent, .. }
                            | FileError::Transcribe { spent, .. }
                            | FileError::Hear { spent, .. },
                        ),
                    ) => Done::Lost(Some(*spent)),
                    (false, Err(_)) => Done::Lost(None),
                }
            }
        },
    }
}

/// Renews the leases held until `working` goes false.
fn renew(leases: &Leases, working: &AtomicBool, observer: &dyn Observer) {
    let mut last = Instant::now();
    while working.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if last.elapsed() >= leases.renewal_interval() {
            last = Instant::now();
            // A lease lost is dropped from those held, which stops the work on its file.
            if let Err(e) = leases.renew() {
                observer.warning(&format!("cannot renew this run's claims: {e}"));
            }
        }
    }
}

fn record(job: &Job, stats: &FileStats, made_by: &Provenance) -> FileRecord {
    FileRecord {
        fingerprint: job.fingerprint.clone(),
        size: job.size,
        duration: (stats.duration * 1e6).round() / 1e6,
        frames_sampled: stats.frames_sampled,
        frames_kept: stats.frames_kept,
        frames_captioned: stats.frames_captioned,
        segments: stats.segments,
        captioner: made_by.captioner.clone(),
        prompt: made_by.prompt.clone(),
        style: made_by.style.clone(),
        indexed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        indexer: INDEXER.to_string(),
        places: Vec::new(),
        truncated: stats.truncated,
    }
}

/// What indexing would caption and cost, with nothing written and nothing spent.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct DryRun {
    pub files: usize,
    pub files_to_index: usize,
    /// Of those, files that stop before their declared length: indexed as far as they go.
    pub partial: usize,
    pub failed: usize,
    /// Seconds of sound in the files to index, as their audio streams declare.
    pub sound_seconds: f64,
    #[serde(flatten)]
    pub estimate: Estimate,
}

/// Counts what indexing would caption and cost: files the index already holds (unchanged, or
/// the same content elsewhere) are free; the rest are decoded and sampled, and their pictures
/// looked up in the caption cache. Failures are reported as they happen.
pub fn dry_run(
    found: &Found,
    catalog: &Catalog,
    pipeline: &Pipeline,
    observer: &dyn Observer,
    sound_stream: Option<usize>,
) -> Result<DryRun, RunError> {
    let rules = Rules {
        keep_missing: true,
        ..Rules::default()
    };
    let plan = plan::plan(catalog, found, rules);
    let mut dry = DryRun {
        files: found.videos.len(),
        ..Default::default()
    };
    let report = |path: &Path, failure: Failure| {
        observer.outcome(&Outcome {
            path,
            status: match failure {
                Failure::Partial(_) => Status::Partial,
                _ => Status::Failed,
            },
            fingerprint: None,
            segments: None,
            holder: None,
            failure: Some(&failure),
        })
    };
    for (path, why) in &found.problems {
        dry.failed += 1;
        report(path, Failure::Missing(why.clone()));
    }
    for action in plan.actions {
        if let Action::Failed { path, error } = action {
            dry.failed += 1;
            report(&path, Failure::Unreadable(error));
        }
    }
    let mut seen = Default::default();
    for job in &plan.jobs {
        if crate::stop::requested() {
            return Err(RunError::Interrupted);
        }
        let mut estimate = dry.estimate;
        let sampled = pipeline.windows(&job.path, &mut |window| {
            estimate.add(
                &window.pictures,
                pipeline.captioner,
                pipeline.settings,
                pipeline.cache,
                &mut seen,
            );
            Ok(())
        });
        match sampled {
            Ok(sampled) => {
                dry.estimate = estimate;
                dry.files_to_index += 1;
                dry.sound_seconds +=
                    crate::speech::audio::declared_seconds(&job.path, sound_stream).unwrap_or(0.0);
                if let Some(cut) = sampled.truncated {
                    dry.partial += 1;
                    report(&job.path, Failure::Partial(cut));
                }
            }
            Err(e) => {
                dry.failed += 1;
                report(&job.path, Failure::File(Arc::new(e)));
            }
        }
    }
    Ok(dry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EdgeStore;

    #[test]
    fn issue25_forget_reaches_a_path_of_scenedex_0_1_that_no_machine_claimed() {
        let dir = tempfile::tempdir().unwrap();
        let store = EdgeStore::open(&dir.path().join("index"), Some(("m", 4)), true).unwrap();
        let fingerprint = "0123456789abcdef0123456789abcdef";
        let old = serde_json::json!({
            "fingerprint": fingerprint, "size": 10, "duration": 1.0, "frames_sampled": 1,
            "frames_kept": 1, "frames_captioned": 1, "segments": 1, "captioner": "tagger/x",
            "prompt": "none", "style": "tags", "indexed_at": 1, "indexer": "scenedex 0.1.0",
            "record": "file",
            "places": [{"path": "/v/gone.mp4", "mtime_ns": 5}, {"path": "/w/kept.mp4", "mtime_ns": 6}]
        });
        store
            .upsert(vec![crate::store::Point {
                id: crate::store::file_id(fingerprint),
                vectors: None,
                payload: old.as_object().unwrap().clone(),
            }])
            .unwrap();
        let thumbs = Thumbs::new(dir.path().join("thumbs"));
        let gone = [std::path::PathBuf::from("/v/gone.mp4")];
        let forgotten = forget(&store, &thumbs, "here", &gone, &|_| {}).unwrap();
        assert_eq!((forgotten.paths, forgotten.files), (1, 0), "{forgotten:?}");
        let catalog = Catalog::load(&store, "here").unwrap();
        let left: Vec<&str> = catalog
            .places_of(fingerprint)
            .iter()
            .map(|p| p.path.as_str())
            .collect();
        assert_eq!(
            left,
            ["/w/kept.mp4"],
            "the other path is kept, still of no machine"
        );
        // Both paths of another such record, at once.
        let two = "0123456789abcdef0123456789abcdee";
        let mut both = old.clone();
        both["fingerprint"] = two.into();
        both["places"] = serde_json::json!([
            {"path": "/x/a.mp4", "mtime_ns": 1}, {"path": "/x/b.mp4", "mtime_ns": 2}
        ]);
        store
            .upsert(vec![crate::store::Point {
                id: crate::store::file_id(two),
                vectors: None,
                payload: both.as_object().unwrap().clone(),
            }])
            .unwrap();
        let folder = [std::path::PathBuf::from("/x")];
        let forgotten = forget(&store, &thumbs, "here", &folder, &|_| {}).unwrap();
        assert_eq!((forgotten.paths, forgotten.files), (2, 1), "{forgotten:?}");
        assert!(files::records_of(&store, &[two.to_string()])
            .unwrap()
            .is_empty());
        let kept = [std::path::PathBuf::from("/w/kept.mp4")];
        let forgotten = forget(&store, &thumbs, "here", &kept, &|_| {}).unwrap();
        assert_eq!(forgotten.nothing_at, Vec::<std::path::PathBuf>::new());
        assert_eq!(
            (forgotten.paths, forgotten.files),
            (1, 1),
            "its last path: it goes"
        );
        assert!(files::records_of(&store, &[fingerprint.to_string()])
            .unwrap()
            .is_empty());
    }
}
