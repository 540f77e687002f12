//! Anthropic's Message Batches: the requests go up in one JSON body, each answer comes back
//! as a line of the batch's results. Batches carry no name of ours, so the batches a create that
//! failed without a clear answer may have made are found by request count and creation time,
//! and the one it made is told by its answers' custom ids once they end.

use std::sync::Arc;

use serde_json::{json, Value};

use std::collections::HashSet;

use super::{Answer, Batcher, End, Limits, Lookup, State, Wanted, CLOCK_SKEW};
use crate::caption::{anthropic, Anthropic, CaptionError, Captioner, Request};

/// 100,000 requests and 256 MB per batch, as Anthropic documents.
const LIMITS: Limits = Limits {
    requests: 100_000,
    bytes: 256 * 1000 * 1000,
};

const BATCHES: &str = "v1/messages/batches";

pub struct AnthropicBatches {
    api: Arc<Anthropic>,
    limits: Limits,
}

impl AnthropicBatches {
    /// At most `size` requests a batch, when given (never more than Anthropic takes).
    pub fn new(api: Arc<Anthropic>, size: Option<usize>) -> AnthropicBatches {
        AnthropicBatches {
            api,
            limits: LIMITS.at_most(size),
        }
    }
}

impl Batcher for AnthropicBatches {
    fn captioner(&self) -> &dyn Captioner {
        self.api.as_ref()
    }

    fn endpoint(&self) -> &str {
        self.api.base_url()
    }

    fn limits(&self) -> Limits {
        self.limits
    }

    fn line(&self, key: &str, request: &Request) -> String {
        json!({"custom_id": key, "params": self.api.body(request)}).to_string()
    }

    fn create(&self, lines: &str, _count: usize, _tag: &str) -> Result<String, CaptionError> {
        let requests: Vec<Value> = lines
            .lines()
            .map(|line| serde_json::from_str(line).expect("lines are ours, and JSON"))
            .collect();
        let batch = self
            .api
            .post_once(BATCHES, &json!({ "requests": requests }))?;
        batch
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad("no id in the answer"))
    }

    /// Every batch of this many requests created since the create (less clock skew) that no
    /// record names, read page by page, newest first: even one alone may be another
    /// program's, so none is taken until its answers show our custom ids.
    fn find(&self, wanted: &Wanted, known: &HashSet<String>) -> Result<Lookup, CaptionError> {
        let mut candidates = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                None => format!("{BATCHES}?limit=100"),
                Some(id) => format!("{BATCHES}?limit=100&after_id={id}"),
            };
            let list = self.api.get_json(&path)?;
            let page: &[Value] = list
                .get("data")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice);
            let recent = |b: &&Value| created(b).is_some_and(|t| t + CLOCK_SKEW >= wanted.since);
            candidates.extend(
                page.iter()
                    .filter(recent)
                    .filter(|b| total(b) == wanted.count as u64)
                    .filter_map(|b| b.get("id")?.as_str().map(str::to_string))
                    .filter(|id| !known.contains(id)),
            );
            let more = list.get("has_more").and_then(Value::as_bool) == Some(true);
            let older = page.iter().any(|b| !recent(&b));
            after = match list.get("last_id").and_then(Value::as_str) {
                Some(last) if more && !older => Some(last.to_string()),
                _ => break,
            };
        }
        Ok(match candidates.is_empty() {
            true => Lookup::Nothing,
            false => Lookup::Maybe(candidates),
        })
    }

    fn state(&self, id: &str) -> Result<State, CaptionError> {
        let batch = self.api.get_json(&format!("{BATCHES}/{id}"))?;
        let count = |name: &str| {
            batch
                .pointer(&format!("/request_counts/{name}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let ended = match batch.get("processing_status").and_then(Value::as_str) {
            Some("ended") if count("canceled") > 0 => Some(End::Cancelled),
            Some("ended") if count("expired") > 0 => Some(End::Expired),
            Some("ended") => Some(End::Completed),
            Some(_) => None,
            None => return Err(bad(&format!("batch {id} has no processing_status"))),
        };
        Ok(State {
            ended,
            done: total(&batch) - count("processing"),
            total: total(&batch),
            detail: None,
        })
    }

    fn results(&self, id: &str) -> Result<Vec<Answer>, CaptionError> {
        // The documented path on the same host, never a URL from the answer: the key goes
        // only where it was meant to.
        let text = self.api.get_text(&format!("{BATCHES}/{id}/results"))?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|line| {
                let key = line.get("custom_id")?.as_str()?.to_string();
                Some((key, answer(&line)))
            })
            .collect())
    }
}

fn answer(line: &Value) -> Result<crate::caption::Reply, String> {
    let result = line.get("result");
    match result.and_then(|r| r.get("type")).and_then(Value::as_str) {
        Some("succeeded") => {
            let message = result.and_then(|r| r.get("message")).ok_or("no message")?;
            anthropic::read_answer(message).map_err(|e| e.to_string())
        }
        Some("errored") => Err(result
            .and_then(|r| r.pointer("/error/error/message"))
            .and_then(Value::as_str)
            .unwrap_or("errored")
            .to_string()),
        Some(other) => Err(other.to_string()),
        None => Err("no result".into()),
    }
}

fn total(batch: &Value) -> u64 {
    ["processing", "succeeded", "errored", "canceled", "expired"]
        .iter()
        .filter_map(|n| batch.pointer(&format!("/request_counts/{n}"))?.as_u64())
        .sum()
}

fn created(batch: &Value) -> Option<u64> {
    let text = batch.get("created_at")?.as_str()?;
    let time = humantime::parse_rfc3339_weak(text.trim_end_matches('Z')).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

fn bad(detail: &str) -> CaptionError {
    CaptionError::BadReply {
        backend: "anthropic".into(),
        detail: detail.into(),
    }
}
