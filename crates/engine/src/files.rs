//! Durable writes of the collection's own small files: its marker and the sequence markers of
//! the saved indexes.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::error::{EngineError, Result};

/// Replaces `path` with `bytes` so that a crash leaves the old content or the new, never a
/// mix or nothing: a sibling `<name>.tmp` written and synced, renamed over `path`, then the
/// folder synced so the rename itself is durable.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut file = File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| EngineError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    match File::open(dir).and_then(|d| d.sync_all()) {
        // Folders cannot be synced on every platform and file system; where they can, it must work.
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            Err(EngineError::io(dir, e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_replaces_the_whole_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("sieve-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dense.seq");
        write_atomic(&path, b"12\n").unwrap();
        write_atomic(&path, b"7\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"7\n");
        assert!(!dir.join("dense.seq.tmp").exists());
        assert!(write_atomic(&dir.join("no-such-folder/x"), b"").is_err());
        fs::remove_dir_all(&dir).ok();
    }
}
