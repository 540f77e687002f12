//! A Qdrant server (or cluster) through qdrant-client over gRPC. The collection is created on
//! first use with the same vectors and payload indexes as the embedded store, and a meta point
//! records the embedding model. Every write waits for the cluster to apply it, so a file's record
//! still lands after its segments; several machines may index into one collection at once.
//!
//! A cluster is reached through any of its nodes: a request that finds its node gone, or times
//! out, is sent again to the next node listed, with backoff. Writes are idempotent (fixed point
//! ids, filters), so sending one twice does no harm.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use qdrant_client::qdrant::{
    payload_index_params::IndexParams, point_id::PointIdOptions, vector_output,
    BoolIndexParamsBuilder, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FacetCountsBuilder,
    FieldType, Filter, FloatIndexParamsBuilder, Fusion, GetPointsBuilder,
    IntegerIndexParamsBuilder, KeywordIndexParamsBuilder, Modifier, OptimizersConfigDiffBuilder,
    PointId, PointStruct, PrefetchQueryBuilder, Query as QdrantQuery, QueryPointsBuilder, Range,
    ScrollPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpdateMode,
    UpsertPointsBuilder, Vector, VectorInput, VectorParamsBuilder, VectorsConfigBuilder,
    VectorsSelector, WriteOrdering, WriteOrderingType,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::{Map, Value};

use super::{
    hash_id, Condition, FieldKind, Hit, Page, Point, Query, Record, SparseVector, StoreError,
    Stored, VectorStore, INDEXED_FIELDS, INDEXING_THRESHOLD_KB,
};
use crate::caption::Secret;

const DENSE: &str = "dense";
const SPARSE: &str = "bm25";
const PREFETCH_FACTOR: usize = 4;
const PAGE: u32 = 1000;

/// How a collection that scenedex creates is spread over a cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cluster {
    pub shards: u32,
    /// Copies of each shard, on different nodes.
    pub replicas: u32,
}

impl Cluster {
    /// Replicas that must apply a write before it is acknowledged: all but one. An
    /// acknowledged write then survives the loss of any one node, and the collection keeps
    /// taking writes while one node is down.
    pub fn write_consistency(&self) -> u32 {
        self.replicas.saturating_sub(1).max(1)
    }
}

impl Default for Cluster {
    fn default() -> Self {
        Cluster {
            shards: 1,
            replicas: 1,
        }
    }
}

pub struct ServerStore {
    urls: Vec<String>,
    clients: Vec<Qdrant>,
    /// The node requests go to; moves on when one stops answering.
    current: AtomicUsize,
    collection: String,
    words: super::words::Words,
    /// How the words were made (`words::CURRENT` for a new collection).
    words_version: u32,
    model: String,
    dimension: usize,
    /// The collection whose `reembed` this one is (`NAME` of `NAME--MODEL`), recorded in its
    /// meta point so that no other collection of a like name is ever taken for it.
    reembed_of: Option<String>,
    /// Total time spent retrying one request before giving up.
    patience: Duration,
    /// Whether claims still go through each shard's highest replica (strong ordering); they
    /// go through its highest live one once a node is down, as strong ordering then refuses
    /// every write to a shard whose highest replica was on that node.
    strong: AtomicBool,
}

impl ServerStore {
    /// Connects to the nodes and opens the collection for this embedding model, creating it
    /// with `create`'s layout when it is given. Without a model, it opens for reading and
    /// removing only.
    pub fn open(
        urls: &[String],
        key: Option<&Secret>,
        collection: &str,
        model: Option<(&str, usize)>,
        create: Option<Cluster>,
    ) -> Result<ServerStore, StoreError> {
        let mut store = Self::connect(urls, key, collection)?;
        // A node that is down when the run starts is no reason to wait a minute: say so now.
        let exists = store.call_with(Duration::from_secs(3), |c, name| async move {
            c.collection_exists(name).await
        })?;
        let exists = exists || store.finish_switch()?;
        match (exists, create, model) {
            (false, Some(layout), Some((_, dimension))) => store.create(dimension, layout)?,
            (false, _, _) => return Err(StoreError::Missing(store.describe())),
            _ => {}
        }
        store.adopt(model, create.is_some(), super::words::CURRENT)?;
        Ok(store)
    }

