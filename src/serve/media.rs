//! Video a browser can play, and thumbnails made where they are missing.
//!
//! A file in a container and codec Chromium plays is served as it is, with range requests.
//! Any other gets a stretch around the scene as fragmented MP4: its packets copied when the
//! codec is playable (a remux), or re-encoded to H.264 when it is not. Either is kept on disk
//! by fingerprint and time range, so a second click costs nothing.

use std::path::{Path, PathBuf};

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

/// The stretch `[from, to)` seconds of `source`, made once and then read from `dir`.
pub fn stretch(
    source: &Path,
    how: Playback,
    from: f64,
    to: f64,
    dir: &Path,
) -> Result<Stretch, String> {
    let name = format!("{}-{}", (from * 1000.0) as u64, (to * 1000.0) as u64);
    let file = dir.join(format!("{name}.mp4"));
    let about = dir.join(format!("{name}.json"));
    if let Ok(text) = std::fs::read_to_string(&about) {
        if let Ok(known) = serde_json::from_str::<Stretch>(&text) {
            if file.is_file() {
                return Ok(Stretch { file, ..known });
            }
        }
    }
    crate::private::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Two clicks on one scene may make it at once: each writes its own file, and the renames
    // leave one whole stretch either way.
    static MAKING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = MAKING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let partial = dir.join(format!("{name}.{}-{n}.partial.mp4", std::process::id()));
    let output = clip::Output {
        format: "mp4".into(),
        fragmented: true,
        side: Some(TRANSCODE_SIDE),
        preset: "ultrafast",
    };
    // A container can hold a playable codec in a form MP4 cannot take as it is: re-encode then.
    let made = match how {
        Playback::Transcode => clip::encode(source, from, to, &partial, &output),
        _ => clip::copy(source, from, to, &partial, &output)
            .or_else(|_| clip::encode(source, from, to, &partial, &output)),
    }
    .map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        format!("cannot make {} playable: {e}", source.display())
    })?;
    let offset = made.zero;
    std::fs::rename(&partial, &file).map_err(|e| e.to_string())?;
    let made = Stretch { file, offset };
    let _ = std::fs::write(&about, serde_json::to_string(&made).unwrap_or_default());
    if let Some(root) = dir.parent() {
        keep_under(root, STREAMS_LIMIT, &made.file);
    }
    Ok(made)
}

/// The most bytes of playable stretches kept on disk; the least recently made go first.
pub const STREAMS_LIMIT: u64 = 2 << 30;

/// Removes the oldest stretches under `root` until they take at most `limit` bytes; `keep`
/// (the one just made) stays whatever its size.
pub fn keep_under(root: &Path, limit: u64, keep: &Path) {
    let mut stretches: Vec<(std::time::SystemTime, u64, PathBuf)> = walkdir::WalkDir::new(root)
        .max_depth(2)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "mp4"))
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
        if path == keep {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            let _ = std::fs::remove_file(path.with_extension("json"));
            total -= size;
        }
    }
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

    #[test]
    fn the_oldest_stretches_go_first_and_the_newest_always_stays() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("0123456789abcdef0123456789abcdef");
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        for n in 0..4 {
            let path = dir.join(format!("{n}000-{n}999.mp4"));
            std::fs::write(&path, vec![0u8; 100]).unwrap();
            std::fs::write(path.with_extension("json"), "{}").unwrap();
            let at = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + n);
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(at)
                .unwrap();
            paths.push(path);
        }
        keep_under(root.path(), 250, &paths[0]);
        let left: Vec<bool> = paths.iter().map(|p| p.exists()).collect();
        // 400 bytes over 250: the two oldest besides the one just made.
        assert_eq!(left, [true, false, false, true]);
        assert!(!paths[1].with_extension("json").exists());
        keep_under(root.path(), 0, &paths[3]);
        assert!(paths[3].exists() && !paths[0].exists());
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
