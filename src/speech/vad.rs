//! Voice activity: Silero VAD 6 (MIT) in candle, over the weights of the ONNX file its PyPI
//! package ships (taken out at set-up by `scripts/convert_vad.py`), and the stretches of speech
//! it finds, decided as audio streams in.
//!
//! The network reads 32 ms (512 samples) at a time with the 64 samples before them: a learned
//! STFT, four convolutions, an LSTM cell carried from one step to the next, and a sigmoid. The
//! convolutions of many steps run as one batch; only the LSTM goes step by step.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::rnn::{LSTMConfig, LSTMState, RNN};
use candle_nn::{conv1d, conv1d_no_bias, Conv1d, Conv1dConfig, VarBuilder, LSTM};

/// Samples per step at 16 kHz.
pub const STEP: usize = 512;
const CONTEXT: usize = 64;
/// Steps whose convolutions run together.
const BATCH: usize = 256;

pub struct Vad {
    stft: Conv1d,
    convs: [Conv1d; 4],
    lstm: LSTM,
    out: Conv1d,
}

impl Vad {
    pub fn load(weights: &Path) -> Result<Vad> {
        let bytes = std::fs::read(weights)?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)?;
        let cfg = |stride| Conv1dConfig {
            padding: 1,
            stride,
            ..Default::default()
        };
        let stft = Conv1dConfig {
            stride: STEP / 4,
            ..Default::default()
        };
        // The package names the cell's tensors as torch's LSTMCell does, without a layer number.
        let lstm_vb = vb
            .clone()
            .rename_f(|name| name.replace("_l0", ""))
            .pp("lstm_cell");
        Ok(Vad {
            stft: conv1d_no_bias(1, 258, 256, stft, vb.pp("stft_conv"))?,
            convs: [
                conv1d(129, 128, 3, cfg(1), vb.pp("conv1"))?,
                conv1d(128, 64, 3, cfg(2), vb.pp("conv2"))?,
                conv1d(64, 64, 3, cfg(2), vb.pp("conv3"))?,
                conv1d(64, 128, 3, cfg(1), vb.pp("conv4"))?,
            ],
            lstm: candle_nn::lstm(128, 128, LSTMConfig::default(), lstm_vb)?,
            out: conv1d(128, 1, 1, Default::default(), vb.pp("final_conv"))?,
        })
    }

    /// A fresh stream: no context, a zero state.
    pub fn stream(&self) -> Result<Stream<'_>> {
        Ok(Stream {
            vad: self,
            state: self.lstm.zero_state(1)?,
            context: vec![0.0; CONTEXT],
            pending: Vec::new(),
        })
    }

    /// Each step's input (its context, its samples, 64 reflected) through the convolutions.
    fn features(&self, inputs: Vec<f32>, steps: usize) -> Result<Tensor> {
        let x = Tensor::from_vec(inputs, (steps, 1, CONTEXT + STEP + CONTEXT), &Device::Cpu)?;
        let x = self.stft.forward(&x)?;
        let half = 129;
        let real = x.narrow(1, 0, half)?;
        let imag = x.narrow(1, half, half)?;
        let mut x = (real.sqr()? + imag.sqr()?)?.sqrt()?;
        for conv in &self.convs {
            x = conv.forward(&x)?.relu()?;
        }
        x.squeeze(D::Minus1)
    }
}

/// Speech probabilities of a stream, 32 ms at a time.
pub struct Stream<'v> {
    vad: &'v Vad,
    state: LSTMState,
    context: Vec<f32>,
    pending: Vec<f32>,
}

impl Stream<'_> {
    /// Probabilities for every whole step in `samples` (and what was left over before);
    /// `last` pads the remainder with silence to a step.
    pub fn push(&mut self, samples: &[f32], last: bool) -> Result<Vec<f32>> {
        self.pending.extend_from_slice(samples);
        if last && !self.pending.len().is_multiple_of(STEP) {
            let padded = self.pending.len().next_multiple_of(STEP);
            self.pending.resize(padded, 0.0);
        }
        let steps = self.pending.len() / STEP;
        let mut probabilities = Vec::with_capacity(steps);
        for first in (0..steps).step_by(BATCH) {
            let n = BATCH.min(steps - first);
            probabilities.extend(self.batch(first, n)?);
        }
        self.pending.drain(..steps * STEP);
        Ok(probabilities)
    }

    fn batch(&mut self, first: usize, n: usize) -> Result<Vec<f32>> {
        let width = CONTEXT + STEP + CONTEXT;
        let mut inputs = Vec::with_capacity(n * width);
        for step in first..first + n {
            let samples = &self.pending[step * STEP..(step + 1) * STEP];
            inputs.extend_from_slice(&self.context);
            inputs.extend_from_slice(samples);
            // Reflection of the last 64 samples, excluding the edge itself.
            inputs.extend((0..CONTEXT).map(|k| samples[STEP - 2 - k]));
            self.context = samples[STEP - CONTEXT..].to_vec();
        }
        let features = self.vad.features(inputs, n)?;
        let mut out = Vec::with_capacity(n);
        for step in 0..n {
            let x = features.narrow(0, step, 1)?;
            self.state = self.vad.lstm.step(&x, &self.state)?;
            let h = self.state.h().relu()?.unsqueeze(D::Minus1)?;
            let p = candle_nn::ops::sigmoid(&self.vad.out.forward(&h)?)?;
            out.push(p.flatten_all()?.to_vec1::<f32>()?[0]);
        }
        Ok(out)
    }
}

