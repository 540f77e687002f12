//! search: a text query against the index. The query is embedded with the model that built
//! the index, both retrievers (meaning and exact words) run under the same filters, and the
//! fused ranking comes back, optionally cut by similarity and capped per file.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::embed::{EmbedError, Embedder};
use crate::store::files::{self, at_or_under, indexed_form, path_key, Place, PLACE, SEGMENT};
use crate::store::{Condition, Hit, Query, StoreError, VectorStore};

/// Candidates fetched per hit wanted when some will be dropped (by similarity or per file).
const OVERFETCH: usize = 8;
/// all-MiniLM-L6-v2's similarity under which a hit is no close match: the least similar of the
/// hand-judged relevant pairs in tests/data/relevance.jsonl (0.36) less a margin, as missing a
/// scene is worse than showing a weak one (`cargo run --example calibrate_floor` derives it).
pub const MINILM_FLOOR: f32 = 0.25;
/// multilingual-e5-small's, by the same pairs: its similarities crowd between 0.7 and 0.95, the
/// least similar relevant pair scores 0.83, and the margin is 0.03 (`calibrate_floor e5`).
pub const E5_FLOOR: f32 = 0.80;
/// The most candidates one search looks at before it settles for fewer hits than asked.
const MOST: usize = 10_000;

#[derive(Clone, Debug, Default)]
pub struct Request {
    pub query: String,
    pub limit: usize,
    /// At most this many hits from one file.
    pub per_file: Option<usize>,
    /// Hits less similar than this (cosine, -1 to 1) to the query, and sharing none of its
    /// words, are no close match: they are kept apart, as `Answer::weak`.
    pub min_similarity: Option<f32>,
    /// Only files at or under this path, on any machine.
    pub path: Option<PathBuf>,
    /// Conditions on the segments' own fields (time, moderation fields).
    pub filter: Vec<Condition>,
}

/// A hit with where its file is: the place to show (this machine's when it has one) and every
/// place, on every machine.
#[derive(Clone, Debug)]
pub struct Found {
    pub hit: Hit,
    pub place: Place,
    pub places: Vec<Place>,
    /// The file's size when indexed, from its record (None where this version cannot read
    /// the record).
    pub size: Option<u64>,
}

impl Found {
    /// When the place shown was found gone (seconds since the Unix epoch): the file is
    /// offline, kept in the index until it has stayed missing through `--prune-after`.
    pub fn offline_since(&self) -> Option<u64> {
        self.place.missing_since
    }

    /// The day the place shown was found gone (`YYYY-MM-DD`, UTC), when it is offline.
    pub fn offline_date(&self) -> Option<String> {
        let since = std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.offline_since()?);
        let stamp = humantime::format_rfc3339_seconds(since).to_string();
        Some(stamp[..10].to_string())
    }

    /// This machine's copy of the file that is still the one indexed, or why there is none:
    /// what `cut` clips and the page plays.
    pub fn here(&self, host: &str) -> Result<PathBuf, String> {
        let mut why = None;
        for place in self.places.iter().filter(|p| p.host == host) {
            match files::current(place, self.size) {
                Ok(path) => return Ok(path),
                Err(e) => {
                    why.get_or_insert(e);
                }
            }
        }
        Err(why
            .unwrap_or_else(|| format!("the file is on {}, not on this machine", self.place.host)))
    }

    pub fn fingerprint(&self) -> &str {
        self.hit
            .payload
            .get("fingerprint")
            .and_then(|f| f.as_str())
            .unwrap_or("")
    }
}

/// The hits that are close matches, best first, and the weaker ones that would have been among
/// them without the similarity floor.
#[derive(Clone, Debug, Default)]
pub struct Answer {
    pub hits: Vec<Found>,
    pub weak: Vec<Found>,
    /// The request's path holds nothing the index knows of, on any machine.
    pub nothing_at_path: bool,
}

