//! eval: how good a captioning configuration is, measured on a golden set before it is paid
//! for on a whole archive. Pictures and frames are captioned and checked against the words
//! they must and must not contain and the moderation fields they must have; searches run on a
//! throw-away index of the golden videos and are scored by where the right stretch ranks.
//! What is said in a golden video is heard and scored by word error rate, and searched for
//! among the speech segments of the same index.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::caption::cost::{self, Price};
use crate::caption::run::caption_all;
use crate::caption::{encode, Caption, CaptionError, Encoded, Kind, Picture, Style, Usage};
use crate::index::speech::Hearing;
use crate::speech::Transcripts;
use crate::store::Condition;

/// Words a caption must have, must not have, and moderation fields it must give.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checks {
    #[serde(default)]
    must: Vec<String>,
    #[serde(default)]
    must_not: Vec<String>,
    #[serde(default)]
    moderation: Option<Map<String, Value>>,
}

/// One line of a golden file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    image: Option<PathBuf>,
    video: Option<PathBuf>,
    time: Option<f64>,
    query: Option<String>,
    said: Option<String>,
    start: Option<f64>,
    end: Option<f64>,
    /// A search's language, for recall per language.
    lang: Option<String>,
    #[serde(flatten)]
    checks: Checks,
}

/// A picture to caption: an image file, or a video's frame at a time.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Image(PathBuf),
    Frame { video: PathBuf, time: f64 },
}

#[derive(Clone, Debug)]
pub struct PictureCase {
    pub source: Source,
    pub must: Vec<String>,
    pub must_not: Vec<String>,
    pub moderation: Option<Map<String, Value>>,
}

/// A search whose answer should overlap `[start, end]` of `video`.
#[derive(Clone, Debug)]
pub struct SearchCase {
    pub query: String,
    pub video: PathBuf,
    pub start: f64,
    pub end: f64,
    /// The query's language, when the golden line says.
    pub lang: Option<String>,
}

