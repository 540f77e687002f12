//! cli: the `scenedex` command line. Every flag is defined and documented here, in one place.

pub mod caption;
mod config;
mod eval;
mod export;
mod frames;
mod index;
mod listen;
mod output;
mod reembed;
mod search;
mod serve;
mod stats;

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

pub use crate::backends::{CaptionerChoice, EmbedderChoice};
use crate::backends::{CaptionerSettings, SetupError, StoreSettings};
use crate::decode::DecodeError;
use crate::sample::Mode;

/// Exit statuses, distinct so that scripts can tell failures apart.
pub mod exit {
    pub const OK: i32 = 0;
    /// Anything not listed below.
    pub const FAILURE: i32 = 1;
    /// Bad flags or arguments.
    pub const USAGE: i32 = 2;
    /// An input file is missing or cannot be opened.
    pub const NO_INPUT: i32 = 3;
    /// An input file is not a usable video: empty, not a video, no video stream, truncated.
    pub const BAD_INPUT: i32 = 4;
    /// An output could not be written (permissions, full disk).
    pub const CANT_WRITE: i32 = 5;
    /// A remote service (captioner) failed: unreachable, refused the key, or kept failing.
    pub const SERVICE: i32 = 6;
    /// The index is in use by another scenedex process.
    pub const BUSY: i32 = 7;
    /// Stopped by Ctrl-C (128 + SIGINT).
    pub const INTERRUPTED: i32 = 130;
}

#[derive(Debug, Parser)]
#[command(
    name = "scenedex",
    version,
    about = "Make a video archive searchable by text."
)]
#[command(propagate_version = true, arg_required_else_help = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Decode a video and list the frames that would be captioned: sampled, deduplicated,
    /// each with the stretch of the timeline it stands for.
    Frames(FramesArgs),
    /// Caption one image, or the kept frames of one video, and print time and caption per
    /// frame: the quickest way to try prompts and backends.
    Caption(CaptionArgs),
    /// Index videos and folders of videos (recursively): sample, caption, embed and store their
    /// scenes. Unchanged files are skipped, moved ones recognised; run it again at any time.
    Index(IndexArgs),
    /// Find the scenes that match a description: file, start and end, caption, and an mpv line.
    Search(SearchArgs),
    /// What the index holds: files, hours, segments, and the models that made them.
    Stats(StatsArgs),
    /// Remove files (or every file under a folder) from the index.
    Forget(ForgetArgs),
    /// Write indexed files' segments as timed text tracks (WebVTT, SubRip or JSON lines) that
    /// players load beside the video, e.g. as `<track kind="descriptions">`.
    Export(ExportArgs),
    /// Serve a web page over the index: search as you type, and play the scene found.
    Serve(ServeArgs),
    /// Write the best hits of a search as video files of their own: copied when both ends fall
    /// on key frames, else re-encoded from the exact first frame, with their sound.
    Cut(CutArgs),
    /// Score a captioning configuration on a golden set (keyword recall, invented words,
    /// moderation fields, search recall, cost per 1,000 frames), or two side by side, before
    /// paying for it on an archive.
    Eval(EvalArgs),
    /// Transcribe what is said in a video, as `index` hears it: voice found, each stretch's
    /// language detected, and the utterances with their times, language and text.
    Listen(ListenArgs),
    /// Embed the index again with another embedding model, from the captions and transcripts it
    /// holds: nothing is decoded, captioned or heard again. The index switches to the new
    /// vectors once they are all made; stopped, the same command goes on where it stopped.
    Reembed(ReembedArgs),
}

#[derive(Debug, Args)]
pub struct ReembedArgs {
    /// The embedding model to change to: e5 (multilingual-e5-small), minilm (all-MiniLM-L6-v2),
    /// or an OpenAI-compatible service's model, such as text-embedding-3-small.
    #[arg(long, value_name = "NAME")]
    pub embedder: String,

    /// An OpenAI-compatible embedder's base URL [default: OPENAI_BASE_URL or https://api.openai.com/v1].
    #[arg(long, env = "SCENEDEX_EMBEDDING_URL", value_name = "URL")]
    pub embedding_url: Option<String>,

    #[command(flatten)]
    pub place: PlaceArgs,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The video (or audio) file.
    pub file: PathBuf,

    #[command(flatten)]
    pub speech: SpeechArgs,

    /// Print one JSON object per utterance, then one line holding a "summary" object.
    #[arg(long)]
    pub json: bool,
}

