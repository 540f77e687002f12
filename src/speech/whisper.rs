//! Whisper's decoding, after openai/whisper's `decoding.py` and `transcribe.py`: the language
//! of each stretch detected, timestamp rules, token suppression, temperature fallback, and the
//! checks that drop what Whisper writes over silence (no-speech probability, average
//! log-probability, compression ratio).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::{Device, IndexOp, Tensor};
use rand::distr::Distribution;
use rand::SeedableRng;
use tokenizers::Tokenizer;

use super::mel::{Mel, FRAMES, SAMPLE_RATE, WINDOW};
use super::network::{log_softmax, Config, Heard, Network};
use super::{SpeechError, Utterance};

const TEMPERATURES: [f32; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
const COMPRESSION_RATIO_MOST: f64 = 2.4;
/// Below this average log-probability a decoding is tried again, hotter (openai's threshold).
const LOGPROB_LEAST: f64 = -1.0;
/// Below this, the best of every try is dropped as a guess. openai keeps it; only stretches the
/// detector heard a voice in get here, and there a borderline -1.0 to -1.5 is mostly real words
/// in a voice the model finds hard (synthetic German at -1.01), while the garbled text
/// of a hot decoding sits at -2 and below.
const GUESS_LEAST: f64 = -1.5;
const NO_SPEECH_LEAST: f64 = 0.6;
/// Seconds per timestamp token.
const TICK: f64 = 0.02;
/// Sound after a window's last timestamp shorter than this is not read again (the detector's
/// padding and the model's early timestamps leave a little).
const LEFT_OVER_LEAST: f64 = 0.5;
/// The first timestamp of a window is at most this far in.
const FIRST_TIMESTAMP_MOST: f64 = 1.0;
/// Tokens a second of sound can hold, timestamps included: fast speech in a language of many
/// tokens a word stays under it, while text written over music runs on to the cap.
const TOKENS_PER_SECOND_MOST: f64 = 20.0;
/// A window shorter than this (samples) keeps the language of the window before it.
const SHORT_WINDOW: usize = 10 * SAMPLE_RATE;
/// The most talk read in one call: memory stays flat (20 MB of samples), and talk longer than
/// this without a second's pause is rare.
const LONGEST: usize = 10 * WINDOW;
/// A decoding's text is checked for loops every this many tokens, once it has this many.
const LOOP_CHECK_EVERY: usize = 8;

/// The model's special tokens, every id read from its tokenizer (tiny.en's are one lower).
struct Special {
    sot: u32,
    eot: u32,
    transcribe: u32,
    sot_prev: u32,
    no_speech: Option<u32>,
    no_timestamps: u32,
    timestamp_begin: u32,
    /// (token, code) of every language, for a multilingual model.
    languages: Vec<(u32, String)>,
}

impl Special {
    fn read(tokenizer: &Tokenizer, vocab: usize) -> Option<Special> {
        let id = |t: &str| tokenizer.token_to_id(t);
        let sot = id("<|startoftranscript|>")?;
        let translate = id("<|translate|>")?;
        let no_timestamps = id("<|notimestamps|>")?;
        // English-only models have one token fewer (openai's rule); their tokenizers list the
        // language tokens all the same, which the model was never taught.
        let multilingual = vocab >= 51_865;
        let mut languages: Vec<(u32, String)> = tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(id, _)| *id > sot && *id < translate)
            .filter_map(|(id, t)| {
                let code = t
                    .content
                    .strip_prefix("<|")?
                    .strip_suffix("|>")?
                    .to_string();
                Some((id, code))
            })
            .collect();
        languages.sort();
        if !multilingual {
            languages.clear();
        }
        Some(Special {
            sot,
            eot: id("<|endoftext|>")?,
            transcribe: id("<|transcribe|>")?,
            sot_prev: id("<|startofprev|>")?,
            no_speech: id("<|nospeech|>").or_else(|| id("<|nocaptions|>")),
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
            languages,
        })
    }

    fn language(&self, code: &str) -> Option<u32> {
        self.languages
            .iter()
            .find(|(_, c)| c == code)
            .map(|(id, _)| *id)
    }
}

