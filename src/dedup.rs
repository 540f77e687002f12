//! dedup: keep only the sampled frames worth paying for, and give every frame its stretch of
//! the timeline so that nothing drops out of it.
//!
//! A frame that looks like the last frame on the timeline (perceptual hash within a Hamming
//! distance, and the same overall colour) is dropped and its stretch folded into that frame.
//! A black, blank or near-uniform frame stays on the timeline but is marked uninformative, so
//! no captioner is paid to describe it.

use image::RgbImage;
use image_hasher::{HashAlg, Hasher, HasherConfig, ImageHash};

use crate::sample::{Reason, Sample};

#[derive(Clone, Copy, Debug)]
pub struct DedupConfig {
    /// Largest Hamming distance (of 64 bits) between two frames' hashes that makes them duplicates.
    pub max_distance: u32,
    /// Largest difference of mean colour (0-255, any channel) between duplicates. A grayscale
    /// hash sees a red and a blue picture of the same shapes as one; this check does not.
    pub color_tolerance: f64,
    /// Luma standard deviation (0-255) below which a frame is near-uniform.
    pub uniform_below: f64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            max_distance: 10,
            color_tolerance: 20.0,
            uniform_below: 8.0,
        }
    }
}

/// What became of a sampled frame.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "verdict", rename_all = "lowercase")]
pub enum Verdict {
    /// Worth describing.
    Kept,
    /// Looks like the frame at `of`, whose stretch of the timeline now covers this one.
    Duplicate { of: f64 },
    /// Nothing to describe; it keeps its own stretch of the timeline.
    Uninformative { kind: Blank },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Blank {
    Black,
    White,
    Uniform,
}

impl Blank {
    pub fn as_str(self) -> &'static str {
        match self {
            Blank::Black => "black",
            Blank::White => "white",
            Blank::Uniform => "uniform",
        }
    }
}

/// A sampled frame with its verdict and the stretch of timeline `[span.0, span.1)` it stands for.
#[derive(Clone, Debug)]
pub struct FrameRecord {
    pub time: f64,
    pub span: (f64, f64),
    pub reason: Reason,
    pub hash: String,
    pub verdict: Verdict,
    pub image: RgbImage,
}

impl FrameRecord {
    pub fn kept(&self) -> bool {
        self.verdict == Verdict::Kept
    }
}

/// What is computed once per sampled frame to compare it with others.
struct Look {
    hash: ImageHash,
    mean_rgb: [f64; 3],
    blank: Option<Blank>,
}

pub struct Deduper {
    config: DedupConfig,
    hasher: Hasher,
    /// The last frame on the timeline (kept or uninformative), whose stretch is still open,
    /// and the duplicates folded into it so far, which are reported after it.
    open: Option<(FrameRecord, Look, Vec<FrameRecord>)>,
}

impl Deduper {
    pub fn new(config: DedupConfig) -> Self {
        let hasher = HasherConfig::new()
            .hash_alg(HashAlg::Gradient)
            .hash_size(8, 8)
            .to_hasher();
        Deduper {
            config,
            hasher,
            open: None,
        }
    }

    /// Takes the next sample; returns the records whose stretch of the timeline is now final.
    pub fn push(&mut self, sample: Sample) -> Vec<FrameRecord> {
        let look = self.look(&sample.image);
        let mut record = FrameRecord {
            time: sample.time,
            span: (sample.span_start, sample.time),
            reason: sample.reason,
            hash: look.hash.to_base64(),
            verdict: look
                .blank
                .map_or(Verdict::Kept, |kind| Verdict::Uninformative { kind }),
            image: sample.image,
        };
        if let Some((open, open_look, folded)) = self.open.as_mut() {
            if similar(&self.config, open_look, &look) {
                record.verdict = Verdict::Duplicate { of: open.time };
                record.span = (record.time, record.time);
                // Nobody looks at a duplicate's picture; a long static shot must not pile them up.
                record.image = RgbImage::new(0, 0);
                folded.push(record);
                return Vec::new();
            }
        }
        let done = self.close(record.span.0);
        self.open = Some((record, look, Vec::new()));
        done
    }

    /// Closes the last stretch at `end`, the end of the video, and returns what is left.
    pub fn finish(&mut self, end: f64) -> Vec<FrameRecord> {
        self.close(end)
    }

    fn close(&mut self, end: f64) -> Vec<FrameRecord> {
        let Some((mut open, _, folded)) = self.open.take() else {
            return Vec::new();
        };
        open.span.1 = end.max(open.time);
        let mut done = vec![open];
        done.extend(folded);
        done
    }

