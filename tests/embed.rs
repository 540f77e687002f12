//! The local embedding model against sentence-transformers itself: tests/data holds vectors
//! that sentence-transformers 3.3.1 (torch 2.5.1, CPU) computed for the same sentences from the
//! same weights.

use scenedex::embed::{cosine, Embedder, MiniLm};
use serde_json::Value;

fn model() -> MiniLm {
    let dir = MiniLm::default_dir().expect("a data directory");
    MiniLm::load(&dir).unwrap_or_else(|e| panic!("{e}"))
}

fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/minilm_reference.json"
    ))
    .unwrap();
    let data: Value = serde_json::from_str(&text).unwrap();
    let sentences = data["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let vectors = data["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect()
        })
        .collect();
    (sentences, vectors)
}

#[test]
fn vectors_match_sentence_transformers_within_1e_5() {
    let (sentences, expected) = reference();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let got = model().embed(&texts).unwrap();
    for ((sentence, ours), theirs) in sentences.iter().zip(&got).zip(&expected) {
        assert_eq!(ours.len(), 384);
        let worst = ours
            .iter()
            .zip(theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{worst} off for {:?}",
            &sentence[..sentence.len().min(40)]
        );
    }
}

#[test]
fn a_text_gets_the_same_vector_alone_or_padded_in_a_batch() {
    let model = model();
    let short = "a dog jumps into a swimming pool";
    let long = "a much longer caption that forces padding of every shorter text in the same batch";
    let alone = model.embed(&[short]).unwrap().remove(0);
    let batched = model.embed(&[long, short]).unwrap().remove(1);
    let worst = alone
        .iter()
        .zip(&batched)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-5, "padding changed the vector by {worst}");
}

#[test]
fn paraphrases_are_closer_than_unrelated_captions() {
    let model = model();
    let v = model
        .embed(&[
            "a dog jumps into a swimming pool",
            "a puppy leaps into the water",
            "a spreadsheet of quarterly sales figures",
        ])
        .unwrap();
    assert!(
        cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.3,
        "{} vs {}",
        cosine(&v[0], &v[1]),
        cosine(&v[0], &v[2])
    );
}

mod common;

use common::vlm::{MockVlm, Wire, KEY};
use scenedex::caption::{HttpSettings, Secret};
use scenedex::embed::OpenAiEmbedder;

/// The OpenAI-compatible embedder on the stand-in service, whose vectors have 8 dimensions.
fn embedder_at(mock: &MockVlm) -> OpenAiEmbedder {
    OpenAiEmbedder::new(
        &mock.url,
        "text-embedding-3-small",
        Some(Secret::new(KEY.into())),
        HttpSettings::default(),
    )
    .unwrap()
}

#[test]
fn openai_embeddings_come_back_in_order_unit_length_and_batched() {
    let mock = MockVlm::start(Wire::OpenAi);
    let embedder = embedder_at(&mock);
    assert_eq!(embedder.dimension(), 8, "learnt from the first answer");
    assert_eq!(embedder.model(), "text-embedding-3-small");
    let texts: Vec<String> = (0..300).map(|i| format!("caption number {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let vectors = embedder.embed(&refs).unwrap();
    assert_eq!(vectors.len(), 300);
    assert!(vectors
        .iter()
        .all(|v| (v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-5));
    // The server lists vectors in reverse; each must still belong to its own text.
    let again = embedder.embed(&[refs[7]]).unwrap();
    assert_eq!(vectors[7], again[0]);
    assert_ne!(
        vectors[7], vectors[292],
        "the mock's vectors tell these texts apart"
    );
    assert_eq!(
        mock.batch_calls(),
        [
            "POST /v1/embeddings 1",
            "POST /v1/embeddings 256",
            "POST /v1/embeddings 44",
            "POST /v1/embeddings 1"
        ]
    );
}

/// Issue 11: a vector of the wrong size was cut or zero-padded in silence.
#[test]
fn issue11_a_vector_of_another_size_is_refused_with_the_model_and_both_sizes() {
    let mock = MockVlm::start(Wire::OpenAi);
    let embedder = embedder_at(&mock);
    let error = embedder
        .embed(&["a red door", "short: a blue door"])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("text-embedding-3-small")
            && error.contains("5 dimensions")
            && error.contains("not 8"),
        "{error}"
    );
    assert_eq!(error.lines().count(), 1);
}
