//! Leases: how indexers that share a collection split the work without a coordinator. Before
//! decoding a file, an indexer claims its content with a lease point in the collection, written
//! by a conditional upsert that only replaces a lease that has expired (or is its own), then
//! read back: whoever's name is in it goes on. The owner renews its leases while it works and
//! removes each once the file's record is written. A machine that dies leaves leases that
//! expire, and the next indexer to meet those files takes them over.
//!
//! The same leases mark unfinished writes: segments whose file has no record and no live lease
//! are orphans of a crash, and `sweep` removes them.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::caption::{BoxFuture, CaptionError, Captioner, Reply, Request};
use crate::store::files::{self, FILE, LEASE, PLACE, SEGMENT};
use crate::store::{lease_id, Condition, Point, StoreError, VectorStore};

/// How long a lease lasts without renewal.
pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

/// One process: its machine, its id there, and a random part in case the id is reused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    nonce: String,
    /// What tells this process apart from one with the same host name and process id
    /// elsewhere; None where the system does not say.
    identity: Option<Identity>,
}

/// Where a process id means this process: one boot of one kernel, one process-id namespace
/// (containers with host networking share a host name, not their process ids), and the
/// process's start time (an id is reused once its process is gone).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    boot: String,
    pid_namespace: String,
    started: u64,
}

impl Identity {
    fn this_process() -> Option<Identity> {
        Some(Identity {
            boot: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()?
                .trim()
                .to_string(),
            pid_namespace: std::fs::read_link("/proc/self/ns/pid")
                .ok()?
                .to_string_lossy()
                .into_owned(),
            started: start_time(std::process::id())?,
        })
    }
}

/// When a process of this namespace started, in clock ticks since boot (`/proc/PID/stat`'s
/// 22nd field); None when there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces and parentheses.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

impl Owner {
    pub fn this_process(host: &str) -> Owner {
        Owner {
            host: host.to_string(),
            pid: std::process::id(),
            nonce: format!("{:016x}", random()),
            identity: Identity::this_process(),
        }
    }

    fn id(&self) -> String {
        format!("{}/{}/{}", self.host, self.pid, self.nonce)
    }
}

/// Who holds a file another indexer is working on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    Won,
    Held(Holder),
}

/// A lease point's payload.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Lease {
    record: String,
    fingerprint: String,
    owner: String,
    host: String,
    pid: u32,
    /// Seconds since the Unix epoch, by the owner's clock.
    expires: f64,
    /// The owner's `Identity`, in leases of scenedex versions that record it.
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    identity: Option<Identity>,
    /// Held while the file's frames are in batches (`index --batch`), for as long as a batch
    /// may run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    batch: bool,
}

pub struct Leases<'a> {
    store: &'a dyn VectorStore,
    owner: Owner,
    ttl: Duration,
    /// The leases held, each with when it was last confirmed (read back as this process's,
    /// unexpired), by this process's monotonic clock, which a pause or a clock change cannot
    /// fool.
    held: Mutex<HashMap<String, Instant>>,
    /// These are claims for files whose frames go in batches.
    batch: bool,
}

/// What a sweep found and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Segments of files that have no record, removed.
    pub segments: u64,
    /// Files whose unfinished writes were removed.
    pub files: u64,
}

