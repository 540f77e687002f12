//! The embedded store: qdrant-edge, Qdrant's engine in process, on disk under one folder.
//! Its shard allows one process at a time, so the folder is locked (an OS file lock, released
//! even by `kill -9`) and holds the locking process's id for the error message.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::{
    BoolIndexParams, ConditionalInsertOperation, CountRequest, CreateIndex, Distance,
    EdgeConfigBuilder, EdgeOptimizersConfig, EdgeShard, EdgeSparseVectorParamsBuilder,
    EdgeVectorParamsBuilder, FacetRequest, FacetValue, FieldCondition, FieldIndexOperations,
    Filter, FloatIndexParams, Fusion, HasIdCondition, IntegerIndexParams, JsonPath,
    KeywordIndexParams, Match, Modifier, NamedQuery, Payload, PayloadFieldSchema,
    PayloadSchemaParams, PointId, PointInsertOperations, PointOperations, PointStructPersisted,
    Prefetch, QuantizationConfig, QuantizationSearchParams, QueryEnum, QueryRequest, Range,
    ScalarQuantizationConfig, ScalarType, ScoringQuery, ScrollRequest, SearchParams, UpdateMode,
    UpdateOperation, ValueVariants, VectorInternal, VectorPersisted, VectorStructInternal,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde::{Deserialize, Serialize};

use super::{
    Condition, FieldKind, Hit, Page, Point, Query, Record, SparseVector, StoreError, Stored,
    VectorStore, INDEXED_FIELDS, INDEXING_THRESHOLD_KB, MAX_SEGMENT_KB,
};

const DENSE: &str = "dense";
const SPARSE: &str = "bm25";
/// The meta file of an index whose shard is `shard`.
const META: &str = "scenedex-index.json";
/// The meta file once `reembed` moved the index to another shard folder. A scenedex from
/// before `reembed` does not know it, and so refuses the folder rather than open (and make) an
/// empty `shard` in it.
const MOVED_META: &str = "scenedex-meta.json";
const LOCK: &str = "lock";
const SHARD: &str = "shard";
/// Candidates each retriever hands to the fusion, per result asked for.
const PREFETCH_FACTOR: usize = 4;
/// The usual constant of reciprocal rank fusion.
const RRF_K: usize = 60;
/// Points read per page when scrolling.
const PAGE: usize = 1000;
/// Free space the engine must have before it writes. Its write-ahead log writes through memory
/// maps into a pair of 32 MiB segments, and a disk that fills under a memory map is no error
/// the engine could return but a crash (SIGBUS): so the room is looked for first.
const RESERVE: u64 = 64 << 20;

/// What the index was built with; another embedding model cannot search or add to it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Meta {
    model: String,
    dimension: usize,
    /// How its words were made (`words::CURRENT`); 0 for an index made before.
    #[serde(default)]
    words: u32,
    /// The folder its shard is in: `shard`, or `shard-MODEL` once `reembed` made it anew.
    #[serde(default = "first_shard")]
    shard: String,
}

fn first_shard() -> String {
    SHARD.to_string()
}

/// How the engine holds an index: see `EdgeStore::shape`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub segments: usize,
    pub points: usize,
    pub in_graphs: usize,
}

pub struct EdgeStore {
    dir: PathBuf,
    /// What the index was built with, and where its shard is.
    meta: Meta,
    shard_dir: PathBuf,
    /// Dropped by hand: dropping flushes, and a flush that fails panics (see `guarded`).
    shard: ManuallyDrop<EdgeShard>,
    /// The shard's flush expects its write-ahead log free, so writes and flushes take turns.
    writes: Mutex<()>,
    /// Bytes of dense vectors written since the store last built graphs.
    unindexed: AtomicU64,
    words: super::words::Words,
    /// Held open, and locked, for as long as the store is (and `next`'s store).
    lock: Arc<std::fs::File>,
}

