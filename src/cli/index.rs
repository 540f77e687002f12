//! `scenedex index PATH...`: bring the index up to date with the videos under the paths.
//!
//! Planning reads only file sizes, times and, for new or changed files, a 3 MiB fingerprint;
//! then several files go through the pipeline at once while this thread alone writes to the
//! store. A file's record is written after its segments, so a run stopped at any moment (even
//! by `kill -9`) leaves files either complete or without a record, and the next run redoes
//! exactly those, from the caption cache.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::caption::{choose_captioner, estimate_line, open_cache, Env};
use super::output::Out;
use super::{backends, exit, Error, IndexArgs};
use crate::caption::cost;
use crate::caption::run::{Estimate, Settings};
use crate::caption::{Picture, Prompt, Usage};
use crate::decode::find::find_videos;
use crate::index::{FileError, FileStats, Indexed, Pipeline, Progress, INDEXER};
use crate::segment::SegmentConfig;
use crate::store::files::{self, Catalog, FileRecord, Place};
use crate::store::fingerprint::{fingerprint, stat, Stat};
use crate::store::{Condition, VectorStore};

/// Points written to the store in one request.
const CHUNK: usize = 256;

/// A file to run through the pipeline.
struct Job {
    path: PathBuf,
    fingerprint: String,
    size: u64,
    /// Every path with this content found in this run (copies are indexed once).
    places: Vec<Place>,
}

/// One line of `--json` output.
#[derive(Serialize)]
struct FileLine<'a> {
    path: &'a str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segments: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct Summary {
    files: usize,
    indexed: usize,
    unchanged: usize,
    moved: usize,
    /// Files whose content is indexed at another path that still exists.
    copies: usize,
    removed: usize,
    failed: usize,
    failures: Vec<Failure>,
    hours: f64,
    frames_sampled: u64,
    frames_kept: u64,
    frames_captioned: u64,
    cache_hits: u64,
    calls: u64,
    input_tokens: u64,
    output_tokens: u64,
    /// Dollars; absent when the captioner's price is unknown.
    cost: Option<f64>,
    segments: u64,
    wall_seconds: f64,
    /// Hours of video indexed per hour of wall time.
    speed: f64,
    captioner: String,
    embedder: String,
    index: String,
}

#[derive(Serialize)]
struct Failure {
    path: String,
    error: String,
    #[serde(skip)]
    code: i32,
}

/// The run's state: the store, what it holds, and what has been reported.
struct Run<'a> {
    store: &'a dyn VectorStore,
    catalog: Catalog,
    /// Fingerprint -> index in the job list, so a copy found in the same run joins its job.
    queued: HashMap<String, usize>,
    thumbs: PathBuf,
    summary: Summary,
    usage: Usage,
    out: Out,
    json: bool,
    /// The progress bars, drawn on standard error only when it is a terminal.
    bars: MultiProgress,
    made_by: Provenance,
}

