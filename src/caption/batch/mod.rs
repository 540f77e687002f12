//! Batch APIs, for archives: half the price, answers within a day. OpenAI's Batch API and
//! Anthropic's Message Batches sit behind one small trait, `Batcher`; everything else here is
//! theirs in common.
//!
//! Every batch is recorded in a ledger beside the caption cache before it is created, and
//! again with its id once it exists, so a stopped run, or another machine sharing the cache,
//! collects it instead of paying for a second one. A create that fails without a clear answer
//! (a time-out, a dropped connection, a 5xx) is looked for in the provider's list of batches
//! before anything is sent again. Answers land in the caption cache, read with the same checks
//! as synchronous ones, where the ordinary run then finds them.

mod anthropic;
mod ledger;
mod openai;

use std::collections::HashSet;
use std::io::{BufRead, Seek, Write};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::cache::Cache;
use super::{
    read_reply, Caption, CaptionError, Captioner, Encoded, Reply, Request, Settings, Usage,
};
use ledger::{Ledger, Record};

/// How big one batch may be.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub requests: usize,
    /// Bytes of the requests as sent (the JSONL file or the JSON body).
    pub bytes: usize,
}

impl Limits {
    /// These limits with at most `size` requests, when given: never more than the provider's.
    pub fn at_most(self, size: Option<usize>) -> Limits {
        Limits {
            requests: size.map_or(self.requests, |n| n.clamp(1, self.requests)),
            ..self
        }
    }
}

/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    Completed,
    Failed,
    Expired,
    Cancelled,
}

impl End {
    pub fn name(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Failed => "failed",
            End::Expired => "expired",
            End::Cancelled => "cancelled",
        }
    }
}

/// Where a batch stands.
#[derive(Clone, Debug)]
pub struct State {
    /// None while it runs.
    pub ended: Option<End>,
    /// Requests finished, of the total.
    pub done: u64,
    pub total: u64,
    /// The provider's own words on a failure, when it gives any.
    pub detail: Option<String>,
}

/// One request's answer in a finished batch: the reply, or why there is none.
pub type Answer = (String, Result<Reply, String>);

/// A provider's batch API. Adding one is a new file implementing this.
pub trait Batcher: Send + Sync {
    /// The captioner whose requests the batches carry (its backend and model name them).
    fn captioner(&self) -> &dyn Captioner;
    /// Where the API lives, so that batches of one endpoint are never asked of another.
    fn endpoint(&self) -> &str;
    fn limits(&self) -> Limits;
    /// One request, as a line of the batch's input, identified by `key`.
    fn line(&self, key: &str, request: &Request) -> String;
    /// Creates a batch of these lines, once: a failure is never retried here, since the
    /// batch may exist all the same. `tag` names it where the provider keeps a name.
    fn create(&self, lines: &str, count: usize, tag: &str) -> Result<String, CaptionError>;
    /// The batch a create that failed without a clear answer may have made, looked for in
    /// the provider's whole list (every page) among batches created since `since` (Unix
    /// seconds, less clock skew) that no record of ours names (`known`): one with this tag,
    /// where the provider keeps one, or else those of this many requests, which only their
    /// answers can tell apart. Never a guess by count alone.
    fn find(&self, wanted: &Wanted, known: &HashSet<String>) -> Result<Lookup, CaptionError>;
    fn state(&self, id: &str) -> Result<State, CaptionError>;
    /// The answers of a batch that has ended, whatever it finished.
    fn results(&self, id: &str) -> Result<Vec<Answer>, CaptionError>;
}

/// A create whose answer was lost: what its batch would be.
pub struct Wanted<'a> {
    pub tag: &'a str,
    pub count: usize,
    pub since: u64,
}

/// What the provider's list says of a create whose answer was lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The batch, known by what it carries (our tag).
    Found(String),
    /// Batches that may be it; the one whose answers carry our requests' custom ids is.
    Maybe(Vec<String>),
    /// No batch can be it: the create made nothing.
    Nothing,
}

/// How far back a batch may have been created, by the provider's clock, and still be the one
/// a create made: clocks differ.
pub const CLOCK_SKEW: u64 = 120;

pub use anthropic::AnthropicBatches;
pub use openai::OpenAiBatches;

