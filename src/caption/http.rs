//! The HTTP side shared by the remote backends: time-outs, a requests-per-minute cap, retries
//! with exponential backoff and jitter (at least as long as the server's Retry-After), and an
//! API key that never reaches a log, an error or a file.

use std::num::NonZeroU32;
use std::time::Duration;

use backon::{BlockingRetryable, ExponentialBuilder};
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
    agent: ureq::Agent,
    settings: HttpSettings,
    limiter: Option<DefaultDirectRateLimiter>,
}

impl Client {
    pub fn new(backend: &'static str, settings: HttpSettings) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            .http_status_as_error(false)
            // A redirect would carry the key (Authorization, x-api-key) to wherever it points:
            // it is answered as the error it is, never followed.
            .max_redirects(0)
            .user_agent(concat!("scenedex/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let limiter = settings
            .per_minute
            .map(|n| RateLimiter::direct(Quota::per_minute(n)));
        Client {
            backend,
            agent,
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
        self.send(url, headers, &Payload::Json(body), |text| self.parse(&text))
    }

    /// POSTs `body` as JSON once, never retried: for requests that must not be made twice
    /// (creating a batch), whose failures the caller checks before trying again.
    pub fn post_json_once(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        body: &Value,
    ) -> Result<Value, CaptionError> {
        self.parse(&self.attempt(url, headers, &Payload::Json(body))?)
    }

    /// POSTs a multipart form with text fields and one file, and returns the JSON answer.
    pub fn post_form(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> Result<Value, CaptionError> {
        self.send(
            url,
            headers,
            &Payload::Form {
                fields,
                file: &file,
            },
            |text| self.parse(&text),
        )
    }

    /// GETs a JSON resource.
    pub fn get_json(&self, url: &str, headers: &[(&str, &str)]) -> Result<Value, CaptionError> {
        self.send(url, headers, &Payload::None, |text| self.parse(&text))
    }

    /// GETs a resource as text.
    pub fn get_text(&self, url: &str, headers: &[(&str, &str)]) -> Result<String, CaptionError> {
        self.send(url, headers, &Payload::None, Ok)
    }

    fn parse(&self, text: &str) -> Result<Value, CaptionError> {
        serde_json::from_str(text).map_err(|e| CaptionError::BadReply {
            backend: self.backend.to_string(),
            detail: format!("not JSON ({e})"),
        })
    }

    /// Sends and reads the answer with `read`, retrying what may pass: a body cut short or
    /// garbled on the way is as transient as a 503.
    fn send<T>(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload,
        read: impl Fn(String) -> Result<T, CaptionError>,
    ) -> Result<T, CaptionError> {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.settings.min_delay)
            .with_max_delay(self.settings.max_delay)
            .with_max_times(self.settings.retries)
            .with_jitter();
        (|| read(self.attempt(url, headers, payload)?))
            .retry(backoff)
            .when(|e: &CaptionError| e.is_transient() && !crate::stop::requested())
            .notify(|e: &CaptionError, planned: Duration| {
                // The server knows best how long to wait: never come back sooner than it asked.
                if let Some(asked) = e.retry_after() {
                    sleep_unless_stopped(asked.saturating_sub(planned));
                }
            })
            .sleep(sleep_unless_stopped)
            .call()
    }

    fn attempt(
        &self,
        url: &str,
        headers: &[(&str, &str)],
        payload: &Payload,
    ) -> Result<String, CaptionError> {
        if crate::stop::requested() {
            return Err(CaptionError::Interrupted);
        }
        self.wait_for_rate_limit();
        let _in_flight = crate::stop::InFlight::start();
        let sent = match payload {
            Payload::None => with_headers(self.agent.get(url), headers).call(),
            Payload::Json(body) => with_headers(self.agent.post(url), headers).send_json(body),
            Payload::Form { fields, file } => {
                use ureq::unversioned::multipart::{Form, Part};
                let (name, file_name, bytes) = file;
                let form = fields
                    .iter()
                    .fold(Form::new(), |form, (field, value)| form.text(field, value))
                    .part(name, Part::bytes(bytes).file_name(file_name));
                with_headers(self.agent.post(url), headers).send(form)
            }
        };
        let mut response = sent.map_err(|e| self.transport_error(url, e))?;
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
        let text = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| self.transport_error(url, e))?;
        if !(200..300).contains(&status) {
            return Err(CaptionError::Status {
                backend: self.backend.to_string(),
                status,
                message: redact(error_message(&text), headers),
                retry_after,
            });
        }
        Ok(text)
    }

    fn wait_for_rate_limit(&self) {
        let Some(limiter) = &self.limiter else {
            return;
        };
        while let Err(not_until) = limiter.check() {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            sleep_unless_stopped(wait);
            if crate::stop::requested() {
                return;
            }
        }
    }

    fn transport_error(&self, url: &str, error: ureq::Error) -> CaptionError {
        let backend = self.backend.to_string();
        match error {
            ureq::Error::Timeout(_) => CaptionError::Timeout {
                backend,
                seconds: self.settings.timeout.as_secs(),
            },
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                CaptionError::Timeout {
                    backend,
                    seconds: self.settings.timeout.as_secs(),
                }
            }
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => {
                CaptionError::Unreachable {
                    backend,
                    url: url.to_string(),
                    detail: "connection refused or host not found".into(),
                }
            }
            other => CaptionError::Unreachable {
                backend,
                url: url.to_string(),
                detail: other.to_string(),
            },
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

fn with_headers<B>(
    request: ureq::RequestBuilder<B>,
    headers: &[(&str, &str)],
) -> ureq::RequestBuilder<B> {
    headers.iter().fold(request, |request, (name, value)| {
        request.header(*name, *value)
    })
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
fn sleep_unless_stopped(duration: Duration) {
    let step = Duration::from_millis(100);
    let mut left = duration;
    while !left.is_zero() && !crate::stop::requested() {
        let now = left.min(step);
        std::thread::sleep(now);
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
    fn error_messages_come_from_the_body_and_stay_short() {
        assert_eq!(
            error_message(r#"{"error": {"message": "Invalid model"}}"#),
            "Invalid model"
        );
        assert_eq!(error_message("plain\n  text"), "plain text");
        assert_eq!(error_message(&"x".repeat(500)).len(), 200);
    }
}