pub fn run(args: &IndexArgs) -> Result<(), Error> {
    let started = Instant::now();
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
    // Settings are checked before the index is created, so a missing key leaves nothing behind.
    let chosen = choose_captioner(&args.captioner, &Env::from_process())?;
    let embedder = backends::embedder(&args.store)?;
    let prompt = Prompt::load(args.captioner.style, args.captioner.prompts.as_deref())
        .map_err(|e| Error::Config(e.to_string()))?;
    let cache = open_cache(&args.captioner)?;
    let settings = Settings {
        style: args.captioner.style,
        prompt: &prompt,
        lang: args.captioner.lang.as_deref(),
        detail: &chosen.detail,
        concurrency: args.captioner.concurrency,
    };
    let pipeline = Pipeline {
        sampling: args.sampling.sample_config(),
        dedup: args.sampling.dedup_config(),
        picture: Picture {
            max_side: args.captioner.max_side,
            quality: args.captioner.jpeg_quality,
        },
        captioner: chosen.captioner.as_ref(),
        settings: &settings,
        cache: cache.as_ref(),
        embedder: embedder.as_ref(),
        segmenting: SegmentConfig {
            min_similarity: args.merge_similarity,
            max_length: args.max_segment,
        },
        thumbs: backends::thumbs_dir(&args.store)?,
    };
    if args.dry_run {
        return dry_run(args, &found.videos, &pipeline, &chosen);
    }
    let store = backends::store(&args.store, embedder.as_ref(), true)?;
    let captioner_name = format!(
        "{}/{}",
        chosen.captioner.backend(),
        chosen.captioner.model()
    );
    let mut run = Run {
        store: store.as_ref(),
        catalog: Catalog::load(store.as_ref())?,
        queued: HashMap::new(),
        thumbs: pipeline.thumbs.clone(),
        summary: Summary {
            captioner: captioner_name.clone(),
            embedder: embedder.model().to_string(),
            index: store.describe(),
            ..Default::default()
        },
        usage: Usage::default(),
        out: Out::new(),
        json: args.json,
        bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        made_by: Provenance {
            captioner: captioner_name,
            prompt: if chosen.captioner.makes_tags() {
                "none".into()
            } else {
                prompt.tag()
            },
            style: if chosen.captioner.makes_tags() {
                "tags".into()
            } else {
                args.captioner.style.name().into()
            },
        },
    };
    for (path, why) in &found.problems {
        run.fail(&path.to_string_lossy(), why.clone(), exit::NO_INPUT)?;
    }
    run.summary.files = found.videos.len();
    let mut jobs = Vec::new();
    for path in &found.videos {
        run.plan(path, &mut jobs)?;
    }
    if !args.keep_missing {
        run.prune(&found.folders)?;
    }
    run.index(jobs, &pipeline, args.jobs)?;
    let price = args
        .captioner
        .price
        .or_else(|| cost::list_price(chosen.captioner.model(), Some(&chosen.base_url)));
    run.finish(started, price)
}

