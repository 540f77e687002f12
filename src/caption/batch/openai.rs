//! OpenAI's Batch API: the requests go up as a JSONL file, the batch carries our tag in its
//! metadata, and its answers (and its failures) come back as files.

use std::sync::Arc;

use serde_json::{json, Value};

use std::collections::HashSet;

use super::{Answer, Batcher, End, Limits, Lookup, State, Wanted, CLOCK_SKEW};
use crate::caption::{openai, CaptionError, Captioner, OpenAi, Request};

/// 50,000 requests and 200 MB per input file, as OpenAI documents.
const LIMITS: Limits = Limits {
    requests: 50_000,
    bytes: 200 * 1000 * 1000,
};

pub struct OpenAiBatches {
    api: Arc<OpenAi>,
    limits: Limits,
}

impl OpenAiBatches {
    /// At most `size` requests a batch, when given (never more than OpenAI takes).
    pub fn new(api: Arc<OpenAi>, size: Option<usize>) -> OpenAiBatches {
        OpenAiBatches {
            api,
            limits: LIMITS.at_most(size),
        }
    }

    fn lines_of(&self, file: &str) -> Result<Vec<Value>, CaptionError> {
        let text = self.api.get_text(&format!("files/{file}/content"))?;
        Ok(text
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect())
    }
}

impl Batcher for OpenAiBatches {
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
        json!({
            "custom_id": key,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": self.api.body(request),
        })
        .to_string()
    }

    fn create(&self, lines: &str, _count: usize, tag: &str) -> Result<String, CaptionError> {
        // An upload sent twice leaves a spare file, never a second batch.
        let file = self.api.upload_batch_file(lines.as_bytes())?;
        let batch = self.api.post_once(
            "batches",
            &json!({
                "input_file_id": text(&file, "id")?,
                "endpoint": "/v1/chat/completions",
                "completion_window": "24h",
                "metadata": {"scenedex_tag": tag},
            }),
        )?;
        text(&batch, "id")
    }

    /// Our tag is in the batch's metadata: the list is read page by page, newest first, down
    /// to batches older than the create.
    fn find(&self, wanted: &Wanted, known: &HashSet<String>) -> Result<Lookup, CaptionError> {
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                None => "batches?limit=100".to_string(),
                Some(id) => format!("batches?limit=100&after={id}"),
            };
            let list = self.api.get_json(&path)?;
            let page: &[Value] = list
                .get("data")
                .and_then(Value::as_array)
                .map_or(&[], Vec::as_slice);
            let id = |b: &Value| b.get("id").and_then(Value::as_str).map(str::to_string);
            let found = page.iter().find(|b| {
                b.pointer("/metadata/scenedex_tag").and_then(Value::as_str) == Some(wanted.tag)
            });
            if let Some(found) = found.and_then(id).filter(|f| !known.contains(f)) {
                return Ok(Lookup::Found(found));
            }
            let older = page.iter().any(|b| {
                b.get("created_at")
                    .and_then(Value::as_u64)
                    .is_some_and(|t| t + CLOCK_SKEW < wanted.since)
            });
            let more = list.get("has_more").and_then(Value::as_bool) == Some(true);
            after = match page.last().and_then(id) {
                Some(last) if more && !older => Some(last),
                _ => return Ok(Lookup::Nothing),
            };
        }
    }

    fn state(&self, id: &str) -> Result<State, CaptionError> {
        let batch = self.api.get_json(&format!("batches/{id}"))?;
        let count = |name: &str| {
            batch
                .pointer(&format!("/request_counts/{name}"))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        let ended = match batch.get("status").and_then(Value::as_str) {
            Some("completed") => Some(End::Completed),
            Some("failed") => Some(End::Failed),
            Some("expired") => Some(End::Expired),
            Some("cancelled") => Some(End::Cancelled),
            Some(_) => None,
            None => {
                return Err(CaptionError::BadReply {
                    backend: "openai".into(),
                    detail: format!("batch {id} has no status"),
                })
            }
        };
        Ok(State {
            ended,
            done: count("completed") + count("failed"),
            total: count("total"),
            detail: batch
                .pointer("/errors/data/0/message")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    fn results(&self, id: &str) -> Result<Vec<Answer>, CaptionError> {
        let batch = self.api.get_json(&format!("batches/{id}"))?;
        let mut answers = Vec::new();
        for field in ["output_file_id", "error_file_id"] {
            let Some(file) = batch.get(field).and_then(Value::as_str) else {
                continue;
            };
            for line in self.lines_of(file)? {
                let Some(key) = line.get("custom_id").and_then(Value::as_str) else {
                    continue;
                };
                answers.push((key.to_string(), answer(&line)));
            }
        }
        Ok(answers)
    }
}

fn answer(line: &Value) -> Result<crate::caption::Reply, String> {
    let status = line
        .pointer("/response/status_code")
        .and_then(Value::as_u64);
    match (status, line.pointer("/response/body")) {
        (Some(200), Some(body)) => openai::read_answer(body).map_err(|e| e.to_string()),
        _ => Err(line
            .pointer("/error/message")
            .or_else(|| line.pointer("/response/body/error/message"))
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {}", status.unwrap_or(0)), str::to_string)),
    }
}

fn text(value: &Value, name: &str) -> Result<String, CaptionError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CaptionError::BadReply {
            backend: "openai".into(),
            detail: format!("no {name} in the answer"),
        })
}
