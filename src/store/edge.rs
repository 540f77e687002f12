//! The embedded store: qdrant-edge, Qdrant's engine in process, on disk under one folder.
//! Its shard allows one process at a time, so the folder is locked (an OS file lock, released
//! even by `kill -9`) and holds the locking process's id for the error message.

use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use qdrant_edge::{
    Condition, CountRequest, Distance, EdgeConfigBuilder, EdgeShard, EdgeSparseVectorParamsBuilder,
    EdgeVectorParamsBuilder, FieldCondition, Filter, Fusion, Match, Modifier, NamedQuery, Payload,
    PointId, PointInsertOperations, PointOperations, PointStructPersisted, Prefetch, QueryEnum,
    QueryRequest, ScoringQuery, UpdateOperation, ValueVariants, VectorInternal, VectorPersisted,
    VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde::{Deserialize, Serialize};

use super::{Hit, Query, SegmentPoint, StoreError, VectorStore};

const DENSE: &str = "dense";
const SPARSE: &str = "bm25";
const META: &str = "scenedex-index.json";
const LOCK: &str = "lock";
const SHARD: &str = "shard";
/// Candidates each retriever hands to the fusion, per result asked for.
const PREFETCH_FACTOR: usize = 4;
/// The usual constant of reciprocal rank fusion.
const RRF_K: usize = 60;

/// What the index was built with; another embedding model cannot search or add to it.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Meta {
    model: String,
    dimension: usize,
}

pub struct EdgeStore {
    dir: PathBuf,
    shard: EdgeShard,
    bm25: EdgeBm25,
    /// Held open, and locked, for as long as the store is.
    _lock: std::fs::File,
}

impl EdgeStore {
    /// Opens the index in `dir` for this model, creating it when `create` is set.
    pub fn open(
        dir: &Path,
        model: &str,
        dimension: usize,
        create: bool,
    ) -> Result<EdgeStore, StoreError> {
        if !create && !dir.join(META).is_file() {
            return Err(StoreError::Missing(dir.to_path_buf()));
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock = lock(dir)?;
        check_meta(dir, model, dimension)?;
        let shard_dir = dir.join(SHARD);
        let shard = if shard_dir.join("edge_config.json").is_file() {
            EdgeShard::load(&shard_dir, None)
        } else {
            std::fs::create_dir_all(&shard_dir).map_err(|e| io(dir, e))?;
            EdgeShard::new(&shard_dir, config(dimension))
        }
        .map_err(engine)?;
        let bm25 = EdgeBm25::new(EdgeBm25Config::default()).map_err(engine)?;
        Ok(EdgeStore {
            dir: dir.to_path_buf(),
            shard,
            bm25,
            _lock: lock,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
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
            params: None,
            filter,
            score_threshold: None,
        }
    }
}

fn config(dimension: usize) -> qdrant_edge::EdgeConfig {
    EdgeConfigBuilder::new()
        .vector(
            DENSE,
            EdgeVectorParamsBuilder::new(dimension, Distance::Cosine).build(),
        )
        .sparse_vector(
            SPARSE,
            EdgeSparseVectorParamsBuilder::new()
                .modifier(Modifier::Idf)
                .build(),
        )
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

fn check_meta(dir: &Path, model: &str, dimension: usize) -> Result<(), StoreError> {
    let path = dir.join(META);
    let asked = Meta {
        model: model.to_string(),
        dimension,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let built: Meta = serde_json::from_slice(&bytes).map_err(|e| io(dir, e))?;
            if built != asked {
                return Err(StoreError::ModelMismatch {
                    dir: dir.to_path_buf(),
                    built_with: built.model,
                    built_dimension: built.dimension,
                    asked: asked.model,
                    asked_dimension: asked.dimension,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let temporary = path.with_extension("partial");
            std::fs::write(
                &temporary,
                serde_json::to_vec(&asked).expect("meta serializes"),
            )
            .map_err(|e| io(dir, e))?;
            std::fs::rename(&temporary, &path).map_err(|e| io(dir, e))
        }
        Err(e) => Err(io(dir, e)),
    }
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

fn equals(field: &str, value: &serde_json::Value) -> Result<Condition, StoreError> {
    let value = match value {
        serde_json::Value::String(s) => ValueVariants::String(s.clone()),
        serde_json::Value::Bool(b) => ValueVariants::Bool(*b),
        serde_json::Value::Number(n) if n.is_i64() => {
            ValueVariants::Integer(n.as_i64().expect("checked"))
        }
        other => {
            return Err(StoreError::Engine(format!(
                "cannot filter {field} on {other}"
            )))
        }
    };
    let key = field
        .try_into()
        .map_err(|_| StoreError::Engine(format!("bad field name {field}")))?;
    Ok(Condition::Field(FieldCondition::new_match(
        key,
        Match::new_value(value),
    )))
}

impl VectorStore for EdgeStore {
    fn upsert(&self, points: Vec<SegmentPoint>) -> Result<(), StoreError> {
        let points = points
            .into_iter()
            .map(|p| PointStructPersisted {
                id: PointId::NumId(p.id),
                vector: VectorStructPersisted::Named(HashMap::from([
                    (DENSE.to_string(), VectorPersisted::Dense(p.dense)),
                    (
                        SPARSE.to_string(),
                        VectorPersisted::Sparse(self.bm25.embed_document(&p.text)),
                    ),
                ])),
                payload: Some(Payload::from(p.payload)),
            })
            .collect();
        let operation = PointOperations::UpsertPoints(PointInsertOperations::PointsList(points));
        self.shard
            .update(UpdateOperation::PointOperation(operation))
            .map_err(engine)
    }

    fn delete_where(&self, field: &str, value: &str) -> Result<(), StoreError> {
        let filter = Filter::new_must(equals(field, &serde_json::Value::String(value.into()))?);
        let operation = PointOperations::DeletePointsByFilter(filter);
        self.shard
            .update(UpdateOperation::PointOperation(operation))
            .map_err(engine)
    }

    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError> {
        let conditions = query
            .equals
            .iter()
            .map(|(field, value)| equals(field, value))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = (!conditions.is_empty()).then(|| Filter {
            must: Some(conditions),
            ..Default::default()
        });
        let candidates = query.limit * PREFETCH_FACTOR;
        let dense = VectorInternal::from(query.dense.to_vec());
        let sparse = VectorInternal::from(self.bm25.embed_query(query.text));
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
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        let points = self.shard.query(request).map_err(engine)?;
        Ok(points
            .into_iter()
            .filter_map(|p| match p.id {
                PointId::NumId(id) => Some(Hit {
                    id,
                    score: p.score,
                    payload: p.payload.map(|Payload(map)| map).unwrap_or_default(),
                }),
                PointId::Uuid(_) => None,
            })
            .collect())
    }

    fn count(&self) -> Result<u64, StoreError> {
        let request = CountRequest {
            filter: None,
            exact: true,
        };
        self.shard.count(request).map(|n| n as u64).map_err(engine)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.shard.flush();
        Ok(())
    }
}