    /// Reads (or, with `create`, writes) the meta point and takes the model and words it says.
    fn adopt(
        &mut self,
        model: Option<(&str, usize)>,
        create: bool,
        words: u32,
    ) -> Result<(), StoreError> {
        self.create_indexes()?;
        let (built, words) = match (self.read_meta()?, create, model) {
            (Some(built), _, _) => built,
            // A collection made beforehand (say, with a cluster's sharding): adopt it.
            (None, true, Some((name, dimension))) => {
                self.write_meta(name, dimension, words, false)?;
                ((name.to_string(), dimension), words)
            }
            (None, _, _) => return Err(StoreError::Missing(self.describe())),
        };
        self.words = super::words::Words::new(words).map_err(engine)?;
        self.words_version = words;
        self.dimension = built.1;
        self.model = checked(built, &self.describe(), model)?;
        Ok(())
    }

    /// The collection `reembed` fills for another model: `COLLECTION--MODEL`, made with this
    /// one's shards and replicas, its words made as this one's. Resumed where it was left.
    pub fn next(&self, model: &str, dimension: usize) -> Result<ServerStore, StoreError> {
        let name = format!("{}--{}", self.collection, super::slug(model));
        let info = self.call(|c, name| async move { c.collection_info(name).await })?;
        let params = info.result.and_then(|r| r.config).and_then(|c| c.params);
        let layout = Cluster {
            shards: params.as_ref().map_or(1, |p| p.shard_number),
            replicas: params
                .as_ref()
                .and_then(|p| p.replication_factor)
                .unwrap_or(1),
        };
        // Another model's collection a `reembed` began and gave up, or the old one a crash
        // kept after its switch: neither is what the name reaches, nor this one.
        for (stale, _) in self.unnamed_reembeds()? {
            if stale.collection != name {
                stale.call(|client, name| async move { client.delete_collection(name).await })?;
            }
        }
        let mut next = ServerStore {
            collection: name,
            reembed_of: Some(self.collection.clone()),
            ..self.sibling()
        };
        let exists = next.call(|c, name| async move { c.collection_exists(name).await })?;
        if !exists {
            next.create(dimension, layout)?;
        } else if next.read_meta()?.is_some() && !next.reembed_state(&self.collection)?.0 {
            return Err(StoreError::Engine(format!(
                "the collection {} is another index, not a reembed of {}; rename or remove it first",
                next.collection, self.collection
            )));
        }
        next.adopt(Some((model, dimension)), true, self.words_version)?;
        Ok(next)
    }

    /// Makes `next` the collection this one's name reaches, through an alias of that name;
    /// then removes this one. `next`'s meta point is marked whole first, so that a switch cut
    /// short between removing this collection and naming the alias is finished by the next
    /// `open` (`finish_switch`).
    pub fn switch(self, next: ServerStore) -> Result<(), StoreError> {
        next.write_meta(&next.model, next.dimension, next.words_version, true)?;
        let name = self.collection.clone();
        let behind = self.aliased()?;
        match &behind {
            // Already an alias: pointed at the new collection in one step.
            Some(_) => next.point_alias(&name)?,
            None => {
                self.call(|c, name| async move { c.delete_collection(name).await })?;
                next.point_alias(&name)?;
            }
        }
        if let Some(old) = behind {
            self.call(|c, _| {
                let old = old.clone();
                async move { c.delete_collection(old).await }
            })?;
        }
        Ok(())
    }

