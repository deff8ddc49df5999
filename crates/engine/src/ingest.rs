//! Encoding documents on the way in, in chunks so that progress can be reported.

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
    let batch_size = collection.config().batch_size;
    let total = docs.len();
    let mut dense: Vec<Option<Vec<f32>>> = docs.iter().map(|d| d.dense.clone()).collect();
    if let Some(model) = &collection.models.dense {
        let todo: Vec<usize> = (0..total).filter(|&i| dense[i].is_none()).collect();
        let prompt_name = model.prompts().contains_key("document").then(|| "document".to_string());
        let options = EncodeOptions {
            batch_size,
            prompt_name,
            show_progress_bar: false,
            ..EncodeOptions::default()
        };
        progress(Progress {
            stage: "dense",
            done: total - todo.len(),
            total,
        });
        for (n, chunk) in todo.chunks(CHUNK).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| docs[i].text.as_str()).collect();
            let embeddings = model.encode_with(&texts, &options)?;
            for (&i, row) in chunk.iter().zip(embeddings.rows()) {
                if row.iter().any(|x| !x.is_finite()) {
                    return Err(EngineError::InvalidInput(format!(
                        "the dense model produced NaN for document {:?}",
                        docs[i].id
                    )));
                }
                dense[i] = Some(row.to_vec());
            }
            progress(Progress {
                stage: "dense",
                done: total - todo.len() + (n * CHUNK + chunk.len()),
                total,
            });
        }
    }
    let mut sparse: Vec<Option<SparseVector>> = docs.iter().map(|d| d.sparse.clone()).collect();
    if let Some(model) = &collection.models.sparse {
        let todo: Vec<usize> = (0..total).filter(|&i| sparse[i].is_none()).collect();
        let prompt_name = model.prompts().contains_key("document").then(|| "document".to_string());
        let options = SparseEncodeOptions {
            batch_size,
            prompt_name,
            show_progress_bar: false,
            ..SparseEncodeOptions::default()
        };
        progress(Progress {
            stage: "sparse",
            done: total - todo.len(),
            total,
        });
        for (n, chunk) in todo.chunks(CHUNK).enumerate() {
            let texts: Vec<&str> = chunk.iter().map(|&i| docs[i].text.as_str()).collect();
            let embeddings = model.encode_with(&texts, &options)?;
            for (&i, row) in chunk.iter().zip(embeddings.into_rows()) {
                sparse[i] = Some(row);
            }
            progress(Progress {
                stage: "sparse",
                done: total - todo.len() + (n * CHUNK + chunk.len()),
                total,
            });
        }
    }
    Ok((dense, sparse))
}
