//! `scenedex index PATH...`: flags in, progress and results out. What to do with each file,
//! claims, pruning and the writing itself are the library's (`index::run`).

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::caption::estimate_line;
use super::output::{clock, count, Out};
use super::Fallback;
use super::{exit, Error, IndexArgs};
use crate::backends::{self, Env, SetupError};
use crate::caption::batch::{Event, Tally};
use crate::caption::{cost, Prompt};
use crate::decode::find::find_videos;
use crate::index::batch::Batching;
use crate::index::lease::{host_name, Holder};
use crate::index::plan::{Refusal, Rules, Unmounted};
use crate::index::run::{self, Context, Failure, Outcome, Provenance, Status, Summary};
use crate::index::speech::Hearing;
use crate::index::watch::Watch;
use crate::index::{FileError, Pipeline, Progress};
use crate::segment::SegmentConfig;
use crate::store::files::Catalog;
use crate::store::{Cluster, StoreError};

pub fn run(args: &IndexArgs) -> Result<(), Error> {
    let started = Instant::now();
    // Watching starts before the first pass, so nothing that changes during it is missed.
    let mut watch = match args.watch {
        true => Some(
            Watch::start(&args.paths, args.settle, args.rescan)
                .map_err(|e| Error::NoInput(e.to_string()))?,
        ),
        false => None,
    };
    let found = find_videos(&args.paths);
    if found.videos.is_empty() && found.folders.is_empty() {
        let message = found
            .problems
            .first()
            .map_or("nothing to index".into(), |(path, why)| {
                format!("{}: {why}", path.display())
            });
        return Err(Error::NoInput(message));
    }
    let mut store_settings = args.store.settings();
    store_settings.cluster = Cluster {
        shards: args.shards,
        replicas: args.replicas,
    };
    // Settings are checked before the index is created, so a missing key leaves nothing behind.
    let captioning = backends::CaptionerSettings {
        estimate_only: args.dry_run,
        batch_size: args.batch.batch_size.map(|n| n as usize),
        ..args.captioner.settings()
    };
    let chosen = backends::captioner(&captioning, &Env::from_process())?;
    let embedder = backends::embedder(&store_settings)?;
    let prompt = Prompt::load(args.captioner.style, args.captioner.prompts.as_deref())
        .map_err(|e| Error::Config(e.to_string()))?;
    let (dir, off) = (args.captioner.cache_dir.as_deref(), args.captioner.no_cache);
    let cache = match args.dry_run {
        true => backends::cache_lookup(dir, off),
        false => backends::cache(dir, off)?,
    };
    let settings = args.captioner.asking(&prompt, &chosen.detail);
    let mut speech = args.speech.settings();
    // A transcription service waits and retries as the captioner does.
    speech.http = args.captioner.settings().http;
    let (ear, speech_note) = match args.dry_run {
        // Hearing is local and costs nothing but time: a dry run leaves the models unloaded.
        true => (None, None),
        false => backends::open_ear(&speech)?,
    };
    let transcripts = cache.as_ref().map(crate::speech::Transcripts::beside);
    let hearing = ear.as_ref().map(|ear| Hearing {
        ear,
        options: &speech.options,
        transcripts: transcripts.as_ref(),
    });
    let pipeline = Pipeline {
        sampling: args.sampling.sample_config(),
        dedup: args.sampling.dedup_config(),
        picture: args.captioner.picture(),
        captioner: chosen.captioner.as_ref(),
        settings: &settings,
        cache: cache.as_ref(),
        embedder: embedder.as_ref(),
        segmenting: SegmentConfig {
            min_similarity: args
                .merge_similarity
                .unwrap_or_else(|| crate::segment::merge_similarity(embedder.model())),
            max_length: args.max_segment,
        },
        thumbs: store_settings.thumbs()?,
        hearing,
    };
    let price = args
        .captioner
        .price
        .or_else(|| cost::list_price(chosen.captioner.model(), Some(&chosen.base_url)));
    let batcher = match args.batch.batch {
        true => Some(super::caption::batcher(
            &chosen,
            cache.as_ref(),
            args.dry_run,
        )?),
        false => None,
    };
    let host = host_name();
    let mut report = Report::new(args.json);
    report.note = chosen.note.clone();
    report.note = match (report.note.take(), speech_note) {
        (Some(a), Some(b)) => Some(format!("{a}; {b}")),
        (a, b) => a.or(b),
    };
    report.dry_run = args.dry_run;
    if args.dry_run {
        // Batches are billed at half the list price.
        let price = price.map(|p| match args.batch.batch {
            true => p.batched(),
            false => p,
        });
        let service = (speech.choice == backends::SpeechChoice::Openai).then(|| {
            let model = speech.model.clone().unwrap_or("whisper-1".into());
            let price = backends::speech_price(&speech, &model);
            (format!("openai/{model}"), price)
        });
        return dry_run(
            &found,
            &store_settings,
            &host,
            &pipeline,
            (price, service, speech.options.stream),
            &report,
        );
    }
    super::warn_about_key(&store_settings);
    let store: std::sync::Arc<dyn crate::store::VectorStore> =
        store_settings.open(embedder.as_ref(), true)?.into();
    // Machines sharing a server rarely share a file system: answers travel with the index.
    if let (true, Some(cache)) = (store_settings.is_server(), &cache) {
        cache.share(Box::new(crate::index::answers::Answers::new(
            store.clone(),
            &host,
            Duration::from_secs_f64(args.lease),
        )));
    }
    let made_by = Provenance::new(chosen.captioner.as_ref(), &prompt, args.captioner.style);
    let run_settings = run::Settings {
        jobs: args.jobs,
        rules: Rules {
            keep_missing: args.keep_missing,
            prune_all: args.prune_all,
            prune_after: args.prune_after,
        },
        lease: Duration::from_secs_f64(args.lease),
        host,
    };
    let batching = batcher.as_deref().map(|batcher| Batching {
        batcher,
        wait: !args.no_wait,
        fallback_sync: args.batch.batch_fallback == Fallback::Sync,
        poll: Duration::from_secs_f64(args.batch.poll),
    });
    let cx = Context {
        store: store.as_ref(),
        pipeline: &pipeline,
        made_by: &made_by,
        settings: &run_settings,
        observer: &report,
        batching: batching.as_ref(),
    };
    let found = match &mut watch {
        Some(watch) => watch.settled(found),
        None => found,
    };
    let close = |summary: &run::Summary, started: Instant| -> Result<(), Error> {
        closing(
            summary,
            started,
            &report,
            price,
            &ear,
            &made_by,
            &chosen,
            embedder.as_ref(),
            store.as_ref(),
        )
    };
    let summary = run::run(&found, &cx);
    report.bars.clear().ok();
    let first = summary
        .map_err(Error::from)
        .and_then(|s| close(&s, started));
    let Some(watch) = &mut watch else {
        return first;
    };
    match first {
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(e) => eprintln!("Error: {e}"),
        Ok(()) => {}
    }
    // Each later pass takes the same paths; unchanged files cost a look each.
    while watch.wait(&crate::stop::requested).is_some() {
        let started = Instant::now();
        report.clear_failures();
        let found = watch.settled(find_videos(&args.paths));
        let summary = run::run(&found, &cx);
        report.bars.clear().ok();
        // A look that found nothing new is not a batch of work: no summary.
        let summary = summary.map(|s| (!nothing_new(&s)).then_some(s));
        match summary
            .map_err(Error::from)
            .and_then(|s| s.map_or(Ok(()), |s| close(&s, started)))
        {
            Err(Error::Interrupted) => break,
            Err(e) => eprintln!("Error: {e}"),
            Ok(()) => {}
        }
        if crate::stop::requested() {
            break;
        }
    }
    Err(Error::Interrupted)
}

