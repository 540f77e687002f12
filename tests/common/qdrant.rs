//! A real Qdrant for the server tests: the one QDRANT_URL names, or clusters started on loopback
//! from a Qdrant binary by scripts/cluster.sh (SCENEDEX_QDRANT_BIN, else `qdrant` on PATH or in
//! ~/.local/bin). Nodes stop when the test process ends, whatever way it ends.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;

/// One node of a cluster this process started.
#[derive(Clone, Debug)]
pub struct Node {
    pub grpc: String,
    pub rest: String,
    pub pid: u32,
}

#[derive(Debug)]
pub struct Cluster {
    pub urls: Vec<String>,
    pub nodes: Vec<Node>,
    pub key: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// `--qdrant-url`'s value: every node, comma-separated.
    pub fn url(&self) -> String {
        self.urls.join(",")
    }

    /// Ends one node at once, as a crash would.
    pub fn kill(&self, node: usize) {
        let _ = Command::new("kill")
            .args(["-9", &self.nodes[node].pid.to_string()])
            .status();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &self.nodes {
            let _ = Command::new("kill").arg(node.pid.to_string()).status();
        }
    }
}

/// The Qdrant binary to start clusters from, if there is one.
pub fn binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SCENEDEX_QDRANT_BIN").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("qdrant"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let home = dirs_home()?.join(".local/bin/qdrant");
        home.is_file().then_some(home)
    })
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

/// The server every test that needs just one shares: QDRANT_URL, or a 3-node cluster started
/// once for this test binary. None (with a note) when there is neither.
pub fn shared() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| match std::env::var("QDRANT_URL") {
            Ok(url) if !url.trim().is_empty() => Some(Cluster {
                urls: url.split(',').map(|u| u.trim().to_string()).collect(),
                nodes: vec![],
                key: std::env::var("QDRANT_API_KEY").ok(),
                _dir: None,
            }),
            _ => start(3, None),
        })
        .as_ref()
}

/// A cluster of this test's own, for tests that kill nodes or need a key; None (with a note)
/// when there is no Qdrant binary.
pub fn start(nodes: usize, key: Option<&str>) -> Option<Cluster> {
    let Some(bin) = binary() else {
        eprintln!(
            "skipped: no Qdrant binary (set SCENEDEX_QDRANT_BIN, or QDRANT_URL for a running server)"
        );
        return None;
    };
    // Ports apart from other test binaries' (by process) and other clusters of this one, and
    // below the range the system hands out for outgoing connections and port 0 (32768 up).
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = NEXT.fetch_add(1, Ordering::Relaxed) % 3;
    let port = 20_000 + (std::process::id() % 100) as u16 * 120 + slot * 40;
    let dir = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/cluster.sh");
    let mut command = Command::new(script);
    command
        .arg("--nodes")
        .arg(nodes.to_string())
        .arg("--dir")
        .arg(dir.path())
        .arg("--port")
        .arg(port.to_string())
        .arg("--bin")
        .arg(&bin)
        .arg("--watch")
        .arg(std::process::id().to_string())
        .arg("--clean");
    if let Some(key) = key {
        command.arg("--key").arg(key);
    }
    let output = command.output().expect("scripts/cluster.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let logs: String = (1..=nodes)
            .map(|i| {
                let log = std::fs::read_to_string(dir.path().join(format!("node{i}/log")));
                let log = log.unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                format!(
                    "--- node {i}:\n{}\n",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect();
        panic!(
            "cluster.sh failed: {stdout}{}{logs}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let mut cluster = Cluster {
        urls: vec![],
        nodes: vec![],
        key: key.map(str::to_string),
        _dir: Some(dir),
    };
    for line in stdout.lines() {
        if let Some(urls) = line.strip_prefix("QDRANT_URL=") {
            cluster.urls = urls.split(',').map(str::to_string).collect();
        } else if line.starts_with("node ") {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(&format!("{name}=")))
                    .unwrap()
                    .to_string()
            };
            cluster.nodes.push(Node {
                grpc: field("grpc"),
                rest: field("rest"),
                pid: field("pid").parse().unwrap(),
            });
        }
    }
    assert_eq!(cluster.nodes.len(), nodes, "{stdout}");
    Some(cluster)
}
