//! Content-change detection on signature frames: hard cuts, fades and dissolves, with flashes
//! and motion bursts rejected.
//!
//! A frame is judged once `LOOKAHEAD` later frames are known, so that a one-frame flash (the
//! picture jumps, then comes back) can be told from a cut (the picture jumps and stays).

use std::collections::VecDeque;

use crate::decode::Small;

/// Frames after a candidate cut that are looked at before it is confirmed.
pub const LOOKAHEAD: usize = 3;
/// Frames of recent change that set the adaptive baseline.
const HISTORY: usize = 12;
/// A fade or dissolve is a change past the threshold within this many seconds; slower drift
/// (a pan, a zoom) is left to the sampler's gap frames.
const GRADUAL_WINDOW: f64 = 1.5;
/// A gradual change is taken once its drift stops growing by more than this share of the
/// threshold...
const GROWTH_SHARE: f64 = 0.05;
/// ...for this many frames in a row...
const SETTLED_FRAMES: usize = 3;
/// ...or once it has gone on this long (a pan or zoom that never settles).
const GRADUAL_MAX_WAIT: f64 = 3.0;
/// How far back a settled fade is traced to where it began: the longest fade found.
const TRAIL: f64 = GRADUAL_WINDOW + GRADUAL_MAX_WAIT;
/// A frame has moved away from the shot before a fade once it is closer to where the fade
/// arrives by more than this share of the whole change...
const MOVED_SHARE: f64 = 0.05;
/// ...and by more than this much: still frames of a shot differ by a little noise.
const MOVED_FLOOR: f64 = 0.5;
/// A frame is still if no frame of this many seconds before it was further from where the
/// fade arrives by more than the above: slower drift is the shot moving, not the fade.
const STILL_WINDOW: f64 = 0.5;

#[derive(Clone, Copy, Debug)]
pub struct SceneConfig {
    /// Mean per-sample change (0-255) between consecutive signature frames that makes a cut.
    pub threshold: f64,
    /// Shortest shot: a cut closer than this to the previous one is ignored.
    pub min_scene: f64,
}

impl Default for SceneConfig {
    fn default() -> Self {
        SceneConfig {
            threshold: 20.0,
            min_scene: 0.3,
        }
    }
}

/// The detector's final word on one frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    pub time: f64,
    pub change: Change,
    /// Where the change began: the first frame that moved away from the shot before a fade or
    /// dissolve, which owns the stretch of timeline from there. `time` for anything else.
    pub began: f64,
}

/// What the detector says of a frame once it is final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    None,
    /// The frame where a fade or dissolve has settled on new content.
    Gradual,
    /// The first frame of a new shot after a hard cut.
    Cut,
}

enum Jump {
    None,
    Cut,
    Flash,
}

struct Pending {
    time: f64,
    small: Small,
}

/// A fade or dissolve under way: where it started from and how far it has gone.
struct Gradual {
    since: f64,
    from: Small,
    peak: f64,
    settled: usize,
}

pub struct SceneDetector {
    config: SceneConfig,
    window: VecDeque<Pending>,
    /// Changes between consecutive judged frames, for the adaptive baseline.
    history: VecDeque<f64>,
    /// Judged frames (flashes aside) of the last TRAIL seconds of the current shot: the last is
    /// what the next frame is compared with, those of the last GRADUAL_WINDOW seconds what a
    /// gradual change is measured against, and all of them where a fade's start is traced.
    trail: VecDeque<Pending>,
    gradual: Option<Gradual>,
    /// Times of the last change of any kind and of the last hard cut: a gradual change must
    /// not hold back the hard cut that often ends it.
    last_change: f64,
    last_cut: f64,
}

impl SceneDetector {
    pub fn new(config: SceneConfig) -> Self {
        SceneDetector {
            config,
            window: VecDeque::with_capacity(LOOKAHEAD + 1),
            history: VecDeque::with_capacity(HISTORY),
            trail: VecDeque::new(),
            gradual: None,
            last_change: f64::NEG_INFINITY,
            last_cut: f64::NEG_INFINITY,
        }
    }

    /// Adds a frame; returns the verdict on the oldest frame once enough later frames are known.
    pub fn push(&mut self, time: f64, small: Small) -> Option<Verdict> {
        self.window.push_back(Pending { time, small });
        (self.window.len() > LOOKAHEAD).then(|| self.judge_oldest())
    }

    /// Verdicts on the frames still waiting for lookahead, at the end of the stream.
    pub fn finish(&mut self) -> Vec<Verdict> {
        let mut verdicts = Vec::new();
        while !self.window.is_empty() {
            verdicts.push(self.judge_oldest());
        }
        verdicts
    }