impl EdgeStore {
    /// Opens the index in `dir` for this embedding model (name and dimension), creating it
    /// when `create` is set. Without a model, it opens for reading and removing only.
    pub fn open(
        dir: &Path,
        model: Option<(&str, usize)>,
        create: bool,
    ) -> Result<EdgeStore, StoreError> {
        if !create {
            Self::must_exist(dir)?;
        }
        refuse_foreign(dir)?;
        crate::private::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock = lock(dir)?;
        if create {
            room(dir, RESERVE)?;
        }
        let meta = match model {
            Some((model, dimension)) => check_meta(dir, model, dimension)?,
            None => read_meta(dir)?,
        };
        Self::open_shard(dir, meta, Arc::new(lock))
    }

    /// The store of `meta`'s shard in `dir`, whose lock is held.
    fn open_shard(
        dir: &Path,
        meta: Meta,
        lock: Arc<std::fs::File>,
    ) -> Result<EdgeStore, StoreError> {
        let dimension = meta.dimension;
        let shard_dir = dir.join(&meta.shard);
        let shard = if shard_dir.join("edge_config.json").is_file() {
            let shard = guarded(dir, || EdgeShard::load(&shard_dir, None))?.map_err(engine)?;
            // An index made before graphs were built as it grew takes today's settings; one on
            // a read-only disk keeps its own, which still answer searches.
            if shard.config().optimizers != optimizers() {
                let _ = shard.set_optimizers_config(optimizers());
            }
            shard
        } else {
            crate::private::create_dir_all(&shard_dir).map_err(|e| io(dir, e))?;
            guarded(dir, || EdgeShard::new(&shard_dir, config(dimension)))?.map_err(engine)?
        };
        let words = super::words::Words::new(meta.words).map_err(engine)?;
        let store = EdgeStore {
            dir: dir.to_path_buf(),
            meta,
            shard_dir,
            shard: ManuallyDrop::new(shard),
            writes: Mutex::new(()),
            unindexed: AtomicU64::new(0),
            words,
            lock,
        };
        // Indexes made by an older version may lack a field added since.
        store.create_indexes()?;
        Ok(store)
    }