impl Run<'_> {
    /// Decides what a found video needs: nothing, a new path on a known record, or indexing.
    fn plan(&mut self, path: &Path, jobs: &mut Vec<Job>) -> Result<(), Error> {
        let name = path.to_string_lossy().into_owned();
        let stat = match stat(path) {
            Ok(s) => s,
            Err(e) => return self.fail(&name, format!("cannot read: {e}"), exit::NO_INPUT),
        };
        if let Some(record) = unchanged(&self.catalog, &name, &stat) {
            let fingerprint = record.fingerprint.clone();
            self.detach(&name, &fingerprint)?;
            self.summary.unchanged += 1;
            return self.line(&name, "unchanged", Some(&fingerprint), None, None);
        }
        let fingerprint = match fingerprint(path) {
            Ok(f) => f,
            Err(e) => return self.fail(&name, format!("cannot read: {e}"), exit::NO_INPUT),
        };
        let place = Place {
            path: name.clone(),
            mtime_ns: stat.mtime_ns,
        };
        if let Some(known) = self.catalog.get(&fingerprint) {
            // Known content: touched in place, or moved (it left an old place), or a copy.
            let status = if known.places.iter().any(|p| p.path == name) {
                self.summary.unchanged += 1;
                "unchanged"
            } else if known.places.iter().any(|p| !Path::new(&p.path).exists()) {
                self.summary.moved += 1;
                "moved"
            } else {
                self.summary.copies += 1;
                "copy"
            };
            self.attach(&fingerprint, place)?;
            self.detach(&name, &fingerprint)?;
            return self.line(&name, status, Some(&fingerprint), None, None);
        }
        match self.queued.get(&fingerprint) {
            Some(&i) => jobs[i].places.push(place),
            None => {
                self.queued.insert(fingerprint.clone(), jobs.len());
                jobs.push(Job {
                    path: path.to_path_buf(),
                    fingerprint,
                    size: stat.size,
                    places: vec![place],
                });
            }
        }
        Ok(())
    }

    /// Adds a path to a known file, dropping paths where that file no longer is: a move.
    fn attach(&mut self, fingerprint: &str, place: Place) -> Result<(), Error> {
        let mut record = self
            .catalog
            .get(fingerprint)
            .cloned()
            .expect("the caller found it");
        record
            .places
            .retain(|p| p.path != place.path && Path::new(&p.path).exists());
        record.places.push(place);
        Ok(self.catalog.insert(self.store, record)?)
    }

    /// Takes a path away from every file but `keep`: its content there has changed, or gone.
    fn detach(&mut self, path: &str, keep: &str) -> Result<(), Error> {
        for fingerprint in self.catalog.detach(self.store, path, keep)? {
            let _ = std::fs::remove_dir_all(self.thumbs.join(&fingerprint));
            self.summary.removed += 1;
        }
        Ok(())
    }

    /// Forgets paths under the folders walked that no longer exist.
    fn prune(&mut self, folders: &[PathBuf]) -> Result<(), Error> {
        let vanished: Vec<String> = self
            .catalog
            .paths()
            .filter(|p| {
                let path = Path::new(p);
                folders.iter().any(|f| path.starts_with(f)) && !path.exists()
            })
            .cloned()
            .collect();
        for path in vanished {
            self.detach(&path, "")?;
            self.line(&path, "removed", None, None, None)?;
        }
        Ok(())
    }

    /// Runs the jobs through the pipeline, `parallel` at a time, writing each as it finishes.
    fn index(&mut self, jobs: Vec<Job>, pipeline: &Pipeline, parallel: usize) -> Result<(), Error> {
        let bars = self.bars.clone();
        let overall = bars.add(ProgressBar::new(jobs.len() as u64));
        overall.set_style(
            ProgressStyle::with_template("{wide_bar} {pos}/{len} files  {elapsed_precise}")
                .expect("template is valid"),
        );
        let next = Mutex::new(0usize);
        let (sender, receiver) = mpsc::channel::<(usize, Result<Indexed, FileError>)>();
        let mut written = Ok(());
        std::thread::scope(|scope| {
            for _ in 0..parallel.min(jobs.len()) {
                let sender = sender.clone();
                let (jobs, next, bars) = (&jobs, &next, &bars);
                scope.spawn(move || loop {
                    let i = {
                        let mut next = next.lock().expect("no worker panics");
                        *next += 1;
                        *next - 1
                    };
                    let Some(job) = jobs.get(i) else { break };
                    if crate::stop::requested() {
                        break;
                    }
                    let bar = file_bar(bars, &job.path);
                    let paths: Vec<String> = job.places.iter().map(|p| p.path.clone()).collect();
                    let result =
                        pipeline.run(&job.path, &job.fingerprint, &paths, &|p| show(&bar, p));
                    bar.finish_and_clear();
                    if sender.send((i, result)).is_err() {
                        break;
                    }
                });
            }
            drop(sender);
            for (i, result) in receiver {
                overall.inc(1);
                // After a store failure, nothing more is written; the workers are let finish.
                if written.is_ok() {
                    written = self.take(&jobs[i], result);
                    if written.is_err() {
                        crate::stop::request();
                    }
                }
            }
        });
        overall.finish_and_clear();
        written?;
        if crate::stop::requested() {
            return Err(Error::Interrupted);
        }
        if self.summary.indexed > 0 {
            self.store.optimize()?;
        }
        Ok(())
    }

    /// Writes one finished file, or reports why it failed.
    fn take(&mut self, job: &Job, result: Result<Indexed, FileError>) -> Result<(), Error> {
        let name = job.path.to_string_lossy().into_owned();
        let indexed = match result {
            Ok(indexed) => indexed,
            Err(
                FileError::Interrupted | FileError::Decode(crate::decode::DecodeError::Interrupted),
            ) => return Ok(()),
            Err(e) => {
                let code = code_of(&e);
                return self.fail(&name, e.to_string(), code);
            }
        };
        let fingerprint = job.fingerprint.as_str();
        // Segments left by a run that stopped before this file's record was written.
        self.store.delete(&[
            Condition::equals("fingerprint", fingerprint),
            Condition::equals("record", files::SEGMENT),
        ])?;
        for chunk in indexed.points.chunks(CHUNK) {
            self.store.upsert(chunk.to_vec())?;
        }
        let record = record(job, &indexed.stats, &self.made_by);
        self.catalog.insert(self.store, record)?;
        for place in &job.places {
            self.detach(&place.path, fingerprint)?;
        }
        self.store.flush()?;
        self.add(&indexed.stats);
        self.line(
            &name,
            "indexed",
            Some(fingerprint),
            Some(indexed.stats.segments),
            None,
        )
    }

    fn add(&mut self, stats: &FileStats) {
        let s = &mut self.summary;
        s.indexed += 1;
        s.hours += stats.duration / 3600.0;
        s.frames_sampled += stats.frames_sampled;
        s.frames_kept += stats.frames_kept;
        s.frames_captioned += stats.frames_captioned;
        s.cache_hits += stats.captioning.cache_hits;
        s.calls += stats.captioning.calls;
        s.segments += stats.segments;
        self.usage += stats.captioning.usage;
    }

    fn fail(&mut self, path: &str, error: String, code: i32) -> Result<(), Error> {
        // Decoding errors name the file already.
        let error = error
            .strip_prefix(&format!("{path}: "))
            .map_or(error.clone(), str::to_string);
        if !self.json {
            // Printed above the progress bars, not through them.
            self.bars.suspend(|| eprintln!("failed: {path}: {error}"));
        }
        self.line(path, "failed", None, None, Some(error.clone()))?;
        self.summary.failed += 1;
        self.summary.failures.push(Failure {
            path: path.to_string(),
            error,
            code,
        });
        Ok(())
    }

    fn line(
        &mut self,
        path: &str,
        status: &'static str,
        fingerprint: Option<&str>,
        segments: Option<u64>,
        error: Option<String>,
    ) -> Result<(), Error> {
        if !self.json {
            return Ok(());
        }
        self.out.json(&FileLine {
            path,
            status,
            fingerprint,
            segments,
            error,
        })
    }

    fn finish(mut self, started: Instant, price: Option<cost::Price>) -> Result<(), Error> {
        let s = &mut self.summary;
        s.input_tokens = self.usage.input_tokens;
        s.output_tokens = self.usage.output_tokens;
        s.cost = price.map(|p| (cost::dollars(self.usage, p) * 1e6).round() / 1e6);
        s.wall_seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
        s.speed = (s.hours * 3600.0 / s.wall_seconds.max(1e-3) * 10.0).round() / 10.0;
        s.hours = (s.hours * 1e4).round() / 1e4;
        if self.json {
            self.out
                .json(&serde_json::json!({ "summary": &self.summary }))?;
        } else {
            for line in human_summary(&self.summary) {
                self.out.line(&line)?;
            }
        }
        self.out.flush()?;
        match self.summary.failures.first() {
            None => Ok(()),
            Some(first) => Err(Error::Files {
                count: self.summary.failed,
                total: self.summary.files,
                code: first.code,
            }),
        }
    }
}

