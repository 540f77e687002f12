//! `scenedex caption PATH`: caption one image or the kept frames of one video.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::output::{clock, count, round_us, Out};
use super::Fallback;
use super::{CaptionArgs, Error};
use crate::backends::{self, Chosen, Env};
use crate::caption::batch::{self, BatchReport, Batcher, Event};
use crate::caption::cache::Cache;
use crate::caption::cost::{self, Price};
use crate::caption::run::{caption_all, key, Estimate, Settings, Totals};
use crate::caption::{encode, Captioner, Encoded, Picture, Prompt};
use crate::decode::Truncation;
use crate::index::batch::CacheOnly;
use crate::index::FileError;
use std::sync::Arc;

/// Where a picture sits in its video: its time and the stretch it stands for.
struct Place {
    time: f64,
    span: (f64, f64),
}

#[derive(Serialize)]
struct Line<'a> {
    time: f64,
    span: [f64; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<crate::caption::Kind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    moderation: Option<&'a crate::caption::Moderation>,
    style: &'a str,
    backend: &'a str,
    model: &'a str,
    prompt: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
    cached: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<crate::caption::Usage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct Summary {
    file: PathBuf,
    frames: usize,
    #[serde(flatten)]
    totals: Totals,
    input_tokens: u64,
    output_tokens: u64,
    /// Dollars, from the list price or `--price`; absent when the model's price is unknown.
    cost: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    batch: Option<BatchReport>,
    wall_seconds: f64,
}

pub fn run(args: &CaptionArgs) -> Result<(), Error> {
    let started = Instant::now();
    let captioning = backends::CaptionerSettings {
        estimate_only: args.dry_run,
        batch_size: args.batch.batch_size.map(|n| n as usize),
        ..args.captioner.settings()
    };
    let chosen = backends::captioner(&captioning, &Env::from_process())?;
    let prompt = Prompt::load(args.captioner.style, args.captioner.prompts.as_deref())
        .map_err(|e| Error::Config(e.to_string()))?;
    let (places, pictures, truncated) = gather(&args.path, args, args.captioner.picture())?;
    // Said once there is something to caption, not for a path that is not there.
    if let (Some(note), false) = (&chosen.note, pictures.is_empty()) {
        eprintln!("note: {note}");
    }
    let (dir, off) = (args.captioner.cache_dir.as_deref(), args.captioner.no_cache);
    let cache = match args.dry_run {
        true => backends::cache_lookup(dir, off),
        false => backends::cache(dir, off)?,
    };
    let price = args
        .captioner
        .price
        .or_else(|| cost::list_price(chosen.captioner.model(), Some(&chosen.base_url)));
    let lang = args.captioner.lang.as_deref();
    let settings = args.captioner.asking(&prompt, &chosen.detail);
    let mut out = Out::new();
    if args.dry_run {
        // Batches are billed at half the list price.
        let price = match args.batch.batch {
            true => price.map(Price::batched),
            false => price,
        };
        return dry_run(
            &pictures,
            &chosen,
            &settings,
            cache.as_ref(),
            price,
            args.json,
            &mut out,
        );
    }
    let batch = match args.batch.batch {
        true => run_batch(
            &chosen,
            &pictures,
            &settings,
            cache.as_ref(),
            args.batch.poll,
        )?,
        false => None,
    };
    // With --batch, a frame no batch answered is paid for at the full price only on request.
    let cache_only = CacheOnly {
        inner: chosen.captioner.as_ref(),
    };
    let captioner: &dyn Captioner =
        match args.batch.batch && args.batch.batch_fallback == Fallback::None {
            true => &cache_only,
            false => chosen.captioner.as_ref(),
        };
    let bar = super::output::progress(None);
    bar.set_length(pictures.len() as u64);
    let (outcomes, totals) = caption_all(&pictures, captioner, &settings, cache.as_ref(), &|| {
        bar.inc(1)
    });
    bar.finish_and_clear();
    if crate::stop::requested() {
        return Err(Error::Interrupted);
    }
    let mut failures = Vec::new();
    let prompt_tag = prompt.tag();
    for (frame, outcome) in places.iter().zip(&outcomes) {
        let line = Line {
            time: round_us(frame.time),
            span: [round_us(frame.span.0), round_us(frame.span.1)],
            caption: outcome.caption.as_ref().ok().map(|c| c.text.as_str()),
            kind: outcome.caption.as_ref().ok().map(|c| c.kind),
            moderation: outcome
                .caption
                .as_ref()
                .ok()
                .and_then(|c| c.moderation.as_ref()),
            style: args.captioner.style.name(),
            backend: chosen.captioner.backend(),
            model: chosen.captioner.model(),
            prompt: outcome
                .caption
                .as_ref()
                .map_or(prompt_tag.as_str(), |c| c.prompt.as_str()),
            lang,
            cached: outcome.cached,
            usage: outcome.caption.as_ref().ok().map(|c| c.usage),
            error: outcome.caption.as_ref().err().map(|e| e.to_string()),
        };
        if let Some(error) = &line.error {
            failures.push(format!("{}: {error}", clock(frame.time)));
        }
        if args.json {
            out.json(&line)?;
        } else {
            out.line(&human_line(&line))?;
        }
    }
    let (batched, batch_usage) = batch
        .as_ref()
        .map_or((0, Default::default()), |b| (b.answered, b.usage));
    let summary = Summary {
        file: args.path.clone(),
        frames: places.len(),
        // The batch's answers reach the frames through the cache, but were paid for now.
        totals: Totals {
            cache_hits: totals.cache_hits.saturating_sub(batched),
            ..totals
        },
        input_tokens: totals.usage.input_tokens + batch_usage.input_tokens,
        output_tokens: totals.usage.output_tokens + batch_usage.output_tokens,
        cost: price.map(|p| {
            // The Batch API bills half the list price.
            let batched = batch
                .as_ref()
                .map_or(0.0, |b| cost::dollars(b.usage, p) / 2.0);
            ((cost::dollars(totals.usage, p) + batched) * 1e6).round() / 1e6
        }),
        batch,
        wall_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
    };
    if args.json {
        out.json(&serde_json::json!({ "summary": summary }))?;
    } else {
        out.line("")?;
        out.line(&human_summary(&summary, chosen.captioner.as_ref()))?;
    }
    out.flush()?;
    let truncated = truncated.map(|cut| cut.error(&args.path));
    match failures.first() {
        None => truncated.map_or(Ok(()), |e| Err(e.into())),
        Some(first) => {
            if let Some(e) = truncated {
                eprintln!("warning: {e}");
            }
            let again = match cache {
                Some(_) => "; the others are cached, so running it again asks only for these",
                None => "",
            };
            Err(Error::Service(format!(
                "{}: {} of {} failed, the first at {first}{again}",
                args.path.display(),
                failures.len(),
                count(places.len() as u64, "frame", "frames")
            )))
        }
    }
}

/// The chosen backend's batch API, for `--batch`.
pub(super) fn batcher(
    chosen: &Chosen,
    cache: Option<&Cache>,
    dry_run: bool,
) -> Result<Arc<dyn Batcher>, Error> {
    let batcher = chosen.batcher.clone().ok_or_else(|| {
        Error::Config(
            "--batch needs the openai or anthropic backend: the offline tagger has no batch API"
                .into(),
        )
    })?;
    if cache.is_none() && !dry_run {
        return Err(Error::Config(
            "--batch keeps its answers in the caption cache: drop --no-cache".into(),
        ));
    }
    Ok(batcher)
}

/// What the user reads of a batch event; None for progress nobody needs on its own line.
pub(super) fn batch_line(event: &Event) -> Option<String> {
    match event {
        Event::Submitted { id, requests } => Some(format!(
            "batch {id}: sent, {}; it is recorded, so a later run collects it if this one stops",
            count(*requests, "request", "requests")
        )),
        Event::Progress { id, done, total } => Some(format!("batch {id}: {done}/{total} done")),
        Event::Adopted { id } => Some(format!(
            "batch {id}: found in the provider's list after a create that did not answer; using it"
        )),
        Event::Unmatched {
            candidates,
            requests,
        } => Some(format!(
            "note: a batch create of {} did not answer, and {} may be it; its pictures wait \
             for their answers to tell which, and are not sent again",
            count(*requests, "request", "requests"),
            candidates.join(", ")
        )),
        Event::Retired {
            id,
            requests,
            detail,
        } => Some(format!(
            "note: batch {id}: the provider no longer knows it ({detail}); its record is retired \
             and its {} sent again",
            count(*requests, "picture is", "pictures are")
        )),
        Event::Ended {
            id,
            end,
            answered,
            note: None,
            ..
        } => Some(format!("batch {id}: {}, {answered} answered", end.name())),
        Event::Ended {
            id,
            note: Some(note),
            ..
        } => Some(format!("note: batch {id}: {note}")),
    }
}

fn run_batch(
    chosen: &Chosen,
    pictures: &[Encoded],
    settings: &Settings,
    cache: Option<&Cache>,
    poll: f64,
) -> Result<Option<BatchReport>, Error> {
    let batcher = batcher(chosen, cache, false)?;
    let cache = cache.expect("checked by batcher()");
    let keyed: Vec<(String, &Encoded)> = pictures
        .iter()
        .map(|p| (key(p, batcher.captioner(), settings), p))
        .collect();
    let on = |event: &Event| {
        if let Some(line) = batch_line(event) {
            eprintln!("{line}");
        }
    };
    batch::run(
        batcher.as_ref(),
        &keyed,
        settings,
        cache,
        Duration::from_secs_f64(poll),
        &on,
    )
    .map_err(|e| caption_error(&e))
}

/// A batch API's failure as the CLI reports it.
pub(super) fn caption_error(e: &crate::caption::CaptionError) -> Error {
    use crate::caption::CaptionError;
    match e {
        CaptionError::Interrupted => Error::Interrupted,
        CaptionError::Ledger(_) => Error::CantWrite(e.to_string()),
        e => Error::Service(e.to_string()),
    }
}

fn human_line(line: &Line) -> String {
    let text = match (&line.error, line.kind) {
        (Some(error), _) => format!("[failed] {error}"),
        (None, Some(crate::caption::Kind::Uncertain)) => "[uncertain: left out of search]".into(),
        (None, Some(crate::caption::Kind::Decorative)) => "[decorative: left out of search]".into(),
        (None, _) => line.caption.unwrap_or("").replace('\n', " / "),
    };
    let cached = if line.cached { " (cached)" } else { "" };
    format!("{}  {text}{cached}", clock(line.time))
}

fn human_summary(s: &Summary, captioner: &dyn Captioner) -> String {
    let cost = s
        .cost
        .map_or("cost unknown (set --price)".to_string(), |c| {
            format!("about ${c:.4}")
        });
    let batch = s.batch.as_ref().map_or(String::new(), |b| {
        format!(
            " and {} answered by batch {} (half price)",
            b.answered,
            b.ids.join(", ")
        )
    });
    let frames = count(s.frames as u64, "frame", "frames");
    let (backend, model) = (captioner.backend(), captioner.model());
    // The tagger runs on this machine: it reads no tokens and costs nothing.
    if captioner.makes_tags() {
        return format!(
            "{frames} with {backend}/{model}: {} tagged, {} cached, {} failed; {:.2} s",
            s.totals.calls, s.totals.cache_hits, s.totals.failures, s.wall_seconds
        );
    }
    format!(
        "{frames} with {backend}/{model}: {}{batch}, {} cached, {} failed; {} tokens in, {} out; {cost}; {:.2} s",
        count(s.totals.calls, "call", "calls"),
        s.totals.cache_hits,
        s.totals.failures,
        s.input_tokens,
        s.output_tokens,
        s.wall_seconds
    )
}

fn is_image(path: &Path) -> bool {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    matches!(extension.as_deref(), Some("jpg" | "jpeg" | "png"))
}

/// The pictures to caption, encoded as they will be sent, where each sits, and whether the
/// video stops before its declared length.
type Gathered = (Vec<Place>, Vec<Encoded>, Option<Truncation>);

/// The pictures to caption, encoded as they will be sent, and where each sits.
fn gather(path: &Path, args: &CaptionArgs, picture: Picture) -> Result<Gathered, Error> {
    if is_image(path) {
        crate::decode::check_file(path)?;
        let image = image::open(path)
            .map_err(|e| Error::Input(format!("{}: cannot read the image: {e}", path.display())))?;
        let encoded = encode(&image.to_rgb8(), picture).map_err(|e| Error::Input(e.to_string()))?;
        return Ok((
            vec![Place {
                time: 0.0,
                span: (0.0, 0.0),
            }],
            vec![encoded],
            None,
        ));
    }
    let timeline = crate::index::sample(
        path,
        args.sampling.sample_config(),
        args.sampling.dedup_config(),
        picture,
        &|_| {},
    )
    .map_err(|e| match e {
        FileError::Decode(e) => Error::Decode(e),
        e => Error::Input(e.to_string()),
    })?;
    let places = timeline
        .frames
        .iter()
        .filter(|f| f.picture.is_some())
        .map(|f| Place {
            time: f.time,
            span: f.span,
        })
        .collect();
    Ok((places, timeline.pictures, timeline.truncated))
}

/// What a run would cost, with nothing spent.
fn dry_run(
    pictures: &[Encoded],
    chosen: &Chosen,
    settings: &Settings,
    cache: Option<&Cache>,
    price: Option<Price>,
    json: bool,
    out: &mut Out,
) -> Result<(), Error> {
    let mut estimate = Estimate::default();
    estimate.add(
        pictures,
        chosen.captioner.as_ref(),
        settings,
        cache,
        &mut Default::default(),
    );
    let line = estimate_line(&estimate, chosen.captioner.as_ref(), price, json, &[]);
    out.line(&line)?;
    out.flush()
}

/// The dry-run line of `caption` and `index`: JSON, or a sentence; `first` are counts that go
/// before the estimate (index: files).
pub fn estimate_line(
    estimate: &Estimate,
    captioner: &dyn Captioner,
    price: Option<Price>,
    json: bool,
    first: &[(&str, u64)],
) -> String {
    let cost = price.map(|p| cost::dollars(estimate.usage(), p));
    if json {
        let mut value = serde_json::Value::Object(
            first
                .iter()
                .map(|(name, n)| (name.to_string(), (*n).into()))
                .collect(),
        );
        let counts = serde_json::to_value(estimate).expect("estimates serialize");
        value
            .as_object_mut()
            .expect("an object")
            .extend(counts.as_object().expect("an object").clone());
        value["cost_at_most"] = serde_json::json!(cost);
        value["backend"] = captioner.backend().into();
        value["model"] = captioner.model().into();
        return serde_json::json!({ "dry_run": value }).to_string();
    }
    let cost = cost.map_or("cost unknown (set --price)".to_string(), |c| {
        format!("at most ${c:.4}")
    });
    let counts: String = first
        .iter()
        .map(|(name, n)| {
            let words = name.replace('_', " ");
            match n {
                1 => format!("1 {}, ", words.replacen("files", "file", 1)),
                n => format!("{n} {words}, "),
            }
        })
        .collect();
    if captioner.makes_tags() {
        return format!(
            "dry run: {counts}{} frames, {} cached, {} to tag with {}/{} on this machine, at no cost",
            estimate.frames,
            estimate.cached,
            estimate.to_caption,
            captioner.backend(),
            captioner.model(),
        );
    }
    format!(
        "dry run: {counts}{} frames, {} cached, {} to caption with {}/{}: about {} tokens in, at most {} out; {cost}",
        estimate.frames,
        estimate.cached,
        estimate.to_caption,
        captioner.backend(),
        captioner.model(),
        estimate.input_tokens,
        estimate.output_tokens_at_most
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> crate::backends::CaptionerSettings {
        let mut argv = vec!["scenedex", "caption", "x.png"];
        argv.extend(extra);
        match super::super::Cli::parse_from(argv).command {
            super::super::Command::Caption(c) => c.captioner.settings(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn openai_base_url_alone_selects_the_openai_backend_without_a_key() {
        let env = Env {
            openai_base: Some("http://localhost:11434/v1".into()),
            ..Env::default()
        };
        let chosen = backends::captioner(&args(&["--model", "qwen2.5vl"]), &env).unwrap();
        assert_eq!(chosen.captioner.backend(), "openai");
        assert_eq!(chosen.base_url, "http://localhost:11434/v1");
        assert_eq!(
            cost::list_price("qwen2.5vl", Some(&chosen.base_url))
                .unwrap()
                .input,
            0.0
        );
    }

    #[test]
    fn the_vendor_endpoints_need_their_keys() {
        let error = backends::captioner(&args(&["--captioner", "openai"]), &Env::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("OPENAI_API_KEY is not set"));
        let error = backends::captioner(&args(&["--captioner", "anthropic"]), &Env::default())
            .err()
            .unwrap();
        assert!(error.to_string().contains("ANTHROPIC_API_KEY is not set"));
        let env = Env {
            anthropic_key: Some("k".into()),
            ..Env::default()
        };
        assert_eq!(
            backends::captioner(&args(&[]), &env)
                .unwrap()
                .captioner
                .backend(),
            "anthropic"
        );
    }
}