/// Words said in `video` from `start` to `end`.
#[derive(Clone, Debug)]
pub struct SpeechCase {
    pub said: String,
    pub video: PathBuf,
    pub start: f64,
    pub end: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Golden {
    pub pictures: Vec<PictureCase>,
    pub searches: Vec<SearchCase>,
    pub speech: Vec<SpeechCase>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {why}")]
    Line {
        path: PathBuf,
        line: usize,
        why: String,
    },
    #[error("{path}: no pictures, frames, searches or speech to score")]
    Empty { path: PathBuf },
    #[error("{0}: {1}")]
    Picture(PathBuf, String),
    #[error("{0}: no such file; the golden set names it, so restore it or fix that line")]
    Missing(PathBuf),
    #[error("the throw-away index for the searches: {0}")]
    Index(String),
    #[error("the golden set has speech to score: {0}")]
    Speech(String),
    #[error("interrupted")]
    Interrupted,
}

impl Golden {
    /// Reads a golden file; paths in it are relative to its folder.
    pub fn load(path: &Path) -> Result<Golden, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut golden = Golden::default();
        for (n, raw) in text.lines().enumerate() {
            if raw.trim().is_empty() {
                continue;
            }
            let bad = |why: String| EvalError::Line {
                path: path.to_path_buf(),
                line: n + 1,
                why,
            };
            let line: Line = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
            golden.add(line, base).map_err(bad)?;
        }
        if golden.pictures.is_empty() && golden.searches.is_empty() && golden.speech.is_empty() {
            return Err(EvalError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(golden)
    }

    fn add(&mut self, mut line: Line, base: &Path) -> Result<(), String> {
        let at = |p: PathBuf| base.join(p);
        let lang = line.lang.take();
        if lang.is_some() && line.query.is_none() {
            return Err(
                "\"lang\" is a search's language: only a line with \"query\" has it".into(),
            );
        }
        let stretch =
            |start: f64, end: f64| match start.is_finite() && end.is_finite() && start <= end {
                true => Ok(()),
                false => Err(format!(
                    "start {start} and end {end} are not a stretch of time"
                )),
            };
        match line {
            Line {
                said: Some(said),
                video: Some(video),
                start: Some(start),
                end: Some(end),
                query: None,
                image: None,
                time: None,
                lang: _,
                checks,
            } if checks.must.is_empty()
                && checks.must_not.is_empty()
                && checks.moderation.is_none() =>
            {
                stretch(start, end)?;
                if words(&said).is_empty() {
                    return Err("\"said\" has no words".into());
                }
                self.speech.push(SpeechCase {
                    said,
                    video: at(video),
                    start,
                    end,
                });
            }
            Line {
                query: Some(query),
                said: None,
                video: Some(video),
                start: Some(start),
                end: Some(end),
                image: None,
                time: None,
                lang: _,
                checks,
            } if checks.must.is_empty()
                && checks.must_not.is_empty()
                && checks.moderation.is_none() =>
            {
                stretch(start, end)?;
                self.searches.push(SearchCase {
                    query,
                    video: at(video),
                    start,
                    end,
                    lang,
                });
            }
            Line {
                query: None,
                said: None,
                start: None,
                end: None,
                image,
                video,
                time,
                lang: _,
                checks,
            } => {
                let source = match (image, video, time) {
                    (Some(image), None, None) => Source::Image(at(image)),
                    (None, Some(video), Some(time)) if time.is_finite() && time >= 0.0 => {
                        Source::Frame {
                            video: at(video),
                            time,
                        }
                    }
                    _ => return Err(
                        "a picture is \"image\", or \"video\" with \"time\" (seconds, 0 or more)"
                            .into(),
                    ),
                };
                self.pictures.push(PictureCase {
                    source,
                    must: checks.must,
                    must_not: checks.must_not,
                    moderation: checks.moderation,
                });
            }
            _ => {
                return Err(
                    "a search is \"query\", \"video\", \"start\" and \"end\", and what is said is \"said\", \"video\", \"start\" and \"end\", each with nothing else"
                        .into(),
                )
            }
        }
        Ok(())
    }

    /// The videos the searches look in, each once.
    pub fn search_videos(&self) -> Vec<PathBuf> {
        let searched = self.searches.iter().map(|s| s.video.clone());
        let mut videos: Vec<PathBuf> = searched
            .chain(self.speech.iter().map(|s| s.video.clone()))
            .collect();
        videos.sort();
        videos.dedup();
        videos
    }
}

/// Search recall over the searches of one language.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct LangRecall {
    pub searches: usize,
    pub recall_at_1: Option<f64>,
    pub recall_at_5: Option<f64>,
}

/// A configuration's scores; a score with nothing to measure is None (`null`), not 0.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Scores {
    pub keyword_recall: Option<f64>,
    pub hallucination_rate: Option<f64>,
    pub decorative_rate: Option<f64>,
    pub uncertain_rate: Option<f64>,
    pub moderation_accuracy: Option<f64>,
    /// alt-text: the share of descriptions written within 125 characters, not cut to fit.
    pub alt_text_compliance: Option<f64>,
    pub recall_at_1: Option<f64>,
    pub recall_at_5: Option<f64>,
    pub mrr: Option<f64>,
    /// Search recall of the searches in each language, for golden lines that say theirs.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub recall_by_lang: BTreeMap<String, LangRecall>,
    /// Words of the golden speech heard wrong (substituted, left out or added), per word said.
    pub speech_word_error_rate: Option<f64>,
    /// Searches for what was said, among the speech segments, that find it first / in the top 5.
    pub speech_recall_at_1: Option<f64>,
    pub speech_recall_at_5: Option<f64>,
    /// Pictures and frames captioned, golden and indexed for the searches.
    pub frames: u64,
    /// Golden pictures whose captioning failed (left out of the caption scores).
    pub failed: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub tokens_per_1000: Option<f64>,
    pub cost_per_1000: Option<f64>,
}

/// A share, or None when there was nothing to count.
fn share(hits: usize, of: usize) -> Option<f64> {
    (of > 0).then(|| round(hits as f64 / of as f64))
}

fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// The lower-case words of a text, letters and digits only.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Whether `phrase` appears in `text` as whole words, case aside ("red" is not in "reddish").
pub fn contains_words(text: &str, phrase: &str) -> bool {
    let (text, phrase) = (words(text), words(phrase));
    !phrase.is_empty() && text.windows(phrase.len()).any(|w| w == phrase.as_slice())
}

/// Scores captions against their cases; `captions` is in the order of `cases`.
pub fn score_captions(
    cases: &[PictureCase],
    captions: &[Result<Caption, CaptionError>],
    style: Style,
) -> Scores {
    let answered: Vec<(&PictureCase, &Caption)> = cases
        .iter()
        .zip(captions)
        .filter_map(|(case, caption)| caption.as_ref().ok().map(|c| (case, c)))
        .collect();
    let kind = |k: Kind| answered.iter().filter(|(_, c)| c.kind == k).count();
    let (mut found, mut must) = (0, 0);
    let (mut invented, mut checked) = (0, 0);
    let (mut right, mut fields) = (0, 0);
    for (case, caption) in &answered {
        must += case.must.len();
        found += case
            .must
            .iter()
            .filter(|w| contains_words(&caption.text, w))
            .count();
        if !case.must_not.is_empty() {
            checked += 1;
            invented += usize::from(
                case.must_not
                    .iter()
                    .any(|w| contains_words(&caption.text, w)),
            );
        }
        for (field, wanted) in case.moderation.iter().flatten() {
            fields += 1;
            right +=
                usize::from(moderation_field(caption, field).is_some_and(|got| same(&got, wanted)));
        }
    }
    let descriptions: Vec<&Caption> = answered
        .iter()
        .map(|(_, c)| *c)
        .filter(|c| c.kind == Kind::Description)
        .collect();
    Scores {
        keyword_recall: share(found, must),
        hallucination_rate: share(invented, checked),
        decorative_rate: share(kind(Kind::Decorative), answered.len()),
        uncertain_rate: share(kind(Kind::Uncertain), answered.len()),
        // Only the moderation style gives fields; in another one there is nothing to measure.
        moderation_accuracy: match style {
            Style::Moderation => share(right, fields),
            _ => None,
        },
        alt_text_compliance: match style {
            Style::AltText => share(
                descriptions
                    .iter()
                    .filter(|c| !c.text.ends_with('…'))
                    .count(),
                descriptions.len(),
            ),
            _ => None,
        },
        failed: (captions.len() - answered.len()) as u64,
        ..Scores::default()
    }
}

fn moderation_field(caption: &Caption, field: &str) -> Option<Value> {
    let moderation = serde_json::to_value(caption.moderation.as_ref()?).ok()?;
    moderation.get(field).cloned()
}

/// Equal values; text compared without case or surrounding space.
fn same(got: &Value, wanted: &Value) -> bool {
    match (got, wanted) {
        (Value::String(a), Value::String(b)) => a.trim().eq_ignore_ascii_case(b.trim()),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => got == wanted,
    }
}

/// Whether a hit covers a positive length of the golden stretch (or, for a golden moment,
/// holds it, as a segment holds the moments from its start up to its end): one that only
/// touches it at an end is another segment.
fn overlaps(hit: (f64, f64), golden: (f64, f64)) -> bool {
    match golden.0 == golden.1 {
        true => hit.0 <= golden.0 && golden.0 < hit.1,
        false => hit.1.min(golden.1) > hit.0.max(golden.0),
    }
}

