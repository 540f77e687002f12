//! segment: adjacent frames that say the same thing become one timed segment.
//!
//! Frames on the timeline arrive in order, each with the stretch of video it stands for. A frame
//! joins the segment before it when its caption's vector is close to the segment's (cosine
//! similarity), no shot change separates them, and the segment stays under a maximum length. A
//! frame with nothing searchable (uninformative, DECORATIVE, uncertain, failed) belongs to no
//! segment and ends the one before it. So segments tile the timeline, but for those frames.

use crate::embed::{cosine, normalize};

/// One frame on the timeline, as segmenting sees it.
#[derive(Clone, Debug)]
pub struct Moment<'a> {
    pub time: f64,
    /// The stretch of video `[start, end)` this frame stands for.
    pub span: (f64, f64),
    /// The sampler saw a shot change at this frame.
    pub starts_shot: bool,
    /// The caption's vector; None for a frame with nothing searchable.
    pub vector: Option<&'a [f32]>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    /// Indexes of the moments merged into this segment, in time order.
    pub moments: Vec<usize>,
    /// The moment whose caption stands for the segment: the one closest to their mean.
    pub representative: usize,
}

/// The default similarity at which adjacent frames merge, for captions embedded by `model`.
/// all-MiniLM-L6-v2's captions of unrelated scenes score about 0.05, of related ones 0.4, and
/// 0.8 merges near paraphrases only. multilingual-e5-small crowds the same pairs into 0.77 and
/// 0.84 (tests/data/relevance.jsonl), so near paraphrases sit at about 0.93 (the line through
/// both).
pub fn merge_similarity(model: &str) -> f32 {
    match model {
        crate::embed::E5::NAME => 0.93,
        _ => 0.8,
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SegmentConfig {
    /// Cosine similarity of caption vectors at or above which adjacent frames merge.
    pub min_similarity: f32,
    /// Longest segment, in seconds, so that a long shot stays searchable at a useful grain.
    pub max_length: f64,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            min_similarity: 0.8,
            max_length: 60.0,
        }
    }
}

pub fn segments(moments: &[Moment], config: SegmentConfig) -> Vec<Segment> {
    let mut done = Vec::new();
    let mut open: Option<Open> = None;
    for (i, moment) in moments.iter().enumerate() {
        let Some(vector) = moment.vector else {
            if let Some(o) = open.take() {
                done.extend(o.close(moments, config.max_length));
            }
            continue;
        };
        match open.as_mut() {
            Some(o) if o.accepts(moment, vector, config) => o.add(i, moment, vector),
            _ => {
                if let Some(o) = open.take() {
                    done.extend(o.close(moments, config.max_length));
                }
                open = Some(Open::new(i, moment, vector));
            }
        }
    }
    if let Some(o) = open {
        done.extend(o.close(moments, config.max_length));
    }
    done
}

/// A segment still taking frames, with the sum of its vectors.
struct Open {
    start: f64,
    end: f64,
    moments: Vec<usize>,
    sum: Vec<f32>,
}

impl Open {
    fn new(i: usize, moment: &Moment, vector: &[f32]) -> Open {
        Open {
            start: moment.span.0,
            end: moment.span.1,
            moments: vec![i],
            sum: vector.to_vec(),
        }
    }

    fn accepts(&self, moment: &Moment, vector: &[f32], config: SegmentConfig) -> bool {
        !moment.starts_shot
            && moment.span.1 - self.start <= config.max_length
            && cosine(&self.sum, vector) >= config.min_similarity
    }

    fn add(&mut self, i: usize, moment: &Moment, vector: &[f32]) {
        self.end = moment.span.1;
        self.moments.push(i);
        self.sum.iter_mut().zip(vector).for_each(|(s, v)| *s += v);
    }

    /// The segment, in equal pieces when one frame alone stands for longer than the maximum
    /// (a still shot whose duplicates it absorbed), so that no hit is longer than asked.
    fn close(self, moments: &[Moment], max_length: f64) -> Vec<Segment> {
        let whole = self.whole(moments);
        let length = whole.end - whole.start;
        if length <= max_length {
            return vec![whole];
        }
        let pieces = (length / max_length).ceil();
        let step = length / pieces;
        (0..pieces as usize)
            .map(|k| Segment {
                start: whole.start + step * k as f64,
                end: match k + 1 == pieces as usize {
                    true => whole.end,
                    false => whole.start + step * (k + 1) as f64,
                },
                ..whole.clone()
            })
            .collect()
    }

