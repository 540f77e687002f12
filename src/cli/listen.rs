//! `scenedex listen FILE`: what is said in a file, as `index` hears it.

use std::time::Instant;

use serde::Serialize;

use super::output::{clock, progress, round_us, Out};
use super::{Error, ListenArgs};
use crate::backends::{open_ear, SpeechChoice};

#[derive(Serialize)]
struct Line<'a> {
    start: f64,
    end: f64,
    lang: &'a str,
    text: &'a str,
}

#[derive(Serialize)]
struct Summary<'a> {
    file: &'a std::path::Path,
    model: String,
    settings: String,
    utterances: usize,
    audio_seconds: f64,
    speech_seconds: f64,
    wall_seconds: f64,
    /// Seconds of sound per second of wall time.
    speed: f64,
    languages: Vec<String>,
}

pub fn run(args: &ListenArgs) -> Result<(), Error> {
    let started = Instant::now();
    let mut settings = args.speech.settings();
    // Asking for a transcript is asking for a model (whatever a config file says about
    // indexing): the local one unless a service is named, and its absence is the error to show.
    if settings.choice != SpeechChoice::Openai {
        settings.choice = SpeechChoice::Local;
    }
    let (ear, _) = open_ear(&settings)?;
    let ear = ear.expect("local speech is loaded or an error");
    let bar = progress(None);
    let heard = ear.listen(&args.file, &settings.options, &|seconds| {
        bar.set_message(clock(seconds));
        true
    })?;
    bar.finish_and_clear();
    let mut out = Out::new();
    let Some(heard) = heard else {
        if !args.json {
            eprintln!("{}: no audio stream: nothing is said", args.file.display());
        }
        return summary(
            &mut out,
            args,
            &ear,
            &settings.options,
            &Default::default(),
            started,
        );
    };
    for u in &heard.utterances {
        if args.json {
            out.json(&Line {
                start: round_us(u.start),
                end: round_us(u.end),
                lang: &u.lang,
                text: &u.text,
            })?;
        } else {
            out.line(&format!(
                "{}  {}  {}  {}",
                clock(u.start),
                clock(u.end),
                u.lang,
                u.text
            ))?;
        }
    }
    if heard.damaged > 0 {
        eprintln!(
            "{}: {} audio packets could not be decoded; what is around them was heard",
            args.file.display(),
            heard.damaged
        );
    }
    summary(&mut out, args, &ear, &settings.options, &heard, started)
}

fn summary(
    out: &mut Out,
    args: &ListenArgs,
    ear: &crate::speech::Ear,
    options: &crate::speech::Options,
    heard: &crate::speech::Heard,
    started: Instant,
) -> Result<(), Error> {
    let wall = started.elapsed().as_secs_f64();
    let mut languages: Vec<String> = heard.utterances.iter().map(|u| u.lang.clone()).collect();
    languages.sort();
    languages.dedup();
    let summary = Summary {
        file: &args.file,
        model: ear.model(),
        settings: ear.settings(options),
        utterances: heard.utterances.len(),
        audio_seconds: round_us(heard.seconds),
        speech_seconds: round_us(heard.speech_seconds),
        wall_seconds: round_us(wall),
        speed: round_us(heard.seconds / wall.max(1e-9)),
        languages,
    };
    if args.json {
        return out.json(&serde_json::json!({ "summary": summary }));
    }
    eprintln!(
        "{} utterances in {} of sound ({} of speech), {:.1}x real time",
        summary.utterances,
        clock(heard.seconds),
        clock(heard.speech_seconds),
        summary.speed
    );
    Ok(())
}