/// The floor under which a hit of this embedding model is no close match, when one is known.
pub fn default_floor(model: &str) -> Option<f32> {
    match model {
        crate::embed::MiniLm::NAME => Some(MINILM_FLOOR),
        crate::embed::E5::NAME => Some(E5_FLOOR),
        _ => None,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("the query is empty; say what the scene shows, e.g. scenedex search \"a dog jumps into a pool\"")]
    EmptyQuery,
    #[error(transparent)]
    Embed(#[from] EmbedError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The best segments for the request, best first. Only segments of files the index has a
/// record of are answers: those of an unfinished write (a crash) never show.
pub fn search(
    store: &dyn VectorStore,
    embedder: &dyn Embedder,
    request: &Request,
    host: &str,
) -> Result<Answer, SearchError> {
    let text = request.query.trim();
    if text.is_empty() {
        return Err(SearchError::EmptyQuery);
    }
    let dense = embedder.embed_query(text)?;
    // Only segments have vectors, so no `record = segment` condition: one that matches nearly
    // every point was checked on every point a graph search visits, about a quarter of its
    // time (2.28 ms against 1.66 on 130,000 segments, issue 10). `is_segment` still drops any
    // other hit.
    let mut filter = request.filter.clone();
    if let Some(path) = &request.path {
        let target = indexed_form(path).unwrap_or_else(|_| path.clone());
        let fingerprints = store.distinct(
            "fingerprint",
            &[
                Condition::equals("record", PLACE),
                at_or_under(&path_key(&target)),
            ],
        )?;
        if fingerprints.is_empty() {
            return Ok(Answer {
                nothing_at_path: true,
                ..Answer::default()
            });
        }
        filter.push(Condition::AnyOf("fingerprint".into(), fingerprints));
    }
    let dropping = request.per_file.is_some() || request.min_similarity.is_some();
    let mut fetch = request.limit * if dropping { OVERFETCH } else { 1 };
    loop {
        let hits = store.search(&Query {
            dense: &dense,
            text,
            limit: fetch,
            filter: filter.clone(),
        })?;
        let exhausted = hits.len() < fetch;
        let hits = hits.into_iter().filter(is_segment).collect();
        let answer = keep(locate(store, hits, host)?, request);
        if answer.hits.len() >= request.limit || exhausted || fetch >= MOST {
            return Ok(answer);
        }
        fetch = (fetch * 4).min(MOST);
    }
}

fn is_segment(hit: &Hit) -> bool {
    hit.payload.get("record").and_then(|r| r.as_str()) == Some(SEGMENT)
}

/// The hits whose files have a record, with their places.
fn locate(store: &dyn VectorStore, hits: Vec<Hit>, host: &str) -> Result<Vec<Found>, StoreError> {
    let mut fingerprints: Vec<String> = Vec::new();
    for hit in &hits {
        if let Some(f) = hit.payload.get("fingerprint").and_then(|f| f.as_str()) {
            if !fingerprints.iter().any(|known| known == f) {
                fingerprints.push(f.to_string());
            }
        }
    }
    let records = files::records_of(store, &fingerprints)?;
    let mut places: HashMap<String, Vec<Place>> = HashMap::new();
    for place in files::places_of(store, &fingerprints)? {
        places
            .entry(place.fingerprint.clone())
            .or_default()
            .push(place);
    }
    // A record of scenedex 0.1 lists its paths itself, until the next run writes places.
    for record in records.values().flatten() {
        let listed = places.entry(record.fingerprint.clone()).or_default();
        if listed.is_empty() {
            listed.extend(record.places.iter().map(|old| Place {
                fingerprint: record.fingerprint.clone(),
                host: host.to_string(),
                path: old.path.clone(),
                mtime_ns: old.mtime_ns,
                dev: None,
                missing_since: None,
            }));
        }
    }
    Ok(hits
        .into_iter()
        .filter_map(|hit| {
            let fingerprint = hit.payload.get("fingerprint")?.as_str()?.to_string();
            let size = records.get(&fingerprint)?.as_ref().map(|r| r.size);
            // A file no machine holds at any path any more is no answer either.
            let mut places = places.get(&fingerprint).filter(|p| !p.is_empty())?.clone();
            // This machine's paths first, those still there before offline ones, then by
            // machine and path.
            places.sort_by_key(|p| {
                (
                    p.host != host,
                    p.missing_since.is_some(),
                    p.host.clone(),
                    p.path.clone(),
                )
            });
            Some(Found {
                hit,
                place: places[0].clone(),
                places,
                size,
            })
        })
        .collect())
}

/// Applies the per-file cap, then the similarity floor and the limit: the weak hits are those
/// under the floor that the limit would have shown.
fn keep(found: Vec<Found>, request: &Request) -> Answer {
    let mut per_file: HashMap<String, usize> = HashMap::new();
    let capped: Vec<Found> = found
        .into_iter()
        .filter(|f| {
            let Some(cap) = request.per_file else {
                return true;
            };
            let seen = per_file.entry(f.fingerprint().to_string()).or_default();
            *seen += 1;
            *seen <= cap
        })
        .collect();
    let close = |f: &Found| {
        f.hit.shares_words || request.min_similarity.is_none_or(|m| f.hit.similarity >= m)
    };
    Answer {
        weak: capped
            .iter()
            .take(request.limit)
            .filter(|f| !close(f))
            .cloned()
            .collect(),
        hits: capped
            .into_iter()
            .filter(close)
            .take(request.limit)
            .collect(),
        nothing_at_path: false,
    }
}

/// The machines that hold paths in the index, sorted.
pub fn hosts(store: &dyn VectorStore) -> Result<Vec<String>, StoreError> {
    let mut hosts = store.distinct("host", &[Condition::equals("record", PLACE)])?;
    hosts.sort();
    Ok(hosts)
}

/// What a segment field filtered on holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Text,
    Yes,
    Count,
}

/// The segment fields `FIELD=VALUE` may name, with what each holds.
const FIELDS: &[(&str, Field)] = &[
    ("contains_people", Field::Yes),
    ("people_count", Field::Count),
    ("contains_text", Field::Yes),
    ("visible_text", Field::Text),
    ("setting", Field::Text),
    ("kind", Field::Text),
    ("style", Field::Text),
    ("backend", Field::Text),
    ("model", Field::Text),
    ("prompt", Field::Text),
    ("lang", Field::Text),
    ("fingerprint", Field::Text),
];

/// The kinds of segment search can find: pictures described or tagged, and what is said.
const KINDS: &[&str] = &["description", "tags", "speech"];

/// Fields only the moderation style writes.
const MODERATION: &[&str] = &[
    "contains_people",
    "people_count",
    "contains_text",
    "visible_text",
    "setting",
];

/// `FIELD=VALUE` as a condition on a segment field, refused when no segment could ever match
/// it: a field scenedex does not write, or a value of the wrong kind for its field.
pub fn field_value(s: &str) -> Result<(String, serde_json::Value), String> {
    use serde_json::Value;
    let (field, value) = s
        .split_once('=')
        .filter(|(f, _)| !f.is_empty())
        .ok_or_else(|| format!("'{s}' is not FIELD=VALUE"))?;
    let Some(&(_, kind)) = FIELDS.iter().find(|(name, _)| *name == field) else {
        let names: Vec<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
        return Err(format!(
            "segments have no field '{field}'; the fields are {}",
            names.join(", ")
        ));
    };
    let value = match (kind, value) {
        (Field::Yes, "true" | "yes") => Value::Bool(true),
        (Field::Yes, "false" | "no") => Value::Bool(false),
        (Field::Yes, v) => return Err(format!("{field} is true or false, not '{v}'")),
        (Field::Count, v) => match v.parse::<u64>() {
            Ok(n) => Value::from(n),
            Err(_) => return Err(format!("{field} is a whole number, not '{v}'")),
        },
        (Field::Text, v) if field == "kind" && !KINDS.contains(&v) => {
            return Err(format!(
                "kind is {} (what is said), not '{v}'",
                KINDS.join(", ")
            ))
        }
        (Field::Text, v) => Value::String(v.into()),
    };
    Ok((field.to_string(), value))
}

/// The moderation fields among these conditions when no segment of the index has them (it
/// was captioned in another style), so that a filter that cannot match is not silent.
pub fn unseen_fields(
    store: &dyn VectorStore,
    conditions: &[Condition],
) -> Result<Vec<String>, StoreError> {
    let asked: Vec<String> = conditions
        .iter()
        .filter_map(|c| match c {
            Condition::Equals(field, _) if MODERATION.contains(&field.as_str()) => {
                Some(field.clone())
            }
            _ => None,
        })
        .collect();
    if asked.is_empty() {
        return Ok(asked);
    }
    // The moderation fields are written together, so one of them stands for all.
    let moderated = store.count(&[
        Condition::equals("record", SEGMENT),
        Condition::Either(vec![
            Condition::equals("contains_people", true),
            Condition::equals("contains_people", false),
        ]),
    ])?;
    Ok(if moderated == 0 { asked } else { Vec::new() })
}

/// What an index holds, in brief.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Overview {
    pub files: usize,
    pub hours: f64,
    pub segments: u64,
}

