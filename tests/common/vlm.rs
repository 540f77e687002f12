//! A stand-in for a paid vision-language API, on 127.0.0.1. It speaks the OpenAI chat
//! completions and Anthropic Messages wire formats, checks every request as the real service
//! would (shape, headers, a decodable base64 JPEG), records it, and answers either from a
//! script of faults or by describing the picture it was sent.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wire {
    OpenAi,
    Anthropic,
}

/// A scripted answer, used before the server falls back to describing the picture.
#[derive(Clone, Debug)]
pub enum Fault {
    Status {
        code: u16,
        retry_after: Option<u32>,
    },
    /// Waits this long before answering (longer than the client's time-out).
    Stall(Duration),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 with a Content-Length longer than the body, then the connection closes.
    Truncated,
    /// 200 with this text as the model's reply.
    Reply(String),
    /// 307 to this URL, as a compromised or misconfigured proxy might answer.
    Redirect(String),
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub model: String,
    pub max_tokens: u64,
    pub prompt: String,
    pub image_size: (u32, u32),
    pub at: std::time::Instant,
}

pub struct MockVlm {
    pub url: String,
    wire: Wire,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<Mutex<VecDeque<Fault>>>,
    batches: Arc<Mutex<Batches>>,
    /// How long every answer not scripted otherwise takes, as a real model's would.
    latency: Arc<Mutex<Duration>>,
    server: Arc<tiny_http::Server>,
}

/// The Batch API's files and batches, and every call made to it ("POST /v1/files", ...).
#[derive(Default)]
pub struct Batches {
    files: std::collections::HashMap<String, String>,
    /// Batch id -> (input file id, checks left before it completes, output file id).
    batches: std::collections::HashMap<String, (String, u32, Option<String>)>,
    pub polls_before_done: u32,
    pub calls: Vec<String>,
}

pub const KEY: &str = "sk-test-0123456789abcdef";

impl MockVlm {
    pub fn start(wire: Wire) -> MockVlm {
        Self::start_on(wire, 0)
    }

    /// Listens on this loopback port (0: any free one).
    pub fn start_on(wire: Wire, port: u16) -> MockVlm {
        let server =
            Arc::new(tiny_http::Server::http(("127.0.0.1", port)).expect("a loopback port"));
        let port = server.server_addr().to_ip().unwrap().port();
        let url = match wire {
            Wire::OpenAi => format!("http://127.0.0.1:{port}/v1"),
            Wire::Anthropic => format!("http://127.0.0.1:{port}"),
        };
        let mock = MockVlm {
            url,
            wire,
            seen: Arc::default(),
            script: Arc::default(),
            batches: Arc::default(),
            latency: Arc::default(),
            server: server.clone(),
        };
        let (seen, script, batches, latency) = (
            mock.seen.clone(),
            mock.script.clone(),
            mock.batches.clone(),
            mock.latency.clone(),
        );
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let (seen, script, batches) = (seen.clone(), script.clone(), batches.clone());
                let latency = *latency.lock().unwrap();
                std::thread::spawn(move || {
                    let path = request.url().to_string();
                    if path.starts_with("/v1/files") || path.starts_with("/v1/batches") {
                        batch_api(request, &batches);
                    } else if path == "/v1/embeddings" {
                        embeddings_api(request, &batches);
                    } else {
                        handle(wire, request, &seen, &script, latency);
                    }
                });
            }
        });
        mock
    }

    /// How many status checks a batch answers "in_progress" before it completes.
    pub fn batches_take(&self, polls: u32) {
        self.batches.lock().unwrap().polls_before_done = polls;
    }

    /// Lets every batch submitted so far complete at its next status check.
    pub fn complete_batches(&self) {
        for entry in self.batches.lock().unwrap().batches.values_mut() {
            entry.1 = 0;
        }
    }

    /// Calls to the Batch and embeddings endpoints, as "METHOD /path" (embeddings: and count).
    pub fn batch_calls(&self) -> Vec<String> {
        self.batches.lock().unwrap().calls.clone()
    }

    /// Makes every answer that is not scripted otherwise take this long.
    pub fn set_latency(&self, latency: Duration) {
        *self.latency.lock().unwrap() = latency;
    }

    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.script.lock().unwrap().extend(faults);
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn wire(&self) -> Wire {
        self.wire
    }
}

