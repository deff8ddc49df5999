//! The key-value layer under the store, kept behind a small trait so that sled (beta, see
//! the README) can be replaced without touching the rest of the engine.

use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// Writes applied together: all or none survive a crash.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    ops: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteBatch {
    /// Sets `key` to `value`.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), Some(value.into())));
    }

    /// Removes `key`.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) {
        self.ops.push((key.into(), None));
    }
}

/// Entries of a prefix scan, in key order.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<(Vec<u8>, Vec<u8>)>> + 'a>;

/// An ordered key-value store with atomic batches.
pub trait Storage: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_>;
    /// Applies a batch atomically.
    fn apply(&self, batch: WriteBatch) -> Result<()>;
    /// Makes every applied batch durable.
    fn flush(&self) -> Result<()>;
}

/// [`Storage`] on a sled database.
pub struct SledStorage {
    db: sled::Db,
    path: PathBuf,
}

impl SledStorage {
    /// Opens (or creates) the sled database in `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = sled::Config::new().path(path).open().map_err(|e| sled_error(path, e))?;
        Ok(SledStorage {
            db,
            path: path.to_path_buf(),
        })
    }

    fn err(&self, e: sled::Error) -> EngineError {
        sled_error(&self.path, e)
    }
}

fn sled_error(path: &Path, e: sled::Error) -> EngineError {
    match e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("acquire lock") =>
        {
            EngineError::Locked {
                path: path.to_path_buf(),
            }
        }
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => {
            EngineError::not_a_collection(path, format!("the store is damaged: {e}"))
        }
        other => EngineError::Storage {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

impl Storage for SledStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(|e| self.err(e))?.map(|v| v.to_vec()))
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_> {
        Box::new(
            self.db
                .scan_prefix(prefix)
                .map(move |item| item.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(|e| self.err(e))),
        )
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        let mut b = sled::Batch::default();
        for (key, value) in batch.ops {
            match value {
                Some(value) => b.insert(key, value),
                None => b.remove(key),
            }
        }
        self.db.apply_batch(b).map_err(|e| self.err(e))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(|e| self.err(e))?;
        // sled 0.34 ends its flush with sync_file_range (sled#1452), which neither writes the
        // file's metadata nor flushes the drive's cache: not durable on power loss. fsync every
        // file it keeps, then the folders (new snapshot and blob files are directory entries).
        sync_tree(&self.path).map_err(|e| EngineError::io(&self.path, e))
    }
}

/// `fsync`s the files in `dir` and its subfolders, then the folders themselves.
fn sync_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            sync_tree(&entry.path())?;
        } else if kind.is_file() {
            match std::fs::File::open(entry.path()) {
                Ok(file) => file.sync_all()?,
                // sled removes old snapshots and blobs as it goes.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_applies_puts_and_deletes_and_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("sieve-sled-batch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        {
            let storage = SledStorage::open(&dir).unwrap();
            let mut batch = WriteBatch::default();
            batch.put("doc/0", "zeroth");
            batch.put("doc/1", "first");
            storage.apply(batch).unwrap();
            let mut batch = WriteBatch::default();
            batch.delete("doc/0");
            batch.put("doc/2", "second");
            storage.apply(batch).unwrap();
            storage.flush().unwrap();
        }
        let storage = SledStorage::open(&dir).unwrap();
        assert_eq!(storage.get(b"doc/0").unwrap(), None);
        assert_eq!(storage.get(b"doc/1").unwrap(), Some(b"first".to_vec()));
        let keys: Vec<Vec<u8>> = storage.scan_prefix(b"doc/").map(|e| e.unwrap().0).collect();
        assert_eq!(keys, [b"doc/1".to_vec(), b"doc/2".to_vec()]);
        drop(storage);
        std::fs::remove_dir_all(&dir).ok();
    }
}
