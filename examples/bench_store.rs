//! Speed and size of the embedded store and the local embedder, for the README's table.
//!
//!     cargo run --release --example bench_store -- 10000 100000
//!
//! For each size N: N segments with random unit vectors and eight-word captions go into a
//! fresh qdrant-edge index, 1,000 per write as `index` writes them, while the store builds its
//! HNSW graphs as it grows. At each tenth of the way: the insert rate over that tenth, its
//! longest write (one that built a graph), and 200 hybrid queries (p50 and p99). At the end:
//! the run's last `optimize` (what `index` waits for before it exits), the queries again, and
//! the index's size on disk. Then the MiniLM embedder's throughput on caption-length
//! sentences.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use scenedex::embed::{Embedder, MiniLm};
use scenedex::store::files::SEGMENT;
use scenedex::store::{EdgeStore, Point, Query, VectorStore, Vectors};
use serde_json::json;

const DIMENSION: usize = 384;
const QUERIES: usize = 200;
const WORDS: usize = 5000;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes are whole numbers"))
        .collect();
    for n in sizes {
        bench_store(n);
    }
    bench_embedder();
}

fn unit(rng: &mut StdRng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..DIMENSION).map(|_| rng.random::<f32>() - 0.5).collect();
    scenedex::embed::normalize(&mut v);
    v
}

fn words(rng: &mut StdRng, count: usize) -> String {
    (0..count)
        .map(|_| format!("w{}", rng.random_range(0..WORDS)))
        .collect::<Vec<_>>()
        .join(" ")
}

const WRITE: usize = 1000;

fn bench_store(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = EdgeStore::open(dir.path(), Some(("bench", DIMENSION)), true).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    println!("\n{n} segments, written {WRITE} at a time:\n");
    println!("| segments | insert s so far | segments/s over this tenth | longest write s | p50 ms | p99 ms | engine segments |");
    println!("|---|---|---|---|---|---|---|");
    let tenth = (n / 10).max(WRITE);
    let (started, mut mark, mut marked, mut longest) = (Instant::now(), Instant::now(), 0, 0f64);
    for first in (0..n).step_by(WRITE) {
        let points = (first..(first + WRITE).min(n))
            .map(|i| point(i, &mut rng))
            .collect();
        let write = Instant::now();
        store.upsert(points).unwrap();
        longest = longest.max(write.elapsed().as_secs_f64());
        let done = (first + WRITE).min(n);
        if done.is_multiple_of(tenth) || done == n {
            let rate = (done - marked) as f64 / mark.elapsed().as_secs_f64();
            let (p50, p99) = latencies(&store, &mut rng);
            println!(
                "| {done} | {:.1} | {rate:.0} | {longest:.1} | {p50:.2} | {p99:.2} | {} |",
                started.elapsed().as_secs_f64(),
                store.shape().segments
            );
            (mark, marked, longest) = (Instant::now(), done, 0.0);
        }
    }
    store.flush().unwrap();
    let last = Instant::now();
    store.optimize().unwrap();
    let last = last.elapsed().as_secs_f64();
    let (p50, p99) = latencies(&store, &mut rng);
    println!(
        "\nthe run's last optimize: {last:.1} s; then p50 {p50:.2} ms, p99 {p99:.2} ms; \
         {:.0} MB on disk",
        EdgeStore::bytes_on_disk(dir.path()) as f64 / 1e6
    );
}

fn point(i: usize, rng: &mut StdRng) -> Point {
    Point {
        id: i as u64,
        vectors: Some(Vectors::new(unit(rng), words(rng, 8))),
        payload: json!({"record": SEGMENT, "path": format!("/archive/{}.mp4", i / 100),
                        "start": (i % 100) as f64 * 10.0, "end": (i % 100) as f64 * 10.0 + 10.0})
        .as_object()
        .unwrap()
        .clone(),
    }
}

/// p50 and p99 of a hybrid query as `search` sends it when no path or time is asked for,
/// in milliseconds.
fn latencies(store: &EdgeStore, rng: &mut StdRng) -> (f64, f64) {
    let mut times: Vec<f64> = (0..QUERIES)
        .map(|_| {
            let dense = unit(rng);
            let text = words(rng, 3);
            let started = Instant::now();
            let hits = store
                .search(&Query {
                    dense: &dense,
                    text: &text,
                    limit: 10,
                    filter: vec![],
                })
                .unwrap();
            assert!(!hits.is_empty());
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    (times[QUERIES / 2], times[QUERIES * 99 / 100])
}

fn bench_embedder() {
    let model = MiniLm::load(&MiniLm::default_dir().unwrap()).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let subjects = [
        "a dog",
        "two children",
        "a red car",
        "an old man",
        "a cyclist",
        "a cat",
    ];
    let actions = [
        "jumps into",
        "walks along",
        "waits beside",
        "runs across",
        "looks at",
    ];
    let places = [
        "a swimming pool",
        "a busy street",
        "a quiet beach",
        "a kitchen table",
        "a forest path",
    ];
    let captions: Vec<String> = (0..2000)
        .map(|_| {
            format!(
                "{} {} {} on a sunny afternoon, seen from a low angle.",
                subjects[rng.random_range(0..subjects.len())],
                actions[rng.random_range(0..actions.len())],
                places[rng.random_range(0..places.len())]
            )
        })
        .collect();
    let texts: Vec<&str> = captions.iter().map(String::as_str).collect();
    let started = Instant::now();
    model.embed(&texts).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "\nMiniLM: {} captions in {seconds:.2} s, {:.0} captions per second",
        texts.len(),
        texts.len() as f64 / seconds
    );
}
