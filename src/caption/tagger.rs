//! The offline tagger: an ImageNet classifier (EfficientNet-Lite0) run locally with candle,
//! plus on-screen text from tesseract where it is installed. No network, no key, no cost.
//! Its output is labelled as tags with their scores: keywords, not a description.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

use candle_core::{DType, Device, Module, ModuleT, Tensor};
use candle_nn::{batch_norm, BatchNorm, BatchNormConfig, VarBuilder};

use super::{CaptionError, Captioner, Reply, Request, Usage};

/// Input side of the network.
const SIDE: u32 = 224;
/// Labels kept: the best few, and only those the network gives some weight.
const TOP: usize = 5;
const MIN_SCORE: f32 = 0.05;

#[derive(Debug, thiserror::Error)]
pub enum TaggerError {
    #[error(
        "the offline tagger's weights are not in {0} (run scripts/setup.sh, or point SCENEDEX_TAGGER_DIR at them)"
    )]
    Missing(PathBuf),
    #[error("the offline tagger's files in {dir} are unusable: {detail}")]
    Broken { dir: PathBuf, detail: String },
}

pub struct Tagger {
    network: Network,
    labels: Vec<String>,
    ocr: bool,
}

impl Tagger {
    /// `$SCENEDEX_TAGGER_DIR`, or `~/.local/share/scenedex/tagger` where set-up puts the files.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("SCENEDEX_TAGGER_DIR")
            .map(PathBuf::from)
            .or_else(|| dirs::data_dir().map(|d| d.join("scenedex").join("tagger")))
    }

    pub fn load(dir: &Path) -> Result<Tagger, TaggerError> {
        let weights = dir.join("efficientnet-lite0.safetensors");
        let labels = dir.join("labels.json");
        if !weights.is_file() || !labels.is_file() {
            return Err(TaggerError::Missing(dir.to_path_buf()));
        }
        let broken = |detail: String| TaggerError::Broken {
            dir: dir.to_path_buf(),
            detail,
        };
        let labels: Vec<String> = std::fs::read(&labels)
            .map_err(|e| broken(e.to_string()))
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| broken(e.to_string())))?;
        if labels.len() != 1000 {
            return Err(broken(format!("{} labels instead of 1000", labels.len())));
        }
        let bytes = std::fs::read(&weights).map_err(|e| broken(e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &Device::Cpu)
            .map_err(|e| broken(e.to_string()))?;
        let network = Network::load(vb).map_err(|e| broken(e.to_string()))?;
        Ok(Tagger {
            network,
            labels,
            ocr: tesseract_available(),
        })
    }

    /// The best labels for a picture, with their probabilities.
    pub fn labels(
        &self,
        image: &image::RgbImage,
    ) -> Result<Vec<(String, f32)>, candle_core::Error> {
        let input = preprocess(image)?;
        let logits = self.network.forward(&input)?;
        let probabilities = candle_nn::ops::softmax(&logits, 1)?
            .squeeze(0)?
            .to_vec1::<f32>()?;
        let mut ranked: Vec<(usize, f32)> = probabilities.into_iter().enumerate().collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        Ok(ranked
            .into_iter()
            .take(TOP)
            .filter(|(_, p)| *p >= MIN_SCORE)
            .map(|(i, p)| (self.labels[i].clone(), p))
            .collect())
    }
}

impl Captioner for Tagger {
    fn backend(&self) -> &str {
        "tagger"
    }

    fn model(&self) -> &str {
        if self.ocr {
            "efficientnet-lite0+tesseract"
        } else {
            "efficientnet-lite0"
        }
    }

    fn caption(&self, request: &Request) -> Result<Reply, CaptionError> {
        let bad = |detail: String| CaptionError::BadReply {
            backend: "tagger".into(),
            detail,
        };
        let image = image::load_from_memory(request.jpeg)
            .map_err(|e| bad(e.to_string()))?
            .to_rgb8();
        let labels = self.labels(&image).map_err(|e| bad(e.to_string()))?;
        let mut text = String::from("tags: ");
        if labels.is_empty() {
            text.push_str("(none confident)");
        }
        let listed: Vec<String> = labels
            .iter()
            .map(|(l, p)| format!("{l} ({p:.2})"))
            .collect();
        text.push_str(&listed.join(", "));
        if self.ocr {
            if let Some(words) = visible_text(request.jpeg) {
                text.push_str(&format!("\ntext: \"{words}\""));
            }
        }
        Ok(Reply {
            text,
            usage: Usage::default(),
        })
    }

    fn image_tokens(&self, _width: u32, _height: u32) -> u64 {
        0
    }

    fn makes_tags(&self) -> bool {
        true
    }
}

