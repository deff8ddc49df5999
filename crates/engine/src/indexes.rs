//! Keeping the indexes in step with the store: open (load, catch up or rebuild), apply
//! writes, save at checkpoints.
//!
//! Each index is saved next to a marker file holding the store sequence it reflects. On open
//! an index whose files load and whose marker is still covered by the store's change log is
//! caught up by re-applying the current state of every document the log touched since; any
//! other index (missing, damaged, too old) is rebuilt from the store. Re-applying is
//! idempotent, so a crash between saving an index and writing its marker is harmless.

use std::fs;
use std::path::Path;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use sieve_index::DocId;

use crate::error::{EngineError, Result};
use crate::metadata::Metadata;
use crate::retrievers::{KINDS, Kind, Retriever, RetrieverIndex};
use crate::store::{Put, Schema, Store};

/// The in-memory side of a collection: every configured retriever's index and the metadata
/// the filters read, behind one lock (searches read, writes write).
pub(crate) struct Indexes(RwLock<State>);

pub(crate) struct State {
    /// One per configured retriever, in [`KINDS`] order.
    pub retrievers: Vec<Slot>,
    pub metadata: Metadata,
}

/// A retriever's index in a collection.
pub(crate) struct Slot {
    pub kind: &'static Kind,
    pub index: Box<dyn RetrieverIndex>,
    /// The index failed to apply a write the store holds. It takes no more writes and is not
    /// saved; the next open catches it up or rebuilds it from the store.
    pub stale: bool,
}

impl State {
    /// The index of the retriever named `name`, when the collection has it.
    pub fn slot(&self, name: &str) -> Option<&Slot> {
        self.retrievers.iter().find(|s| s.kind.name == name)
    }

    /// Retrievers whose index went stale.
    pub fn stale(&self) -> Vec<Retriever> {
        self.retrievers
            .iter()
            .filter(|s| s.stale)
            .filter_map(|s| Retriever::from_name(s.kind.name))
            .collect()
    }

    fn live(&mut self) -> impl Iterator<Item = &mut Slot> {
        self.retrievers.iter_mut().filter(|s| !s.stale)
    }
}

impl Indexes {
    /// Brings every configured index up to the store's current sequence. The flag says whether
    /// any index was caught up or rebuilt, i.e. whether saving them now spares the next open
    /// that work.
    pub fn open(dir: &Path, schema: &Schema, store: &Store) -> Result<(Indexes, bool)> {
        real_dir(dir)?;
        for kind in KINDS {
            unlink_if_symlink(&dir.join(kind.file))?;
        }
        let seq = store.seq()?;
        let floor = store.log_floor()?;
        let mut metadata = Metadata::new();
        for item in store.records() {
            let (iid, record) = item?;
            metadata.insert(iid, record.metadata());
        }
        let mut redone = false;
        let mut retrievers = Vec::new();
        for kind in KINDS.iter().filter(|k| (k.configured)(schema)) {
            let path = dir.join(kind.file);
            let marker = read_marker(dir, kind.file);
            redone |= marker != Some(seq);
            // A marker is usable if the log still holds every change after it.
            let usable = marker.filter(|&m| m >= floor && m <= seq);
            let index = match usable.and_then(|m| (kind.load)(&path, schema).map(|index| (index, m))) {
                Some((mut index, marker)) => {
                    index.catch_up(store, &store.touched_since(marker)?)?;
                    index
                }
                None => {
                    remove_marker(dir, kind.file);
                    (kind.build)(&path, schema, store)?
                }
            };
            retrievers.push(Slot {
                kind,
                index,
                stale: false,
            });
        }
        let state = State { retrievers, metadata };
        Ok((Indexes(RwLock::new(state)), redone))
    }

    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a write panicked while holding the lock.
    pub fn is_poisoned(&self) -> bool {
        self.0.is_poisoned()
    }

    /// Commits the buffered writes of the retrievers named so a search sees them: the store is
    /// flushed first (everything an index holds was applied to the store before it), so no
    /// index is ever ahead of what survives a crash.
    pub fn sync(&self, store: &Store, names: &[&str]) -> Result<()> {
        let pending = |state: &State| {
            state
                .retrievers
                .iter()
                .any(|s| !s.stale && names.contains(&s.kind.name) && s.index.pending())
        };
        if !pending(&self.read()) {
            return Ok(());
        }
        let mut state = self.write();
        if pending(&state) {
            store.flush()?;
            // A failed commit marks the index stale (rebuilt on the next open); searches go on
            // with what it committed before.
            let _ = commit(&mut state);
        }
        Ok(())
    }
}

/// Makes `dir` a real directory. The indexes are derived data that sieve deletes and
/// rewrites, so a symbolic link in their place (which could lead out of the collection) is
/// removed (the link, never its target) and the indexes are rebuilt from the store.
fn real_dir(dir: &Path) -> Result<()> {
    unlink_if_symlink(dir)?;
    fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))
}

fn unlink_if_symlink(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => fs::remove_file(path).map_err(|e| EngineError::io(path, e)),
        _ => Ok(()),
    }
}

/// Applies stored documents to every index (replacing earlier versions). An index that
/// buffers writes does not commit them: [`commit`] does, once the store has flushed them.
///
/// The store already holds these documents: an index that fails to apply them is marked
/// stale (see [`Slot::stale`]) instead of failing the write, and is left alone until the next
/// open rebuilds or catches it up.
pub(crate) fn insert(state: &mut State, puts: &[Put]) {
    for put in puts {
        state.metadata.insert(put.iid, put.record.metadata());
    }
    for slot in state.live() {
        slot.stale = slot.index.apply(puts).is_err();
    }
}

/// Removes documents from every index, which commit as in [`insert`].
pub(crate) fn remove(state: &mut State, iids: &[DocId]) {
    for &iid in iids {
        state.metadata.remove(iid);
    }
    for slot in state.live() {
        slot.stale = slot.index.remove(iids).is_err();
    }
}

/// Commits the indexes' buffered writes. Call only once the store has flushed them.
pub(crate) fn commit(state: &mut State) -> Result<()> {
    let mut result = Ok(());
    for slot in state.live().filter(|s| s.index.pending()) {
        if let Err(e) = slot.index.commit() {
            slot.stale = true;
            result = Err(e);
        }
    }
    result
}

/// Saves every index, then records `seq` as the sequence each reflects (no index may hold
/// uncommitted writes: see [`commit`]).
pub(crate) fn save(dir: &Path, state: &State, seq: u64) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    // A stale index missed writes: its files and marker stay as they were, so the next open
    // catches it up from its old marker (or rebuilds it once the log no longer reaches back).
    for slot in state.retrievers.iter().filter(|s| !s.stale) {
        slot.index.save(&dir.join(slot.kind.file))?;
        write_marker(dir, slot.kind.file, seq)?;
    }
    Ok(())
}

fn marker_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{name}.seq"))
}

fn read_marker(dir: &Path, name: &str) -> Option<u64> {
    fs::read_to_string(marker_path(dir, name)).ok()?.trim().parse().ok()
}

fn remove_marker(dir: &Path, name: &str) {
    let _ = fs::remove_file(marker_path(dir, name));
}

fn write_marker(dir: &Path, name: &str, seq: u64) -> Result<()> {
    crate::files::write_atomic(&marker_path(dir, name), format!("{seq}\n").as_bytes())
}
