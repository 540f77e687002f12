//! A folder of videos, an index (embedded, or a collection on a real Qdrant), caption caches
//! and a stand-in VLM, all temporary: the main job end to end, as a user runs it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::qdrant::Cluster;
use super::vlm::{mean_colour, use_scene_book, Fault, MockVlm, Wire, KEY};
use super::{command, fixture, json_lines};

/// What the stand-in says about the fixture frames: colors.mp4 is a white box on red (0-2 s),
/// then on blue (2-4 s), then black; everything else is an abstract pattern.
fn scene_book(image: &image::RgbImage, _prompt: &str) -> Option<String> {
    let (r, g, b) = mean_colour(image);
    Some(if r > g + 60.0 && r > b + 60.0 {
        "A white square sits on a bright red background.".into()
    } else if b > r + 60.0 && b > g + 60.0 {
        "A white square on a deep blue background. A name tag reads Kowalczyk.".into()
    } else {
        "Colourful abstract shapes and stripes fill the screen.".into()
    })
}

/// Where the index lives.
pub enum Backend {
    Embedded,
    /// A collection of its own on a Qdrant server or cluster, dropped afterwards.
    Server {
        url: String,
        key: Option<String>,
    },
}

/// The machine every command runs as unless a test says otherwise.
pub const HERE: &str = "here";

pub struct Archive {
    pub dir: tempfile::TempDir,
    pub videos: PathBuf,
    pub index: PathBuf,
    pub backend: Backend,
    pub collection: String,
    pub mock: MockVlm,
}

impl Archive {
    pub fn new(files: &[&str]) -> Archive {
        Self::with_backend(files, Backend::Embedded, Wire::OpenAi)
    }

    /// An archive whose index is a new collection on this cluster.
    pub fn on(cluster: &Cluster, files: &[&str]) -> Archive {
        let backend = Backend::Server {
            url: cluster.url(),
            key: cluster.key.clone(),
        };
        Self::with_backend(files, backend, Wire::OpenAi)
    }

    /// An archive captioned through the Anthropic wire format.
    pub fn anthropic(files: &[&str]) -> Archive {
        Self::with_backend(files, Backend::Embedded, Wire::Anthropic)
    }

