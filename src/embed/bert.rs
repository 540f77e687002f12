//! A BERT sentence encoder with candle, as sentence-transformers computes it: tokens in,
//! mean pooling over the attention mask, unit length (MiniLM; e5 shares the padding and the
//! pooling).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationParams};

use super::{normalize, EmbedError};

/// Texts embedded together, of about one length (`in_batches`).
const BATCH: usize = 32;

pub struct Bert {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl Bert {
    /// The network in `dir` (`model.safetensors`, `config.json`, `tokenizer.json`), reading at
    /// most `max_tokens` tokens of a text.
    pub fn load(dir: &Path, max_tokens: usize) -> Result<Bert, EmbedError> {
        let files = ["model.safetensors", "config.json", "tokenizer.json"].map(|f| dir.join(f));
        if files.iter().any(|f| !f.is_file()) {
            return Err(EmbedError::Missing(dir.to_path_buf()));
        }
        let broken = |detail: String| EmbedError::Broken {
            dir: dir.to_path_buf(),
            detail,
        };
        let config: Config = std::fs::read(&files[1])
            .map_err(|e| broken(e.to_string()))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| broken(e.to_string())))?;
        let mut tokenizer = Tokenizer::from_file(&files[2]).map_err(|e| broken(e.to_string()))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                ..Default::default()
            }))
            .map_err(|e| broken(e.to_string()))?;
        // Sequences are padded here, with a mask; a tokenizer file's own padding would not be.
        tokenizer.with_padding(None);
        let weights = std::fs::read(&files[0]).map_err(|e| broken(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| broken(e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| broken(e.to_string()))?;
        Ok(Bert { model, tokenizer })
    }

    /// One unit vector per text, in order, tokenized with the model's own special tokens.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| EmbedError::Compute(e.to_string()))?;
        let ids: Vec<Vec<u32>> = encodings.iter().map(|e| e.get_ids().to_vec()).collect();
        in_batches(&ids, |chunk| self.run(chunk))
    }

    fn run(&self, sequences: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (ids, mask) = padded(sequences)?;
        let types = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        mean_pool(&hidden, &mask)
    }
}

/// One unit vector per sequence of token ids (each whole, specials included), `run` over
/// batches of them.
pub fn in_batches(
    sequences: &[Vec<u32>],
    run: impl Fn(&[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    // Batched by length, so that a short text is not padded to a long one's length: padding is
    // computed like any token.
    let mut order: Vec<usize> = (0..sequences.len()).collect();
    order.sort_by_key(|&i| sequences[i].len());
    let mut vectors = vec![Vec::new(); sequences.len()];
    for chunk in order.chunks(BATCH) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| sequences[i].clone()).collect();
        let out = run(&batch).map_err(|e| EmbedError::Compute(e.to_string()))?;
        if out.len() != chunk.len() {
            return Err(EmbedError::Compute(format!(
                "{} vectors for {} texts",
                out.len(),
                chunk.len()
            )));
        }
        for (&i, vector) in chunk.iter().zip(out) {
            vectors[i] = vector;
        }
    }
    Ok(vectors)
}

/// Sequences padded to the longest `[batch, length]`, and the mask that hides the padding from
/// attention and from the mean.
pub fn padded(sequences: &[Vec<u32>]) -> candle_core::Result<(Tensor, Tensor)> {
    let longest = sequences.iter().map(Vec::len).max().unwrap_or(0);
    let (mut ids, mut mask) = (Vec::new(), Vec::new());
    for s in sequences {
        ids.extend(
            s.iter()
                .copied()
                .chain(std::iter::repeat_n(0, longest - s.len())),
        );
        mask.extend((0..longest).map(|i| u32::from(i < s.len())));
    }
    let shape = (sequences.len(), longest);
    Ok((
        Tensor::from_vec(ids, shape, &Device::Cpu)?,
        Tensor::from_vec(mask, shape, &Device::Cpu)?,
    ))
}

/// The mean of the token vectors the attention mask keeps, then unit length.
pub fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    let mut vectors = summed.broadcast_div(&counts)?.to_vec2::<f32>()?;
    vectors.iter_mut().for_each(|v| normalize(v));
    Ok(vectors)
}