impl<'a> Leases<'a> {
    pub fn new(store: &'a dyn VectorStore, owner: Owner, ttl: Duration) -> Leases<'a> {
        Leases {
            store,
            owner,
            ttl,
            held: Mutex::new(HashMap::new()),
            batch: false,
        }
    }

    /// Claims that last as long as batches may run (`ttl`), marked as a batch's.
    pub fn for_batches(store: &'a dyn VectorStore, owner: Owner, ttl: Duration) -> Leases<'a> {
        Leases {
            batch: true,
            ..Leases::new(store, owner, ttl)
        }
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    pub fn store(&self) -> &'a dyn VectorStore {
        self.store
    }

    /// Claims a file's content for this process, unless a live indexer holds it.
    pub fn claim(&self, fingerprint: &str) -> Result<Claim, StoreError> {
        self.claim_over(fingerprint, false)
    }

    /// Claims a file another process holds only for its batches (`for_batches`): once every
    /// frame of it is answered, the batches' work is done and any indexer may write it.
    pub fn take_over_batched(&self, fingerprint: &str) -> Result<Claim, StoreError> {
        self.claim_over(fingerprint, true)
    }

    fn claim_over(&self, fingerprint: &str, batched: bool) -> Result<Claim, StoreError> {
        // A lease removed between writing and reading back was finished by its owner: look
        // again, a bounded number of times.
        for _ in 0..3 {
            let asked = Instant::now();
            let now = now();
            let mut replaceable = vec![
                Condition::Between {
                    field: "expires".into(),
                    min: None,
                    max: Some(now),
                },
                Condition::equals("owner", self.owner.id()),
            ];
            if let Some(lease) = self.read(fingerprint)? {
                if lease.owner != self.owner.id() && lease.expires > now {
                    if !self.owner_is_dead(&lease) && !(batched && lease.batch) {
                        return Ok(Claim::Held(holder(&lease)));
                    }
                    replaceable.push(Condition::equals("owner", lease.owner.clone()));
                }
            }
            let point = self.point(fingerprint, now + self.ttl.as_secs_f64());
            self.store
                .upsert_where(vec![point], &[Condition::Either(replaceable)])?;
            match self.read(fingerprint)? {
                Some(lease) if lease.owner == self.owner.id() => {
                    self.held_set().insert(fingerprint.to_string(), asked);
                    return Ok(Claim::Won);
                }
                Some(lease) => return Ok(Claim::Held(holder(&lease))),
                None => continue,
            }
        }
        Ok(Claim::Held(Holder {
            host: "another indexer".into(),
            pid: 0,
        }))
    }

    /// Gives a lease up: the file is written, or given up on.
    pub fn release(&self, fingerprint: &str) -> Result<(), StoreError> {
        self.held_set().remove(fingerprint);
        self.store.delete(&[
            Condition::Ids(vec![lease_id(fingerprint)]),
            Condition::equals("owner", self.owner.id()),
        ])
    }

    /// Pushes the expiry of every lease held forward, and returns those this process no longer
    /// holds: gone, or taken over by another indexer while this one stalled past their expiry.
    /// Those are dropped from the leases held, so that work on them stops (`holds`).
    pub fn renew(&self) -> Result<Vec<String>, StoreError> {
        let held: Vec<String> = self.held_set().keys().cloned().collect();
        self.renew_these(&held)
    }

    /// Renews one lease now and says whether this process still holds it: what must precede
    /// every write of the file's segments, places and record.
    pub fn confirm(&self, fingerprint: &str) -> Result<bool, StoreError> {
        if !self.holds(fingerprint) {
            return Ok(false);
        }
        self.renew_these(&[fingerprint.to_string()])?;
        Ok(self.holds(fingerprint))
    }

    /// Whether this process holds the lease and confirmed it recently enough, by its own
    /// monotonic clock, that no other indexer can have taken it over: within half its length,
    /// which leaves the other half for clocks that differ and requests on their way.
    pub fn holds(&self, fingerprint: &str) -> bool {
        self.hold_ends(fingerprint)
            .is_some_and(|end| Instant::now() < end)
    }

    /// When this process stops trusting its hold on the file, by its monotonic clock: half
    /// the lease after its last confirmation. None when it holds no lease on it.
    pub fn hold_ends(&self, fingerprint: &str) -> Option<Instant> {
        self.held_set()
            .get(fingerprint)
            .map(|confirmed| *confirmed + self.ttl / 2)
    }

    /// Renews these leases: read first, so that a lease gone or another's is never written
    /// anew (a conditional upsert inserts a point that does not exist), then written where
    /// it is still this process's, then read back.
    fn renew_these(&self, fingerprints: &[String]) -> Result<Vec<String>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(Vec::new());
        }
        let asked = Instant::now();
        let now = now();
        let mine = |leases: &HashMap<String, Lease>, fingerprint: &String| {
            leases
                .get(fingerprint)
                .is_some_and(|l| l.owner == self.owner.id() && l.expires > now)
        };
        let before = self.read_all(fingerprints)?;
        let still: Vec<String> = fingerprints
            .iter()
            .filter(|f| mine(&before, f))
            .cloned()
            .collect();
        if !still.is_empty() {
            let expires = now + self.ttl.as_secs_f64();
            let points = still.iter().map(|f| self.point(f, expires)).collect();
            self.store.update_where(
                points,
                &[
                    Condition::equals("owner", self.owner.id()),
                    Condition::Between {
                        field: "expires".into(),
                        min: Some(now),
                        max: None,
                    },
                ],
            )?;
        }
        let after = self.read_all(&still)?;
        // Given up meanwhile: a server that ignores the update mode may have written the
        // lease anew after `release` removed it. (Not under the lock, which `holds` takes
        // before every caption request.)
        let given_up: Vec<String> = {
            let held = self.held_set();
            still
                .iter()
                .filter(|f| !held.contains_key(*f))
                .cloned()
                .collect()
        };
        for fingerprint in &given_up {
            self.store.delete(&[
                Condition::Ids(vec![lease_id(fingerprint)]),
                Condition::equals("owner", self.owner.id()),
            ])?;
        }
        let mut held = self.held_set();
        let mut lost = Vec::new();
        for fingerprint in fingerprints {
            if still.contains(fingerprint) && mine(&after, fingerprint) {
                if let Some(confirmed) = held.get_mut(fingerprint) {
                    *confirmed = asked;
                }
            } else if held.remove(fingerprint).is_some() {
                lost.push(fingerprint.clone());
            }
        }
        Ok(lost)
    }

