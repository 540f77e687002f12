//! Thumbnails: one folder per file content, named by its fingerprint, one JPEG per segment,
//! named by the segment's start in milliseconds. While a file is indexed, each kept frame's
//! picture is written as it is captioned, under its own stretch's start, and once the segments
//! are known each segment's picture takes its start's name and the rest are removed.
//! Fingerprints can come from a collection that other machines write, so a name is used only
//! if it is a fingerprint (32 lowercase hex digits), and nothing is written or removed outside
//! the thumbnails folder, through a link or otherwise.

use std::path::{Path, PathBuf};

#[derive(Clone)]
pub struct Thumbs {
    dir: PathBuf,
}

/// Whether `text` has the shape of a fingerprint, and so is safe as a folder name.
pub fn is_fingerprint(text: &str) -> bool {
    text.len() == 32 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl Thumbs {
    pub fn new(dir: PathBuf) -> Thumbs {
        Thumbs { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the picture of the segment starting at `start` seconds, whole or not at all.
    pub fn write(
        &self,
        fingerprint: &str,
        start: f64,
        jpeg: &[u8],
    ) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let name = name(start);
        let planned = self.dir.join(fingerprint).join(&name);
        let failed = |e| (planned.clone(), e);
        let folder = self.folder(fingerprint).map_err(failed)?;
        crate::private::create_dir_all(&folder).map_err(failed)?;
        self.check_inside(&folder).map_err(failed)?;
        let path = folder.join(name);
        let partial = path.with_extension("partial");
        std::fs::write(&partial, jpeg).map_err(failed)?;
        std::fs::rename(&partial, &path).map_err(failed)?;
        Ok(path)
    }

    /// Gives the picture written for `from` the name of `to`, replacing what is there.
    pub fn rename(
        &self,
        fingerprint: &str,
        from: f64,
        to: f64,
    ) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let (folder, target) = self.existing(fingerprint, to)?;
        std::fs::rename(folder.join(name(from)), &target).map_err(|e| (target.clone(), e))?;
        Ok(target)
    }

    /// Copies the picture written for `from` to the name of `to`, whole or not at all.
    pub fn copy(
        &self,
        fingerprint: &str,
        from: f64,
        to: f64,
    ) -> Result<PathBuf, (PathBuf, std::io::Error)> {
        let (folder, target) = self.existing(fingerprint, to)?;
        let failed = |e| (target.clone(), e);
        let partial = target.with_extension("partial");
        std::fs::copy(folder.join(name(from)), &partial).map_err(failed)?;
        std::fs::rename(&partial, &target).map_err(failed)?;
        Ok(target)
    }

    /// A file's folder, which must exist already, and the name of the picture for `start` in it.
    fn existing(
        &self,
        fingerprint: &str,
        start: f64,
    ) -> Result<(PathBuf, PathBuf), (PathBuf, std::io::Error)> {
        let target = self.dir.join(fingerprint).join(name(start));
        let failed = |e| (target.clone(), e);
        let folder = self.folder(fingerprint).map_err(failed)?;
        self.check_inside(&folder).map_err(failed)?;
        Ok((folder, target))
    }

    /// Removes the picture written for `start`; one already gone is no error.
    pub fn remove_one(&self, fingerprint: &str, start: f64) -> std::io::Result<()> {
        let folder = self.folder(fingerprint)?;
        self.check_inside(&folder)?;
        match std::fs::remove_file(folder.join(name(start))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes a file's thumbnails. A name that is not a fingerprint, or a folder that is a
    /// link or lies elsewhere, is left alone.
    pub fn remove(&self, fingerprint: &str) -> std::io::Result<()> {
        let folder = self.folder(fingerprint)?;
        match std::fs::symlink_metadata(&folder) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
        self.check_inside(&folder)?;
        std::fs::remove_dir_all(&folder)
    }

    fn folder(&self, fingerprint: &str) -> std::io::Result<PathBuf> {
        if !is_fingerprint(fingerprint) {
            return Err(refused(format!("'{fingerprint}' is not a fingerprint")));
        }
        Ok(self.dir.join(fingerprint))
    }

    /// The folder must be a real folder directly inside the thumbnails folder.
    fn check_inside(&self, folder: &Path) -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(folder)?;
        if !meta.is_dir() {
            return Err(refused(format!("{} is not a folder", folder.display())));
        }
        let root = std::fs::canonicalize(&self.dir)?;
        let real = std::fs::canonicalize(folder)?;
        if real.parent() != Some(root.as_path()) {
            return Err(refused(format!(
                "{} lies outside the thumbnails folder",
                folder.display()
            )));
        }
        Ok(())
    }
}

fn name(start: f64) -> String {
    format!("{}.jpg", crate::store::millis(start))
}

fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FINGERPRINT: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn only_fingerprints_name_folders() {
        assert!(is_fingerprint(FINGERPRINT));
        for bad in [
            "..",
            "../../etc",
            "/etc",
            "0123456789ABCDEF0123456789ABCDEF",
            "",
        ] {
            assert!(!is_fingerprint(bad), "{bad}");
        }
    }

    #[test]
    fn a_hostile_fingerprint_from_a_shared_collection_reaches_no_other_folder() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep.txt"), "mine").unwrap();
        let thumbs = Thumbs::new(dir.path().join("thumbs"));
        std::fs::create_dir_all(thumbs.dir()).unwrap();

        assert!(thumbs.remove("../outside").is_err());
        assert!(thumbs.write("../outside", 1.0, b"x").is_err());
        // A link inside the folder that leads out of it.
        std::os::unix::fs::symlink(&outside, thumbs.dir().join(FINGERPRINT)).unwrap();
        assert!(thumbs.remove(FINGERPRINT).is_err());
        assert!(thumbs.write(FINGERPRINT, 1.0, b"x").is_err());
        assert!(outside.join("keep.txt").is_file());
        assert!(!outside.join("1000.jpg").exists());
    }

    #[test]
    fn thumbnails_are_written_whole_and_removed_with_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Thumbs::new(dir.path().join("thumbs"));
        let path = thumbs.write(FINGERPRINT, 2.5, b"jpeg").unwrap();
        assert_eq!(path, thumbs.dir().join(FINGERPRINT).join("2500.jpg"));
        assert_eq!(std::fs::read(&path).unwrap(), b"jpeg");
        thumbs.remove(FINGERPRINT).unwrap();
        assert!(!thumbs.dir().join(FINGERPRINT).exists());
        thumbs.remove(FINGERPRINT).unwrap();
    }

    /// Times before a file's start were clamped to 0, so a segment there and the segment at 0
    /// shared one thumbnail, and one of the pictures was lost.
    #[test]
    fn issue10_a_segment_before_the_start_has_a_thumbnail_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let thumbs = Thumbs::new(dir.path().join("thumbs"));
        let before = thumbs.write(FINGERPRINT, -0.04, b"before").unwrap();
        let at = thumbs.write(FINGERPRINT, 0.0, b"at").unwrap();
        assert_ne!(before, at);
        assert_eq!(std::fs::read(&before).unwrap(), b"before");
        assert_eq!(std::fs::read(&at).unwrap(), b"at");
    }
}