/// Whether a pass of `--watch` changed nothing: every file unchanged, none gone.
fn nothing_new(s: &Summary) -> bool {
    s.indexed + s.moved + s.copies + s.removed + s.partial + s.failed + s.lost + s.waiting == 0
        && s.offline == 0
}

/// Prints a pass's summary, and its status.
#[allow(clippy::too_many_arguments)]
fn closing(
    summary: &run::Summary,
    started: Instant,
    report: &Report,
    price: Option<cost::Price>,
    ear: &Option<crate::speech::Ear>,
    made_by: &Provenance,
    chosen: &backends::Chosen,
    embedder: &dyn crate::embed::Embedder,
    store: &dyn crate::store::VectorStore,
) -> Result<(), Error> {
    let batched = summary
        .batch
        .as_ref()
        .map_or(Default::default(), |b| b.usage);
    let mut usage = summary.usage;
    usage += batched;
    let closing = Closing {
        summary,
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        // Batch answers are billed at half the list price.
        cost: price
            .map(|p| round6(cost::dollars(summary.usage, p) + cost::dollars(batched, p.batched()))),
        saved: match summary.batch {
            Some(_) => price
                .map(|p| round6(cost::dollars(batched, p) - cost::dollars(batched, p.batched()))),
            None => None,
        },
        speech: ear.as_ref().map(|ear| match ear.backend() {
            "whisper" => ear.model(),
            service => format!("{service}/{}", ear.model()),
        }),
        speech_cost: ear
            .as_ref()
            .and_then(|ear| ear.price_per_minute())
            .map(|p| round6(summary.sent_seconds / 60.0 * p)),
        wall_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        speed: 0.0,
        captioner: made_by.captioner.clone(),
        tags: chosen.captioner.makes_tags(),
        embedder: embedder.model().to_string(),
        index: store.describe(),
        failures: report.failures(),
    };
    report.finish(closing)
}