impl Drop for MockVlm {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

fn handle(
    wire: Wire,
    mut request: tiny_http::Request,
    seen: &Mutex<Vec<Seen>>,
    script: &Mutex<VecDeque<Fault>>,
    latency: Duration,
) {
    let mut text = String::new();
    let _ = request.as_reader().read_to_string(&mut text);
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_string(),
            )
        })
        .collect();
    let path = request.url().to_string();
    let checked = check(wire, &path, &headers, &text);
    let seen_request = match checked {
        Ok(s) => s,
        Err(problem) => {
            let body =
                json!({"error": {"message": format!("mock: bad request: {problem}")}}).to_string();
            let _ = request.respond(tiny_http::Response::from_string(body).with_status_code(400));
            return;
        }
    };
    let picture = seen_request.clone();
    seen.lock().unwrap().push(seen_request);
    let fault = script.lock().unwrap().pop_front();
    match fault {
        Some(Fault::Status { code, retry_after }) => {
            let mut response = tiny_http::Response::from_string(
                json!({"error": {"message": "mock says no"}}).to_string(),
            )
            .with_status_code(code);
            if let Some(seconds) = retry_after {
                response.add_header(
                    tiny_http::Header::from_bytes("Retry-After", seconds.to_string()).unwrap(),
                );
            }
            let _ = request.respond(response);
        }
        Some(Fault::Stall(wait)) => {
            std::thread::sleep(wait);
            let _ = request.respond(ok(wire, &describe(&picture)));
        }
        Some(Fault::Malformed) => {
            let _ = request.respond(tiny_http::Response::from_string(
                "<html>upstream error</html>",
            ));
        }
        Some(Fault::Truncated) => {
            let mut writer = request.into_writer();
            let body = ok_body(wire, &describe(&picture)).to_string();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len() + 100
            );
            let _ = writer.write_all(head.as_bytes());
            let _ = writer.write_all(&body.as_bytes()[..body.len() / 2]);
            let _ = writer.flush();
        }
        Some(Fault::Reply(text)) => {
            let _ = request.respond(ok(wire, &text));
        }
        Some(Fault::Redirect(to)) => {
            let response = tiny_http::Response::from_string("moved")
                .with_status_code(307)
                .with_header(tiny_http::Header::from_bytes("Location", to).unwrap());
            let _ = request.respond(response);
        }
        None => {
            std::thread::sleep(latency);
            let _ = request.respond(ok(wire, &describe(&picture)));
        }
    }
}

fn ok(wire: Wire, text: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_string(ok_body(wire, text).to_string())
        .with_header(tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap())
}

fn ok_body(wire: Wire, text: &str) -> Value {
    match wire {
        Wire::OpenAi => json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "model": "mock",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
        }),
        Wire::Anthropic => json!({
            "id": "msg_mock", "type": "message", "role": "assistant", "model": "mock",
            "content": [{"type": "text", "text": text}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 110, "output_tokens": 25},
        }),
    }
}

/// Checks a request as the real API would, and pulls out what tests assert on.
fn check(wire: Wire, path: &str, headers: &[(String, String)], text: &str) -> Result<Seen, String> {
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let expected_path = match wire {
        Wire::OpenAi if header("authorization") != Some(&format!("Bearer {KEY}")) => {
            return Err("missing or wrong bearer key".into());
        }
        Wire::Anthropic
            if header("x-api-key") != Some(KEY) || header("anthropic-version").is_none() =>
        {
            return Err("missing x-api-key or anthropic-version".into());
        }
        Wire::OpenAi => "/v1/chat/completions",
        Wire::Anthropic => "/v1/messages",
    };
    if path != expected_path {
        return Err(format!("wrong path {path}"));
    }
    let body: Value = serde_json::from_str(text).map_err(|e| format!("body is not JSON: {e}"))?;
    let mut seen = check_body(wire, body)?;
    seen.path = path.into();
    seen.headers = headers.to_vec();
    Ok(seen)
}

