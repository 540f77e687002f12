//! OpenAI-compatible chat completions: OpenAI itself, Gemini's OpenAI endpoint, OpenRouter,
//! and local servers (Ollama's /v1, vLLM, llama.cpp server, LM Studio).

use base64::Engine;
use serde_json::{json, Value};

use super::http::{Client, HttpSettings, Secret};
use super::{CaptionError, Captioner, Reply, Request, Usage};

/// OpenAI's image detail setting: `low` is a flat 85 tokens a picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Detail {
    Low,
    High,
    Auto,
}

impl Detail {
    fn as_str(self) -> &'static str {
        match self {
            Detail::Low => "low",
            Detail::High => "high",
            Detail::Auto => "auto",
        }
    }
}

pub struct OpenAi {
    base_url: String,
    model: String,
    key: Option<Secret>,
    detail: Detail,
    client: Client,
}

impl OpenAi {
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<Secret>,
        detail: Detail,
        http: HttpSettings,
    ) -> Self {
        OpenAi {
            base_url: base_url.trim_end_matches('/').to_string(),
            model: model.to_string(),
            key,
            detail,
            client: Client::new("openai", http),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    fn with_headers<T>(&self, f: impl FnOnce(&[(&str, &str)]) -> T) -> T {
        super::http::with_bearer(self.key.as_ref(), f)
    }

    /// POSTs JSON once (creating a batch is never retried blindly).
    pub(super) fn post_once(&self, path: &str, body: &Value) -> Result<Value, CaptionError> {
        let url = format!("{}/{path}", self.base_url);
        self.with_headers(|h| self.client.post_json_once(&url, h, body))
    }

    pub(super) fn get_text(&self, path: &str) -> Result<String, CaptionError> {
        let url = format!("{}/{path}", self.base_url);
        self.with_headers(|h| self.client.get_text(&url, h))
    }

    pub(super) fn get_json(&self, path: &str) -> Result<Value, CaptionError> {
        let url = format!("{}/{path}", self.base_url);
        self.with_headers(|h| self.client.get_json(&url, h))
    }

    /// Uploads a JSONL file of requests for the Batch API.
    pub(super) fn upload_batch_file(&self, jsonl: &[u8]) -> Result<Value, CaptionError> {
        let url = format!("{}/files", self.base_url);
        self.with_headers(|h| {
            self.client.post_form(
                &url,
                h,
                &[("purpose", "batch")],
                ("file", "requests.jsonl", jsonl),
            )
        })
    }

    pub(super) fn body(&self, request: &Request) -> Value {
        let data = base64::engine::general_purpose::STANDARD.encode(request.jpeg);
        json!({
            "model": self.model,
            "max_tokens": request.prompt.max_tokens,
            "messages": [
                {"role": "system", "content": request.prompt.system_for(request.lang)},
                {"role": "user", "content": [
                    {"type": "text", "text": request.prompt.user.trim()},
                    {"type": "image_url", "image_url": {
                        "url": format!("data:image/jpeg;base64,{data}"),
                        "detail": self.detail.as_str(),
                    }},
                ]},
            ],
        })
    }
}

impl Captioner for OpenAi {
    fn backend(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn waits_on_network(&self) -> bool {
        true
    }

    fn caption_future<'a>(&'a self, request: Request<'a>) -> super::BoxFuture<'a> {
        Box::pin(async move {
            let url = format!("{}/chat/completions", self.base_url);
            let bearer = self.key.as_ref().map(|k| format!("Bearer {}", k.expose()));
            let headers: Vec<(&str, &str)> = bearer
                .iter()
                .map(|v| ("Authorization", v.as_str()))
                .collect();
            let body = self.body(&request);
            read_answer(&self.client.post_json_async(&url, &headers, &body).await?)
        })
    }

    fn caption(&self, request: &Request) -> Result<Reply, CaptionError> {
        crate::runtime::block_on(self.caption_future(*request))
    }

    /// OpenAI's published rule: 85 tokens at low detail; at high, 85 plus 170 per 512-pixel
    /// tile after fitting in 2048 and scaling the short side to 768.
    fn image_tokens(&self, width: u32, height: u32) -> u64 {
        if self.detail == Detail::Low {
            return 85;
        }
        let (mut w, mut h) = (f64::from(width), f64::from(height));
        let fit = (2048.0 / w.max(h)).min(1.0);
        (w, h) = (w * fit, h * fit);
        let short = (768.0 / w.min(h)).min(1.0);
        (w, h) = (w * short, h * short);
        let tiles = ((w / 512.0).ceil() * (h / 512.0).ceil()) as u64;
        85 + 170 * tiles
    }
}

pub(super) fn read_answer(answer: &Value) -> Result<Reply, CaptionError> {
    let bad = |detail: &str| CaptionError::BadReply {
        backend: "openai".into(),
        detail: detail.into(),
    };
    let choice = answer
        .pointer("/choices/0")
        .ok_or_else(|| bad("no choices"))?;
    if choice.get("finish_reason").and_then(Value::as_str) == Some("content_filter") {
        return Err(bad("the service's content filter withheld the answer"));
    }
    let text = choice
        .pointer("/message/content")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no message content"))?;
    let usage = Usage {
        input_tokens: answer
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        output_tokens: answer
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    };
    Ok(Reply {
        text: text.to_string(),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_tokens_follow_the_published_rule() {
        let high = OpenAi::new("http://x", "m", None, Detail::High, HttpSettings::default());
        assert_eq!(high.image_tokens(512, 288), 85 + 170);
        assert_eq!(high.image_tokens(2048, 4096), 85 + 170 * 6);
        let low = OpenAi::new("http://x", "m", None, Detail::Low, HttpSettings::default());
        assert_eq!(low.image_tokens(4000, 3000), 85);
    }

    #[test]
    fn answers_without_content_are_errors() {
        assert!(read_answer(&json!({"choices": []})).is_err());
        let ok = read_answer(&json!({"choices": [{"message": {"content": "a dog"}}], "usage": {"prompt_tokens": 100, "completion_tokens": 5}})).unwrap();
        assert_eq!(
            (
                ok.text.as_str(),
                ok.usage.input_tokens,
                ok.usage.output_tokens
            ),
            ("a dog", 100, 5)
        );
    }
}
