//! The models a collection loads: the encoders its retrievers use and the reranker.

use std::fs;
use std::path::Path;

use sieve_encoders::{CrossEncoder, LoadOptions, ModelFiles, SentenceTransformer, SparseEncoder};

use crate::config::CollectionConfig;
use crate::error::{EngineError, Result};

pub(crate) struct Models {
    pub dense: Option<SentenceTransformer>,
    pub sparse: Option<SparseEncoder>,
    pub reranker: Option<CrossEncoder>,
}

impl Models {
    /// Loads the models a configuration names: an absolute path is a local folder, anything
    /// else a hub id (never a folder relative to the current directory; see [`pin`]).
    pub fn load(config: &CollectionConfig, options: &LoadOptions) -> Result<Models> {
        let files = |name: &str| match Path::new(name).is_absolute() {
            true => ModelFiles::local(name),
            false => ModelFiles::hub(name),
        };
        Ok(Models {
            dense: config
                .dense
                .as_deref()
                .map(|name| {
                    SentenceTransformer::from_files(&files(name)?, options)?.with_truncate_dim(config.truncate_dim)
                })
                .transpose()?,
            sparse: config
                .sparse
                .as_deref()
                .map(|name| SparseEncoder::from_files(&files(name)?, options))
                .transpose()?,
            reranker: config
                .reranker
                .as_deref()
                .map(|name| CrossEncoder::from_files(&files(name)?, options))
                .transpose()?,
        })
    }
}

/// The model references a new collection stores: a name that is a local folder (as
/// `from_pretrained` reads it, relative to the current directory) becomes its absolute path,
/// so a later open from another directory loads the same model; other names are hub ids.
pub(crate) fn pin(mut config: CollectionConfig) -> Result<CollectionConfig> {
    for name in [&mut config.dense, &mut config.sparse, &mut config.reranker]
        .into_iter()
        .flatten()
    {
        if Path::new(name.as_str()).is_dir() {
            let absolute = fs::canonicalize(name.as_str()).map_err(|e| EngineError::io(name.as_str(), e))?;
            *name = absolute
                .to_str()
                .ok_or_else(|| {
                    EngineError::InvalidInput(format!("model folder {} is not a UTF-8 path", absolute.display()))
                })?
                .to_string();
        }
    }
    Ok(config)
}