/// How speech is heard; shared by `index` and `listen`.
#[derive(Debug, Args, Clone)]
pub struct SpeechArgs {
    /// Make what is said searchable: auto (local Whisper when its weights are installed),
    /// off, local, or openai (an OpenAI-compatible /audio/transcriptions, sent only the
    /// stretches where someone speaks; key in OPENAI_API_KEY).
    #[arg(
        long,
        env = "SCENEDEX_SPEECH",
        value_name = "HOW",
        default_value = "auto",
        value_enum
    )]
    pub speech: crate::backends::SpeechChoice,

    /// The Whisper model: base (99 languages) or tiny.en (English only, about 3x cheaper);
    /// with --speech openai, the service's [default: base; whisper-1].
    #[arg(long, env = "SCENEDEX_SPEECH_MODEL", value_name = "MODEL")]
    pub speech_model: Option<String>,

    /// --speech openai: the service's base URL [default: OPENAI_BASE_URL or https://api.openai.com/v1].
    #[arg(long, env = "SCENEDEX_SPEECH_URL", value_name = "URL")]
    pub speech_url: Option<String>,

    /// --speech openai: dollars per minute of sound, for the cost line and the dry run's
    /// estimate [default: OpenAI's list price for whisper-1 on OpenAI's API; else unknown].
    #[arg(long, env = "SCENEDEX_SPEECH_PRICE", value_name = "DOLLARS")]
    pub speech_price: Option<f64>,

    /// Hear every file in this language (a code such as en, de, ja) instead of detecting it
    /// for each stretch of speech.
    #[arg(long, env = "SCENEDEX_SPEECH_LANG", value_name = "LANG")]
    pub speech_lang: Option<String>,

    /// Which audio stream to hear, counting audio streams from 0 (default: the first).
    #[arg(long, env = "SCENEDEX_AUDIO_STREAM", value_name = "N")]
    pub audio_stream: Option<usize>,
}

impl SpeechArgs {
    pub fn settings(&self) -> crate::backends::SpeechSettings {
        crate::backends::SpeechSettings {
            choice: self.speech,
            model: self.speech_model.clone(),
            url: self.speech_url.clone(),
            price: self.speech_price.filter(|p| p.is_finite() && *p >= 0.0),
            key: std::env::var("OPENAI_API_KEY")
                .ok()
                .filter(|k| !k.trim().is_empty()),
            http: Default::default(),
            options: crate::speech::Options {
                stream: self.audio_stream,
                lang: self.speech_lang.clone(),
            },
            dir: None,
        }
    }
}

#[derive(Debug, Args)]
#[command(args_override_self = true)]
pub struct EvalArgs {
    /// The golden set: JSON lines of pictures, video frames and searches, with paths relative
    /// to it (see the README).
    #[arg(value_name = "GOLDEN.jsonl")]
    pub golden: PathBuf,

    #[command(flatten)]
    pub captioner: CaptionerArgs,

    #[command(flatten)]
    pub speech: SpeechArgs,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// The embedding model for the searches' throw-away index [default: local].
    #[arg(long, env = "SCENEDEX_EMBEDDER", value_enum)]
    pub embedder: Option<crate::backends::EmbedderChoice>,

    /// The embedding model: local e5 or minilm; openai text-embedding-3-small or another [default: e5].
    #[arg(long, env = "SCENEDEX_EMBEDDING_MODEL")]
    pub embedding_model: Option<String>,

    /// --embedder openai: the API's base URL.
    #[arg(long, env = "SCENEDEX_EMBEDDING_URL")]
    pub embedding_url: Option<String>,

    /// Score a second configuration beside this one: the options in FILE (the config file's
    /// format, `model = "gpt-4.1-mini"`) replace the command line's.
    #[arg(long, value_name = "FILE")]
    pub against: Option<PathBuf>,

    /// Read and write the caption cache; without it nothing is read from or written to it,
    /// so every figure, cost included, is measured afresh.
    #[arg(long)]
    pub use_cache: bool,

    /// Print one JSON object per configuration.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Video files and folders to index.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub speech: SpeechArgs,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub captioner: CaptionerArgs,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Files in flight at once.
    #[arg(long, short = 'j', env = "SCENEDEX_JOBS", value_name = "N", default_value_t = 2, value_parser = concurrency)]
    pub jobs: usize,

    /// Frames whose captions are at least this similar (cosine of their embeddings) merge into one segment [default: 0.93 with e5, 0.8 with MiniLM].
    #[arg(
        long,
        env = "SCENEDEX_MERGE_SIMILARITY",
        value_name = "COSINE",
        value_parser = cosine
    )]
    pub merge_similarity: Option<f32>,

    /// Longest segment, in seconds: a long shot is split so results stay precise.
    #[arg(long, env = "SCENEDEX_MAX_SEGMENT", value_name = "SECONDS", default_value_t = 60.0, value_parser = segment_length)]
    pub max_segment: f64,

    /// Keep files that have vanished from a folder being indexed, offline, however long they
    /// stay gone (by default they are removed once gone through --prune-after; a moved file
    /// is recognised wherever it went).
    #[arg(long)]
    pub keep_missing: bool,

    /// Remove vanished files at once, even from a folder whose disk looks unmounted (on
    /// another file system now, or an empty mount point), that holds no video, or that lost
    /// more than half its files at once.
    #[arg(long, conflicts_with = "keep_missing")]
    pub prune_all: bool,

    /// How long a vanished file stays in the index, shown as offline, before a run removes
    /// it: seconds, or a duration such as 12h or 7d.
    #[arg(long, env = "SCENEDEX_PRUNE_AFTER", value_name = "DURATION", default_value = "7d", value_parser = duration)]
    pub prune_after: std::time::Duration,

    /// --qdrant-url: shards of a collection scenedex creates (one created beforehand keeps its own).
    #[arg(long, env = "SCENEDEX_SHARDS", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub shards: u32,

    /// --qdrant-url: copies of each shard, on different nodes, for a collection scenedex
    /// creates. With 2 or more, a node may die mid-run without losing or failing anything.
    #[arg(long, env = "SCENEDEX_REPLICAS", value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub replicas: u32,

    /// How long another indexer waits before taking over a file this one claimed and then
    /// stopped renewing (it died): seconds.
    #[arg(long, env = "SCENEDEX_LEASE", value_name = "SECONDS", default_value_t = 60.0, value_parser = positive_number)]
    pub lease: f64,

    /// Decode the files that need indexing and print how many frames would be captioned and
    /// the most it could cost; write nothing, spend nothing.
    #[arg(long, conflicts_with = "watch")]
    pub dry_run: bool,

    /// Keep running after the first pass and index files as they appear, change, move or
    /// vanish (the system's file notifications, and a rescan every --rescan); a summary after
    /// each batch of work; Ctrl-C stops.
    #[arg(long)]
    pub watch: bool,

    /// --watch: how long a file must keep its size and time, closed, before it is indexed: a
    /// copy still under way is never indexed as a whole file.
    #[arg(long, env = "SCENEDEX_SETTLE", value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub settle: std::time::Duration,

    /// --watch: how often every file is looked at again, for disks that send no notifications
    /// (network file systems).
    #[arg(long, env = "SCENEDEX_RESCAN", value_name = "DURATION", default_value = "5m", value_parser = duration)]
    pub rescan: std::time::Duration,

    #[command(flatten)]
    pub batch: BatchArgs,

    /// --batch: send the batches, index the files whose frames are all answered already, and
    /// return without waiting for the rest; a later run collects them.
    #[arg(long, requires = "batch")]
    pub no_wait: bool,

    /// Print one JSON object per file, then a "summary" line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What the scene shows, in words.
    pub query: String,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// Print one JSON object per hit.
    #[arg(long)]
    pub json: bool,
}

