//! Dense retrieval: the bi-encoder's embeddings in an HNSW graph.

use std::path::Path;

use sieve_encoders::EncodeOptions;
use sieve_index::{AllowSet, DenseIndex, DocId, Hit, HnswIndex, SearchParams};

use super::{Kind, Query, RetrieverIndex};
use crate::error::{EngineError, Result};
use crate::models::Models;
use crate::store::{Put, Schema, Store};

pub(crate) const KIND: Kind = Kind {
    name: "dense",
    file: "dense",
    configured: |schema| schema.dense.is_some(),
    load,
    build,
    encode,
};

fn load(path: &Path, schema: &Schema) -> Option<Box<dyn RetrieverIndex>> {
    let (dim, metric) = schema.dense?;
    let index = HnswIndex::load(path).ok()?;
    (index.dim() == dim && index.metric() == metric).then(|| Box::new(Dense(index)) as Box<dyn RetrieverIndex>)
}

fn build(_path: &Path, schema: &Schema, store: &Store) -> Result<Box<dyn RetrieverIndex>> {
    let (dim, metric) = schema.dense.ok_or(EngineError::RetrieverMissing("dense"))?;
    let mut index = HnswIndex::new(dim, metric, schema.config.hnsw)?;
    let vectors: Vec<(DocId, Vec<f32>)> = store.dense_vectors().collect::<Result<_>>()?;
    let points: Vec<(DocId, &[f32])> = vectors.iter().map(|(i, v)| (*i, v.as_slice())).collect();
    index.insert(&points)?;
    Ok(Box::new(Dense(index)))
}

/// The query's embedding, with the model's query prompt when it has one.
pub(crate) fn encode(models: &Models, query: &mut Query) -> Result<()> {
    if query.dense.is_none() {
        query.dense = Some(query_embedding(models, &query.text)?);
    }
    Ok(())
}

/// `text` embedded as a dense query: the model's query prompt, and unit length again after a
/// Matryoshka cut, as the stored documents are.
pub(crate) fn query_embedding(models: &Models, text: &str) -> Result<Vec<f32>> {
    let model = models.dense.as_ref().ok_or(EngineError::RetrieverMissing("dense"))?;
    let options = EncodeOptions {
        normalize_embeddings: model.truncate_dim().is_some(),
        ..model.options_for("query")
    };
    Ok(model.encode_with(&[text], &options)?.row(0).to_vec())
}

/// The query's embedding, which [`encode`] made.
fn query_vector(query: &Query) -> Result<&[f32]> {
    query.dense.as_deref().ok_or(EngineError::RetrieverMissing("dense"))
}

/// Any [`DenseIndex`] over the bi-encoder's stored embeddings (HNSW here).
pub(crate) struct Dense<I>(pub I);

impl<I: DenseIndex + Send + Sync> RetrieverIndex for Dense<I> {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn apply(&mut self, puts: &[Put]) -> Result<()> {
        let points: Vec<(DocId, &[f32])> = puts
            .iter()
            .filter_map(|p| p.dense.as_deref().map(|v| (p.iid, v)))
            .collect();
        Ok(self.0.insert(&points)?)
    }

    fn remove(&mut self, iids: &[DocId]) -> Result<()> {
        self.0.remove(iids);
        Ok(())
    }

    fn catch_up(&mut self, store: &Store, touched: &[DocId]) -> Result<()> {
        for &iid in touched {
            match store.dense(iid)? {
                Some(v) => self.0.insert(&[(iid, &v)])?,
                None => {
                    self.0.remove(&[iid]);
                }
            }
        }
        Ok(())
    }

    fn save(&self, path: &Path) -> Result<()> {
        Ok(self.0.save(path)?)
    }

    fn search(&self, query: &Query, k: usize, params: &SearchParams, allow: Option<&AllowSet>) -> Result<Vec<Hit>> {
        Ok(self.0.search(query_vector(query)?, k, params, allow)?)
    }
}