/// Counts what indexing would caption and cost; writes nothing, spends nothing.
fn dry_run(
    found: &crate::decode::find::Found,
    settings: &backends::StoreSettings,
    host: &str,
    pipeline: &Pipeline,
    (price, service, sound_stream): (
        Option<cost::Price>,
        Option<(String, Option<f64>)>,
        Option<usize>,
    ),
    report: &Report,
) -> Result<(), Error> {
    let catalog = match settings
        .check_exists()
        .and_then(|()| settings.open_existing())
    {
        Ok(store) => Catalog::load(store.as_ref(), host)?,
        Err(SetupError::Store(StoreError::Missing(_))) => Catalog::empty(host),
        Err(e) => return Err(e.into()),
    };
    let dry = run::dry_run(found, &catalog, pipeline, report, sound_stream)?;
    let mut counts = vec![
        ("files", dry.files as u64),
        ("files_to_index", dry.files_to_index as u64),
    ];
    if dry.partial > 0 {
        counts.push(("partial", dry.partial as u64));
    }
    if dry.failed > 0 {
        counts.push(("failed", dry.failed as u64));
    }
    let line = estimate_line(
        &dry.estimate,
        pipeline.captioner,
        price,
        report.json,
        &counts,
    );
    let mut out = report.out.lock().unwrap_or_else(|e| e.into_inner());
    out.line(&line)?;
    // What a transcription service would be sent: at most all the sound, at list price.
    if let Some((service, per_minute)) = service {
        let minutes = dry.sound_seconds / 60.0;
        let most = per_minute.map(|p| round6(minutes * p));
        match report.json {
            true => out.json(&serde_json::json!({"speech": {
                "service": service, "sound_seconds": round6(dry.sound_seconds), "cost_at_most": most,
            }}))?,
            false => out.line(&format!(
                "speech: at most {} of sound to {service}, {}",
                clock(dry.sound_seconds),
                most.map_or("cost unknown".into(), |c| format!("at most ${c:.4}"))
            ))?,
        }
    }
    out.flush()?;
    drop(out);
    report.result(dry.failed, dry.partial, dry.files + found.problems.len())
}

/// One line of `--json` output.
#[derive(Serialize)]
struct FileLine<'a> {
    path: String,
    /// The path's bytes in base64, when they are not UTF-8 (`path` then shows U+FFFD).
    #[serde(skip_serializing_if = "Option::is_none")]
    path_bytes: Option<String>,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claimed_by: Option<&'a Holder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Clone)]
struct FailureLine {
    path: String,
    error: String,
    /// `failed`, or `partial` for a file indexed as far as it goes.
    status: Status,
    #[serde(skip)]
    code: i32,
}

/// The summary at the end: the run's counts, and what only the front end knows.
#[derive(Serialize)]
struct Closing<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    input_tokens: u64,
    output_tokens: u64,
    /// Dollars; absent when the captioner's price is unknown.
    cost: Option<f64>,
    /// Who heard what is said (`whisper-base`, `openai/whisper-1`), when speech is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    speech: Option<String>,
    /// Dollars paid for transcription; absent when it is free or its price unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    speech_cost: Option<f64>,
    /// `--batch`: dollars saved against synchronous prices.
    #[serde(skip_serializing_if = "Option::is_none")]
    saved: Option<f64>,
    wall_seconds: f64,
    /// Hours of video indexed per hour of wall time.
    speed: f64,
    captioner: String,
    /// The captioner is the offline tagger, which makes no API calls.
    #[serde(skip)]
    tags: bool,
    embedder: String,
    index: String,
    failures: Vec<FailureLine>,
}

