//! The main job against a real Qdrant: the server QDRANT_URL names, or clusters this test binary
//! starts on loopback from a Qdrant binary (SCENEDEX_QDRANT_BIN, or `qdrant` on PATH or in
//! ~/.local/bin) with scripts/cluster.sh. Without either, each test says it was skipped. Each
//! test uses a collection of its own and drops it afterwards.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::archive::{file_name, holds, stderr, Archive};
use common::vlm::Fault;
use common::{command, fixture, json_lines, qdrant};
use serde_json::Value;

/// Six files of different content.
const SIX: [&str; 6] = [
    "colors.mp4",
    "cuts.mp4",
    "fades.mp4",
    "flash.mp4",
    "static.mp4",
    "short_gop.mp4",
];

fn statuses(lines: &[Value]) -> BTreeMap<String, String> {
    lines
        .iter()
        .map(|l| {
            (
                file_name(l).to_string(),
                l["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn spawn_index(archive: &Archive, host: &str, extra: &[&str]) -> Child {
    let mut args = vec!["index", "--json"];
    args.extend(extra);
    archive
        .command_on(host, &args)
        .arg(&archive.videos)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn index_search_move_prune_and_forget_against_a_qdrant_cluster() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4", "cuts.mp4", "fades.mp4"]);
    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 3, "{summary}");
    let asked = archive.mock.seen().len();
    let optimizers = archive
        .collection_info()
        .unwrap()
        .config
        .unwrap()
        .optimizer_config
        .unwrap();
    assert_eq!(
        optimizers.indexing_threshold,
        Some(scenedex::store::INDEXING_THRESHOLD_KB as u64),
        "the server builds graphs from the embedded store's threshold"
    );

    // A paraphrase in another language, as tests/index.rs asks the embedded store.
    let hits = archive.search("ein weißes Quadrat auf rotem Grund", &["--limit", "3"]);
    assert_eq!(file_name(&hits[0]), "colors.mp4", "{hits:#?}");
    assert!(holds(&hits[0], 1.0), "{:#?}", hits[0]);
    let segments = archive.segments();

    let (_, _, again) = archive.index(&[]);
    assert_eq!(again["unchanged"], 3, "{again}");
    assert_eq!(archive.mock.seen().len(), asked, "re-indexing asked again");
    assert_eq!(
        archive.segments(),
        segments,
        "re-indexing changed the segments"
    );

    std::fs::create_dir_all(archive.videos.join("moved")).unwrap();
    let renamed = archive.videos.join("moved/renamed.mp4");
    std::fs::rename(archive.videos.join("colors.mp4"), &renamed).unwrap();
    let (_, _, moved) = archive.index(&[]);
    assert_eq!(
        (moved["moved"].as_u64(), moved["indexed"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(archive.mock.seen().len(), asked, "a move was paid for");
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert!(hits[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("moved/renamed.mp4"));

    std::fs::remove_file(archive.videos.join("fades.mp4")).unwrap();
    let (output, lines, pruned) = archive.index(&["--prune-after", "0"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(pruned["removed"], 1, "{lines:?}");
    assert!(archive.segments().iter().all(|s| s.0 != "fades.mp4"));

    let forget = archive.command(&["forget"]).arg(&renamed).output().unwrap();
    assert!(forget.status.success(), "{}", stderr(&forget));
    assert_eq!(String::from_utf8_lossy(&forget.stdout), "forgot 1 path\n");
    let names: Vec<String> = archive.segments().into_iter().map(|s| s.0).collect();
    assert!(names.iter().all(|n| n == "cuts.mp4"), "{names:?}");
}

/// Requests one indexer alone makes to index these files into a new collection.
fn requests_alone(cluster: &qdrant::Cluster, files: &[&str]) -> usize {
    let alone = Archive::on(cluster, files);
    let (output, _, _) = alone.index(&["--jobs", "1"]);
    assert!(output.status.success(), "{}", stderr(&output));
    alone.mock.seen().len()
}

#[test]
fn two_indexers_on_one_folder_at_once_caption_each_file_once() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &SIX);
    // Answers as slow as a real model's, so that the two runs overlap.
    archive.mock.set_latency(Duration::from_millis(400));
    let one_at_a_time = ["--jobs", "1"];
    let a = spawn_index(&archive, "machine-a", &one_at_a_time);
    archive.wait_for_requests(1);
    let b = spawn_index(&archive, "machine-b", &one_at_a_time);
    let mut indexed_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, child) in [("machine-a", a), ("machine-b", b)] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        let (lines, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
        assert_eq!(summary["failed"], 0, "{summary}");
        for (name, status) in statuses(&lines) {
            assert!(
                ["indexed", "claimed", "copy"].contains(&status.as_str()),
                "{name}: {status}"
            );
            if status == "indexed" {
                indexed_by.entry(host.into()).or_default().push(name);
            }
        }
    }
    let mut all: Vec<&str> = indexed_by.values().flatten().map(String::as_str).collect();
    all.sort();
    let mut six = SIX.to_vec();
    six.sort();
    assert_eq!(all, six, "each file once: {indexed_by:?}");
    assert_eq!(
        indexed_by.len(),
        2,
        "both machines took a share: {indexed_by:?}"
    );
    // The two machines, with caches of their own, asked what one machine alone asks for the
    // whole folder, and nothing more: a picture two files share (answers travel with the
    // index since issue 25) is asked once for the cluster.
    let expected = requests_alone(cluster, &SIX);
    assert_eq!(archive.mock.seen().len(), expected, "{indexed_by:?}");
    let segments = archive.segments();
    let mut distinct = segments.clone();
    distinct.dedup_by(|x, y| (&x.0, x.1) == (&y.0, y.1));
    assert_eq!(
        distinct.len(),
        segments.len(),
        "a segment was written twice"
    );
}

#[test]
fn a_lease_of_a_dead_indexer_expires_and_another_machine_takes_the_file_over() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4"]);
    // The first answer never comes in time: machine a dies holding the file.
    archive.mock.script([Fault::Stall(Duration::from_secs(30))]);
    let mut a = spawn_index(
        &archive,
        "machine-a",
        &["--jobs", "1", "--concurrency", "1", "--lease", "8"],
    );
    archive.wait_for_requests(1);
    let claimed_at = Instant::now();
    a.kill().unwrap();
    a.wait().unwrap();

    let (output, lines, summary) = archive.index_on("machine-b", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["claimed"], 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "claimed");
    assert_eq!(lines[0]["claimed_by"]["host"], "machine-a");

    let expired = claimed_at + Duration::from_secs(9);
    std::thread::sleep(expired.saturating_duration_since(Instant::now()));
    let (output, lines, summary) = archive.index_on("machine-b", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1, "{lines:?}");
    let hits = archive.search("Kowalczyk", &["--limit", "1"]);
    assert_eq!(file_name(&hits[0]), "colors.mp4");
}

#[test]
fn a_machine_tag_keeps_another_machines_files_under_the_same_folder() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4", "cuts.mp4"]);
    let (output, _, _) = archive.index_on("machine-a", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    // Machine b's own disk, mounted at the same path, holds other files.
    for name in ["colors.mp4", "cuts.mp4"] {
        std::fs::remove_file(archive.videos.join(name)).unwrap();
    }
    for name in ["fades.mp4", "flash.mp4"] {
        std::fs::copy(fixture(name), archive.videos.join(name)).unwrap();
    }
    for _ in 0..2 {
        let (output, lines, summary) = archive.index_on("machine-b", &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(summary["removed"], 0, "{lines:?}");
        assert_eq!(summary["failed"], 0, "{lines:?}");
    }
    let names: std::collections::BTreeSet<String> =
        archive.segments().into_iter().map(|s| s.0).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert_eq!(
        archive.stats()["hosts"],
        serde_json::json!(["machine-a", "machine-b"])
    );
    let people = archive
        .command_on("machine-b", &["search", "Kowalczyk", "--limit", "1"])
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&people.stdout)
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert!(first.contains(" machine-a:/"), "{first}");
}

#[test]
fn an_unmounted_folder_is_refused_and_nothing_paid_for_is_lost() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4", "cuts.mp4"]);
    archive.index(&[]);
    let segments = archive.segments();
    let thumbs = archive.index.join("thumbs").join(&archive.collection);
    let made = std::fs::read_dir(&thumbs).unwrap().count();
    let away = archive.dir.path().join("elsewhere");
    std::fs::rename(&archive.videos, &away).unwrap();
    std::fs::create_dir(&archive.videos).unwrap();

    let (output, lines, summary) = archive.index(&[]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let error = stderr(&output);
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.starts_with("Error: 1 of 1 files failed (each one reported above); first: "),
        "{error}"
    );
    assert!(
        error.contains("unmounted disk") && error.contains("--prune-all"),
        "{error}"
    );
    assert_eq!(summary["removed"], 0, "{lines:?}");
    assert_eq!(archive.segments(), segments);
    assert_eq!(std::fs::read_dir(&thumbs).unwrap().count(), made);

    let (output, _, summary) = archive.index(&["--prune-all"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["removed"], 2);
    assert!(archive.segments().is_empty());
    assert_eq!(std::fs::read_dir(&thumbs).unwrap().count(), 0);
}

/// Points of one kind in the archive's collection, counted by the server itself.
fn count(archive: &Archive, cluster: &qdrant::Cluster, record: &str) -> u64 {
    use qdrant_client::qdrant::{Condition, CountPointsBuilder, Filter};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut client = qdrant_client::Qdrant::from_url(&cluster.urls[0]).skip_compatibility_check();
    if let Some(key) = &cluster.key {
        client = client.api_key(key.clone());
    }
    let client = client.build().unwrap();
    let request = CountPointsBuilder::new(&archive.collection)
        .filter(Filter::must([Condition::matches(
            "record",
            record.to_string(),
        )]))
        .exact(true);
    runtime
        .block_on(client.count(request))
        .map_or(0, |r| r.result.map_or(0, |c| c.count))
}

#[test]
fn orphans_of_a_kill_minus_9_mid_write_are_never_found_and_swept_away() {
    if !cfg!(feature = "failpoints") {
        eprintln!("skipped: needs --features failpoints, as scripts/test.sh builds");
        return;
    }
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4"]);
    let mut child = archive.index_held_before_record(&[]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(&archive, cluster, "segment") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap(); // SIGKILL, between the segments and the record
    child.wait().unwrap();
    assert!(
        count(&archive, cluster, "segment") > 0,
        "no segment was written"
    );
    assert!(
        archive.search("Kowalczyk", &["--limit", "10"]).is_empty(),
        "a file without a record was found"
    );

    let stats = archive.stats();
    assert!(stats["orphans_removed"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(count(&archive, cluster, "segment"), 0);
    assert_eq!(stats["files"], 0);

    let (output, _, summary) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(summary["indexed"], 1);
    assert_eq!(
        file_name(&archive.search("Kowalczyk", &["--limit", "1"])[0]),
        "colors.mp4"
    );
}

#[test]
fn a_file_whose_name_is_not_utf8_is_indexed_once_across_three_runs_on_a_server() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    common::archive::name_that_is_not_utf8_is_kept(&Archive::on(cluster, &["cuts.mp4"]));
}

#[test]
fn a_node_dying_mid_run_fails_nothing_and_loses_nothing() {
    let Some(cluster) = qdrant::start(3, None) else {
        return;
    };
    let archive = Archive::on(&cluster, &SIX);
    archive.mock.set_latency(Duration::from_millis(200));
    let child = spawn_index(&archive, "here", &["--shards", "3", "--replicas", "2"]);
    archive.wait_for_requests(4);
    // The node every request goes to first.
    cluster.kill(0);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let (lines, summary) = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(summary["indexed"], 6, "{lines:?}");
    let segments = archive.segments();
    assert_eq!(segments.len() as u64, summary["segments"].as_u64().unwrap());
    let names: std::collections::BTreeSet<&str> = segments.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn a_wrong_key_a_dead_node_and_another_model_each_get_one_line_and_their_own_status() {
    let Some(cluster) = qdrant::start(1, Some("the-right-key")) else {
        return;
    };
    for key in [Some("a-wrong-key"), None] {
        let mut stats = command();
        stats.args(["stats", "--qdrant-url", &cluster.url()]);
        if let Some(key) = key {
            stats.env("QDRANT_API_KEY", key);
        }
        let output = stats.output().unwrap();
        let error = stderr(&output);
        assert_eq!(output.status.code(), Some(6), "{error}");
        assert!(error.contains("refused the API key"), "{error}");
        assert!(
            !error.contains("a-wrong-key"),
            "the key was printed: {error}"
        );
        assert_eq!(error.lines().count(), 1, "{error}");
    }

    let archive = Archive::on(&cluster, &["colors.mp4"]);
    let (output, _, _) = archive.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let other = archive
        .command(&["search", "a dog", "--embedder", "openai"])
        .arg(format!("--embedding-url={}", archive.mock.url))
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(stderr(&other).contains("was built with multilingual-e5-small"));
    assert_eq!(stderr(&other).lines().count(), 1);
}

#[test]
fn a_dead_server_is_one_clear_line_and_a_distinct_status() {
    // Nothing listens on port 9 (discard) on a test machine's loopback.
    let output = command()
        .args(["stats", "--qdrant-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = stderr(&output);
    assert_eq!(output.status.code(), Some(6), "{stderr}");
    assert!(
        stderr.starts_with("Error: cannot reach the Qdrant server at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn a_malformed_qdrant_url_is_a_usage_error() {
    let output = command()
        .args(["stats", "--qdrant-url", "notaurl"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("not a Qdrant URL"));
}

#[test]
fn serve_on_another_machine_makes_the_thumbnails_it_lacks_and_pays_for_nothing() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4"]);
    let (output, _, _) = archive.index_on("machine-a", &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let asked = archive.mock.seen().len();
    // Machine B sees the same files, and keeps its index folder (thumbnails) on its own disk.
    let own = archive.dir.path().join("machine-b-index");
    let output = archive
        .command_on("machine-b", &["index", "--json"])
        .env("SCENEDEX_INDEX", &own)
        .arg(&archive.videos)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        archive.mock.seen().len(),
        asked,
        "machine B paid for a caption again"
    );

    let mut command = archive.command_on("machine-b", &["serve", "--bind", "127.0.0.1:0"]);
    command
        .env("SCENEDEX_INDEX", &own)
        .env("XDG_CACHE_HOME", archive.dir.path().join("xdg-cache"));
    let served = common::serve::Served::start(command);
    let reply = served.get("/api/search?q=red+background", &[]);
    let answer: Value = serde_json::from_slice(&reply.body).unwrap();
    let hit = &answer["hits"][0];
    assert_eq!(hit["play"], "native", "{answer}");
    let thumb = hit["thumb"].as_str().unwrap();
    let kept = own
        .join("thumbs")
        .join(&archive.collection)
        .join(thumb.trim_start_matches("/thumb/"))
        .with_extension("jpg");
    assert!(!kept.exists(), "machine B made no thumbnail while indexing");
    let picture = served.get(thumb, &[]);
    assert_eq!(picture.status, 200, "{}", picture.text());
    let image = image::load_from_memory(&picture.body).unwrap().to_rgb8();
    let (r, g, b) = common::vlm::mean_colour(&image);
    assert!(r > g + 60.0 && r > b + 60.0, "the red scene: {r} {g} {b}");
    assert!(kept.is_file(), "kept for next time: {}", kept.display());
}

/// Sends a signal to a child process (STOP, CONT).
fn signal(child: &Child, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn issue25_an_indexer_paused_past_its_lease_pays_nothing_more_and_writes_nothing() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["cuts.mp4"]);
    // Every answer a little late, so that machine a is in the middle of the file when paused.
    archive
        .mock
        .script((0..200).map(|_| Fault::Stall(Duration::from_millis(300))));
    let a = spawn_index(
        &archive,
        "machine-a",
        &["--jobs", "1", "--concurrency", "1", "--lease", "3"],
    );
    archive.wait_for_requests(1);
    signal(&a, "STOP");
    let paused = Instant::now();
    std::thread::sleep(Duration::from_secs(4));

    let (output, lines, summary) = archive.index_on("machine-b", &[]);
    let resumed = |a: Child| {
        signal(&a, "CONT");
        a.wait_with_output().unwrap()
    };
    if !output.status.success() || summary["indexed"] != 1 {
        resumed(a);
        panic!("{lines:?} {}", stderr(&output));
    }
    let asked = archive.mock.seen().len();
    let segments = archive.segments();
    assert!(
        paused.elapsed() > Duration::from_secs(3),
        "a stayed paused past its lease"
    );

    let a = resumed(a);
    let (lines, summary) = json_lines(&String::from_utf8_lossy(&a.stdout));
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert_eq!(summary["lost"], 1, "{lines:?}");
    assert_eq!(lines[0]["status"], "lost", "{lines:?}");
    assert_eq!(
        archive.mock.seen().len(),
        asked,
        "machine a asked again after resuming"
    );
    assert_eq!(
        archive.segments(),
        segments,
        "machine a wrote over machine b's work"
    );
    assert_eq!(count(&archive, cluster, "file"), 1);
}

/// Two seconds of a title card every file opens with (a test pattern: a plain colour is no
/// picture worth captioning), then two seconds of another pattern.
fn opens_with_the_card(scene: &str, out: &std::path::Path) {
    let card = "testsrc=s=320x240:r=25:d=2";
    let scene = format!("{scene}=s=320x240:r=25:d=2");
    common::ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            card,
            "-f",
            "lavfi",
            "-i",
            &scene,
            "-filter_complex",
            "[0:v][1:v]concat=n=2:v=1[v]",
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
        ],
        out,
    );
}

#[test]
fn issue25_machines_with_caches_of_their_own_caption_a_title_card_once() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let (archive, alone) = (Archive::on(cluster, &[]), Archive::on(cluster, &[]));
    for videos in [&archive.videos, &alone.videos] {
        for (folder, scene) in [("a", "smptebars"), ("b", "rgbtestsrc")] {
            std::fs::create_dir_all(videos.join(folder)).unwrap();
            opens_with_the_card(scene, &videos.join(folder).join("news.mp4"));
        }
    }
    // What one machine with one cache asks for both files: the card once.
    let (output, _, _) = alone.index(&[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let once = alone.mock.seen().len();
    let machines: Vec<Child> = ["a", "b"]
        .iter()
        .map(|folder| {
            archive
                .command_on(&format!("machine-{folder}"), &["index", "--json"])
                .arg(archive.videos.join(folder))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for machine in machines {
        let output = machine.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(once > 0);
    assert_eq!(archive.mock.seen().len(), once, "{:?}", archive.segments());
    assert_eq!(count(&archive, cluster, "file"), 2);
}

#[test]
fn issue23_reembed_switches_a_collection_through_its_name() {
    let Some(cluster) = qdrant::shared() else {
        return;
    };
    let archive = Archive::on(cluster, &["colors.mp4", "cuts.mp4", "fades.mp4"]);
    // Another archive's collection whose name only looks like a reembed's: never touched.
    let films = format!("{}--films", archive.collection);
    {
        use qdrant_client::qdrant::{CreateCollectionBuilder, Distance, VectorParamsBuilder};
        let (runtime, clients) = archive.clients().unwrap();
        runtime
            .block_on(
                clients[0].create_collection(
                    CreateCollectionBuilder::new(&films)
                        .vectors_config(VectorParamsBuilder::new(4, Distance::Cosine)),
                ),
            )
            .unwrap();
    }
    common::archive::reembed_keeps_every_segment(
        &archive,
        "ein weißes Quadrat auf rotem Grund",
        "A white square sits on a bright red background.",
    );
    // And back: the name now names the MiniLM collection, and the e5 one is gone.
    let before = archive.segments();
    let output = archive
        .command(&["reembed", "--embedder", "minilm"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(archive.stats()["embedder"], "all-MiniLM-L6-v2");
    assert_eq!(archive.segments(), before);
    assert!(
        archive.collection_info().is_some(),
        "the name still answers"
    );
    let names = collections(&archive);
    let minilm = format!("{}--all-minilm-l6-v2", archive.collection);
    assert_eq!(names, vec![minilm.clone()], "{names:?}");

    // A switch cut short after the old collection went and before the name was an alias: the
    // next command that opens the collection finishes it.
    let (runtime, clients) = archive.clients().unwrap();
    runtime
        .block_on(clients[0].delete_alias(archive.collection.as_str()))
        .unwrap();
    assert_eq!(archive.stats()["embedder"], "all-MiniLM-L6-v2");
    assert_eq!(archive.segments(), before);

    // While an indexer holds a file, reembed refuses to begin.
    if cfg!(feature = "failpoints") {
        std::fs::copy(fixture("flash.mp4"), archive.videos.join("flash.mp4")).unwrap();
        let mut child = archive.index_held_before_record(&[]);
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(&archive, cluster, "lease") == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let output = archive
            .command(&["reembed", "--embedder", "e5"])
            .output()
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("being indexed"),
            "{}",
            stderr(&output)
        );
        assert_eq!(collections(&archive), vec![minilm]);
    }
}

/// The collections of the archive's name on the server.
fn collections(archive: &Archive) -> Vec<String> {
    let (runtime, clients) = archive.clients().unwrap();
    let mut names: Vec<String> = runtime
        .block_on(clients[0].list_collections())
        .unwrap()
        .collections
        .into_iter()
        .map(|c| c.name)
        .filter(|n| n.starts_with(&archive.collection))
        .collect();
    assert!(
        names.contains(&format!("{}--films", archive.collection)),
        "another archive's collection was removed: {names:?}"
    );
    names.retain(|n| !n.ends_with("--films"));
    names.sort();
    names
}