/// What a front end hears while batches go.
#[derive(Clone, Debug)]
pub enum Event {
    Submitted {
        id: String,
        requests: u64,
    },
    Progress {
        id: String,
        done: u64,
        total: u64,
    },
    /// A batch ended and what it finished is in the cache; `note` explains a batch that did
    /// not complete, or answers that could not be used.
    Ended {
        id: String,
        end: End,
        answered: u64,
        unanswered: u64,
        note: Option<String>,
    },
    /// A batch whose create failed without a clear answer was found all the same.
    Adopted {
        id: String,
    },
    /// A create failed without a clear answer, and several batches may be it: its pictures
    /// wait (never sent again) until those end and their answers tell which.
    Unmatched {
        candidates: Vec<String>,
        requests: u64,
    },
    /// The provider no longer knows a recorded batch (another key, results expired): the
    /// record is retired and its pictures are sent again, once.
    Retired {
        id: String,
        requests: u64,
        detail: String,
    },
}

/// What the batches of a run did, counted.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tally {
    /// Batches created by this run, and their requests.
    pub submitted: u64,
    pub requests: u64,
    /// Batches that ended and were collected, by whichever run made them.
    pub collected: u64,
    pub answered: u64,
    /// Requests of collected batches with no usable answer: sent again on the next run.
    pub unanswered: u64,
    /// Batches still running when the run ended.
    pub running: u64,
    /// Recorded batches the provider no longer knows, whose pictures were sent again.
    pub retired: u64,
    /// Tokens of the answers collected, billed at the batch price.
    pub usage: Usage,
}

/// A batch API at work for one run: the ledger, the requests waiting to go, the counts.
pub struct Session<'a> {
    batcher: &'a dyn Batcher,
    settings: &'a Settings<'a>,
    cache: &'a Cache,
    ledger: Ledger,
    on: &'a (dyn Fn(&Event) + Sync),
    spool: Mutex<Spool>,
    tally: Mutex<Tally>,
}

/// Request lines waiting to be sent, on disk so that an archive's pictures are never all in
/// memory at once.
struct Spool {
    file: Option<std::fs::File>,
    /// Keys spooled, or sent by this run.
    queued: HashSet<String>,
    count: usize,
    bytes: usize,
}

