//! Timed text tracks: a file's segments as WebVTT, SubRip or JSON lines, for players (a
//! `<track kind="descriptions">`, mpv's `--sub-file`) and for scripts. Only what describes the
//! picture becomes a cue: decorative, uncertain and empty stretches are left out.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use subtp::srt::{SrtSubtitle, SrtTimestamp, SubRip};
use subtp::vtt::{VttBlock, VttCue, VttTimestamp, VttTimings, WebVtt};

use crate::caption::Kind;
use crate::store::files::{at_or_under, indexed_form, path_key, Catalog, Place, PLACE, SEGMENT};
use crate::store::{Condition, StoreError, VectorStore};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Vtt,
    Srt,
    Jsonl,
}

impl Format {
    pub fn extension(self) -> &'static str {
        match self {
            Format::Vtt => "vtt",
            Format::Srt => "srt",
            Format::Jsonl => "jsonl",
        }
    }
}

/// One stretch of a file's timeline and what it shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Cue {
    pub start: f64,
    pub end: f64,
    pub text: String,
    /// Every field the segment carries (moderation fields, model, prompt), for JSON lines.
    pub fields: Map<String, Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum TrackError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a cue at {0:.0} s lies beyond what WebVTT and SubRip timestamps can say (255 hours)")]
    TooLong(f64),
}

/// This machine's indexed files at or under `path` (a file or a folder), in path order.
pub fn files_at(
    store: &dyn VectorStore,
    catalog: &Catalog,
    path: &Path,
) -> Result<Vec<Place>, StoreError> {
    let target = indexed_form(path).unwrap_or_else(|_| path.to_path_buf());
    let key = path_key(&target);
    if let Some(place) = catalog.mine_at(&key) {
        return Ok(vec![place.clone()]);
    }
    let under = store.scroll(&[
        Condition::equals("record", PLACE),
        Condition::equals("host", catalog.host()),
        at_or_under(&key),
    ])?;
    let mut places: Vec<Place> = under
        .into_iter()
        .filter_map(|r| serde_json::from_value(Value::Object(r.payload)).ok())
        .filter(|p: &Place| catalog.get(&p.fingerprint).is_some())
        .collect();
    places.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(places)
}

/// Where each file's track goes in `dir`: its path under the folder it was found through, with
/// the track's extension in place of its own (`a.mp4` → `a.vtt`, as players look for it), or
/// added to it (`a.mp4.vtt`) when another file of the same name already took that one.
pub fn outputs(
    found: &[(PathBuf, Vec<Place>)],
    dir: &Path,
    format: Format,
) -> Vec<(Place, PathBuf)> {
    let mut taken: HashSet<PathBuf> = HashSet::new();
    let mut planned = Vec::new();
    for (given, places) in found {
        let given = indexed_form(given).unwrap_or_else(|_| given.clone());
        for place in places {
            let path = place.os_path();
            let relative = match path.strip_prefix(&given) {
                Ok(r) if !r.as_os_str().is_empty() => r.to_path_buf(),
                _ => PathBuf::from(path.file_name().unwrap_or(path.as_os_str())),
            };
            // `a.vtt`, else `a.mp4.vtt`, else `a.mp4-2.vtt`, ...: every name once in a run.
            let mut out = dir.join(relative.with_extension(format.extension()));
            let mut n = 1;
            while !taken.insert(out.clone()) {
                let mut name = relative.clone().into_os_string();
                if n > 1 {
                    name.push(format!("-{n}"));
                }
                name.push(".");
                name.push(format.extension());
                out = dir.join(name);
                n += 1;
            }
            planned.push((place.clone(), out));
        }
    }
    planned
}

/// Writes a track whole or not at all; an existing file is replaced only when `force` says so.
pub fn write(path: &Path, text: &str, force: bool) -> std::io::Result<()> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "exists already; --force replaces it",
        ));
    }
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

/// The cues of one file's content, in time order: what is seen, unless `only` names a kind
/// (`kind = speech` for what is said), as one track of both would overlap itself.
pub fn cues(
    store: &dyn VectorStore,
    fingerprint: &str,
    only: &[Condition],
) -> Result<Vec<Cue>, StoreError> {
    let mut filter = vec![
        Condition::equals("record", SEGMENT),
        Condition::equals("fingerprint", fingerprint),
    ];
    filter.extend_from_slice(only);
    let names_kind = only.iter().any(|c| {
        matches!(c, Condition::Equals(field, _) | Condition::AnyOf(field, _) if field == "kind")
    });
    if !names_kind {
        let seen = ["description", "tags"].map(String::from).to_vec();
        filter.push(Condition::AnyOf("kind".into(), seen));
    }
    let segments = store.scroll(&filter)?;
    let mut cues: Vec<Cue> = segments.into_iter().filter_map(cue).collect();
    cues.sort_by(|a, b| a.start.total_cmp(&b.start));
    Ok(cues)
}

