//! `scenedex stats` and `scenedex forget PATH...`: what the index holds, and taking files out.

use std::collections::BTreeMap;

use serde::Serialize;

use super::output::Out;
use super::{Error, ForgetArgs, StatsArgs};
use crate::index::lease::{host_name, Leases, Owner, DEFAULT_TTL};
use crate::store::files::{Catalog, FileRecord, SEGMENT};
use crate::store::{Condition, EdgeStore};

#[derive(Serialize)]
struct Stats {
    index: String,
    embedder: String,
    files: usize,
    paths: usize,
    /// The machines whose paths the index holds.
    hosts: Vec<String>,
    hours: f64,
    segments: u64,
    frames_captioned: u64,
    /// Files per `backend/model` of captioner.
    captioners: BTreeMap<String, usize>,
    /// Files per `id@version` of prompt.
    prompts: BTreeMap<String, usize>,
    /// Paths gone from their folders, kept in the index until gone through `--prune-after`.
    offline: usize,
    /// Segments that crashed writes left without their file's record, removed just now.
    orphans_removed: u64,
    /// The embedded index's size; a server's is its own business.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_on_disk: Option<u64>,
}

pub fn run(args: &StatsArgs) -> Result<(), Error> {
    let settings = args.store.settings();
    super::warn_about_key(&settings);
    let store = settings.open_existing()?;
    let host = host_name();
    let leases = Leases::new(store.as_ref(), Owner::this_process(&host), DEFAULT_TTL);
    let swept = leases.sweep(true)?;
    let catalog = Catalog::load(store.as_ref(), &host)?;
    if let Some(warning) = catalog.unreadable_warning() {
        eprintln!("warning: {warning}");
    }
    let records: Vec<&FileRecord> = catalog.records().collect();
    let on_disk = match settings.is_server() {
        false => Some(EdgeStore::bytes_on_disk(&settings.index_dir()?)),
        true => None,
    };
    let mut stats = Stats {
        index: store.describe(),
        embedder: store.model(),
        files: records.len(),
        paths: catalog.all_places().count(),
        offline: catalog
            .all_places()
            .filter(|p| p.missing_since.is_some())
            .count(),
        hosts: catalog.hosts().into_iter().map(str::to_string).collect(),
        // An empty sum of floats is -0.0, which would print as "-0.000 h".
        hours: ((records.iter().map(|r| r.duration).sum::<f64>() + 0.0) / 3600.0 * 1e4).round()
            / 1e4,
        segments: store.count(&[Condition::equals("record", SEGMENT)])?,
        frames_captioned: records.iter().map(|r| r.frames_captioned).sum(),
        captioners: BTreeMap::new(),
        prompts: BTreeMap::new(),
        orphans_removed: swept.segments,
        bytes_on_disk: on_disk,
    };
    for record in records {
        *stats
            .captioners
            .entry(record.captioner.clone())
            .or_default() += 1;
        *stats.prompts.entry(record.prompt.clone()).or_default() += 1;
    }
    let mut out = Out::new();
    if args.json {
        out.json(&stats)?;
    } else {
        for line in human(&stats) {
            out.line(&line)?;
        }
    }
    out.flush()
}

fn human(s: &Stats) -> Vec<String> {
    let listed = |m: &BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, n)| format!("{k} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut lines = vec![
        format!("index:      {}", s.index),
        format!(
            "files:      {} ({} {})",
            s.files,
            s.paths,
            plural(s.paths, "path", "paths")
        ),
        format!("machines:   {}", s.hosts.join(", ")),
        format!("video:      {:.3} h", s.hours),
        format!(
            "segments:   {} from {} captioned frames",
            s.segments, s.frames_captioned
        ),
        format!("embedder:   {}", s.embedder),
        format!("captioners: {}", listed(&s.captioners)),
        format!("prompts:    {}", listed(&s.prompts)),
    ];
    if s.offline > 0 {
        lines.push(format!(
            "offline:    {} gone from {} folders, kept in the index (see `scenedex index --prune-after`)",
            super::output::count(s.offline as u64, "path", "paths"),
            plural(s.offline, "its", "their")
        ));
    }
    if let Some(bytes) = s.bytes_on_disk {
        lines.push(format!("on disk:    {:.1} MB", bytes as f64 / 1e6));
    }
    if s.orphans_removed > 0 {
        lines.push(format!(
            "removed:    {} segments a crashed run left without their file's record",
            s.orphans_removed
        ));
    }
    lines
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

pub fn forget(args: &ForgetArgs) -> Result<(), Error> {
    let settings = args.store.settings();
    super::warn_about_key(&settings);
    let store = settings.open_existing()?;
    let thumbs = settings.thumbs()?;
    let warn = |text: &str| eprintln!("warning: {text}");
    let forgotten =
        crate::index::run::forget(store.as_ref(), &thumbs, &host_name(), &args.paths, &warn)?;
    for target in &forgotten.nothing_at {
        eprintln!(
            "note: nothing of this machine's is indexed at {}",
            target.display()
        );
    }
    let mut out = Out::new();
    out.line(&format!(
        "forgot {} {}",
        forgotten.paths,
        plural(forgotten.paths, "path", "paths")
    ))?;
    out.flush()
}