    /// Bytes an index folder takes on disk: allocated blocks, as the engine's log files are
    /// sparse.
    pub fn bytes_on_disk(dir: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.blocks() * 512)
            .sum()
    }

    /// Whether `dir` holds an index.
    /// Whether `dir` holds an index, said as an error: a folder of other files (videos given
    /// as `--index`) is told as that, not as an index to make first.
    pub fn must_exist(dir: &Path) -> Result<(), StoreError> {
        refuse_foreign(dir)?;
        match Self::exists(dir) {
            true => Ok(()),
            false => Err(StoreError::Missing(dir.display().to_string())),
        }
    }

    /// The length of the index's dense vectors.
    pub fn dimension(&self) -> usize {
        self.meta.dimension
    }

    pub fn exists(dir: &Path) -> bool {
        dir.join(MOVED_META).is_file() || dir.join(META).is_file()
    }

    /// The engine's segments, the points in them, and how many dense vectors are in graphs.
    pub fn shape(&self) -> Shape {
        let info = self.shard.info();
        Shape {
            segments: info.segments_count,
            points: info.points_count,
            // The engine counts every sparse vector as indexed (its inverted index is built
            // as it is written); the rest are dense vectors in HNSW graphs. So it is exact
            // while every point has words, as in the tests and the bench, and short by a
            // point without (a file record, a caption of no words) otherwise.
            in_graphs: info.indexed_vectors_count.saturating_sub(info.points_count),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new shard in this index's folder for another embedding model, holding this one's
    /// lock: where `reembed` writes, resumed where it was left. The words are this index's.
    /// A shard `reembed` began is marked by `SHARD-NAME.json` (its model) beside it; one begun
    /// for yet another model, or for another with this folder name, is removed, as is an old
    /// shard a crash kept after its switch.
    pub fn next(&self, model: &str, dimension: usize) -> Result<EdgeStore, StoreError> {
        let name = format!("{SHARD}-{}", super::slug(model));
        if name == self.meta.shard {
            return Err(StoreError::Engine(format!(
                "the index {} is already in {name}",
                self.dir.display()
            )));
        }
        let marker = Marker {
            model: model.to_string(),
            dimension,
        };
        for (shard, marked) in self.markers()? {
            if shard != self.meta.shard && (shard != name || marked.as_ref() != Some(&marker)) {
                self.remove_shard(&shard)?;
            }
        }
        room(&self.dir, RESERVE)?;
        self.mark(&name, &marker)?;
        let meta = Meta {
            model: model.to_string(),
            dimension,
            words: self.meta.words,
            shard: name,
        };
        Self::open_shard(&self.dir, meta, Arc::clone(&self.lock))
    }

    /// Makes `next` (from `self.next`) the index once it is durable and has its graphs: its
    /// meta file is written whole (`MOVED_META`, the older one then removed) in one rename;
    /// then this shard goes (marked first, so that a crash before it is gone leaves it to the
    /// next `reembed`).
    pub fn switch(self, next: EdgeStore) -> Result<(), StoreError> {
        next.flush()?;
        next.optimize()?;
        let lock = Arc::clone(&self.lock);
        let dir = self.dir.clone();
        let (old, new) = (self.meta.shard.clone(), next.meta.shard.clone());
        let meta = Meta {
            model: next.meta.model.clone(),
            dimension: next.meta.dimension,
            words: next.meta.words,
            shard: new.clone(),
        };
        let old_marker = Marker {
            model: self.meta.model.clone(),
            dimension: self.meta.dimension,
        };
        self.mark(&old, &old_marker)?;
        drop(next);
        drop(self);
        write_meta(&dir, MOVED_META, &meta)?;
        // The switch is done: what is left is tidying, which the next `reembed` repeats. An
        // older scenedex reading a legacy meta file left here would find the old shard still
        // there, as it is removed only after it.
        if std::fs::remove_file(dir.join(META)).is_err() && dir.join(META).exists() {
            return Ok(());
        }
        let _ = std::fs::remove_file(dir.join(marker_name(&new)));
        // The index is whole without the old shard: a failure here leaves disk to reclaim,
        // which the next `reembed` does.
        let _ = remove_shard(&dir, &old);
        drop(lock);
        Ok(())
    }

    /// The shard folders `reembed` marked, with the model each was begun for (None when the
    /// marker is unreadable).
    fn markers(&self) -> Result<Vec<(String, Option<Marker>)>, StoreError> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            let file = entry.map_err(|e| io(&self.dir, e))?.file_name();
            let file = file.to_string_lossy();
            let Some(shard) = file.strip_suffix(".json") else {
                continue;
            };
            if shard == SHARD || shard.starts_with(&format!("{SHARD}-")) {
                let marked = std::fs::read(self.dir.join(&*file))
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok());
                found.push((shard.to_string(), marked));
            }
        }
        Ok(found)
    }

    fn mark(&self, shard: &str, marker: &Marker) -> Result<(), StoreError> {
        write_meta(&self.dir, &marker_name(shard), marker)
    }

    fn remove_shard(&self, shard: &str) -> Result<(), StoreError> {
        remove_shard(&self.dir, shard).map_err(|e| io(&self.dir, e))
    }

    fn nearest(
        &self,
        using: &str,
        vector: VectorInternal,
        limit: usize,
        filter: Option<Filter>,
    ) -> Prefetch {
        Prefetch {
            prefetches: vec![],
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: vector,
                using: Some(using.to_string()),
            }))),
            limit,
            params: (using == DENSE).then(rescored),
            filter,
            score_threshold: None,
        }
    }

    fn conditional(
        &self,
        points: Vec<Point>,
        conditions: &[Condition],
        mode: UpdateMode,
    ) -> Result<(), StoreError> {
        let bytes = dense_bytes(&points);
        let operation = PointOperations::UpsertPointsConditional(ConditionalInsertOperation {
            points_op: PointInsertOperations::PointsList(self.persisted(points)),
            condition: required(conditions)?,
            update_mode: Some(mode),
        });
        self.update(UpdateOperation::PointOperation(operation))?;
        self.grow(bytes)
    }

    fn persisted(&self, points: Vec<Point>) -> Vec<PointStructPersisted> {
        points
            .into_iter()
            .map(|p| {
                let lang = super::words::lang_of(&p.payload);
                let vectors = p.vectors.map_or_else(HashMap::new, |v| {
                    let words = match v.words {
                        Some(words) => words,
                        None => self.words.document(&v.text, lang),
                    };
                    HashMap::from([
                        (DENSE.to_string(), VectorPersisted::Dense(v.dense)),
                        (SPARSE.to_string(), VectorPersisted::Sparse(words)),
                    ])
                });
                PointStructPersisted {
                    id: PointId::NumId(p.id),
                    vector: VectorStructPersisted::Named(vectors),
                    payload: Some(Payload::from(p.payload)),
                }
            })
            .collect()
    }

    /// Counts what a write added, and once a segment's worth is waiting, builds its graph (and
    /// merges segments) before the next write: a run pays for its graph as it goes, a little
    /// at a time. A full disk only postpones it: the run's last `optimize` reports that.
    fn grow(&self, bytes: u64) -> Result<(), StoreError> {
        let waiting = self.unindexed.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if waiting < (INDEXING_THRESHOLD_KB as u64) << 10 {
            return Ok(());
        }
        match self.optimize() {
            Err(StoreError::DiskFull { .. }) => Ok(()),
            done => done,
        }
    }

    fn update(&self, operation: UpdateOperation) -> Result<(), StoreError> {
        let _turn = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        room(&self.dir, RESERVE)?;
        guarded(&self.dir, || self.shard.update(operation))?.map_err(engine)
    }

    /// Payload indexes on the fields that filters use, so filtering stays fast at a million
    /// points; those that exist already are left as they are.
    fn create_indexes(&self) -> Result<(), StoreError> {
        let existing = self.shard.info().payload_schema;
        for (field, kind) in INDEXED_FIELDS {
            if existing.contains_key(&json_path(field)?) {
                continue;
            }
            let operation = FieldIndexOperations::CreateIndex(CreateIndex {
                field_name: json_path(field)?,
                field_schema: Some(PayloadFieldSchema::FieldParams(field_params(kind))),
            });
            self.update(UpdateOperation::FieldIndexOperation(operation))?;
        }
        Ok(())
    }
}

