//! Small disks for tests of what a full disk does: a tmpfs mounted for the test's length.

use std::path::Path;

/// Unmounts a tmpfs when the test ends, pass or fail.
pub struct Mounted(std::path::PathBuf);

impl Mounted {
    /// A tmpfs of this many MiB at `dir`; None (the test says it skipped) without root.
    pub fn tmpfs(dir: &Path, mib: u64) -> Option<Mounted> {
        Mounted::tmpfs_of(dir, &format!("{mib}m"))
    }

    /// A tmpfs of `size` (`8k`, `64m`) at `dir`; None (the test says it skipped) without root.
    pub fn tmpfs_of(dir: &Path, size: &str) -> Option<Mounted> {
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: mounting a small tmpfs needs root");
        }
        mounted.then(|| Mounted(dir.to_path_buf()))
    }

    /// Writes a file that leaves about `left` MiB free.
    pub fn fill(&self, left: u64) -> std::path::PathBuf {
        let filler = self.0.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 20];
        loop {
            let free = free_bytes(&self.0);
            if free <= left << 20 {
                break;
            }
            std::io::Write::write_all(&mut file, &chunk).unwrap();
        }
        filler
    }
}

pub fn free_bytes(dir: &Path) -> u64 {
    let output = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