pub struct Whisper {
    name: String,
    /// Loaded when a file first has something to hear: most of the memory, which an archive
    /// of silent footage never needs.
    network: OnceLock<Result<Mutex<Network>, String>>,
    weights: PathBuf,
    tokenizer: Tokenizer,
    special: Special,
    config: Config,
    mel: Mel,
    /// Suppressed at every step: the model's list, and every special token but the end.
    suppress: Vec<u32>,
}

/// What one decoding of a window gave.
#[derive(Clone)]
struct Decoded {
    tokens: Vec<u32>,
    avg_logprob: f64,
    no_speech: f64,
    compression_ratio: f64,
}

impl Whisper {
    /// The converted model in `dir` (`model.safetensors`, `config.json`, `tokenizer.json`).
    pub fn load(dir: &Path, name: &str) -> Result<Whisper, SpeechError> {
        let files = ["model.safetensors", "config.json", "tokenizer.json"].map(|f| dir.join(f));
        if files.iter().any(|f| !f.is_file()) {
            return Err(SpeechError::Missing(dir.to_path_buf()));
        }
        let broken = |detail: String| SpeechError::BrokenModel {
            dir: dir.to_path_buf(),
            detail,
        };
        let config: Config = std::fs::read(&files[1])
            .map_err(|e| broken(e.to_string()))
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| broken(e.to_string())))?;
        let tokenizer = Tokenizer::from_file(&files[2]).map_err(|e| broken(e.to_string()))?;
        let special = Special::read(&tokenizer, config.vocab_size)
            .ok_or_else(|| broken("its tokenizer lacks Whisper's special tokens".into()))?;
        // Token ids index the network's scores: a tokenizer of another model must not reach it.
        let highest = [
            special.sot,
            special.eot,
            special.transcribe,
            special.sot_prev,
            special.no_timestamps,
        ]
        .into_iter()
        .chain(special.no_speech)
        .chain(special.languages.iter().map(|(id, _)| *id))
        .chain(config.suppress_tokens.iter().copied())
        .max()
        .unwrap_or(0);
        if highest as usize >= config.vocab_size
            || special.timestamp_begin as usize >= config.vocab_size
        {
            return Err(broken(format!(
                "its tokenizer has ids up to {highest}, past the network's {} tokens",
                config.vocab_size
            )));
        }
        // The weights are read when first needed: a truncated file is told now.
        crate::weights::open(&files[0]).map_err(broken)?;
        let mut suppress = config.suppress_tokens.clone();
        suppress.extend((special.eot + 1..special.timestamp_begin).filter(|&t| t != special.eot));
        Ok(Whisper {
            name: name.to_string(),
            network: OnceLock::new(),
            weights: files[0].clone(),
            mel: Mel::new(config.num_mel_bins),
            tokenizer,
            special,
            config,
            suppress,
        })
    }

    pub fn multilingual(&self) -> bool {
        !self.special.languages.is_empty()
    }

    /// Whether `code` is a language this model knows.
    pub fn knows(&self, code: &str) -> bool {
        match self.multilingual() {
            true => self.special.language(code).is_some(),
            false => code == "en",
        }
    }

    /// What is said in `samples` (speech with pauses of at most a second), which start `at`
    /// seconds into the file: utterances with their times on the file's timeline, in the
    /// language detected for each window (or `language`).
    pub fn transcribe(
        &self,
        samples: &[f32],
        pauses: &[usize],
        at: f64,
        language: Option<&str>,
    ) -> Result<Vec<Utterance>, SpeechError> {
        let network = self.network()?.lock().unwrap_or_else(|p| p.into_inner());
        let failed = |e: candle_core::Error| SpeechError::Model(e.to_string());
        let mut out = Vec::new();
        let mut seek = 0usize;
        let mut prompt: Vec<u32> = Vec::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(samples.len() as u64);
        let mut said_in: Option<(u32, String)> = None;
        while seek + SAMPLE_RATE / 10 < samples.len() {
            if crate::stop::requested() {
                return Err(SpeechError::Interrupted);
            }
            let window = &samples[seek..window_end(samples.len(), seek, pauses)];
            let mel = self.mel.window(window);
            let mel = Tensor::from_vec(mel, (1, self.config.num_mel_bins, FRAMES), &Device::Cpu)
                .map_err(failed)?;
            let audio = network.encoder.forward(&mel).map_err(failed)?;
            let audio = network.decoder.hear(&audio).map_err(failed)?;
            // Each window's own, as talk longer than a window may change language; but a
            // short rest of a few seconds says too little, and keeps the window's before it.
            let short = window.len() < SHORT_WINDOW;
            let (lang_token, code) = match (&said_in, short) {
                (Some(before), true) => before.clone(),
                _ => self.language(&network, &audio, language)?,
            };
            said_in = Some((lang_token, code.clone()));
            let window_seconds = window.len() as f64 / SAMPLE_RATE as f64;
            let decoded = self.with_fallback(
                &network,
                &audio,
                &prompt,
                lang_token,
                window_seconds,
                &mut rng,
            )?;
            let silent = decoded.no_speech > NO_SPEECH_LEAST && decoded.avg_logprob < LOGPROB_LEAST;
            // A score that is not a number (NaN) proves nothing: unsure.
            let unsure = decoded.avg_logprob.is_nan()
                || decoded.avg_logprob < GUESS_LEAST
                || decoded.compression_ratio > COMPRESSION_RATIO_MOST;
            let start = at + seek as f64 / SAMPLE_RATE as f64;
            let (utterances, consumed) = self.split(&decoded, start, window_seconds, &code);
            if !silent && !unsure {
                out.extend(utterances);
                prompt.extend(&decoded.tokens);
            }
            let consumed = match consumed {
                Some(s) if s > 0.0 && !silent && !unsure => s,
                _ => window_seconds,
            };
            seek += ((consumed * SAMPLE_RATE as f64) as usize).max(SAMPLE_RATE / 10);
        }
        Ok(out)
    }

    fn network(&self) -> Result<&Mutex<Network>, SpeechError> {
        let loaded = self.network.get_or_init(|| {
            Network::load(&self.weights, &self.config)
                .map(Mutex::new)
                .map_err(|e| e.to_string())
        });
        loaded.as_ref().map_err(|detail| SpeechError::BrokenModel {
            dir: self.weights.parent().unwrap_or(&self.weights).to_path_buf(),
            detail: detail.clone(),
        })
    }

    /// The forced language, the only one an English model knows, or the most likely one.
    fn language(
        &self,
        network: &Network,
        audio: &Heard,
        forced: Option<&str>,
    ) -> Result<(u32, String), SpeechError> {
        if let Some(code) = forced {
            let token = self.special.language(code);
            return Ok((token.unwrap_or(0), code.to_string()));
        }
        if !self.multilingual() {
            return Ok((0, "en".to_string()));
        }
        let failed = |e: candle_core::Error| SpeechError::Model(e.to_string());
        let mut state = network.decoder.start(audio);
        let logits = network
            .decoder
            .step(&[self.special.sot], &[0], &mut state)
            .and_then(|l| l.i(0)?.to_vec1::<f32>())
            .map_err(failed)?;
        let best = self
            .special
            .languages
            .iter()
            .max_by(|a, b| logits[a.0 as usize].total_cmp(&logits[b.0 as usize]))
            .expect("a multilingual model has languages");
        Ok(best.clone())
    }

    /// Decodes at rising temperatures until the text is neither repetitive nor improbable, or
    /// the window is judged silent.
    fn with_fallback(
        &self,
        network: &Network,
        audio: &Heard,
        prompt: &[u32],
        lang: u32,
        seconds: f64,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<Decoded, SpeechError> {
        let mut tried: Vec<Decoded> = Vec::new();
        for &temperature in &TEMPERATURES {
            // A hot decoding is not conditioned on earlier text, which might have caused it.
            let prompt = if temperature > 0.5 { &[][..] } else { prompt };
            let decoded = self.decode(network, audio, prompt, lang, temperature, seconds, rng)?;
            let silent = decoded.no_speech > NO_SPEECH_LEAST && decoded.avg_logprob < LOGPROB_LEAST;
            let good = decoded.compression_ratio <= COMPRESSION_RATIO_MOST
                && decoded.avg_logprob >= LOGPROB_LEAST;
            if silent || good {
                return Ok(decoded);
            }
            tried.push(decoded);
        }
        // None passed: the likeliest that does not repeat itself (as faster-whisper picks), which
        // the caller still drops if it is unsure; a hotter guess is no better than a cooler one.
        let likeliest = |a: &&Decoded, b: &&Decoded| a.avg_logprob.total_cmp(&b.avg_logprob);
        let best = tried
            .iter()
            .filter(|d| d.compression_ratio <= COMPRESSION_RATIO_MOST)
            .max_by(likeliest)
            .or_else(|| tried.iter().max_by(likeliest))
            .expect("at least one temperature");
        Ok(best.clone())
    }

    fn initial(&self, prompt: &[u32], lang: u32) -> (Vec<u32>, usize) {
        let mut tokens = Vec::new();
        if !prompt.is_empty() {
            let most = self.config.max_target_positions / 2 - 1;
            tokens.push(self.special.sot_prev);
            tokens.extend(&prompt[prompt.len().saturating_sub(most)..]);
        }
        let sot_index = tokens.len();
        tokens.push(self.special.sot);
        if self.multilingual() {
            tokens.push(lang);
            tokens.push(self.special.transcribe);
        }
        (tokens, sot_index)
    }

    fn decode(
        &self,
        network: &Network,
        audio: &Heard,
        prompt: &[u32],
        lang: u32,
        temperature: f32,
        seconds: f64,
        rng: &mut rand::rngs::StdRng,
    ) -> Result<Decoded, SpeechError> {
        let failed = |e: candle_core::Error| SpeechError::Model(e.to_string());
        let (initial, sot_index) = self.initial(prompt, lang);
        let sample_begin = initial.len();
        let most = self.config.max_target_positions / 2;
        let mut state = network.decoder.start(audio);
        let at = [sot_index as u32, (sample_begin - 1) as u32];
        let both = network
            .decoder
            .step(&initial, &at, &mut state)
            .map_err(failed)?;
        let no_speech = match self.special.no_speech {
            Some(t) => {
                let probs = candle_nn::ops::softmax_last_dim(&both.i(0).map_err(failed)?)
                    .map_err(failed)?;
                f64::from(
                    probs
                        .i(t as usize)
                        .and_then(|p| p.to_scalar::<f32>())
                        .map_err(failed)?,
                )
            }
            None => 0.0,
        };
        let mut logits = both.i(1).map_err(failed)?;
        let mut tokens: Vec<u32> = Vec::new();
        let mut sum_logprob = 0f64;
        for _ in 0..most.min(token_budget(seconds)) {
            let mut values = logits.to_vec1::<f32>().map_err(failed)?;
            self.apply_rules(&mut values, &tokens);
            let next = self.choose(&values, temperature, rng);
            let logprobs =
                log_softmax(&Tensor::new(values.as_slice(), &Device::Cpu).map_err(failed)?)
                    .map_err(failed)?;
            let logprob = logprobs
                .i(next as usize)
                .and_then(|l| l.to_scalar::<f32>())
                .map_err(failed)?;
            if next == self.special.eot {
                break;
            }
            sum_logprob += f64::from(logprob);
            tokens.push(next);
            if sample_begin + tokens.len() >= network.decoder.max_tokens() {
                break;
            }
            // Text that already repeats itself is dropped or tried again whatever follows;
            // writing it on to the cap made a few seconds of music cost half a minute.
            if tokens.len() % LOOP_CHECK_EVERY == 0
                && tokens.len() >= 3 * LOOP_CHECK_EVERY
                && compression_ratio(&self.text(&tokens)) > COMPRESSION_RATIO_MOST
            {
                break;
            }
            logits = network
                .decoder
                .step(&[next], &[0], &mut state)
                .and_then(|l| l.i(0))
                .map_err(failed)?;
        }
        let text = self.text(&tokens);
        Ok(Decoded {
            avg_logprob: sum_logprob / (tokens.len() + 1) as f64,
            compression_ratio: compression_ratio(&text),
            tokens,
            no_speech,
        })
    }

    fn choose(&self, values: &[f32], temperature: f32, rng: &mut rand::rngs::StdRng) -> u32 {
        if temperature == 0.0 {
            return argmax(values) as u32;
        }
        let top = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = values
            .iter()
            .map(|v| ((v - top) / temperature).exp())
            .collect();
        match rand::distr::weighted::WeightedIndex::new(&weights) {
            Ok(d) => d.sample(rng) as u32,
            Err(_) => argmax(values) as u32,
        }
    }

    /// openai's logit filters: suppressed tokens, no blank start, and the timestamp rules.
    fn apply_rules(&self, logits: &mut [f32], tokens: &[u32]) {
        let s = &self.special;
        let ts = s.timestamp_begin as usize;
        let off = |logits: &mut [f32], range: std::ops::Range<usize>| {
            logits[range]
                .iter_mut()
                .for_each(|l| *l = f32::NEG_INFINITY)
        };
        for &t in &self.suppress {
            if let Some(l) = logits.get_mut(t as usize) {
                *l = f32::NEG_INFINITY;
            }
        }
        logits[s.no_timestamps as usize] = f32::NEG_INFINITY;
        if tokens.is_empty() {
            for &t in &self.config.suppress_tokens_begin {
                if let Some(l) = logits.get_mut(t as usize) {
                    *l = f32::NEG_INFINITY;
                }
            }
            logits[s.eot as usize] = f32::NEG_INFINITY;
        }
        let is_ts = |t: &u32| *t >= s.timestamp_begin;
        let last_ts = tokens.last().is_some_and(is_ts);
        let penultimate_ts = tokens.len() < 2 || is_ts(&tokens[tokens.len() - 2]);
        if last_ts {
            if penultimate_ts {
                off(logits, ts..logits.len());
            } else {
                off(logits, 0..s.eot as usize);
            }
        }
        if let Some(&latest) = tokens.iter().rev().find(|t| is_ts(t)) {
            // Timestamps never go back, and a closing one may repeat the last opening one.
            let floor = if last_ts && !penultimate_ts {
                latest
            } else {
                latest + 1
            };
            off(logits, ts..(floor as usize).min(logits.len()));
        }
        if tokens.is_empty() {
            off(logits, 0..ts);
            let most = ts + (FIRST_TIMESTAMP_MOST / TICK) as usize + 1;
            off(logits, most.min(logits.len())..logits.len());
        }
        // When timestamps together outweigh every text token, a timestamp it is.
        let logprobs = log_softmax_vec(logits);
        let timestamp_mass = log_sum_exp(&logprobs[ts..]);
        let best_text = logprobs[..ts]
            .iter()
            .copied()
            .fold(f32::NEG_INFINITY, f32::max);
        if timestamp_mass > best_text {
            off(logits, 0..ts);
        }
    }

    fn text(&self, tokens: &[u32]) -> String {
        let words: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.eot)
            .collect();
        self.tokenizer.decode(&words, true).unwrap_or_default()
    }

    /// The decoded tokens as utterances between timestamp pairs, and how far into the window
    /// they reach (None when the window was read to its end).
    fn split(
        &self,
        decoded: &Decoded,
        start: f64,
        window_seconds: f64,
        lang: &str,
    ) -> (Vec<Utterance>, Option<f64>) {
        let ts = self.special.timestamp_begin;
        let time = |t: u32| f64::from(t - ts) * TICK;
        let tokens = &decoded.tokens;
        let mut out = Vec::new();
        let mut opened: Option<(f64, usize)> = None;
        let mut reached = None;
        for (i, &t) in tokens.iter().enumerate() {
            if t < ts {
                continue;
            }
            match opened {
                Some((from, first)) if i > first => {
                    let words = self.text(&tokens[first..i]);
                    let to = time(t).min(window_seconds);
                    if !words.trim().is_empty() {
                        out.push(Utterance {
                            start: start + from,
                            end: start + to.max(from),
                            text: words.trim().to_string(),
                            lang: lang.to_string(),
                            avg_logprob: decoded.avg_logprob,
                            no_speech: decoded.no_speech,
                        });
                    }
                    reached = Some(to);
                    opened = None;
                }
                _ => opened = Some((time(t), i + 1)),
            }
        }
        // Text after the last timestamp ran to the window's end.
        if let Some((from, first)) = opened {
            let words = self.text(&tokens[first..]);
            if !words.trim().is_empty() {
                out.push(Utterance {
                    start: start + from,
                    end: start + window_seconds,
                    text: words.trim().to_string(),
                    lang: lang.to_string(),
                    avg_logprob: decoded.avg_logprob,
                    no_speech: decoded.no_speech,
                });
                reached = None;
            }
        }
        // A window that ends on a lone timestamp was read to its end (openai's rule). Otherwise
        // the decoder may have stopped early, and what follows its last timestamp is read
        // again, unless too little is left to hold a word.
        let single_end =
            tokens.len() >= 2 && tokens[tokens.len() - 1] >= ts && tokens[tokens.len() - 2] < ts;
        if single_end || reached.is_some_and(|r| window_seconds - r < LEFT_OVER_LEAST) {
            reached = None;
        }
        (out, reached)
    }

    /// Where the model's files live under the speech folder.
    pub fn dir(speech: &Path, model: &str) -> PathBuf {
        speech.join(model)
    }
}