/// Which hits a search keeps, for `search` and `cut` alike.
#[derive(Debug, Args)]
pub struct FilterArgs {
    /// Most hits to keep.
    #[arg(long, short = 'n', env = "SCENEDEX_LIMIT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub limit: u64,

    /// At most N hits from any one file; human output groups them under the file.
    #[arg(long, env = "SCENEDEX_PER_FILE", value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub per_file: Option<u64>,

    /// Only files at or under this path (a file or a folder), on any machine.
    #[arg(long, env = "SCENEDEX_PATH", value_name = "PATH")]
    pub path: Option<PathBuf>,

    /// Only segments that end at or after this time in their file (seconds, or HH:MM:SS.mmm).
    #[arg(long, env = "SCENEDEX_FROM", value_name = "TIME", value_parser = time_of_day)]
    pub from: Option<f64>,

    /// Only segments that start at or before this time in their file (seconds, or HH:MM:SS.mmm).
    #[arg(long, env = "SCENEDEX_TO", value_name = "TIME", value_parser = time_of_day)]
    pub to: Option<f64>,

    /// Hide hits whose similarity to the query (cosine of the embeddings, up to 1) is below
    /// this and that share none of its words; 0 shows them all [default: 0.25 for the local
    /// model, a calibrated "no close match"].
    #[arg(long, env = "SCENEDEX_MIN_SCORE", value_name = "SIMILARITY", value_parser = similarity)]
    pub min_score: Option<f32>,

    /// Only segments whose field has this value, e.g. kind=speech (what is said; kind=description
    /// or kind=tags for pictures), lang=de, contains_people=false, people_count=2,
    /// contains_text=true, setting=office (fields of the moderation style). Repeatable.
    #[arg(long = "where", value_name = "FIELD=VALUE", value_parser = field_value)]
    pub conditions: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Args)]
pub struct CutArgs {
    /// What the scene shows, in words.
    pub query: String,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    /// The folder the clips are written to (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Seconds added before and after each scene.
    #[arg(long, env = "SCENEDEX_PAD", value_name = "SECONDS", default_value_t = 0.0, value_parser = non_negative_number)]
    pub pad: f64,

    /// Replace clips that exist already.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,

    /// Also index these folders as files appear, change, move or vanish (`scenedex index
    /// --watch`, with the captioner the config file and SCENEDEX_* variables choose, writing
    /// through this server); the page finds new scenes without a restart.
    #[arg(long, value_name = "PATH", num_args = 1..)]
    pub watch: Vec<PathBuf>,