impl<'a> Session<'a> {
    /// Opens the ledger and collects every batch of this endpoint that has ended.
    pub fn open(
        batcher: &'a dyn Batcher,
        settings: &'a Settings<'a>,
        cache: &'a Cache,
        on: &'a (dyn Fn(&Event) + Sync),
    ) -> Result<Session<'a>, CaptionError> {
        let session = Session {
            batcher,
            settings,
            cache,
            ledger: Ledger::new(cache, batcher),
            on,
            spool: Mutex::new(Spool {
                file: None,
                queued: HashSet::new(),
                count: 0,
                bytes: 0,
            }),
            tally: Mutex::default(),
        };
        session.check()?;
        Ok(session)
    }

    /// Collects the batches of this endpoint that have ended, and settles creates that
    /// failed without a clear answer. Returns how many still run.
    pub fn check(&self) -> Result<usize, CaptionError> {
        let mut running = 0;
        for (path, record) in self.ledger.records()? {
            let id = match self.settle(&path, &record)? {
                Settled::Batch(id) => id,
                Settled::Waiting => {
                    running += 1;
                    continue;
                }
                Settled::Gone => continue,
            };
            let state = match self.batcher.state(&id) {
                Err(e) if is_unknown(&e) => {
                    self.retire(&path, &record, &id, &e);
                    continue;
                }
                state => state?,
            };
            match state.ended {
                None => {
                    running += 1;
                    (self.on)(&Event::Progress {
                        id,
                        done: state.done,
                        total: state.total,
                    });
                }
                Some(end) => self.collect(&path, &record, &id, end, &state)?,
            }
        }
        self.lock_tally().running = running as u64;
        Ok(running)
    }

    /// The id of a recorded batch. A record with none is a create that never answered: the
    /// provider's list says whether it made the batch, or which batches may be it; those are
    /// recorded, and once they have all ended their answers say which one carries this
    /// record's requests. A record that no batch can be is removed: its pictures are asked
    /// again.
    fn settle(&self, path: &std::path::Path, record: &Record) -> Result<Settled, CaptionError> {
        if let Some(id) = &record.id {
            return Ok(Settled::Batch(id.clone()));
        }
        let lookup = match record.candidates.is_empty() {
            true => self.lookup(record)?,
            false => self.match_candidates(record)?,
        };
        match lookup {
            Lookup::Found(id) => {
                self.adopt(record, &id)?;
                Ok(Settled::Batch(id))
            }
            Lookup::Maybe(candidates) => {
                if candidates != record.candidates {
                    self.unmatched(record, candidates)?;
                }
                Ok(Settled::Waiting)
            }
            Lookup::Nothing => {
                self.ledger.remove(path);
                Ok(Settled::Gone)
            }
        }
    }

    /// Looks for a lost create's batch in the provider's list, leaving out every batch a
    /// record of ours already names.
    fn lookup(&self, record: &Record) -> Result<Lookup, CaptionError> {
        let known: HashSet<String> = self
            .ledger
            .records()?
            .into_iter()
            .filter_map(|(_, r)| r.id)
            .collect();
        let wanted = Wanted {
            tag: &record.tag,
            count: record.keys.len(),
            since: record.created,
        };
        self.batcher.find(&wanted, &known)
    }

    /// Which of a record's candidate batches carries its requests, once they have all ended;
    /// `Maybe` while one still runs, `Nothing` when none does.
    fn match_candidates(&self, record: &Record) -> Result<Lookup, CaptionError> {
        let mut ended = Vec::new();
        for id in &record.candidates {
            match self.batcher.state(id) {
                Err(e) if is_unknown(&e) => continue,
                Err(e) => return Err(e),
                Ok(state) if state.ended.is_none() => {
                    return Ok(Lookup::Maybe(record.candidates.clone()))
                }
                Ok(_) => ended.push(id),
            }
        }
        for id in ended {
            let answers = match self.batcher.results(id) {
                Err(e) if is_unknown(&e) => continue,
                answers => answers?,
            };
            let carried: HashSet<&str> = answers.iter().map(|(key, _)| key.as_str()).collect();
            if record.keys.iter().all(|key| carried.contains(key.as_str())) {
                return Ok(Lookup::Found(id.clone()));
            }
        }
        Ok(Lookup::Nothing)
    }

    fn adopt(&self, record: &Record, id: &str) -> Result<(), CaptionError> {
        let adopted = Record {
            id: Some(id.to_string()),
            candidates: Vec::new(),
            ..record.clone()
        };
        self.ledger
            .write(&adopted)
            .map_err(|e| self.ledger_error(&e))?;
        (self.on)(&Event::Adopted { id: id.to_string() });
        Ok(())
    }

    fn unmatched(&self, record: &Record, candidates: Vec<String>) -> Result<(), CaptionError> {
        let waiting = Record {
            candidates: candidates.clone(),
            ..record.clone()
        };
        self.ledger
            .write(&waiting)
            .map_err(|e| self.ledger_error(&e))?;
        (self.on)(&Event::Unmatched {
            candidates,
            requests: record.keys.len() as u64,
        });
        Ok(())
    }

    /// Retires the record of a batch the provider no longer knows: its pictures are no longer
    /// pending, so this run sends them again.
    fn retire(&self, path: &std::path::Path, record: &Record, id: &str, why: &CaptionError) {
        self.ledger.remove(path);
        self.lock_tally().retired += 1;
        (self.on)(&Event::Retired {
            id: id.to_string(),
            requests: record.keys.len() as u64,
            detail: why.to_string(),
        });
    }

    fn collect(
        &self,
        path: &std::path::Path,
        record: &Record,
        id: &str,
        end: End,
        state: &State,
    ) -> Result<(), CaptionError> {
        let answers = match self.batcher.results(id) {
            Err(e) if is_unknown(&e) => {
                self.retire(path, record, id, &e);
                return Ok(());
            }
            answers => answers?,
        };
        let expected: HashSet<&str> = record.keys.iter().map(String::as_str).collect();
        let mut answered = HashSet::new();
        let mut usage = Usage::default();
        let mut refused = None;
        for (key, answer) in answers {
            if !expected.contains(key.as_str()) || answered.contains(&key) {
                continue;
            }
            match answer.map(|reply| self.caption(record, reply)) {
                Ok(Ok(caption)) => {
                    usage += caption.usage;
                    // A cache that cannot be written (a full disk) stops the run here, with
                    // the record kept: the next run collects the batch again.
                    if let Err(e) = self.cache.put(&key, &caption) {
                        return Err(self.ledger_error(&e));
                    }
                    answered.insert(key);
                }
                Ok(Err(e)) => {
                    refused.get_or_insert(e.to_string());
                }
                Err(why) => {
                    refused.get_or_insert(why);
                }
            }
        }
        let unanswered = (record.keys.len() - answered.len()) as u64;
        self.ledger.remove(path);
        {
            let mut tally = self.lock_tally();
            tally.collected += 1;
            tally.answered += answered.len() as u64;
            tally.unanswered += unanswered;
            tally.usage += usage;
        }
        let note = explain(end, state, answered.len() as u64, unanswered, refused);
        (self.on)(&Event::Ended {
            id: id.to_string(),
            end,
            answered: answered.len() as u64,
            unanswered,
            note,
        });
        Ok(())
    }

    /// An answer read as a synchronous one is: markers, length, the moderation object.
    fn caption(&self, record: &Record, reply: Reply) -> Result<Caption, CaptionError> {
        let captioner = self.batcher.captioner();
        let (text, kind, moderation) = read_reply(record.style, &reply.text, captioner.backend())?;
        Ok(Caption {
            text,
            kind,
            moderation,
            backend: captioner.backend().to_string(),
            // The model the batch asked, which a later run's --model may not be.
            model: match record.model.is_empty() {
                true => captioner.model().to_string(),
                false => record.model.clone(),
            },
            prompt: record.prompt.clone(),
            lang: record.lang.clone(),
            usage: reply.usage,
        })
    }

    /// The pictures that running batches (of any process) carry.
    pub fn pending(&self) -> Result<HashSet<String>, CaptionError> {
        Ok(self
            .ledger
            .records()?
            .into_iter()
            .flat_map(|(_, r)| r.keys)
            .collect())
    }

    /// Queues a picture for a batch, unless the cache or a batch already answers it; sends
    /// a batch as soon as one is full. Whether the picture waits for a batch.
    pub fn add(&self, key: &str, picture: &Encoded) -> Result<bool, CaptionError> {
        if self.cache.get(key).is_some() {
            return Ok(false);
        }
        let line = self.batcher.line(
            key,
            &Request {
                jpeg: &picture.jpeg,
                width: picture.width,
                height: picture.height,
                prompt: self.settings.prompt,
                lang: self.settings.lang,
            },
        );
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        if !spool.queued.insert(key.to_string()) {
            return Ok(true);
        }
        let limits = self.batcher.limits();
        // The body around the lines ({"requests": [...]}) is a few bytes.
        if spool.count > 0
            && (spool.count + 1 > limits.requests || spool.bytes + line.len() + 64 > limits.bytes)
        {
            self.send(&mut spool)?;
        }
        let file = match &mut spool.file {
            Some(file) => file,
            None => {
                let file = self
                    .ledger
                    .dir_created()
                    .and_then(tempfile::tempfile_in)
                    .map_err(|e| self.ledger_error(&e))?;
                spool.file.insert(file)
            }
        };
        writeln!(file, "{key}\t{line}").map_err(|e| self.ledger_error(&e))?;
        spool.count += 1;
        spool.bytes += line.len() + 1;
        Ok(true)
    }

    /// Sends what is queued.
    pub fn flush(&self) -> Result<(), CaptionError> {
        let mut spool = self.spool.lock().unwrap_or_else(|e| e.into_inner());
        self.send(&mut spool)
    }

    /// Creates one batch of the spooled requests, leaving out those another process sent
    /// meanwhile (the ledger's lock makes the check and the record one step).
    fn send(&self, spool: &mut Spool) -> Result<(), CaptionError> {
        let Some(mut file) = spool.file.take() else {
            return Ok(());
        };
        spool.count = 0;
        spool.bytes = 0;
        let _lock = self.ledger.lock().map_err(|e| self.ledger_error(&e))?;
        let pending = self.pending()?;
        file.rewind().map_err(|e| self.ledger_error(&e))?;
        let mut keys = Vec::new();
        let mut lines = String::new();
        for entry in std::io::BufReader::new(file).lines() {
            let entry = entry.map_err(|e| self.ledger_error(&e))?;
            let (key, line) = entry.split_once('\t').expect("spool lines hold a tab");
            if pending.contains(key) || self.cache.get(key).is_some() {
                continue;
            }
            keys.push(key.to_string());
            lines.push_str(line);
            lines.push('\n');
        }
        if keys.is_empty() {
            return Ok(());
        }
        let record = Record::new(self.batcher, self.settings, keys, now());
        let path = self
            .ledger
            .write(&record)
            .map_err(|e| self.ledger_error(&e))?;
        let id = match self.batcher.create(&lines, record.keys.len(), &record.tag) {
            Ok(id) => id,
            Err(e) if unclear(&e) => match self.lookup(&record)? {
                Lookup::Found(id) => {
                    (self.on)(&Event::Adopted { id: id.clone() });
                    id
                }
                // Recorded with its candidates: collected once they end, never sent again.
                Lookup::Maybe(candidates) => return self.unmatched(&record, candidates),
                Lookup::Nothing => {
                    self.ledger.remove(&path);
                    return Err(e);
                }
            },
            Err(e) => {
                self.ledger.remove(&path);
                return Err(e);
            }
        };
        let requests = record.keys.len() as u64;
        self.ledger
            .write(&Record {
                id: Some(id.clone()),
                ..record
            })
            .map_err(|e| self.ledger_error(&e))?;
        {
            let mut tally = self.lock_tally();
            tally.submitted += 1;
            tally.requests += requests;
        }
        (self.on)(&Event::Submitted { id, requests });
        Ok(())
    }

    /// Checks the batches every `poll` until none runs.
    pub fn wait(&self, poll: Duration) -> Result<(), CaptionError> {
        while self.check()? > 0 {
            sleep(poll)?;
        }
        Ok(())
    }

    pub fn tally(&self) -> Tally {
        self.lock_tally().clone()
    }

    fn lock_tally(&self) -> std::sync::MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ledger_error(&self, e: &std::io::Error) -> CaptionError {
        CaptionError::Ledger(format!("{}: {e}", self.ledger.dir().display()))
    }
}