/// The record of the file at `path` if neither its size nor its modification time changed.
fn unchanged<'a>(catalog: &'a Catalog, path: &str, stat: &Stat) -> Option<&'a FileRecord> {
    catalog.at(path).find(|r| {
        r.size == stat.size
            && r.places
                .iter()
                .any(|p| p.path == path && p.mtime_ns == stat.mtime_ns)
    })
}

/// Counts what indexing would caption and cost: files the index already holds (unchanged, or
/// the same content elsewhere) are free; the rest are decoded and sampled, and their pictures
/// looked up in the caption cache. Nothing is written.
fn dry_run(
    args: &IndexArgs,
    videos: &[PathBuf],
    pipeline: &Pipeline,
    chosen: &super::caption::Chosen,
) -> Result<(), Error> {
    let catalog = match backends::check_exists(&args.store) {
        Ok(()) => Catalog::load(backends::existing_store(&args.store)?.as_ref())?,
        Err(_) => Catalog::default(),
    };
    let (mut estimate, mut seen, mut to_index) = (Estimate::default(), HashSet::new(), 0u64);
    let mut fingerprints = HashSet::new();
    for path in videos {
        let name = path.to_string_lossy();
        let Ok(stat) = stat(path) else { continue };
        if unchanged(&catalog, &name, &stat).is_some() {
            continue;
        }
        let Ok(fingerprint) = fingerprint(path) else {
            continue;
        };
        if catalog.get(&fingerprint).is_some() || !fingerprints.insert(fingerprint) {
            continue;
        }
        to_index += 1;
        match pipeline.pictures(path) {
            Ok(pictures) => estimate.add(
                &pictures,
                pipeline.captioner,
                pipeline.settings,
                pipeline.cache,
                &mut seen,
            ),
            Err(e) => {
                let e = e.to_string();
                let reason = e.strip_prefix(&format!("{name}: ")).unwrap_or(&e);
                eprintln!("failed: {name}: {reason}");
            }
        }
        if crate::stop::requested() {
            return Err(Error::Interrupted);
        }
    }
    let price = args
        .captioner
        .price
        .or_else(|| cost::list_price(chosen.captioner.model(), Some(&chosen.base_url)));
    let counts = [("files", videos.len() as u64), ("files_to_index", to_index)];
    let line = estimate_line(
        &estimate,
        chosen.captioner.as_ref(),
        price,
        args.json,
        &counts,
    );
    let mut out = Out::new();
    out.line(&line)?;
    out.flush()
}