/// What the user sees while a run goes: progress bars on a terminal, failures above them,
/// JSON lines for scripts.
struct Report {
    json: bool,
    out: Mutex<Out>,
    bars: MultiProgress,
    overall: ProgressBar,
    failures: Mutex<Vec<FailureLine>>,
    /// Said when files are to be captioned, not on a run where every file is unchanged.
    note: Option<String>,
    dry_run: bool,
}

impl Report {
    /// Forgets the failures of an earlier pass of `--watch`: each pass says how it went.
    fn clear_failures(&self) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn new(json: bool) -> Report {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = bars.add(ProgressBar::hidden());
        Report {
            json,
            out: Mutex::new(Out::new()),
            bars,
            overall,
            failures: Mutex::new(Vec::new()),
            note: None,
            dry_run: false,
        }
    }

    fn failures(&self) -> Vec<FailureLine> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn first_failure(&self) -> Option<(String, i32)> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let first = failures.first()?;
        Some((format!("{}: {}", first.path, first.error), first.code))
    }

    /// Writes a line on standard output; a closed pipe stops the printing, not the run.
    fn print(&self, line: &str) {
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = out.line(line);
    }

    fn above_bars(&self, line: &str) {
        self.bars.suspend(|| eprintln!("{line}"));
    }

    fn finish(&self, mut closing: Closing) -> Result<(), Error> {
        let s = closing.summary;
        if s.waiting > 0 {
            eprintln!(
                "note: {} {} for batches; run `scenedex index --batch` again to collect them and index {}",
                s.waiting,
                if s.waiting == 1 { "file waits" } else { "files wait" },
                if s.waiting == 1 { "it" } else { "them" }
            );
        }
        closing.speed = (s.hours * 3600.0 / closing.wall_seconds.max(1e-3) * 10.0).round() / 10.0;
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let lines = match self.json {
            true => {
                let rounded = Summary {
                    hours: (s.hours * 1e4).round() / 1e4,
                    ..s.clone()
                };
                let closing = Closing {
                    summary: &rounded,
                    ..closing
                };
                vec![serde_json::json!({ "summary": closing }).to_string()]
            }
            false => human_summary(&closing),
        };
        let printed = lines
            .iter()
            .try_for_each(|line| out.line(line))
            .and_then(|()| out.flush());
        drop(out);
        match printed {
            // `| head` closed the output: the run went on, so say how it ended where it shows.
            Err(Error::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => eprintln!(
                "note: standard output closed early; indexing went on to the end: {} indexed, \
                 {} unchanged, {} failed",
                s.indexed, s.unchanged, s.failed
            ),
            printed => printed?,
        }
        self.result(s.failed, s.partial, s.checked)
    }

    /// Success, or the status of the first failure (or incomplete file) with how many of how
    /// many paths failed.
    fn result(&self, failed: usize, partial: usize, total: usize) -> Result<(), Error> {
        let (count, what) = match failed {
            // Cut short, or some of their sound lost: what there was is indexed.
            0 => (partial, "are indexed in part"),
            n => (n, "failed"),
        };
        match self.first_failure() {
            None => Ok(()),
            Some((first, code)) => Err(Error::Files {
                count,
                total,
                what,
                first,
                code,
            }),
        }
    }
}

impl run::Observer for Report {
    fn outcome(&self, outcome: &Outcome) {
        let path = outcome.path.to_string_lossy().into_owned();
        let error = outcome.failure.map(|f| message(f, &path, self.dry_run));
        if let Some(error) = &error {
            if !self.json {
                self.above_bars(&format!("{}: {path}: {error}", status_word(outcome.status)));
            }
            self.failures
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(FailureLine {
                    path: path.clone(),
                    error: error.clone(),
                    status: outcome.status,
                    code: outcome.failure.map_or(exit::FAILURE, code),
                });
        }
        if let (Status::Lost, false) = (outcome.status, self.json) {
            self.above_bars(&format!(
                "gave up: {path}: this indexer lost its claim on the file while working on it \
                 (it stalled past its lease, or could not reach the index), so it wrote nothing \
                 of it; another indexer or the next run does it"
            ));
        }
        if let (Some(holder), false) = (outcome.holder, self.json) {
            self.above_bars(&format!(
                "claimed by {} (process {}), which is indexing it now: {path}",
                holder.host, holder.pid
            ));
        }
        if self.json {
            let line = FileLine {
                path_bytes: raw(outcome.path),
                path,
                status: outcome.status,
                fingerprint: outcome.fingerprint,
                segments: outcome.segments,
                claimed_by: outcome.holder,
                error,
            };
            self.print(&serde_json::to_string(&line).expect("lines serialize"));
        }
    }