/// Where the window from `seek` ends: at the last pause in its 30 s, so no word is cut in
/// two, unless that leaves it under a third full; what it leaves opens the next window.
fn window_end(len: usize, seek: usize, pauses: &[usize]) -> usize {
    let full = len.min(seek + WINDOW);
    if full == len {
        return len;
    }
    pauses
        .iter()
        .copied()
        .filter(|&p| p >= seek + WINDOW / 3 && p <= full)
        .max()
        .unwrap_or(full)
}

/// The most tokens `seconds` of sound can be written as.
fn token_budget(seconds: f64) -> usize {
    (LOOP_CHECK_EVERY as f64 * 2.0 + seconds * TOKENS_PER_SECOND_MOST).ceil() as usize
}

fn argmax(values: &[f32]) -> usize {
    values
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i)
}

fn log_softmax_vec(values: &[f32]) -> Vec<f32> {
    let total = log_sum_exp(values);
    values.iter().map(|v| v - total).collect()
}

fn log_sum_exp(values: &[f32]) -> f32 {
    let top = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if top == f32::NEG_INFINITY {
        return top;
    }
    top + values.iter().map(|v| (v - top).exp()).sum::<f32>().ln()
}

impl super::Transcriber for Whisper {
    fn transcribe(
        &self,
        samples: &[f32],
        pauses: &[usize],
        at: f64,
        lang: Option<&str>,
    ) -> Result<Vec<Utterance>, SpeechError> {
        Whisper::transcribe(self, samples, pauses, at, lang)
    }

