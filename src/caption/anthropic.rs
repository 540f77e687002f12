//! Anthropic's Messages API.

use base64::Engine;
use serde_json::{json, Value};

use super::http::{Client, HttpSettings, Secret};
use super::{CaptionError, Captioner, Reply, Request, Usage};

const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    base_url: String,
    model: String,
    key: Secret,
    client: Client,
}

impl Anthropic {
    pub fn new(base_url: &str, model: &str, key: Secret, http: HttpSettings) -> Self {
        Anthropic {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key,
            client: Client::new("anthropic", http),
        }
    }

    pub(super) fn base_url(&self) -> &str {
        &self.base_url
    }

    fn with_headers<T>(&self, f: impl FnOnce(&[(&str, &str)]) -> T) -> T {
        f(&[
            ("x-api-key", self.key.expose()),
            ("anthropic-version", API_VERSION),
        ])
    }

    /// POSTs JSON to `{base}/{path}` once (creating a batch is never retried blindly).
    pub(super) fn post_once(&self, path: &str, body: &Value) -> Result<Value, CaptionError> {
        let url = format!("{}/{path}", self.base_url);
        self.with_headers(|h| self.client.post_json_once(&url, h, body))
    }

    pub(super) fn get_json(&self, path: &str) -> Result<Value, CaptionError> {
        let url = format!("{}/{path}", self.base_url);
        self.with_headers(|h| self.client.get_json(&url, h))
    }

    pub(super) fn get_text(&self, path: &str) -> Result<String, CaptionError> {
        let url = format!("{}/{path}", self.base_url);
        self.with_headers(|h| self.client.get_text(&url, h))
    }

    pub(super) fn body(&self, request: &Request) -> Value {
        let data = base64::engine::general_purpose::STANDARD.encode(request.jpeg);
        json!({
            "model": self.model,
            "max_tokens": request.prompt.max_tokens,
            "system": request.prompt.system_for(request.lang),
            "messages": [{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}},
                {"type": "text", "text": request.prompt.user.trim()},
            ]}],
        })
    }
}

impl Captioner for Anthropic {
    fn backend(&self) -> &str {
        "anthropic"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn waits_on_network(&self) -> bool {
        true
    }

    fn caption_future<'a>(&'a self, request: Request<'a>) -> super::BoxFuture<'a> {
        Box::pin(async move {
            let url = format!("{}/v1/messages", self.base_url);
            let headers = [
                ("x-api-key", self.key.expose()),
                ("anthropic-version", API_VERSION),
            ];
            let body = self.body(&request);
            read_answer(&self.client.post_json_async(&url, &headers, &body).await?)
        })
    }

    fn caption(&self, request: &Request) -> Result<Reply, CaptionError> {
        crate::runtime::block_on(self.caption_future(*request))
    }

    /// Anthropic's published estimate: width × height / 750 tokens.
    fn image_tokens(&self, width: u32, height: u32) -> u64 {
        (u64::from(width) * u64::from(height)).div_ceil(750)
    }
}

pub(super) fn read_answer(answer: &Value) -> Result<Reply, CaptionError> {
    let text: String = answer
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| CaptionError::BadReply {
            backend: "anthropic".into(),
            detail: "no content".into(),
        })?
        .iter()
        .filter(|block| block.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|block| block.get("text").and_then(Value::as_str))
        .collect();
    let usage = Usage {
        input_tokens: answer
            .pointer("/usage/input_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        output_tokens: answer
            .pointer("/usage/output_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };
    Ok(Reply { text, usage })
}