/// Centre square, scaled to 224x224, as [1, 3, 224, 224] in [-1, 1]: how the Lite models
/// were trained (mean 127, scale 128 in the reference implementation).
fn preprocess(image: &image::RgbImage) -> Result<Tensor, candle_core::Error> {
    let (w, h) = image.dimensions();
    let side = w.min(h);
    let square =
        image::imageops::crop_imm(image, (w - side) / 2, (h - side) / 2, side, side).to_image();
    let scaled =
        image::imageops::resize(&square, SIDE, SIDE, image::imageops::FilterType::Triangle);
    let data: Vec<f32> = scaled
        .into_raw()
        .into_iter()
        .map(|v| (f32::from(v) - 127.0) / 128.0)
        .collect();
    Tensor::from_vec(data, (1, SIDE as usize, SIDE as usize, 3), &Device::Cpu)?
        .permute((0, 3, 1, 2))?
        .contiguous()
}

fn tesseract_available() -> bool {
    Command::new("tesseract")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Words tesseract reads in the picture with confidence: OCR on photographs invents letters
/// from texture, so only confident, word-shaped readings are kept.
fn visible_text(jpeg: &[u8]) -> Option<String> {
    let mut tesseract = Command::new("tesseract");
    tesseract.args(["stdin", "stdout", "--psm", "11", "-l", "eng", "tsv"]);
    let tsv = run_for(&mut tesseract, jpeg, OCR_LIMIT)?;
    let words = confident_words(&tsv);
    (!words.is_empty()).then(|| words.join(" "))
}

/// Tesseract reads a 512-pixel picture in well under a second; one that takes this long is
/// stuck on it, and the picture goes without its words.
const OCR_LIMIT: Duration = Duration::from_secs(30);

/// Runs a program with `input` on its standard input and returns its standard output, or None
/// when it fails, outlives `limit`, or a stop is requested. The child is always waited for,
/// so none is left a zombie, whatever happens to its pipes.
fn run_for(command: &mut Command, input: &[u8], limit: Duration) -> Option<String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
    std::thread::scope(|scope| {
        // Written and read on threads of their own, so a child that stops reading or never
        // ends cannot block this one; killing it ends both.
        scope.spawn(move || stdin.map(|mut pipe| pipe.write_all(input)));
        let reader = scope.spawn(move || {
            let mut text = String::new();
            stdout.map(|mut pipe| pipe.read_to_string(&mut text));
            text
        });
        let succeeded = wait_for(&mut child, limit);
        if !succeeded {
            let _ = child.kill();
        }
        let _ = child.wait();
        let text = reader.join().unwrap_or_default();
        succeeded.then_some(text)
    })
}

/// Whether the child ended well within `limit`, checking for a stop request as it waits.
fn wait_for(child: &mut std::process::Child, limit: Duration) -> bool {
    let started = Instant::now();
    loop {
        match child.wait_timeout(Duration::from_millis(100)) {
            Ok(Some(status)) => return status.success(),
            Ok(None) if crate::stop::requested() || started.elapsed() >= limit => return false,
            Ok(None) => {}
            Err(_) => return false,
        }
    }
}

/// Tesseract's TSV: the 11th column is the confidence (0-100), the 12th the word.
fn confident_words(tsv: &str) -> Vec<&str> {
    const MIN_CONFIDENCE: f64 = 80.0;
    tsv.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let confidence: f64 = fields.get(10)?.parse().ok()?;
            let word = fields.get(11)?.trim();
            (confidence >= MIN_CONFIDENCE && looks_like_a_word(word)).then_some(word)
        })
        .collect()
}

fn looks_like_a_word(word: &str) -> bool {
    let letters = word.chars().filter(|c| c.is_alphanumeric()).count();
    letters >= 3 && letters * 10 >= word.chars().count() * 8
}

/// A convolution with TensorFlow's "same" padding, then batch norm, then ReLU6 if asked.
struct ConvBn {
    weight: Tensor,
    stride: usize,
    groups: usize,
    norm: BatchNorm,
    activate: bool,
}

