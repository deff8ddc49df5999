//! Sparse retrieval: SPLADE vectors in an inverted index.

use std::path::Path;

use sieve_index::{AllowSet, DocId, Hit, SearchParams, SparseIndex};

use super::{Kind, Query, RetrieverIndex};
use crate::error::{EngineError, Result};
use crate::models::Models;
use crate::store::{Put, Schema, Store};

pub(crate) const KIND: Kind = Kind {
    name: "sparse",
    file: "sparse",
    configured: |schema| schema.sparse_dim.is_some(),
    load,
    build,
    encode,
};

fn load(path: &Path, schema: &Schema) -> Option<Box<dyn RetrieverIndex>> {
    let vocab = schema.sparse_dim?;
    let index = SparseIndex::load(path).ok()?;
    (index.vocab_size() == vocab).then(|| Box::new(Sparse(index)) as Box<dyn RetrieverIndex>)
}

fn build(_path: &Path, schema: &Schema, store: &Store) -> Result<Box<dyn RetrieverIndex>> {
    let vocab = schema.sparse_dim.ok_or(EngineError::RetrieverMissing("sparse"))?;
    let mut index = SparseIndex::new(vocab);
    let vectors: Vec<_> = store.sparse_vectors().collect::<Result<_>>()?;
    let docs: Vec<(DocId, &[u32], &[f32])> = vectors
        .iter()
        .map(|(i, v)| (*i, v.indices.as_slice(), v.values.as_slice()))
        .collect();
    index.insert(&docs)?;
    Ok(Box::new(Sparse(index)))
}

fn encode(models: &Models, query: &mut Query) -> Result<()> {
    if query.sparse.is_none() {
        let model = models.sparse.as_ref().ok_or(EngineError::RetrieverMissing("sparse"))?;
        query.sparse = Some(model.encode_query(&[query.text.as_str()])?.into_rows().remove(0));
    }
    Ok(())
}

struct Sparse(SparseIndex);

impl RetrieverIndex for Sparse {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn apply(&mut self, puts: &[Put]) -> Result<()> {
        let docs: Vec<(DocId, &[u32], &[f32])> = puts
            .iter()
            .filter_map(|p| {
                p.sparse
                    .as_ref()
                    .map(|v| (p.iid, v.indices.as_slice(), v.values.as_slice()))
            })
            .collect();
        Ok(self.0.insert(&docs)?)
    }

    fn remove(&mut self, iids: &[DocId]) -> Result<()> {
        self.0.remove(iids);
        Ok(())
    }

    fn catch_up(&mut self, store: &Store, touched: &[DocId]) -> Result<()> {
        for &iid in touched {
            match store.sparse(iid)? {
                Some(v) => self.0.insert(&[(iid, &v.indices, &v.values)])?,
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

    fn search(&self, query: &Query, k: usize, _: &SearchParams, allow: Option<&AllowSet>) -> Result<Vec<Hit>> {
        let q = query.sparse.as_ref().ok_or(EngineError::RetrieverMissing("sparse"))?;
        Ok(self.0.search(&q.indices, &q.values, k, allow)?)
    }
}
