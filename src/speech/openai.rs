//! Transcription by an OpenAI-compatible service: `POST /audio/transcriptions` with
//! `response_format=verbose_json`, which OpenAI's whisper-1 and self-hosted Whisper servers
//! (faster-whisper-server, LocalAI, whisper.cpp's server) answer with timed segments. Only the
//! stretches the voice-activity detector hears a voice in are sent, each as a 16 kHz mono WAV,
//! so silence and music are never paid for, and segments the service itself marks as silence,
//! repetition or a guess are dropped by the same rules as local Whisper's.

use std::io::Cursor;

use serde::Deserialize;

use super::mel::SAMPLE_RATE;
use super::{SpeechError, Transcriber, Utterance};
use crate::caption::http::{with_bearer, Client, HttpSettings, Secret};

/// OpenAI's list price of whisper-1 (and of gpt-4o-transcribe), per minute of sound.
const WHISPER_1_PER_MINUTE: f64 = 0.006;
/// The same checks as local decoding (`whisper.rs`).
const NO_SPEECH_LEAST: f64 = 0.6;
const LOGPROB_LEAST: f64 = -1.0;
const GUESS_LEAST: f64 = -1.5;
const COMPRESSION_RATIO_MOST: f64 = 2.4;

/// Dollars per minute of sound at OpenAI's list price, where known.
pub fn list_price(model: &str) -> Option<f64> {
    (model == "whisper-1").then_some(WHISPER_1_PER_MINUTE)
}

pub struct OpenAiTranscriber {
    client: Client,
    url: String,
    key: Option<Secret>,
    model: String,
    price: Option<f64>,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    language: Option<String>,
    /// Required: an answer without segments (plain `json`) has no times, and is no
    /// proof of silence.
    segments: Vec<Segment>,
}

#[derive(Deserialize)]
struct Segment {
    start: f64,
    end: f64,
    text: String,
    #[serde(default)]
    avg_logprob: Option<f64>,
    #[serde(default)]
    no_speech_prob: Option<f64>,
    #[serde(default)]
    compression_ratio: Option<f64>,
}

impl OpenAiTranscriber {
    /// `price`: dollars per minute of sound, where known (`backends::speech_price`).
    pub fn new(
        base_url: &str,
        model: &str,
        key: Option<Secret>,
        price: Option<f64>,
        http: HttpSettings,
    ) -> OpenAiTranscriber {
        OpenAiTranscriber {
            client: Client::new("openai", http),
            url: format!("{}/audio/transcriptions", base_url.trim_end_matches('/')),
            key,
            model: model.to_string(),
            price,
        }
    }

    fn utterances(
        &self,
        answer: Answer,
        at: f64,
        seconds: f64,
        lang: Option<&str>,
    ) -> Vec<Utterance> {
        let lang = lang
            .map(str::to_string)
            .or_else(|| answer.language.as_deref().map(language_code))
            .unwrap_or_default();
        answer
            .segments
            .into_iter()
            .filter(|s| s.start.is_finite() && s.end.is_finite() && !s.text.trim().is_empty())
            .filter(|s| !doubtful(s))
            .map(|s| Utterance {
                start: at + s.start.clamp(0.0, seconds),
                end: at + s.end.clamp(s.start.clamp(0.0, seconds), seconds),
                text: s.text.trim().to_string(),
                lang: lang.clone(),
                avg_logprob: s.avg_logprob.unwrap_or(0.0),
                no_speech: s.no_speech_prob.unwrap_or(0.0),
            })
            .collect()
    }
}

/// Silence (likely no speech, and unsure of the words), a loop, or a guess.
fn doubtful(s: &Segment) -> bool {
    let logprob = s.avg_logprob.unwrap_or(0.0);
    let silent = s.no_speech_prob.unwrap_or(0.0) > NO_SPEECH_LEAST && logprob < LOGPROB_LEAST;
    silent || logprob < GUESS_LEAST || s.compression_ratio.unwrap_or(0.0) > COMPRESSION_RATIO_MOST
}

/// OpenAI names the language ("german"); self-hosted servers often give its code ("de").
fn language_code(named: &str) -> String {
    let named = named.trim().to_lowercase();
    if named.len() == 2 {
        return named;
    }
    isolang::Language::from_name_lowercase(&named)
        .and_then(|l| l.to_639_1())
        .map_or(named, str::to_string)
}

