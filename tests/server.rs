//! The same main job against a real Qdrant server, when QDRANT_URL points at one (gRPC port,
//! e.g. http://localhost:6334; QDRANT_API_KEY if it needs one). Each test uses a collection of
//! its own and drops it afterwards.

mod common;

use common::vlm::{MockVlm, Wire, KEY};
use common::{command, fixture, json_lines};
use serde_json::Value;

fn server() -> Option<String> {
    match std::env::var("QDRANT_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: QDRANT_URL is not set, so there is no Qdrant server to test against"
            );
            None
        }
    }
}

/// Drops the test's collection when the test ends, pass or fail.
struct Collection {
    url: String,
    name: String,
}

impl Drop for Collection {
    fn drop(&mut self) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut client = qdrant_client::Qdrant::from_url(&self.url).skip_compatibility_check();
        if let Ok(key) = std::env::var("QDRANT_API_KEY") {
            client = client.api_key(key);
        }
        let client = client.build().unwrap();
        let _ = runtime.block_on(client.delete_collection(&self.name));
    }
}

#[test]
fn index_search_reindex_and_forget_against_a_qdrant_server() {
    let Some(url) = server() else { return };
    let collection = Collection {
        url: url.clone(),
        name: format!("scenedex-test-{}", std::process::id()),
    };
    let dir = tempfile::tempdir().unwrap();
    let videos = dir.path().join("videos");
    std::fs::create_dir_all(&videos).unwrap();
    for name in ["colors.mp4", "cuts.mp4"] {
        std::fs::copy(fixture(name), videos.join(name)).unwrap();
    }
    let mock = MockVlm::start(Wire::OpenAi);
    let run = |args: &[&str]| {
        let mut command = command();
        if let Ok(key) = std::env::var("QDRANT_API_KEY") {
            command.env("QDRANT_API_KEY", key);
        }
        let output = command
            .args(args)
            .args(["--qdrant-url", &url, "--collection", &collection.name])
            .env("OPENAI_BASE_URL", &mock.url)
            .env("OPENAI_API_KEY", KEY)
            .env("SCENEDEX_CAPTIONER", "openai")
            .env("SCENEDEX_CACHE_DIR", dir.path().join("cache"))
            .env("SCENEDEX_INDEX", dir.path().join("index"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        json_lines(&String::from_utf8_lossy(&output.stdout))
    };
    let videos_arg = videos.to_str().unwrap();
    let (_, summary) = run(&["index", "--json", videos_arg]);
    assert_eq!(summary["indexed"], 2);
    let asked = mock.seen().len();
    let (hits, _) = run(&["search", "red background", "--json", "--limit", "50"]);
    let red = hits
        .iter()
        .find(|h| h["caption"].as_str().unwrap().contains("red"))
        .unwrap();
    assert!(red["path"].as_str().unwrap().ends_with("colors.mp4"));
    let segments = hits.len();

    let (_, summary) = run(&["index", "--json", videos_arg]);
    assert_eq!(summary["unchanged"], 2);
    assert_eq!(mock.seen().len(), asked);
    let (again, _) = run(&["search", "red background", "--json", "--limit", "50"]);
    assert_eq!(again.len(), segments, "re-indexing duplicated segments");

    run(&["forget", videos.join("colors.mp4").to_str().unwrap()]);
    let (left, _) = run(&["search", "red background", "--json", "--limit", "50"]);
    assert!(left
        .iter()
        .all(|h: &Value| h["path"].as_str().unwrap().ends_with("cuts.mp4")));
}

#[test]
fn a_dead_server_is_one_clear_line_and_a_distinct_status() {
    // Nothing listens on port 9 (discard) on a test machine's loopback.
    let output = command()
        .args(["stats", "--qdrant-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.starts_with("Error: cannot reach the Qdrant server at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}
