//! The HTTP side shared by the remote backends: time-outs, a requests-per-minute cap, retries
//! with exponential backoff and jitter (at least as long as the server's Retry-After), and an
//! API key that never reaches a log, an error or a file.

use std::num::NonZeroU32;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;

use super::CaptionError;

/// An API key. Its Debug and Display say `[redacted]`, so no error or log can leak it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HttpSettings {
    /// Longest wait for one answer.
    pub timeout: Duration,
    /// Retries after the first attempt, for transient failures only.
    pub retries: usize,
    /// First backoff delay; it doubles on each retry, with jitter, up to `max_delay`.
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Cap on requests per minute, retries included.
    pub per_minute: Option<NonZeroU32>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            timeout: Duration::from_secs(60),
            retries: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            per_minute: None,
        }
    }
}

enum Payload<'a> {
    None,
    Json(&'a Value),
    Form {
        fields: &'a [(&'a str, &'a str)],
        file: &'a (&'a str, &'a str, &'a [u8]),
    },
}

pub struct Client {
    backend: &'static str,
    http: reqwest::Client,
    settings: HttpSettings,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl Client {
    pub fn new(backend: &'static str, settings: HttpSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            // A redirect would carry the key (Authorization, x-api-key) to wherever it points:
            // it is answered as the error it is, never followed.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scenedex/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a TLS back end that cannot start fails here, and rustls with built-in roots
            // always starts: fall back to a default client rather than panic.
            .unwrap_or_default();
        let limiter = settings
            .per_minute
            .map(|n| RateLimiter::direct(Quota::per_minute(n)));
        Client {
            backend,
            http,
            settings,
            limiter,
        }
    }

    /// POSTs `body` as JSON and returns the JSON answer, retrying what may pass.
    pub fn post_json(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, CaptionError> {
        crate::runtime::block_on(self.post_json_async(url, headers, body))
    }

    /// `post_json` as a future, for many requests in flight on the shared runtime.
    pub async fn post_json_async(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, CaptionError> {
        self.send(url, headers, &Payload::Json(body), |text| self.parse(&text))
            .await
    }

    /// POSTs `body` as JSON once, never retried: for requests that must not be made twice
    /// (creating a batch), whose failures the caller checks before trying again.
    pub fn post_json_once(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, CaptionError> {
        let text = crate::runtime::block_on(self.attempt(url, headers, &Payload::Json(body)))?;
        self.parse(&text)
    }

    /// POSTs a multipart form with text fields and one file, and returns the JSON answer.
    pub fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> Result<Value, CaptionError> {
        let payload = Payload::Form {
            fields,
            file: &file,
        };
        crate::runtime::block_on(self.send(url, headers, &payload, |text| self.parse(&text)))
    }

    /// GETs a JSON resource.
    pub fn get_json(&self, url: &str, headers: &[(&str, &str)]) -> Result<Value, CaptionError> {
        crate::runtime::block_on(self.send(url, headers, &Payload::None, |text| self.parse(&text)))
    }

    /// GETs a resource as text.
    pub fn get_text(&self, url: &str, headers: &[(&str, &str)]) -> Result<String, CaptionError> {
        crate::runtime::block_on(self.send(url, headers, &Payload::None, Ok))
    }

    fn parse(&self, text: &str) -> Result<Value, CaptionError> {
        serde_json::from_str(text).map_err(|e| CaptionError::BadReply {
            backend: self.backend.to_string(),
            detail: format!("not JSON ({e})"),
        })
    }

    /// Sends and reads the answer with `read`, retrying what may pass: a body cut short or
    /// garbled on the way is as transient as a 503.
    async fn send<T>(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload<'_>,
        read: impl Fn(String) -> Result<T, CaptionError>,
    ) -> Result<T, CaptionError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.min_delay)
            .with_max_delay(self.settings.max_delay)
            .with_max_times(self.settings.retries)
            .with_jitter();
        (|| async { read(self.attempt(url, headers, payload).await?) })
            .retry(backoff)
            .when(|e: &CaptionError| e.is_transient() && !crate::stop::requested())
            // The server knows best how long to wait: never come back sooner than it asked.
            .adjust(|e: &CaptionError, planned: Option<Duration>| {
                planned.map(|p| e.retry_after().map_or(p, |asked| asked.max(p)))
            })
            .sleep(sleep_unless_stopped)
            .await
    }

    async fn attempt(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload<'_>,
    ) -> Result<String, CaptionError> {
        if crate::stop::requested() {
            return Err(CaptionError::Interrupted);
        }
        self.wait_for_rate_limit().await;
        let _in_flight = crate::stop::in_flight();
        let request = match payload {
            Payload::None => self.http.get(url),
            Payload::Json(body) => self.http.post(url).json(body),
            Payload::Form { fields, file } => {
                use reqwest::multipart::{Form, Part};
                let (name, file_name, bytes) = file;
                let form = fields
                    .iter()
                    .fold(Form::new(), |form, (field, value)| {
                        form.text(field.to_string(), value.to_string())
                    })
                    .part(
                        name.to_string(),
                        Part::bytes(bytes.to_vec()).file_name(file_name.to_string()),
                    );
                self.http.post(url).multipart(form)
            }
        };
        let request = headers.iter().fold(request, |request, (name, value)| {
            request.header(*name, *value)
        });
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(url, e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| {
                Duration::from_secs_f64(s.min(self.settings.max_delay.as_secs_f64().max(1.0) * 4.0))
            });
        let text = self.body(url, response).await?;
        if !(200..300).contains(&status) {
            return Err(CaptionError::Status {
                backend: self.backend.to_string(),
                status,
                message: service_message(text, headers),
                retry_after,
            });
        }
        Ok(text)
    }

    /// The answer's body as text, refused past 256 MiB.
    async fn body(
        &self,
        url: &str,
        mut response: reqwest::Response,
    ) -> Result<String, CaptionError> {
        const LIMIT: usize = 256 * 1024 * 1024;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(url, e))?
        {
            if bytes.len() + chunk.len() > LIMIT {
                return Err(CaptionError::BadReply {
                    backend: self.backend.to_string(),
                    detail: "the answer is larger than 256 MiB".into(),
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        String::from_utf8(bytes).map_err(|_| CaptionError::BadReply {
            backend: self.backend.to_string(),
            detail: "the answer is not UTF-8 text".into(),
        })
    }

    async fn wait_for_rate_limit(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        while let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            sleep_unless_stopped(wait).await;
            if crate::stop::requested() {
                return;
            }
        }
    }

    fn transport_error(&self, url: &str, error: reqwest::Error) -> CaptionError {
        let backend = self.backend.to_string();
        if error.is_timeout() {
            return CaptionError::Timeout {
                backend,
                seconds: self.settings.timeout.as_secs(),
            };
        }
        let detail = match error.is_connect() {
            true => "connection refused or host not found".to_string(),
            // The chain's last cause says what happened; the URL is already in the message.
            false => {
                let mut cause: &dyn std::error::Error = &error;
                while let Some(next) = cause.source() {
                    cause = next;
                }
                cause.to_string()
            }
        };
        CaptionError::Unreachable {
            backend,
            url: url.to_string(),
            detail,
        }
    }
}

/// Calls `f` with an `Authorization: Bearer` header when there is a key, and none otherwise
/// (local servers need none).
pub fn with_bearer<T>(key: Option<&Secret>, f: impl FnOnce(&[(&str, &str)]) -> T) -> T {
    let value = key.map(|k| format!("Bearer {}", k.expose()));
    let headers: Vec<(&str, &str)> = value
        .iter()
        .map(|v| ("Authorization", v.as_str()))
        .collect();
    f(&headers)
}

/// What a service said in an error, the key taken out of all of it before it is cut short (a
/// key cut in two by the cut would no longer be found whole).
fn service_message(body: String, headers: &[(&str, &str)]) -> String {
    error_message(&redact(body, headers))
}

/// The service's own error message, if its body carries one, kept short.
fn error_message(body: &str) -> String {
    let parsed: Option<Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/message").or_else(|| v.get("message")))
        .and_then(Value::as_str)
        .unwrap_or(body);
    let one_line = message.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

/// Services sometimes quote the key they were sent in their error message.
fn redact(mut message: String, headers: &[(&str, &str)]) -> String {
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("x-api-key") {
            let secret = value.trim_start_matches("Bearer ").trim();
            if !secret.is_empty() {
                message = message.replace(secret, "[redacted]");
            }
        }
    }
    message
}

/// Sleeps in short steps so that Ctrl-C is not kept waiting behind a long backoff.
async fn sleep_unless_stopped(duration: Duration) {
    let step = Duration::from_millis(100);
    let mut left = duration;
    while !left.is_zero() && !crate::stop::requested() {
        let now = left.min(step);
        tokio::time::sleep(now).await;
        left -= now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let key = Secret::new("sk-very-secret".into());
        assert_eq!(format!("{key} {key:?}"), "[redacted] [redacted]");
    }

    #[test]
    fn a_key_quoted_back_by_the_service_is_redacted() {
        let headers = [
            ("Authorization", "Bearer sk-abc123"),
            ("content-type", "application/json"),
        ];
        assert_eq!(
            redact("Incorrect API key sk-abc123".into(), &headers),
            "Incorrect API key [redacted]"
        );
    }

    #[test]
    fn issue11_a_key_across_the_cut_of_a_long_error_is_still_redacted() {
        let headers = [("x-api-key", "sk-ant-0123456789abcdef")];
        let body = format!(
            "{} your key sk-ant-0123456789abcdef is wrong",
            "x".repeat(180)
        );
        let message = service_message(body, &headers);
        // Cut first and redacted after, its first ten characters were left: "sk-ant-012".
        assert!(message.len() <= 200);
        assert!(!message.contains("sk-ant-0"), "{message}");
        assert!(message.ends_with("your key [redacted]"), "{message}");
    }

    #[test]
    fn error_messages_come_from_the_body_and_stay_short() {
        assert_eq!(
            error_message(r#"{"error": {"message": "Invalid model"}}"#),
            "Invalid model"
        );
        assert_eq!(error_message("plain\n  text"), "plain text");
        assert_eq!(error_message(&"x".repeat(500)).len(), 200);
    }
}
