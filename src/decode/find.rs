//! Finding the videos under the paths a user names: files as given, folders walked
//! recursively (hidden entries skipped, in name order). A file in a folder counts as a video by
//! its extension; where the extension is ambiguous (`.ts` is also TypeScript) or missing, FFmpeg
//! is asked whether it holds a moving picture.

use std::path::{Path, PathBuf};

use super::{ffmpeg_name, first_video_stream, init};

/// Extensions that are video containers.
const VIDEO: [&str; 22] = [
    "mp4", "m4v", "mov", "mkv", "webm", "avi", "wmv", "asf", "flv", "mpg", "mpeg", "m2v", "mts",
    "m2ts", "3gp", "3g2", "ogv", "mxf", "vob", "dv", "qt", "f4v",
];
/// Extensions that may or may not be video: probed.
const MAYBE: [&str; 4] = ["ts", "dat", "bin", "mod"];

#[derive(Debug, Default)]
pub struct Found {
    /// Absolute paths of the videos, each once, in the order found.
    pub videos: Vec<PathBuf>,
    /// Absolute paths of the folders walked.
    pub folders: Vec<PathBuf>,
    /// Paths that could not be used, with the reason.
    pub problems: Vec<(PathBuf, String)>,
}

pub fn find_videos(paths: &[PathBuf]) -> Found {
    let mut found = Found::default();
    for path in paths {
        let absolute = match std::fs::canonicalize(path) {
            Ok(p) => p,
            Err(e) => {
                found.problems.push((path.clone(), reason(&e)));
                continue;
            }
        };
        if absolute.is_dir() {
            walk(&absolute, &mut found);
            found.folders.push(absolute);
        } else {
            push(&mut found.videos, absolute);
        }
    }
    found
}

fn walk(folder: &Path, found: &mut Found) {
    let entries = walkdir::WalkDir::new(folder)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in entries {
        match entry {
            Ok(entry) if entry.file_type().is_file() && is_video(entry.path()) => {
                push(&mut found.videos, entry.into_path())
            }
            Ok(_) => {}
            Err(e) => {
                let path = e.path().unwrap_or(folder).to_path_buf();
                let why = e.io_error().map_or_else(|| e.to_string(), reason);
                found.problems.push((path, why));
            }
        }
    }
}

fn push(videos: &mut Vec<PathBuf>, path: PathBuf) {
    if !videos.contains(&path) {
        videos.push(path);
    }
}

fn reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or folder".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Whether a file found in a folder is a video worth indexing.
pub fn is_video(path: &Path) -> bool {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match extension.as_deref() {
        Some(e) if VIDEO.contains(&e) => true,
        Some(e) if MAYBE.contains(&e) => probe(path),
        None => probe(path),
        Some(_) => false,
    }
}

/// Whether FFmpeg finds a moving picture in the file (a still image has a video stream too).
fn probe(path: &Path) -> bool {
    init();
    let Ok(name) = ffmpeg_name(path) else {
        return false;
    };
    let Ok(input) = ffmpeg_next::format::input_with_dictionary(&name.path, super::local_only())
    else {
        return false;
    };
    let still = ["image2", "png_pipe", "jpeg_pipe", "tty", "lavfi"]
        .iter()
        .any(|name| input.format().name().split(',').any(|n| n == *name));
    !still && first_video_stream(&input).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name)
    }

    #[test]
    fn typescript_named_ts_is_not_a_video_but_mpeg_ts_is() {
        let dir = tempfile::tempdir().unwrap();
        let code = dir.path().join("app.ts");
        std::fs::write(&code, "export const answer: number = 42;\n").unwrap();
        let stream = dir.path().join("recording.ts");
        std::fs::copy(fixture("offset.ts"), &stream).unwrap();
        let no_extension = dir.path().join("clip");
        std::fs::copy(fixture("cuts.mp4"), &no_extension).unwrap();
        let still = dir.path().join("poster");
        std::fs::copy(fixture("slide.png"), &still).unwrap();
        assert!(!is_video(&code));
        assert!(is_video(&stream));
        assert!(is_video(&no_extension));
        assert!(!is_video(&still));
        assert!(!is_video(&fixture("slide.png")));
    }

    #[test]
    fn folders_are_walked_in_name_order_skipping_hidden_entries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/.hidden")).unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        for name in [
            "b/2.mp4",
            "b/.hidden/x.mp4",
            "a/1.MKV",
            "a/notes.txt",
            "b/.3.mp4",
        ] {
            std::fs::write(root.join(name), b"not really").unwrap();
        }
        let found = find_videos(&[root.to_path_buf(), root.join("missing.mp4")]);
        let root = std::fs::canonicalize(root).unwrap();
        assert_eq!(found.videos, [root.join("a/1.MKV"), root.join("b/2.mp4")]);
        assert_eq!(found.folders, std::slice::from_ref(&root));
        assert_eq!(found.problems.len(), 1);
        assert!(found.problems[0].1.contains("no such file"));
    }
}