impl ConvBn {
    fn load(
        vb: &VarBuilder,
        conv: &str,
        norm: &str,
        shape: (usize, usize, usize),
        stride: usize,
        groups: usize,
        activate: bool,
    ) -> candle_core::Result<ConvBn> {
        let (out, in_per_group, k) = shape;
        let weight = vb.get((out, in_per_group, k, k), &format!("{conv}.weight"))?;
        let config = BatchNormConfig {
            eps: 1e-3,
            ..Default::default()
        };
        let norm = batch_norm(out, config, vb.pp(norm))?;
        Ok(ConvBn {
            weight,
            stride,
            groups,
            norm,
            activate,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let k = self.weight.dim(3)?;
        let (_, _, h, w) = x.dims4()?;
        let (top, bottom) = same_padding(h, k, self.stride);
        let (left, right) = same_padding(w, k, self.stride);
        let padded = x
            .pad_with_zeros(2, top, bottom)?
            .pad_with_zeros(3, left, right)?;
        let y = padded.conv2d(&self.weight, 0, self.stride, 1, self.groups)?;
        let y = self.norm.forward_t(&y, false)?;
        if self.activate {
            y.clamp(0f32, 6f32)
        } else {
            Ok(y)
        }
    }
}

/// TensorFlow's SAME padding: the output is ceil(size / stride), extra padding at the end.
fn same_padding(size: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = size.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(size);
    (total / 2, total - total / 2)
}

/// An inverted-residual block (MBConv) without squeeze-excitation, as in the Lite models.
struct Block {
    expand: Option<ConvBn>,
    depthwise: ConvBn,
    project: ConvBn,
    residual: bool,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = match &self.expand {
            Some(expand) => expand.forward(x)?,
            None => x.clone(),
        };
        y = self.depthwise.forward(&y)?;
        y = self.project.forward(&y)?;
        if self.residual {
            y = (y + x)?;
        }
        Ok(y)
    }
}

/// EfficientNet-Lite0: the B0 layout (stem 32, head 1280) with ReLU6 and no SE.
struct Network {
    stem: ConvBn,
    blocks: Vec<Block>,
    head: ConvBn,
    classifier: candle_nn::Linear,
}

/// (repeats, kernel, stride, expansion, input channels, output channels) per stage.
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

impl Network {
    fn load(vb: VarBuilder) -> candle_core::Result<Network> {
        let stem = ConvBn::load(&vb, "_conv_stem", "_bn0", (32, 3, 3), 2, 1, true)?;
        let mut blocks = Vec::new();
        for (repeats, k, stride, expansion, input, output) in STAGES {
            for r in 0..repeats {
                let (input, stride) = if r == 0 { (input, stride) } else { (output, 1) };
                let vb = vb.pp(format!("_blocks.{}", blocks.len()));
                let hidden = input * expansion;
                let expand = (expansion != 1)
                    .then(|| {
                        ConvBn::load(&vb, "_expand_conv", "_bn0", (hidden, input, 1), 1, 1, true)
                    })
                    .transpose()?;
                blocks.push(Block {
                    expand,
                    depthwise: ConvBn::load(
                        &vb,
                        "_depthwise_conv",
                        "_bn1",
                        (hidden, 1, k),
                        stride,
                        hidden,
                        true,
                    )?,
                    project: ConvBn::load(
                        &vb,
                        "_project_conv",
                        "_bn2",
                        (output, hidden, 1),
                        1,
                        1,
                        false,
                    )?,
                    residual: stride == 1 && input == output,
                });
            }
        }
        let head = ConvBn::load(&vb, "_conv_head", "_bn1", (1280, 320, 1), 1, 1, true)?;
        let classifier = candle_nn::linear(1280, 1000, vb.pp("_fc"))?;
        Ok(Network {
            stem,
            blocks,
            head,
            classifier,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut y = self.stem.forward(x)?;
        for block in &self.blocks {
            y = block.forward(&y)?;
        }
        let pooled = self.head.forward(&y)?.mean((2, 3))?;
        self.classifier.forward(&pooled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: tesseract ran with no time-out, so one stuck on a picture stopped the run.
    #[test]
    fn a_helper_that_outlives_its_limit_is_killed_and_reaped() {
        let started = Instant::now();
        let mut sleeper = Command::new("sleep");
        sleeper.arg("60");
        assert_eq!(run_for(&mut sleeper, b"", Duration::from_millis(300)), None);
        assert!(started.elapsed() < Duration::from_secs(10));
        let mut cat = Command::new("cat");
        assert_eq!(
            run_for(&mut cat, b"words", Duration::from_secs(10)).as_deref(),
            Some("words")
        );
    }

    /// Issue 10: a failed write to tesseract's standard input left it a zombie.
    #[test]
    fn a_helper_that_reads_nothing_does_not_block_the_writer_and_is_reaped() {
        let started = Instant::now();
        let big = vec![0u8; 8 << 20];
        let mut quitter = Command::new("true");
        assert_eq!(
            run_for(&mut quitter, &big, Duration::from_secs(10)).as_deref(),
            Some("")
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_padding(224, 3, 2), (0, 1));
        assert_eq!(same_padding(112, 3, 1), (1, 1));
        assert_eq!(same_padding(14, 5, 2), (1, 2));
        assert_eq!(same_padding(7, 5, 1), (2, 2));
    }

    #[test]
    fn only_confident_words_are_read_from_ocr() {
        let tsv = "level\tpage_num\tblock_num\tpar_num\tline_num\tword_num\tleft\ttop\twidth\theight\tconf\ttext\n\
                   5\t1\t1\t1\t1\t1\t114\t154\t174\t52\t96.1\tEXIT\n\
                   5\t1\t1\t1\t1\t2\t0\t0\t9\t9\t29.8\tzqx\n\
                   4\t1\t1\t1\t1\t0\t0\t41\t224\t147\t-1\t\n";
        assert_eq!(confident_words(tsv), vec!["EXIT"]);
    }

    #[test]
    fn ocr_noise_is_not_taken_for_words() {
        assert!(looks_like_a_word("EXIT"));
        assert!(looks_like_a_word("Hello,"));
        assert!(!looks_like_a_word("~|"));
        assert!(!looks_like_a_word("a"));
        assert!(!looks_like_a_word("=-=/"));
    }
}
