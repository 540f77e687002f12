//! caption: turn kept frames into text with a vision-language model, paying for each picture
//! once (the cache) and recording what made every caption (backend, model, prompt@version).

mod anthropic;
pub mod batch;
pub mod cache;
pub mod cost;
pub mod http;
mod openai;
pub mod prompt;
pub mod run;
pub mod tagger;

use std::time::Duration;

use image::RgbImage;
use serde::{Deserialize, Serialize};

pub use anthropic::Anthropic;
pub use http::{HttpSettings, Secret};
pub use openai::{Detail, OpenAi};
pub use prompt::{Prompt, Style};
pub use run::Settings;
pub use tagger::Tagger;

/// A captioning backend. Adding one (Gemini's native API, a local model) is a new file that
/// implements this, and nothing else changes.
pub trait Captioner: Send + Sync {
    /// Short backend name recorded with every caption: `openai`, `anthropic`, `tagger`.
    fn backend(&self) -> &str;
    fn model(&self) -> &str;
    /// Captions one picture; `request.jpeg` is already scaled and encoded.
    fn caption(&self, request: &Request) -> Result<Reply, CaptionError>;
    /// What is known of the input tokens one picture of this size costs on this backend.
    fn image_tokens(&self, width: u32, height: u32) -> u64;
    /// Whether replies are keywords from a classifier rather than a model's description.
    fn makes_tags(&self) -> bool {
        false
    }
    /// Whether the backend waits on the network rather than computing: then its requests are
    /// futures on the shared runtime (`caption_future`), hundreds in flight without a thread
    /// each; a backend that computes (the tagger) gets threads instead.
    fn waits_on_network(&self) -> bool {
        false
    }
    /// `caption` as a future; backends that wait on the network implement it.
    fn caption_future<'a>(&'a self, request: Request<'a>) -> BoxFuture<'a> {
        Box::pin(std::future::ready(self.caption(&request)))
    }
}

/// A caption request in flight.
pub type BoxFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Reply, CaptionError>> + Send + 'a>>;

/// One picture to caption, with the prompt and language to use.
#[derive(Clone, Copy)]
pub struct Request<'a> {
    pub jpeg: &'a [u8],
    pub width: u32,
    pub height: u32,
    pub prompt: &'a Prompt,
    pub lang: Option<&'a str>,
}

/// What a backend answered, before it is read.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub text: String,
    pub usage: Usage,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
    }
}

/// What a caption is, so that nothing made up reaches the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A description, searchable.
    Description,
    /// Keywords from a local classifier, not a description.
    Tags,
    /// The model said the picture carries no information.
    Decorative,
    /// The model said it could not tell what the picture shows.
    Uncertain,
    /// What is said, heard by a speech model: the segment's words are a transcript.
    Speech,
}

impl Kind {
    /// Whether a caption of this kind may be shown in search results.
    pub fn searchable(self) -> bool {
        matches!(self, Kind::Description | Kind::Tags | Kind::Speech)
    }
}

/// The structured answer of the moderation style.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Moderation {
    pub contains_people: bool,
    pub people_count: u32,
    pub contains_text: bool,
    pub visible_text: String,
    pub setting: String,
    pub uncertain: bool,
}

