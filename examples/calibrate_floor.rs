//! Calibrates the similarity floor under which `search` calls a hit "no close match": embeds
//! the query and caption of every pair in tests/data/relevance.jsonl (judged relevant or not
//! by hand) with a local model, and prints the thresholds that tell them apart best, and the
//! floor scenedex uses: missing a scene is worse than showing a weak one, so it is the least
//! similar relevant pair less a margin, rounded down: 0.1 and to 0.05 for MiniLM, whose
//! similarities spread over the whole range; 0.03 and to 0.01 for e5, whose crowd between 0.7
//! and 0.95.
//!
//!     cargo run --release --example calibrate_floor [e5|minilm] [PAIRS.jsonl]

use scenedex::embed::{cosine, Embedder, MiniLm, E5};

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "e5".into());
    let path = std::env::args().nth(2).unwrap_or_else(|| {
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
    let (model, margin, step): (Box<dyn Embedder>, f32, f32) = match name.as_str() {
        "minilm" => (
            Box::new(MiniLm::load(&MiniLm::default_dir().expect("a data folder")).expect("MiniLM")),
            0.1,
            0.05,
        ),
        _ => (
            Box::new(E5::load(&E5::default_dir().expect("a data folder")).expect("e5")),
            0.03,
            0.01,
        ),
    };
    let mut scored: Vec<(f32, bool)> = Vec::new();
    for (query, caption, relevant) in &pairs {
        let q = model.embed_query(query).expect("embeddings");
        let c = model.embed(&[caption]).expect("embeddings").remove(0);
        let similarity = cosine(&q, &c);
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
    let floors: Vec<f32> = (0..=100).map(|i| i as f32 / 100.0).collect();
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
    let floor = ((weakest - margin) / step).floor() * step;
    println!(
        "least similar relevant pair {weakest:.3}; floor {floor:.2}, accuracy {:.3}",
        accuracy(floor)
    );
}
