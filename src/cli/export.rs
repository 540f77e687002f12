//! `scenedex export PATH...`: indexed files' segments as timed text tracks.

use super::output::Out;
use super::{Error, ExportArgs};
use crate::index::lease::host_name;
use crate::store::files::Catalog;
use crate::store::Condition;
use crate::track::{self, Format};

pub fn run(args: &ExportArgs) -> Result<(), Error> {
    let settings = args.store.settings();
    super::warn_about_key(&settings);
    let store = settings.open_existing()?;
    let catalog = Catalog::load(store.as_ref(), &host_name())?;
    let mut found = Vec::new();
    for path in &args.paths {
        let places = track::files_at(store.as_ref(), &catalog, path)?;
        if places.is_empty() {
            return Err(Error::NoInput(format!(
                "{}: nothing of this machine's is indexed there; run `scenedex index {}` first",
                path.display(),
                path.display()
            )));
        }
        found.push((path.clone(), places));
    }
    let format = args.format;
    let only: Vec<Condition> = args
        .conditions
        .iter()
        .map(|(field, value)| Condition::Equals(field.clone(), value.clone()))
        .collect();
    let render = |fingerprint: &str| -> Result<String, Error> {
        let cues = track::cues(store.as_ref(), fingerprint, &only)?;
        track::render(&cues, format).map_err(|e| Error::Input(e.to_string()))
    };
    let Some(dir) = &args.out else {
        let count: usize = found.iter().map(|(_, p)| p.len()).sum();
        if count > 1 {
            return Err(Error::Config(format!(
                "{count} indexed files match; give --out DIR to write one track for each"
            )));
        }
        let mut out = Out::new();
        out.raw(&render(&found[0].1[0].fingerprint)?)?;
        return out.flush();
    };
    let planned = track::outputs(&found, dir, format);
    super::refuse_existing(planned.iter().map(|(_, p)| p.as_path()), args.force)?;
    for (place, path) in &planned {
        let text = render(&place.fingerprint)?;
        track::write(path, &text, args.force).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
        eprintln!("{} → {}", place.shown(), path.display());
    }
    Ok(())
}

/// `--format`'s value.
pub(super) fn format(text: &str) -> Result<Format, String> {
    match text {
        "vtt" => Ok(Format::Vtt),
        "srt" => Ok(Format::Srt),
        "jsonl" => Ok(Format::Jsonl),
        _ => Err(format!(
            "'{text}' is not a track format; use vtt, srt or jsonl"
        )),
    }
}
