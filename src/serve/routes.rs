//! The server's routes. Each handler turns a fingerprint and a time into what it names, and
//! answers 404 for anything the index does not hold on this machine.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tower::ServiceExt;
use tower_http::services::ServeFile;
use tower_http::set_header::SetResponseHeaderLayer;

use super::media::{self, Playback};
use super::{auth, App};
use crate::index::thumbs::is_fingerprint;
use crate::search::{self, Found, Request as Search};
use crate::store::files;
use crate::store::{point_id, Condition};

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");
const STYLE: &str = include_str!("page/app.css");

/// Captions and paths are untrusted text; the page only ever sets them as text, and this
/// policy stops any script but the page's own from running even if that ever slipped.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                      media-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";
/// Seconds of context played before and after a scene, in a stretch made playable.
const CONTEXT: f64 = 5.0;
/// The longest stretch made playable at once.
const LONGEST: f64 = 180.0;
/// The longer side of a thumbnail made on demand: what indexing writes.
const THUMB_SIDE: u32 = 512;

type Answer = Result<Response, (StatusCode, String)>;

pub fn router(app: Arc<App>) -> Router {
    let header = |name: &'static str, value: &'static str| {
        SetResponseHeaderLayer::overriding(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    };
    Router::new()
        .route("/", get(|| text("text/html; charset=utf-8", PAGE)))
        .route(
            "/app.js",
            get(|| text("text/javascript; charset=utf-8", SCRIPT)),
        )
        .route("/app.css", get(|| text("text/css; charset=utf-8", STYLE)))
        .route("/api/search", get(api_search))
        .route("/api/stats", get(api_stats))
        .route("/api/stretch/{fingerprint}", get(api_stretch))
        .route("/video/{fingerprint}", get(video))
        .route("/stretch/{fingerprint}/{name}", get(stretch_file))
        .route("/thumb/{fingerprint}/{millis}", get(thumb))
        .route("/track/{fingerprint}", get(track))
        .fallback(|| async { not_found() })
        .layer(from_fn_with_state(app.clone(), auth::require))
        .layer(from_fn_with_state(app.clone(), super::hosts::require))
        .layer(header("content-security-policy", POLICY))
        .layer(header("x-content-type-options", "nosniff"))
        .layer(header("referrer-policy", "no-referrer"))
        .with_state(app)
}

async fn text(kind: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, kind)], body).into_response()
}

fn not_found() -> (StatusCode, String) {
    (StatusCode::NOT_FOUND, "404: not in the index\n".into())
}

fn failed(e: impl std::fmt::Display) -> (StatusCode, String) {
    (StatusCode::INTERNAL_SERVER_ERROR, format!("500: {e}\n"))
}

/// Runs store and decoder work off the async threads: both block.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, (StatusCode, String)> + Send + 'static,
) -> Result<T, (StatusCode, String)> {
    tokio::task::spawn_blocking(work).await.map_err(failed)?
}

fn pairs(query: &Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn number(pairs: &[(String, String)], name: &str) -> Option<f64> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .filter(|x| x.is_finite())
}

fn request(pairs: &[(String, String)], floor: Option<f32>) -> Result<Search, String> {
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    // Said in the page's words: its fields are From, To and Where, not flags.
    let (from, to) = (number(pairs, "from"), number(pairs, "to"));
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(format!(
                "From ({from} s) is after To ({to} s), so no scene can match; swap them"
            ));
        }
    }
    let mut filter = search::overlapping(from, to)?;
    for (_, condition) in pairs.iter().filter(|(k, _)| k == "where") {
        let (field, value) = search::field_value(condition).map_err(|e| format!("Where: {e}"))?;
        filter.push(Condition::Equals(field, value));
    }
    Ok(Search {
        query: value("q").unwrap_or_default(),
        limit: number(pairs, "limit").map_or(24, |n| n.clamp(1.0, 200.0) as usize),
        per_file: None,
        min_similarity: match number(pairs, "min_score") {
            Some(m) => Some(m as f32).filter(|&m| m > 0.0),
            None => floor,
        },
        path: value("path").filter(|p| !p.is_empty()).map(PathBuf::from),
        filter,
    })
}