impl Drop for EdgeStore {
    fn drop(&mut self) {
        let _turn = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the shard is never used again; this is the only place it is taken.
        let shard = unsafe { ManuallyDrop::take(&mut self.shard) };
        // A flush that fails here was reported by the flush before it, or is lost with the
        // process anyway: the write-ahead log keeps every write that returned.
        let _ = guarded(&self.dir, move || drop(shard));
    }
}

/// Fails with `DiskFull` unless the disk under `dir` has `need` bytes free.
fn room(dir: &Path, need: u64) -> Result<(), StoreError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| io(dir, e))?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    if free >= need {
        return Ok(());
    }
    Err(StoreError::DiskFull {
        dir: dir.to_path_buf(),
        detail: format!(
            "{} MB free, and writing to the index needs {} MB",
            free >> 20,
            need >> 20
        ),
    })
}

thread_local! {
    /// Set while a call into the engine is guarded, so its panic message is not printed.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

/// Runs a call into qdrant-edge, whose flush panics on a write error (a full disk) where it
/// could return one. The panic becomes an error, a full disk the `DiskFull` error, and nothing
/// is printed: the caller reports it in one line.
fn guarded<T>(dir: &Path, call: impl FnOnce() -> T) -> Result<T, StoreError> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !GUARDED.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = GUARDED.with(|g| g.replace(true));
    let result = std::panic::catch_unwind(AssertUnwindSafe(call));
    GUARDED.with(|g| g.set(was));
    result.map_err(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown failure".into());
        if text.contains("No space left") || text.contains("StorageFull") {
            StoreError::DiskFull {
                dir: dir.to_path_buf(),
                detail: "no space left on device".into(),
            }
        } else {
            StoreError::Engine(format!("the embedded index failed: {text}"))
        }
    })
}