    /// Address (or host name) and port to listen on; port 0 picks a free one. Anything but
    /// loopback needs --token.
    #[arg(
        long,
        env = "SCENEDEX_BIND",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:8731",
        value_parser = crate::serve::bind_address
    )]
    pub bind: std::net::SocketAddr,

    /// A secret every request must carry (a header, or a cookie that opening the page once as
    /// /?token=SECRET sets). Prefer the variable: a flag shows in the process list.
    #[arg(
        long,
        env = "SCENEDEX_TOKEN",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub token: Option<String>,

    /// A host name the page may be opened by besides its address and localhost (a name on
    /// your network that points here); requests for any other name get 403, as a page on
    /// another site could point its own name here (DNS rebinding). Repeat, or separate by
    /// commas.
    #[arg(
        long = "allow-host",
        env = "SCENEDEX_ALLOW_HOST",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub allow_host: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Indexed files, or folders whose indexed files all get a track.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub store: StoreArgs,

    /// vtt (WebVTT), srt (SubRip) or jsonl (one JSON object per cue, with every field).
    #[arg(long, env = "SCENEDEX_FORMAT", value_name = "FORMAT", default_value = "vtt", value_parser = export::format)]
    pub format: crate::track::Format,

    /// Write one track per file into this folder (named after the file, as players look for
    /// it) instead of one track to standard output.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Replace tracks that exist already.
    #[arg(long, requires = "out")]
    pub force: bool,

    /// Only segments whose field has this value, as in `search`: kind=speech writes what is
    /// said as subtitles. Repeatable.
    #[arg(long = "where", value_name = "FIELD=VALUE", value_parser = field_value)]
    pub conditions: Vec<(String, serde_json::Value)>,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Files, or folders whose files are all forgotten. They need not exist any more.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where the index lives and which model turns text into its vectors.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    #[command(flatten)]
    pub place: PlaceArgs,

    /// How captions and queries become vectors [default: the model that built the index, else local].
    #[arg(long, env = "SCENEDEX_EMBEDDER", value_enum)]
    pub embedder: Option<EmbedderChoice>,

    /// The embedding model: local multilingual-e5-small (e5) or all-MiniLM-L6-v2 (minilm, English
    /// only); openai text-embedding-3-small or another (another name means --embedder openai)
    /// [default: the index's, else e5].
    #[arg(long, env = "SCENEDEX_EMBEDDING_MODEL", value_name = "NAME")]
    pub embedding_model: Option<String>,

    /// openai embedder: the API's base URL [default: OPENAI_BASE_URL or https://api.openai.com/v1].
    #[arg(long, env = "SCENEDEX_EMBEDDING_URL", value_name = "URL")]
    pub embedding_url: Option<String>,
}

/// Where the index is.
#[derive(Debug, Args, Clone)]
pub struct PlaceArgs {
    /// The index's folder; separate folders keep separate archives apart [default: ~/.local/share/scenedex/index].
    #[arg(long, env = "SCENEDEX_INDEX", value_name = "DIR")]
    pub index: Option<PathBuf>,

    /// Use a Qdrant server or cluster instead of the embedded index: its gRPC URL, such as
    /// http://localhost:6334, or several nodes' separated by commas (requests go to the next
    /// when one fails). Its API key, if any, is read from QDRANT_API_KEY.
    #[arg(long, env = "QDRANT_URL", value_name = "URL[,URL...]", value_parser = urls)]
    pub qdrant_url: Option<Urls>,

    /// --qdrant-url: the collection; one per archive.
    #[arg(
        long,
        env = "SCENEDEX_COLLECTION",
        value_name = "NAME",
        default_value = "scenedex"
    )]
    pub collection: String,
}

#[derive(Debug, Args)]
pub struct CaptionArgs {
    /// An image (JPEG or PNG) or a video.
    pub path: PathBuf,

    #[command(flatten)]
    pub captioner: CaptionerArgs,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Print one JSON object per frame (`time`, `caption`, `kind`, ...), then a "summary" line.
    #[arg(long)]
    pub json: bool,

    /// Print how many frames would be captioned and the most it could cost; spend nothing.
    #[arg(long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub batch: BatchArgs,
}

/// Sending frames through a provider's batch API.
#[derive(Debug, Args, Clone)]
pub struct BatchArgs {
    /// openai, anthropic: send the frames through the provider's batch API (OpenAI's Batch
    /// API, Anthropic's Message Batches): half price, answers within a day. Batches are
    /// recorded beside the caption cache before any waiting: stop at any time, and any later
    /// run that shares the cache collects them.
    #[arg(long)]
    pub batch: bool,

    /// --batch: most requests in one batch [default: the provider's limit, 50,000 for
    /// OpenAI and 100,000 for Anthropic]; batches are split at the provider's size limit too.
    #[arg(long, env = "SCENEDEX_BATCH_SIZE", value_name = "N", requires = "batch", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch_size: Option<u64>,

    /// --batch: what to do with frames a batch could not answer (it failed, expired or was
    /// cancelled): `none` sends them again in a batch on the next run; `sync` asks for them
    /// now, one request each, at the full price.
    #[arg(
        long,
        env = "SCENEDEX_BATCH_FALLBACK",
        value_enum,
        value_name = "HOW",
        default_value = "none",
        requires = "batch"
    )]
    pub batch_fallback: Fallback,

    /// --batch: seconds between checks on the batches.
    #[arg(long, env = "SCENEDEX_POLL", value_name = "SECONDS", default_value_t = 30.0, value_parser = positive_number)]
    pub poll: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Fallback {
    None,
    Sync,
}

/// Which model captions, how pictures are sent, and how much may be spent.
#[derive(Debug, Args, Clone)]
pub struct CaptionerArgs {
    /// The captioning backend. Without it: openai when OPENAI_API_KEY or OPENAI_BASE_URL is
    /// set, else anthropic when ANTHROPIC_API_KEY is set.
    #[arg(long, env = "SCENEDEX_CAPTIONER", value_enum)]
    pub captioner: Option<CaptionerChoice>,

    /// The model [default: gpt-4o-mini for openai, claude-haiku-4-5 for anthropic].
    #[arg(long, env = "SCENEDEX_MODEL")]
    pub model: Option<String>,

