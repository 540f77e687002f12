//! A Qdrant server (or cluster) through qdrant-client over gRPC. The collection is created on
//! first use with the same vectors and payload indexes as the embedded store, and a meta point
//! records the embedding model. Every write waits for the server to apply it, so a file's record
//! still lands after its segments; several machines may index into one collection at once.

use std::collections::HashMap;
use std::time::Duration;

use qdrant_client::qdrant::{
    point_id::PointIdOptions, vector_output, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter, Fusion,
    GetPointsBuilder, Modifier, PointId, PointStruct, PrefetchQueryBuilder, Query as QdrantQuery,
    QueryPointsBuilder, Range, ScrollPointsBuilder, SetPayloadPointsBuilder,
    SparseVectorParamsBuilder, SparseVectorsConfigBuilder, UpsertPointsBuilder, Vector,
    VectorInput, VectorParamsBuilder, VectorsConfigBuilder, VectorsSelector,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use qdrant_edge::bm25_embed::{EdgeBm25, EdgeBm25Config};
use serde_json::{Map, Value};

use super::{
    hash_id, Condition, FieldKind, Hit, Point, Query, Record, StoreError, VectorStore,
    INDEXED_FIELDS,
};
use crate::caption::Secret;

const DENSE: &str = "dense";
const SPARSE: &str = "bm25";
const PREFETCH_FACTOR: usize = 4;
const PAGE: u32 = 1000;

pub struct ServerStore {
    url: String,
    collection: String,
    client: Qdrant,
    runtime: tokio::runtime::Runtime,
    bm25: EdgeBm25,
    model: String,
}

impl ServerStore {
    /// Connects and opens the collection for this embedding model, creating it when `create`
    /// is set. Without a model, it opens for reading and removing only.
    pub fn open(
        url: &str,
        key: Option<&Secret>,
        collection: &str,
        model: Option<(&str, usize)>,
        create: bool,
    ) -> Result<ServerStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError::Engine(e.to_string()))?;
        let client = Qdrant::from_url(url)
            .api_key(key.map(|k| k.expose().to_string()))
            .timeout(Duration::from_secs(60))
            .connect_timeout(Duration::from_secs(5))
            .skip_compatibility_check()
            .build()
            .map_err(|e| unreachable(url, e))?;
        let mut store = ServerStore {
            url: url.to_string(),
            collection: collection.to_string(),
            client,
            runtime,
            bm25: EdgeBm25::new(EdgeBm25Config::default()).map_err(engine)?,
            model: String::new(),
        };
        let exists = store
            .runtime
            .block_on(store.client.collection_exists(collection))
            .map_err(|e| unreachable(url, e))?;
        match (exists, create, model) {
            (false, true, Some((_, dimension))) => store.create(dimension)?,
            (false, _, _) => return Err(StoreError::Missing(store.describe())),
            _ => {}
        }
        let built = match (store.read_meta()?, create, model) {
            (Some(built), _, _) => built,
            // A collection made beforehand (say, with a cluster's sharding): adopt it.
            (None, true, Some((name, dimension))) => {
                store.prepare(name, dimension)?;
                (name.to_string(), dimension)
            }
            (None, _, _) => return Err(StoreError::Missing(store.describe())),
        };
        store.model = checked(built, &store.describe(), model)?;
        Ok(store)
    }

    fn create(&self, dimension: usize) -> Result<(), StoreError> {
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
        let created = self.runtime.block_on(
            self.client.create_collection(
                CreateCollectionBuilder::new(&self.collection)
                    .vectors_config(dense)
                    .sparse_vectors_config(sparse),
            ),
        );
        if let Err(e) = created {
            // Another machine may have created it a moment ago.
            let exists = self.call(self.client.collection_exists(&self.collection))?;
            if !exists {
                return Err(self.failed(e));
            }
        }
        Ok(())
    }

    /// Payload indexes on the fields filters use, and the meta point naming the model.
    fn prepare(&self, model: &str, dimension: usize) -> Result<(), StoreError> {
        for (field, kind) in INDEXED_FIELDS {
            let kind = match kind {
                FieldKind::Keyword => FieldType::Keyword,
                FieldKind::Float => FieldType::Float,
                FieldKind::Integer => FieldType::Integer,
                FieldKind::Bool => FieldType::Bool,
            };
            self.call(self.client.create_field_index(
                CreateFieldIndexCollectionBuilder::new(&self.collection, field, kind).wait(true),
            ))?;
        }
        let meta = serde_json::json!({"record": "meta", "model": model, "dimension": dimension});
        self.upsert_raw(vec![PointStruct::new(
            meta_id(),
            HashMap::<String, Vector>::new(),
            payload(meta.as_object().cloned().unwrap_or_default())?,
        )])
    }

    /// The model and dimension that built the collection, if it is scenedex's.
    fn read_meta(&self) -> Result<Option<(String, usize)>, StoreError> {
        let found = self.call(self.client.get_points(
            GetPointsBuilder::new(&self.collection, vec![meta_id()]).with_payload(true),
        ))?;
        Ok(found.result.into_iter().next().map(|p| {
            let meta = json_map(p.payload);
            let model = meta
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let dimension = meta.get("dimension").and_then(Value::as_u64).unwrap_or(0) as usize;
            (model, dimension)
        }))
    }

    fn call<T>(
        &self,
        future: impl std::future::Future<Output = Result<T, QdrantError>>,
    ) -> Result<T, StoreError> {
        self.runtime.block_on(future).map_err(|e| self.failed(e))
    }

    fn failed(&self, e: QdrantError) -> StoreError {
        let text = e.to_string();
        if text.contains("transport error")
            || text.contains("Unavailable")
            || text.contains("connect")
        {
            unreachable(&self.url, text)
        } else {
            StoreError::Engine(text)
        }
    }

    fn upsert_raw(&self, points: Vec<PointStruct>) -> Result<(), StoreError> {
        self.call(
            self.client
                .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true)),
        )
        .map(|_| ())
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
        (
            "Unauthenticated",
            "the server refused the API key (QDRANT_API_KEY)",
        ),
        (
            "PermissionDenied",
            "the server refused the API key (QDRANT_API_KEY)",
        ),
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
    let mut must = Vec::new();
    for condition in conditions {
        must.push(match condition {
            Condition::Equals(field, Value::String(s)) => {
                qdrant_client::qdrant::Condition::matches(field.as_str(), s.clone())
            }
            Condition::Equals(field, Value::Bool(b)) => {
                qdrant_client::qdrant::Condition::matches(field.as_str(), *b)
            }
            Condition::Equals(field, Value::Number(n)) if n.is_i64() => {
                qdrant_client::qdrant::Condition::matches(field.as_str(), n.as_i64().unwrap_or(0))
            }
            Condition::Equals(field, other) => {
                return Err(StoreError::Engine(format!(
                    "cannot filter {field} on {other}"
                )))
            }
            Condition::Between { field, min, max } => qdrant_client::qdrant::Condition::range(
                field.as_str(),
                Range {
                    gte: *min,
                    lte: *max,
                    ..Default::default()
                },
            ),
        });
    }
    Ok(Some(Filter::must(must)))
}

