//! [`Collection::reencode`]: copies a collection's documents into a new collection with other
//! models (a fine-tuned bi-encoder, say), re-encoding only what the new models change.

use std::collections::HashSet;
use std::path::Path;

use sieve_encoders::LoadOptions;

use crate::collection::{Collection, Progress};
use crate::config::CollectionConfig;
use crate::document::Document;
use crate::error::{EngineError, Result};

/// What a [`Collection::reencode`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencodeReport {
    /// Documents written to the new collection in this call.
    pub written: usize,
    /// Documents already there from an interrupted earlier call, left as they were.
    pub skipped: usize,
    /// Documents removed from the new collection because the source no longer has them.
    pub removed: usize,
}

impl Collection {
    /// Writes every document of this collection (text and metadata) into the collection at
    /// `dest`, created with `config` (its models) when absent. Vectors of a model `config`
    /// keeps are copied as stored; the others are encoded by the new models. This collection
    /// is only read.
    ///
    /// It is resumable: run again after an interruption (a crash, Ctrl-C), it opens `dest`,
    /// skips the documents already there with the same text and metadata, writes the rest
    /// and removes what the source no longer has. `dest` must then have been made with the
    /// same models, or the call fails naming the difference.
    ///
    /// ```no_run
    /// use sieve_engine::{Collection, CollectionConfig};
    ///
    /// let old = Collection::open("scifact.sieve")?;
    /// let config = CollectionConfig { dense: Some("./minilm-scifact".into()), ..old.config().clone() };
    /// let report = old.reencode("scifact-tuned.sieve", config, &mut |_| {})?;
    /// println!("{} written, {} already there", report.written, report.skipped);
    /// # Ok::<(), sieve_engine::EngineError>(())
    /// ```
    pub fn reencode(
        &self,
        dest: impl AsRef<Path>,
        config: CollectionConfig,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<ReencodeReport> {
        let dest = dest.as_ref();
        if same_directory(self.path(), dest) {
            return Err(EngineError::InvalidInput(format!(
                "{} is this collection: re-encode into another directory",
                dest.display()
            )));
        }
        let options = LoadOptions {
            dtype: self.info()?.dtype,
            ..LoadOptions::default()
        };
        let target = if Collection::exists(dest) {
            let target = Collection::open_with(dest, &options)?;
            let config = crate::models::pin(config)?;
            let have = target.config();
            if (&have.dense, &have.sparse, &have.reranker, have.text, have.truncate_dim)
                != (
                    &config.dense,
                    &config.sparse,
                    &config.reranker,
                    config.text,
                    config.truncate_dim,
                )
            {
                return Err(EngineError::InvalidInput(format!(
                    "{} was made with other models ({:?}, {:?}); resume with the same configuration or choose a new directory",
                    dest.display(),
                    have.dense,
                    have.sparse
                )));
            }
            target
        } else {
            Collection::create_with(dest, config, &options)?
        };
        let reuse_dense =
            target.config().dense == self.config().dense && target.config().truncate_dim == self.config().truncate_dim;
        let reuse_sparse = target.config().sparse == self.config().sparse;
        let batch = target.config().batch_size.max(1) * 8;
        let total = self.len();
        let mut report = ReencodeReport::default();
        let mut seen = HashSet::with_capacity(total);
        let mut pending: Vec<Document> = Vec::with_capacity(batch);
        let mut done = 0;
        for doc in self.iter() {
            let mut doc = doc?;
            seen.insert(doc.id.clone());
            done += 1;
            if let Some(existing) = target.get(&doc.id)?
                && existing.text == doc.text
                && existing.metadata == doc.metadata
            {
                report.skipped += 1;
                continue;
            }
            if (reuse_dense || reuse_sparse)
                && let Some(stored) = self.vectors(&doc.id)?
            {
                doc.dense = stored.dense.filter(|_| reuse_dense);
                doc.sparse = stored.sparse.filter(|_| reuse_sparse);
            }
            pending.push(doc);
            if pending.len() == batch {
                report.written += pending.len();
                target.upsert(std::mem::take(&mut pending))?;
                progress(Progress {
                    stage: "reencode",
                    done,
                    total,
                });
            }
        }
        if !pending.is_empty() {
            report.written += pending.len();
            target.upsert(pending)?;
        }
        progress(Progress {
            stage: "reencode",
            done,
            total,
        });
        let gone: Vec<String> = target
            .iter()
            .filter_map(|d| d.ok().map(|d| d.id))
            .filter(|id| !seen.contains(id))
            .collect();
        if !gone.is_empty() {
            report.removed = target.delete(&gone)?;
        }
        target.checkpoint()?;
        Ok(report)
    }
}

fn same_directory(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
