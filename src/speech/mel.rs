//! Whisper's front end: 80 (or 128) log-mel bands every 10 ms over a 30 s window, computed as
//! openai/whisper computes them (a centred 400-point STFT with a periodic Hann window, power,
//! Slaney-style mel filters as librosa builds them, log10, the top 8 decades, scaled).

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

pub const SAMPLE_RATE: usize = 16_000;
const N_FFT: usize = 400;
const HOP: usize = 160;
/// Samples in one window the network reads.
pub const WINDOW: usize = 30 * SAMPLE_RATE;
/// Mel frames in one window.
pub const FRAMES: usize = WINDOW / HOP;
/// Seconds one mel frame stands for.
pub const FRAME_SECONDS: f64 = HOP as f64 / SAMPLE_RATE as f64;

pub struct Mel {
    bands: usize,
    /// `bands` rows of `N_FFT / 2 + 1` weights.
    filters: Vec<f32>,
    hann: Vec<f32>,
    fft: Arc<dyn Fft<f32>>,
}

impl Mel {
    pub fn new(bands: usize) -> Mel {
        let hann = (0..N_FFT)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / N_FFT as f32).cos())
            .collect();
        Mel {
            bands,
            filters: filters(bands),
            hann,
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
        }
    }

    /// The log-mel of `samples` (at most a window's worth; zeros after them), `bands` rows of
    /// `FRAMES` values.
    pub fn window(&self, samples: &[f32]) -> Vec<f32> {
        let samples = &samples[..samples.len().min(WINDOW)];
        let padded = centred(samples);
        let bins = N_FFT / 2 + 1;
        let mut out = vec![0f32; self.bands * FRAMES];
        let mut buffer = vec![Complex::new(0f32, 0f32); N_FFT];
        let mut scratch = vec![Complex::new(0f32, 0f32); self.fft.get_inplace_scratch_len()];
        let mut power = vec![0f32; bins];
        // Frames whose every sample is padding are all zeros: their power is zero.
        let last_heard = (samples.len() + N_FFT / 2).div_ceil(HOP).min(FRAMES);
        for t in 0..FRAMES {
            if t < last_heard {
                let frame = &padded[t * HOP..t * HOP + N_FFT];
                for (b, (x, w)) in buffer.iter_mut().zip(frame.iter().zip(&self.hann)) {
                    *b = Complex::new(x * w, 0.0);
                }
                self.fft.process_with_scratch(&mut buffer, &mut scratch);
                for (p, c) in power.iter_mut().zip(&buffer) {
                    *p = c.norm_sqr();
                }
            } else {
                power.fill(0.0);
            }
            for band in 0..self.bands {
                let weights = &self.filters[band * bins..(band + 1) * bins];
                let energy: f32 = weights.iter().zip(&power).map(|(w, p)| w * p).sum();
                out[band * FRAMES + t] = energy.max(1e-10).log10();
            }
        }
        let top = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut out {
            *v = (v.max(top - 8.0) + 4.0) / 4.0;
        }
        out
    }
}

/// A window's samples padded to its full length, with `N_FFT / 2` reflected at each end, as a
/// centred STFT reads them.
fn centred(samples: &[f32]) -> Vec<f32> {
    let half = N_FFT / 2;
    let mut body = samples.to_vec();
    body.resize(WINDOW, 0.0);
    let mut padded = Vec::with_capacity(WINDOW + N_FFT);
    padded.extend((1..=half).rev().map(|i| body[i]));
    padded.extend_from_slice(&body);
    padded.extend((1..=half).map(|i| body[WINDOW - 1 - i]));
    padded
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels=bands)`: triangles on the Slaney mel
/// scale (linear below 1 kHz, logarithmic above), each normalised to unit area.
fn filters(bands: usize) -> Vec<f32> {
    let bins = N_FFT / 2 + 1;
    let nyquist = SAMPLE_RATE as f64 / 2.0;
    let top = hz_to_mel(nyquist);
    let edges: Vec<f64> = (0..bands + 2)
        .map(|i| mel_to_hz(top * i as f64 / (bands + 1) as f64))
        .collect();
    let mut weights = vec![0f32; bands * bins];
    for band in 0..bands {
        let (low, centre, high) = (edges[band], edges[band + 1], edges[band + 2]);
        let norm = 2.0 / (high - low);
        for bin in 0..bins {
            let hz = bin as f64 * nyquist / (bins - 1) as f64;
            let rising = (hz - low) / (centre - low);
            let falling = (high - hz) / (high - centre);
            let w = rising.min(falling).max(0.0) * norm;
            weights[band * bins + bin] = w as f32;
        }
    }
    weights
}

const LINEAR_STEP: f64 = 200.0 / 3.0;
const LOG_START_HZ: f64 = 1000.0;
const LOG_START_MEL: f64 = LOG_START_HZ / LINEAR_STEP;

fn log_step() -> f64 {
    6.4f64.ln() / 27.0
}

fn hz_to_mel(hz: f64) -> f64 {
    if hz < LOG_START_HZ {
        hz / LINEAR_STEP
    } else {
        LOG_START_MEL + (hz / LOG_START_HZ).ln() / log_step()
    }
}

fn mel_to_hz(mel: f64) -> f64 {
    if mel < LOG_START_MEL {
        mel * LINEAR_STEP
    } else {
        LOG_START_HZ * ((mel - LOG_START_MEL) * log_step()).exp()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of the bank faster-whisper 1.2 computes (librosa's `filters.mel(sr=16000,
    /// n_fft=400, n_mels=80)`, which openai ships as `mel_filters.npz`).
    #[test]
    fn the_filter_bank_is_librosas() {
        let f = filters(80);
        let bins = 201;
        let at = |band: usize, bin: usize| f[band * bins + bin];
        assert!((at(0, 1) - 0.024_862_7).abs() < 1e-6, "{}", at(0, 1));
        assert!((at(1, 2) - 0.022_871_772).abs() < 1e-6, "{}", at(1, 2));
        assert!((at(40, 43) - 0.014_735_566).abs() < 1e-6, "{}", at(40, 43));
        assert!(
            (at(70, 137) - 0.004_079_729).abs() < 1e-6,
            "{}",
            at(70, 137)
        );
        assert_eq!(at(0, 0), 0.0);
        // The last band's triangle ends at the Nyquist frequency.
        assert!(at(79, 199) > 0.0 && at(79, 200) == 0.0);
    }

    #[test]
    fn a_tone_lights_the_band_of_its_frequency() {
        let mel = Mel::new(80);
        let tone: Vec<f32> = (0..SAMPLE_RATE)
            .map(|i| (2.0 * std::f32::consts::PI * 440.0 * i as f32 / SAMPLE_RATE as f32).sin())
            .collect();
        let out = mel.window(&tone);
        let frame = 50;
        let loudest = (0..80)
            .max_by(|&a, &b| out[a * FRAMES + frame].total_cmp(&out[b * FRAMES + frame]))
            .unwrap();
        let band_hz = mel_to_hz(hz_to_mel(8000.0) * (loudest + 1) as f64 / 81.0);
        assert!(
            (band_hz - 440.0).abs() < 40.0,
            "band {loudest} at {band_hz} Hz"
        );
        // Past the tone, the window is padding: the floor.
        assert_eq!(
            out[loudest * FRAMES + 2000],
            out.iter().copied().fold(f32::MAX, f32::min)
        );
    }
}
