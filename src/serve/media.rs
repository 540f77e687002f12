//! Video a browser can play, and thumbnails made where they are missing.
//!
//! A file in a container and codec Chromium plays is served as it is, with range requests.
//! Any other gets a stretch around the scene as fragmented MP4: its packets copied when the
//! codec is playable (a remux), or re-encoded to H.264 when it is not. Either is kept on disk
//! by fingerprint and time range, so a second click costs nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clip;

/// The longest side of a re-encoded stretch: enough for a page, and quick to encode.
const TRANSCODE_SIDE: u32 = 1280;

/// How a file reaches a `<video>` element.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Playback {
    /// As it is: the container and codec play in Chromium, Firefox and Safari.
    Native,
    /// Packets copied into fragmented MP4.
    Remux,
    /// Re-encoded to H.264 in fragmented MP4.
    Transcode,
}

/// Codecs every current browser decodes inside MP4.
const PLAYABLE_CODECS: [&str; 3] = ["h264", "vp9", "av1"];

pub fn playback(path: &Path, codec: &str, container: &str) -> Playback {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let mp4 = container.contains("mp4") && ["mp4", "m4v", "mov"].contains(&extension.as_str());
    let webm = container.contains("webm") && extension == "webm";
    let playable = PLAYABLE_CODECS.contains(&codec) || (webm && codec == "vp8");
    match (mp4 || webm, playable) {
        (true, true) => Playback::Native,
        (false, true) if codec != "vp8" => Playback::Remux,
        _ => Playback::Transcode,
    }
}

/// A stretch of a video made playable: the file, and the time in the source its zero is at.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Stretch {
    #[serde(skip)]
    pub file: PathBuf,
    pub offset: f64,
}

/// The most bytes of playable stretches kept on disk; the least recently made go first.
pub const STREAMS_LIMIT: u64 = 2 << 30;

/// Stretches made at once: each is a decoder and an encoder at work, and the machine also
/// serves the page.
pub const MAKING_AT_ONCE: usize = 2;

/// How long after it was last asked for a stretch counts as being played: a `<video>` comes
/// back for more byte ranges while it plays, and the file must still be there.
const PLAYING: Duration = Duration::from_secs(15 * 60);

/// Playable stretches on disk, by fingerprint and time range: made a few at a time, kept
/// under a size limit checked before each new one is written, and never removed while a
/// page may still be playing them.
pub struct Streams {
    root: PathBuf,
    limit: u64,
    making: Mutex<usize>,
    /// When each stretch was last asked for.
    asked: Mutex<HashMap<PathBuf, Instant>>,
}

/// A turn at making a stretch; given back when dropped.
pub struct Turn<'a>(&'a Streams);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        *self.0.making.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
    }
}

/// Why no stretch was made now.
#[derive(Debug)]
pub enum Wait {
    /// Every turn is taken: this many stretches are being made; ask again shortly.
    Busy(usize),
    Failed(String),
}

impl Streams {
    pub fn new(root: PathBuf, limit: u64) -> Streams {
        Streams {
            root,
            limit,
            making: Mutex::new(0),
            asked: Mutex::new(HashMap::new()),
        }
    }

    /// Where a file's stretches are.
    pub fn dir(&self, fingerprint: &str) -> PathBuf {
        self.root.join(fingerprint)
    }

    /// Notes that a stretch is being played.
    pub fn asked_for(&self, file: &Path) {
        let mut asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.insert(file.to_path_buf(), Instant::now());
    }

    fn playing(&self, file: &Path) -> bool {
        let asked = self.asked.lock().unwrap_or_else(|e| e.into_inner());
        asked.get(file).is_some_and(|at| at.elapsed() < PLAYING)
    }