    /// The API's base URL [default: OPENAI_BASE_URL or https://api.openai.com/v1; ANTHROPIC_BASE_URL or https://api.anthropic.com].
    #[arg(long, env = "SCENEDEX_BASE_URL", value_name = "URL")]
    pub base_url: Option<String>,

    /// The environment variable that holds the API key, instead of OPENAI_API_KEY or ANTHROPIC_API_KEY.
    #[arg(long, env = "SCENEDEX_API_KEY_ENV", value_name = "NAME")]
    pub api_key_env: Option<String>,

    /// The kind of caption: search (keywords and a sentence), alt-text, description, moderation (JSON).
    #[arg(long, env = "SCENEDEX_STYLE", value_enum, default_value = "search")]
    pub style: crate::caption::Style,

    /// Make the model write in this language (a code such as fr, de, ja).
    #[arg(long, env = "SCENEDEX_LANG", value_name = "CODE")]
    pub lang: Option<String>,

    /// Read prompts from DIR/<style>.toml instead of the built-in ones.
    #[arg(long, env = "SCENEDEX_PROMPTS", value_name = "DIR")]
    pub prompts: Option<PathBuf>,

    /// Longer side of the pictures sent, in pixels.
    #[arg(long, env = "SCENEDEX_MAX_SIDE", value_name = "PIXELS", default_value_t = 512, value_parser = clap::value_parser!(u32).range(32..=4096))]
    pub max_side: u32,

    /// JPEG quality of the pictures sent (1-100).
    #[arg(long, env = "SCENEDEX_JPEG_QUALITY", value_name = "Q", default_value_t = 80, value_parser = clap::value_parser!(u8).range(1..=100))]
    pub jpeg_quality: u8,

    /// openai: image detail; low costs a flat 85 tokens a picture.
    #[arg(long, env = "SCENEDEX_DETAIL", value_enum, default_value = "low")]
    pub detail: crate::caption::Detail,

    /// Requests in flight at once.
    #[arg(long, env = "SCENEDEX_CONCURRENCY", value_name = "N", default_value_t = 8, value_parser = concurrency)]
    pub concurrency: usize,

    /// Cap on requests per minute, retries included.
    #[arg(long, env = "SCENEDEX_RPM", value_name = "N")]
    pub rpm: Option<u32>,

    /// Longest wait for one answer, in seconds.
    #[arg(long, env = "SCENEDEX_TIMEOUT", value_name = "SECONDS", default_value_t = 60.0, value_parser = positive_number)]
    pub timeout: f64,

    /// Retries of a request after 429, 5xx or a time-out (exponential backoff with jitter, at
    /// least the server's Retry-After).
    #[arg(long, env = "SCENEDEX_RETRIES", value_name = "N", default_value_t = 5)]
    pub retries: usize,

    /// Where captions are cached [default: ~/.cache/scenedex/captions].
    #[arg(long, value_name = "DIR", env = "SCENEDEX_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Neither read nor write the caption cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Price as INPUT,OUTPUT dollars per million tokens, for the cost estimate.
    #[arg(long, env = "SCENEDEX_PRICE", value_name = "IN,OUT")]
    pub price: Option<crate::caption::cost::Price>,
}

#[derive(Debug, Args)]
pub struct FramesArgs {
    /// The video file.
    pub file: PathBuf,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Print one JSON object per sampled frame, then one line holding a "summary" object.
    #[arg(long)]
    pub json: bool,

    /// Write the kept frames into DIR as JPEG thumbnails named by time (HH-MM-SS.mmm.jpg).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Longer side of the thumbnails written by --out, in pixels.
    #[arg(long, env = "SCENEDEX_THUMB_SIZE", value_name = "PIXELS", default_value_t = 480, value_parser = clap::value_parser!(u32).range(16..=4096))]
    pub thumb_size: u32,
}

/// How frames are chosen and which are dropped; shared by every command that samples.
#[derive(Debug, Args, Clone)]
pub struct SamplingArgs {
    /// Which frames to sample: auto (every shot, plus one every --max-gap seconds), scene
    /// (every shot), keyframes (key frames only: fastest), or interval:SECONDS.
    #[arg(long, env = "SCENEDEX_SAMPLE", value_name = "MODE", default_value = "auto", value_parser = clap::value_parser!(Mode))]
    pub sample: Mode,

    /// auto: the longest stretch of a shot without a sampled frame, in seconds.
    #[arg(long, env = "SCENEDEX_MAX_GAP", value_name = "SECONDS", default_value_t = 10.0, value_parser = positive_number)]
    pub max_gap: f64,

    /// auto: two sampled frames are never closer than this, in seconds.
    #[arg(long, env = "SCENEDEX_MIN_GAP", value_name = "SECONDS", default_value_t = 0.5, value_parser = non_negative_number)]
    pub min_gap: f64,

    /// scene and auto: the shortest shot, in seconds; also what keeps flashes from counting as cuts.
    #[arg(long, env = "SCENEDEX_MIN_SCENE", value_name = "SECONDS", default_value_t = 0.3, value_parser = non_negative_number)]
    pub min_scene: f64,

    /// scene and auto: mean change per pixel (0-255) between frames that counts as a cut; lower finds more.
    #[arg(long, env = "SCENEDEX_THRESHOLD", value_name = "LEVEL", default_value_t = 20.0, value_parser = positive_number)]
    pub threshold: f64,