/// What made a file's captions, for its record (also when it has no segment to show it).
struct Provenance {
    /// `backend/model`
    captioner: String,
    /// `id@version`, or `none` for a tagger, which answers no prompt.
    prompt: String,
    style: String,
}

fn record(job: &Job, stats: &FileStats, made_by: &Provenance) -> FileRecord {
    FileRecord {
        fingerprint: job.fingerprint.clone(),
        places: job.places.clone(),
        size: job.size,
        duration: (stats.duration * 1e6).round() / 1e6,
        frames_sampled: stats.frames_sampled,
        frames_kept: stats.frames_kept,
        frames_captioned: stats.frames_captioned,
        segments: stats.segments,
        captioner: made_by.captioner.clone(),
        prompt: made_by.prompt.clone(),
        style: made_by.style.clone(),
        indexed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        indexer: INDEXER.to_string(),
    }
}

fn code_of(error: &FileError) -> i32 {
    match error {
        FileError::Decode(e) => super::decode_exit_code(e),
        FileError::Caption { .. } => exit::SERVICE,
        FileError::Embed(crate::embed::EmbedError::Remote(_)) => exit::SERVICE,
        FileError::Embed(_) | FileError::Picture(_) => exit::FAILURE,
        FileError::Thumbnail { .. } => exit::CANT_WRITE,
        FileError::Interrupted => exit::INTERRUPTED,
    }
}

fn file_bar(bars: &MultiProgress, path: &Path) -> ProgressBar {
    let bar = bars.add(ProgressBar::new(0));
    bar.set_style(
        ProgressStyle::with_template("  {spinner} {prefix:.bold} {msg}")
            .expect("template is valid"),
    );
    bar.set_prefix(
        path.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
    );
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn show(bar: &ProgressBar, progress: Progress) {
    let message = match progress {
        Progress::Sampling { at, duration } => match duration {
            Some(d) => format!("sampling {at:.0}/{d:.0} s"),
            None => format!("sampling {at:.0} s"),
        },
        Progress::Captioning { done, total } => format!("captioning {done}/{total}"),
        Progress::Embedding => "embedding and writing segments".into(),
    };
    bar.set_message(message);
}

fn human_summary(s: &Summary) -> Vec<String> {
    let cost = s
        .cost
        .map_or("cost unknown (set --price)".to_string(), |c| {
            format!("${c:.4}")
        });
    let mut lines = vec![
        format!(
            "{} files: {} indexed, {} unchanged, {} moved, {} copies, {} removed, {} failed",
            s.files, s.indexed, s.unchanged, s.moved, s.copies, s.removed, s.failed
        ),
        format!(
            "{:.3} h of video; {} frames sampled, {} kept, {} captioned ({} from cache); {} segments written",
            s.hours, s.frames_sampled, s.frames_kept, s.frames_captioned, s.cache_hits, s.segments
        ),
        format!(
            "{} API calls with {}, {cost}; {:.1} s wall, {:.1} h of video per hour",
            s.calls, s.captioner, s.wall_seconds, s.speed
        ),
        format!("index: {} ({})", s.index, s.embedder),
    ];
    for failure in &s.failures {
        lines.push(format!("failed: {}: {}", failure.path, failure.error));
    }
    lines
}
