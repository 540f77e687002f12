//! embed: captions and what is said to vectors. Backends implement `Embedder`; the local
//! default is multilingual-e5-small run with candle, all-MiniLM-L6-v2 (English) the index's
//! default before it, and the other an OpenAI-compatible `/v1/embeddings`.

mod bert;
mod e5;
mod minilm;
mod openai;

pub use e5::E5;
pub use minilm::MiniLm;
pub use openai::OpenAiEmbedder;

/// Turns texts into unit-length vectors that are close when the texts mean the same.
pub trait Embedder: Send + Sync {
    /// The model's name, recorded in the index so that a different model is refused.
    fn model(&self) -> &str;
    fn dimension(&self) -> usize;
    /// One vector per text to be found (a caption, what is said), in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
    /// The vector of a query, for models that read a query otherwise than a text to be found.
    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed(&[text])?.remove(0))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("the embedding model is not in {0} (run scripts/setup.sh, or point SCENEDEX_E5_DIR or SCENEDEX_MINILM_DIR at it)")]
    Missing(std::path::PathBuf),
    #[error("the embedding model in {dir} is unusable: {detail}")]
    Broken {
        dir: std::path::PathBuf,
        detail: String,
    },
    #[error("embedding failed: {0}")]
    Compute(String),
    #[error(transparent)]
    Remote(#[from] crate::caption::CaptionError),
}

/// Cosine similarity; for unit vectors, their dot product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let denominator = norm(a) * norm(b);
    if denominator == 0.0 {
        0.0
    } else {
        dot / denominator
    }
}

/// Scales a vector to unit length (a zero vector stays zero).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
