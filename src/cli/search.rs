//! `scenedex search QUERY`: the best segments, for people or (`--json`) for scripts.

use std::path::Path;

use base64::Engine;
use serde_json::{Map, Value};

use super::output::{clock, Out};
use super::{CutArgs, Error, FilterArgs, SearchArgs};
use crate::backends::SetupError;
use crate::index::lease::host_name;
use crate::search::{
    default_floor, hosts, overlapping, search, unseen_fields, Answer, Found, Request, SearchError,
};
use crate::store::files::raw_bytes;
use crate::store::{Condition, VectorStore};

/// Payload fields that are for filtering, not for reading, or that only an index written by
/// scenedex 0.1 still has on its segments (paths now come from the file's places), and
/// `texts`, what `reembed` makes a segment's vector from.
const INTERNAL: [&str; 5] = ["record", "dirs", "path", "paths", "texts"];

pub fn run(args: &SearchArgs) -> Result<(), Error> {
    let (answer, store, floor) = find(&args.query, &args.store, &args.filters)?;
    let many_hosts = hosts(store.as_ref())?.len() > 1;
    let mut out = Out::new();
    if let Some(note) = note(&answer, floor, &args.filters) {
        eprintln!("{note}");
    }
    let found = answer.hits;
    let found = if args.filters.per_file.is_some() {
        grouped(found)
    } else {
        found
    };
    let mut last_file = None;
    for (rank, hit) in found.iter().enumerate() {
        if args.json {
            out.json(&json_hit(rank + 1, hit))?;
            continue;
        }
        if args.filters.per_file.is_some() && last_file != Some(hit.fingerprint()) {
            out.line(&place(hit, many_hosts))?;
            last_file = Some(hit.fingerprint());
        }
        for line in human_hit(rank + 1, hit, args.filters.per_file.is_some(), many_hosts) {
            out.line(&line)?;
        }
    }
    out.flush()
}

/// A search's answer, the store it came from, and the similarity floor it applied.
type Searched = (Answer, Box<dyn VectorStore>, Option<f32>);

/// The search, as the flags ask it.
fn find(
    query: &str,
    store_args: &super::StoreArgs,
    filters: &FilterArgs,
) -> Result<Searched, Error> {
    if query.trim().is_empty() {
        return Err(Error::Config(SearchError::EmptyQuery.to_string()));
    }
    let settings = store_args.settings();
    settings.check_exists()?;
    super::warn_about_key(&settings);
    let embedder = crate::backends::embedder(&settings)?;
    let store = settings.open(embedder.as_ref(), false)?;
    let mut request = request(query, filters)?;
    for field in unseen_fields(store.as_ref(), &request.filter)? {
        eprintln!(
            "warning: no segment of this index has the field {field}, so --where {field}=... \
             matches nothing; it comes from captions in the moderation style (--style moderation)"
        );
    }
    // 0 shows every hit: a negative similarity is as unrelated as 0.
    request.min_similarity = match filters.min_score {
        Some(floor) => Some(floor).filter(|&f| f > 0.0),
        None => default_floor(embedder.model()),
    };
    let answer =
        search(store.as_ref(), embedder.as_ref(), &request, &host_name()).map_err(|e| match e {
            SearchError::EmptyQuery => Error::Config(e.to_string()),
            SearchError::Embed(e) => Error::Service(e.to_string()),
            SearchError::Store(e) => Error::from(SetupError::Store(e)),
        })?;
    Ok((answer, store, request.min_similarity))
}

/// `scenedex cut`: the hits of a search written as clips, copied or re-encoded.
pub fn cut(args: &CutArgs) -> Result<(), Error> {
    let (answer, _store, floor) = find(&args.query, &args.store, &args.filters)?;
    if let Some(note) = note(&answer, floor, &args.filters) {
        eprintln!("{note}");
    }
    let (plans, skipped) = crate::clip::plans_for(&answer.hits, &host_name(), args.pad, &args.out)
        .map_err(|e| Error::Input(e.to_string()))?;
    for why in skipped {
        eprintln!("note: {why}");
    }
    super::refuse_existing(plans.iter().map(|p| p.out.as_path()), args.force)?;
    std::fs::create_dir_all(&args.out).map_err(|source| Error::Write {
        path: args.out.clone(),
        source,
    })?;
    let mut out = Out::new();
    for plan in &plans {
        crate::clip::write(plan).map_err(|e| match e {
            crate::clip::ClipError::Interrupted => Error::Interrupted,
            // The clip's own name, not the partial file it is written as.
            crate::clip::ClipError::Write(_, source) => Error::Write {
                path: plan.out.clone(),
                source,
            },
            e => Error::Input(e.to_string()),
        })?;
        let how = if plan.copy { "copied" } else { "re-encoded" };
        out.line(&format!("{}  ({how})", plan.out.display()))?;
    }
    out.flush()
}