/// A payload index without HNSW links of its own. Those links (a graph per field, for filters
/// of middling selectivity) made building graphs take 2.7 times as long, and merging
/// segments rebuilt them from scratch; the filters searches use (a path, a time) match a few
/// files' worth, which the payload index finds and scores exactly. Indexes made before keep
/// the links they have.
fn field_params(kind: FieldKind) -> PayloadSchemaParams {
    let enable_hnsw = Some(false);
    match kind {
        FieldKind::Keyword => PayloadSchemaParams::Keyword(KeywordIndexParams {
            enable_hnsw,
            ..Default::default()
        }),
        FieldKind::Float => PayloadSchemaParams::Float(FloatIndexParams {
            enable_hnsw,
            ..Default::default()
        }),
        FieldKind::Integer => PayloadSchemaParams::Integer(IntegerIndexParams {
            enable_hnsw,
            ..Default::default()
        }),
        FieldKind::Bool => PayloadSchemaParams::Bool(BoolIndexParams {
            enable_hnsw,
            ..Default::default()
        }),
    }
}

/// Bytes the biggest of the engine's segments takes on disk.
fn biggest_segment(shard: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(shard.join("segments")) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| EdgeStore::bytes_on_disk(&e.path()))
        .max()
        .unwrap_or(0)
}

fn dense_bytes(points: &[Point]) -> u64 {
    let floats: usize = points
        .iter()
        .filter_map(|p| p.vectors.as_ref())
        .map(|v| v.dense.len())
        .sum();
    (floats * std::mem::size_of::<f32>()) as u64
}

/// The engine's own defaults (a vacuum at 20% deleted, merges once there are more segments than
/// half the CPUs, at least 2), but for the indexing threshold and the segment cap.
fn optimizers() -> EdgeOptimizersConfig {
    EdgeOptimizersConfig {
        indexing_threshold: Some(INDEXING_THRESHOLD_KB),
        max_segment_size: Some(MAX_SEGMENT_KB),
        ..Default::default()
    }
}

/// Graphs are built and walked with int8 copies of the dense vectors, kept in memory; a
/// search then scores its candidates again with the full vectors (`rescored`), so they are
/// ranked as the full vectors rank them. Measured on 130,000 random 384-dim vectors (issue
/// 10): the graph built in 83 s instead of 145 s, a hybrid search in 1.6 ms instead of 2.2,
/// for 384 more bytes of memory per segment. An index made before keeps full-precision graphs: the engine
/// sets quantization only when it creates an index.
fn quantization() -> QuantizationConfig {
    QuantizationConfig::from(ScalarQuantizationConfig {
        r#type: ScalarType::Int8,
        quantile: Some(0.99),
        always_ram: Some(true),
    })
}