/// Where a recorded batch stands.
enum Settled {
    Batch(String),
    /// A lost create whose candidate batches still run.
    Waiting,
    /// No batch: the record is removed and its pictures are asked again.
    Gone,
}

/// The provider does not know the batch (404): made with another key, or its results
/// expired. Asking again will not change that.
fn is_unknown(e: &CaptionError) -> bool {
    matches!(e, CaptionError::Status { status: 404, .. })
}

/// A create whose outcome is unknown: the batch may exist.
fn unclear(e: &CaptionError) -> bool {
    match e {
        CaptionError::Status { status, .. } => *status >= 500,
        CaptionError::Timeout { .. }
        | CaptionError::Unreachable { .. }
        | CaptionError::BadReply { .. } => true,
        _ => false,
    }
}

/// One line on a batch that did not answer everything; None when it did.
fn explain(
    end: End,
    state: &State,
    answered: u64,
    unanswered: u64,
    refused: Option<String>,
) -> Option<String> {
    if unanswered == 0 {
        return None;
    }
    let how = match end {
        End::Completed => "completed".to_string(),
        other => format!(
            "{}{}",
            other.name(),
            state
                .detail
                .as_deref()
                .map_or(String::new(), |d| format!(" ({d})"))
        ),
    };
    let why = refused.map_or(String::new(), |r| format!("; the first problem: {r}"));
    Some(format!(
        "{how} with {answered} of {} requests answered{why}; the {unanswered} left are sent again on the next run",
        answered + unanswered
    ))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sleeps, waking for Ctrl-C.
fn sleep(total: Duration) -> Result<(), CaptionError> {
    let mut waited = Duration::ZERO;
    while waited < total {
        if crate::stop::requested() {
            return Err(CaptionError::Interrupted);
        }
        let step = Duration::from_millis(100).min(total - waited);
        std::thread::sleep(step);
        waited += step;
    }
    Ok(())
}

/// What `caption --batch` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BatchReport {
    /// The batches created or collected.
    pub ids: Vec<String>,
    /// Requests sent, and answers collected, by this run.
    pub requests: u64,
    pub answered: u64,
    /// Pictures still without an answer.
    pub failed: u64,
    pub usage: Usage,
}

