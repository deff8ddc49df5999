//! Keeping the indexes in step with the store: open (load, catch up or rebuild), apply
//! writes, save at checkpoints.
//!
//! Each index is saved next to a marker file holding the store sequence it reflects. On open
//! an index whose files load and whose marker is still covered by the store's change log is
//! caught up by re-applying the current state of every document the log touched since; any
//! other index (missing, damaged, too old) is rebuilt from the store. Re-applying is
//! idempotent, so a crash between saving an index and writing its marker is harmless.

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use sieve_index::{DenseIndex, DocId, HnswIndex, SparseIndex, TextIndex};

use crate::collection::State;
use crate::error::{EngineError, Result};
use crate::search::Retriever;
use crate::store::{Put, Schema, Store};

const DENSE: &str = "dense";
const SPARSE: &str = "sparse";
const TEXT: &str = "text";

/// Brings every configured index up to the store's current sequence. The flag says whether
/// any index was caught up or rebuilt, i.e. whether saving them now spares the next open
/// that work.
pub(crate) fn open(dir: &Path, schema: &Schema, store: &Store) -> Result<(State, bool)> {
    real_dir(dir)?;
    for name in [DENSE, SPARSE, TEXT] {
        unlink_if_symlink(&dir.join(name))?;
    }
    let seq = store.seq()?;
    let floor = store.log_floor()?;
    // A marker is usable if the log still holds every change after it.
    let usable = |name: &str| read_marker(dir, name).filter(|&m| m >= floor && m <= seq);
    // Any configured index whose marker is behind the store means replayed (or rebuilt) work.
    let configured = [
        (DENSE, schema.dense.is_some()),
        (SPARSE, schema.sparse_dim.is_some()),
        (TEXT, schema.config.text),
    ];
    let redone = configured
        .into_iter()
        .any(|(name, on)| on && read_marker(dir, name) != Some(seq));

    let mut metadata = HashMap::new();
    for item in store.records() {
        let (iid, record) = item?;
        metadata.insert(iid, record.metadata());
    }

    let dense = match schema.dense {
        None => None,
        Some((dim, metric)) => {
            let loaded = usable(DENSE).and_then(|m| HnswIndex::load(&dir.join(DENSE)).ok().map(|i| (i, m)));
            Some(match loaded {
                Some((mut index, marker)) if index.dim() == dim && index.metric() == metric => {
                    for iid in store.touched_since(marker)? {
                        match store.dense(iid)? {
                            Some(v) => index.insert(&[(iid, &v)])?,
                            None => {
                                index.remove(&[iid]);
                            }
                        }
                    }
                    index
                }
                _ => {
                    let mut index = HnswIndex::new(dim, metric, schema.config.hnsw)?;
                    let vectors: Vec<(DocId, Vec<f32>)> = store.dense_vectors().collect::<Result<_>>()?;
                    let points: Vec<(DocId, &[f32])> = vectors.iter().map(|(i, v)| (*i, v.as_slice())).collect();
                    index.insert(&points)?;
                    index
                }
            })
        }
    };

    let sparse = match schema.sparse_dim {
        None => None,
        Some(vocab) => {
            let loaded = usable(SPARSE).and_then(|m| SparseIndex::load(&dir.join(SPARSE)).ok().map(|i| (i, m)));
            Some(match loaded {
                Some((mut index, marker)) if index.vocab_size() == vocab => {
                    for iid in store.touched_since(marker)? {
                        match store.sparse(iid)? {
                            Some(v) => index.insert(&[(iid, &v.indices, &v.values)])?,
                            None => {
                                index.remove(&[iid]);
                            }
                        }
                    }
                    index
                }
                _ => {
                    let mut index = SparseIndex::new(vocab);
                    let vectors: Vec<_> = store.sparse_vectors().collect::<Result<_>>()?;
                    let docs: Vec<(DocId, &[u32], &[f32])> = vectors
                        .iter()
                        .map(|(i, v)| (*i, v.indices.as_slice(), v.values.as_slice()))
                        .collect();
                    index.insert(&docs)?;
                    index
                }
            })
        }
    };

    let text = if schema.config.text {
        let path = dir.join(TEXT);
        let loaded = usable(TEXT).and_then(|m| TextIndex::open(&path).ok().map(|i| (i, m)));
        Some(match loaded {
            Some((mut index, marker)) => {
                for iid in store.touched_since(marker)? {
                    match store.record(iid)? {
                        Some(record) => index.add(&[(iid, &record.text)])?,
                        None => index.remove(&[iid]),
                    }
                }
                index.commit()?;
                index
            }
            None => {
                // The text index is derived data: start it over from the store.
                remove_marker(dir, TEXT);
                if path.exists() {
                    fs::remove_dir_all(&path).map_err(|e| EngineError::io(&path, e))?;
                }
                let mut index = TextIndex::create(&path, schema.config.text_index.clone())?;
                let mut batch: Vec<(DocId, String)> = Vec::with_capacity(1024);
                for item in store.records() {
                    let (iid, record) = item?;
                    batch.push((iid, record.text));
                    if batch.len() == 1024 {
                        add_text(&mut index, &batch)?;
                        batch.clear();
                    }
                }
                add_text(&mut index, &batch)?;
                index.commit()?;
                index
            }
        })
    } else {
        None
    };
    let state = State {
        dense,
        sparse,
        text,
        metadata,
        text_pending: false,
        stale: Vec::new(),
    };
    Ok((state, redone))
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

fn add_text(index: &mut TextIndex, batch: &[(DocId, String)]) -> Result<()> {
    let docs: Vec<(DocId, &str)> = batch.iter().map(|(i, t)| (*i, t.as_str())).collect();
    Ok(index.add(&docs)?)
}

/// Applies stored documents to every index (replacing earlier versions). The text index
/// does not commit: [`commit_text`] does, once the store has flushed them.
///
/// The store already holds these documents: an index that fails to apply them is marked
/// stale (see [`State::stale`]) instead of failing the write, and is left alone until the next
/// open rebuilds or catches it up.
pub(crate) fn insert(state: &mut State, puts: &[Put]) {
    for put in puts {
        state.metadata.insert(put.iid, put.record.metadata());
    }
    let mut failed = Vec::new();
    if let Some(index) = live(&mut state.dense, &state.stale, Retriever::Dense) {
        let points: Vec<(DocId, &[f32])> = puts
            .iter()
            .filter_map(|p| p.dense.as_deref().map(|v| (p.iid, v)))
            .collect();
        if index.insert(&points).is_err() {
            failed.push(Retriever::Dense);
        }
    }
    if let Some(index) = live(&mut state.sparse, &state.stale, Retriever::Sparse) {
        let docs: Vec<(DocId, &[u32], &[f32])> = puts
            .iter()
            .filter_map(|p| {
                p.sparse
                    .as_ref()
                    .map(|v| (p.iid, v.indices.as_slice(), v.values.as_slice()))
            })
            .collect();
        if index.insert(&docs).is_err() {
            failed.push(Retriever::Sparse);
        }
    }
    if let Some(index) = live(&mut state.text, &state.stale, Retriever::Bm25) {
        let docs: Vec<(DocId, &str)> = puts.iter().map(|p| (p.iid, p.record.text.as_str())).collect();
        match index.add(&docs) {
            Ok(()) => state.text_pending = true,
            Err(_) => failed.push(Retriever::Bm25),
        }
    }
    state.stale.extend(failed);
}

/// Removes documents from every index; the text index commits as in [`insert`].
pub(crate) fn remove(state: &mut State, iids: &[DocId]) {
    for iid in iids {
        state.metadata.remove(iid);
    }
    if let Some(index) = live(&mut state.dense, &state.stale, Retriever::Dense) {
        index.remove(iids);
    }
    if let Some(index) = live(&mut state.sparse, &state.stale, Retriever::Sparse) {
        index.remove(iids);
    }
    if let Some(index) = live(&mut state.text, &state.stale, Retriever::Bm25) {
        index.remove(iids);
        state.text_pending = true;
    }
}

/// The index unless it is absent or stale.
fn live<'a, T>(index: &'a mut Option<T>, stale: &[Retriever], which: Retriever) -> Option<&'a mut T> {
    index.as_mut().filter(|_| !stale.contains(&which))
}