/// Where each search's right stretch ranked (1 is first), None when it is not in the hits.
/// `hits` holds, per search, the (video, start, end) of its hits, best first.
pub fn score_searches(cases: &[SearchCase], hits: &[Vec<(PathBuf, f64, f64)>]) -> Scores {
    let ranks: Vec<Option<usize>> = cases
        .iter()
        .zip(hits)
        .map(|(case, hits)| {
            hits.iter()
                .position(|(video, start, end)| {
                    same_file(video, &case.video)
                        && overlaps((*start, *end), (case.start, case.end))
                })
                .map(|i| i + 1)
        })
        .collect();
    let within = |n: usize| ranks.iter().filter(|r| r.is_some_and(|r| r <= n)).count();
    let reciprocal: f64 = ranks.iter().flatten().map(|&r| 1.0 / r as f64).sum();
    // Per language: searches, found first, found in the top 5.
    let mut counts: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    for (case, rank) in cases.iter().zip(&ranks) {
        if let Some(lang) = &case.lang {
            let count = counts.entry(lang).or_default();
            count.0 += 1;
            count.1 += usize::from(rank.is_some_and(|r| r <= 1));
            count.2 += usize::from(rank.is_some_and(|r| r <= 5));
        }
    }
    let recall_by_lang = counts
        .into_iter()
        .map(|(lang, (searches, first, top5))| {
            let recall = LangRecall {
                searches,
                recall_at_1: share(first, searches),
                recall_at_5: share(top5, searches),
            };
            (lang.to_string(), recall)
        })
        .collect();
    Scores {
        recall_at_1: share(within(1), cases.len()),
        recall_at_5: share(within(5), cases.len()),
        mrr: (!cases.is_empty()).then(|| round(reciprocal / cases.len() as f64)),
        recall_by_lang,
        ..Scores::default()
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b
        || std::fs::canonicalize(a)
            .ok()
            .is_some_and(|a| std::fs::canonicalize(b).is_ok_and(|b| a == b))
}

/// Tokens and cost per 1,000 frames, from what was spent on `frames`.
pub fn spending(scores: &mut Scores, frames: u64, usage: Usage, price: Option<Price>) {
    scores.frames = frames;
    scores.input_tokens = usage.input_tokens;
    scores.output_tokens = usage.output_tokens;
    let per_1000 = |x: f64| (frames > 0).then(|| (x / frames as f64 * 1000.0 * 1e6).round() / 1e6);
    scores.tokens_per_1000 = per_1000((usage.input_tokens + usage.output_tokens) as f64);
    scores.cost_per_1000 = price.and_then(|p| per_1000(cost::dollars(usage, p)));
}

/// The golden pictures, prepared as they would be sent.
pub fn pictures(cases: &[PictureCase], settings: Picture) -> Result<Vec<Encoded>, EvalError> {
    cases
        .iter()
        .map(|case| {
            let (path, image) = match &case.source {
                Source::Image(path) => (
                    path,
                    image::open(path)
                        .map(|i| i.to_rgb8())
                        .map_err(|e| e.to_string()),
                ),
                Source::Frame { video, time } => (
                    video,
                    crate::decode::image_at_side(video, *time, settings.max_side),
                ),
            };
            if !path.is_file() {
                return Err(EvalError::Missing(path.clone()));
            }
            let image = image.map_err(|why| EvalError::Picture(path.clone(), why))?;
            encode(&image, settings).map_err(|e| EvalError::Picture(path.clone(), e.to_string()))
        })
        .collect()
}

/// One configuration scored, and the first golden picture that could not be captioned.
pub struct Evaluated {
    pub scores: Scores,
    pub first_failure: Option<String>,
}

/// Scores one configuration: the pipeline's captioner, prompt, style, language and sampling,
/// priced at `price`. The cache is the pipeline's (none, unless the user asked for one).
pub fn evaluate(
    golden: &Golden,
    pipeline: &crate::index::Pipeline,
    made_by: &crate::index::run::Provenance,
    price: Option<Price>,
) -> Result<Evaluated, EvalError> {
    if !golden.speech.is_empty() && pipeline.hearing.is_none() {
        return Err(EvalError::Speech(
            "speech is off, or its model is not installed (run scripts/setup.sh)".into(),
        ));
    }
    let pictures = pictures(&golden.pictures, pipeline.picture)?;
    let (outcomes, totals) = caption_all(
        &pictures,
        pipeline.captioner,
        pipeline.settings,
        pipeline.cache,
        &|| {},
    );
    if crate::stop::requested() {
        return Err(EvalError::Interrupted);
    }
    let captions: Vec<Result<Caption, CaptionError>> =
        outcomes.into_iter().map(|o| o.caption).collect();
    let first_failure = golden
        .pictures
        .iter()
        .zip(&captions)
        .find_map(|(case, c)| c.as_ref().err().map(|e| format!("{}: {e}", case.source)));
    let captioned = score_captions(&golden.pictures, &captions, pipeline.settings.style);
    // The searches' index, its thumbnails and the transcripts are throw-away; a video heard for
    // its word error rate is not heard again when it is indexed.
    let dir = tempfile::tempdir().map_err(|source| EvalError::Read {
        path: std::env::temp_dir(),
        source,
    })?;
    let transcripts = Transcripts::open(&dir.path().join("transcripts"));
    let hearing = pipeline.hearing.map(|h| Hearing {
        transcripts: Some(&transcripts),
        ..h
    });
    let pipeline = crate::index::Pipeline {
        thumbs: crate::index::thumbs::Thumbs::new(dir.path().join("thumbs")),
        hearing,
        ..pipeline.clone()
    };
    let speech_word_error_rate = match &hearing {
        Some(hearing) => word_error_rate(&golden.speech, hearing)?,
        None => None,
    };
    let (searched, mut usage, indexed) = search_cases(golden, &pipeline, made_by, dir.path())?;
    usage += totals.usage;
    let mut scores = Scores {
        recall_at_1: searched.recall_at_1,
        recall_at_5: searched.recall_at_5,
        mrr: searched.mrr,
        recall_by_lang: searched.recall_by_lang,
        speech_word_error_rate,
        speech_recall_at_1: searched.speech_recall_at_1,
        speech_recall_at_5: searched.speech_recall_at_5,
        ..captioned
    };
    spending(&mut scores, pictures.len() as u64 + indexed, usage, price);
    Ok(Evaluated {
        scores,
        first_failure,
    })
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Source::Image(path) => write!(f, "{}", path.display()),
            Source::Frame { video, time } => write!(f, "{} at {time} s", video.display()),
        }
    }
}

