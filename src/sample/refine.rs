//! Exact cut times after a coarse pass. Scene detection skips the frames no other frame refers
//! to, which halves decoding on typical H.264; when a cut falls in such a gap, the frames around
//! it are decoded again, all of them, to find the first frame of the new shot.

use std::path::{Path, PathBuf};

use crate::decode::{Converter, DecodeError, Decoder, Frame, Skip, Small, TIME_SLACK};

pub struct Refiner {
    path: PathBuf,
    /// Opened on the first cut that needs it: most videos put a key frame on every cut.
    decoder: Option<Decoder>,
    frames: u64,
    refinements: u64,
}

impl Refiner {
    pub fn new(path: &Path) -> Self {
        Refiner {
            path: path.to_path_buf(),
            decoder: None,
            frames: 0,
            refinements: 0,
        }
    }

    /// Frames decoded here, on top of the main pass.
    pub fn frames_decoded(&self) -> u64 {
        self.frames
    }

    /// How many cuts needed refining.
    pub fn refinements(&self) -> u64 {
        self.refinements
    }

    /// The frame in `(before, cut]` that differs most from the frame before it: the true cut.
    pub fn exact_cut(
        &mut self,
        converter: &mut Converter,
        before: f64,
        cut: f64,
    ) -> Result<Option<Frame>, DecodeError> {
        let decoder = match self.decoder.as_mut() {
            Some(decoder) => decoder,
            None => self
                .decoder
                .insert(Decoder::open(&self.path, Skip::NonRef)?),
        };
        self.refinements += 1;
        // From the key frame to `before` only reference frames matter; after it, every frame.
        decoder.set_skip(Skip::NonRef);
        decoder.seek(before)?;
        decoder.decode_all_from(before);
        let mut previous: Option<Small> = None;
        let mut best: Option<(f64, Frame)> = None;
        while let Some(frame) = decoder.next_frame()? {
            if frame.time < before - TIME_SLACK {
                continue;
            }
            if frame.time > cut + TIME_SLACK {
                break;
            }
            self.frames += 1;
            let small = converter
                .small(&frame.inner)
                .map_err(|source| DecodeError::Ffmpeg {
                    path: self.path.clone(),
                    doing: "converting a frame",
                    source,
                })?;
            if let Some(previous) = &previous {
                let distance = previous.distance(&small);
                if best.as_ref().is_none_or(|(d, _)| distance > *d) {
                    best = Some((distance, frame));
                }
            }
            previous = Some(small);
        }
        Ok(best.map(|(_, frame)| frame))
    }
}