    /// Largest perceptual-hash distance (0-64 bits) at which a frame is a duplicate of the last kept one.
    #[arg(long, env = "SCENEDEX_DUP_DISTANCE", value_name = "BITS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub dup_distance: u32,

    /// Largest difference in mean colour (0-255) between duplicates.
    #[arg(long, env = "SCENEDEX_COLOR_TOLERANCE", value_name = "LEVEL", default_value_t = 20.0, value_parser = non_negative_number)]
    pub color_tolerance: f64,
}

impl StoreArgs {
    /// The library's settings; `cluster` only matters to a command that creates a collection.
    pub fn settings(&self) -> StoreSettings {
        StoreSettings {
            embedder: self.embedder,
            embedding_model: self.embedding_model.clone(),
            embedding_url: self.embedding_url.clone(),
            ..self.place.settings()
        }
    }
}

impl PlaceArgs {
    /// The library's settings for this index, with no embedder chosen.
    pub fn settings(&self) -> StoreSettings {
        StoreSettings {
            index: self.index.clone(),
            embedder: None,
            embedding_model: None,
            embedding_url: None,
            qdrant_urls: self.qdrant_url.clone().map(|u| u.0).unwrap_or_default(),
            collection: self.collection.clone(),
            cluster: Default::default(),
        }
    }
}

impl CaptionerArgs {
    /// How pictures are prepared before they are sent.
    pub fn picture(&self) -> crate::caption::Picture {
        crate::caption::Picture {
            max_side: self.max_side,
            quality: self.jpeg_quality,
        }
    }

    /// What to ask, and how, with this prompt and the backend's detail setting.
    pub fn asking<'a>(
        &'a self,
        prompt: &'a crate::caption::Prompt,
        detail: &'a str,
    ) -> crate::caption::Settings<'a> {
        crate::caption::Settings {
            style: self.style,
            prompt,
            lang: self.lang.as_deref(),
            detail,
            concurrency: self.concurrency,
        }
    }

    pub fn settings(&self) -> CaptionerSettings {
        CaptionerSettings {
            choice: self.captioner,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            api_key_env: self.api_key_env.clone(),
            detail: self.detail,
            http: crate::caption::HttpSettings {
                timeout: std::time::Duration::from_secs_f64(self.timeout),
                retries: self.retries,
                per_minute: self.rpm.and_then(std::num::NonZeroU32::new),
                ..Default::default()
            },
            estimate_only: false,
            batch_size: None,
        }
    }
}

impl SamplingArgs {
    pub fn sample_config(&self) -> crate::sample::SampleConfig {
        crate::sample::SampleConfig {
            mode: self.sample,
            scene: crate::sample::SceneConfig {
                threshold: self.threshold,
                min_scene: self.min_scene,
            },
            max_gap: self.max_gap,
            min_gap: self.min_gap,
            ..Default::default()
        }
    }

    pub fn dedup_config(&self) -> crate::dedup::DedupConfig {
        crate::dedup::DedupConfig {
            max_distance: self.dup_distance,
            color_tolerance: self.color_tolerance,
            ..Default::default()
        }
    }
}

/// Says so when a Qdrant key would cross a network in the clear.
fn warn_about_key(settings: &StoreSettings) {
    if let Some(warning) = settings.key_warning() {
        eprintln!("warning: {warning}");
    }
}

/// The nodes of a Qdrant server or cluster, as one flag's value.
#[derive(Clone, Debug)]
pub struct Urls(pub Vec<String>);

fn urls(s: &str) -> Result<Urls, String> {
    crate::backends::qdrant_urls(s).map(Urls)
}

fn cosine(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "'{s}' is not a similarity from 0 to 1 (1 merges only identical captions)"
        )),
    }
}

fn similarity(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        _ => Err(format!(
            "'{s}' is not a similarity from 0 to 1 (0 shows every hit)"
        )),
    }
}

/// A segment of under a second is no search hit, and would split a long still shot into
/// millions.
fn segment_length(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 1.0 => Ok(x),
        _ => Err(format!("'{s}' is not a number of seconds of 1 or more")),
    }
}

/// A duration: plain seconds, or humantime's `12h`, `7d`, `1h 30m`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(seconds));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e}; give seconds or a duration such as 12h or 7d"))
}

fn positive_number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(format!("'{s}' is not a positive number")),
    }
}

fn concurrency(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=256).contains(&n) => Ok(n),
        _ => Err(format!("'{s}' is not a whole number from 1 to 256")),
    }
}

/// Seconds, or a time as printed by scenedex (HH:MM:SS.mmm, MM:SS).
fn time_of_day(s: &str) -> Result<f64, String> {
    let mut seconds = 0.0;
    for part in s.split(':') {
        match part.parse::<f64>() {
            Ok(x) if x.is_finite() && x >= 0.0 => seconds = seconds * 60.0 + x,
            _ => return Err(format!("'{s}' is not a time (seconds, or HH:MM:SS.mmm)")),
        }
    }
    Ok(seconds)
}

