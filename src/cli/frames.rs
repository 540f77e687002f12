//! `scenedex frames FILE`: the frames that would be sent to a captioner, and why.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use super::output::{clock, count, progress, round_us, time_file_name, Out};
use super::{Error, FramesArgs};
use crate::decode::{DecodeStats, VideoInfo};
use crate::dedup::{Deduper, FrameRecord, Verdict};
use crate::sample::Sampler;

/// One line of `--json` output.
#[derive(Serialize)]
struct FrameLine<'a> {
    time: f64,
    /// The stretch of the timeline this frame stands for: [start, end) in seconds.
    span: [f64; 2],
    reason: &'static str,
    kept: bool,
    verdict: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_of: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    blank: Option<&'static str>,
    hash: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail: Option<&'a Path>,
}

#[derive(Serialize, Default)]
struct Summary {
    file: PathBuf,
    mode: String,
    duration: f64,
    frames_decoded: u64,
    sampled: u64,
    kept: u64,
    duplicates: u64,
    uninformative: u64,
    corrupt: u64,
    wall_seconds: f64,
    /// Seconds of video per second of wall time.
    speed: f64,
    video: Option<VideoInfo>,
}

pub fn run(args: &FramesArgs) -> Result<(), Error> {
    let started = Instant::now();
    let mut sampler = Sampler::open(&args.file, args.sampling.sample_config())?;
    let mut deduper = Deduper::new(args.sampling.dedup_config());
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    }
    let mut out = Out::new();
    let mut summary = Summary {
        file: args.file.clone(),
        mode: args.sampling.sample.to_string(),
        video: Some(sampler.info().clone()),
        ..Default::default()
    };
    if !args.json {
        out.line(&format!(
            "{:<12}  {:<8}  {:<12}  {:<12}  {:<11}  {}",
            "TIME", "REASON", "FROM", "UNTIL", "HASH", "VERDICT"
        ))?;
    }
    let bar = progress(sampler.info().duration);
    while let Some(sample) = sampler.next_sample()? {
        bar.set_position((sample.time * 1000.0) as u64);
        for record in deduper.push(sample) {
            report(&record, args, &mut out, &mut summary)?;
        }
    }
    bar.finish_and_clear();
    let stats = sampler.decoder().stats();
    let end = sampler.timeline_end();
    for record in deduper.finish(end) {
        report(&record, args, &mut out, &mut summary)?;
    }
    finish_summary(&mut summary, stats, end, started);
    summary.frames_decoded = sampler.frames_decoded();
    if args.json {
        out.json(&serde_json::json!({ "summary": summary }))?;
    } else {
        print_summary(&summary, &mut out)?;
    }
    out.flush()?;
    if stats.corrupt > 0 {
        eprintln!(
            "warning: {}: {}; decoding went on past the damage",
            args.file.display(),
            count(stats.corrupt, "damaged stretch", "damaged stretches")
        );
    }
    if stats.implausible > 0 {
        let note = crate::decode::implausible_note(&args.file, stats.implausible);
        eprintln!("warning: {note}");
    }
    match sampler.truncation() {
        Some(cut) => Err(cut.error(&args.file).into()),
        None => Ok(()),
    }
}

fn report(
    record: &FrameRecord,
    args: &FramesArgs,
    out: &mut Out,
    summary: &mut Summary,
) -> Result<(), Error> {
    summary.sampled += 1;
    match record.verdict {
        Verdict::Kept => summary.kept += 1,
        Verdict::Duplicate { .. } => summary.duplicates += 1,
        Verdict::Uninformative { .. } => summary.uninformative += 1,
    }
    let thumbnail = match (&args.out, record.kept()) {
        (Some(dir), true) => Some(write_thumbnail(record, dir, args.thumb_size)?),
        _ => None,
    };
    if args.json {
        out.json(&json_line(record, thumbnail.as_deref()))
    } else {
        out.line(&table_row(record))
    }
}