    fn judge_oldest(&mut self) -> Verdict {
        let (change, flash) = self.classify();
        let began = match change {
            Change::Gradual => self.fade_began(),
            _ => self.window[0].time,
        };
        let frame = self.window.pop_front().expect("judge_oldest needs a frame");
        let time = frame.time;
        let verdict = Verdict {
            time,
            change,
            began,
        };
        // A flash is no reference: the frame after it is compared with the frame before it.
        if flash {
            return verdict;
        }
        if let Some(previous) = self.trail.back() {
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history
                .push_back(previous.small.distance(&frame.small));
        }
        if change != Change::None {
            self.trail.clear();
        }
        while self.trail.front().is_some_and(|p| time - p.time > TRAIL) {
            self.trail.pop_front();
        }
        self.trail.push_back(frame);
        verdict
    }

    /// The oldest judged frame of the current shot at most `seconds` before the newest.
    fn oldest_within(&self, seconds: f64) -> Option<&Pending> {
        let newest = self.trail.back()?.time;
        self.trail.iter().find(|p| newest - p.time <= seconds)
    }

    /// Where the fade or dissolve that settles on the oldest waiting frame began: the frame
    /// after the last one of this shot that was still as far from the settled picture as the
    /// shot was before the change. A fade-in's black frames thus stay with the black before it.
    ///
    /// Still means as far as the farthest frame of the `STILL_WINDOW` before, not of the whole
    /// trail: a panning shot drifts towards or away from the new picture, and measured against
    /// its farthest frame, a dissolve out of it seemed to begin there, a second or more early.
    fn fade_began(&self) -> f64 {
        let settled = &self.window[0];
        let away: Vec<(f64, f64)> = self
            .trail
            .iter()
            .map(|p| (p.time, p.small.distance(&settled.small)))
            .collect();
        let before = away.iter().map(|(_, d)| *d).fold(0.0, f64::max);
        let moved = (before * MOVED_SHARE).max(MOVED_FLOOR);
        let still = |i: usize| {
            let (time, distance) = away[i];
            let farthest = away[..=i]
                .iter()
                .rev()
                .take_while(|(t, _)| time - t <= STILL_WINDOW)
                .map(|(_, d)| *d)
                .fold(0.0, f64::max);
            distance >= farthest - moved
        };
        match (0..away.len()).rposition(still) {
            Some(last_still) => self
                .trail
                .get(last_still + 1)
                .map_or(settled.time, |p| p.time),
            None => settled.time,
        }
    }

    /// The verdict on the oldest waiting frame, and whether it is a flash.
    fn classify(&mut self) -> (Change, bool) {
        let Some(previous) = self.trail.back().map(|p| &p.small) else {
            return (Change::None, false);
        };
        let candidate = &self.window[0];
        let time = candidate.time;
        match self.jump(previous, candidate) {
            Jump::Cut if time - self.last_cut >= self.config.min_scene => {
                self.last_cut = time;
                self.mark_change(time);
                return (Change::Cut, false);
            }
            Jump::Flash => return (Change::None, true),
            Jump::Cut | Jump::None => {}
        }
        if self.gradual_settled() && time - self.last_change >= self.config.min_scene {
            self.mark_change(time);
            return (Change::Gradual, false);
        }
        (Change::None, false)
    }

    fn mark_change(&mut self, time: f64) {
        self.last_change = time;
        self.gradual = None;
    }

    /// A jump well above the recent level of motion is a cut if the picture stays changed, and
    /// a flash if the frames after it look more like the frame before it than like the jump.
    fn jump(&self, previous: &Small, candidate: &Pending) -> Jump {
        let t = self.config.threshold;
        let baseline = self.baseline();
        let delta = previous.distance(&candidate.small);
        let jumped = (delta >= t && delta >= 2.0 * baseline)
            || (delta >= t / 2.0 && delta >= 3.0 * baseline);
        if !jumped {
            return Jump::None;
        }
        let Some(after) = self.window.back().filter(|_| self.window.len() > 1) else {
            return Jump::Cut;
        };
        let before_to_after = previous.distance(&after.small);
        let jump_to_after = candidate.small.distance(&after.small);
        if before_to_after > jump_to_after && before_to_after >= t / 2.0 {
            Jump::Cut
        } else {
            Jump::Flash
        }
    }

    fn baseline(&self) -> f64 {
        if self.history.is_empty() {
            return 1.0;
        }
        let mean = self.history.iter().sum::<f64>() / self.history.len() as f64;
        mean.max(1.0)
    }

