//! Issue 23's embedder benchmark, for the README's table: each local embedder's load time,
//! throughput on caption-length texts (batches of 32, the threads candle takes), and recall@1
//! and @5 of tests/data/multilingual_queries.json (twelve scenes asked for in eight languages,
//! among 25 captions) per query language. Prints markdown rows.
//!
//!     cargo run --release --example bench_languages [TEXTS]

use std::time::Instant;

use scenedex::embed::{cosine, Embedder, MiniLm, E5};
use serde_json::Value;

const LANGS: [&str; 8] = ["en", "de", "fr", "es", "ru", "zh", "ja", "ar"];

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(2000);
    let data: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/multilingual_queries.json"
        ))
        .expect("the query set"),
    )
    .expect("JSON");
    let captions: Vec<&str> = data["captions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let texts: Vec<&str> = captions.iter().copied().cycle().take(count).collect();
    println!(
        "| embedder | load s | captions/s | recall@1 | recall@5 | {} |",
        LANGS.map(|l| format!("@1 {l}")).join(" | ")
    );
    println!("|---|---|---|---|---|{}|", LANGS.map(|_| "---").join("|"));
    for name in ["e5", "minilm"] {
        let started = Instant::now();
        let model: Box<dyn Embedder> = match name {
            "e5" => Box::new(E5::load(&E5::default_dir().unwrap()).expect("e5")),
            _ => Box::new(MiniLm::load(&MiniLm::default_dir().unwrap()).expect("MiniLM")),
        };
        let load = started.elapsed().as_secs_f64();
        let started = Instant::now();
        model.embed(&texts).expect("embeddings");
        let rate = texts.len() as f64 / started.elapsed().as_secs_f64();
        let stored = model.embed(&captions).expect("embeddings");
        let mut found = [[0usize; 2]; LANGS.len()];
        let queries = data["queries"].as_array().unwrap();
        for query in queries {
            let answer = query["answer"].as_u64().unwrap() as usize;
            for (l, lang) in LANGS.iter().enumerate() {
                let q = model
                    .embed_query(query[lang].as_str().unwrap())
                    .expect("a vector");
                let mine = cosine(&q, &stored[answer]);
                let better = stored.iter().filter(|c| cosine(&q, c) > mine).count();
                found[l][0] += usize::from(better == 0);
                found[l][1] += usize::from(better < 5);
            }
        }
        let share = |n: usize, of: usize| n as f64 / of as f64;
        let all = |k: usize| {
            share(
                found.iter().map(|f| f[k]).sum(),
                queries.len() * LANGS.len(),
            )
        };
        let per: Vec<String> = found
            .iter()
            .map(|f| format!("{:.2}", share(f[0], queries.len())))
            .collect();
        println!(
            "| {} | {load:.2} | {rate:.0} | {:.2} | {:.2} | {} |",
            model.model(),
            all(0),
            all(1),
            per.join(" | ")
        );
    }
}