async fn api_search(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Answer {
    let pairs = pairs(&query);
    blocking(move || {
        let floor = search::default_floor(app.embedder.model());
        let request = request(&pairs, floor).map_err(|e| (StatusCode::BAD_REQUEST, e))?;
        if request.query.trim().is_empty() {
            return Ok(Json(json!({"hits": [], "weak": []})).into_response());
        }
        let answer = search::search(
            app.store.as_ref(),
            app.embedder.as_ref(),
            &request,
            &app.host,
        )
        .map_err(failed)?;
        let unseen = search::unseen_fields(app.store.as_ref(), &request.filter).map_err(failed)?;
        let notes: Vec<String> = unseen
            .iter()
            .map(|field| {
                format!(
                    "no scene in this index has {field}, so Where {field}=… matches nothing: \
                     it comes from captions in the moderation style (index with --style moderation)"
                )
            })
            .collect();
        let hits: Vec<Value> = answer.hits.iter().map(|f| hit(&app, f)).collect();
        let weak: Vec<Value> = answer.weak.iter().map(|f| hit(&app, f)).collect();
        Ok(Json(json!({
            "hits": hits,
            "weak": weak,
            "floor": request.min_similarity,
            "notes": notes,
        }))
        .into_response())
    })
    .await
}

/// A hit as the page shows it: what, when, where, and how it can be played here.
fn hit(app: &App, found: &Found) -> Value {
    let p = &found.hit.payload;
    let fingerprint = found.fingerprint();
    let start = p.get("start").and_then(Value::as_f64).unwrap_or(0.0);
    let mut map = Map::new();
    for field in ["start", "end", "caption", "kind", "lang"] {
        map.insert(field.into(), p.get(field).cloned().unwrap_or(Value::Null));
    }
    map.insert("fingerprint".into(), fingerprint.into());
    map.insert("score".into(), found.hit.score.into());
    map.insert("similarity".into(), found.hit.similarity.into());
    map.insert("path".into(), found.place.shown().into());
    map.insert("host".into(), found.place.host.clone().into());
    map.insert("offline_since".into(), found.offline_date().into());
    let millis = crate::store::millis(start);
    map.insert(
        "thumb".into(),
        format!("/thumb/{fingerprint}/{millis}").into(),
    );
    map.insert("track".into(), format!("/track/{fingerprint}").into());
    match app.playable(found) {
        Ok((_, how)) => {
            map.insert("play".into(), json!(how));
            let url = match how {
                Playback::Native => format!("/video/{fingerprint}"),
                _ => format!("/api/stretch/{fingerprint}"),
            };
            map.insert("url".into(), url.into());
        }
        Err(why) => {
            map.insert("play".into(), Value::Null);
            map.insert("why".into(), why.into());
        }
    }
    Value::Object(map)
}

impl App {
    /// This machine's copy of a file, and how a browser gets to play it, or why it cannot.
    fn playable(&self, found: &Found) -> Result<(PathBuf, Playback), String> {
        let path = found.here(&self.host)?;
        let how = self.playback(found.fingerprint(), &path)?;
        Ok((path, how))
    }

    /// How a browser gets to play this file: probed once per fingerprint, then remembered.
    fn playback(&self, fingerprint: &str, path: &Path) -> Result<Playback, String> {
        let known = self
            .probed
            .lock()
            .ok()
            .and_then(|p| p.get(fingerprint).copied());
        if let Some(how) = known {
            return Ok(how);
        }
        let decoder = crate::decode::Decoder::open(path, crate::decode::Skip::NonKey)
            .map_err(|e| format!("cannot open it: {e}"))?;
        let info = decoder.info();
        let how = media::playback(path, &info.codec, &info.container);
        if let Ok(mut probed) = self.probed.lock() {
            probed.insert(fingerprint.to_string(), how);
        }
        Ok(how)
    }

    /// The path of a file the index holds, on this machine, by fingerprint; None for any
    /// other name.
    fn file(&self, fingerprint: &str) -> Option<PathBuf> {
        if !is_fingerprint(fingerprint) {
            return None;
        }
        let fingerprints = [fingerprint.to_string()];
        let records = files::records_of(self.store.as_ref(), &fingerprints).ok()?;
        let size = records.get(fingerprint)?.as_ref()?.size;
        files::places_of(self.store.as_ref(), &fingerprints)
            .ok()?
            .into_iter()
            .filter(|p| p.host == self.host)
            .find_map(|p| files::current(&p, Some(size)).ok())
    }
}

async fn api_stats(State(app): State<Arc<App>>) -> Answer {
    blocking(move || {
        let overview = search::overview(app.store.as_ref(), &app.host).map_err(failed)?;
        Ok(Json(overview).into_response())
    })
    .await
}

async fn video(
    State(app): State<Arc<App>>,
    UrlPath(fingerprint): UrlPath<String>,
    request: Request,
) -> Answer {
    let path = blocking(move || app.file(&fingerprint).ok_or_else(not_found)).await?;
    send_file(path, request).await
}

/// A file with range requests, conditional requests and its MIME type, as tower-http serves it.
async fn send_file(path: PathBuf, request: Request) -> Answer {
    ServeFile::new(path)
        .oneshot(request)
        .await
        .map(IntoResponse::into_response)
        .map_err(failed)
}

async fn api_stretch(
    State(app): State<Arc<App>>,
    UrlPath(fingerprint): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let pairs = pairs(&query);
    let from = number(&pairs, "from").unwrap_or(0.0).max(0.0);
    let to = number(&pairs, "to")
        .unwrap_or(from + 60.0)
        .clamp(from + 1.0, from + LONGEST);
    // Whole seconds of context, so that nearby scenes share a stretch on disk.
    let (from, to) = ((from - CONTEXT).max(0.0).floor(), (to + CONTEXT).ceil());
    blocking(move || {
        let path = app.file(&fingerprint).ok_or_else(not_found)?;
        let how = app.playback(&fingerprint, &path).map_err(failed)?;
        let made = match app.streams.stretch(&path, &fingerprint, how, from, to) {
            Ok(made) => made,
            // The page waits its turn and asks again.
            Err(media::Wait::Busy(making)) => {
                return Ok((
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, "1")],
                    Json(json!({ "waiting": making })),
                )
                    .into_response())
            }
            Err(media::Wait::Failed(e)) => return Err(failed(e)),
        };
        let name = made.file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        Ok(Json(json!({
            "url": format!("/stretch/{fingerprint}/{name}"),
            "offset": made.offset,
            "how": how,
        }))
        .into_response())
    })
    .await
}

