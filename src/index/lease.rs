//! Leases: how indexers that share a collection split the work without a coordinator. Before
//! decoding a file, an indexer claims its content with a lease point in the collection, written
//! by a conditional upsert that only replaces a lease that has expired (or is its own), then
//! read back: whoever's name is in it goes on. The owner renews its leases while it works and
//! removes each once the file's record is written. A machine that dies leaves leases that
//! expire, and the next indexer to meet those files takes them over.
//!
//! The same leases mark unfinished writes: segments whose file has no record and no live lease
//! are orphans of a crash, and `sweep` removes them.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
}

impl Owner {
    pub fn this_process(host: &str) -> Owner {
        Owner {
            host: host.to_string(),
            pid: std::process::id(),
            nonce: format!("{:016x}", random()),
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
}

pub struct Leases<'a> {
    store: &'a dyn VectorStore,
    owner: Owner,
    ttl: Duration,
    held: Mutex<HashSet<String>>,
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
            held: Mutex::new(HashSet::new()),
        }
    }

    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    /// Claims a file's content for this process, unless a live indexer holds it.
    pub fn claim(&self, fingerprint: &str) -> Result<Claim, StoreError> {
        // A lease removed between writing and reading back was finished by its owner: look
        // again, a bounded number of times.
        for _ in 0..3 {
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
                    if !self.owner_is_dead(&lease) {
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
                    self.held_set().insert(fingerprint.to_string());
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

    /// Pushes the expiry of every lease held forward; one that another indexer has taken
    /// over meanwhile (this process stalled past its expiry) is not touched.
    pub fn renew(&self) -> Result<(), StoreError> {
        let held: Vec<String> = self.held_set().iter().cloned().collect();
        if held.is_empty() {
            return Ok(());
        }
        let expires = now() + self.ttl.as_secs_f64();
        let points = held.iter().map(|f| self.point(f, expires)).collect();
        self.store.upsert_where(
            points,
            &[Condition::Either(vec![Condition::equals(
                "owner",
                self.owner.id(),
            )])],
        )
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
    fn owner_is_dead(&self, lease: &Lease) -> bool {
        lease.host == self.owner.host
            && lease.owner != self.owner.id()
            && (lease.pid == self.owner.pid || !alive(lease.pid))
    }

    fn held_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
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

fn alive(pid: u32) -> bool {
    use nix::errno::Errno;
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks that the process exists; EPERM means it does, as another user's.
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => true,
        Err(_) => false,
    }
}

/// A random number: std seeds each `RandomState` from the operating system.
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish()
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

    fn other(host: &str, pid: u32) -> Owner {
        Owner {
            host: host.into(),
            pid,
            nonce: "n".into(),
        }
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
        a.held_set().insert("lapsed".into());
        assert_eq!(a.claim("lapsed").unwrap(), Claim::Won);
        a.held_set().remove("lapsed");
        std::thread::sleep(Duration::from_millis(200));
        a.renew().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(matches!(b.claim("kept").unwrap(), Claim::Held(_)));
        assert_eq!(b.claim("lapsed").unwrap(), Claim::Won);
        // a's renewal no longer reaches a lease b took over.
        a.held_set().insert("lapsed".into());
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
            vectors: Some(crate::store::Vectors {
                dense: vec![0.5; 4],
                text: "words".into(),
            }),
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
