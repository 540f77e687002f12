//! Whisper's network in candle, with the decoder's self-attention keys and values kept between
//! steps. candle-transformers 0.11 has the same network but recomputes every earlier token at
//! each step, which makes decoding a 30 s window quadratic in its tokens; see ARCHITECTURE.md.

use candle_core::op::{GeluErf, UnaryOpT};
use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Module, Result, Shape, Tensor, D};
use candle_nn::kv_cache::KvCache;
use candle_nn::{
    conv1d, embedding, layer_norm, linear, linear_no_bias, Conv1d, Conv1dConfig, Embedding,
    LayerNorm, Linear, VarBuilder,
};
use rayon::prelude::*;

/// The network's sizes, as `scripts/convert_whisper.py` writes them.
#[derive(Clone, Debug, serde::Deserialize)]
pub struct Config {
    pub num_mel_bins: usize,
    pub max_source_positions: usize,
    pub d_model: usize,
    pub encoder_attention_heads: usize,
    pub encoder_layers: usize,
    pub vocab_size: usize,
    pub max_target_positions: usize,
    pub decoder_attention_heads: usize,
    pub decoder_layers: usize,
    #[serde(default)]
    pub suppress_tokens: Vec<u32>,
    #[serde(default)]
    pub suppress_tokens_begin: Vec<u32>,
}

struct Attention {
    query: Linear,
    key: Linear,
    value: Linear,
    out: Linear,
    heads: usize,
}

impl Attention {
    fn load(state: usize, heads: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Attention {
            query: linear(state, state, vb.pp("q_proj"))?,
            key: linear_no_bias(state, state, vb.pp("k_proj"))?,
            value: linear(state, state, vb.pp("v_proj"))?,
            out: linear(state, state, vb.pp("out_proj"))?,
            heads,
        })
    }

    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((self.key.forward(x)?, self.value.forward(x)?))
    }

    /// Keys `[1, T, D]` as each head's transposed and scaled keys `[1, H, D/H, T]`, and values
    /// as each head's `[1, H, T, D/H]`: the form `attend` reads, made once for keys read often.
    fn split(&self, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let k = (self.heads(k)?.transpose(2, 3)?.contiguous()? * self.scale(k)?)?;
        Ok((k, self.heads(v)?))
    }

    fn scale(&self, x: &Tensor) -> Result<f64> {
        Ok(((x.dim(2)? / self.heads) as f64).powf(-0.25))
    }

    /// `x` attending to keys and values in `split`'s form; `mask` hides later positions.
    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let q = self.query.forward(x)?;
        let q = (self.heads(&q)? * self.scale(&q)?)?;
        let mut qk = q.matmul(k)?;
        if let Some(mask) = mask {
            qk = qk.broadcast_add(mask)?;
        }
        let w = candle_nn::ops::softmax_last_dim(&qk)?;
        let wv = w.matmul(v)?.transpose(1, 2)?.flatten_from(2)?;
        self.out.forward(&wv)
    }

    /// `x` attending to itself and, through `cache`, to what came before it.
    fn attend_own(
        &self,
        x: &Tensor,
        cache: Option<&mut KvCache>,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (k, v) = self.keys_values(x)?;
        let (k, v) = match cache {
            Some(cache) => cache.append(&k.contiguous()?, &v.contiguous()?)?,
            None => (k, v),
        };
        let (k, v) = self.split(&k, &v)?;
        self.attend(x, &k, &v, mask)
    }

    fn heads(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, n, state) = x.dims3()?;
        x.reshape((batch, n, self.heads, state / self.heads))?
            .transpose(1, 2)?
            .contiguous()
    }
}

struct Block {
    attn: Attention,
    attn_ln: LayerNorm,
    cross: Option<(Attention, LayerNorm)>,
    fc1: Linear,
    fc2: Linear,
    mlp_ln: LayerNorm,
}

impl Block {
    fn load(state: usize, heads: usize, cross: bool, vb: VarBuilder) -> Result<Self> {
        let cross = match cross {
            true => Some((
                Attention::load(state, heads, vb.pp("encoder_attn"))?,
                layer_norm(state, 1e-5, vb.pp("encoder_attn_layer_norm"))?,
            )),
            false => None,
        };
        Ok(Block {
            attn: Attention::load(state, heads, vb.pp("self_attn"))?,
            attn_ln: layer_norm(state, 1e-5, vb.pp("self_attn_layer_norm"))?,
            cross,
            fc1: linear(state, 4 * state, vb.pp("fc1"))?,
            fc2: linear(4 * state, state, vb.pp("fc2"))?,
            mlp_ln: layer_norm(state, 1e-5, vb.pp("final_layer_norm"))?,
        })
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        let h = gelu(&self.fc1.forward(&self.mlp_ln.forward(x)?)?)?;
        x + self.fc2.forward(&h)?
    }
}

pub struct Encoder {
    conv1: Conv1d,
    conv2: Conv1d,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
}

