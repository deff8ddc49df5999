//! Encoding documents on the way in: the dense and sparse models run side by side (each on
//! its own thread, sharing the kernels' thread pool), in chunks so progress can be reported.

use std::sync::mpsc;

use sieve_encoders::{EncodeOptions, SparseEncodeOptions, SparseVector};

use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::models::Models;

/// Documents encoded per progress report.
const CHUNK: usize = 256;

/// Progress of a long write, passed to the callback of
/// [`Collection::add_with_progress`](crate::Collection::add_with_progress).
///
/// ```no_run
/// # let collection = sieve_engine::Collection::open("docs.sieve")?;
/// use sieve_engine::{Document, Progress};
///
/// let docs = vec![Document::new("1", "first"), Document::new("2", "second")];
/// let report = collection.add_with_progress(docs, &mut |p: Progress| {
///     eprintln!("{}: {}/{}", p.stage, p.done, p.total); // dense, sparse, then store
/// })?;
/// println!("{} added", report.added);
/// # Ok::<(), sieve_engine::EngineError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// What is running: `"dense"`, `"sparse"` (encoding) or `"store"`.
    pub stage: &'static str,
    /// Documents done in this stage.
    pub done: usize,
    /// Documents in this call.
    pub total: usize,
}

/// Dense and sparse vectors for each document: the precomputed ones it carries, or the
/// configured encoders' output. `None` where the collection has no such model.
pub(crate) type Encoded = (Vec<Option<Vec<f32>>>, Vec<Option<SparseVector>>);

pub(crate) fn encode(
    models: &Models,
    batch_size: usize,
    docs: &[Document],
    progress: &mut dyn FnMut(Progress),
) -> Result<Encoded> {
    std::thread::scope(|scope| {
        let (sender, reports) = mpsc::channel();
        let dense_sender = sender.clone();
        let dense = scope.spawn(move || {
            encode_dense(models, batch_size, docs, &|p| {
                let _ = dense_sender.send(p);
            })
        });
        let sparse = scope.spawn(move || {
            encode_sparse(models, batch_size, docs, &|p| {
                let _ = sender.send(p);
            })
        });
        // Both senders are gone once both stages end, which ends this loop.
        for report in reports {
            progress(report);
        }
        let dense = join(dense)?;
        let sparse = join(sparse)?;
        Ok((dense, sparse))
    })
}

/// A stage's result; a panic in it carries on in the caller.
fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    match handle.join() {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

fn encode_dense(
    models: &Models,
    batch_size: usize,
    docs: &[Document],
    progress: &dyn Fn(Progress),
) -> Result<Vec<Option<Vec<f32>>>> {
    let total = docs.len();
    let mut dense: Vec<Option<Vec<f32>>> = docs.iter().map(|d| d.dense.clone()).collect();
    let Some(model) = &models.dense else {
        return Ok(dense);
    };
    let todo: Vec<usize> = (0..total).filter(|&i| dense[i].is_none()).collect();
    let options = EncodeOptions {
        batch_size,
        // A Matryoshka cut leaves shorter vectors: scaled back to unit length.
        normalize_embeddings: model.truncate_dim().is_some(),
        ..model.options_for("document")
    };
    let report = |done| {
        progress(Progress {
            stage: "dense",
            done: total - todo.len() + done,
            total,
        })
    };
    report(0);
    for (n, chunk) in todo.chunks(CHUNK).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(|&i| docs[i].text.as_str()).collect();
        let embeddings = model.encode_with(&texts, &options)?;
        for (&i, row) in chunk.iter().zip(embeddings.rows()) {
            finite(row, "dense", &docs[i])?;
            dense[i] = Some(row.to_vec());
        }
        report(n * CHUNK + chunk.len());
    }
    Ok(dense)
}

fn encode_sparse(
    models: &Models,
    batch_size: usize,
    docs: &[Document],
    progress: &dyn Fn(Progress),
) -> Result<Vec<Option<SparseVector>>> {
    let total = docs.len();
    let mut sparse: Vec<Option<SparseVector>> = docs.iter().map(|d| d.sparse.clone()).collect();
    let Some(model) = &models.sparse else {
        return Ok(sparse);
    };
    let todo: Vec<usize> = (0..total).filter(|&i| sparse[i].is_none()).collect();
    let options = SparseEncodeOptions {
        batch_size,
        ..model.options_for("document")
    };
    let report = |done| {
        progress(Progress {
            stage: "sparse",
            done: total - todo.len() + done,
            total,
        })
    };
    report(0);
    for (n, chunk) in todo.chunks(CHUNK).enumerate() {
        let texts: Vec<&str> = chunk.iter().map(|&i| docs[i].text.as_str()).collect();
        let embeddings = model.encode_with(&texts, &options)?;
        for (&i, row) in chunk.iter().zip(embeddings.into_rows()) {
            // An infinite weight would be stored, and every later rebuild of the sparse index
            // would refuse it: the collection would no longer open.
            finite(&row.values, "sparse", &docs[i])?;
            sparse[i] = Some(row);
        }
        report(n * CHUNK + chunk.len());
    }
    Ok(sparse)
}

/// A model's output for `doc`, refused when any value is infinite or NaN.
fn finite(values: &[f32], model: &'static str, doc: &Document) -> Result<()> {
    match values.iter().all(|x| x.is_finite()) {
        true => Ok(()),
        false => Err(EngineError::NonFinite {
            model,
            id: doc.id.clone(),
        }),
    }
}
