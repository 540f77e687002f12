//! Calibrates the similarity floor under which `search` calls a hit "no close match": embeds
//! the query and caption of every pair in tests/data/relevance.jsonl (judged relevant or not
//! by hand) with the local model, and prints the thresholds that tell them apart best, and the
//! floor scenedex uses: missing a scene is worse than showing a weak one, so it is the least
//! similar relevant pair less a margin of 0.1, rounded down to 0.05.
//!
//!     cargo run --release --example calibrate_floor [PAIRS.jsonl]

use scenedex::embed::{cosine, Embedder, MiniLm};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/relevance.jsonl").into()
    });
    let text = std::fs::read_to_string(&path).expect("the pairs file");
    let pairs: Vec<(String, String, bool)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON line");
            let field = |name: &str| v[name].as_str().expect("a string").to_string();
            (field("query"), field("caption"), v["relevant"] == true)
        })
        .collect();
    let model = MiniLm::load(&MiniLm::default_dir().expect("a data folder")).expect("MiniLM");
    let mut scored: Vec<(f32, bool)> = Vec::new();
    for (query, caption, relevant) in &pairs {
        let v = model.embed(&[query, caption]).expect("embeddings");
        let similarity = cosine(&v[0], &v[1]);
        println!(
            "{similarity:.3}  {}  {query} | {}",
            if *relevant { "yes" } else { "no " },
            caption.replace('\n', " / ")
        );
        scored.push((similarity, *relevant));
    }
    let accuracy = |floor: f32| {
        scored.iter().filter(|(s, r)| (*s >= floor) == *r).count() as f64 / scored.len() as f64
    };
    let floors: Vec<f32> = (0..=80).map(|i| i as f32 / 100.0).collect();
    let best = floors.iter().map(|&f| accuracy(f)).fold(0.0, f64::max);
    let tied: Vec<f32> = floors
        .iter()
        .copied()
        .filter(|&f| accuracy(f) == best)
        .collect();
    let middle = tied[tied.len() / 2];
    println!(
        "\n{} pairs; best accuracy {:.3} for floors {:.2} to {:.2}; middle {middle:.2}",
        scored.len(),
        best,
        tied[0],
        tied[tied.len() - 1]
    );
    let weakest = scored
        .iter()
        .filter(|(_, r)| *r)
        .map(|(s, _)| *s)
        .fold(f32::MAX, f32::min);
    let floor = ((weakest - 0.1) * 20.0).floor() / 20.0;
    println!(
        "least similar relevant pair {weakest:.3}; floor {floor:.2}, accuracy {:.3}",
        accuracy(floor)
    );
}