    fn look(&self, image: &RgbImage) -> Look {
        let (mean_rgb, luma_mean, luma_sd) = color_stats(image);
        let blank = (luma_sd < self.config.uniform_below).then_some(match luma_mean {
            m if m < 32.0 => Blank::Black,
            m if m > 224.0 => Blank::White,
            _ => Blank::Uniform,
        });
        Look {
            hash: self.hasher.hash_image(image),
            mean_rgb,
            blank,
        }
    }
}

fn similar(config: &DedupConfig, a: &Look, b: &Look) -> bool {
    let color_gap = a
        .mean_rgb
        .iter()
        .zip(&b.mean_rgb)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    a.hash.dist(&b.hash) <= config.max_distance && color_gap <= config.color_tolerance
}

/// Mean of each channel, and mean and standard deviation of luma (BT.601 weights).
fn color_stats(image: &RgbImage) -> ([f64; 3], f64, f64) {
    let n = f64::from(image.width()) * f64::from(image.height());
    if n == 0.0 {
        return ([0.0; 3], 0.0, 0.0);
    }
    let mut sum = [0.0f64; 3];
    let mut luma_sum = 0.0;
    let mut luma_sq = 0.0;
    for pixel in image.pixels() {
        let [r, g, b] = pixel.0.map(f64::from);
        sum[0] += r;
        sum[1] += g;
        sum[2] += b;
        let y = 0.299 * r + 0.587 * g + 0.114 * b;
        luma_sum += y;
        luma_sq += y * y;
    }
    let mean = luma_sum / n;
    let variance = (luma_sq / n - mean * mean).max(0.0);
    (sum.map(|s| s / n), mean, variance.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    fn sample(time: f64, image: RgbImage) -> Sample {
        Sample {
            time,
            span_start: time,
            reason: Reason::Scene,
            image,
        }
    }

    fn boxed(background: [u8; 3]) -> RgbImage {
        RgbImage::from_fn(160, 90, |x, y| {
            if (40..120).contains(&x) && (20..70).contains(&y) {
                Rgb([255, 255, 255])
            } else {
                Rgb(background)
            }
        })
    }

    fn all(deduper: &mut Deduper, samples: Vec<Sample>, end: f64) -> Vec<FrameRecord> {
        let mut out: Vec<FrameRecord> = samples.into_iter().flat_map(|s| deduper.push(s)).collect();
        out.extend(deduper.finish(end));
        out
    }

    #[test]
    fn same_picture_folds_into_the_first_and_extends_its_span() {
        let mut d = Deduper::new(DedupConfig::default());
        let out = all(
            &mut d,
            vec![
                sample(0.0, boxed([200, 30, 30])),
                sample(10.0, boxed([200, 30, 30])),
            ],
            15.0,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].verdict, Verdict::Kept);
        assert_eq!(out[0].span, (0.0, 15.0));
        assert_eq!(out[1].verdict, Verdict::Duplicate { of: 0.0 });
    }

    #[test]
    fn same_shapes_in_different_colours_are_not_folded() {
        let mut d = Deduper::new(DedupConfig::default());
        let red = boxed([220, 0, 0]);
        let blue = boxed([0, 0, 220]);
        let hash_distance = d.hasher.hash_image(&red).dist(&d.hasher.hash_image(&blue));
        assert!(
            hash_distance <= d.config.max_distance,
            "the hash alone would fold them"
        );
        let out = all(&mut d, vec![sample(0.0, red), sample(2.0, blue)], 4.0);
        assert!(out.iter().all(FrameRecord::kept));
        assert_eq!(out[0].span, (0.0, 2.0));
        assert_eq!(out[1].span, (2.0, 4.0));
    }

    #[test]
    fn black_frame_is_uninformative_but_keeps_its_span() {
        let mut d = Deduper::new(DedupConfig::default());
        let black = RgbImage::from_pixel(160, 90, Rgb([3, 3, 3]));
        let out = all(
            &mut d,
            vec![sample(0.0, boxed([0, 120, 0])), sample(5.0, black)],
            6.0,
        );
        assert_eq!(
            out[1].verdict,
            Verdict::Uninformative { kind: Blank::Black }
        );
        assert_eq!(out[1].span, (5.0, 6.0));
        assert_eq!(out[0].span, (0.0, 5.0));
    }
}