    fn warning(&self, text: &str) {
        self.above_bars(&format!("warning: {text}"));
    }

    fn batch(&self, event: &Event) {
        if let Some(line) = super::caption::batch_line(event) {
            self.above_bars(&line);
        }
    }

    fn jobs(&self, count: usize) {
        if let (Some(note), true) = (&self.note, count > 0) {
            self.above_bars(&format!("note: {note}"));
        }
        self.overall.set_draw_target(ProgressDrawTarget::stderr());
        self.overall.set_length(count as u64);
        self.overall.set_position(0);
        self.overall.set_style(
            ProgressStyle::with_template("{wide_bar} {pos}/{len} files  {elapsed_precise}")
                .expect("template is valid"),
        );
    }

    fn begin(&self, path: &Path) -> Box<dyn Fn(Progress) + Send + Sync + '_> {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("  {spinner} {prefix:.bold} {msg}")
                .expect("template is valid"),
        );
        bar.set_prefix(
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Box::new(move |progress| show(&bar, &self.overall, progress))
    }
}

/// A path's bytes in base64 when they are not UTF-8.
fn raw(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt;
    path.to_str()
        .is_none()
        .then(|| base64::engine::general_purpose::STANDARD.encode(path.as_os_str().as_bytes()))
}

fn status_word(status: Status) -> &'static str {
    match status {
        Status::Partial => "partial",
        _ => "failed",
    }
}

fn message(failure: &Failure, path: &str, dry_run: bool) -> String {
    match failure {
        Failure::Missing(why) => why.clone(),
        Failure::Unreadable(e) => format!("cannot read: {e}"),
        // Decoding errors name the file already.
        Failure::File(e) => {
            let text = e.to_string();
            text.strip_prefix(&format!("{path}: "))
                .map_or(text.clone(), str::to_string)
        }
        Failure::Unchecked(e) => {
            format!("cannot tell whether it still exists ({e}); it stays in the index")
        }
        Failure::Refused(r) => refusal(r),
        Failure::Unheard(why) => {
            format!("the pictures are indexed; what is said is not all heard: {why}")
        }
        Failure::Partial(cut) => format!(
            "truncated: the video stops at {} of its declared {}; {}",
            clock(cut.at),
            clock(cut.declared),
            match dry_run {
                true => "indexing would take what there is",
                false => {
                    "what there is is indexed, and indexed again once the file changes \
                     (a download that completes)"
                }
            }
        ),
    }
}

fn refusal(r: &Refusal) -> String {
    let why = match r.why {
        Unmounted::OtherDisk => {
            "the folder is on another file system than when its files were indexed".to_string()
        }
        Unmounted::EmptyFolder => {
            "the folder is empty, as a mount point without its disk is".into()
        }
        Unmounted::NoVideo => "the folder holds no video now".into(),
        Unmounted::MostGone => format!(
            "{} of its {} indexed files are gone at once",
            r.vanished, r.indexed
        ),
    };
    format!(
        "{why}, which looks like an unmounted disk, so its {} missing {} stay in the index, \
         offline; mount it again, or if they were deleted, index again with --prune-all",
        r.vanished,
        if r.vanished == 1 { "file" } else { "files" }
    )
}

fn code(failure: &Failure) -> i32 {
    match failure {
        Failure::Missing(_)
        | Failure::Unreadable(_)
        | Failure::Unchecked(_)
        | Failure::Refused(_) => exit::NO_INPUT,
        Failure::Partial(_) | Failure::Unheard(_) => exit::BAD_INPUT,
        Failure::File(e) => match e.as_ref() {
            FileError::Decode(e) => super::decode_exit_code(e),
            FileError::Caption { .. } | FileError::Transcribe { .. } => exit::SERVICE,
            FileError::Embed(crate::embed::EmbedError::Remote(_)) => exit::SERVICE,
            FileError::Embed(_) | FileError::Picture(_) | FileError::Hear { .. } => exit::FAILURE,
            FileError::Thumbnail { .. } => exit::CANT_WRITE,
            FileError::Store(e) => super::store_exit_code(e),
            FileError::Interrupted => exit::INTERRUPTED,
        },
    }
}