/// The hits of a search, as (video, start, end), for `score_searches`.
pub fn hit_spans(found: &[crate::search::Found]) -> Vec<(PathBuf, f64, f64)> {
    found
        .iter()
        .map(|f| {
            let at = |k: &str| {
                f.hit
                    .payload
                    .get(k)
                    .and_then(Value::as_f64)
                    .unwrap_or(f64::NAN)
            };
            (f.place.os_path(), at("start"), at("end"))
        })
        .collect()
}

/// The word error rate of what is heard in each case's stretch (give or take half a second)
/// against what was said there, over all the cases' words.
fn word_error_rate(cases: &[SpeechCase], hearing: &Hearing) -> Result<Option<f64>, EvalError> {
    let mut heard: Vec<(&Path, Vec<crate::speech::Utterance>)> = Vec::new();
    let (mut errors, mut said) = (0, 0);
    for case in cases {
        if !heard.iter().any(|(video, _)| *video == case.video) {
            let listened = hearing
                .hear(&case.video, &|| !crate::stop::requested())
                .map_err(|e| match e {
                    crate::speech::SpeechError::Interrupted => EvalError::Interrupted,
                    e => EvalError::Picture(case.video.clone(), e.to_string()),
                })?;
            heard.push((&case.video, listened.heard.utterances));
        }
        let utterances = &heard
            .iter()
            .find(|(v, _)| *v == case.video)
            .expect("heard")
            .1;
        let hypothesis: Vec<String> = utterances
            .iter()
            .filter(|u| u.end > case.start - 0.5 && u.start < case.end + 0.5)
            .flat_map(|u| words(&u.text))
            .collect();
        let reference = words(&case.said);
        errors += strsim::generic_levenshtein(&reference, &hypothesis);
        said += reference.len();
    }
    Ok((said > 0).then(|| round(errors as f64 / said as f64)))
}

