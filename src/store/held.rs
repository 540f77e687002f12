//! One holder, many users. Only one process at a time may open an embedded index (qdrant-edge
//! keeps it in that process's memory, and the folder's lock says whose it is). That process,
//! the holder, answers the others over a Unix socket in the index's folder (`holder.sock`,
//! owner-only like the folder): `search`, `export`, `stats`, `cut` and a second `serve` read
//! through it while `index` or `serve` runs, and an `index` started beside `serve` writes
//! through it, its claims and leases taking turns with the holder's as on a Qdrant server. A
//! reader sends only reads. When the holder exits, a user waiting on it holds the index itself
//! (or reaches whoever did), so a page left open outlives the run that started first.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Condition, EdgeStore, Hit, Page, Point, Query, Record, StoreError, VectorStore};

/// The holder's socket, in the index's folder.
pub const SOCKET: &str = "holder.sock";
/// How long a command waits for a holder that has the lock but no socket yet: one that is
/// just starting. Past it, the holder is one that answers no one.
const FIRST_ANSWER: Duration = Duration::from_secs(2);
/// How much longer a command waits on a holder that is a scenedex: one loading a big index
/// answers once it has it.
const LOADING: Duration = Duration::from_secs(30);
/// How long a user of a holder that went away waits for the index to be free or held again.
const TAKE_OVER: Duration = Duration::from_secs(15);
/// The longest a request may wait for its answer: a holder paused past it is given up.
const PATIENCE: Duration = Duration::from_secs(300);
/// How long a holder that stops waits for requests it is answering to finish.
const FINISH: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize)]
enum Request {
    Hello,
    Upsert(Vec<Point>),
    UpsertWhere(Vec<Point>, Vec<Condition>),
    UpdateWhere(Vec<Point>, Vec<Condition>),
    Get(Vec<u64>),
    Distinct(String, Vec<Condition>),
    Delete(Vec<Condition>),
    Scroll(Vec<Condition>),
    Page(Option<u64>, usize),
    Search {
        dense: Vec<f32>,
        text: String,
        limit: usize,
        filter: Vec<Condition>,
    },
    Count(Vec<Condition>),
    Flush,
    Optimize,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Hello {
        model: String,
        dimension: usize,
        describe: String,
        pid: u32,
    },
    Done,
    Records(Vec<Record>),
    Values(Vec<String>),
    Page(Page),
    Hits(Vec<Hit>),
    Count(u64),
    Failed(StoreError),
}

/// What the holder answers to one request, done on its own store.
fn answer(store: &EdgeStore, request: Request) -> Reply {
    fn reply<T>(result: Result<T, StoreError>, ok: impl FnOnce(T) -> Reply) -> Reply {
        result.map_or_else(Reply::Failed, ok)
    }
    let done = |_| Reply::Done;
    match request {
        Request::Hello => Reply::Hello {
            model: store.model(),
            dimension: store.dimension(),
            describe: store.describe(),
            pid: std::process::id(),
        },
        Request::Upsert(points) => reply(store.upsert(points), done),
        Request::UpsertWhere(points, filter) => reply(store.upsert_where(points, &filter), done),
        Request::UpdateWhere(points, filter) => reply(store.update_where(points, &filter), done),
        Request::Get(ids) => reply(store.get(&ids), Reply::Records),
        Request::Distinct(field, filter) => reply(store.distinct(&field, &filter), Reply::Values),
        Request::Delete(filter) => reply(store.delete(&filter), done),
        Request::Scroll(filter) => reply(store.scroll(&filter), Reply::Records),
        Request::Page(from, limit) => reply(store.page(from, limit), Reply::Page),
        Request::Search {
            dense,
            text,
            limit,
            filter,
        } => {
            let query = Query {
                dense: &dense,
                text: &text,
                limit,
                filter,
            };
            reply(store.search(&query), Reply::Hits)
        }
        Request::Count(filter) => reply(store.count(&filter), Reply::Count),
        Request::Flush => reply(store.flush(), done),
        Request::Optimize => reply(store.optimize(), done),
    }
}

/// The socket of the process holding an index, answering every other process of this user.
struct Holder {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    /// The connections being answered, by number, so that stopping can end them.
    open: Arc<Mutex<HashMap<u64, UnixStream>>>,
    store: Arc<EdgeStore>,
}