impl Encoder {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let conv = |stride| Conv1dConfig {
            padding: 1,
            stride,
            ..Default::default()
        };
        let state = cfg.d_model;
        Ok(Encoder {
            conv1: conv1d(cfg.num_mel_bins, state, 3, conv(1), vb.pp("conv1"))?,
            conv2: conv1d(state, state, 3, conv(2), vb.pp("conv2"))?,
            positions: vb.get((cfg.max_source_positions, state), "embed_positions.weight")?,
            blocks: (0..cfg.encoder_layers)
                .map(|i| {
                    Block::load(
                        state,
                        cfg.encoder_attention_heads,
                        false,
                        vb.pp(format!("layers.{i}")),
                    )
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(state, 1e-5, vb.pp("layer_norm"))?,
        })
    }

    /// A window's log-mel `[1, mels, 3000]` as the audio features the decoder attends to.
    pub fn forward(&self, mel: &Tensor) -> Result<Tensor> {
        let x = gelu(&self.conv1.forward(mel)?)?;
        let x = gelu(&self.conv2.forward(&x)?)?.transpose(1, 2)?;
        let n = x.dim(1)?;
        let mut x = x.broadcast_add(&self.positions.narrow(0, 0, n)?)?;
        for block in &self.blocks {
            let h = block.attn_ln.forward(&x)?;
            x = (&x + block.attn.attend_own(&h, None, None)?)?;
            x = block.mlp(&x)?;
        }
        self.ln.forward(&x)
    }
}

pub struct Decoder {
    tokens: Embedding,
    positions: Tensor,
    blocks: Vec<Block>,
    ln: LayerNorm,
}

/// What every decoding of one window attends to: each layer's keys and values of the audio,
/// made once per window rather than once per try.
#[derive(Clone)]
pub struct Heard(Vec<(Tensor, Tensor)>);

/// One decoding's memory: each layer's keys and values of the tokens so far, and of the audio.
pub struct State {
    own: Vec<KvCache>,
    audio: Heard,
    len: usize,
}

impl Decoder {
    fn load(cfg: &Config, vb: VarBuilder) -> Result<Self> {
        let state = cfg.d_model;
        Ok(Decoder {
            tokens: embedding(cfg.vocab_size, state, vb.pp("embed_tokens"))?,
            positions: vb.get((cfg.max_target_positions, state), "embed_positions.weight")?,
            blocks: (0..cfg.decoder_layers)
                .map(|i| {
                    Block::load(
                        state,
                        cfg.decoder_attention_heads,
                        true,
                        vb.pp(format!("layers.{i}")),
                    )
                })
                .collect::<Result<_>>()?,
            ln: layer_norm(state, 1e-5, vb.pp("layer_norm"))?,
        })
    }

    /// The audio features (the encoder's output) in the form every decoding of them reads.
    pub fn hear(&self, audio: &Tensor) -> Result<Heard> {
        self.blocks
            .iter()
            .map(|b| {
                let cross = &b.cross.as_ref().expect("decoder blocks attend to audio").0;
                let (k, v) = cross.keys_values(audio)?;
                cross.split(&k, &v)
            })
            .collect::<Result<_>>()
            .map(Heard)
    }

    /// A fresh memory for decoding against `audio`.
    pub fn start(&self, audio: &Heard) -> State {
        State {
            own: (0..self.blocks.len())
                .map(|_| KvCache::new(1, 64))
                .collect(),
            audio: audio.clone(),
            len: 0,
        }
    }

    /// Feeds `tokens` after those already fed, and returns the logits at the positions `at`
    /// among them `[at.len(), vocab]`: scoring the whole vocabulary is a third of a step, wasted
    /// on a prompt's tokens.
    pub fn step(&self, tokens: &[u32], at: &[u32], state: &mut State) -> Result<Tensor> {
        let n = tokens.len();
        let ids = Tensor::new(tokens, self.positions.device())?.unsqueeze(0)?;
        let mut x = self
            .tokens
            .forward(&ids)?
            .broadcast_add(&self.positions.narrow(0, state.len, n)?)?;
        let mask = causal_mask(n, state.len, x.device())?;
        for (i, block) in self.blocks.iter().enumerate() {
            let h = block.attn_ln.forward(&x)?;
            x = (&x
                + block
                    .attn
                    .attend_own(&h, Some(&mut state.own[i]), mask.as_ref())?)?;
            let (cross, cross_ln) = block
                .cross
                .as_ref()
                .expect("decoder blocks attend to audio");
            let (ak, av) = &state.audio.0[i];
            x = (&x + cross.attend(&cross_ln.forward(&x)?, ak, av, None)?)?;
            x = block.mlp(&x)?;
        }
        state.len += n;
        let at = Tensor::new(at, x.device())?;
        let x = self.ln.forward(&x.squeeze(0)?.index_select(&at, 0)?)?;
        x.matmul(&self.tokens.embeddings().t()?)
    }

    pub fn max_tokens(&self) -> usize {
        self.positions.dim(0).unwrap_or(448)
    }
}

/// Whisper's exact GELU, by candle's own formula, spread over the threads: candle applies it on
/// one thread, which made it a sixth of the encoder's time on two cores.
struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "gelu-erf-threads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(values), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            return Err(candle_core::Error::Msg("gelu: contiguous f32 only".into()));
        };
        let mut out = values[start..end].to_vec();
        out.par_chunks_mut(1 << 14)
            .for_each(|chunk| chunk.iter_mut().for_each(|v| *v = GeluErf::f32(*v)));
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&Gelu)
}

/// New tokens see every earlier token and themselves, never a later one.
fn causal_mask(n: usize, past: usize, device: &Device) -> Result<Option<Tensor>> {
    if n == 1 {
        return Ok(None);
    }
    let mask: Vec<f32> = (0..n)
        .flat_map(|i| {
            (0..past + n).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 })
        })
        .collect();
    Tensor::from_vec(mask, (n, past + n), device).map(Some)
}

pub struct Network {
    pub encoder: Encoder,
    pub decoder: Decoder,
}

impl Network {
    pub fn load(weights: &std::path::Path, cfg: &Config) -> Result<Network> {
        let bytes = std::fs::read(weights)?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
        Ok(Network {
            encoder: Encoder::load(cfg, vb.pp("model.encoder"))?,
            decoder: Decoder::load(cfg, vb.pp("model.decoder"))?,
        })
    }
}

/// Log-probabilities of the last dimension.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(x, D::Minus1)
}
