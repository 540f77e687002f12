//! One file through the pipeline in bounded memory. Sampling runs on a thread of its own and
//! hands on windows of kept pictures; each window is captioned, embedded and written out as
//! thumbnails while the next one is sampled, and then its pictures are dropped. What stays until
//! the file is done is small per frame: times, captions and vectors, which segmenting needs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

use super::{
    sample_windows, segments, FileError, FileStats, Frame, Indexed, Moment, Pipeline, Progress,
    Sampled, Window,
};
use crate::caption::run::{caption_all, key, Outcome};
use crate::caption::{Caption, Encoded};
use crate::embed::normalize;
use crate::segment::Segment;
use crate::store::{point_id, Point, Vectors};

/// Kept pictures per window: enough to keep `--concurrency` requests busy, and few enough
/// that a window of 512-pixel JPEGs stays within a few megabytes.
pub(super) fn window_size(concurrency: usize) -> usize {
    (concurrency * 4).clamp(32, 512)
}

impl Pipeline<'_> {
    /// Turns one file into segment points.
    pub fn run(
        &self,
        path: &Path,
        fingerprint: &str,
        on: &(dyn Fn(Progress) + Sync),
    ) -> Result<Indexed, FileError> {
        let mut work = Work::new(self, fingerprint, on);
        let wanted = std::sync::atomic::AtomicBool::new(true);
        // Pictures and sound are one unit of work, decoded side by side.
        let (pictures, heard) = std::thread::scope(|scope| {
            let hearing = self.hearing.map(|h| {
                let wanted = &wanted;
                scope.spawn(move || h.hear(path, &|| wanted.load(Ordering::Relaxed)))
            });
            let pictures = self.stream(path, on, &mut work);
            if pictures.is_err() {
                wanted.store(false, Ordering::Relaxed);
            }
            let heard = hearing.map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            (pictures, heard)
        });
        // A service that failed to transcribe fails the file, which the next run tries again.
        let heard = match heard {
            Some(Err(crate::speech::SpeechError::Service(error))) if pictures.is_ok() => {
                Err(FileError::Transcribe {
                    error,
                    spent: Box::new(work.stats.clone()),
                })
            }
            // A model that cannot be loaded is no property of the file: recording the file
            // unheard would leave it unheard once the model is mended.
            Some(Err(e @ crate::speech::SpeechError::BrokenModel { .. })) if pictures.is_ok() => {
                Err(FileError::Hear {
                    error: e.to_string(),
                    spent: Box::new(work.stats.clone()),
                })
            }
            heard => Ok(heard),
        };
        let (sampled, heard) = match (pictures, heard) {
            (Ok(sampled), Ok(heard)) => (sampled, heard),
            (Err(e), _) | (_, Err(e)) => {
                work.discard();
                return Err(e);
            }
        };
        let mut indexed = work.finish(sampled)?;
        if let (Some(hearing), Some(heard)) = (&self.hearing, heard) {
            self.add_speech(hearing, heard, fingerprint, &mut indexed)?;
        }
        Ok(indexed)
    }

    /// The file's speech segments join its picture segments; a sound that could not be heard
    /// leaves the pictures indexed and says why.
    fn add_speech(
        &self,
        hearing: &super::speech::Hearing,
        heard: Result<super::speech::Listened, crate::speech::SpeechError>,
        fingerprint: &str,
        indexed: &mut Indexed,
    ) -> Result<(), FileError> {
        let listened = match heard {
            Ok(listened) => listened,
            Err(crate::speech::SpeechError::Interrupted) => return Err(FileError::Interrupted),
            Err(e) => {
                indexed.stats.unheard = Some(e.to_string());
                return Ok(());
            }
        };
        let points = super::speech::points(
            &listened.heard,
            fingerprint,
            self.embedder,
            hearing,
            &indexed.points,
        )?;
        let stats = &mut indexed.stats;
        if listened.fresh {
            stats.transcribed_seconds = listened.heard.seconds;
            stats.sent_seconds = listened.heard.sent_seconds;
        }
        if listened.heard.broken {
            stats.unheard = Some(format!(
                "the sound breaks off at {}; what is said before it is indexed",
                crate::decode::clock(listened.heard.seconds)
            ));
        } else if listened.heard.damaged > 0 {
            stats.unheard = Some(format!(
                "{} audio packets could not be decoded; the speech around them is indexed",
                listened.heard.damaged
            ));
        }
        stats.speech_segments = points.len() as u64;
        stats.segments += points.len() as u64;
        indexed.points.extend(points);
        Ok(())
    }

    /// Samples on a thread of its own while this one takes each window as it comes.
    fn stream(
        &self,
        path: &Path,
        on: &(dyn Fn(Progress) + Sync),
        work: &mut Work,
    ) -> Result<Sampled, FileError> {
        let (sampling, dedup, picture) = (self.sampling, self.dedup, self.picture);
        let size = window_size(self.settings.concurrency);
        // One window waits while one is sampled and one captioned: three at most in memory.
        let (send, windows) = mpsc::sync_channel::<Window>(1);
        std::thread::scope(|scope| {
            let sampler = scope.spawn(move || {
                sample_windows(path, sampling, dedup, picture, on, size, &mut |window| {
                    // A closed channel means the captioning side failed and reports why.
                    send.send(window).map_err(|_| FileError::Interrupted)
                })
            });
            let taken = take_all(windows, work);
            let sampled = sampler
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            taken.and(sampled)
        })
    }
}