/// Checks a request body: its shape, the prompt, and that the picture is a decodable JPEG.
fn check_body(wire: Wire, body: Value) -> Result<Seen, String> {
    let (image, prompt) = match wire {
        Wire::OpenAi => {
            let messages = body["messages"].as_array().ok_or("no messages")?;
            if messages.first().and_then(|m| m["role"].as_str()) != Some("system") {
                return Err("first message is not the system prompt".into());
            }
            let parts = messages
                .get(1)
                .and_then(|m| m["content"].as_array())
                .ok_or("no user content")?;
            let url = parts
                .iter()
                .find_map(|p| p.pointer("/image_url/url")?.as_str())
                .ok_or("no image_url")?;
            let data = url
                .strip_prefix("data:image/jpeg;base64,")
                .ok_or("image is not a base64 JPEG data URL")?;
            let user = parts
                .iter()
                .find_map(|p| p["text"].as_str())
                .ok_or("no user text")?;
            let system = messages[0]["content"]
                .as_str()
                .ok_or("system prompt is not text")?;
            (data.to_string(), format!("{system}\n{user}"))
        }
        Wire::Anthropic => {
            let parts = body
                .pointer("/messages/0/content")
                .and_then(Value::as_array)
                .ok_or("no content")?;
            let source = parts
                .iter()
                .find_map(|p| p.get("source"))
                .ok_or("no image source")?;
            if source["type"] != "base64" || source["media_type"] != "image/jpeg" {
                return Err("image is not a base64 JPEG".into());
            }
            let user = parts
                .iter()
                .find_map(|p| p["text"].as_str())
                .ok_or("no user text")?;
            let system = body["system"].as_str().ok_or("no system prompt")?;
            (
                source["data"].as_str().unwrap_or("").to_string(),
                format!("{system}\n{user}"),
            )
        }
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image)
        .map_err(|e| format!("bad base64: {e}"))?;
    let picture = image::load_from_memory_with_format(&bytes, image::ImageFormat::Jpeg)
        .map_err(|e| format!("not a JPEG: {e}"))?;
    Ok(Seen {
        path: String::new(),
        headers: Vec::new(),
        model: body["model"].as_str().ok_or("no model")?.to_string(),
        max_tokens: body["max_tokens"].as_u64().ok_or("no max_tokens")?,
        prompt,
        image_size: (picture.width(), picture.height()),
        body,
        at: std::time::Instant::now(),
    })
}

/// A test binary's own descriptions of pictures, tried before the built-in ones.
type SceneBook = fn(&image::RgbImage) -> Option<String>;
static SCENE_BOOK: std::sync::OnceLock<SceneBook> = std::sync::OnceLock::new();

/// Makes every stand-in server of this test binary describe pictures with `book` first.
pub fn use_scene_book(book: SceneBook) {
    let _ = SCENE_BOOK.set(book);
}

/// The mean colour of a picture, for scene books.
pub fn mean_colour(image: &image::RgbImage) -> (f64, f64, f64) {
    mean(image)
}

/// Describes the picture the way a model would for the prompt it was given: by its colours.
fn describe(seen: &Seen) -> String {
    let image = image_of(seen);
    if !seen.prompt.contains("JSON object") {
        if let Some(text) = SCENE_BOOK.get().and_then(|book| book(&image)) {
            return text;
        }
    }
    let (r, g, b) = mean(&image);
    let colour = dominant(r, g, b);
    let spread = spread(&image);
    if seen.prompt.contains("JSON object") {
        return json!({"contains_people": false, "people_count": 0, "contains_text": false,
                      "visible_text": "", "setting": format!("{colour} test pattern"),
                      "uncertain": r + g + b < 30.0})
        .to_string();
    }
    if spread < 6.0 && seen.prompt.contains("DECORATIVE") {
        return "DECORATIVE".into();
    }
    if r + g + b < 30.0 {
        return "UNCERTAIN".into();
    }
    format!(
        "{colour}, test pattern, shapes, bright colours\nA {colour} test pattern fills the frame."
    )
}