/// What standard error says of hits that are missing or hidden.
fn note(answer: &Answer, floor: Option<f32>, filters: &FilterArgs) -> Option<String> {
    if let (true, Some(path)) = (answer.nothing_at_path, &filters.path) {
        return Some(format!(
            "warning: nothing in the index is at or under {}; check --path",
            path.display()
        ));
    }
    let hidden = answer.weak.len();
    let floor = floor.unwrap_or(0.0);
    match (answer.hits.is_empty(), hidden) {
        (true, 0) => Some("no segment matches; try other words, or fewer filters".into()),
        (true, n) => Some(format!(
            "no close match: {n} weaker {} (similarity below {floor:.2}) hidden; --min-score 0 shows them",
            if n == 1 { "hit" } else { "hits" }
        )),
        (false, 0) => None,
        (false, n) => Some(format!(
            "{n} weaker {} (similarity below {floor:.2}) hidden; --min-score 0 shows them",
            if n == 1 { "hit" } else { "hits" }
        )),
    }
}

fn request(query: &str, args: &FilterArgs) -> Result<Request, Error> {
    let mut filter: Vec<Condition> = args
        .conditions
        .iter()
        .map(|(field, value)| Condition::Equals(field.clone(), value.clone()))
        .collect();
    filter.extend(overlapping(args.from, args.to).map_err(Error::Config)?);
    Ok(Request {
        query: query.to_string(),
        limit: args.limit as usize,
        per_file: args.per_file.map(|n| n as usize),
        min_similarity: args.min_score,
        path: args.path.clone(),
        filter,
    })
}

/// Hits of one file together, files in the order of their best hit.
fn grouped(found: Vec<Found>) -> Vec<Found> {
    let mut files: Vec<String> = Vec::new();
    for hit in &found {
        if !files.iter().any(|f| f == hit.fingerprint()) {
            files.push(hit.fingerprint().to_string());
        }
    }
    let mut found = found;
    found.sort_by_key(|h| files.iter().position(|f| f == h.fingerprint()));
    found
}

fn seconds(payload: &Map<String, Value>, field: &str) -> f64 {
    payload.get(field).and_then(Value::as_f64).unwrap_or(0.0)
}

fn text<'a>(payload: &'a Map<String, Value>, field: &str) -> &'a str {
    payload.get(field).and_then(Value::as_str).unwrap_or("")
}

/// Where the hit's file is, for people: `HOST:PATH` when the index spans machines.
fn place(hit: &Found, many_hosts: bool) -> String {
    let offline = hit
        .offline_date()
        .map_or(String::new(), |day| format!(" (offline since {day})"));
    match many_hosts {
        true => format!("{}:{}{offline}", hit.place.host, hit.place.shown()),
        false => format!("{}{offline}", hit.place.shown()),
    }
}

/// A command that plays the segment, the path quoted for a shell: POSIX quoting, or Bash's
/// `$'…'` for a name that is not UTF-8, so that every byte survives a copy and paste.
fn mpv_line(hit: &Found) -> String {
    let p = &hit.hit.payload;
    let path = hit.place.os_path();
    let quoted = match path.to_str() {
        Some(text) => shlex::try_quote(text).map_or_else(|_| text.to_string(), |q| q.into_owned()),
        None => bash_quoted(&path),
    };
    format!(
        "mpv --start={:.3} --end={:.3} {quoted}",
        seconds(p, "start"),
        seconds(p, "end")
    )
}

fn bash_quoted(path: &Path) -> String {
    let quoted = shell_quote::Bash::quote_vec(path);
    String::from_utf8(quoted).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn json_hit(rank: usize, hit: &Found) -> Value {
    let round = |x: f32| (f64::from(x) * 1e6).round() / 1e6;
    let payload = &hit.hit.payload;
    let mut map = Map::new();
    map.insert("rank".into(), rank.into());
    map.insert("score".into(), round(hit.hit.score).into());
    map.insert("similarity".into(), round(hit.hit.similarity).into());
    map.insert("path".into(), hit.place.shown().into());
    if let Some(bytes) = raw_bytes(&hit.place.path) {
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        map.insert("path_bytes".into(), encoded.into());
    }
    map.insert("host".into(), hit.place.host.clone().into());
    map.insert("offline_since".into(), hit.offline_date().into());
    for field in ["start", "end", "caption"] {
        map.insert(
            field.into(),
            payload.get(field).cloned().unwrap_or(Value::Null),
        );
    }
    map.insert("mpv".into(), mpv_line(hit).into());
    let paths: Vec<Value> = hit.places.iter().map(|p| p.shown().into()).collect();
    map.insert("paths".into(), paths.into());
    for (field, value) in payload {
        if !map.contains_key(field) && !INTERNAL.contains(&field.as_str()) {
            map.insert(field.clone(), value.clone());
        }
    }
    Value::Object(map)
}

fn human_hit(rank: usize, hit: &Found, grouped: bool, many_hosts: bool) -> Vec<String> {
    let p = &hit.hit.payload;
    let place = if grouped {
        String::new()
    } else {
        format!("{}  ", place(hit, many_hosts))
    };
    let indent = if grouped { "     " } else { "    " };
    let mut caption = text(p, "caption").replace('\n', " / ");
    if text(p, "kind") == "speech" {
        caption = format!("said ({}): \"{caption}\"", text(p, "lang"));
    }
    vec![
        format!(
            "{rank:>2}. {place}{} – {}  (score {:.4}, similarity {:.2})",
            clock(seconds(p, "start")),
            clock(seconds(p, "end")),
            hit.hit.score,
            hit.hit.similarity
        ),
        format!("{indent}{caption}"),
        format!("{indent}thumbnail: {}", text(p, "thumbnail")),
        format!("{indent}{}", mpv_line(hit)),
    ]
}