async fn stretch_file(
    State(app): State<Arc<App>>,
    UrlPath((fingerprint, name)): UrlPath<(String, String)>,
    request: Request,
) -> Answer {
    let named_by_us = name
        .strip_suffix(".mp4")
        .and_then(|n| n.split_once('-'))
        .is_some_and(|(a, b)| {
            [a, b]
                .iter()
                .all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit()))
        });
    if !is_fingerprint(&fingerprint) || !named_by_us {
        return Err(not_found());
    }
    let path = app.streams.dir(&fingerprint).join(&name);
    if !path.is_file() {
        return Err(not_found());
    }
    app.streams.asked_for(&path);
    send_file(path, request).await
}

async fn thumb(
    State(app): State<Arc<App>>,
    UrlPath((fingerprint, millis)): UrlPath<(String, String)>,
) -> Answer {
    let millis: i64 = millis.parse().map_err(|_| not_found())?;
    if !is_fingerprint(&fingerprint) {
        return Err(not_found());
    }
    let jpeg = blocking(move || {
        if let Some(jpeg) = app.cached_thumb(&fingerprint, millis) {
            return Ok(jpeg);
        }
        app.make_thumb(&fingerprint, millis)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "image/jpeg")], jpeg).into_response())
}

impl App {
    /// A thumbnail already made, read only if it is a plain file inside the thumbnails folder.
    fn cached_thumb(&self, fingerprint: &str, millis: i64) -> Option<Vec<u8>> {
        let root = std::fs::canonicalize(self.thumbs.dir()).ok()?;
        let path = self
            .thumbs
            .dir()
            .join(fingerprint)
            .join(format!("{millis}.jpg"));
        let meta = std::fs::symlink_metadata(&path).ok()?;
        let real = std::fs::canonicalize(&path).ok()?;
        let inside = real.parent().and_then(|p| p.parent()) == Some(root.as_path());
        (meta.is_file() && inside).then(|| std::fs::read(&real).ok())?
    }

    /// Another machine indexed this file: seek this machine's copy to the segment's picture,
    /// and keep the thumbnail for next time.
    fn make_thumb(&self, fingerprint: &str, millis: i64) -> Result<Vec<u8>, (StatusCode, String)> {
        let start = millis as f64 / 1000.0;
        let segment = self
            .store
            .get(&[point_id(fingerprint, start)])
            .map_err(failed)?
            .into_iter()
            .next()
            .ok_or_else(not_found)?;
        let path = self.file(fingerprint).ok_or_else(not_found)?;
        let frames: Vec<f64> = segment
            .payload
            .get("frames")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_f64).collect())
            .unwrap_or_default();
        let time = frames.first().copied().unwrap_or(start);
        let jpeg = media::picture_at(&path, time, THUMB_SIDE).map_err(failed)?;
        // A thumbnail that cannot be kept is still shown.
        let _ = self.thumbs.write(fingerprint, start, &jpeg);
        Ok(jpeg)
    }
}

async fn track(
    State(app): State<Arc<App>>,
    UrlPath(fingerprint): UrlPath<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    if !is_fingerprint(&fingerprint) {
        return Err(not_found());
    }
    let offset = number(&pairs(&query), "offset").unwrap_or(0.0);
    blocking(move || {
        let mut cues = crate::track::cues(app.store.as_ref(), &fingerprint, &[]).map_err(failed)?;
        if cues.is_empty() {
            return Err(not_found());
        }
        // A stretch made playable starts at `offset` in its file.
        cues.retain(|c| c.end > offset);
        for cue in &mut cues {
            cue.start = (cue.start - offset).max(0.0);
            cue.end -= offset;
        }
        let text = crate::track::render(&cues, crate::track::Format::Vtt).map_err(failed)?;
        Ok((
            [(header::CONTENT_TYPE, "text/vtt; charset=utf-8")],
            Body::from(text),
        )
            .into_response())
    })
    .await
}

pub(super) type Probed = std::sync::Mutex<HashMap<String, Playback>>;