/// How speech is told from the rest, in seconds where not a probability.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    /// A step at or above this starts speech.
    pub start: f32,
    /// Speech ends once steps stay below this for `silence`.
    pub end: f32,
    pub silence: f64,
    /// Shorter speech is a click or a cough.
    pub shortest: f64,
    /// Kept before and after each stretch, so the first and last sounds are whole.
    pub pad: f64,
    /// A stretch is cut, at its quietest recent step, before it grows past this.
    pub longest: f64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            start: 0.5,
            end: 0.35,
            silence: 0.5,
            shortest: 0.25,
            pad: 0.2,
            longest: 28.0,
        }
    }
}

/// Stretches of speech found so far, in samples, as probabilities stream in.
pub struct Stretches {
    rules: Rules,
    /// Steps seen.
    step: usize,
    /// The stretch open, and where its speech was last heard.
    open: Option<(usize, usize)>,
    /// The open stretch's quietest step since it began, a place to cut it.
    quietest: Option<(f32, usize)>,
    done: Vec<(usize, usize)>,
}

impl Stretches {
    pub fn new(rules: Rules) -> Stretches {
        Stretches {
            rules,
            step: 0,
            open: None,
            quietest: None,
            done: Vec::new(),
        }
    }

    fn samples(seconds: f64) -> usize {
        (seconds * super::mel::SAMPLE_RATE as f64) as usize
    }

    pub fn push(&mut self, probabilities: &[f32]) {
        for &p in probabilities {
            let at = self.step * STEP;
            self.step += 1;
            let Some((start, heard)) = self.open else {
                if p >= self.rules.start {
                    self.open = Some((at, at + STEP));
                    self.quietest = None;
                }
                continue;
            };
            if p >= self.rules.end {
                self.open = Some((start, at + STEP));
            } else if at + STEP - heard >= Self::samples(self.rules.silence) {
                self.close(start, heard);
                continue;
            }
            if at > start && self.quietest.is_none_or(|(q, _)| p <= q) {
                self.quietest = Some((p, at));
            }
            if at + STEP - start >= Self::samples(self.rules.longest) {
                let cut = match self.quietest {
                    Some((_, q)) if q - start >= Self::samples(self.rules.longest / 4.0) => q,
                    _ => at + STEP,
                };
                self.close(start, cut.min(at + STEP));
                if cut < at + STEP {
                    self.open = Some((cut, at + STEP));
                }
                self.quietest = None;
            }
        }
    }

    fn close(&mut self, start: usize, end: usize) {
        self.open = None;
        if end - start >= Self::samples(self.rules.shortest) {
            self.done.push((start, end));
        }
    }

    /// Ends the stream: the open stretch closes where speech was last heard.
    pub fn finish(&mut self) {
        if let Some((start, heard)) = self.open {
            self.close(start, heard);
        }
    }

    /// Stretches closed since the last call, padded (never past their neighbours' padding
    /// or before the start).
    pub fn take(&mut self) -> Vec<(usize, usize)> {
        let pad = Self::samples(self.rules.pad);
        self.done
            .drain(..)
            .map(|(s, e)| (s.saturating_sub(pad), e + pad))
            .collect()
    }

    /// No sample before this can belong to a stretch still to come.
    pub fn settled(&self) -> usize {
        let pad = Self::samples(self.rules.pad);
        match self.open {
            Some((start, _)) => start.saturating_sub(pad),
            None => (self.step * STEP).saturating_sub(pad + STEP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(probabilities: &[f32]) -> Vec<(f64, f64)> {
        let mut s = Stretches::new(Rules {
            pad: 0.0,
            ..Rules::default()
        });
        s.push(probabilities);
        s.finish();
        let seconds = |n: usize| n as f64 / 16_000.0;
        s.take()
            .into_iter()
            .map(|(a, b)| (seconds(a), seconds(b)))
            .collect()
    }

    #[test]
    fn speech_ends_after_half_a_second_of_quiet_and_a_click_is_not_speech() {
        // 1 s quiet, 2 s speech, 1 s quiet, one loud step, 1 s quiet.
        let mut p = vec![0.1; 31];
        p.extend(vec![0.9; 62]);
        p.extend(vec![0.1; 31]);
        p.push(0.9);
        p.extend(vec![0.1; 31]);
        let got = found(&p);
        assert_eq!(got.len(), 1, "{got:?}");
        assert!(
            (got[0].0 - 0.992).abs() < 0.01 && (got[0].1 - 2.976).abs() < 0.01,
            "{got:?}"
        );
    }

    #[test]
    fn a_short_pause_does_not_split_speech() {
        let mut p = vec![0.9; 40];
        p.extend(vec![0.2; 8]); // a quarter of a second
        p.extend(vec![0.9; 40]);
        assert_eq!(found(&p).len(), 1);
    }

    #[test]
    fn a_long_stretch_is_cut_at_its_quietest_moment() {
        let mut p = vec![0.9; 500];
        p[400] = 0.4;
        p.extend(vec![0.9; 500]);
        let got = found(&p);
        assert!(got.len() >= 2, "{got:?}");
        assert!((got[0].1 - 400.0 * 0.032).abs() < 0.01, "{got:?}");
        assert!(got.iter().all(|(a, b)| b - a <= 28.0), "{got:?}");
    }
}