/// Takes every window until sampling ends or a window fails; dropping `windows` on the way
/// out stops the sampler at its next window.
fn take_all(windows: mpsc::Receiver<Window>, work: &mut Work) -> Result<(), FileError> {
    windows.into_iter().try_for_each(|window| work.take(window))
}

/// A file's frames as far as they are done.
struct Work<'p, 'a> {
    pipeline: &'p Pipeline<'a>,
    fingerprint: &'p str,
    on: &'p (dyn Fn(Progress) + Sync),
    frames: Vec<Frame>,
    /// By picture number: its caption, vector, and the start its thumbnail is named by.
    captions: Vec<Caption>,
    vectors: Vec<Option<Vec<f32>>>,
    thumbs: Vec<f64>,
    /// Each distinct picture's first number, so a picture seen again in a later window is
    /// never paid for twice, cache or not.
    first_of: HashMap<String, usize>,
    stats: FileStats,
}

impl<'p, 'a> Work<'p, 'a> {
    fn new(
        pipeline: &'p Pipeline<'a>,
        fingerprint: &'p str,
        on: &'p (dyn Fn(Progress) + Sync),
    ) -> Self {
        Work {
            pipeline,
            fingerprint,
            on,
            frames: Vec::new(),
            captions: Vec::new(),
            vectors: Vec::new(),
            thumbs: Vec::new(),
            first_of: HashMap::new(),
            stats: FileStats::default(),
        }
    }

    fn take(&mut self, window: Window) -> Result<(), FileError> {
        if crate::stop::requested() {
            return Err(FileError::Interrupted);
        }
        // What the file has cost so far, should a later window fail.
        self.stats.frames_sampled += window.sampled;
        self.stats.frames_kept += window.pictures.len() as u64;
        if let Some(last) = window.frames.last() {
            self.stats.duration = last.span.1;
        }
        self.write_thumbs(&window)?;
        let Window {
            frames,
            first,
            pictures,
            ..
        } = window;
        let captions = self.caption(first, pictures)?;
        let vectors = self.pipeline.embed(&captions)?;
        self.captions.extend(captions);
        self.vectors.extend(vectors);
        self.frames.extend(frames);
        Ok(())
    }

    /// Each kept frame's picture, as sent to the captioner, under its stretch's start.
    fn write_thumbs(&mut self, window: &Window) -> Result<(), FileError> {
        for frame in &window.frames {
            let Some(number) = frame.picture else {
                continue;
            };
            let jpeg = &window.pictures[number - window.first].jpeg;
            self.pipeline
                .thumbs
                .write(self.fingerprint, frame.span.0, jpeg)
                .map_err(|(path, source)| FileError::Thumbnail { path, source })?;
            self.thumbs.push(frame.span.0);
        }
        Ok(())
    }

    /// The window's captions in order; a picture answered in an earlier window takes that
    /// answer, the rest are asked for (cache first).
    fn caption(&mut self, first: usize, pictures: Vec<Encoded>) -> Result<Vec<Caption>, FileError> {
        let p = self.pipeline;
        let total = (first + pictures.len()) as u64;
        let mut earlier = Vec::with_capacity(pictures.len());
        let mut fresh = Vec::new();
        for (k, picture) in pictures.into_iter().enumerate() {
            let key = key(&picture, p.captioner, p.settings);
            let number = *self.first_of.entry(key).or_insert(first + k);
            if number < first {
                earlier.push(Some(number));
            } else {
                earlier.push(None);
                fresh.push(picture);
            }
        }
        let done_before = total - fresh.len() as u64;
        let asked = self.ask(&fresh, done_before, total)?;
        let mut asked = asked.into_iter();
        Ok(earlier
            .into_iter()
            .map(|answered| match answered {
                Some(n) => self.captions[n].clone(),
                None => asked.next().expect("one answer per fresh picture"),
            })
            .collect())
    }