    /// How often `renew` must run for leases never to lapse while their owner lives.
    pub fn renewal_interval(&self) -> Duration {
        self.ttl / 4
    }

    /// Removes what crashed writes left: segments and places of files that have no record
    /// and that no live indexer holds, and stale leases. Always looks at expired leases (the
    /// marks crashes leave); `everything` also looks at every fingerprint that has segments
    /// or places, which reads the whole index and so is for `stats`, not every run.
    pub fn sweep(&self, everything: bool) -> Result<Swept, StoreError> {
        let now = now();
        let mut stale: BTreeSet<String> = BTreeSet::new();
        for point in self.store.scroll(&[Condition::equals("record", LEASE)])? {
            if let Ok(lease) = serde_json::from_value::<Lease>(Value::Object(point.payload)) {
                if lease.expires <= now || self.owner_is_dead(&lease) {
                    stale.insert(lease.fingerprint);
                }
            }
        }
        let mut candidates = stale.clone();
        let mut placed: HashSet<String> = HashSet::new();
        if everything {
            let of = |kind| {
                self.store
                    .distinct("fingerprint", &[Condition::equals("record", kind)])
            };
            placed.extend(of(PLACE)?);
            candidates.extend(of(SEGMENT)?);
            candidates.extend(of(FILE)?);
            candidates.extend(placed.iter().cloned());
        }
        let mut swept = Swept::default();
        // A point of some other program's in a shared collection is not scenedex's to remove.
        let candidates: Vec<String> = candidates
            .into_iter()
            .filter(|f| super::thumbs::is_fingerprint(f))
            .collect();
        for chunk in candidates.chunks(1000) {
            let recorded = files::records_of(self.store, chunk)?;
            for fingerprint in chunk {
                let removed = match recorded.get(fingerprint) {
                    // A crash before the record was written.
                    None => self.take_over_and_release(fingerprint, |store| {
                        remove_if(store, fingerprint, |r| r.is_none())
                    })?,
                    // A crash between taking a file's last path away and removing it.
                    Some(Some(record))
                        if everything
                            && record.places.is_empty()
                            && !placed.contains(fingerprint) =>
                    {
                        self.take_over_and_release(fingerprint, |store| {
                            let unplaced = files::unplaced(store, fingerprint)?;
                            remove_if(store, fingerprint, |r| {
                                unplaced && matches!(r, Some(Some(r)) if r.places.is_empty())
                            })
                        })?
                    }
                    // A crash after the record was written: only the lease is left.
                    Some(_) if stale.contains(fingerprint) => {
                        self.take_over_and_release(fingerprint, |_| Ok(None))?
                    }
                    Some(_) => None,
                };
                if let Some(Some(segments)) = removed {
                    swept.segments += segments;
                    swept.files += 1;
                }
            }
        }
        Ok(swept)
    }