/// The samples as a 16-bit PCM WAV file, as every transcription service reads it.
fn wav(samples: &[f32]) -> Result<Vec<u8>, hound::Error> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: SAMPLE_RATE as u32,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut bytes = Cursor::new(Vec::new());
    let mut writer = hound::WavWriter::new(&mut bytes, spec)?;
    for &x in samples {
        writer.write_sample((x.clamp(-1.0, 1.0) * i16::MAX as f32) as i16)?;
    }
    writer.finalize()?;
    Ok(bytes.into_inner())
}

impl Transcriber for OpenAiTranscriber {
    fn transcribe(
        &self,
        samples: &[f32],
        _pauses: &[usize],
        at: f64,
        lang: Option<&str>,
    ) -> Result<Vec<Utterance>, SpeechError> {
        let audio = wav(samples).map_err(|e| SpeechError::Model(e.to_string()))?;
        let mut fields = vec![
            ("model", self.model.as_str()),
            ("response_format", "verbose_json"),
            ("timestamp_granularities[]", "segment"),
            ("temperature", "0"),
        ];
        if let Some(lang) = lang {
            fields.push(("language", lang));
        }
        let answer = with_bearer(self.key.as_ref(), |headers| {
            self.client
                .post_form(&self.url, headers, &fields, ("file", "speech.wav", &audio))
        })
        .map_err(SpeechError::Service)?;
        let answer: Answer = serde_json::from_value(answer).map_err(|e| {
            SpeechError::Service(crate::caption::CaptionError::BadReply {
                backend: "openai".into(),
                detail: format!("not a verbose_json transcription ({e})"),
            })
        })?;
        let seconds = samples.len() as f64 / SAMPLE_RATE as f64;
        Ok(self.utterances(answer, at, seconds, lang))
    }

    fn backend(&self) -> &str {
        "openai"
    }

    fn model(&self) -> String {
        self.model.clone()
    }

    fn knows(&self, lang: &str) -> bool {
        isolang::Language::from_639_1(lang).is_some()
    }

    fn price_per_minute(&self) -> Option<f64> {
        self.price
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(start: f64, text: &str, logprob: f64, no_speech: f64, ratio: f64) -> Segment {
        Segment {
            start,
            end: start + 2.0,
            text: text.into(),
            avg_logprob: Some(logprob),
            no_speech_prob: Some(no_speech),
            compression_ratio: Some(ratio),
        }
    }

    #[test]
    fn segments_the_service_doubts_are_dropped_and_the_rest_placed_on_the_file_s_timeline() {
        let t = OpenAiTranscriber::new(
            "http://127.0.0.1:9/v1",
            "whisper-1",
            None,
            None,
            HttpSettings::default(),
        );
        let answer = Answer {
            language: Some("german".into()),
            segments: vec![
                segment(0.0, " Guten Tag.", -0.3, 0.01, 1.0),
                segment(2.0, " Thank you for watching.", -1.2, 0.9, 1.0),
                segment(4.0, " la la la la la la la la", -0.2, 0.01, 3.1),
                segment(6.0, " mmh", -2.0, 0.1, 1.0),
                segment(8.0, " Bis morgen.", -0.4, 0.02, 1.0),
            ],
        };
        let heard = t.utterances(answer, 100.0, 9.0, None);
        let texts: Vec<(&str, f64, f64, &str)> = heard
            .iter()
            .map(|u| (u.text.as_str(), u.start, u.end, u.lang.as_str()))
            .collect();
        assert_eq!(
            texts,
            [
                ("Guten Tag.", 100.0, 102.0, "de"),
                ("Bis morgen.", 108.0, 109.0, "de")
            ]
        );
    }

    #[test]
    fn an_answer_without_segments_is_no_transcript() {
        // Plain `json` has no times: taking it as silence would cache a file as saying nothing.
        assert!(serde_json::from_str::<Answer>(r#"{"text": "Guten Tag."}"#).is_err());
        let answer: Answer =
            serde_json::from_str(r#"{"language": "german", "segments": []}"#).unwrap();
        assert!(answer.segments.is_empty());
    }

    #[test]
    fn language_names_become_codes() {
        assert_eq!(language_code("English"), "en");
        assert_eq!(language_code("de"), "de");
        assert_eq!(language_code("klingon"), "klingon");
    }

    #[test]
    fn the_sound_is_sent_as_16_khz_mono_pcm() {
        let bytes = wav(&[0.0, 0.5, -1.0]).unwrap();
        let reader = hound::WavReader::new(Cursor::new(bytes)).unwrap();
        let spec = reader.spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 16_000, 16)
        );
        let samples: Vec<i16> = reader.into_samples().map(Result::unwrap).collect();
        assert_eq!(samples, [0, 16383, -32767]);
    }
}