impl Holder {
    fn start(dir: &Path, store: Arc<EdgeStore>) -> std::io::Result<Holder> {
        let path = dir.join(SOCKET);
        // The lock is this process's: a socket already there is a holder's that died.
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(HashMap::new()));
        let accept = {
            let (stop, open, store) = (stop.clone(), open.clone(), store.clone());
            std::thread::spawn(move || {
                for (n, conn) in (0u64..).zip(listener.incoming()) {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else {
                        // Out of descriptors, say: wait rather than spin.
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    };
                    if let Ok(clone) = conn.try_clone() {
                        lock(&open).insert(n, clone);
                    }
                    let (store, open) = (store.clone(), open.clone());
                    std::thread::spawn(move || {
                        answer_all(conn, &store);
                        lock(&open).remove(&n);
                    });
                }
            })
        };
        Ok(Holder {
            path,
            stop,
            accept: Some(accept),
            open,
            store,
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Answers one connection's requests, a line of JSON each way, until it closes.
fn answer_all(conn: UnixStream, store: &EdgeStore) {
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else { return };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(request) => answer(store, request),
            Err(e) => Reply::Failed(StoreError::Engine(format!(
                "the holder cannot read a request ({e}); are both the same scenedex?"
            ))),
        };
        let Ok(mut text) = serde_json::to_string(&reply) else {
            return;
        };
        text.push('\n');
        if out.write_all(text.as_bytes()).is_err() {
            return;
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the loop waiting for the next connection.
        let _ = UnixStream::connect(&self.path);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let _ = std::fs::remove_file(&self.path);
        for (_, conn) in lock(&self.open).drain() {
            let _ = conn.shutdown(std::net::Shutdown::Read);
        }
        // A request being answered finishes (a write is never cut in two), then its thread
        // lets go of the store, which flushes and unlocks as this process drops it.
        let deadline = Instant::now() + FINISH;
        while Arc::strong_count(&self.store) > 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A connection to the holder, as a store.
struct Client {
    /// A request went unanswered or half answered: a late answer would answer the next.
    broken: AtomicBool,
    dir: PathBuf,
    conn: Mutex<(BufReader<UnixStream>, UnixStream)>,
    model: String,
    dimension: usize,
    describe: String,
}

impl Client {
    /// The holder of the index in `dir`, if one answers.
    fn connect(dir: &Path) -> Option<Client> {
        let stream = UnixStream::connect(dir.join(SOCKET)).ok()?;
        stream.set_read_timeout(Some(FIRST_ANSWER)).ok()?;
        let reader = BufReader::new(stream.try_clone().ok()?);
        let mut client = Client {
            broken: AtomicBool::new(false),
            dir: dir.to_path_buf(),
            conn: Mutex::new((reader, stream)),
            model: String::new(),
            dimension: 0,
            describe: String::new(),
        };
        let Ok(Reply::Hello {
            model,
            dimension,
            describe,
            pid: _,
        }) = client.ask(&Request::Hello)
        else {
            return None;
        };
        (client.model, client.dimension, client.describe) = (model, dimension, describe);
        let conn = client.conn.get_mut().unwrap_or_else(|p| p.into_inner());
        conn.1.set_read_timeout(Some(PATIENCE)).ok()?;
        conn.1.set_write_timeout(Some(PATIENCE)).ok()?;
        Some(client)
    }

    fn ask(&self, request: &Request) -> Result<Reply, StoreError> {
        let gone = |detail: String| {
            self.broken.store(true, Ordering::SeqCst);
            StoreError::HolderGone {
                dir: self.dir.clone(),
                detail,
            }
        };
        if self.broken.load(Ordering::SeqCst) {
            return Err(gone("an earlier request went unanswered".into()));
        }
        let mut text = serde_json::to_string(request).map_err(|e| gone(e.to_string()))?;
        text.push('\n');
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.1
            .write_all(text.as_bytes())
            .map_err(|e| gone(e.to_string()))?;
        let mut line = String::new();
        match conn.0.read_line(&mut line) {
            Ok(0) => return Err(gone("it closed the connection".into())),
            Ok(_) => {}
            Err(e) => return Err(gone(e.to_string())),
        }
        match serde_json::from_str(&line).map_err(|e| gone(e.to_string()))? {
            Reply::Failed(e) => Err(e),
            reply => Ok(reply),
        }
    }

    fn done(&self, request: &Request) -> Result<(), StoreError> {
        self.ask(request).map(|_| ())
    }

    fn unexpected(&self) -> StoreError {
        StoreError::Engine(
            "the holder answered another question; are both the same scenedex?".into(),
        )
    }
}

impl VectorStore for Client {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn model(&self) -> String {
        self.model.clone()
    }

    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        self.done(&Request::Upsert(points))
    }

    fn upsert_where(&self, points: Vec<Point>, filter: &[Condition]) -> Result<(), StoreError> {
        self.done(&Request::UpsertWhere(points, filter.to_vec()))
    }

    fn update_where(&self, points: Vec<Point>, filter: &[Condition]) -> Result<(), StoreError> {
        self.done(&Request::UpdateWhere(points, filter.to_vec()))
    }

    fn get(&self, ids: &[u64]) -> Result<Vec<Record>, StoreError> {
        match self.ask(&Request::Get(ids.to_vec()))? {
            Reply::Records(records) => Ok(records),
            _ => Err(self.unexpected()),
        }
    }

    fn distinct(&self, field: &str, filter: &[Condition]) -> Result<Vec<String>, StoreError> {
        match self.ask(&Request::Distinct(field.into(), filter.to_vec()))? {
            Reply::Values(values) => Ok(values),
            _ => Err(self.unexpected()),
        }
    }

    fn delete(&self, filter: &[Condition]) -> Result<(), StoreError> {
        self.done(&Request::Delete(filter.to_vec()))
    }

    fn scroll(&self, filter: &[Condition]) -> Result<Vec<Record>, StoreError> {
        match self.ask(&Request::Scroll(filter.to_vec()))? {
            Reply::Records(records) => Ok(records),
            _ => Err(self.unexpected()),
        }
    }

    fn page(&self, from: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        match self.ask(&Request::Page(from, limit))? {
            Reply::Page(page) => Ok(page),
            _ => Err(self.unexpected()),
        }
    }

    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError> {
        let request = Request::Search {
            dense: query.dense.to_vec(),
            text: query.text.to_string(),
            limit: query.limit,
            filter: query.filter.clone(),
        };
        match self.ask(&request)? {
            Reply::Hits(hits) => Ok(hits),
            _ => Err(self.unexpected()),
        }
    }

    fn count(&self, filter: &[Condition]) -> Result<u64, StoreError> {
        match self.ask(&Request::Count(filter.to_vec()))? {
            Reply::Count(n) => Ok(n),
            _ => Err(self.unexpected()),
        }
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.done(&Request::Flush)
    }

    fn optimize(&self) -> Result<(), StoreError> {
        self.done(&Request::Optimize)
    }
}

enum Inner {
    /// This process holds the index, and answers others (unless its socket could not be made).
    Own {
        _holder: Option<Holder>,
        store: Arc<EdgeStore>,
    },
    /// Another process does.
    Client(Client),
}

impl Inner {
    fn store(&self) -> &dyn VectorStore {
        match self {
            Inner::Own { store, .. } => store.as_ref(),
            Inner::Client(client) => client,
        }
    }
}

/// An embedded index, held by this process or reached through the one that holds it.
pub struct Shared {
    dir: PathBuf,
    model: Option<(String, usize)>,
    inner: RwLock<Inner>,
    /// Written through a holder since its last flush: a holder killed now loses them, as
    /// qdrant-edge does not replay its log, so they cannot be taken as done.
    unflushed: AtomicBool,
}

impl Shared {
    /// Opens the index in `dir` as `EdgeStore::open` does; when another process holds it, its
    /// holder is used instead, and only a holder that answers no one is an error.
    pub fn open(
        dir: &Path,
        model: Option<(&str, usize)>,
        create: bool,
    ) -> Result<Shared, StoreError> {
        let model = model.map(|(m, d)| (m.to_string(), d));
        let inner = take(dir, model.as_ref(), create, FIRST_ANSWER)?;
        Ok(Shared {
            dir: dir.to_path_buf(),
            model,
            inner: RwLock::new(inner),
            unflushed: AtomicBool::new(false),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` on the store; if the holder went away meanwhile, on the next one, unless
    /// writes it had not flushed may have gone with it: then the caller's work is undone
    /// (the file fails, and the next run does it again).
    fn call<T>(
        &self,
        writes: bool,
        work: impl Fn(&dyn VectorStore) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let first = work(self.read().store());
        let detail = match first {
            Err(StoreError::HolderGone { detail, .. }) => detail,
            Ok(value) => {
                if writes && matches!(*self.read(), Inner::Client(_)) {
                    self.unflushed.store(true, Ordering::SeqCst);
                }
                return Ok(value);
            }
            other => return other,
        };
        {
            let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
            if let Inner::Client(_) = *inner {
                *inner = take(&self.dir, self.model.as_ref(), false, TAKE_OVER)?;
            }
        }
        if self.unflushed.swap(false, Ordering::SeqCst) {
            return Err(StoreError::HolderGone {
                dir: self.dir.clone(),
                detail: format!("{detail}; what it had not yet saved of this run's work is lost"),
            });
        }
        let again = work(self.read().store());
        if writes && again.is_ok() && matches!(*self.read(), Inner::Client(_)) {
            self.unflushed.store(true, Ordering::SeqCst);
        }
        again
    }

    fn flush_through(&self) -> Result<(), StoreError> {
        self.call(false, |s| s.flush())?;
        self.unflushed.store(false, Ordering::SeqCst);
        Ok(())
    }
}

/// The index in `dir`: held by this process if it is free, else reached through its holder,
/// waiting up to `patience` for one of the two.
fn take(
    dir: &Path,
    model: Option<&(String, usize)>,
    create: bool,
    patience: Duration,
) -> Result<Inner, StoreError> {
    let deadline = Instant::now() + patience;
    loop {
        let asked = model.map(|(m, d)| (m.as_str(), *d));
        match EdgeStore::open(dir, asked, create) {
            Ok(store) => {
                let store = Arc::new(store);
                // Without a socket (a path too long for one) the index is this process's
                // alone, as before holders answered.
                let holder = Holder::start(dir, store.clone()).ok();
                return Ok(Inner::Own {
                    _holder: holder,
                    store,
                });
            }
            Err(StoreError::InUse { dir, pid }) => {
                if let Some(client) = Client::connect(&dir) {
                    check_model(&client, model)?;
                    return Ok(Inner::Client(client));
                }
                let pid = locker(&dir).unwrap_or(pid);
                let program = program_of(&pid);
                // A scenedex may take a while to load a big index before it answers.
                let waited = match program == "scenedex" {
                    true => deadline + LOADING,
                    false => deadline,
                };
                if Instant::now() >= waited {
                    return Err(StoreError::HeldSilently { dir, pid, program });
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The holder's model must be the one asked for, as when opening the index itself.
fn check_model(client: &Client, model: Option<&(String, usize)>) -> Result<(), StoreError> {
    match model {
        Some((name, dimension)) if *name != client.model || *dimension != client.dimension => {
            Err(StoreError::ModelMismatch {
                place: client.describe.clone(),
                built_with: client.model.clone(),
                built_dimension: client.dimension,
                asked: name.clone(),
                asked_dimension: *dimension,
            })
        }
        _ => Ok(()),
    }
}

/// The process that holds the lock on the index's lock file, as the kernel lists it: the pid
/// written in the file is the last scenedex's, and another program may hold it.
fn locker(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(dir.join("lock")).ok()?.ino().to_string();
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiting lock has "->" after "1:".
    locks
        .lines()
        .filter(|l| !l.contains("->"))
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (pid, file) = (fields.get(4)?, fields.get(5)?);
            (file.rsplit(':').next()? == inode).then(|| pid.to_string())
        })
}

/// The name of the program running as `pid`, for a message.
fn program_of(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "gone".into())
}

impl VectorStore for Shared {
    fn describe(&self) -> String {
        self.read().store().describe()
    }

    fn model(&self) -> String {
        self.read().store().model()
    }

    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        self.call(true, |s| s.upsert(points.clone()))
    }

    fn upsert_where(&self, points: Vec<Point>, filter: &[Condition]) -> Result<(), StoreError> {
        self.call(true, |s| s.upsert_where(points.clone(), filter))
    }

    fn update_where(&self, points: Vec<Point>, filter: &[Condition]) -> Result<(), StoreError> {
        self.call(true, |s| s.update_where(points.clone(), filter))
    }

    fn get(&self, ids: &[u64]) -> Result<Vec<Record>, StoreError> {
        self.call(false, |s| s.get(ids))
    }

    fn distinct(&self, field: &str, filter: &[Condition]) -> Result<Vec<String>, StoreError> {
        self.call(false, |s| s.distinct(field, filter))
    }

    fn delete(&self, filter: &[Condition]) -> Result<(), StoreError> {
        self.call(true, |s| s.delete(filter))
    }

    fn scroll(&self, filter: &[Condition]) -> Result<Vec<Record>, StoreError> {
        self.call(false, |s| s.scroll(filter))
    }

    fn page(&self, from: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        self.call(false, |s| s.page(from, limit))
    }

    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError> {
        self.call(false, |s| s.search(query))
    }

    fn count(&self, filter: &[Condition]) -> Result<u64, StoreError> {
        self.call(false, |s| s.count(filter))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.flush_through()
    }

    fn optimize(&self) -> Result<(), StoreError> {
        self.call(false, |s| s.optimize())
    }
}