fn image_of(seen: &Seen) -> image::RgbImage {
    let data = match seen.body.pointer("/messages/1/content") {
        Some(parts) => parts
            .as_array()
            .unwrap()
            .iter()
            .find_map(|p| p.pointer("/image_url/url")?.as_str())
            .unwrap()["data:image/jpeg;base64,".len()..]
            .to_string(),
        None => seen
            .body
            .pointer("/messages/0/content")
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find_map(|p| p.pointer("/source/data")?.as_str())
            .unwrap()
            .to_string(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    image::load_from_memory(&bytes).unwrap().to_rgb8()
}

fn mean(image: &image::RgbImage) -> (f64, f64, f64) {
    let n = f64::from(image.width() * image.height());
    let mut sum = [0.0; 3];
    for p in image.pixels() {
        for (total, value) in sum.iter_mut().zip(p.0) {
            *total += f64::from(value);
        }
    }
    (sum[0] / n, sum[1] / n, sum[2] / n)
}

fn spread(image: &image::RgbImage) -> f64 {
    let luma: Vec<f64> = image
        .pixels()
        .map(|p| f64::from(p.0[0]) * 0.3 + f64::from(p.0[1]) * 0.59 + f64::from(p.0[2]) * 0.11)
        .collect();
    let m = luma.iter().sum::<f64>() / luma.len() as f64;
    (luma.iter().map(|y| (y - m).powi(2)).sum::<f64>() / luma.len() as f64).sqrt()
}

fn dominant(r: f64, g: f64, b: f64) -> &'static str {
    if r > g + 40.0 && r > b + 40.0 {
        "red"
    } else if b > r + 40.0 && b > g + 40.0 {
        "blue"
    } else if g > r + 40.0 && g > b + 40.0 {
        "green"
    } else if r + g + b > 600.0 {
        "white"
    } else {
        "multicoloured"
    }
}

/// The body of a request to the OpenAI endpoints, and whether it carries the right bearer key.
fn read_bearer_request(request: &mut tiny_http::Request) -> (Vec<u8>, bool) {
    let mut raw = Vec::new();
    let _ = request.as_reader().read_to_end(&mut raw);
    let authorized = request
        .headers()
        .iter()
        .any(|h| h.field.equiv("Authorization") && h.value.as_str() == format!("Bearer {KEY}"));
    (raw, authorized)
}

/// OpenAI's Batch API: file upload (multipart), batch creation, status, output download.
fn batch_api(mut request: tiny_http::Request, state: &Mutex<Batches>) {
    let (raw, authorized) = read_bearer_request(&mut request);
    let content_type = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Content-Type"))
        .map(|h| h.value.as_str().to_string())
        .unwrap_or_default();
    let call = format!("{} {}", request.method(), request.url());
    let answer = if authorized {
        batch_answer(&call, &raw, &content_type, state)
    } else {
        Err("missing or wrong bearer key".to_string())
    };
    state.lock().unwrap().calls.push(call);
    let response = match answer {
        Ok(body) => tiny_http::Response::from_string(body),
        Err(problem) => {
            tiny_http::Response::from_string(json!({"error": {"message": problem}}).to_string())
                .with_status_code(400)
        }
    };
    let _ = request.respond(response);
}

fn batch_answer(
    call: &str,
    raw: &[u8],
    content_type: &str,
    state: &Mutex<Batches>,
) -> Result<String, String> {
    let mut s = state.lock().unwrap();
    let n = s.files.len() + s.batches.len() + 1;
    match call.split_once(' ').unwrap() {
        ("POST", "/v1/files") => {
            let boundary = content_type
                .split("boundary=")
                .nth(1)
                .ok_or("not multipart")?
                .trim_matches('"')
                .to_string();
            let text = String::from_utf8_lossy(raw);
            let purpose_batch = text.contains("name=\"purpose\"\r\n\r\nbatch");
            let file = text
                .split(&format!("--{boundary}"))
                .find(|part| part.contains("name=\"file\""))
                .and_then(|part| part.split_once("\r\n\r\n"))
                .map(|(_, body)| body.trim_end_matches("\r\n").to_string())
                .ok_or("no file part")?;
            if !purpose_batch {
                return Err("purpose is not batch".into());
            }
            let id = format!("file-{n}");
            s.files.insert(id.clone(), file);
            Ok(json!({"id": id, "object": "file", "purpose": "batch"}).to_string())
        }
        ("POST", "/v1/batches") => {
            let body: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
            let input = body["input_file_id"]
                .as_str()
                .ok_or("no input_file_id")?
                .to_string();
            if body["endpoint"] != "/v1/chat/completions"
                || body["completion_window"] != "24h"
                || !s.files.contains_key(&input)
            {
                return Err(format!("bad batch request {body}"));
            }
            let id = format!("batch_{n}");
            let polls = s.polls_before_done;
            s.batches.insert(id.clone(), (input, polls, None));
            Ok(json!({"id": id, "object": "batch", "status": "validating"}).to_string())
        }
        ("GET", path) if path.starts_with("/v1/batches/") => {
            let id = &path["/v1/batches/".len()..];
            let (input, left, output) = s.batches.get(id).cloned().ok_or("no such batch")?;
            if left > 0 {
                s.batches.insert(id.to_string(), (input, left - 1, None));
                return Ok(json!({"id": id, "status": "in_progress"}).to_string());
            }
            let output = match output {
                Some(output) => output,
                None => {
                    let lines = s.files[&input]
                        .lines()
                        .map(answer_batch_line)
                        .collect::<Result<Vec<_>, _>>()?;
                    let output = format!("file-out-{n}");
                    s.files.insert(output.clone(), lines.join("\n"));
                    s.batches
                        .insert(id.to_string(), (input, 0, Some(output.clone())));
                    output
                }
            };
            Ok(json!({"id": id, "status": "completed", "output_file_id": output}).to_string())
        }
        ("GET", path) if path.starts_with("/v1/files/") && path.ends_with("/content") => {
            let id = &path["/v1/files/".len()..path.len() - "/content".len()];
            s.files
                .get(id)
                .cloned()
                .ok_or_else(|| "no such file".to_string())
        }
        _ => Err(format!("unexpected call {call}")),
    }
}

/// One line of a batch's output: the request checked like any other, answered by description.
fn answer_batch_line(line: &str) -> Result<String, String> {
    let request: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    if request["method"] != "POST" || request["url"] != "/v1/chat/completions" {
        return Err(format!("bad batch line {line}"));
    }
    let seen = check_body(Wire::OpenAi, request["body"].clone())?;
    Ok(json!({
        "id": "batch_req_mock",
        "custom_id": request["custom_id"],
        "response": {"status_code": 200, "request_id": "req_mock", "body": ok_body(Wire::OpenAi, &describe(&seen))},
        "error": null,
    })
    .to_string())
}

/// `/v1/embeddings`: 8-dimensional vectors made from each text's bytes, listed in reverse
/// order (each with its index), as a server may.
fn embeddings_api(mut request: tiny_http::Request, state: &Mutex<Batches>) {
    let (raw, authorized) = read_bearer_request(&mut request);
    let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let inputs: Vec<String> = body["input"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    state
        .lock()
        .unwrap()
        .calls
        .push(format!("POST /v1/embeddings {}", inputs.len()));
    if !authorized || body["model"].as_str().is_none() || inputs.is_empty() {
        let _ = request.respond(
            tiny_http::Response::from_string("{\"error\": {\"message\": \"bad request\"}}")
                .with_status_code(400),
        );
        return;
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, text)| {
            // A text that starts "short:" gets a vector of another size, as a server that
            // swapped its model would give.
            let size = if text.starts_with("short:") { 5 } else { 8 };
            let mut v = vec![1.0f64; size];
            for (j, byte) in text.bytes().enumerate() {
                v[j % size] += f64::from(byte);
            }
            json!({"object": "embedding", "index": i, "embedding": v})
        })
        .collect();
    let answer = json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}});
    let _ = request.respond(tiny_http::Response::from_string(answer.to_string()));
}