fn cue(record: crate::store::Record) -> Option<Cue> {
    let p = record.payload;
    let kind: Kind = serde_json::from_value(p.get("kind")?.clone()).ok()?;
    if !kind.searchable() {
        return None;
    }
    let text = crate::index::readable(p.get("caption")?.as_str()?, kind);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let (start, end) = (p.get("start")?.as_f64()?, p.get("end")?.as_f64()?);
    (!lines.is_empty() && end > start).then(|| Cue {
        start,
        end,
        text: lines.join("\n"),
        fields: p,
    })
}

/// The track as text in the given format.
pub fn render(cues: &[Cue], format: Format) -> Result<String, TrackError> {
    match format {
        Format::Vtt => vtt(cues),
        Format::Srt => srt(cues),
        Format::Jsonl => Ok(jsonl(cues)),
    }
}

fn vtt(cues: &[Cue]) -> Result<String, TrackError> {
    let mut blocks: Vec<VttBlock> = Vec::new();
    for cue in cues {
        let (start, end) = (parts(cue.start)?, parts(cue.end)?);
        let stamp = |(hours, minutes, seconds, milliseconds)| VttTimestamp {
            hours,
            minutes,
            seconds,
            milliseconds,
        };
        blocks.push(
            VttCue {
                timings: VttTimings {
                    start: stamp(start),
                    end: stamp(end),
                },
                // Cue text is markup in WebVTT: a caption's "<b>" or "-->" stays text.
                payload: cue.text.lines().map(escaped).collect(),
                ..Default::default()
            }
            .into(),
        );
    }
    Ok(WebVtt {
        blocks,
        ..Default::default()
    }
    .render())
}

fn srt(cues: &[Cue]) -> Result<String, TrackError> {
    let mut subtitles = Vec::new();
    for (n, cue) in cues.iter().enumerate() {
        let (start, end) = (parts(cue.start)?, parts(cue.end)?);
        let stamp = |(hours, minutes, seconds, milliseconds)| SrtTimestamp {
            hours,
            minutes,
            seconds,
            milliseconds,
        };
        subtitles.push(SrtSubtitle {
            sequence: n as u32 + 1,
            start: stamp(start),
            end: stamp(end),
            text: cue.text.lines().map(str::to_string).collect(),
            line_position: None,
        });
    }
    Ok(SubRip { subtitles }.render())
}

fn jsonl(cues: &[Cue]) -> String {
    let mut text = String::new();
    for cue in cues {
        let mut line = Map::new();
        line.insert("start".into(), cue.start.into());
        line.insert("end".into(), cue.end.into());
        line.insert("text".into(), cue.text.clone().into());
        for (field, value) in &cue.fields {
            // `texts` is what `reembed` makes vectors from, not for reading.
            if !line.contains_key(field) && !["record", "texts"].contains(&field.as_str()) {
                line.insert(field.clone(), value.clone());
            }
        }
        text.push_str(&Value::Object(line).to_string());
        text.push('\n');
    }
    text
}

/// Hours, minutes, seconds and milliseconds of a time, rounded to the millisecond.
fn parts(seconds: f64) -> Result<(u8, u8, u8, u16), TrackError> {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    let hours = u8::try_from(millis / 3_600_000).map_err(|_| TrackError::TooLong(seconds))?;
    Ok((
        hours,
        (millis / 60_000 % 60) as u8,
        (millis / 1000 % 60) as u8,
        (millis % 1000) as u16,
    ))
}

fn escaped(line: &str) -> String {
    line.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cue(start: f64, end: f64, text: &str) -> Cue {
        Cue {
            start,
            end,
            text: text.into(),
            fields: Map::new(),
        }
    }

    #[test]
    fn times_are_exact_to_the_millisecond() {
        assert_eq!(parts(3725.0125).unwrap(), (1, 2, 5, 13));
        assert_eq!(parts(0.0004).unwrap(), (0, 0, 0, 0));
        assert!(parts(256.0 * 3600.0).is_err());
    }

    #[test]
    fn vtt_cue_text_stays_text() {
        let text = vtt(&[cue(
            1.0,
            2.5,
            "a <b>sign</b> --> & <img src=x onerror=alert(1)>",
        )])
        .unwrap();
        assert!(text.starts_with("WEBVTT"), "{text}");
        assert!(text.contains("00:00:01.000 --> 00:00:02.500"), "{text}");
        assert!(
            text.contains("a &lt;b&gt;sign&lt;/b&gt; --&gt; &amp; &lt;img src=x"),
            "{text}"
        );
        assert!(!text.contains("<img"), "{text}");
    }

    #[test]
    fn srt_numbers_its_cues_and_uses_commas() {
        let text = srt(&[cue(0.0, 1.0, "one"), cue(61.5, 62.0, "two\nlines")]).unwrap();
        assert!(
            text.contains("1\n00:00:00,000 --> 00:00:01,000\none"),
            "{text}"
        );
        assert!(
            text.contains("2\n00:01:01,500 --> 00:01:02,000\ntwo\nlines"),
            "{text}"
        );
    }
}