fn json_line<'a>(record: &'a FrameRecord, thumbnail: Option<&'a Path>) -> FrameLine<'a> {
    let (verdict, duplicate_of, blank) = match record.verdict {
        Verdict::Kept => ("kept", None, None),
        Verdict::Duplicate { of } => ("duplicate", Some(round_us(of)), None),
        Verdict::Uninformative { kind } => ("uninformative", None, Some(kind.as_str())),
    };
    FrameLine {
        time: round_us(record.time),
        span: [round_us(record.span.0), round_us(record.span.1)],
        reason: record.reason.as_str(),
        kept: record.kept(),
        verdict,
        duplicate_of,
        blank,
        hash: &record.hash,
        thumbnail,
    }
}

fn table_row(record: &FrameRecord) -> String {
    let verdict = match record.verdict {
        Verdict::Kept => "kept".to_string(),
        Verdict::Duplicate { of } => format!("duplicate of {}", clock(of)),
        Verdict::Uninformative { kind } => format!("uninformative ({})", kind.as_str()),
    };
    // The stretch of timeline the frame stands for, which can begin before it (it took the
    // place of a frame too close to it); a duplicate's belongs to the frame it repeats.
    let (from, until) = match record.verdict {
        Verdict::Duplicate { .. } => ("-".to_string(), "-".to_string()),
        _ => (clock(record.span.0), clock(record.span.1)),
    };
    format!(
        "{:<12}  {:<8}  {:<12}  {:<12}  {:<11}  {verdict}",
        clock(record.time),
        record.reason.as_str(),
        from,
        until,
        record.hash
    )
}

/// Writes the thumbnail under a temporary name and renames it, so a crash or a full disk
/// never leaves a half-written picture behind.
fn write_thumbnail(record: &FrameRecord, dir: &Path, size: u32) -> Result<PathBuf, Error> {
    let path = dir.join(time_file_name(record.time, "jpg"));
    let temporary = dir.join(format!(".{}.partial", time_file_name(record.time, "jpg")));
    let (w, h) = record.image.dimensions();
    let scale = (f64::from(size) / f64::from(w.max(h))).min(1.0);
    let (tw, th) = (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    );
    let small = image::imageops::thumbnail(&record.image, tw, th);
    let result = encode_jpeg(&small, &temporary).and_then(|()| {
        std::fs::rename(&temporary, &path).map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map(|()| path)
}

fn encode_jpeg(image: &image::RgbImage, path: &Path) -> Result<(), Error> {
    let file = std::fs::File::create(path).map_err(|source| Error::Write {
        path: path.into(),
        source,
    })?;
    let mut writer = std::io::BufWriter::new(file);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut writer, 85)
        .encode_image(image)
        .map_err(|source| match source {
            image::ImageError::IoError(source) => Error::Write {
                path: path.into(),
                source,
            },
            other => Error::Encode {
                path: path.into(),
                source: other,
            },
        })?;
    let file = writer.into_inner().map_err(|e| Error::Write {
        path: path.into(),
        source: e.into_error(),
    })?;
    file.sync_all().map_err(|source| Error::Write {
        path: path.into(),
        source,
    })
}

fn finish_summary(summary: &mut Summary, stats: DecodeStats, end: f64, started: Instant) {
    let wall = started.elapsed().as_secs_f64();
    summary.duration = round_us(end);
    summary.corrupt = stats.corrupt;
    summary.wall_seconds = (wall * 1000.0).round() / 1000.0;
    summary.speed = if wall > 0.0 {
        ((end / wall) * 10.0).round() / 10.0
    } else {
        0.0
    };
}

fn print_summary(summary: &Summary, out: &mut Out) -> Result<(), Error> {
    out.line("")?;
    let damage = match summary.corrupt {
        0 => String::new(),
        n => format!(", {}", count(n, "damaged stretch", "damaged stretches")),
    };
    out.line(&format!(
        "{}: {} of video, {} decoded{damage}",
        summary.file.display(),
        clock(summary.duration),
        count(summary.frames_decoded, "frame", "frames")
    ))?;
    out.line(&format!(
        "sampled {} ({}): {} kept, {}, {} uninformative",
        summary.sampled,
        summary.mode,
        summary.kept,
        count(summary.duplicates, "duplicate", "duplicates"),
        summary.uninformative
    ))?;
    out.line(&format!(
        "took {:.2} s, {}x real time",
        summary.wall_seconds, summary.speed
    ))
}
