//! `scenedex stats` and `scenedex forget PATH...`: what the index holds, and taking files out.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::output::Out;
use super::{backends, Error, ForgetArgs, StatsArgs};
use crate::store::files::{indexed_form, Catalog, FileRecord, SEGMENT};
use crate::store::{Condition, EdgeStore};

#[derive(Serialize)]
struct Stats {
    index: String,
    embedder: String,
    files: usize,
    paths: usize,
    hours: f64,
    segments: u64,
    frames_captioned: u64,
    /// Files per `backend/model` of captioner.
    captioners: BTreeMap<String, usize>,
    /// Files per `id@version` of prompt.
    prompts: BTreeMap<String, usize>,
    /// The embedded index's size; a server's is its own business.
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_on_disk: Option<u64>,
}

pub fn run(args: &StatsArgs) -> Result<(), Error> {
    let store = backends::existing_store(&args.store)?;
    let catalog = Catalog::load(store.as_ref())?;
    let records: Vec<&FileRecord> = catalog.records().collect();
    let on_disk = match &args.store.qdrant_url {
        None => Some(EdgeStore::bytes_on_disk(&backends::index_dir(&args.store)?)),
        Some(_) => None,
    };
    let mut stats = Stats {
        index: store.describe(),
        embedder: store.model(),
        files: records.len(),
        paths: records.iter().map(|r| r.places.len()).sum(),
        hours: (records.iter().map(|r| r.duration).sum::<f64>() / 3600.0 * 1e4).round() / 1e4,
        segments: store.count(&[Condition::equals("record", SEGMENT)])?,
        frames_captioned: records.iter().map(|r| r.frames_captioned).sum(),
        captioners: BTreeMap::new(),
        prompts: BTreeMap::new(),
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
    vec![
        format!("index:      {}", s.index),
        format!("files:      {} ({} paths)", s.files, s.paths),
        format!("video:      {:.3} h", s.hours),
        format!(
            "segments:   {} from {} captioned frames",
            s.segments, s.frames_captioned
        ),
        format!("embedder:   {}", s.embedder),
        format!("captioners: {}", listed(&s.captioners)),
        format!("prompts:    {}", listed(&s.prompts)),
    ]
    .into_iter()
    .chain(
        s.bytes_on_disk
            .map(|b| format!("on disk:    {:.1} MB", b as f64 / 1e6)),
    )
    .collect()
}

pub fn forget(args: &ForgetArgs) -> Result<(), Error> {
    let store = backends::existing_store(&args.store)?;
    let thumbs = backends::thumbs_dir(&args.store)?;
    let mut catalog = Catalog::load(store.as_ref())?;
    let mut forgotten = 0;
    for path in &args.paths {
        let target =
            indexed_form(path).map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        let matching: Vec<String> = catalog
            .paths()
            .filter(|p| Path::new(p).starts_with(&target))
            .cloned()
            .collect();
        if matching.is_empty() {
            eprintln!("note: nothing indexed at {}", target.display());
        }
        for place in matching {
            for fingerprint in catalog.detach(store.as_ref(), &place, "")? {
                let _ = std::fs::remove_dir_all(thumbs.join(fingerprint));
            }
            forgotten += 1;
        }
    }
    store.flush()?;
    let mut out = Out::new();
    out.line(&format!("forgot {forgotten} paths"))?;
    out.flush()
}