/// A graph search's candidates scored again with the full vectors.
fn rescored() -> SearchParams {
    SearchParams {
        quantization: Some(QuantizationSearchParams {
            rescore: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn config(dimension: usize) -> qdrant_edge::EdgeConfig {
    EdgeConfigBuilder::new()
        .vector(
            DENSE,
            EdgeVectorParamsBuilder::new(dimension, Distance::Cosine)
                .quantization_config(quantization())
                .build(),
        )
        .sparse_vector(
            SPARSE,
            EdgeSparseVectorParamsBuilder::new()
                .modifier(Modifier::Idf)
                .build(),
        )
        .optimizers(optimizers())
        .build()
}

/// Takes the folder's lock, or says which process holds it.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join(LOCK);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(dir, e))?;
    if file.try_lock().is_err() {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        return Err(StoreError::InUse {
            dir: dir.to_path_buf(),
            pid: pid.trim().to_string(),
        });
    }
    file.set_len(0).map_err(|e| io(dir, e))?;
    file.rewind().map_err(|e| io(dir, e))?;
    write!(file, "{}", std::process::id()).map_err(|e| io(dir, e))?;
    Ok(file)
}

/// What a shard folder `reembed` began holds: this model's vectors.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    model: String,
    dimension: usize,
}

fn marker_name(shard: &str) -> String {
    format!("{shard}.json")
}

/// Removes a shard folder and then its marker.
fn remove_shard(dir: &Path, shard: &str) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir.join(shard)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::remove_file(dir.join(marker_name(shard)))
}

/// A folder that holds files but no index (a folder of videos, given to `--index` by
/// mistake) is not made into one: the index's files would land among the user's.
fn refuse_foreign(dir: &Path) -> Result<(), StoreError> {
    if EdgeStore::exists(dir) {
        return Ok(());
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    // What a first run that stopped before writing the meta file leaves.
    let ours = [
        "lock",
        SHARD,
        "thumbs",
        "scenedex-index.partial",
        super::held::SOCKET,
    ];
    let foreign = entries
        .filter_map(Result::ok)
        .any(|e| !ours.contains(&e.file_name().to_string_lossy().as_ref()));
    match foreign {
        true => Err(StoreError::NotAnIndex(dir.to_path_buf())),
        false => Ok(()),
    }
}

impl EdgeStore {
    /// The embedding model that built the index in `dir`, read without opening it.
    pub fn built_with(dir: &Path) -> Option<String> {
        read_meta(dir).ok().map(|meta| meta.model)
    }
}

fn read_meta(dir: &Path) -> Result<Meta, StoreError> {
    let bytes = std::fs::read(meta_path(dir)).map_err(|e| io(dir, e))?;
    serde_json::from_slice(&bytes).map_err(|e| io(dir, e))
}

/// The meta file that says what the index is: `MOVED_META` once there is one.
fn meta_path(dir: &Path) -> PathBuf {
    let moved = dir.join(MOVED_META);
    match moved.is_file() {
        true => moved,
        false => dir.join(META),
    }
}

fn check_meta(dir: &Path, model: &str, dimension: usize) -> Result<Meta, StoreError> {
    let path = meta_path(dir);
    let asked = Meta {
        model: model.to_string(),
        dimension,
        words: super::words::CURRENT,
        shard: first_shard(),
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let built: Meta = serde_json::from_slice(&bytes).map_err(|e| io(dir, e))?;
            if (&built.model, built.dimension) != (&asked.model, asked.dimension) {
                return Err(StoreError::ModelMismatch {
                    place: dir.display().to_string(),
                    built_with: built.model,
                    built_dimension: built.dimension,
                    asked: asked.model,
                    asked_dimension: asked.dimension,
                });
            }
            Ok(built)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            write_meta(dir, META, &asked)?;
            Ok(asked)
        }
        Err(e) => Err(io(dir, e)),
    }
}

/// Writes a meta (or marker) file whole or not at all: a new file, renamed over the old one.
fn write_meta(dir: &Path, name: &str, meta: &impl Serialize) -> Result<(), StoreError> {
    let path = dir.join(name);
    let temporary = path.with_extension("partial");
    let mut file = std::fs::File::create(&temporary).map_err(|e| io(dir, e))?;
    file.write_all(&serde_json::to_vec(meta).expect("meta serializes"))
        .and_then(|()| file.sync_all())
        .map_err(|e| io(dir, e))?;
    std::fs::rename(&temporary, &path).map_err(|e| io(dir, e))?;
    // The rename itself is durable once the folder is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn io(dir: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        dir: dir.to_path_buf(),
        detail: e.to_string(),
    }
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn json_path(field: &str) -> Result<JsonPath, StoreError> {
    field
        .try_into()
        .map_err(|_| StoreError::Engine(format!("bad field name {field}")))
}

fn filter(conditions: &[Condition]) -> Result<Option<Filter>, StoreError> {
    if conditions.is_empty() {
        return Ok(None);
    }
    let must = conditions
        .iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Filter {
        must: Some(must),
        ..Default::default()
    }))
}

fn required(conditions: &[Condition]) -> Result<Filter, StoreError> {
    // An empty filter would match everything: refuse it rather than touch the whole index.
    filter(conditions)?
        .ok_or_else(|| StoreError::Engine("refusing to write without a filter".into()))
}

fn condition(condition: &Condition) -> Result<qdrant_edge::Condition, StoreError> {
    let field = match condition {
        Condition::Ids(ids) => {
            let ids: HasIdCondition = ids.iter().map(|&id| PointId::NumId(id)).collect();
            return Ok(qdrant_edge::Condition::HasId(ids));
        }
        Condition::Either(any) => {
            let should = any
                .iter()
                .map(self::condition)
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(qdrant_edge::Condition::Filter(Filter {
                should: Some(should),
                ..Default::default()
            }));
        }
        Condition::AnyOf(field, values) => {
            FieldCondition::new_match(json_path(field)?, Match::from(values.clone()))
        }
        Condition::Equals(field, value) => FieldCondition::new_match(
            json_path(field)?,
            Match::new_value(match_value(field, value)?),
        ),
        Condition::Between { field, min, max } => FieldCondition::new_range(
            json_path(field)?,
            Range {
                gte: min.map(OrderedFloat),
                lte: max.map(OrderedFloat),
                lt: None,
                gt: None,
            },
        ),
    };
    Ok(qdrant_edge::Condition::Field(field))
}