    /// Captions `fresh` (identical pictures among them asked once); `done_before` of the
    /// `total` pictures so far needed no asking.
    fn ask(
        &mut self,
        fresh: &[Encoded],
        done_before: u64,
        total: u64,
    ) -> Result<Vec<Caption>, FileError> {
        let p = self.pipeline;
        let done = std::sync::atomic::AtomicU64::new(done_before);
        let tick = || {
            let done = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            (self.on)(Progress::Captioning { done, total });
        };
        let (outcomes, totals) = caption_all(fresh, p.captioner, p.settings, p.cache, &tick);
        if crate::stop::requested() {
            return Err(FileError::Interrupted);
        }
        self.stats.captioning.calls += totals.calls;
        self.stats.captioning.cache_hits += totals.cache_hits;
        self.stats.captioning.failures += totals.failures;
        self.stats.captioning.usage += totals.usage;
        self.stats.frames_captioned = total;
        outcomes
            .into_iter()
            .map(|Outcome { caption, .. }| caption)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|first| FileError::Caption {
                failed: totals.failures,
                total,
                first,
                spent: Box::new(self.stats.clone()),
            })
    }

    /// Segments, their points, and each segment's thumbnail under its start's name.
    fn finish(mut self, sampled: Sampled) -> Result<Indexed, FileError> {
        self.stats.duration = sampled.duration;
        self.stats.truncated = sampled.truncated;
        self.stats.implausible = sampled.implausible;
        (self.on)(Progress::Embedding);
        let moments: Vec<Moment> = self
            .frames
            .iter()
            .map(|f| Moment {
                time: f.time,
                span: f.span,
                starts_shot: f.starts_shot,
                vector: f.picture.and_then(|i| self.vectors[i].as_deref()),
            })
            .collect();
        let found = segments(&moments, self.pipeline.segmenting);
        self.stats.segments = found.len() as u64;
        let thumbnails = match self.settle_thumbs(&found) {
            Ok(paths) => paths,
            Err(e) => {
                self.discard();
                return Err(e);
            }
        };
        let points = found
            .iter()
            .zip(&thumbnails)
            .map(|(segment, thumbnail)| self.point(segment, thumbnail))
            .collect();
        Ok(Indexed {
            points,
            stats: self.stats,
        })
    }

    fn representative(&self, segment: &Segment) -> usize {
        self.frames[segment.representative]
            .picture
            .expect("segments hold kept frames")
    }

    /// Gives each segment its representative's picture under the segment's start, and removes
    /// the pictures no segment shows. One frame split into several segments is copied to each.
    fn settle_thumbs(&self, found: &[Segment]) -> Result<Vec<PathBuf>, FileError> {
        let thumbs = &self.pipeline.thumbs;
        let failed = |(path, source)| FileError::Thumbnail { path, source };
        let mut shown: HashMap<usize, Vec<usize>> = HashMap::new();
        for (s, segment) in found.iter().enumerate() {
            shown
                .entry(self.representative(segment))
                .or_default()
                .push(s);
        }
        let mut paths = vec![PathBuf::new(); found.len()];
        for (picture, segs) in &shown {
            let own = self.thumbs[*picture];
            // Copies first, while the picture is still under its own name.
            for &s in &segs[1..] {
                paths[s] = thumbs
                    .copy(self.fingerprint, own, found[s].start)
                    .map_err(failed)?;
            }
            paths[segs[0]] = thumbs
                .rename(self.fingerprint, own, found[segs[0]].start)
                .map_err(failed)?;
        }
        let named: HashSet<i64> = found
            .iter()
            .map(|s| crate::store::millis(s.start))
            .collect();
        self.remove_unused(&named);
        Ok(paths)
    }

    fn point(&self, segment: &Segment, thumbnail: &Path) -> Point {
        let member = |m: usize| self.frames[m].picture.expect("segments hold kept frames");
        let representative = self.representative(segment);
        let mut dense = vec![0.0; self.pipeline.embedder.dimension()];
        for &m in &segment.moments {
            let v = self.vectors[member(m)]
                .as_ref()
                .expect("segments hold searchable frames");
            dense.iter_mut().zip(v).for_each(|(d, x)| *d += x);
        }
        normalize(&mut dense);
        let members: Vec<&Caption> = segment
            .moments
            .iter()
            .map(|&m| &self.captions[member(m)])
            .collect();
        Point {
            id: point_id(self.fingerprint, segment.start),
            vectors: Some(Vectors::new(dense, super::words(&members))),
            payload: super::payload(
                segment,
                &self.frames,
                &members,
                &self.captions[representative],
                self.fingerprint,
                thumbnail,
            ),
        }
    }

    /// Removes the pictures written for frames that are no segment's thumbnail.
    fn remove_unused(&self, named: &HashSet<i64>) {
        for &start in &self.thumbs {
            if !named.contains(&crate::store::millis(start)) {
                // A leftover picture costs disk, not correctness; the file's folder goes
                // with it when the file is forgotten.
                let _ = self.pipeline.thumbs.remove_one(self.fingerprint, start);
            }
        }
    }

    /// A file that failed leaves none of the pictures it wrote.
    fn discard(&self) {
        self.remove_unused(&HashSet::new());
    }
}