    fn take_over_and_release<T>(
        &self,
        fingerprint: &str,
        work: impl FnOnce(&dyn VectorStore) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        if self.claim(fingerprint)? != Claim::Won {
            return Ok(None);
        }
        let done = work(self.store);
        self.release(fingerprint)?;
        done.map(Some)
    }

    /// The leases of these fingerprints that exist, by fingerprint.
    fn read_all(&self, fingerprints: &[String]) -> Result<HashMap<String, Lease>, StoreError> {
        if fingerprints.is_empty() {
            return Ok(HashMap::new());
        }
        let ids: Vec<u64> = fingerprints.iter().map(|f| lease_id(f)).collect();
        Ok(self
            .store
            .get(&ids)?
            .into_iter()
            .filter_map(|r| serde_json::from_value::<Lease>(Value::Object(r.payload)).ok())
            .map(|lease| (lease.fingerprint.clone(), lease))
            .collect())
    }

    fn read(&self, fingerprint: &str) -> Result<Option<Lease>, StoreError> {
        Ok(self
            .store
            .get(&[lease_id(fingerprint)])?
            .into_iter()
            .next()
            .and_then(|r| serde_json::from_value(Value::Object(r.payload)).ok()))
    }

    fn point(&self, fingerprint: &str, expires: f64) -> Point {
        let lease = Lease {
            record: LEASE.into(),
            fingerprint: fingerprint.into(),
            owner: self.owner.id(),
            host: self.owner.host.clone(),
            pid: self.owner.pid,
            expires,
            identity: self.owner.identity.clone(),
            batch: self.batch,
        };
        let payload = match serde_json::to_value(lease).expect("leases serialize") {
            Value::Object(map) => map,
            _ => unreachable!("a struct serializes to an object"),
        };
        Point {
            id: lease_id(fingerprint),
            vectors: None,
            payload,
        }
    }

    /// A lease of another process on this machine whose process has ended: it will never be
    /// renewed, so there is no need to wait for it to expire (a run killed and started again).
    /// Only when the lease says which boot, process-id namespace and start time its process
    /// had, and they show the same machine's same namespace: the same host name is not enough
    /// (containers with host networking, two machines given one `SCENEDEX_HOST`). When unsure,
    /// the lease is left to expire.
    fn owner_is_dead(&self, lease: &Lease) -> bool {
        let (Some(mine), Some(theirs)) = (&self.owner.identity, &lease.identity) else {
            return false;
        };
        lease.host == self.owner.host
            && lease.owner != self.owner.id()
            && theirs.boot == mine.boot
            && theirs.pid_namespace == mine.pid_namespace
            && (lease.pid == self.owner.pid || start_time(lease.pid) != Some(theirs.started))
    }

    fn held_set(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A captioner that asks nothing more for a file once this process no longer holds its lease
/// (`Leases::holds`): an indexer resumed after stalling past its lease pays for nothing of a
/// file another indexer took over.
pub struct Fenced<'a> {
    pub inner: &'a dyn Captioner,
    pub leases: &'a Leases<'a>,
    pub fingerprint: &'a str,
}

impl Fenced<'_> {
    fn check(&self) -> Result<(), CaptionError> {
        match self.leases.holds(self.fingerprint) {
            true => Ok(()),
            false => Err(CaptionError::LeaseLost),
        }
    }
}

impl Captioner for Fenced<'_> {
    fn backend(&self) -> &str {
        self.inner.backend()
    }

    fn model(&self) -> &str {
        self.inner.model()
    }

    fn caption(&self, request: &Request) -> Result<Reply, CaptionError> {
        self.check()?;
        self.inner.caption(request)
    }

    fn image_tokens(&self, width: u32, height: u32) -> u64 {
        self.inner.image_tokens(width, height)
    }

    fn makes_tags(&self) -> bool {
        self.inner.makes_tags()
    }

    fn waits_on_network(&self) -> bool {
        self.inner.waits_on_network()
    }

    fn caption_future<'b>(&'b self, request: Request<'b>) -> BoxFuture<'b> {
        // Checked each time the request is to make progress, not only when it was queued: a
        // process resumed after a pause must not send a retry (its time-out fired meanwhile)
        // for a file another indexer took over. An answer still on its way then is not read.
        let mut inner = self.inner.caption_future(request);
        Box::pin(std::future::poll_fn(move |cx| {
            if let Err(lost) = self.check() {
                return std::task::Poll::Ready(Err(lost));
            }
            inner.as_mut().poll(cx)
        }))
    }
}