/// A caption as stored: the text and everything needed to know where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Caption {
    pub text: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub moderation: Option<Moderation>,
    pub backend: String,
    pub model: String,
    /// `id@version` of the prompt.
    pub prompt: String,
    pub lang: Option<String>,
    pub usage: Usage,
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum CaptionError {
    #[error("{backend}: HTTP {status}: {message}")]
    Status {
        backend: String,
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    #[error("{backend}: no answer within {seconds} s")]
    Timeout { backend: String, seconds: u64 },
    #[error("{backend}: cannot reach {url}: {detail}")]
    Unreachable {
        backend: String,
        url: String,
        detail: String,
    },
    #[error("{backend}: unreadable answer: {detail}")]
    BadReply { backend: String, detail: String },
    #[error("{backend}: the answer is not the JSON the {style} style asks for: {detail}")]
    BadJson {
        backend: String,
        style: String,
        detail: String,
    },
    #[error("cannot encode the picture: {0}")]
    Encode(String),
    #[error("no batch answered it (run again to send it in a new batch, or add --batch-fallback sync to ask for it now, at the full price)")]
    NotBatched,
    #[error("cannot keep the record of batches in {0}")]
    Ledger(String),
    #[error("interrupted")]
    Interrupted,
    #[error("this indexer no longer holds its claim on the file (it stalled past its lease), so nothing more is asked for it")]
    LeaseLost,
}

impl CaptionError {
    /// 429, 5xx, time-outs and broken connections or bodies may pass; other answers will not.
    pub fn is_transient(&self) -> bool {
        match self {
            CaptionError::Status { status, .. } => *status == 429 || *status >= 500,
            CaptionError::Timeout { .. }
            | CaptionError::Unreachable { .. }
            | CaptionError::BadReply { .. } => true,
            CaptionError::BadJson { .. }
            | CaptionError::Encode(_)
            | CaptionError::Ledger(_)
            | CaptionError::NotBatched
            | CaptionError::Interrupted
            | CaptionError::LeaseLost => false,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            CaptionError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// How pictures are prepared before they are sent.
#[derive(Clone, Copy, Debug)]
pub struct Picture {
    pub max_side: u32,
    pub quality: u8,
}

impl Default for Picture {
    fn default() -> Self {
        Picture {
            max_side: 512,
            quality: 80,
        }
    }
}

/// A picture scaled to `max_side` and encoded as JPEG: the exact bytes sent and cached.
pub struct Encoded {
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

pub fn encode(image: &RgbImage, settings: Picture) -> Result<Encoded, CaptionError> {
    let (w, h) = image.dimensions();
    let scale = (f64::from(settings.max_side) / f64::from(w.max(h))).min(1.0);
    let width = ((f64::from(w) * scale).round() as u32).max(1);
    let height = ((f64::from(h) * scale).round() as u32).max(1);
    let scaled;
    let source = if (width, height) == (w, h) {
        image
    } else {
        scaled =
            image::imageops::resize(image, width, height, image::imageops::FilterType::Triangle);
        &scaled
    };
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, settings.quality)
        .encode_image(source)
        .map_err(|e| CaptionError::Encode(e.to_string()))?;
    Ok(Encoded {
        jpeg,
        width,
        height,
    })
}

/// Reads a reply as the style asks: markers, the alt-text length, the moderation object.
pub fn read_reply(
    style: Style,
    text: &str,
    backend: &str,
) -> Result<(String, Kind, Option<Moderation>), CaptionError> {
    let text = text.trim();
    let marker = text
        .trim_matches(|c: char| c == '.' || c == '"' || c == '*')
        .to_uppercase();
    if marker == "UNCERTAIN" {
        return Ok((String::new(), Kind::Uncertain, None));
    }
    if marker == "DECORATIVE" && style == Style::AltText {
        return Ok((String::new(), Kind::Decorative, None));
    }
    match style {
        Style::Moderation => read_moderation(text, backend),
        Style::AltText => Ok((shorten(text, 125), Kind::Description, None)),
        Style::Search | Style::Description => Ok((text.to_string(), Kind::Description, None)),
    }
}

fn read_moderation(
    text: &str,
    backend: &str,
) -> Result<(String, Kind, Option<Moderation>), CaptionError> {
    let body = text
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    let moderation: Moderation = serde_json::from_str(body).map_err(|e| CaptionError::BadJson {
        backend: backend.to_string(),
        style: "moderation".into(),
        detail: e.to_string(),
    })?;
    // An uncertain answer's fields are guesses: like any uncertain caption, it has no text.
    if moderation.uncertain {
        return Ok((String::new(), Kind::Uncertain, None));
    }
    let summary = moderation_summary(&moderation);
    Ok((summary, Kind::Description, Some(moderation)))
}

/// A sentence for people and for search, made only from the fields the model filled in.
fn moderation_summary(m: &Moderation) -> String {
    let people = match (m.contains_people, m.people_count) {
        (false, _) => "no people".to_string(),
        (true, 1) => "1 person".to_string(),
        (true, n) => format!("{n} people"),
    };
    let text = if m.contains_text && !m.visible_text.is_empty() {
        format!("; text: \"{}\"", m.visible_text)
    } else {
        String::new()
    };
    format!("{}; {people}{text}", m.setting)
}

/// At most `limit` characters, cut at a word boundary: alt text has a hard length.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let cut: String = text.chars().take(limit - 1).collect();
    let at_word = cut
        .rfind(char::is_whitespace)
        .map_or(cut.as_str(), |i| &cut[..i]);
    format!("{}…", at_word.trim_end_matches([',', ';', ':', ' ']))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_read_whatever_their_punctuation() {
        assert_eq!(
            read_reply(Style::Search, " UNCERTAIN.\n", "t").unwrap().1,
            Kind::Uncertain
        );
        assert_eq!(
            read_reply(Style::AltText, "\"DECORATIVE\"", "t").unwrap().1,
            Kind::Decorative
        );
        // DECORATIVE means something only where the prompt offers it.
        assert_eq!(
            read_reply(Style::Search, "decorative", "t").unwrap().1,
            Kind::Description
        );
    }

    #[test]
    fn alt_text_is_cut_to_125_characters_at_a_word() {
        let long = "A red bicycle leans against a brick wall beside a green door, with a cat asleep on the step and a sign reading OPEN above the window frame";
        let (text, kind, _) = read_reply(Style::AltText, long, "t").unwrap();
        assert_eq!(kind, Kind::Description);
        assert!(text.chars().count() <= 125, "{text}");
        assert!(text.ends_with('…') && !text.contains("window"), "{text}");
    }

    #[test]
    fn moderation_json_is_parsed_with_or_without_fences() {
        let json = r#"```json
{"contains_people": true, "people_count": 2, "contains_text": true, "visible_text": "EXIT",
 "setting": "office corridor", "uncertain": false}
```"#;
        let (text, kind, moderation) = read_reply(Style::Moderation, json, "t").unwrap();
        assert_eq!(kind, Kind::Description);
        assert_eq!(moderation.unwrap().people_count, 2);
        assert_eq!(text, "office corridor; 2 people; text: \"EXIT\"");
    }

    #[test]
    fn moderation_with_missing_or_extra_fields_is_an_error() {
        let missing = r#"{"contains_people": true}"#;
        assert!(matches!(
            read_reply(Style::Moderation, missing, "t"),
            Err(CaptionError::BadJson { .. })
        ));
        let prose = "There are two people.";
        assert!(matches!(
            read_reply(Style::Moderation, prose, "t"),
            Err(CaptionError::BadJson { .. })
        ));
    }

    #[test]
    fn uncertain_moderation_answer_keeps_no_text() {
        let json = r#"{"contains_people": false, "people_count": 0, "contains_text": false, "visible_text": "", "setting": "dark", "uncertain": true}"#;
        let (text, kind, moderation) = read_reply(Style::Moderation, json, "t").unwrap();
        assert!(!kind.searchable());
        assert_eq!(
            (text.as_str(), kind, moderation),
            ("", Kind::Uncertain, None)
        );
    }

    #[test]
    fn pictures_are_scaled_to_the_longest_side_and_never_up() {
        let big = RgbImage::new(1024, 576);
        let e = encode(&big, Picture::default()).unwrap();
        assert_eq!((e.width, e.height), (512, 288));
        let decoded = image::load_from_memory(&e.jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (512, 288));
        let small = RgbImage::new(100, 50);
        let e = encode(&small, Picture::default()).unwrap();
        assert_eq!((e.width, e.height), (100, 50));
    }
}