fn match_value(field: &str, value: &serde_json::Value) -> Result<ValueVariants, StoreError> {
    match value {
        serde_json::Value::String(s) => Ok(ValueVariants::String(s.clone())),
        serde_json::Value::Bool(b) => Ok(ValueVariants::Bool(*b)),
        serde_json::Value::Number(n) if n.is_i64() => {
            Ok(ValueVariants::Integer(n.as_i64().expect("checked")))
        }
        other => Err(StoreError::Engine(format!(
            "cannot filter {field} on {other}"
        ))),
    }
}

fn numeric_id(id: PointId) -> Option<u64> {
    match id {
        PointId::NumId(id) => Some(id),
        PointId::Uuid(_) => None,
    }
}

/// A point's BM25 vector, whole.
fn sparse_of(vector: Option<VectorStructInternal>) -> Option<SparseVector> {
    let Some(VectorStructInternal::Named(mut named)) = vector else {
        return None;
    };
    match named.remove(SPARSE) {
        Some(VectorInternal::Sparse(v)) => Some(v),
        _ => None,
    }
}

/// A hit's dense vector and the words (BM25 token ids) of its sparse one.
fn vectors_of(vector: Option<VectorStructInternal>) -> (Option<Vec<f32>>, Vec<u32>) {
    let Some(VectorStructInternal::Named(mut named)) = vector else {
        return (None, Vec::new());
    };
    let dense = match named.remove(DENSE) {
        Some(VectorInternal::Dense(v)) => Some(v),
        _ => None,
    };
    let words = match named.remove(SPARSE) {
        Some(VectorInternal::Sparse(v)) => v.indices,
        _ => Vec::new(),
    };
    (dense, words)
}

