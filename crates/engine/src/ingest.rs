//! Encoding documents on the way in: the dense and sparse models run side by side (each on
//! its own thread, sharing the kernels' thread pool), in chunks so progress can be reported.

use std::sync::mpsc;

use sieve_encoders::{EncodeOptions, SparseEncodeOptions, SparseVector};

use crate::collection::{Collection, Progress};
use crate::document::Document;
use crate::error::{EngineError, Result};

/// Documents encoded per progress report.
const CHUNK: usize = 256;

/// Dense and sparse vectors for each document: the precomputed ones it carries, or the
/// configured encoders' output. `None` where the collection has no such model.
pub(crate) type Encoded = (Vec<Option<Vec<f32>>>, Vec<Option<SparseVector>>);

pub(crate) fn encode(
    collection: &Collection,
    docs: &[Document],
    progress: &mut dyn FnMut(Progress),
) -> Result<Encoded> {
    std::thread::scope(|scope| {
        let (sender, reports) = mpsc::channel();
        let dense_sender = sender.clone();
        let dense = scope.spawn(move || {
            encode_dense(collection, docs, &|p| {
                let _ = dense_sender.send(p);
            })
        });
        let sparse = scope.spawn(move || {
            encode_sparse(collection, docs, &|p| {
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
    collection: &Collection,
    docs: &[Document],
    progress: &dyn Fn(Progress),
) -> Result<Vec<Option<Vec<f32>>>> {
    let total = docs.len();
    let mut dense: Vec<Option<Vec<f32>>> = docs.iter().map(|d| d.dense.clone()).collect();
    let Some(model) = &collection.models.dense else {
        return Ok(dense);
    };
    let todo: Vec<usize> = (0..total).filter(|&i| dense[i].is_none()).collect();
    let prompt_name = model.prompts().contains_key("document").then(|| "document".to_string());
    let options = EncodeOptions {
        batch_size: collection.config().batch_size,
        prompt_name,
        show_progress_bar: false,
        ..EncodeOptions::default()
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
    collection: &Collection,
    docs: &[Document],
    progress: &dyn Fn(Progress),
) -> Result<Vec<Option<SparseVector>>> {
    let total = docs.len();
    let mut sparse: Vec<Option<SparseVector>> = docs.iter().map(|d| d.sparse.clone()).collect();
    let Some(model) = &collection.models.sparse else {
        return Ok(sparse);
    };
    let todo: Vec<usize> = (0..total).filter(|&i| sparse[i].is_none()).collect();
    let prompt_name = model.prompts().contains_key("document").then(|| "document".to_string());
    let options = SparseEncodeOptions {
        batch_size: collection.config().batch_size,
        prompt_name,
        show_progress_bar: false,
        ..SparseEncodeOptions::default()
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