    fn turn(&self) -> Result<Turn<'_>, Wait> {
        let mut making = self.making.lock().unwrap_or_else(|e| e.into_inner());
        if *making >= MAKING_AT_ONCE {
            return Err(Wait::Busy(*making));
        }
        *making += 1;
        Ok(Turn(self))
    }

    /// The stretch `[from, to)` seconds of `source`, made once and then read from disk.
    pub fn stretch(
        &self,
        source: &Path,
        fingerprint: &str,
        how: Playback,
        from: f64,
        to: f64,
    ) -> Result<Stretch, Wait> {
        let dir = self.dir(fingerprint);
        let name = format!("{}-{}", (from * 1000.0) as u64, (to * 1000.0) as u64);
        let file = dir.join(format!("{name}.mp4"));
        let about = dir.join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&about) {
            if let Ok(known) = serde_json::from_str::<Stretch>(&text) {
                if file.is_file() {
                    self.asked_for(&file);
                    return Ok(Stretch { file, ..known });
                }
            }
        }
        let _turn = self.turn()?;
        crate::private::create_dir_all(&dir)
            .map_err(|e| Wait::Failed(format!("{}: {e}", dir.display())))?;
        // Room first: the limit holds while the stretch is written, not only after.
        let expected = expected_size(source, how, from, to);
        self.keep_under(self.limit.saturating_sub(expected), None);
        // Two clicks on one scene may make it at once: each writes its own file, and the
        // renames leave one whole stretch either way.
        static MAKING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MAKING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let partial = dir.join(format!("{name}.{}-{n}.partial.mp4", std::process::id()));
        let made = make(source, how, from, to, &partial).map_err(|e| {
            let _ = std::fs::remove_file(&partial);
            Wait::Failed(format!("cannot make {} playable: {e}", source.display()))
        })?;
        std::fs::rename(&partial, &file).map_err(|e| Wait::Failed(e.to_string()))?;
        let made = Stretch {
            file,
            offset: made.zero,
        };
        let _ = std::fs::write(&about, serde_json::to_string(&made).unwrap_or_default());
        self.asked_for(&made.file);
        self.keep_under(self.limit, Some(&made.file));
        Ok(made)
    }

    /// Removes the oldest stretches until they take at most `limit` bytes; `keep` (the one
    /// just made) and stretches being played stay whatever their size.
    fn keep_under(&self, limit: u64, keep: Option<&Path>) {
        let mut stretches: Vec<(std::time::SystemTime, u64, PathBuf)> =
            walkdir::WalkDir::new(&self.root)
                .max_depth(2)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "mp4")
                })
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some((meta.modified().ok()?, meta.len(), e.into_path()))
                })
                .collect();
        let mut total: u64 = stretches.iter().map(|(_, size, _)| size).sum();
        stretches.sort();
        for (_, size, path) in stretches {
            if total <= limit {
                break;
            }
            // A stretch being written (`.partial.mp4`) is another request's, still at work.
            let partial = path.to_string_lossy().ends_with(".partial.mp4");
            if Some(path.as_path()) == keep || partial || self.playing(&path) {
                continue;
            }
            if std::fs::remove_file(&path).is_ok() {
                let _ = std::fs::remove_file(path.with_extension("json"));
                total -= size;
            }
        }
    }
}

/// A remux or a re-encode of the stretch into fragmented MP4.
fn make(
    source: &Path,
    how: Playback,
    from: f64,
    to: f64,
    partial: &Path,
) -> Result<clip::Made, clip::ClipError> {
    let output = clip::Output {
        format: "mp4".into(),
        fragmented: true,
        side: Some(TRANSCODE_SIDE),
        preset: "ultrafast",
    };
    // A container can hold a playable codec in a form MP4 cannot take as it is: re-encode then.
    match how {
        Playback::Transcode => clip::encode(source, from, to, partial, &output),
        _ => clip::copy(source, from, to, partial, &output)
            .or_else(|_| clip::encode(source, from, to, partial, &output)),
    }
}