    /// Finishes a `reembed` switch that stopped after this name's old collection was removed
    /// and before the name was made an alias of the new one (`NAME--MODEL`, marked whole):
    /// true when it did. Without this, the next `index` would make an empty collection of the
    /// name and caption everything again.
    fn finish_switch(&self) -> Result<bool, StoreError> {
        let whole: Vec<ServerStore> = self
            .unnamed_reembeds()?
            .into_iter()
            .filter_map(|(candidate, whole)| whole.then_some(candidate))
            .collect();
        match whole.len() {
            0 => Ok(false),
            1 => whole[0].point_alias(&self.collection).map(|()| true),
            _ => Err(StoreError::Engine(format!(
                "{} is missing, and {} collections could take its place ({}): make the name an alias of one",
                self.collection,
                whole.len(),
                whole
                    .iter()
                    .map(|s| s.collection.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The collections recorded as this name's reembeds (`NAME--MODEL`) that no alias names,
    /// each with whether it was filled to the end: what a `reembed` gave up or a crash left,
    /// and never another index of a like name.
    fn unnamed_reembeds(&self) -> Result<Vec<(ServerStore, bool)>, StoreError> {
        let prefix = format!("{}--", self.collection);
        let named = self.alias_targets()?;
        let all = self.call(|c, _| async move { c.list_collections().await })?;
        let mut found = Vec::new();
        for c in all.collections {
            if !c.name.starts_with(&prefix) || named.contains(&c.name) {
                continue;
            }
            let candidate = ServerStore {
                collection: c.name,
                ..self.sibling()
            };
            let (ours, whole) = candidate.reembed_state(&self.collection)?;
            if ours {
                found.push((candidate, whole));
            }
        }
        Ok(found)
    }

    /// The same nodes, with nothing read yet.
    fn sibling(&self) -> ServerStore {
        ServerStore {
            urls: self.urls.clone(),
            clients: self.clients.clone(),
            current: AtomicUsize::new(self.current.load(Ordering::Relaxed)),
            collection: self.collection.clone(),
            words: super::words::Words::new(self.words_version).expect("a version this store read"),
            words_version: self.words_version,
            model: String::new(),
            dimension: 0,
            reembed_of: None,
            patience: self.patience,
            strong: AtomicBool::new(true),
        }
    }

    /// What the name is an alias of, if it is one.
    fn aliased(&self) -> Result<Option<String>, StoreError> {
        let name = self.collection.clone();
        let aliases = self.call(|c, _| async move { c.list_aliases().await })?;
        Ok(aliases
            .aliases
            .into_iter()
            .find(|a| a.alias_name == name)
            .map(|a| a.collection_name))
    }

    /// Names this collection `alias` (replacing what that alias named before).
    fn point_alias(&self, alias: &str) -> Result<(), StoreError> {
        self.call(|c, name| {
            let request = qdrant_client::qdrant::CreateAliasBuilder::new(name, alias);
            async move { c.create_alias(request).await }
        })
        .map(|_| ())
    }

    /// Whether the meta point says this collection is a `reembed` of `of`, and whether it was
    /// filled to the end.
    fn reembed_state(&self, of: &str) -> Result<(bool, bool), StoreError> {
        let found = self.call(|c, name| async move {
            c.get_points(GetPointsBuilder::new(name, vec![meta_id()]).with_payload(true))
                .await
        })?;
        let meta = found
            .result
            .into_iter()
            .next()
            .map(|p| json_map(p.payload))
            .unwrap_or_default();
        let ours = meta.get("reembed_of").and_then(Value::as_str) == Some(of);
        let whole = meta.get("whole").and_then(Value::as_bool).unwrap_or(false);
        Ok((ours, ours && whole))
    }

    /// The collections some alias names.
    fn alias_targets(&self) -> Result<Vec<String>, StoreError> {
        let aliases = self.call(|c, _| async move { c.list_aliases().await })?;
        Ok(aliases
            .aliases
            .into_iter()
            .map(|a| a.collection_name)
            .collect())
    }

    /// The model that built the collection, read without preparing anything (None when no
    /// node answers within 3 s, or the collection is not scenedex's).
    pub fn built_with(urls: &[String], key: Option<&Secret>, collection: &str) -> Option<String> {
        let mut store = Self::connect(urls, key, collection).ok()?;
        store.patience = Duration::from_secs(3);
        let ((model, _), _) = store.read_meta().ok()??;
        Some(model).filter(|m| !m.is_empty())
    }

    /// Clients for the nodes; nothing is asked of them yet.
    fn connect(
        urls: &[String],
        key: Option<&Secret>,
        collection: &str,
    ) -> Result<ServerStore, StoreError> {
        let mut clients = Vec::new();
        for url in urls {
            let client = Qdrant::from_url(url)
                .api_key(key.map(|k| k.expose().to_string()))
                .timeout(Duration::from_secs(60))
                .connect_timeout(Duration::from_secs(5))
                .skip_compatibility_check()
                .build()
                .map_err(|e| unreachable(url, e))?;
            clients.push(client);
        }
        Ok(ServerStore {
            urls: urls.to_vec(),
            clients,
            current: AtomicUsize::new(0),
            collection: collection.to_string(),
            words: super::words::Words::new(super::words::CURRENT).map_err(engine)?,
            words_version: super::words::CURRENT,
            model: String::new(),
            dimension: 0,
            reembed_of: None,
            patience: Duration::from_secs(60),
            strong: AtomicBool::new(true),
        })
    }

    fn create(&self, dimension: usize, layout: Cluster) -> Result<(), StoreError> {
        let mut dense = VectorsConfigBuilder::default();
        dense.add_named_vector_params(
            DENSE,
            VectorParamsBuilder::new(dimension as u64, Distance::Cosine),
        );
        let mut sparse = SparseVectorsConfigBuilder::default();
        sparse.add_named_vector_params(
            SPARSE,
            SparseVectorParamsBuilder::default().modifier(Modifier::Idf as i32),
        );
        let request = CreateCollectionBuilder::new(&self.collection)
            .vectors_config(dense)
            .sparse_vectors_config(sparse)
            .shard_number(layout.shards)
            .replication_factor(layout.replicas)
            .write_consistency_factor(layout.write_consistency())
            // The server builds graphs in the background as segments pass the threshold, and
            // sizes and merges segments for its own CPUs: only the threshold is the embedded
            // store's, so both answer alike from brute force and from graphs.
            .optimizers_config(
                OptimizersConfigDiffBuilder::default()
                    .indexing_threshold(INDEXING_THRESHOLD_KB as u64),
            );
        let created = self.call(|c, _| {
            let request = request.clone();
            async move { c.create_collection(request).await }
        });
        if let Err(e) = created {
            // Another machine may have created it a moment ago.
            let exists = self.call(|c, name| async move { c.collection_exists(name).await })?;
            if !exists {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Payload indexes on the fields filters use; those that exist are left alone.
    fn create_indexes(&self) -> Result<(), StoreError> {
        let info = self.call(|c, name| async move { c.collection_info(name).await })?;
        let existing = info.result.map(|r| r.payload_schema).unwrap_or_default();
        for (field, kind) in INDEXED_FIELDS {
            if existing.contains_key(field) {
                continue;
            }
            // No HNSW links per field, as in the embedded store (see its `field_params`).
            let (kind, params): (_, IndexParams) = match kind {
                FieldKind::Keyword => (
                    FieldType::Keyword,
                    KeywordIndexParamsBuilder::default()
                        .enable_hnsw(false)
                        .into(),
                ),
                FieldKind::Float => (
                    FieldType::Float,
                    FloatIndexParamsBuilder::default().enable_hnsw(false).into(),
                ),
                FieldKind::Integer => (
                    FieldType::Integer,
                    IntegerIndexParamsBuilder::new(true, true)
                        .enable_hnsw(false)
                        .into(),
                ),
                FieldKind::Bool => (
                    FieldType::Bool,
                    BoolIndexParamsBuilder::default().enable_hnsw(false).into(),
                ),
            };
            self.call(|c, name| {
                let params = params.clone();
                async move {
                    c.create_field_index(
                        CreateFieldIndexCollectionBuilder::new(name, field, kind)
                            .field_index_params(params)
                            .wait(true),
                    )
                    .await
                }
            })?;
        }
        Ok(())
    }

    fn write_meta(
        &self,
        model: &str,
        dimension: usize,
        words: u32,
        whole: bool,
    ) -> Result<(), StoreError> {
        let mut meta = serde_json::json!({"record": "meta", "model": model, "dimension": dimension,
                                          "words": words});
        if let Some(of) = &self.reembed_of {
            meta["reembed_of"] = of.clone().into();
        }
        if whole {
            meta["whole"] = true.into();
        }
        self.upsert_raw(
            vec![PointStruct::new(
                meta_id(),
                HashMap::<String, Vector>::new(),
                payload(meta.as_object().cloned().unwrap_or_default())?,
            )],
            None,
        )
    }

    /// The model and dimension that built the collection, if it is scenedex's, and how its
    /// words were made.
    fn read_meta(&self) -> Result<Option<BuiltWith>, StoreError> {
        let found = self.call(|c, name| async move {
            c.get_points(GetPointsBuilder::new(name, vec![meta_id()]).with_payload(true))
                .await
        })?;
        Ok(found.result.into_iter().next().map(|p| {
            let meta = json_map(p.payload);
            let model = meta
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let dimension = meta.get("dimension").and_then(Value::as_u64).unwrap_or(0) as usize;
            let words = meta.get("words").and_then(Value::as_u64).unwrap_or(0) as u32;
            ((model, dimension), words)
        }))
    }

    /// Sends a request to the current node; when the node is gone or times out, to the next
    /// one, with exponential backoff, for up to a minute.
    fn call<T, F, Fut>(&self, request: F) -> Result<T, StoreError>
    where
        F: Fn(Qdrant, String) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        self.call_with(self.patience, request)
    }

    fn call_with<T, F, Fut>(&self, patience: Duration, request: F) -> Result<T, StoreError>
    where
        F: Fn(Qdrant, String) -> Fut,
        Fut: Future<Output = Result<T, QdrantError>>,
    {
        // A write under a lease waits no longer than the lease is held (`with_deadline`):
        // each attempt, and the retries' sleeps, end at the deadline.
        let deadline = super::deadline();
        let left = || deadline.map(|d| d.saturating_duration_since(std::time::Instant::now()));
        if left().is_some_and(|l| l.is_zero()) {
            return Err(StoreError::Late);
        }
        let patience = left().map_or(patience, |l| l.min(patience));
        let attempt = || {
            let node = self.current.load(Ordering::Relaxed);
            let future = request(self.clients[node].clone(), self.collection.clone());
            let left = left();
            async move {
                match left {
                    None => future.await.map_err(|e| (node, Some(e))),
                    Some(left) => match tokio::time::timeout(left, future).await {
                        Ok(done) => done.map_err(|e| (node, Some(e))),
                        Err(_) => Err((node, None)),
                    },
                }
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_total_delay(Some(patience))
            .without_max_times()
            .with_jitter();
        let result = crate::runtime::block_on(
            attempt
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .when(|(_, e)| e.as_ref().is_some_and(transient) && !crate::stop::requested())
                .notify(|(node, _), _| {
                    // The next attempt goes to the next node, unless another thread moved on.
                    let next = (node + 1) % self.clients.len();
                    let _ = self.current.compare_exchange(
                        *node,
                        next,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }),
        );
        match result {
            Ok(done) => Ok(done),
            Err((node, Some(e))) if left() != Some(Duration::ZERO) => Err(self.failed(node, e)),
            Err(_) => Err(StoreError::Late),
        }
    }

    fn failed(&self, node: usize, e: QdrantError) -> StoreError {
        let url = self.urls[node % self.urls.len()].clone();
        match &e {
            QdrantError::ResponseError { status }
                if matches!(
                    status.code(),
                    tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                ) =>
            {
                StoreError::KeyRefused { url }
            }
            e if transient(e) => unreachable(&self.urls.join(", "), e),
            e => StoreError::Engine(e.to_string()),
        }
    }

    fn upsert_raw(
        &self,
        points: Vec<PointStruct>,
        condition: Option<(Filter, UpdateMode)>,
    ) -> Result<(), StoreError> {
        self.call(|c, name| {
            let mut request = UpsertPointsBuilder::new(name, points.clone()).wait(true);
            if let Some((filter, mode)) = condition.clone() {
                // Claims race: one replica of the shard orders them for all the others.
                let ordering = match self.strong.load(Ordering::Relaxed) {
                    true => WriteOrderingType::Strong,
                    false => WriteOrderingType::Medium,
                };
                request = request
                    .update_filter(filter)
                    .update_mode(mode)
                    .ordering(WriteOrdering {
                        r#type: ordering as i32,
                    });
            }
            let strong = &self.strong;
            async move {
                let result = c.upsert_points(request).await;
                if let Err(QdrantError::ResponseError { status }) = &result {
                    if status.message().contains("Strong ordering") {
                        strong.store(false, Ordering::Relaxed);
                    }
                }
                result
            }
        })
        .map(|_| ())
    }

    fn points(&self, points: Vec<Point>) -> Result<Vec<PointStruct>, StoreError> {
        let mut converted = Vec::with_capacity(points.len());
        for p in points {
            let mut vectors: HashMap<String, Vector> = HashMap::new();
            if let Some(v) = p.vectors {
                let sparse = match v.words {
                    Some(words) => words,
                    None => self
                        .words
                        .document(&v.text, super::words::lang_of(&p.payload)),
                };
                vectors.insert(DENSE.into(), Vector::from(v.dense));
                vectors.insert(
                    SPARSE.into(),
                    Vector::from(
                        sparse
                            .indices
                            .into_iter()
                            .zip(sparse.values)
                            .collect::<Vec<(u32, f32)>>(),
                    ),
                );
            }
            converted.push(PointStruct::new(p.id, vectors, payload(p.payload)?));
        }
        Ok(converted)
    }
}

/// Failures worth trying again, perhaps on another node: the node is gone or overloaded, a
/// request timed out, or the cluster is moving a shard away from a node that died.
fn transient(e: &QdrantError) -> bool {
    match e {
        QdrantError::ResourceExhaustedError { .. } | QdrantError::Io(_) => true,
        QdrantError::ResponseError { status } => match status.code() {
            tonic::Code::Unavailable
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Cancelled
            | tonic::Code::Aborted
            | tonic::Code::Unknown
            | tonic::Code::ResourceExhausted => true,
            tonic::Code::Internal => {
                let text = status.message().to_lowercase();
                [
                    "timeout",
                    "timed out",
                    "transport",
                    "unavailable",
                    "no active replica",
                    "not have enough active replicas",
                    "read operations failed",
                    "failed to apply update",
                    "no leader",
                    "failed peer",
                    "connect",
                ]
                .iter()
                .any(|needle| text.contains(needle))
            }
            _ => false,
        },
        _ => false,
    }
}

/// The model that built the collection, if it is the one asked for (or none was asked).
fn checked(
    (built, built_dimension): (String, usize),
    place: &str,
    asked: Option<(&str, usize)>,
) -> Result<String, StoreError> {
    match asked {
        Some((name, dimension)) if (built.as_str(), built_dimension) != (name, dimension) => {
            Err(StoreError::ModelMismatch {
                place: place.to_string(),
                built_with: built,
                built_dimension,
                asked: name.to_string(),
                asked_dimension: dimension,
            })
        }
        _ => Ok(built),
    }
}

/// What the meta point says: the model and dimension that built the collection, and how its
/// words were made.
type BuiltWith = ((String, usize), u32);

fn meta_id() -> PointId {
    PointId::from(hash_id("scenedex#meta"))
}

/// gRPC errors nest several layers of debug output; one plain reason is what a person needs.
fn unreachable(url: &str, e: impl std::fmt::Display) -> StoreError {
    let text = e.to_string();
    let reason = [
        ("Connection refused", "connection refused"),
        ("timed out", "timed out"),
        ("Timeout", "timed out"),
        ("dns error", "the host name does not resolve"),
    ]
    .iter()
    .find(|(needle, _)| text.contains(needle))
    .map_or("no answer", |(_, reason)| reason);
    StoreError::Unreachable {
        url: url.to_string(),
        detail: reason.to_string(),
    }
}

fn engine(e: impl std::fmt::Display) -> StoreError {
    StoreError::Engine(e.to_string())
}

fn payload(map: Map<String, Value>) -> Result<Payload, StoreError> {
    Payload::try_from(Value::Object(map)).map_err(engine)
}

fn json_map(payload: HashMap<String, qdrant_client::qdrant::Value>) -> Map<String, Value> {
    payload
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect()
}

fn numeric(id: Option<PointId>) -> Option<u64> {
    match id?.point_id_options? {
        PointIdOptions::Num(n) => Some(n),
        PointIdOptions::Uuid(_) => None,
    }
}

fn filter(conditions: &[Condition]) -> Result<Option<Filter>, StoreError> {
    if conditions.is_empty() {
        return Ok(None);
    }
    let must = conditions
        .iter()
        .map(condition)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Filter::must(must)))
}

fn condition(condition: &Condition) -> Result<qdrant_client::qdrant::Condition, StoreError> {
    use qdrant_client::qdrant::Condition as Q;
    Ok(match condition {
        Condition::Equals(field, Value::String(s)) => Q::matches(field.as_str(), s.clone()),
        Condition::Equals(field, Value::Bool(b)) => Q::matches(field.as_str(), *b),
        Condition::Equals(field, Value::Number(n)) if n.is_i64() => {
            Q::matches(field.as_str(), n.as_i64().unwrap_or(0))
        }
        Condition::Equals(field, other) => {
            return Err(StoreError::Engine(format!(
                "cannot filter {field} on {other}"
            )))
        }
        Condition::Between { field, min, max } => Q::range(
            field.as_str(),
            Range {
                gte: *min,
                lte: *max,
                ..Default::default()
            },
        ),
        Condition::AnyOf(field, values) => Q::matches(field.as_str(), values.clone()),
        Condition::Ids(ids) => Q::has_id(ids.iter().map(|&id| PointId::from(id))),
        Condition::Either(any) => Q::from(Filter::should(
            any.iter()
                .map(self::condition)
                .collect::<Result<Vec<_>, _>>()?,
        )),
    })
}

fn required(conditions: &[Condition]) -> Result<Filter, StoreError> {
    // An empty filter would match everything: refuse it rather than touch the whole collection.
    filter(conditions)?
        .ok_or_else(|| StoreError::Engine("refusing to write without a filter".into()))
}

impl VectorStore for ServerStore {
    fn describe(&self) -> String {
        format!("{} collection {}", self.urls.join(","), self.collection)
    }

    fn model(&self) -> String {
        self.model.clone()
    }

    fn page(&self, from: Option<u64>, limit: usize) -> Result<Page, StoreError> {
        let page = self.call(|c, name| {
            let mut request = ScrollPointsBuilder::new(name)
                .limit(limit as u32)
                .with_payload(true)
                .with_vectors(VectorsSelector {
                    names: vec![SPARSE.to_string()],
                });
            if let Some(from) = from {
                request = request.offset(PointId::from(from));
            }
            async move { c.scroll(request).await }
        })?;
        let points = page
            .result
            .into_iter()
            .filter_map(|p| {
                // Records and places have no vectors at all.
                let sparse = p
                    .vectors
                    .as_ref()
                    .and_then(|v| v.get_vector_by_name(SPARSE));
                let words = match sparse {
                    Some(vector_output::Vector::Sparse(s)) => Some(SparseVector {
                        indices: s.indices,
                        values: s.values,
                    }),
                    _ => None,
                };
                Some(Stored {
                    id: numeric(p.id)?,
                    payload: json_map(p.payload),
                    words,
                })
            })
            .collect();
        Ok(Page {
            points,
            next: numeric(page.next_page_offset),
        })
    }

    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        let points = self.points(points)?;
        self.upsert_raw(points, None)
    }

    fn upsert_where(&self, points: Vec<Point>, conditions: &[Condition]) -> Result<(), StoreError> {
        let points = self.points(points)?;
        self.upsert_raw(points, Some((required(conditions)?, UpdateMode::Upsert)))
    }

    fn update_where(&self, points: Vec<Point>, conditions: &[Condition]) -> Result<(), StoreError> {
        let points = self.points(points)?;
        self.upsert_raw(
            points,
            Some((required(conditions)?, UpdateMode::UpdateOnly)),
        )
    }

    fn get(&self, ids: &[u64]) -> Result<Vec<Record>, StoreError> {
        let ids: Vec<PointId> = ids.iter().map(|&id| PointId::from(id)).collect();
        let found = self.call(|c, name| {
            // Writes wait for every active replica, so any one of them reads them back; a
            // stricter read consistency would fail while a node is down.
            let request = GetPointsBuilder::new(name, ids.clone()).with_payload(true);
            async move { c.get_points(request).await }
        })?;
        Ok(found
            .result
            .into_iter()
            .filter_map(|p| {
                Some(Record {
                    id: numeric(p.id)?,
                    payload: json_map(p.payload),
                })
            })
            .collect())
    }

    fn distinct(&self, field: &str, conditions: &[Condition]) -> Result<Vec<String>, StoreError> {
        let filter = filter(conditions)?;
        let answer = self.call(|c, name| {
            let mut request = FacetCountsBuilder::new(name, field).limit(u64::from(u32::MAX));
            if let Some(f) = filter.clone() {
                request = request.filter(f);
            }
            async move { c.facet(request).await }
        })?;
        Ok(answer
            .hits
            .into_iter()
            .filter_map(|hit| match hit.value?.variant? {
                qdrant_client::qdrant::facet_value::Variant::StringValue(s) => Some(s),
                _ => None,
            })
            .collect())
    }

    fn delete(&self, conditions: &[Condition]) -> Result<(), StoreError> {
        let filter = required(conditions)?;
        self.call(|c, name| {
            let request = DeletePointsBuilder::new(name)
                .points(filter.clone())
                .wait(true);
            async move { c.delete_points(request).await }
        })
        .map(|_| ())
    }

    fn scroll(&self, conditions: &[Condition]) -> Result<Vec<Record>, StoreError> {
        let filter = filter(conditions)?;
        let mut records = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let page = self.call(|c, name| {
                let mut request = ScrollPointsBuilder::new(name)
                    .limit(PAGE)
                    .with_payload(true)
                    .with_vectors(false);
                if let Some(f) = filter.clone() {
                    request = request.filter(f);
                }
                if let Some(o) = offset.clone() {
                    request = request.offset(o);
                }
                async move { c.scroll(request).await }
            })?;
            records.extend(page.result.into_iter().filter_map(|p| {
                Some(Record {
                    id: numeric(p.id)?,
                    payload: json_map(p.payload),
                })
            }));
            match page.next_page_offset {
                Some(next) => offset = Some(next),
                None => return Ok(records),
            }
        }
    }

    fn search(&self, query: &Query) -> Result<Vec<Hit>, StoreError> {
        let filter = filter(&query.filter)?;
        let candidates = (query.limit * PREFETCH_FACTOR) as u64;
        let sparse = self.words.query(query.text);
        let words = sparse.indices.clone();
        let nearest = |using: &str, input: VectorInput| {
            let mut prefetch = PrefetchQueryBuilder::default()
                .query(QdrantQuery::new_nearest(input))
                .using(using)
                .limit(candidates);
            if let Some(f) = filter.clone() {
                prefetch = prefetch.filter(f);
            }
            prefetch
        };
        let mut request = QueryPointsBuilder::new(&self.collection)
            .add_prefetch(nearest(DENSE, VectorInput::new_dense(query.dense.to_vec())))
            .add_prefetch(nearest(
                SPARSE,
                VectorInput::new_sparse(sparse.indices, sparse.values),
            ))
            .query(QdrantQuery::new_fusion(Fusion::Rrf))
            .limit(query.limit as u64)
            .with_payload(true)
            .with_vectors(VectorsSelector {
                names: vec![DENSE.to_string(), SPARSE.to_string()],
            });
        if let Some(f) = filter {
            request = request.filter(f);
        }
        let answer = self.call(|c, _| {
            let request = request.clone();
            async move { c.query(request).await }
        })?;
        Ok(answer
            .result
            .into_iter()
            .filter_map(|p| {
                let vector = |name| p.vectors.as_ref().and_then(|v| v.get_vector_by_name(name));
                let similarity = match vector(DENSE) {
                    Some(vector_output::Vector::Dense(d)) => {
                        crate::embed::cosine(&d.data, query.dense)
                    }
                    _ => 0.0,
                };
                let shares_words = match vector(SPARSE) {
                    Some(vector_output::Vector::Sparse(s)) => {
                        s.indices.iter().any(|w| words.contains(w))
                    }
                    _ => false,
                };
                Some(Hit {
                    id: numeric(p.id)?,
                    score: p.score,
                    similarity,
                    shares_words,
                    payload: json_map(p.payload),
                })
            })
            .collect())
    }

    fn count(&self, conditions: &[Condition]) -> Result<u64, StoreError> {
        let filter = filter(conditions)?;
        let answer = self.call(|c, name| {
            let mut request = CountPointsBuilder::new(name).exact(true);
            if let Some(f) = filter.clone() {
                request = request.filter(f);
            }
            async move { c.count(request).await }
        })?;
        Ok(answer.result.map_or(0, |r| r.count))
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every write above waited for the cluster to apply it.
        Ok(())
    }
}
