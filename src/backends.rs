//! Choosing and opening the backends a command's settings ask for: the captioner (from
//! settings and the ecosystem's environment variables), the caption cache, the embedder and
//! the store. Every front end (the CLI's commands, a web page, a script) opens them here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::caption::batch::{AnthropicBatches, Batcher, OpenAiBatches};
use crate::caption::cache::Cache;
use crate::caption::{Anthropic, Captioner, Detail, HttpSettings, OpenAi, Secret, Tagger};
use crate::embed::{Embedder, MiniLm, OpenAiEmbedder, E5};
use crate::index::thumbs::Thumbs;
use crate::store::{Cluster, EdgeStore, ServerStore, Shared, StoreError, VectorStore};
// The URI type tonic, and so qdrant-client, reads addresses with.
use tonic::codegen::http::Uri;

const OPENAI_DEFAULT_URL: &str = "https://api.openai.com/v1";
const ANTHROPIC_DEFAULT_URL: &str = "https://api.anthropic.com";

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptionerChoice {
    /// OpenAI-compatible chat completions (OpenAI, Gemini, OpenRouter, Ollama, vLLM, llama.cpp, LM Studio).
    Openai,
    /// Anthropic's Messages API.
    Anthropic,
    /// A local image classifier: keywords, no network, no cost.
    Tagger,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EmbedderChoice {
    /// multilingual-e5-small (or all-MiniLM-L6-v2) on this machine: offline, free.
    Local,
    /// An OpenAI-compatible /v1/embeddings endpoint.
    Openai,
}

/// Which model captions, and how it is reached.
#[derive(Clone, Debug)]
pub struct CaptionerSettings {
    /// Without it: openai when OPENAI_API_KEY or OPENAI_BASE_URL is set, else anthropic when
    /// ANTHROPIC_API_KEY is, else the tagger.
    pub choice: Option<CaptionerChoice>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// The environment variable that holds the key, instead of the vendor's usual one.
    pub api_key_env: Option<String>,
    pub detail: Detail,
    pub http: HttpSettings,
    /// Only estimates are wanted (a dry run): nothing is sent, so no key is needed.
    pub estimate_only: bool,
    /// Most requests in one batch, below the provider's own limit.
    pub batch_size: Option<usize>,
}

/// Where the index lives and which model turns text into its vectors.
#[derive(Clone, Debug)]
pub struct StoreSettings {
    /// The embedded index's folder [default: ~/.local/share/scenedex/index].
    pub index: Option<PathBuf>,
    /// Without it: the model that built the index, else the local default.
    pub embedder: Option<EmbedderChoice>,
    pub embedding_model: Option<String>,
    pub embedding_url: Option<String>,
    /// A Qdrant server's or cluster's nodes; empty for the embedded index.
    pub qdrant_urls: Vec<String>,
    pub collection: String,
    /// How a collection that scenedex creates is spread over a cluster.
    pub cluster: Cluster,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Settings missing or contradictory (no key, no weights).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Service(String),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The environment variables the ecosystem uses, read once so tests can set their own.
#[derive(Default)]
pub struct Env {
    pub openai_key: Option<String>,
    pub openai_base: Option<String>,
    pub anthropic_key: Option<String>,
    pub anthropic_base: Option<String>,
}

impl Env {
    pub fn from_process() -> Env {
        Env {
            openai_key: var("OPENAI_API_KEY"),
            openai_base: var("OPENAI_BASE_URL"),
            anthropic_key: var("ANTHROPIC_API_KEY"),
            anthropic_base: var("ANTHROPIC_BASE_URL"),
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A captioner and what is needed to price it.
pub struct Chosen {
    pub captioner: Arc<dyn Captioner>,
    /// The same backend's batch API, when it has one.
    pub batcher: Option<Arc<dyn Batcher>>,
    pub base_url: String,
    pub detail: String,
    /// Said once to the user: which settings would give descriptions instead of keywords.
    pub note: Option<String>,
}

pub fn captioner(settings: &CaptionerSettings, env: &Env) -> Result<Chosen, SetupError> {
    let choice = settings.choice.or_else(|| {
        if env.openai_key.is_some() || env.openai_base.is_some() {
            Some(CaptionerChoice::Openai)
        } else if env.anthropic_key.is_some() {
            Some(CaptionerChoice::Anthropic)
        } else {
            None
        }
    });
    let key_from = |default: Option<&String>| match &settings.api_key_env {
        Some(name) => var(name),
        None => default.cloned(),
    };
    let key_name = |vendor: &str| {
        settings
            .api_key_env
            .clone()
            .unwrap_or_else(|| vendor.to_string())
    };
    match choice {
        Some(CaptionerChoice::Openai) => {
            let base_url = settings
                .base_url
                .clone()
                .or_else(|| env.openai_base.clone())
                .unwrap_or(OPENAI_DEFAULT_URL.into());
            let key = key_from(env.openai_key.as_ref());
            if key.is_none() && base_url == OPENAI_DEFAULT_URL && !settings.estimate_only {
                return Err(SetupError::Config(format!(
                    "{} is not set: give an OpenAI API key, or point OPENAI_BASE_URL at a local server",
                    key_name("OPENAI_API_KEY")
                )));
            }
            let model = settings.model.clone().unwrap_or("gpt-4o-mini".into());
            let openai = Arc::new(OpenAi::new(
                &base_url,
                &model,
                key.map(Secret::new),
                settings.detail,
                settings.http,
            ));
            Ok(Chosen {
                captioner: openai.clone(),
                batcher: Some(Arc::new(OpenAiBatches::new(openai, settings.batch_size))),
                base_url,
                detail: format!("{:?}", settings.detail).to_lowercase(),
                note: None,
            })
        }
        Some(CaptionerChoice::Anthropic) => {
            let base_url = settings
                .base_url
                .clone()
                .or_else(|| env.anthropic_base.clone())
                .unwrap_or(ANTHROPIC_DEFAULT_URL.into());
            let key = match key_from(env.anthropic_key.as_ref()) {
                Some(key) => key,
                None if settings.estimate_only => String::new(),
                None => {
                    return Err(SetupError::Config(format!(
                        "{} is not set: the Anthropic backend needs an API key",
                        key_name("ANTHROPIC_API_KEY")
                    )))
                }
            };
            let model = settings.model.clone().unwrap_or("claude-haiku-4-5".into());
            let anthropic = Arc::new(Anthropic::new(&base_url, &model, Secret::new(key), settings.http));
            Ok(Chosen {
                captioner: anthropic.clone(),
                batcher: Some(Arc::new(AnthropicBatches::new(anthropic, settings.batch_size))),
                base_url,
                detail: String::new(),
                note: None,
            })
        }
        Some(CaptionerChoice::Tagger) => tagger(None),
        None => tagger(Some(
            "captioning with the offline tagger (keywords only); for descriptions set OPENAI_API_KEY, \
             or OPENAI_BASE_URL for a local server (Ollama: http://localhost:11434/v1), or ANTHROPIC_API_KEY"
                .into(),
        )),
    }
}

fn tagger(note: Option<String>) -> Result<Chosen, SetupError> {
    let dir = Tagger::default_dir().ok_or_else(|| {
        SetupError::Config(
            "no data directory for the offline tagger: set SCENEDEX_TAGGER_DIR".into(),
        )
    })?;
    let tagger = Tagger::load(&dir).map_err(|e| SetupError::Config(e.to_string()))?;
    Ok(Chosen {
        captioner: Arc::new(tagger),
        batcher: None,
        base_url: "local".into(),
        detail: String::new(),
        note,
    })
}

/// The caption cache: `dir`, or the user's cache folder; none when `disabled`.
pub fn cache(dir: Option<&Path>, disabled: bool) -> Result<Option<Cache>, SetupError> {
    let Some(dir) = cache_dir(dir, disabled) else {
        return Ok(None);
    };
    Cache::open(&dir)
        .map(Some)
        .map_err(|source| SetupError::Write { path: dir, source })
}

/// The caption cache for a dry run: looked up, never created.
pub fn cache_lookup(dir: Option<&Path>, disabled: bool) -> Option<Cache> {
    cache_dir(dir, disabled).map(|dir| Cache::lookup_only(&dir))
}

/// The caption cache's folder: the one asked for, else the default; none when disabled.
fn cache_dir(dir: Option<&Path>, disabled: bool) -> Option<PathBuf> {
    match disabled {
        true => None,
        false => dir.map(Path::to_path_buf).or_else(Cache::default_dir),
    }
}

/// The embedder asked for; without a choice, the one that built the index (an upgrade never
/// strands an index built with an older default), else multilingual-e5-small.
pub fn embedder(settings: &StoreSettings) -> Result<Arc<dyn Embedder>, SetupError> {
    let built = match &settings.embedding_model {
        None => settings.built_with(),
        Some(_) => None,
    };
    chosen(settings, built)
}

/// The embedder asked for, for an index about to be made (eval's throw-away one): never the
/// model of the index the settings would otherwise point at.
pub fn fresh_embedder(settings: &StoreSettings) -> Result<Arc<dyn Embedder>, SetupError> {
    chosen(settings, None)
}

fn chosen(
    settings: &StoreSettings,
    built: Option<String>,
) -> Result<Arc<dyn Embedder>, SetupError> {
    let model = settings.embedding_model.clone();
    let local = |name: &String| local_name(name).is_some();
    let choice = settings
        .embedder
        .unwrap_or(match model.as_ref().or(built.as_ref()) {
            Some(name) if !local(name) => EmbedderChoice::Openai,
            _ => EmbedderChoice::Local,
        });
    // The index's own model, when it is of the kind asked for.
    let model = model.or(built.filter(|name| local(name) == (choice == EmbedderChoice::Local)));
    match choice {
        EmbedderChoice::Local => local_embedder(model.as_deref()),
        EmbedderChoice::Openai => openai_embedder(settings, model),
    }
}

/// A local model's recorded name, from its name or a short one (`e5`, `minilm`).
fn local_name(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "e5" | "multilingual-e5-small" => Some(E5::NAME),
        "minilm" | "all-minilm-l6-v2" => Some(MiniLm::NAME),
        _ => None,
    }
}

fn local_embedder(model: Option<&str>) -> Result<Arc<dyn Embedder>, SetupError> {
    let name = match model {
        None => E5::NAME,
        Some(name) => local_name(name).ok_or_else(|| {
            SetupError::Config(format!(
                "no local embedding model is called {name:?}: {} or {}",
                E5::NAME,
                MiniLm::NAME
            ))
        })?,
    };
    let no_dir = |var: &str| {
        SetupError::Config(format!(
            "no data directory for the embedding model: set {var}"
        ))
    };
    let broken = |e: crate::embed::EmbedError| SetupError::Config(e.to_string());
    Ok(match name {
        E5::NAME => {
            let dir = E5::default_dir().ok_or_else(|| no_dir("SCENEDEX_E5_DIR"))?;
            Arc::new(E5::load(&dir).map_err(broken)?)
        }
        _ => {
            let dir = MiniLm::default_dir().ok_or_else(|| no_dir("SCENEDEX_MINILM_DIR"))?;
            Arc::new(MiniLm::load(&dir).map_err(broken)?)
        }
    })
}

fn openai_embedder(
    settings: &StoreSettings,
    model: Option<String>,
) -> Result<Arc<dyn Embedder>, SetupError> {
    let base = settings
        .embedding_url
        .clone()
        .or_else(|| var("OPENAI_BASE_URL"))
        .unwrap_or(OPENAI_DEFAULT_URL.into());
    let key = var("OPENAI_API_KEY");
    if key.is_none() && base == OPENAI_DEFAULT_URL {
        return Err(SetupError::Config(
            "OPENAI_API_KEY is not set: the openai embedder needs a key, or SCENEDEX_EMBEDDING_URL pointing at a local server".into(),
        ));
    }
    let model = model.unwrap_or("text-embedding-3-small".into());
    let embedder =
        OpenAiEmbedder::new(&base, &model, key.map(Secret::new), HttpSettings::default())
            .map_err(|e| SetupError::Service(e.to_string()))?;
    Ok(Arc::new(embedder))
}

impl StoreSettings {
    /// The embedded index's folder, and the folder thumbnails go under either way.
    pub fn index_dir(&self) -> Result<PathBuf, SetupError> {
        self.index
            .clone()
            .or_else(|| dirs::data_dir().map(|d| d.join("scenedex").join("index")))
            .ok_or_else(|| {
                SetupError::Config("no data directory for the index: give --index DIR".into())
            })
    }

    /// Where thumbnails go: beside the embedded index, or in the data folder for a server.
    pub fn thumbs(&self) -> Result<Thumbs, SetupError> {
        let dir = self.index_dir()?.join("thumbs");
        Ok(Thumbs::new(match self.qdrant_urls.is_empty() {
            true => dir,
            false => dir.join(&self.collection),
        }))
    }

    /// The Qdrant API key, from QDRANT_API_KEY.
    pub fn qdrant_key(&self) -> Option<Secret> {
        var("QDRANT_API_KEY").map(Secret::new)
    }

    pub fn is_server(&self) -> bool {
        !self.qdrant_urls.is_empty()
    }

    /// The index, for this embedder; created on first use when `create` is set.
    pub fn open(
        &self,
        embedder: &dyn Embedder,
        create: bool,
    ) -> Result<Box<dyn VectorStore>, SetupError> {
        self.open_for(Some((embedder.model(), embedder.dimension())), create)
    }

    /// The embedding model that built the index, when it exists and says.
    pub fn built_with(&self) -> Option<String> {
        if !self.is_server() {
            return EdgeStore::built_with(&self.index_dir().ok()?);
        }
        let key = var("QDRANT_API_KEY").map(Secret::new);
        ServerStore::built_with(&self.qdrant_urls, key.as_ref(), &self.collection)
    }

    /// The index, whatever model built it: for commands that neither add nor search.
    pub fn open_existing(&self) -> Result<Box<dyn VectorStore>, SetupError> {
        self.open_for(None, false)
    }

    /// Fails early, before any model is loaded, when the embedded index does not exist.
    pub fn check_exists(&self) -> Result<(), SetupError> {
        let dir = self.index_dir()?;
        if !self.is_server() {
            EdgeStore::must_exist(&dir)?;
        }
        Ok(())
    }

    fn open_for(
        &self,
        model: Option<(&str, usize)>,
        create: bool,
    ) -> Result<Box<dyn VectorStore>, SetupError> {
        if !self.is_server() {
            let dir = self.index_dir()?;
            return Ok(Box::new(Shared::open(&dir, model, create)?));
        }
        let key = var("QDRANT_API_KEY").map(Secret::new);
        let layout = create.then_some(self.cluster);
        let store = ServerStore::open(
            &self.qdrant_urls,
            key.as_ref(),
            &self.collection,
            model,
            layout,
        )?;
        Ok(Box::new(store))
    }

    /// A warning when the Qdrant API key would cross a network in the clear.
    pub fn key_warning(&self) -> Option<String> {
        var("QDRANT_API_KEY")?;
        let exposed: Vec<&str> = self
            .qdrant_urls
            .iter()
            .filter(|url| plain_to_another_machine(url))
            .map(String::as_str)
            .collect();
        (!exposed.is_empty()).then(|| {
            format!(
                "the Qdrant API key goes unencrypted to {}; use https:// (Qdrant's TLS) for a server on another machine",
                exposed.join(", ")
            )
        })
    }
}

/// `http://` to anything but this machine's loopback.
fn plain_to_another_machine(url: &str) -> bool {
    let Ok(uri) = url.parse::<Uri>() else {
        return false;
    };
    let host = uri
        .host()
        .unwrap_or("")
        .trim_start_matches('[')
        .trim_end_matches(']');
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    uri.scheme_str() == Some("http") && !loopback
}

/// Reads a comma-separated list of Qdrant URLs, checking each is one.
pub fn qdrant_urls(text: &str) -> Result<Vec<String>, String> {
    let urls: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err("no URL given".into());
    }
    for url in &urls {
        let valid = url
            .parse::<Uri>()
            .is_ok_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
        if !valid {
            return Err(format!(
                "'{url}' is not a Qdrant URL; give its gRPC address, such as http://localhost:6334"
            ));
        }
    }
    Ok(urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_in_the_clear_to_another_machine_is_warned_about_and_loopback_is_not() {
        for url in [
            "http://10.0.0.5:6334",
            "http://qdrant-node-1:6334",
            "http://[fd00::1]:6334",
        ] {
            assert!(plain_to_another_machine(url), "{url}");
        }
        for url in [
            "http://localhost:6334",
            "http://127.0.0.1:6334",
            "http://[::1]:6334",
            "https://q.example:6334",
        ] {
            assert!(!plain_to_another_machine(url), "{url}");
        }
    }

    #[test]
    fn several_urls_are_read_and_a_malformed_one_is_refused() {
        assert_eq!(
            qdrant_urls("http://a:6334, http://b:6334").unwrap(),
            ["http://a:6334", "http://b:6334"]
        );
        assert!(qdrant_urls("notaurl")
            .unwrap_err()
            .contains("not a Qdrant URL"));
        assert!(qdrant_urls(" , ").is_err());
    }
}

/// Whether and how files are heard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SpeechChoice {
    /// Local Whisper when its weights are installed, else nothing (with a note).
    Auto,
    Off,
    /// Local Whisper; missing weights are an error.
    Local,
    /// An OpenAI-compatible `/audio/transcriptions` (OpenAI's whisper-1, or a self-hosted
    /// Whisper server), sent only the stretches where someone speaks.
    Openai,
}

#[derive(Clone, Debug)]
pub struct SpeechSettings {
    pub choice: SpeechChoice,
    /// The model: `base` or `tiny.en` on this machine, the service's for `openai`
    /// [default: base; whisper-1].
    pub model: Option<String>,
    /// `openai`: the service's base URL [default: OPENAI_BASE_URL, else OpenAI's] and key.
    pub url: Option<String>,
    pub key: Option<String>,
    /// `openai`: dollars per minute of sound, instead of OpenAI's list price.
    pub price: Option<f64>,
    pub http: crate::caption::HttpSettings,
    pub options: crate::speech::Options,
    /// Where the weights are; `Ear::default_dir()` when None.
    pub dir: Option<PathBuf>,
}

/// `--speech openai`'s base URL: the flag, OPENAI_BASE_URL, else OpenAI's.
fn speech_url(settings: &SpeechSettings) -> String {
    settings
        .url
        .clone()
        .or_else(|| var("OPENAI_BASE_URL"))
        .unwrap_or(OPENAI_DEFAULT_URL.into())
}

/// Dollars per minute of sound `--speech openai` pays, where known: OpenAI's list price.
pub fn speech_price(settings: &SpeechSettings, model: &str) -> Option<f64> {
    let list = match speech_url(settings).trim_end_matches('/') == OPENAI_DEFAULT_URL {
        true => crate::speech::openai::list_price(model),
        false => None,
    };
    settings.price.or(list)
}

/// `--speech openai`: the service, which needs a key unless it is not OpenAI's own.
fn transcription_service(
    settings: &SpeechSettings,
    model: &str,
) -> Result<crate::speech::openai::OpenAiTranscriber, SetupError> {
    let url = speech_url(settings);
    if settings.key.is_none() && url == OPENAI_DEFAULT_URL {
        return Err(SetupError::Config(
            "OPENAI_API_KEY is not set: --speech openai needs an OpenAI API key, or --speech-url pointing at a Whisper server".into(),
        ));
    }
    Ok(crate::speech::openai::OpenAiTranscriber::new(
        &url,
        model,
        settings.key.clone().map(Secret::new),
        speech_price(settings, model),
        settings.http,
    ))
}

/// The speech models the settings ask for: None when speech is off, or `auto` finds no
/// weights (the note says so, once, for the front end to show).
pub fn open_ear(
    settings: &SpeechSettings,
) -> Result<(Option<crate::speech::Ear>, Option<String>), SetupError> {
    use crate::speech::{Ear, MODELS};
    if settings.choice == SpeechChoice::Off {
        return Ok((None, None));
    }
    let model = match (&settings.model, settings.choice) {
        (Some(model), _) => model.clone(),
        (None, SpeechChoice::Openai) => "whisper-1".to_string(),
        (None, _) => "base".to_string(),
    };
    if settings.choice != SpeechChoice::Openai && !MODELS.contains(&model.as_str()) {
        return Err(SetupError::Config(format!(
            "unknown speech model '{model}'; choose one of {}",
            MODELS.join(", ")
        )));
    }
    let dir = settings
        .dir
        .clone()
        .or_else(Ear::default_dir)
        .ok_or_else(|| {
            SetupError::Config("no data directory for speech: set SCENEDEX_SPEECH_DIR".into())
        })?;
    if settings.choice == SpeechChoice::Auto && !Ear::installed(&dir, &model) {
        let note = format!(
            "speech is not indexed: the {model} speech model is not in {} (run scripts/setup.sh, or --speech off)",
            dir.display()
        );
        return Ok((None, Some(note)));
    }
    let ear = match settings.choice {
        SpeechChoice::Openai => Ear::with(&dir, Box::new(transcription_service(settings, &model)?)),
        _ => Ear::load(&dir, &model),
    }
    .map_err(|e| SetupError::Config(e.to_string()))?;
    if let Some(lang) = &settings.options.lang {
        if !ear.knows(lang) {
            return Err(SetupError::Config(format!(
                "the {model} speech model does not know the language '{lang}' (give a code such as en, de, fr; tiny.en hears English only)"
            )));
        }
    }
    Ok((Some(ear), None))
}
