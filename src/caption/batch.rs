//! OpenAI's Batch API, for archives: half the price, answers within a day. The requests go up
//! as one JSONL file; the batch's id is written next to the cache before anything else happens,
//! so a stopped run picks the same batch up again instead of paying for a second one. Answers
//! land in the caption cache, where the ordinary run then finds them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::cache::Cache;
use super::{read_reply, Caption, CaptionError, Encoded, Kind, OpenAi, Settings, Usage};

/// What is kept on disk while a batch runs.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    batch_id: String,
    /// The cache keys the batch answers, which are also its requests' custom ids.
    keys: Vec<String>,
}

/// What a finished batch cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BatchReport {
    pub id: String,
    pub requests: u64,
    pub failed: u64,
    pub usage: Usage,
}

/// Submits, or resumes, the batch for the pictures the cache does not answer yet, waits for
/// it, and stores its answers in the cache. Returns None when the cache already has them all.
pub fn run(
    openai: &OpenAi,
    pictures: &[(String, &Encoded)],
    settings: &Settings,
    cache: &Cache,
    poll: Duration,
) -> Result<Option<BatchReport>, CaptionError> {
    let mut missing: Vec<&(String, &Encoded)> = pictures
        .iter()
        .filter(|(key, _)| cache.get(key).is_none())
        .collect();
    missing.sort_by(|a, b| a.0.cmp(&b.0));
    missing.dedup_by(|a, b| a.0 == b.0);
    if missing.is_empty() {
        return Ok(None);
    }
    let state = state_path(cache, openai, missing.iter().map(|(k, _)| k.as_str()));
    let pending = match read_state(&state) {
        Some(pending) => pending,
        None => submit(openai, &missing, settings, &state)?,
    };
    let batch = wait(openai, &pending.batch_id, poll)?;
    let report = collect(openai, &batch, &pending, settings, cache)?;
    let _ = std::fs::remove_file(&state);
    Ok(Some(report))
}

/// One state file per set of pictures, model and endpoint, so different runs do not collide.
fn state_path<'a>(cache: &Cache, openai: &OpenAi, keys: impl Iterator<Item = &'a str>) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(openai.base_url().as_bytes());
    for key in keys {
        hash.update(key.as_bytes());
    }
    cache
        .dir()
        .join("batches")
        .join(format!("{:x}.json", hash.finalize()))
}

fn read_state(path: &Path) -> Option<Pending> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_state(path: &Path, pending: &Pending) -> std::io::Result<()> {
    let folder = path.parent().expect("state files live in a folder");
    crate::private::create_dir_all(folder)?;
    let temporary = path.with_extension("partial");
    let file = std::fs::File::create(&temporary)?;
    serde_json::to_writer(&file, pending).expect("state serializes");
    file.sync_all()?;
    std::fs::rename(temporary, path)
}

fn submit(
    openai: &OpenAi,
    missing: &[&(String, &Encoded)],
    settings: &Settings,
    state: &Path,
) -> Result<Pending, CaptionError> {
    let mut jsonl = String::new();
    for (key, picture) in missing {
        let line = json!({
            "custom_id": key,
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": openai.body(&super::Request {
                jpeg: &picture.jpeg,
                width: picture.width,
                height: picture.height,
                prompt: settings.prompt,
                lang: settings.lang,
            }),
        });
        jsonl.push_str(&line.to_string());
        jsonl.push('\n');
    }
    let file = openai.upload_batch_file(jsonl.as_bytes())?;
    let file_id = field(&file, "id")?;
    let batch = openai.post(
        "batches",
        &json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"}),
    )?;
    let pending = Pending {
        batch_id: field(&batch, "id")?,
        keys: missing.iter().map(|(k, _)| k.clone()).collect(),
    };
    write_state(state, &pending).map_err(|e| CaptionError::BadReply {
        backend: "openai".into(),
        detail: format!(
            "cannot record batch {} at {}: {e}",
            pending.batch_id,
            state.display()
        ),
    })?;
    eprintln!("note: submitted batch {} of {} requests; if stopped, run the same command again to collect it", pending.batch_id, pending.keys.len());
    Ok(pending)
}

fn wait(openai: &OpenAi, id: &str, poll: Duration) -> Result<Value, CaptionError> {
    loop {
        let batch = openai.get_json(&format!("batches/{id}"))?;
        match batch.get("status").and_then(Value::as_str).unwrap_or("") {
            "completed" => return Ok(batch),
            status @ ("failed" | "expired" | "cancelled" | "cancelling") => {
                return Err(CaptionError::BadReply {
                    backend: "openai".into(),
                    detail: format!("batch {id} is {status}"),
                })
            }
            _ => {}
        }
        let mut waited = Duration::ZERO;
        while waited < poll {
            if crate::stop::requested() {
                return Err(CaptionError::Interrupted);
            }
            let step = Duration::from_millis(100).min(poll - waited);
            std::thread::sleep(step);
            waited += step;
        }
    }
}

fn collect(
    openai: &OpenAi,
    batch: &Value,
    pending: &Pending,
    settings: &Settings,
    cache: &Cache,
) -> Result<BatchReport, CaptionError> {
    let mut report = BatchReport {
        id: pending.batch_id.clone(),
        requests: pending.keys.len() as u64,
        ..Default::default()
    };
    let Some(output) = batch.get("output_file_id").and_then(Value::as_str) else {
        report.failed = report.requests;
        return Ok(report);
    };
    let content = openai.get_text(&format!("files/{output}/content"))?;
    let mut answered = 0;
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(key) = entry.get("custom_id").and_then(Value::as_str) else {
            continue;
        };
        if !pending.keys.iter().any(|k| k == key) {
            continue;
        }
        match caption_from(&entry, openai, settings) {
            Some(caption) => {
                report.usage += caption.usage;
                answered += 1;
                // A failed write costs a request later, never a wrong caption.
                if let Err(e) = cache.put(key, &caption) {
                    eprintln!(
                        "warning: cannot write to the caption cache {}: {e}",
                        cache.dir().display()
                    );
                }
            }
            None => report.failed += 1,
        }
    }
    report.failed = report.requests - answered;
    Ok(report)
}

fn caption_from(entry: &Value, openai: &OpenAi, settings: &Settings) -> Option<Caption> {
    if entry
        .pointer("/response/status_code")
        .and_then(Value::as_u64)
        != Some(200)
    {
        return None;
    }
    let reply = super::openai::read_answer(entry.pointer("/response/body")?).ok()?;
    let (text, kind, moderation): (String, Kind, _) =
        read_reply(settings.style, &reply.text, "openai").ok()?;
    Some(Caption {
        text,
        kind,
        moderation,
        backend: "openai".into(),
        model: super::Captioner::model(openai).to_string(),
        prompt: settings.prompt.tag(),
        lang: settings.lang.map(str::to_string),
        usage: reply.usage,
    })
}

fn field(value: &Value, name: &str) -> Result<String, CaptionError> {
    value
        .get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| CaptionError::BadReply {
            backend: "openai".into(),
            detail: format!("no {name} in the answer"),
        })
}