fn show(bar: &ProgressBar, overall: &ProgressBar, progress: Progress) {
    let message = match progress {
        Progress::Sampling { at, duration } => match duration {
            Some(d) => format!("sampling {at:.0}/{d:.0} s"),
            None => format!("sampling {at:.0} s"),
        },
        Progress::Captioning { done, total } => format!("captioning {done}/{total}"),
        Progress::Embedding => "embedding and writing segments".into(),
        Progress::Done => {
            bar.finish_and_clear();
            overall.inc(1);
            return;
        }
    };
    bar.set_message(message);
}

fn human_summary(c: &Closing) -> Vec<String> {
    let s = c.summary;
    let cost = c
        .cost
        .map_or("cost unknown (set --price)".to_string(), |c| {
            format!("${c:.4}")
        });
    // Counts that are usually 0 are said only when they are not.
    let part = |n: usize, what: &str| match n {
        0 => String::new(),
        n => format!(", {n} {what}"),
    };
    let claimed = part(s.claimed, "claimed by other indexers");
    let lost = part(s.lost, "given up (claim lost)");
    let offline = part(s.offline, "offline");
    let partial = part(s.partial, "partial");
    let waiting = part(s.waiting, "waiting for batches");
    let mut lines = vec![
        format!(
            "{} files: {} indexed{partial}{waiting}, {} unchanged, {} moved, {} copies, {} removed{offline}{claimed}{lost}, {} failed",
            s.files, s.indexed, s.unchanged, s.moved, s.copies, s.removed, s.failed
        ),
        format!(
            "{:.3} h of video; {} frames sampled, {} kept, {} captioned ({} from cache); {} segments written{}",
            s.hours, s.frames_sampled, s.frames_kept, s.frames_captioned, s.cache_hits, s.segments,
            match s.speech_segments {
                0 => String::new(),
                n => format!(" ({n} of what is said)"),
            }
        ),
        format!(
            "{} with {}; {:.1} s wall, {:.1} h of video per hour",
            match c.tags {
                true => count(s.calls, "picture tagged", "pictures tagged"),
                false => format!("{}, {cost}", count(s.calls, "API call", "API calls")),
            },
            c.captioner,
            c.wall_seconds,
            c.speed
        ),
        format!("index: {} ({})", c.index, c.embedder),
    ];
    if let (Some(who), true) = (&c.speech, s.transcribed_seconds > 0.0) {
        let paid = c.speech_cost.map_or(String::new(), |cost| {
            format!(
                ", {:.1} min of speech sent, ${cost:.4}",
                s.sent_seconds / 60.0
            )
        });
        lines.insert(
            3,
            format!(
                "{} of sound heard by {who}{paid}",
                clock(s.transcribed_seconds)
            ),
        );
    }
    if let Some(b) = &s.batch {
        lines.push(batch_summary(b, c.saved));
    }
    if s.offline > 0 {
        lines.push(format!(
            "{} gone from {} folders, kept in the index as offline (removed once gone \
             through --prune-after, unless the disk looks unmounted); `scenedex forget PATH` \
             removes one now",
            count(s.offline as u64, "file is", "files are"),
            if s.offline == 1 { "its" } else { "their" }
        ));
    }
    if s.orphans_removed > 0 {
        lines.push(format!(
            "removed {} segments that a crashed run left without their file's record",
            s.orphans_removed
        ));
    }
    for failure in &c.failures {
        lines.push(format!(
            "{}: {}: {}",
            status_word(failure.status),
            failure.path,
            failure.error
        ));
    }
    lines
}

fn round6(dollars: f64) -> f64 {
    (dollars * 1e6).round() / 1e6
}

fn batch_summary(b: &Tally, saved: Option<f64>) -> String {
    let saved = saved.map_or(String::new(), |d| {
        format!("; ${d:.4} saved against synchronous prices")
    });
    let retired = match b.retired {
        0 => String::new(),
        n => format!(
            ", {} retired (unknown to the provider)",
            count(n, "batch", "batches")
        ),
    };
    let running = match b.running {
        0 => String::new(),
        n => format!(", {} still running", count(n, "batch", "batches")),
    };
    format!(
        "batches: {} sent ({} requests), {} collected ({} answered, {} to send again){retired}{running}{saved}",
        b.submitted,
        b.requests,
        b.collected,
        b.answered,
        b.unanswered
    )
}