/// Commits the text index's pending changes. Call only once the store has flushed them.
pub(crate) fn commit_text(state: &mut State) -> Result<()> {
    if state.stale.contains(&Retriever::Bm25) {
        return Ok(()); // rebuilt on the next open
    }
    if let (Some(index), true) = (&mut state.text, state.text_pending)
        && let Err(e) = index.commit()
    {
        state.stale.push(Retriever::Bm25);
        return Err(e.into());
    }
    state.text_pending = false;
    Ok(())
}

/// Saves every index, then records `seq` as the sequence each reflects (the text index must
/// have no pending change: see [`commit_text`]).
pub(crate) fn save(dir: &Path, state: &State, seq: u64) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    // A stale index missed writes: its files and marker stay as they were, so the next open
    // catches it up from its old marker (or rebuilds it once the log no longer reaches back).
    let fresh = |which| !state.stale.contains(&which);
    if let Some(index) = state.dense.as_ref().filter(|_| fresh(Retriever::Dense)) {
        index.save(&dir.join(DENSE))?;
        write_marker(dir, DENSE, seq)?;
    }
    if let Some(index) = state.sparse.as_ref().filter(|_| fresh(Retriever::Sparse)) {
        index.save(&dir.join(SPARSE))?;
        write_marker(dir, SPARSE, seq)?;
    }
    if state.text.is_some() && fresh(Retriever::Bm25) {
        // The text index commits on every write; only its marker moves here.
        write_marker(dir, TEXT, seq)?;
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
    use std::io::Write;
    let path = marker_path(dir, name);
    let tmp = path.with_extension("seq.tmp");
    let mut f = fs::File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
    f.write_all(format!("{seq}\n").as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(|e| EngineError::io(&tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| EngineError::io(&path, e))?;
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
