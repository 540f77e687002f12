//! Key-frame-first scene detection. Most encoders put a key frame on every cut (x264's
//! scenecut, hardware encoders, a camera's recording start), so a scout decodes only the key
//! frames, a little ahead of the main pass, and reads every packet's size on the way. A
//! key-frame interval whose two ends look alike and whose packets show no picture coded afresh
//! holds nothing new, and the main pass leaves it undecoded. Anything else is decoded as
//! before, so a cut is never found from key frames alone.

use std::collections::VecDeque;
use std::path::Path;

use crate::decode::{Converter, DecodeError, Decoder, GopNote, Skip, Small, TIME_SLACK};
/// Intervals judged before the scout checks that it pays for the key frames it decodes...
const TRIAL: u64 = 8;
/// ...by leaving out at least this share of them.
const WORTH: f64 = 0.25;
/// Frame threads of the scout's decoder. Measured on 2 cores against the main pass's 4 (1080p
/// phone-style file, `frames --sample auto`): 4 gave 2.42 s and 125 MB, 2 gave 2.29 s and 113
/// MB, 1 gave 2.76 s and 105 MB.
const SCOUT_THREADS: usize = 2;
/// Intervals whose notes are kept after they were judged, to check a cut found later.
const KEPT_NOTES: usize = 16;

pub struct Scout {
    decoder: Decoder,
    converter: Converter,
    /// Key frames decoded ahead, oldest first.
    keys: VecDeque<(f64, Small)>,
    notes: VecDeque<GopNote>,
    /// Two key frames closer than this (the detector's measure) look alike.
    alike: f64,
    judged: u64,
    quiet: u64,
    ended: bool,
}

impl Scout {
    /// A scout for a regular file; none for a pipe or device, which cannot be read twice, or a
    /// file the second decoder cannot open (the main pass then reports the problem).
    pub fn open(path: &Path, alike: f64) -> Option<Scout> {
        if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
            return None;
        }
        let mut decoder = Decoder::open_with_threads(path, Skip::NonKey, SCOUT_THREADS).ok()?;
        decoder.watch_packets();
        Some(Scout {
            decoder,
            converter: Converter::default(),
            keys: VecDeque::new(),
            notes: VecDeque::new(),
            alike,
            judged: 0,
            quiet: 0,
            ended: false,
        })
    }

    /// Frames the scout decoded.
    pub fn frames_decoded(&self) -> u64 {
        self.decoder.stats().frames
    }

    /// Whether it has left out enough to be worth its key frames; once not, it is dropped.
    pub fn pays(&self) -> bool {
        self.judged < TRIAL || self.quiet as f64 >= WORTH * self.judged as f64
    }

    /// For the key frame at `time`: the time of the next key frame when everything between
    /// them may go undecoded, else None. `deadline`, if any, is the latest time a frame must
    /// be decoded by (auto mode's gap frames).
    pub fn quiet_until(
        &mut self,
        time: f64,
        deadline: Option<f64>,
    ) -> Result<Option<f64>, DecodeError> {
        self.judged += 1;
        if !self.reach(time)? {
            return Ok(None);
        }
        let ((start, first), (next, last)) = (&self.keys[0], &self.keys[1]);
        if (start - time).abs() > TIME_SLACK || deadline.is_some_and(|d| *next > d) {
            return Ok(None);
        }
        let Some(note) = self.note_at(time) else {
            return Ok(None);
        };
        let quiet = !note.burst
            && (note.end - next).abs() <= TIME_SLACK
            && first.distance(last) < self.alike;
        self.quiet += u64::from(quiet);
        Ok(quiet.then_some(*next))
    }

    /// Whether the packets of the interval holding `time` announced a picture coded afresh.
    /// None once that interval's note is gone or was never read.
    pub fn burst_at(&self, time: f64) -> Option<bool> {
        self.notes
            .iter()
            .rev()
            .find(|n| n.start <= time + TIME_SLACK && time < n.end - TIME_SLACK)
            .map(|n| n.burst)
    }

    /// Decodes key frames until the one at `time` and the one after it are known, dropping
    /// older ones. False if the stream ends first, or the scout cannot go on; only an
    /// interruption is an error, as the scout must never fail a file the main pass can read.
    fn reach(&mut self, time: f64) -> Result<bool, DecodeError> {
        while self
            .keys
            .front()
            .is_some_and(|(t, _)| *t < time - TIME_SLACK)
        {
            self.keys.pop_front();
        }
        while self.keys.len() < 2 && !self.ended {
            let frame = match self.decoder.next_frame() {
                Ok(frame) => frame,
                Err(DecodeError::Interrupted) => return Err(DecodeError::Interrupted),
                // The main pass meets the same damage and reports it; the scout only stops.
                Err(_) => None,
            };
            match frame {
                Some(frame) if frame.time >= time - TIME_SLACK => {
                    match self.converter.small(&frame.inner) {
                        Ok(small) => self.keys.push_back((frame.time, small)),
                        Err(_) => self.ended = true,
                    }
                }
                Some(_) => {}
                None => self.ended = true,
            }
        }
        self.take_notes();
        Ok(self.keys.len() == 2)
    }

    fn take_notes(&mut self) {
        self.notes.extend(self.decoder.gop_notes());
        let stale = self.notes.len().saturating_sub(KEPT_NOTES);
        self.notes.drain(..stale);
    }

    fn note_at(&self, time: f64) -> Option<GopNote> {
        self.notes
            .iter()
            .find(|n| (n.start - time).abs() <= TIME_SLACK)
            .copied()
    }
}