/// Removes everything of a content, if its record (looked at again now: the caller holds its
/// lease, so nobody else is writing it) passes the test; how many segments went.
fn remove_if(
    store: &dyn VectorStore,
    fingerprint: &str,
    test: impl FnOnce(Option<&Option<files::FileRecord>>) -> bool,
) -> Result<Option<u64>, StoreError> {
    let records = files::records_of(store, &[fingerprint.to_string()])?;
    if !test(records.get(fingerprint)) {
        return Ok(None);
    }
    let segments = store.count(&[
        Condition::equals("fingerprint", fingerprint),
        Condition::equals("record", SEGMENT),
    ])?;
    files::remove(store, fingerprint)?;
    Ok(Some(segments))
}

fn holder(lease: &Lease) -> Holder {
    Holder {
        host: lease.host.clone(),
        pid: lease.pid,
    }
}

/// A random number: std seeds each `RandomState` from the operating system.
fn random() -> u64 {
    rand::random()
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The name this machine's paths are tagged with: `SCENEDEX_HOST`, else the host name.
pub fn host_name() -> String {
    std::env::var("SCENEDEX_HOST")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| {
            nix::unistd::gethostname()
                .ok()
                .map(|h| h.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EdgeStore;

    fn store(dir: &std::path::Path) -> EdgeStore {
        EdgeStore::open(dir, Some(("test-model", 4)), true).unwrap()
    }

    /// Another process with this host name and process id, on this machine's boot and in this
    /// process's namespace.
    fn other(host: &str, pid: u32) -> Owner {
        Owner {
            host: host.into(),
            pid,
            nonce: "n".into(),
            identity: Identity::this_process(),
        }
    }

    fn lease_of(store: &EdgeStore, fingerprint: &str) -> Option<Lease> {
        Leases::new(store, other("x", 9), Duration::from_secs(1))
            .read(fingerprint)
            .unwrap()
    }

    #[test]
    fn issue25_a_renewal_says_which_leases_were_lost_and_never_writes_one_anew() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let paused = Leases::new(&store, other("a", 1), Duration::from_millis(200));
        let other_machine = Leases::new(&store, other("b", 2), Duration::from_secs(60));
        assert_eq!(paused.claim("taken").unwrap(), Claim::Won);
        assert_eq!(paused.claim("swept").unwrap(), Claim::Won);
        assert_eq!(paused.claim("kept").unwrap(), Claim::Won);
        std::thread::sleep(Duration::from_millis(250));
        // While `paused` stalled past its leases: one taken over, one swept (taken and let go).
        assert_eq!(other_machine.claim("taken").unwrap(), Claim::Won);
        assert_eq!(other_machine.claim("swept").unwrap(), Claim::Won);
        other_machine.release("swept").unwrap();
        let mut lost = paused.renew().unwrap();
        lost.sort();
        assert_eq!(lost, ["kept", "swept", "taken"], "kept lapsed too");
        assert!(
            lease_of(&store, "swept").is_none(),
            "a renewal never brings a lease back"
        );
        assert_eq!(
            lease_of(&store, "taken").unwrap().owner,
            other_machine.owner().id()
        );
        assert!(!paused.holds("taken") && !paused.confirm("taken").unwrap());
    }

    #[test]
    fn issue25_a_lease_not_confirmed_within_half_its_length_is_no_longer_held() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let leases = Leases::new(&store, other("a", 1), Duration::from_secs(2));
        assert_eq!(leases.claim("f").unwrap(), Claim::Won);
        assert!(leases.holds("f"));
        std::thread::sleep(Duration::from_millis(600));
        assert!(
            leases.confirm("f").unwrap(),
            "confirmed in time, and renewed"
        );
        std::thread::sleep(Duration::from_millis(600));
        assert!(leases.holds("f"), "the confirmation restarted the clock");
        std::thread::sleep(Duration::from_millis(600));
        assert!(!leases.holds("f"), "1.2 s unconfirmed is past half of 2 s");
        assert!(!leases.confirm("f").unwrap());
    }

    #[test]
    fn issue25_the_same_host_name_with_another_process_namespace_or_boot_is_not_declared_dead() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let here = Leases::new(&store, other("here", 1), Duration::from_secs(60));
        let with = |namespace: &str, boot: &str| Owner {
            identity: Identity::this_process().map(|i| Identity {
                pid_namespace: namespace.into(),
                boot: boot.into(),
                ..i
            }),
            ..other("here", 999_999_999)
        };
        let mine = Identity::this_process().unwrap();
        let cases = [
            ("container", with("pid:[1]", &mine.boot)),
            ("other boot", with(&mine.pid_namespace, "another-boot")),
            (
                "unknown",
                Owner {
                    identity: None,
                    ..other("here", 999_999_999)
                },
            ),
        ];
        for (what, owner) in cases {
            let fingerprint = format!("f-{what}");
            let theirs = Leases::new(&store, owner, Duration::from_secs(60));
            assert_eq!(theirs.claim(&fingerprint).unwrap(), Claim::Won);
            assert!(
                matches!(here.claim(&fingerprint).unwrap(), Claim::Held(_)),
                "{what}: a process that cannot be checked is left to its lease's expiry"
            );
        }
        // Our own namespace and boot, a live process id started at another time: reused.
        let reused = Owner {
            identity: Some(Identity {
                started: mine.started + 1,
                ..mine.clone()
            }),
            ..other("here", std::process::id())
        };
        let theirs = Leases::new(&store, reused, Duration::from_secs(60));
        assert_eq!(theirs.claim("reused").unwrap(), Claim::Won);
        let again = Leases::new(
            &store,
            Owner {
                pid: 1,
                ..other("here", 1)
            },
            Duration::from_secs(60),
        );
        assert_eq!(
            again.claim("reused").unwrap(),
            Claim::Won,
            "its process is gone"
        );
    }

    #[test]
    fn one_claimant_wins_and_the_other_is_told_who_holds_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let a = Leases::new(&store, other("a", 1), Duration::from_secs(60));
        let b = Leases::new(&store, other("b", 2), Duration::from_secs(60));
        assert_eq!(a.claim("f").unwrap(), Claim::Won);
        assert_eq!(
            b.claim("f").unwrap(),
            Claim::Held(Holder {
                host: "a".into(),
                pid: 1
            })
        );
        assert_eq!(a.claim("f").unwrap(), Claim::Won, "a claim is idempotent");
        a.release("f").unwrap();
        assert_eq!(b.claim("f").unwrap(), Claim::Won);
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_a_renewed_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let a = Leases::new(&store, other("a", 1), Duration::from_millis(300));
        let b = Leases::new(&store, other("b", 2), Duration::from_secs(60));
        assert_eq!(a.claim("kept").unwrap(), Claim::Won);
        assert_eq!(a.claim("dropped").unwrap(), Claim::Won);
        a.release("dropped").unwrap();
        a.held_set().insert("lapsed".into(), Instant::now());
        assert_eq!(a.claim("lapsed").unwrap(), Claim::Won);
        a.held_set().remove("lapsed");
        std::thread::sleep(Duration::from_millis(200));
        a.renew().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(matches!(b.claim("kept").unwrap(), Claim::Held(_)));
        assert_eq!(b.claim("lapsed").unwrap(), Claim::Won);
        // a's renewal no longer reaches a lease b took over.
        a.held_set().insert("lapsed".into(), Instant::now());
        a.renew().unwrap();
        assert!(matches!(a.claim("lapsed").unwrap(), Claim::Held(_)));
    }

    #[test]
    fn a_lease_of_a_dead_process_on_this_machine_is_taken_over_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // No process has this id: pids are far smaller.
        let dead = Leases::new(&store, other("here", 999_999_999), Duration::from_secs(60));
        assert_eq!(dead.claim("f").unwrap(), Claim::Won);
        let live_elsewhere = Leases::new(&store, other("there", 1), Duration::from_secs(60));
        assert!(matches!(live_elsewhere.claim("f").unwrap(), Claim::Held(_)));
        let here = Leases::new(&store, other("here", 1), Duration::from_secs(60));
        assert_eq!(here.claim("f").unwrap(), Claim::Won);
    }

    const CRASHED: &str = "c0000000000000000000000000000001";
    const WORKING: &str = "c0000000000000000000000000000002";
    const WHOLE: &str = "c0000000000000000000000000000003";
    const UNRECORDED: &str = "c0000000000000000000000000000004";
    const UNPLACED: &str = "c0000000000000000000000000000005";

    fn segment(fingerprint: &str, start: f64) -> Point {
        let payload =
            serde_json::json!({"record": SEGMENT, "fingerprint": fingerprint, "start": start});
        Point {
            id: crate::store::point_id(fingerprint, start),
            vectors: Some(crate::store::Vectors::new(vec![0.5; 4], "words".into())),
            payload: payload.as_object().unwrap().clone(),
        }
    }

    fn record(fingerprint: &str) -> files::FileRecord {
        serde_json::from_value(serde_json::json!({
            "fingerprint": fingerprint, "size": 1, "duration": 1.0, "frames_sampled": 1,
            "frames_kept": 1, "frames_captioned": 1, "segments": 1, "captioner": "c",
            "prompt": "p", "style": "s", "indexed_at": 0, "indexer": "test"
        }))
        .unwrap()
    }

    fn segments_of(store: &EdgeStore, fingerprint: &str) -> u64 {
        store
            .count(&[
                Condition::equals("record", SEGMENT),
                Condition::equals("fingerprint", fingerprint),
            ])
            .unwrap()
    }

    #[test]
    fn a_crashed_write_is_swept_once_its_lease_lapses_and_a_live_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        let crashed = Leases::new(&store, other("a", 1), Duration::from_millis(100));
        let working = Leases::new(&store, other("b", 2), Duration::from_secs(60));
        for (leases, fingerprint) in [(&crashed, CRASHED), (&working, WORKING)] {
            assert_eq!(leases.claim(fingerprint).unwrap(), Claim::Won);
            store
                .upsert(vec![segment(fingerprint, 0.0), segment(fingerprint, 2.0)])
                .unwrap();
        }
        std::thread::sleep(Duration::from_millis(200));
        let sweeper = Leases::new(&store, other("c", 3), Duration::from_secs(60));
        let swept = sweeper.sweep(false).unwrap();
        assert_eq!(
            swept,
            Swept {
                segments: 2,
                files: 1
            }
        );
        assert_eq!(segments_of(&store, CRASHED), 0);
        assert_eq!(segments_of(&store, WORKING), 2);
        assert_eq!(sweeper.sweep(false).unwrap(), Swept::default());
    }

    #[test]
    fn a_full_sweep_removes_what_no_record_or_no_path_holds_and_keeps_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path());
        // Whole: segments, a place, a record. Unrecorded: segments alone (an older crash).
        // Unplaced: a record and segments whose last path went away.
        for fingerprint in [WHOLE, UNRECORDED, UNPLACED] {
            store.upsert(vec![segment(fingerprint, 0.0)]).unwrap();
        }
        let place = files::Place {
            fingerprint: WHOLE.into(),
            host: "a".into(),
            path: "/v/whole.mp4".into(),
            mtime_ns: 1,
            dev: None,
            missing_since: None,
        };
        files::put_places(&store, &[place]).unwrap();
        files::put_record(&store, &record(WHOLE)).unwrap();
        files::put_record(&store, &record(UNPLACED)).unwrap();
        let sweeper = Leases::new(&store, other("c", 3), Duration::from_secs(60));
        assert_eq!(
            sweeper.sweep(false).unwrap(),
            Swept::default(),
            "no lease, no look"
        );
        assert_eq!(
            sweeper.sweep(true).unwrap(),
            Swept {
                segments: 2,
                files: 2
            }
        );
        assert_eq!(segments_of(&store, WHOLE), 1);
        assert_eq!(segments_of(&store, UNRECORDED), 0);
        assert_eq!(segments_of(&store, UNPLACED), 0);
        assert!(files::records_of(&store, &[UNPLACED.to_string()])
            .unwrap()
            .is_empty());
    }
}
