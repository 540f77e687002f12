//! `scenedex search QUERY`: the best segments, for people or (`--json`) for scripts.

use serde_json::{Map, Value};

use super::output::{clock, Out};
use super::{backends, Error, SearchArgs};
use crate::search::{overlapping, search, under, Request, SearchError};
use crate::store::{Condition, Hit};

/// Payload fields that are for filtering, not for reading.
const INTERNAL: [&str; 2] = ["record", "dirs"];

pub fn run(args: &SearchArgs) -> Result<(), Error> {
    if args.query.trim().is_empty() {
        return Err(Error::Config(SearchError::EmptyQuery.to_string()));
    }
    backends::check_exists(&args.store)?;
    let embedder = backends::embedder(&args.store)?;
    let store = backends::store(&args.store, embedder.as_ref(), false)?;
    let request = request(args);
    let hits = search(store.as_ref(), embedder.as_ref(), &request).map_err(|e| match e {
        SearchError::EmptyQuery => Error::Config(e.to_string()),
        SearchError::Embed(e) => Error::Service(e.to_string()),
        SearchError::Store(e) => Error::Store(e),
    })?;
    let mut out = Out::new();
    if hits.is_empty() && !args.json {
        eprintln!("no segment matches; try other words, or fewer filters");
    }
    let hits = if args.per_file.is_some() {
        grouped(hits)
    } else {
        hits
    };
    let mut last_path = None;
    for (rank, hit) in hits.iter().enumerate() {
        if args.json {
            out.json(&json_hit(rank + 1, hit))?;
            continue;
        }
        let path = text(&hit.payload, "path");
        if args.per_file.is_some() && last_path != Some(path) {
            out.line(path)?;
            last_path = Some(path);
        }
        for line in human_hit(rank + 1, hit, args.per_file.is_some()) {
            out.line(&line)?;
        }
    }
    out.flush()
}

fn request(args: &SearchArgs) -> Request {
    let mut filter: Vec<Condition> = args
        .conditions
        .iter()
        .map(|(field, value)| Condition::Equals(field.clone(), value.clone()))
        .collect();
    filter.extend(args.path.as_deref().map(under));
    filter.extend(overlapping(args.from, args.to));
    Request {
        query: args.query.clone(),
        limit: args.limit as usize,
        per_file: args.per_file.map(|n| n as usize),
        min_similarity: args.min_score,
        filter,
    }
}

/// Hits of one file together, files in the order of their best hit.
fn grouped(hits: Vec<Hit>) -> Vec<Hit> {
    let mut files: Vec<String> = Vec::new();
    for hit in &hits {
        let path = text(&hit.payload, "path").to_string();
        if !files.contains(&path) {
            files.push(path);
        }
    }
    let mut hits = hits;
    hits.sort_by_key(|h| files.iter().position(|f| f == text(&h.payload, "path")));
    hits
}

fn text<'a>(payload: &'a Map<String, Value>, field: &str) -> &'a str {
    payload.get(field).and_then(Value::as_str).unwrap_or("")
}

fn seconds(payload: &Map<String, Value>, field: &str) -> f64 {
    payload.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

/// A command that plays the segment; the path quoted for a POSIX shell.
fn mpv_line(payload: &Map<String, Value>) -> String {
    let path = text(payload, "path");
    let quoted = shlex::try_quote(path).map_or_else(|_| path.to_string(), |q| q.into_owned());
    format!(
        "mpv --start={:.3} --end={:.3} {quoted}",
        seconds(payload, "start"),
        seconds(payload, "end")
    )
}

fn json_hit(rank: usize, hit: &Hit) -> Value {
    let round = |x: f32| (f64::from(x) * 1e6).round() / 1e6;
    let mut map = Map::new();
    map.insert("rank".into(), rank.into());
    map.insert("score".into(), round(hit.score).into());
    map.insert("similarity".into(), round(hit.similarity).into());
    for field in ["path", "start", "end", "caption"] {
        map.insert(
            field.into(),
            hit.payload.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    map.insert("mpv".into(), mpv_line(&hit.payload).into());
    for (field, value) in &hit.payload {
        if !map.contains_key(field) && !INTERNAL.contains(&field.as_str()) {
            map.insert(field.clone(), value.clone());
        }
    }
    Value::Object(map)
}

fn human_hit(rank: usize, hit: &Hit, grouped: bool) -> Vec<String> {
    let p = &hit.payload;
    let place = if grouped {
        String::new()
    } else {
        format!("{}  ", text(p, "path"))
    };
    let indent = if grouped { "     " } else { "    " };
    let caption = text(p, "caption").replace('\n', " / ");
    vec![
        format!(
            "{rank:>2}. {place}{} – {}  (score {:.4}, similarity {:.2})",
            clock(seconds(p, "start")),
            clock(seconds(p, "end")),
            hit.score,
            hit.similarity
        ),
        format!("{indent}{caption}"),
        format!("{indent}thumbnail: {}", text(p, "thumbnail")),
        format!("{indent}{}", mpv_line(p)),
    ]
}
