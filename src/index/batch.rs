//! `index --batch`: before files go through the pipeline, every frame the cache does not
//! answer is sent through the provider's batch API. Files whose frames are then all answered
//! go on as usual (their captions come from the cache); the others wait for a later run,
//! which collects the batches and indexes them exactly as a synchronous run would.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::lease::{Claim, Holder, Leases};
use super::plan::Job;
use super::run::{Context, RunError};
use super::{FileError, Pipeline};
use crate::caption::batch::{Batcher, Session, Tally};
use crate::caption::run::key;
use crate::caption::{CaptionError, Captioner, Reply, Request};

/// How a run uses a batch API.
pub struct Batching<'a> {
    pub batcher: &'a dyn Batcher,
    /// Wait for the batches to end before indexing; otherwise return once they are sent.
    pub wait: bool,
    /// Frames a batch could not answer are asked now, at the full price.
    pub fallback_sync: bool,
    pub poll: Duration,
}

/// The jobs split by whether their frames are answered.
pub struct Prepared {
    pub ready: Vec<Job>,
    /// Jobs with frames in batches still running.
    pub running: Vec<Job>,
    /// Jobs with frames a batch ended without answering: sent again on the next run.
    pub unanswered: Vec<Job>,
    /// Jobs another indexer holds (its batches carry their frames, or it indexes them).
    pub held: Vec<(Job, Holder)>,
    pub tally: Tally,
}

/// How long a file whose frames are in batches stays claimed: as long as a batch may run
/// (a day), so that machines with caches of their own do not batch it too. The claiming
/// process's next run on the same machine takes it over at once (its owner is gone); a
/// lease it never collects delays other machines by that day at most.
pub const BATCH_LEASE: Duration = Duration::from_secs(24 * 3600);

/// Sends what the jobs need through batches, and sorts the jobs by what is answered. Each
/// job is claimed for as long as a batch runs (`BATCH_LEASE`) before its frames are sent;
/// the run's own claim, by the same owner, takes it over when the job is indexed.
pub fn prepare(
    jobs: Vec<Job>,
    cx: &Context,
    batching: &Batching,
    leases: &Leases,
) -> Result<Prepared, RunError> {
    let pipeline = cx.pipeline;
    let cache = pipeline.cache.ok_or(RunError::Batch(CaptionError::Ledger(
        "no caption cache: batches keep their answers there".into(),
    )))?;
    let on = |event: &crate::caption::batch::Event| cx.observer.batch(event);
    let session = Session::open(batching.batcher, pipeline.settings, cache, &on)?;
    let claims = Leases::for_batches(cx.store, leases.owner().clone(), BATCH_LEASE);
    let (mut mine, mut theirs) = (Vec::new(), Vec::new());
    for job in jobs {
        match claims.claim(&job.fingerprint)? {
            Claim::Won => mine.push(job),
            Claim::Held(holder) => theirs.push((job, holder)),
        }
    }
    // Another indexer's: nothing of them is sent. Those whose frames are all answered all the
    // same (a cache or ledger shared with it) are indexed here, the rest left to it.
    let (their_jobs, holders): (Vec<Job>, Vec<Holder>) = theirs.into_iter().unzip();
    let their_needs = queue(&their_jobs, cx, None)?;
    let mut held = Vec::new();
    for ((job, holder), keys) in their_jobs.into_iter().zip(holders).zip(their_needs) {
        let answered = keys.iter().all(|k| cache.get(k).is_some());
        match answered {
            true if claims.take_over_batched(&job.fingerprint)? == Claim::Won => mine.push(job),
            _ => held.push((job, holder)),
        }
    }
    let jobs = mine;
    let sent = send(&jobs, cx, batching, &session);
    let (needs, running) = match sent {
        Ok(sent) => sent,
        Err(e) => {
            // Stopped (Ctrl-C, a refused batch): no claim of a day outlives the run for files
            // whose frames may be in no batch; the ledger keeps what was sent.
            for job in &jobs {
                let _ = claims.release(&job.fingerprint);
            }
            return Err(e);
        }
    };
    let pending: HashSet<String> = match running {
        0 => HashSet::new(),
        _ => session.pending()?,
    };
    let mut prepared = Prepared {
        ready: Vec::new(),
        running: Vec::new(),
        unanswered: Vec::new(),
        held,
        tally: session.tally(),
    };
    for (job, keys) in jobs.into_iter().zip(needs) {
        let open: Vec<&String> = keys.iter().filter(|k| cache.get(k).is_none()).collect();
        if open.is_empty() || batching.fallback_sync {
            prepared.ready.push(job);
        } else if open.iter().any(|k| pending.contains(*k)) {
            prepared.running.push(job);
        } else {
            prepared.unanswered.push(job);
        }
    }
    Ok(prepared)
}

