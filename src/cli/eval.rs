//! `scenedex eval GOLDEN.jsonl`: flags in, a table (or JSON lines) out; the scoring is the
//! library's (`eval`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;
use serde_json::{json, Value};

use super::output::Out;
use super::{config, Cli, Command, Error, EvalArgs};
use crate::backends::{self, Env, StoreSettings};
use crate::caption::{cost, Prompt};
use crate::eval::{self, EvalError, Golden, Scores, ROWS};
use crate::index::run::Provenance;
use crate::index::Pipeline;
use crate::segment::SegmentConfig;

/// One configuration scored, with what names it.
struct Scored {
    label: String,
    config: Value,
    scores: Scores,
    first_failure: Option<String>,
}

pub fn run(args: &EvalArgs) -> Result<(), Error> {
    let golden = Golden::load(&args.golden).map_err(eval_error)?;
    let mut scored = vec![score(args, &golden)?];
    if let Some(file) = &args.against {
        let other = against(file)?;
        scored.push(score(&other, &golden)?);
    }
    let mut out = Out::new();
    if args.json {
        for s in &scored {
            let mut line = json!({ "config": s.config });
            if let Value::Object(scores) =
                serde_json::to_value(&s.scores).expect("scores serialize")
            {
                line.as_object_mut().expect("an object").extend(scores);
            }
            out.json(&line)?;
        }
    } else {
        for line in table(&scored) {
            out.line(&line)?;
        }
    }
    out.flush()?;
    match scored.iter().find_map(|s| s.first_failure.as_ref().map(|f| (s, f))) {
        None => Ok(()),
        Some((s, first)) => Err(Error::Service(format!(
            "{}: {} golden pictures could not be captioned (left out of its scores); first: {first}",
            s.label, s.scores.failed
        ))),
    }
}

/// This command's flags with the options file's after them, which clap lets win.
fn against(file: &std::path::Path) -> Result<EvalArgs, Error> {
    let mut argv: Vec<OsString> = std::env::args_os().collect();
    argv.extend(config::flags(file)?.into_iter().map(OsString::from));
    let cli = Cli::try_parse_from(argv)
        .map_err(|e| Error::Config(format!("{}: {}", file.display(), super::first_line(&e))))?;
    match cli.command {
        Command::Eval(args) => Ok(args),
        _ => unreachable!("the same command line, with options added"),
    }
}

fn score(args: &EvalArgs, golden: &Golden) -> Result<Scored, Error> {
    let chosen = backends::captioner(&args.captioner.settings(), &Env::from_process())?;
    let store = StoreSettings {
        embedder: args.embedder,
        embedding_model: args.embedding_model.clone(),
        embedding_url: args.embedding_url.clone(),
        index: None,
        qdrant_urls: Vec::new(),
        collection: String::new(),
        cluster: Default::default(),
    };
    let embedder = backends::fresh_embedder(&store)?;
    let style = args.captioner.style;
    let prompt = Prompt::load(style, args.captioner.prompts.as_deref())
        .map_err(|e| Error::Config(e.to_string()))?;
    let cache = match args.use_cache {
        true => backends::cache(args.captioner.cache_dir.as_deref(), args.captioner.no_cache)?,
        false => None,
    };
    let settings = args.captioner.asking(&prompt, &chosen.detail);
    // The speech model is loaded only for a golden set that has speech to score.
    let speech = args.speech.settings();
    let (ear, _) = match golden.speech.is_empty() {
        true => (None, None),
        false => backends::open_ear(&speech)?,
    };
    let hearing = ear.as_ref().map(|ear| crate::index::speech::Hearing {
        ear,
        options: &speech.options,
        transcripts: None,
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
            min_similarity: crate::segment::merge_similarity(embedder.model()),
            ..SegmentConfig::default()
        },
        // The searches' index is throw-away, and so are its thumbnails: `eval` gives both a
        // folder of their own.
        thumbs: crate::index::thumbs::Thumbs::new(PathBuf::new()),
        hearing,
    };
    let price = args
        .captioner
        .price
        .or_else(|| cost::list_price(chosen.captioner.model(), Some(&chosen.base_url)));
    let made_by = Provenance::new(chosen.captioner.as_ref(), &prompt, style);
    let evaluated = eval::evaluate(golden, &pipeline, &made_by, price).map_err(eval_error)?;
    let lang = args.captioner.lang.clone();
    let sample = format!("{:?}", args.sampling.sample).to_lowercase();
    let label = format!(
        "{}, prompt {}, style {}{}, sampling {sample}",
        made_by.captioner,
        made_by.prompt,
        made_by.style,
        lang.as_deref()
            .map_or(String::new(), |l| format!(", language {l}"))
    );
    Ok(Scored {
        config: json!({
            "label": label,
            "captioner": made_by.captioner,
            "prompt": made_by.prompt,
            "style": made_by.style,
            "lang": lang,
            "sample": sample,
            "embedder": embedder.model(),
            "speech": hearing.map(|h| h.settings()),
        }),
        label,
        scores: evaluated.scores,
        first_failure: evaluated.first_failure,
    })
}

/// Configurations as columns A, B, each named above the table.
fn table(scored: &[Scored]) -> Vec<String> {
    let names = ["A", "B"];
    let mut lines: Vec<String> = scored
        .iter()
        .zip(names)
        .map(|(s, name)| format!("{name}: {}", s.label))
        .collect();
    lines.push(String::new());
    let mut header = format!("{:<22}", "");
    for name in names.iter().take(scored.len()) {
        header.push_str(&format!("{name:>12}"));
    }
    lines.push(header.trim_end().to_string());
    for row in ROWS {
        let mut line = format!("{row:<22}");
        for s in scored {
            let cell = match eval::field(&s.scores, row) {
                Value::Null => "-".to_string(),
                Value::Number(n) if n.is_u64() => n.to_string(),
                Value::Number(n) => format!("{:.4}", n.as_f64().unwrap_or(f64::NAN)),
                other => other.to_string(),
            };
            line.push_str(&format!("{cell:>12}"));
        }
        lines.push(line);
    }
    let langs: std::collections::BTreeSet<&String> = scored
        .iter()
        .flat_map(|s| s.scores.recall_by_lang.keys())
        .collect();
    for lang in langs {
        for (name, pick) in [
            (
                "recall_at_1",
                (|r: &eval::LangRecall| r.recall_at_1) as fn(&eval::LangRecall) -> Option<f64>,
            ),
            ("recall_at_5", |r: &eval::LangRecall| r.recall_at_5),
        ] {
            let mut line = format!("{:<22}", format!("{name} [{lang}]"));
            for s in scored {
                let cell = s
                    .scores
                    .recall_by_lang
                    .get(lang)
                    .and_then(pick)
                    .map_or("-".to_string(), |v| format!("{v:.4}"));
                line.push_str(&format!("{cell:>12}"));
            }
            lines.push(line);
        }
    }
    lines.push("(- : nothing to measure)".into());
    lines
}

fn eval_error(e: EvalError) -> Error {
    match e {
        EvalError::Read { .. } | EvalError::Missing(_) => Error::NoInput(e.to_string()),
        EvalError::Line { .. } | EvalError::Empty { .. } | EvalError::Picture(..) => {
            Error::Input(e.to_string())
        }
        EvalError::Index(_) => Error::Service(e.to_string()),
        EvalError::Speech(_) => Error::Config(e.to_string()),
        EvalError::Interrupted => Error::Interrupted,
    }
}