/// Refuses to write when one of the outputs exists and `--force` was not given, before any is
/// written, so that a run replaces all or nothing.
fn refuse_existing<'a>(
    outputs: impl IntoIterator<Item = &'a std::path::Path>,
    force: bool,
) -> Result<(), Error> {
    let existing = outputs.into_iter().find(|p| p.symlink_metadata().is_ok());
    match existing {
        Some(path) if !force => Err(Error::Write {
            path: path.to_path_buf(),
            source: std::io::Error::other("exists already; --force replaces it"),
        }),
        _ => Ok(()),
    }
}

/// `FIELD=VALUE`, the value read as a bool or a whole number when it is one.
fn field_value(s: &str) -> Result<(String, serde_json::Value), String> {
    crate::search::field_value(s)
}

fn non_negative_number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("'{s}' is not a number of 0 or more")),
    }
}

/// Everything a command can fail with, each mapped to one exit status.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("{path}: cannot write: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: cannot encode the thumbnail: {source}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
    /// Settings missing or contradictory (no key, no backend, a bad prompt file).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Input(String),
    /// An input path is missing or unreadable.
    #[error("{0}")]
    NoInput(String),
    #[error("{0}")]
    Service(String),
    /// A file of our own cannot be written (the batch ledger).
    #[error("{0}")]
    CantWrite(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Some files of a run failed, or are incomplete; each was reported. The status is that
    /// of the first.
    #[error("{count} of {total} files {what} (each one reported above); first: {first}")]
    Files {
        count: usize,
        total: usize,
        what: &'static str,
        first: String,
        code: i32,
    },
    #[error("interrupted")]
    Interrupted,
    /// Another process works on the index.
    #[error("{0}")]
    Busy(String),
    /// Anything else that went wrong, said in one line.
    #[error("{0}")]
    Failed(String),
    /// Writing to standard output failed; a closed pipe (`| head`) is a normal way to stop.
    #[error("cannot write to standard output: {0}")]
    Stdout(std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Decode(e) => decode_exit_code(e),
            Error::NoInput(_) => exit::NO_INPUT,
            Error::Write { .. } | Error::Encode { .. } => exit::CANT_WRITE,
            Error::Config(_) => exit::USAGE,
            Error::Input(_) => exit::BAD_INPUT,
            Error::Service(_) => exit::SERVICE,
            Error::CantWrite(_) => exit::CANT_WRITE,
            Error::Store(e) => store_exit_code(e),
            Error::Files { code, .. } => *code,
            Error::Interrupted => exit::INTERRUPTED,
            Error::Busy(_) => exit::BUSY,
            Error::Failed(_) => exit::FAILURE,
            Error::Stdout(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::OK,
            Error::Stdout(_) => exit::CANT_WRITE,
        }
    }
}

impl From<crate::speech::SpeechError> for Error {
    fn from(e: crate::speech::SpeechError) -> Self {
        use crate::speech::SpeechError as S;
        match e {
            S::Decode(e) => Error::Decode(e),
            S::Interrupted => Error::Interrupted,
            S::Unreadable(..) => Error::NoInput(e.to_string()),
            S::Missing(_) | S::BrokenModel { .. } | S::NoSuchStream { .. } => {
                Error::Config(e.to_string())
            }
            S::Model(_) | S::Ffmpeg { .. } | S::NoChannels(_) | S::Broken(_) => {
                Error::Input(e.to_string())
            }
            S::Service(_) => Error::Service(e.to_string()),
        }
    }
}

impl From<SetupError> for Error {
    fn from(e: SetupError) -> Self {
        match e {
            SetupError::Config(text) => Error::Config(text),
            SetupError::Service(text) => Error::Service(text),
            SetupError::Write { path, source } => Error::Write { path, source },
            SetupError::Store(e) => Error::Store(e),
        }
    }
}

impl From<crate::reembed::ReembedError> for Error {
    fn from(e: crate::reembed::ReembedError) -> Self {
        use crate::reembed::ReembedError as R;
        match e {
            R::Setup(e) => e.into(),
            R::Store(e) => Error::Store(e),
            R::Embed(crate::embed::EmbedError::Remote(_)) => Error::Service(e.to_string()),
            R::Embed(crate::embed::EmbedError::Compute(_)) => Error::Failed(e.to_string()),
            R::Embed(_) => Error::Config(e.to_string()),
            R::Same { .. } => Error::Config(e.to_string()),
            R::Busy { .. } => Error::Busy(e.to_string()),
            R::Stopped => Error::Interrupted,
        }
    }
}

impl From<crate::index::run::RunError> for Error {
    fn from(e: crate::index::run::RunError) -> Self {
        match e {
            crate::index::run::RunError::Store(e) => Error::Store(e),
            crate::index::run::RunError::Interrupted => Error::Interrupted,
            crate::index::run::RunError::Batch(e) => caption::caption_error(&e),
        }
    }
}

fn decode_exit_code(e: &DecodeError) -> i32 {
    match e {
        DecodeError::NotFound(_) | DecodeError::IsDirectory(_) | DecodeError::Unreadable(..) => {
            exit::NO_INPUT
        }
        DecodeError::Interrupted => exit::INTERRUPTED,
        DecodeError::Ffmpeg { .. } => exit::FAILURE,
        _ => exit::BAD_INPUT,
    }
}