/// Sends the jobs' unanswered frames and, with `wait`, waits for their batches; returns each
/// job's frames that wait for a batch, and how many batches still run.
fn send(
    jobs: &[Job],
    cx: &Context,
    batching: &Batching,
    session: &Session,
) -> Result<(Vec<Vec<String>>, usize), RunError> {
    let needs = queue(jobs, cx, Some(session))?;
    session.flush()?;
    let running = match batching.wait {
        true => {
            session.wait(batching.poll)?;
            0
        }
        false => session.check()?,
    };
    Ok((needs, running))
}

/// Samples every job (`jobs` at a time) and queues its unanswered frames in `session`; returns
/// each job's frames that wait for a batch (without a session, every frame's key). A file that cannot be sampled waits for nothing: the
/// pipeline reports it.
fn queue(
    jobs: &[Job],
    cx: &Context,
    session: Option<&Session>,
) -> Result<Vec<Vec<String>>, RunError> {
    let needs: Mutex<Vec<Vec<String>>> = Mutex::new(vec![Vec::new(); jobs.len()]);
    let failed: Mutex<Option<CaptionError>> = Mutex::new(None);
    let next = AtomicUsize::new(0);
    let pipeline = cx.pipeline;
    std::thread::scope(|scope| {
        for _ in 0..cx.settings.jobs.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                if crate::stop::requested() || failed.lock().is_ok_and(|f| f.is_some()) {
                    break;
                }
                let (mut waiting, mut refused) = (Vec::new(), None);
                // A file that cannot be sampled is left to the pipeline, which reports it.
                let _ = pipeline.windows(&job.path, &mut |window| {
                    for picture in &window.pictures {
                        let key = key(picture, pipeline.captioner, pipeline.settings);
                        // Without a session, only looked at: which frames are not answered.
                        let Some(session) = session else {
                            waiting.push(key);
                            continue;
                        };
                        match session.add(&key, picture) {
                            Ok(true) => waiting.push(key),
                            Ok(false) => {}
                            Err(e) => {
                                refused = Some(e);
                                return Err(FileError::Interrupted);
                            }
                        }
                    }
                    Ok(())
                });
                if let Some(e) = refused {
                    failed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                }
                needs.lock().unwrap_or_else(|e| e.into_inner())[i] = waiting;
            });
        }
    });
    if let Some(e) = failed.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e.into());
    }
    if crate::stop::requested() {
        return Err(RunError::Interrupted);
    }
    Ok(needs.into_inner().unwrap_or_else(|e| e.into_inner()))
}

/// A captioner that answers from the cache only: with `--batch`, a frame no batch answered
/// is never paid for at the full price unless the user asked for that.
pub struct CacheOnly<'a> {
    pub inner: &'a dyn Captioner,
}

impl Captioner for CacheOnly<'_> {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn caption(&self, _request: &Request) -> Result<Reply, CaptionError> {
        Err(CaptionError::NotBatched)
    }

    fn image_tokens(&self, width: u32, height: u32) -> u64 {
        self.inner.image_tokens(width, height)
    }
}

impl<'a> Pipeline<'a> {
    /// The same pipeline with another captioner.
    pub fn with_captioner(&self, captioner: &'a dyn Captioner) -> Pipeline<'a> {
        Pipeline {
            captioner,
            ..self.clone()
        }
    }
}