/// Sends the pictures the cache does not answer yet, waits for their batches, and stores
/// the answers in the cache. None when the cache already had them all.
pub fn run(
    batcher: &dyn Batcher,
    pictures: &[(String, &Encoded)],
    settings: &Settings,
    cache: &Cache,
    poll: Duration,
    on: &(dyn Fn(&Event) + Sync),
) -> Result<Option<BatchReport>, CaptionError> {
    if pictures.iter().all(|(key, _)| cache.get(key).is_some()) {
        return Ok(None);
    }
    let ids = Mutex::new(Vec::new());
    let seen = |event: &Event| {
        match event {
            Event::Submitted { id, .. } | Event::Ended { id, .. } => {
                let mut ids = ids.lock().unwrap_or_else(|e| e.into_inner());
                if !ids.contains(id) {
                    ids.push(id.clone());
                }
            }
            _ => {}
        }
        on(event);
    };
    let session = Session::open(batcher, settings, cache, &seen)?;
    for (key, picture) in pictures {
        session.add(key, picture)?;
    }
    session.flush()?;
    session.wait(poll)?;
    let tally = session.tally();
    let failed = pictures
        .iter()
        .map(|(key, _)| key)
        .collect::<HashSet<_>>()
        .into_iter()
        .filter(|key| cache.get(key).is_none())
        .count() as u64;
    Ok(Some(BatchReport {
        ids: ids.into_inner().unwrap_or_else(|e| e.into_inner()),
        requests: tally.requests,
        answered: tally.answered,
        failed,
        usage: tally.usage,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caption::{Prompt, Style};

    /// Records the batches it is asked to create; answers nothing else. It stands in for the
    /// paid service only: the splitting under test is ours.
    struct Recorder {
        limits: Limits,
        created: Mutex<Vec<usize>>,
    }

    impl Captioner for Recorder {
        fn backend(&self) -> &str {
            "recorder"
        }
        fn model(&self) -> &str {
            "m"
        }
        fn caption(&self, _: &Request) -> Result<Reply, CaptionError> {
            Err(CaptionError::NotBatched)
        }
        fn image_tokens(&self, _: u32, _: u32) -> u64 {
            0
        }
    }

    impl Batcher for Recorder {
        fn captioner(&self) -> &dyn Captioner {
            self
        }
        fn endpoint(&self) -> &str {
            "http://recorder"
        }
        fn limits(&self) -> Limits {
            self.limits
        }
        fn line(&self, key: &str, request: &Request) -> String {
            format!("{key}:{}", request.jpeg.len())
        }
        fn create(&self, lines: &str, count: usize, _: &str) -> Result<String, CaptionError> {
            assert_eq!(lines.lines().count(), count);
            assert!(lines.len() <= self.limits.bytes, "{} bytes", lines.len());
            let mut created = self.created.lock().unwrap();
            created.push(count);
            Ok(format!("b{}", created.len()))
        }
        fn find(&self, _: &Wanted, _: &HashSet<String>) -> Result<Lookup, CaptionError> {
            Ok(Lookup::Nothing)
        }
        fn state(&self, _: &str) -> Result<State, CaptionError> {
            Ok(State {
                ended: None,
                done: 0,
                total: 0,
                detail: None,
            })
        }
        fn results(&self, _: &str) -> Result<Vec<Answer>, CaptionError> {
            Ok(Vec::new())
        }
    }

    fn split(limits: Limits, pictures: usize) -> Vec<usize> {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let prompt = Prompt::load(Style::Search, None).unwrap();
        let settings = Settings {
            style: Style::Search,
            prompt: &prompt,
            lang: None,
            detail: "",
            concurrency: 1,
        };
        let recorder = Recorder {
            limits,
            created: Mutex::default(),
        };
        let session = Session::open(&recorder, &settings, &cache, &|_| {}).unwrap();
        let picture = Encoded {
            jpeg: vec![0; 10],
            width: 1,
            height: 1,
        };
        for n in 0..pictures {
            // The same key twice is one request.
            for _ in 0..2 {
                session.add(&format!("{n:064}"), &picture).unwrap();
            }
        }
        session.flush().unwrap();
        assert_eq!(session.pending().unwrap().len(), pictures);
        recorder.created.into_inner().unwrap()
    }

    #[test]
    fn batches_are_split_at_the_request_limit() {
        let limits = Limits {
            requests: 2,
            bytes: 1 << 20,
        };
        assert_eq!(split(limits, 5), [2, 2, 1]);
    }

    #[test]
    fn batches_are_split_at_the_byte_limit() {
        // Each line is 67 bytes and a newline; the body around them is counted at 64.
        let limits = Limits {
            requests: 100,
            bytes: 64 + 3 * 69,
        };
        assert_eq!(split(limits, 7), [3, 3, 1]);
    }
}