fn store_exit_code(e: &crate::store::StoreError) -> i32 {
    use crate::store::StoreError;
    match e {
        StoreError::InUse { .. } | StoreError::HeldSilently { .. } => exit::BUSY,
        StoreError::HolderGone { .. } => exit::FAILURE,
        StoreError::ModelMismatch { .. } | StoreError::NotAnIndex(_) => exit::USAGE,
        StoreError::Missing(_) => exit::NO_INPUT,
        StoreError::Io { .. } => exit::CANT_WRITE,
        StoreError::Unreachable { .. } | StoreError::KeyRefused { .. } => exit::SERVICE,
        StoreError::DiskFull { .. } => exit::CANT_WRITE,
        StoreError::Engine(e) if e.contains("No space left") => exit::CANT_WRITE,
        StoreError::Engine(_) => exit::FAILURE,
        StoreError::Late => exit::SERVICE,
    }
}

/// Runs the command line and returns the process exit status.
pub fn main() -> i32 {
    // Tests built with the `failpoints` feature stop runs at exact steps (FAILPOINTS=...).
    #[cfg(feature = "failpoints")]
    let _failpoints = fail::FailScenario::setup();
    let from_file = match load_config() {
        Ok(set) => set,
        // Help needs no settings: a broken config file must not hide how to fix it.
        Err(_) if asks_for_help() => Vec::new(),
        Err(e) => {
            eprintln!("Error: {e}");
            return e.exit_code();
        }
    };
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return flag_error(&e, &from_file),
    };
    install_interrupt_handler();
    let result = match cli.command {
        Command::Frames(args) => frames::run(&args),
        Command::Caption(args) => caption::run(&args),
        Command::Index(args) => index::run(&args),
        Command::Search(args) => search::run(&args),
        Command::Stats(args) => stats::run(&args),
        Command::Forget(args) => stats::forget(&args),
        Command::Export(args) => export::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Cut(args) => search::cut(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Listen(args) => listen::run(&args),
        Command::Reembed(args) => reembed::run(&args),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            if e.exit_code() != exit::INTERRUPTED && e.exit_code() != exit::OK {
                eprintln!("Error: {e}");
            }
            e.exit_code()
        }
    }
}

/// Whether the command line asks for help or the version, which read no settings.
fn asks_for_help() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.is_empty()
        || args.first().is_some_and(|a| a == "help")
        || args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| ["-h", "--help", "-V", "--version"].contains(&a.as_str()))
}

/// Puts the config file's settings where clap finds them: as `SCENEDEX_*` variables the
/// environment does not already set. Runs before any thread starts. Returns what it set.
fn load_config() -> Result<Vec<(String, String)>, Error> {
    let Some(path) = config::default_path() else {
        return Ok(Vec::new());
    };
    let set = config::settings(&path)?;
    for (name, value) in &set {
        std::env::set_var(name, value);
    }
    Ok(set)
}

/// Prints clap's error (or help); a bad value that came from the config file or the
/// environment rather than the command line says so, as the user did not type it.
fn flag_error(e: &clap::Error, from_file: &[(String, String)]) -> i32 {
    use clap::error::{ContextKind, ContextValue};
    if !e.use_stderr() {
        let _ = e.print();
        return exit::OK;
    }
    let flag = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) => arg.trim_start_matches('-').split([' ', '=']).next(),
        _ => None,
    };
    let file = config::default_path().unwrap_or_default();
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(value)) => value.as_str(),
        _ => "",
    };
    match flag.and_then(|flag| config::origin(flag, value, from_file, &file)) {
        Some(origin) => {
            eprintln!("Error: {}; it comes from {origin}", first_line(e));
        }
        None => eprintln!("Error: {}", usage_line(e)),
    }
    exit::USAGE
}

/// clap's error in one line that says what to do: its first line, its suggestion if it has
/// one, and where the flags are told.
fn usage_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut line = first_line(e);
    let suggested = match e.get(ContextKind::SuggestedArg) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    };
    let suggested = suggested.or_else(|| match e.get(ContextKind::SuggestedSubcommand) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(s)) => s.first().cloned(),
        _ => None,
    });
    if let Some(s) = suggested {
        line.push_str(&format!("; did you mean '{s}'?"));
    }
    let command = std::env::args()
        .nth(1)
        .filter(|a| Cli::command().find_subcommand(a).is_some());
    let help = match command {
        Some(name) => format!("scenedex {name} --help"),
        None => "scenedex --help".into(),
    };
    format!("{line} (see `{help}`)")
}

/// The first Ctrl-C asks the work to stop at a clean point; a second one ends the process now.
fn install_interrupt_handler() {
    let _ = ctrlc::set_handler(|| {
        if crate::stop::requested() {
            std::process::exit(exit::INTERRUPTED);
        }
        // A request in flight can take up to --timeout: say why nothing seems to happen.
        if crate::stop::waiting_on_requests() {
            eprintln!("stopping after the requests in flight; Ctrl-C again to quit now");
        } else if crate::stop::waiting_on_graph() {
            eprintln!("stopping once the index's search graph is built; Ctrl-C again to quit now");
        }
        crate::stop::request();
    });
}

/// The first line of clap's error, without its `error: `.
fn first_line(e: &clap::Error) -> String {
    let text = e.to_string();
    let line = text.lines().next().unwrap_or("");
    line.trim_start_matches("error: ").to_string()
}