impl VectorStore for EdgeStore {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }

    fn model(&self) -> String {
        self.meta.model.clone()
    }

    fn page(&self, from: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        let request = ScrollRequest {
            offset: from.map(PointId::NumId),
            limit: Some(limit),
            filter: None,
            with_payload: Some(WithPayloadInterface::Bool(true)),
            with_vector: WithVector::Selector(vec![SPARSE.to_string()]),
            order_by: None,
        };
        let (found, next) = self.shard.scroll(request).map_err(engine)?;
        let points = found
            .into_iter()
            .filter_map(|r| {
                Some(Stored {
                    id: numeric_id(r.id)?,
                    payload: r.payload.map(|Payload(map)| map).unwrap_or_default(),
                    words: sparse_of(r.vector),
                })
            })
            .collect();
        Ok(Page {
            points,
            next: next.and_then(numeric_id),
        })
    }

    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        let bytes = dense_bytes(&points);
        let points = self.persisted(points);
        let operation = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.update(UpdateOperation::PointOperation(operation))?;
        self.grow(bytes)
    }

    fn upsert_where(&self, points: Vec<Point>, conditions: &[Condition]) -> Result<(), StoreError> {
        self.conditional(points, conditions, UpdateMode::Upsert)
    }

    fn update_where(&self, points: Vec<Point>, conditions: &[Condition]) -> Result<(), StoreError> {
        self.conditional(points, conditions, UpdateMode::UpdateOnly)
    }

    fn get(&self, ids: &[u64]) -> Result<Vec<Record>, StoreError> {
        let ids: Vec<PointId> = ids.iter().map(|&id| PointId::NumId(id)).collect();
        let found = self
            .shard
            .retrieve(&ids, Some(WithPayloadInterface::Bool(true)), None)
            .map_err(engine)?;
        Ok(found
            .into_iter()
            .filter_map(|r| {
                Some(Record {
                    id: numeric_id(r.id)?,
                    payload: r.payload.map(|Payload(map)| map).unwrap_or_default(),
                })
            })
            .collect())
    }

    fn distinct(&self, field: &str, conditions: &[Condition]) -> Result<Vec<String>, StoreError> {
        let request = FacetRequest {
            key: json_path(field)?,
            limit: usize::MAX,
            filter: filter(conditions)?,
            exact: false,
        };
        let response = self.shard.facet(request).map_err(engine)?;
        Ok(response
            .hits
            .into_iter()
            .filter_map(|hit| match hit.value {
                FacetValue::Keyword(value) => Some(value),
                _ => None,
            })
            .collect())
    }

    fn delete(&self, conditions: &[Condition]) -> Result<(), StoreError> {
        let operation = PointOperations::DeletePointsByFilter(required(conditions)?);
        self.update(UpdateOperation::PointOperation(operation))
    }

    fn scroll(&self, conditions: &[Condition]) -> Result<Vec<Record>, StoreError> {
        let filter = filter(conditions)?;
        let mut records = Vec::new();
        let mut offset = None;
        loop {
            let request = ScrollRequest {
                offset,
                limit: Some(PAGE),
                filter: filter.clone(),
                with_payload: Some(WithPayloadInterface::Bool(true)),
                with_vector: WithVector::Bool(false),
                order_by: None,
            };
            let (page, next) = self.shard.scroll(request).map_err(engine)?;
            records.extend(page.into_iter().filter_map(|r| {
                Some(Record {
                    id: numeric_id(r.id)?,
                    payload: r.payload.map(|Payload(map)| map).unwrap_or_default(),
                })
            }));
            match next {
                Some(next) => offset = Some(next),
                None => return Ok(records),
            }
        }
    }

    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError> {
        let filter = filter(&query.filter)?;
        let candidates = query.limit * PREFETCH_FACTOR;
        let dense = VectorInternal::from(query.dense.to_vec());
        let words = self.words.query(query.text);
        let sparse = VectorInternal::from(words.clone());
        let request = QueryRequest {
            prefetches: vec![
                self.nearest(DENSE, dense, candidates, filter.clone()),
                self.nearest(SPARSE, sparse, candidates, filter.clone()),
            ],
            query: Some(ScoringQuery::Fusion(Fusion::Rrf {
                k: RRF_K,
                weights: None,
            })),
            filter,
            score_threshold: None,
            limit: query.limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Selector(vec![DENSE.to_string(), SPARSE.to_string()]),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.shard.query(request).map_err(engine)?;
        Ok(points
            .into_iter()
            .filter_map(|p| {
                let (dense, hit_words) = vectors_of(p.vector);
                Some(Hit {
                    id: numeric_id(p.id)?,
                    score: p.score,
                    similarity: dense.map_or(0.0, |v| crate::embed::cosine(&v, query.dense)),
                    shares_words: hit_words.iter().any(|w| words.indices.contains(w)),
                    payload: p.payload.map(|Payload(map)| map).unwrap_or_default(),
                })
            })
            .collect())
    }

    fn count(&self, conditions: &[Condition]) -> Result<u64, StoreError> {
        let request = CountRequest {
            filter: filter(conditions)?,
            exact: true,
        };
        self.shard.count(request).map(|n| n as u64).map_err(engine)
    }

    fn flush(&self) -> Result<(), StoreError> {
        let _turn = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        guarded(&self.dir, || self.shard.flush())
    }

    /// Builds the HNSW graph of each segment over the indexing threshold and merges small
    /// segments (a merge reuses the biggest one's graph); blocking. It writes a new segment
    /// beside those it replaces, which together are no bigger than the biggest segment or the
    /// cap, so it asks for room for twice the biggest segment.
    fn optimize(&self) -> Result<(), StoreError> {
        let _turn = self.writes.lock().unwrap_or_else(|e| e.into_inner());
        let _building = crate::stop::building();
        self.unindexed.store(0, Ordering::Relaxed);
        room(&self.dir, RESERVE + 2 * biggest_segment(&self.shard_dir))?;
        guarded(&self.dir, || self.shard.optimize())?.map_err(engine)?;
        guarded(&self.dir, || self.shard.flush())
    }
}