fn required(conditions: &[Condition]) -> Result<Filter, StoreError> {
    // An empty filter would match everything: refuse it rather than touch the whole collection.
    filter(conditions)?
        .ok_or_else(|| StoreError::Engine("refusing to write without a filter".into()))
}

impl VectorStore for ServerStore {
    fn describe(&self) -> String {
        format!("{} collection {}", self.url, self.collection)
    }

    fn model(&self) -> String {
        self.model.clone()
    }

    fn upsert(&self, points: Vec<Point>) -> Result<(), StoreError> {
        let mut converted = Vec::with_capacity(points.len());
        for p in points {
            let mut vectors: HashMap<String, Vector> = HashMap::new();
            if let Some(v) = p.vectors {
                let sparse = self.bm25.embed_document(&v.text);
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
        self.upsert_raw(converted)
    }

    fn delete(&self, conditions: &[Condition]) -> Result<(), StoreError> {
        let filter = required(conditions)?;
        self.call(
            self.client.delete_points(
                DeletePointsBuilder::new(&self.collection)
                    .points(filter)
                    .wait(true),
            ),
        )
        .map(|_| ())
    }

    fn set_payload(
        &self,
        conditions: &[Condition],
        fields: Map<String, Value>,
    ) -> Result<(), StoreError> {
        let filter = required(conditions)?;
        self.call(
            self.client.set_payload(
                SetPayloadPointsBuilder::new(&self.collection, payload(fields)?)
                    .points_selector(filter)
                    .wait(true),
            ),
        )
        .map(|_| ())
    }

    fn scroll(&self, conditions: &[Condition]) -> Result<Vec<Record>, StoreError> {
        let filter = filter(conditions)?;
        let mut records = Vec::new();
        let mut offset: Option<PointId> = None;
        loop {
            let mut request = ScrollPointsBuilder::new(&self.collection)
                .limit(PAGE)
                .with_payload(true)
                .with_vectors(false);
            if let Some(f) = filter.clone() {
                request = request.filter(f);
            }
            if let Some(o) = offset.take() {
                request = request.offset(o);
            }
            let page = self.call(self.client.scroll(request))?;
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
        let sparse = self.bm25.embed_query(query.text);
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
                names: vec![DENSE.to_string()],
            });
        if let Some(f) = filter {
            request = request.filter(f);
        }
        let answer = self.call(self.client.query(request))?;
        Ok(answer
            .result
            .into_iter()
            .filter_map(|p| {
                let dense = p.vectors.as_ref().and_then(|v| v.get_vector_by_name(DENSE));
                let similarity = match dense {
                    Some(vector_output::Vector::Dense(d)) => {
                        crate::embed::cosine(&d.data, query.dense)
                    }
                    _ => 0.0,
                };
                Some(Hit {
                    id: numeric(p.id)?,
                    score: p.score,
                    similarity,
                    payload: json_map(p.payload),
                })
            })
            .collect())
    }

    fn count(&self, conditions: &[Condition]) -> Result<u64, StoreError> {
        let mut request = CountPointsBuilder::new(&self.collection).exact(true);
        if let Some(f) = filter(conditions)? {
            request = request.filter(f);
        }
        let answer = self.call(self.client.count(request))?;
        Ok(answer.result.map_or(0, |r| r.count))
    }

    fn flush(&self) -> Result<(), StoreError> {
        // Every write above waited for the server to apply it.
        Ok(())
    }
}
