//! Folders only their owner can read: the caption cache, the index and thumbnails describe
//! someone's footage, and other users of a shared machine have no business reading them.

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// Creates the folder and any missing parents, each readable by its owner only. Folders that
/// exist already keep their permissions: a folder the user chose is theirs to set.
pub fn create_dir_all(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn new_folders_are_for_their_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_all(&deep).unwrap();
        for folder in [dir.path().join("a"), dir.path().join("a/b"), deep] {
            let mode = std::fs::metadata(&folder).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700, "{}", folder.display());
        }
    }
}