    fn with_backend(files: &[&str], backend: Backend, wire: Wire) -> Archive {
        use_scene_book(scene_book);
        let dir = tempfile::tempdir().unwrap();
        let videos = dir.path().join("videos");
        std::fs::create_dir_all(&videos).unwrap();
        for name in files {
            let to = videos.join(name);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(fixture(name), to).unwrap();
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Archive {
            videos: std::fs::canonicalize(videos).unwrap(),
            index: dir.path().join("index"),
            collection: format!("scenedex-test-{}-{n}", std::process::id()),
            dir,
            backend,
            mock: MockVlm::start(wire),
        }
    }

    /// The caption cache of one machine: machines sharing an archive do not share a cache.
    pub fn cache(&self, host: &str) -> PathBuf {
        self.dir.path().join(format!("cache-{host}"))
    }

    /// The scenedex binary with these arguments, as machine `host`.
    pub fn command_on(&self, host: &str, args: &[&str]) -> Command {
        let mut command = command();
        command
            .args(args)
            .env("SCENEDEX_INDEX", &self.index)
            .env("SCENEDEX_HOST", host)
            .env("SCENEDEX_CACHE_DIR", self.cache(host));
        match self.mock.wire() {
            Wire::OpenAi => command
                .env("OPENAI_BASE_URL", &self.mock.url)
                .env("OPENAI_API_KEY", KEY)
                .env("SCENEDEX_CAPTIONER", "openai"),
            Wire::Anthropic => command
                .env("ANTHROPIC_BASE_URL", &self.mock.url)
                .env("ANTHROPIC_API_KEY", KEY)
                .env("SCENEDEX_CAPTIONER", "anthropic"),
        };
        if let Backend::Server { url, key } = &self.backend {
            command
                .env("QDRANT_URL", url)
                .env("SCENEDEX_COLLECTION", &self.collection);
            if let Some(key) = key {
                command.env("QDRANT_API_KEY", key);
            }
        }
        command
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_on(HERE, args)
    }

    pub fn index(&self, extra: &[&str]) -> (Output, Vec<Value>, Value) {
        self.index_on(HERE, extra)
    }

    pub fn index_on(&self, host: &str, extra: &[&str]) -> (Output, Vec<Value>, Value) {
        let mut args = vec!["index", "--json"];
        args.extend(extra);
        let output = self
            .command_on(host, &args)
            .arg(&self.videos)
            .output()
            .unwrap();
        let (lines, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
        (output, lines, summary)
    }

    pub fn search(&self, query: &str, extra: &[&str]) -> Vec<Value> {
        let mut args = vec!["search", query, "--json"];
        args.extend(extra);
        let output = self.command(&args).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        json_lines(&String::from_utf8_lossy(&output.stdout)).0
    }

    pub fn stats(&self) -> Value {
        let output = self.command(&["stats", "--json"]).output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Starts indexing with every answer a quarter of a second late, and returns once the
    /// captioner has been asked `requests` times: a run caught in the middle.
    pub fn slow_index_midway(&self, requests: usize) -> std::process::Child {
        self.mock
            .script((0..100).map(|_| Fault::Stall(Duration::from_millis(250))));
        let child = self
            .command(&["index", "--jobs", "1", "--concurrency", "1"])
            .arg(&self.videos)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.wait_for_requests(requests);
        child
    }

    /// Starts `index` (with `extra`) on the archive, held just before it writes each file's
    /// record (the `failpoints` feature): an indexer caught holding its files.
    pub fn index_held_before_record(&self, extra: &[&str]) -> std::process::Child {
        let mut args = vec!["index"];
        args.extend(extra);
        self.command(&args)
            .arg(&self.videos)
            .env("FAILPOINTS", "index-before-record=sleep(60000)")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }

    /// `reembed --embedder MODEL --json`, which must succeed: its summary.
    pub fn reembed(&self, model: &str) -> Value {
        let output = self
            .command(&["reembed", "--embedder", model, "--json"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap()
    }

    /// Waits (at most a minute) until the stand-in has been asked this many times.
    pub fn wait_for_requests(&self, requests: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.mock.seen().len() < requests && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every segment search can find, as (file name, start, end, fingerprint), sorted.
    pub fn segments(&self) -> Vec<(String, i64, i64, String)> {
        let mut all: Vec<_> = self
            .search("anything", &["--limit", "1000", "--min-score", "0"])
            .iter()
            .map(|h| {
                let name = Path::new(h["path"].as_str().unwrap())
                    .strip_prefix(&self.videos)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let ms = |f: &str| (h[f].as_f64().unwrap() * 1000.0).round() as i64;
                (
                    name,
                    ms("start"),
                    ms("end"),
                    h["fingerprint"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        all.sort();
        all
    }
}

impl Archive {
    /// A client for each node of the server backend, and a runtime to call them on.
    pub fn clients(&self) -> Option<(tokio::runtime::Runtime, Vec<qdrant_client::Qdrant>)> {
        let Backend::Server { url, key } = &self.backend else {
            return None;
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let clients = url
            .split(',')
            .filter_map(|url| {
                let mut client = qdrant_client::Qdrant::from_url(url).skip_compatibility_check();
                if let Some(key) = key {
                    client = client.api_key(key.clone());
                }
                client.build().ok()
            })
            .collect();
        Some((runtime, clients))
    }

    /// What the server says of the collection.
    pub fn collection_info(&self) -> Option<qdrant_client::qdrant::CollectionInfo> {
        let (runtime, clients) = self.clients()?;
        let info = runtime
            .block_on(clients[0].collection_info(&self.collection))
            .unwrap();
        info.result
    }
}

impl Drop for Archive {
    fn drop(&mut self) {
        let Some((runtime, clients)) = self.clients() else {
            return;
        };
        for client in clients {
            // `reembed` leaves the name an alias of `NAME--MODEL`.
            let Ok(all) = runtime.block_on(client.list_collections()) else {
                continue;
            };
            for c in all.collections {
                if c.name == self.collection
                    || c.name.starts_with(&format!("{}--", self.collection))
                {
                    let _ = runtime.block_on(client.delete_collection(&c.name));
                }
            }
            return;
        }
    }
}

/// Indexes a file whose name is not UTF-8 three times: indexed once, then unchanged (never
/// indexed and removed in turns), found by search with its exact bytes, `--path` and a shell
/// line that names it, and pruned once it is gone.
pub fn name_that_is_not_utf8_is_kept(archive: &Archive) {
    use base64::Engine;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9 \xff.mp4");
    let path = archive.videos.join(name);
    std::fs::copy(fixture("colors.mp4"), &path).unwrap();
    let bytes = path.as_os_str().as_bytes().to_vec();
    let decode = |line: &Value| {
        base64::engine::general_purpose::STANDARD
            .decode(line["path_bytes"].as_str().expect("path_bytes"))
            .unwrap()
    };
    for status in ["indexed", "unchanged", "unchanged"] {
        let (output, lines, summary) = archive.index(&[]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(summary["removed"], 0, "{lines:?}");
        let line = lines
            .iter()
            .find(|l| l.get("path_bytes").is_some())
            .unwrap();
        assert_eq!(decode(line), bytes);
        assert_eq!(line["status"], status, "{lines:?}");
    }
    let mut search = archive.command(&["search", "Kowalczyk", "--json", "--path"]);
    let output = search.arg(&path).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let hits = json_lines(&String::from_utf8_lossy(&output.stdout)).0;
    assert!(!hits.is_empty());
    assert!(hits.iter().all(|h| decode(h) == bytes), "{hits:?}");
    // The shell line names the file byte for byte.
    let mpv = hits[0]["mpv"].as_str().unwrap();
    let quoted = mpv.splitn(4, ' ').nth(3).unwrap();
    let said = Command::new("bash")
        .args(["-c", &format!("printf %s {quoted}")])
        .output()
        .unwrap();
    assert_eq!(
        std::ffi::OsString::from_vec(said.stdout),
        path.as_os_str(),
        "{mpv}"
    );

    std::fs::remove_file(&path).unwrap();
    let (output, lines, summary) = archive.index(&["--prune-after", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["removed"], 1, "{lines:?}");
    let left = archive.search("Kowalczyk", &["--limit", "50"]);
    assert!(
        left.iter().all(|h| h.get("path_bytes").is_none()),
        "{left:?}"
    );
}

/// Issue 23: an index built with MiniLM is embedded again with e5 by `reembed`: every segment
/// is kept with its times and file, no caption is asked for, the index now says e5, its
/// vectors are e5's vectors of the captions (`query` finds `caption`, with the similarity e5
/// gives the two), and the next `index` run finds nothing to do.
pub fn reembed_keeps_every_segment(archive: &Archive, query: &str, caption: &str) {
    use scenedex::embed::{cosine, Embedder, E5};
    let (output, _, _) = archive.index(&["--embedding-model", "minilm"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let before = archive.segments();
    assert!(before.len() > 2, "{before:?}");
    let asked = archive.mock.seen().len();
    let summary = archive.reembed("e5");
    assert_eq!(summary["from"], "all-MiniLM-L6-v2", "{summary}");
    assert_eq!(summary["to"], E5::NAME, "{summary}");
    assert_eq!(summary["segments"], before.len(), "{summary}");
    assert_eq!(summary["from_caption_only"], 0, "{summary}");
    assert_eq!(archive.stats()["embedder"], E5::NAME);
    assert_eq!(archive.segments(), before);
    assert_eq!(
        archive.mock.seen().len(),
        asked,
        "reembed asked the captioner"
    );

    let hits = archive.search(query, &["--limit", "1"]);
    assert_eq!(hits[0]["caption"], caption, "{hits:?}");
    let e5 = E5::load(&E5::default_dir().unwrap()).unwrap();
    let expected = cosine(
        &e5.embed_query(query).unwrap(),
        &e5.embed(&[caption]).unwrap()[0],
    );
    let similarity = hits[0]["similarity"].as_f64().unwrap() as f32;
    assert!(
        (similarity - expected).abs() < 0.01,
        "{similarity} is not e5's {expected}"
    );
    let again = archive
        .command(&["reembed", "--embedder", "multilingual-e5-small"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("already embedded with"),
        "{}",
        stderr(&again)
    );

    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 0, "{summary}");
    assert_eq!(archive.mock.seen().len(), asked);
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn file_name(hit: &Value) -> &str {
    Path::new(hit["path"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
}

pub fn holds(hit: &Value, moment: f64) -> bool {
    hit["start"].as_f64().unwrap() <= moment && moment < hit["end"].as_f64().unwrap()
}