/// What a stretch will take on disk, about: its share of the source (a remux copies it; a
/// re-encode at 1280 pixels, ultrafast, is seldom bigger), and at least 8 Mbit/s of it.
fn expected_size(source: &Path, how: Playback, from: f64, to: f64) -> u64 {
    let seconds = (to - from).max(0.0);
    let floor = (seconds * 1_000_000.0) as u64;
    let share = match (
        how,
        crate::decode::Decoder::open(source, crate::decode::Skip::NonKey),
    ) {
        (_, Ok(decoder)) => decoder
            .info()
            .duration
            .filter(|d| *d > 0.0)
            .and_then(|d| {
                let bytes = std::fs::metadata(source).ok()?.len() as f64;
                Some((bytes * (seconds / d).min(1.0)) as u64)
            })
            .unwrap_or(0),
        _ => 0,
    };
    share.max(floor)
}

/// The picture at `time` seconds in `source`, as a JPEG whose longer side is `side`.
pub fn picture_at(source: &Path, time: f64, side: u32) -> Result<Vec<u8>, String> {
    let image = crate::decode::image_at_side(source, time, side)?;
    let settings = crate::caption::Picture {
        max_side: side,
        quality: 80,
    };
    crate::caption::encode(&image, settings)
        .map(|e| e.jpeg)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stretches(root: &Path, count: u64) -> Vec<PathBuf> {
        let dir = root.join("0123456789abcdef0123456789abcdef");
        std::fs::create_dir_all(&dir).unwrap();
        (0..count)
            .map(|n| {
                let path = dir.join(format!("{n}000-{n}999.mp4"));
                std::fs::write(&path, vec![0u8; 100]).unwrap();
                std::fs::write(path.with_extension("json"), "{}").unwrap();
                let at = std::time::UNIX_EPOCH + Duration::from_secs(1000 + n);
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_modified(at)
                    .unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn the_oldest_stretches_go_first_and_the_newest_always_stays() {
        let root = tempfile::tempdir().unwrap();
        let paths = stretches(root.path(), 4);
        let streams = Streams::new(root.path().to_path_buf(), 250);
        streams.keep_under(250, Some(&paths[0]));
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        // 400 bytes over 250: the two oldest besides the one just made.
        assert_eq!(left, [true, false, false, true]);
        assert!(!paths[1].with_extension("json").exists());
        streams.keep_under(0, Some(&paths[3]));
        assert!(paths[3].exists() && !paths[0].exists());
    }

    #[test]
    fn issue25_a_stretch_being_played_is_never_removed_and_turns_are_limited() {
        let root = tempfile::tempdir().unwrap();
        let paths = stretches(root.path(), 3);
        let streams = Streams::new(root.path().to_path_buf(), 0);
        streams.asked_for(&paths[0]);
        streams.keep_under(0, None);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        assert_eq!(left, [true, false, false], "the oldest is being played");
        let turns: Vec<_> = (0..MAKING_AT_ONCE)
            .map(|_| streams.turn().unwrap())
            .collect();
        assert!(matches!(streams.turn(), Err(Wait::Busy(n)) if n == MAKING_AT_ONCE));
        drop(turns);
        assert!(streams.turn().is_ok());
    }

    #[test]
    fn only_what_browsers_play_is_served_as_it_is() {
        let mp4 = "mov,mp4,m4a,3gp,3g2,mj2";
        assert_eq!(playback(Path::new("a.mp4"), "h264", mp4), Playback::Native);
        assert_eq!(
            playback(Path::new("a.mkv"), "h264", "matroska,webm"),
            Playback::Remux
        );
        assert_eq!(
            playback(Path::new("a.webm"), "vp8", "matroska,webm"),
            Playback::Native
        );
        assert_eq!(
            playback(Path::new("a.mp4"), "hevc", mp4),
            Playback::Transcode
        );
        assert_eq!(
            playback(Path::new("a.avi"), "mpeg4", "avi"),
            Playback::Transcode
        );
        assert_eq!(
            playback(Path::new("a.ts"), "mpeg2video", "mpegts"),
            Playback::Transcode
        );
    }
}