    fn whole(self, moments: &[Moment]) -> Segment {
        let mut mean = self.sum;
        normalize(&mut mean);
        let closeness = |i: &usize| moments[*i].vector.map_or(f32::MIN, |v| cosine(&mean, v));
        // The earliest of equally close frames, so the choice does not depend on float noise.
        let representative = self
            .moments
            .iter()
            .copied()
            .fold(None::<(usize, f32)>, |best, i| match best {
                Some((_, c)) if c >= closeness(&i) => best,
                _ => Some((i, closeness(&i))),
            })
            .map_or(self.moments[0], |(i, _)| i);
        Segment {
            start: self.start,
            end: self.end,
            moments: self.moments,
            representative,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOG: [f32; 3] = [1.0, 0.0, 0.0];
    const DOG_AGAIN: [f32; 3] = [0.95, 0.312, 0.0];
    const CITY: [f32; 3] = [0.0, 0.0, 1.0];

    fn at<'a>(start: f64, end: f64, starts_shot: bool, vector: Option<&'a [f32]>) -> Moment<'a> {
        Moment {
            time: start,
            span: (start, end),
            starts_shot,
            vector,
        }
    }

    #[test]
    fn similar_frames_of_one_shot_merge_and_different_ones_do_not() {
        let moments = [
            at(0.0, 10.0, true, Some(&DOG)),
            at(10.0, 20.0, false, Some(&DOG_AGAIN)),
            at(20.0, 30.0, false, Some(&CITY)),
        ];
        let found = segments(&moments, SegmentConfig::default());
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].start, found[0].end, found[0].moments.clone()),
            (0.0, 20.0, vec![0, 1])
        );
        assert_eq!((found[1].start, found[1].end), (20.0, 30.0));
    }

    #[test]
    fn a_shot_change_separates_even_identical_captions() {
        let moments = [
            at(0.0, 5.0, true, Some(&DOG)),
            at(5.0, 9.0, true, Some(&DOG)),
        ];
        assert_eq!(segments(&moments, SegmentConfig::default()).len(), 2);
    }

    #[test]
    fn a_long_shot_is_cut_at_the_maximum_length() {
        let moments: Vec<Moment> = (0..9)
            .map(|i| {
                at(
                    f64::from(i) * 10.0,
                    f64::from(i + 1) * 10.0,
                    i == 0,
                    Some(&DOG),
                )
            })
            .collect();
        let found = segments(
            &moments,
            SegmentConfig {
                max_length: 30.0,
                ..Default::default()
            },
        );
        let bounds: Vec<(f64, f64)> = found.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(bounds, [(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)]);
    }

    #[test]
    fn max_segment_is_a_cap_even_for_one_frame_that_stands_for_a_long_still_shot() {
        let moments = [
            at(0.0, 150.0, true, Some(&DOG)),
            at(150.0, 152.0, true, Some(&CITY)),
        ];
        let found = segments(
            &moments,
            SegmentConfig {
                max_length: 5.0,
                ..Default::default()
            },
        );
        assert_eq!(found.len(), 31);
        assert!(found.iter().all(|s| s.end - s.start <= 5.0 + 1e-9));
        assert!(
            found.windows(2).all(|w| w[0].end == w[1].start),
            "they tile"
        );
        assert_eq!((found[0].start, found[29].end), (0.0, 150.0));
        assert!(found[..30].iter().all(|s| s.moments == [0]));
    }

    #[test]
    fn frames_with_nothing_searchable_belong_to_no_segment_and_the_rest_tile() {
        let moments = [
            at(0.0, 4.0, true, Some(&DOG)),
            at(4.0, 5.0, true, None),
            at(5.0, 9.0, true, Some(&DOG)),
            at(9.0, 12.0, false, Some(&DOG_AGAIN)),
            at(12.0, 15.0, true, Some(&CITY)),
        ];
        let found = segments(&moments, SegmentConfig::default());
        let bounds: Vec<(f64, f64)> = found.iter().map(|s| (s.start, s.end)).collect();
        assert_eq!(bounds, [(0.0, 4.0), (5.0, 12.0), (12.0, 15.0)]);
        assert!(found.iter().all(|s| !s.moments.contains(&1)));
    }

    #[test]
    fn the_representative_is_the_frame_closest_to_the_segment_mean() {
        let edge: [f32; 3] = [0.82, 0.57, 0.0];
        let moments = [
            at(0.0, 1.0, true, Some(&edge)),
            at(1.0, 2.0, false, Some(&DOG_AGAIN)),
            at(2.0, 3.0, false, Some(&DOG)),
        ];
        let found = segments(&moments, SegmentConfig::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].representative, 1);
    }
}