pub fn overview(store: &dyn VectorStore, host: &str) -> Result<Overview, StoreError> {
    let catalog = files::Catalog::load(store, host)?;
    // An empty sum of floats is -0.0, which would print as "-0.000 h".
    let seconds: f64 = catalog.records().map(|r| r.duration).sum::<f64>() + 0.0;
    Ok(Overview {
        files: catalog.records().count(),
        hours: (seconds / 3600.0 * 1e4).round() / 1e4,
        segments: store.count(&[Condition::equals("record", SEGMENT)])?,
    })
}

/// The conditions that keep segments overlapping `[from, to]` seconds of their file; a range
/// that ends before it begins is refused, as nothing could match it.
pub fn overlapping(from: Option<f64>, to: Option<f64>) -> Result<Vec<Condition>, String> {
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(format!(
                "--from {from} is after --to {to}: no segment can be in that range; swap them"
            ));
        }
    }
    let mut conditions = Vec::new();
    if from.is_some() {
        conditions.push(Condition::Between {
            field: "end".into(),
            min: from,
            max: None,
        });
    }
    if to.is_some() {
        conditions.push(Condition::Between {
            field: "start".into(),
            min: None,
            max: to,
        });
    }
    Ok(conditions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn found(fingerprint: &str, similarity: f32) -> Found {
        Found {
            hit: Hit {
                id: 0,
                score: 0.0,
                similarity,
                shares_words: false,
                payload: json!({ "fingerprint": fingerprint })
                    .as_object()
                    .unwrap()
                    .clone(),
            },
            place: Place {
                fingerprint: fingerprint.into(),
                host: "h".into(),
                path: "/p".into(),
                mtime_ns: 0,
                dev: None,
                missing_since: None,
            },
            places: vec![],
            size: None,
        }
    }

    #[test]
    fn per_file_caps_each_file_and_the_limit_counts_what_is_left() {
        let hits = vec![
            found("a", 0.9),
            found("a", 0.8),
            found("a", 0.7),
            found("b", 0.6),
            found("c", 0.5),
        ];
        let request = Request {
            limit: 3,
            per_file: Some(1),
            ..Default::default()
        };
        let kept: Vec<String> = keep(hits, &request)
            .hits
            .iter()
            .map(|f| f.fingerprint().to_string())
            .collect();
        assert_eq!(kept, ["a", "b", "c"]);
    }

    #[test]
    fn hits_below_the_similarity_floor_are_kept_apart_as_weak_ones_unless_they_share_a_word() {
        let request = Request {
            limit: 2,
            min_similarity: Some(0.65),
            ..Default::default()
        };
        let mut named = found("e", 0.1);
        named.hit.shares_words = true;
        let hits = vec![found("a", 0.6), found("b", 0.9), found("c", 0.5), named];
        let answer = keep(hits, &request);
        let names = |f: &[Found]| {
            f.iter()
                .map(|f| f.fingerprint().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&answer.hits), ["b", "e"]);
        assert_eq!(
            names(&answer.weak),
            ["a"],
            "only the weak ones the limit would show"
        );
    }
}
