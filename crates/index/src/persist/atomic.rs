//! Atomic file replacement and durable directory entries.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{IndexError, Result};

/// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_sibling(path);
    let mut file = File::create(&tmp).map_err(|e| IndexError::io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| IndexError::io(&tmp, e))?;
    file.sync_all().map_err(|e| IndexError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| IndexError::io(path, e))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Makes the content of a file written by someone else (hnsw_rs' dump) durable.
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| IndexError::io(path, e))
}

/// Makes a directory's entries (renames, new files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    // Directories cannot be opened for syncing on every platform; where they can, do it.
    if let Ok(d) = OpenOptions::new().read(true).open(dir) {
        d.sync_all()
            .or_else(ignore_unsupported)
            .map_err(|e| IndexError::io(dir, e))?;
    }
    Ok(())
}

fn ignore_unsupported(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::InvalidInput || e.kind() == std::io::ErrorKind::PermissionDenied {
        Ok(())
    } else {
        Err(e)
    }
}

fn tmp_sibling(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Creates `dir` (and parents) if needed.
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| IndexError::io(dir, e))
}