    fn backend(&self) -> &str {
        "whisper"
    }

    fn model(&self) -> String {
        format!("whisper-{}", self.name)
    }

    fn knows(&self, lang: &str) -> bool {
        Whisper::knows(self, lang)
    }

    fn longest(&self) -> usize {
        LONGEST
    }
}

/// openai's repetition guard: text that zlib shrinks more than 2.4 times is a loop.
pub fn compression_ratio(text: &str) -> f64 {
    if text.is_empty() {
        return 0.0;
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    let compressed = z
        .write_all(text.as_bytes())
        .and_then(|_| z.finish())
        .map_or(text.len(), |c| c.len());
    text.len() as f64 / compressed as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_ends_at_its_last_pause_unless_that_leaves_it_nearly_empty() {
        let s = SAMPLE_RATE;
        assert_eq!(window_end(20 * s, 0, &[5 * s]), 20 * s, "the rest fits");
        let pauses = [5 * s, 20 * s, 28 * s, 35 * s];
        assert_eq!(window_end(60 * s, 0, &pauses), 28 * s);
        assert_eq!(
            window_end(60 * s, 28 * s, &pauses),
            58 * s,
            "no pause far enough in"
        );
        assert_eq!(window_end(60 * s, 0, &[5 * s]), WINDOW, "one early pause");
    }

    #[test]
    fn a_phrase_repeated_to_the_end_of_the_window_is_a_loop() {
        let looped = "Thank you for watching. ".repeat(12);
        assert!(compression_ratio(&looped) > COMPRESSION_RATIO_MOST);
        let said = "The bridge over the river opens in May, the mayor said on Tuesday.";
        assert!(compression_ratio(said) < COMPRESSION_RATIO_MOST);
    }
}