    /// A change past the threshold within GRADUAL_WINDOW, taken once it stops growing, so
    /// that the frame kept shows where the fade or dissolve arrived rather than a blend.
    fn gradual_settled(&mut self) -> bool {
        let candidate = &self.window[0];
        let t = self.config.threshold;
        let Some(gradual) = self.gradual.as_mut() else {
            if let Some(oldest) = self.oldest_within(GRADUAL_WINDOW) {
                let drift = oldest.small.distance(&candidate.small);
                if drift >= t {
                    self.gradual = Some(Gradual {
                        since: candidate.time,
                        from: oldest.small.clone(),
                        peak: drift,
                        settled: 0,
                    });
                }
            }
            return false;
        };
        let drift = gradual.from.distance(&candidate.small);
        if drift > gradual.peak + GROWTH_SHARE * t {
            gradual.peak = drift;
            gradual.settled = 0;
        } else {
            gradual.settled += 1;
        }
        gradual.settled >= SETTLED_FRAMES || candidate.time - gradual.since >= GRADUAL_MAX_WAIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{SMALL_H, SMALL_W};

    fn flat(y: u8) -> Small {
        let n = (SMALL_W * SMALL_H) as usize;
        Small {
            planes: [vec![y; n], vec![128; n], vec![128; n]],
        }
    }

    fn run(frames: &[u8]) -> Vec<Verdict> {
        let mut detector = SceneDetector::new(SceneConfig::default());
        let mut out = Vec::new();
        for (i, y) in frames.iter().enumerate() {
            out.extend(detector.push(i as f64 * 0.04, flat(*y)));
        }
        out.extend(detector.finish());
        out
    }

    fn changes(verdicts: &[Verdict]) -> Vec<(usize, Change)> {
        verdicts
            .iter()
            .enumerate()
            .filter(|(_, v)| v.change != Change::None)
            .map(|(i, v)| (i, v.change))
            .collect()
    }

    #[test]
    fn every_frame_gets_one_verdict_in_order() {
        let verdicts = run(&[10; 20]);
        assert_eq!(verdicts.len(), 20);
        assert!(verdicts.windows(2).all(|w| w[0].time < w[1].time));
    }

    #[test]
    fn hard_cut_is_found_on_its_first_frame() {
        let mut frames = vec![40u8; 30];
        frames[12..].fill(200);
        assert_eq!(changes(&run(&frames)), vec![(12, Change::Cut)]);
    }

    #[test]
    fn one_frame_flash_is_not_a_cut() {
        let mut frames = vec![40u8; 30];
        frames[15] = 250;
        assert_eq!(changes(&run(&frames)), vec![]);
    }

    #[test]
    fn cut_in_the_last_frames_is_still_found() {
        let mut frames = vec![40u8; 30];
        frames[28..].fill(200);
        assert_eq!(changes(&run(&frames)), vec![(28, Change::Cut)]);
    }

    #[test]
    fn slow_fade_is_found_once_it_settles() {
        // 40 -> 200 over 40 frames (4 per frame: never a cut), then still.
        let mut frames: Vec<u8> = (0..40).map(|i| 40 + 4 * i as u8).collect();
        frames.extend([200u8; 20]);
        let found = changes(&run(&frames));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].1, Change::Gradual);
        assert!((40..=44).contains(&found[0].0), "taken mid-fade: {found:?}");
    }

    /// The one gradual change the detector finds in these frames.
    fn the_one_fade(frames: &[u8]) -> Verdict {
        let verdicts = run(frames);
        let fades: Vec<&Verdict> = verdicts
            .iter()
            .filter(|v| v.change == Change::Gradual)
            .collect();
        assert_eq!(fades.len(), 1, "{verdicts:?}");
        *fades[0]
    }

    /// A dissolve's stretch began at the farthest frame of the shot before it, a second or more
    /// early when that shot drifted.
    #[test]
    fn issue10_a_dissolve_out_of_a_drifting_shot_begins_where_the_drift_ends() {
        // A slow pan brightens the shot from 40 to 59 over 40 frames; then a 1 s dissolve to
        // 200. Measured against the shot's farthest frame, its first, the dissolve seemed to
        // begin at frame 16, almost 1 s early.
        let mut frames: Vec<u8> = (0..40).map(|i| 40 + i / 2).collect();
        frames.extend((1..=25).map(|i| (60.0 + 5.6 * f64::from(i)) as u8));
        frames.extend([200u8; 20]);
        let fade = the_one_fade(&frames);
        assert!(
            (fade.began - 40.0 * 0.04).abs() < 0.04 * 2.5,
            "began at frame 40 (1.60 s): {fade:?}"
        );
    }

    /// A fade's stretch began where it settled, 1.3 s late in a fade-in from black: a search
    /// hit for the new shot started after the viewer could already see it.
    #[test]
    fn issue10_a_fade_begins_at_its_first_moving_frame_not_where_it_settles() {
        // Still at 40 for 20 frames, then 40 -> 200 over 40 frames, then still.
        let mut frames = vec![40u8; 20];
        frames.extend((1..=40).map(|i| 40 + 4 * i as u8));
        frames.extend([200u8; 20]);
        let fade = the_one_fade(&frames);
        assert!(fade.time >= 59.0 * 0.04, "taken where it settles: {fade:?}");
        assert!(
            (fade.began - 20.0 * 0.04).abs() < 0.04 * 2.5,
            "began at frame 20 (0.80 s): {fade:?}"
        );
    }

    #[test]
    fn a_cut_begins_where_it_is() {
        let mut frames = vec![40u8; 30];
        frames[12..].fill(200);
        let cut = run(&frames)
            .into_iter()
            .find(|v| v.change == Change::Cut)
            .unwrap();
        assert_eq!(cut.began, cut.time);
    }
}
