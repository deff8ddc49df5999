//! [`ScratchDir`], shared with `crates/train/tests` (included there by path).

use std::path::PathBuf;

/// A scratch folder under the target dir, emptied on creation and removed when dropped (kept
/// when the test panics, to look at). Derefs to its path.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    /// `$CARGO_TARGET_TMPDIR/{name}-{pid}`, not created.
    pub fn new(name: &str) -> Self {
        Self::at(PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id())))
    }

    /// `path` itself (say a sibling of another scratch folder), emptied, not created.
    pub fn at(path: PathBuf) -> Self {
        let _ = std::fs::remove_dir_all(&path);
        ScratchDir(path)
    }
}

impl std::ops::Deref for ScratchDir {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl AsRef<std::path::Path> for ScratchDir {
    fn as_ref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
