//! An OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Ollama, vLLM, LM Studio, ...).

use serde_json::{json, Value};

use super::{normalize, EmbedError, Embedder};
use crate::caption::{HttpSettings, Secret};

/// Texts sent in one request.
const BATCH: usize = 256;

pub struct OpenAiEmbedder {
    url: String,
    model: String,
    key: Option<Secret>,
    dimension: usize,
    client: crate::caption::http::Client,
}

impl OpenAiEmbedder {
    /// Asks the endpoint once for a vector, to learn the model's dimension.
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<Secret>,
        http: HttpSettings,
    ) -> Result<Self, EmbedError> {
        let mut embedder = OpenAiEmbedder {
            url: format!("{}/embeddings", base_url.trim_end_matches('/')),
            model: model.to_string(),
            key,
            dimension: 0,
            client: crate::caption::http::Client::new("openai", http),
        };
        embedder.dimension = embedder.request(&["dimension probe"])?[0].len();
        Ok(embedder)
    }

    fn request(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let body = json!({"model": self.model, "input": texts});
        let answer = crate::caption::http::with_bearer(self.key.as_ref(), |headers| {
            self.client.post_json(&self.url, headers, &body)
        })?;
        let bad = |detail: &str| EmbedError::Compute(format!("openai embeddings: {detail}"));
        let mut rows: Vec<(u64, Vec<f32>)> = answer
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no data"))?
            .iter()
            .map(|item| {
                let index = item
                    .get("index")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| bad("no index"))?;
                let vector = item
                    .get("embedding")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("no embedding"))?
                    .iter()
                    .map(|x| {
                        x.as_f64()
                            .map(|x| x as f32)
                            .ok_or_else(|| bad("not a number"))
                    })
                    .collect::<Result<Vec<f32>, _>>()?;
                Ok((index, vector))
            })
            .collect::<Result<_, EmbedError>>()?;
        if rows.len() != texts.len() {
            return Err(bad(&format!(
                "{} vectors for {} texts",
                rows.len(),
                texts.len()
            )));
        }
        rows.sort_by_key(|(i, _)| *i);
        if rows.iter().enumerate().any(|(n, (i, _))| *i != n as u64) {
            return Err(bad("the answer's indexes are not one per text"));
        }
        // A vector of another size would be cut or padded in the store, silently wrong.
        let expected = match self.dimension {
            0 => rows.first().map_or(0, |(_, v)| v.len()),
            d => d,
        };
        if let Some((_, v)) = rows
            .iter()
            .find(|(_, v)| v.len() != expected || v.is_empty())
        {
            return Err(EmbedError::Compute(format!(
                "the embedding model {} answered a vector of {} dimensions, not {expected}; is \
                 the endpoint serving another model?",
                self.model,
                v.len()
            )));
        }
        Ok(rows
            .into_iter()
            .map(|(_, mut v)| {
                normalize(&mut v);
                v
            })
            .collect())
    }
}

impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            vectors.extend(self.request(chunk)?);
        }
        Ok(vectors)
    }
}