/// Indexes the golden videos into a throw-away embedded index in `dir` and runs the searches
/// on it, and the searches for what was said among its speech segments. Returns their scores,
/// and what indexing cost.
pub fn search_cases(
    golden: &Golden,
    pipeline: &crate::index::Pipeline,
    made_by: &crate::index::run::Provenance,
    dir: &Path,
) -> Result<(Scores, Usage, u64), EvalError> {
    use crate::index::run::{self, Context, Observer, Outcome};
    if golden.searches.is_empty() && golden.speech.is_empty() {
        return Ok((Scores::default(), Usage::default(), 0));
    }
    let embedder = pipeline.embedder;
    let store = crate::store::EdgeStore::open(
        &dir.join("index"),
        Some((embedder.model(), embedder.dimension())),
        true,
    )
    .map_err(|e| EvalError::Index(e.to_string()))?;
    struct Failures(std::sync::Mutex<Vec<String>>);
    impl Observer for Failures {
        fn outcome(&self, outcome: &Outcome) {
            use crate::index::run::Failure;
            let why = match outcome.failure {
                None | Some(Failure::Partial(_) | Failure::Unheard(_)) => return,
                Some(Failure::File(e)) => e.to_string(),
                Some(Failure::Missing(why)) => why.clone(),
                Some(Failure::Unreadable(e) | Failure::Unchecked(e)) => e.to_string(),
                Some(Failure::Refused(_)) => "refused".into(),
            };
            let line = format!("{}: {why}", outcome.path.display());
            self.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
        fn warning(&self, _: &str) {}
    }
    let failures = Failures(Default::default());
    let settings = run::Settings {
        jobs: 2,
        rules: crate::index::plan::Rules {
            keep_missing: true,
            ..Default::default()
        },
        lease: std::time::Duration::from_secs(60),
        host: "eval".into(),
    };
    let cx = Context {
        store: &store,
        pipeline: &pipeline,
        made_by,
        settings: &settings,
        observer: &failures,
        batching: None,
    };
    let found = crate::decode::find::find_videos(&golden.search_videos());
    let summary = run::run(&found, &cx).map_err(|e| EvalError::Index(e.to_string()))?;
    if let Some(first) = failures
        .0
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .first()
    {
        return Err(EvalError::Index(first.clone()));
    }
    let search = |query: &str, filter: Vec<crate::store::Condition>| {
        let request = crate::search::Request {
            query: query.to_string(),
            limit: 10,
            per_file: None,
            min_similarity: None,
            path: None,
            filter,
        };
        crate::search::search(&store, embedder, &request, "eval")
            .map(|answer| hit_spans(&answer.hits))
            .map_err(|e| EvalError::Index(format!("{query:?}: {e}")))
    };
    let hits = golden
        .searches
        .iter()
        .map(|case| search(&case.query, Vec::new()))
        .collect::<Result<Vec<_>, _>>()?;
    let spoken = Value::String("speech".into());
    let said: Vec<SearchCase> = golden
        .speech
        .iter()
        .map(|case| SearchCase {
            query: case.said.clone(),
            video: case.video.clone(),
            start: case.start,
            end: case.end,
            lang: None,
        })
        .collect();
    let said_hits = said
        .iter()
        .map(|case| {
            search(
                &case.query,
                vec![Condition::Equals("kind".into(), spoken.clone())],
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let speech = score_searches(&said, &said_hits);
    Ok((
        Scores {
            speech_recall_at_1: speech.recall_at_1,
            speech_recall_at_5: speech.recall_at_5,
            ..score_searches(&golden.searches, &hits)
        },
        summary.usage,
        summary.frames_captioned,
    ))
}

/// Configuration fields in a table's first column, in order.
pub const ROWS: &[&str] = &[
    "keyword_recall",
    "hallucination_rate",
    "decorative_rate",
    "uncertain_rate",
    "moderation_accuracy",
    "alt_text_compliance",
    "recall_at_1",
    "recall_at_5",
    "mrr",
    "speech_word_error_rate",
    "speech_recall_at_1",
    "speech_recall_at_5",
    "frames",
    "failed",
    "tokens_per_1000",
    "cost_per_1000",
];

/// A score by its name, as `--json` writes it.
pub fn field(scores: &Scores, name: &str) -> Value {
    let value = serde_json::to_value(scores).expect("scores serialize");
    value.get(name).cloned().unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caption(text: &str, kind: Kind) -> Result<Caption, CaptionError> {
        Ok(Caption {
            text: text.into(),
            kind,
            moderation: None,
            backend: "b".into(),
            model: "m".into(),
            prompt: "p@1".into(),
            lang: None,
            usage: Usage::default(),
        })
    }

    fn case(must: &[&str], must_not: &[&str]) -> PictureCase {
        PictureCase {
            source: Source::Image("a.jpg".into()),
            must: must.iter().map(|s| s.to_string()).collect(),
            must_not: must_not.iter().map(|s| s.to_string()).collect(),
            moderation: None,
        }
    }

    #[test]
    fn words_match_whole_and_without_case() {
        assert!(contains_words("A Dog jumps.", "dog"));
        assert!(contains_words("a white square on red", "white square"));
        assert!(!contains_words("a reddish wall", "red"));
        assert!(!contains_words("square white", "white square"));
        assert!(!contains_words("anything", ""));
    }

    #[test]
    fn caption_scores_count_words_inventions_and_kinds() {
        let cases = [
            case(&["dog", "pool"], &["cat"]),
            case(&["red"], &[]),
            case(&["x"], &["y"]),
        ];
        let captions = [
            caption("A dog by a cat.", Kind::Description),
            caption("", Kind::Uncertain),
            Err(CaptionError::NotBatched),
        ];
        let s = score_captions(&cases, &captions, Style::Search);
        assert_eq!(s.keyword_recall, Some(round(1.0 / 3.0)));
        assert_eq!(s.hallucination_rate, Some(1.0));
        assert_eq!(s.uncertain_rate, Some(0.5));
        assert_eq!(s.decorative_rate, Some(0.0));
        assert_eq!(s.failed, 1);
        assert_eq!(s.moderation_accuracy, None, "nothing to measure is null");
        assert_eq!(s.alt_text_compliance, None);
    }

    #[test]
    fn search_scores_rank_the_overlapping_hit() {
        let cases = [
            SearchCase {
                query: "q".into(),
                video: "v.mp4".into(),
                start: 8.0,
                end: 12.0,
                lang: Some("de".into()),
            },
            SearchCase {
                query: "r".into(),
                video: "w.mp4".into(),
                start: 0.0,
                end: 1.0,
                lang: None,
            },
        ];
        let hits = vec![
            vec![("v.mp4".into(), 0.0, 4.0), ("v.mp4".into(), 11.0, 20.0)],
            vec![("v.mp4".into(), 0.0, 1.0)],
        ];
        let s = score_searches(&cases, &hits);
        assert_eq!(s.recall_at_1, Some(0.0));
        assert_eq!(s.recall_at_5, Some(0.5));
        assert_eq!(s.mrr, Some(0.25));
        assert_eq!(score_searches(&[], &[]).mrr, None);
        // Issue 23: recall per query language, for the searches that say theirs.
        let german = LangRecall {
            searches: 1,
            recall_at_1: Some(0.0),
            recall_at_5: Some(1.0),
        };
        assert_eq!(s.recall_by_lang.get("de"), Some(&german));
        assert_eq!(s.recall_by_lang.len(), 1);
    }

    #[test]
    fn issue25_a_hit_that_only_touches_the_golden_stretch_at_one_instant_is_wrong() {
        let case = |start, end| SearchCase {
            query: "q".into(),
            video: "v.mp4".into(),
            start,
            end,
            lang: None,
        };
        let touching = vec![vec![("v.mp4".into(), 0.0, 2.0), ("v.mp4".into(), 2.0, 4.0)]];
        let s = score_searches(&[case(2.0, 4.0)], &touching);
        assert_eq!(s.mrr, Some(0.5), "[0,2] touches [2,4] only at 2 s");
        let s = score_searches(&[case(2.0, 2.0)], &touching);
        assert_eq!(s.mrr, Some(0.5), "the moment 2 s is in [2,4), not in [0,2)");
        let s = score_searches(&[case(1.5, 2.5)], &touching);
        assert_eq!(s.mrr, Some(1.0));
    }
}
