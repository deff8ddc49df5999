//! BM25 full text: the documents' text in a tantivy index, which commits its own files.

use std::fs;
use std::path::Path;

use sieve_index::{AllowSet, DocId, Hit, SearchParams, TextIndex};

use super::{Kind, Query, RetrieverIndex};
use crate::error::{EngineError, Result};
use crate::models::Models;
use crate::store::{Put, Schema, Store};

/// Documents added to a new index per batch while it is built.
const BUILD_BATCH: usize = 1024;

pub(crate) const KIND: Kind = Kind {
    name: "bm25",
    file: "text",
    configured: |schema| schema.config.text,
    load,
    build,
    encode,
};

fn load(path: &Path, _: &Schema) -> Option<Box<dyn RetrieverIndex>> {
    let index = TextIndex::open(path).ok()?;
    Some(Box::new(Bm25 { index, pending: false }))
}

fn build(path: &Path, schema: &Schema, store: &Store) -> Result<Box<dyn RetrieverIndex>> {
    // The text index is derived data: start it over from the store.
    if path.exists() {
        fs::remove_dir_all(path).map_err(|e| EngineError::io(path, e))?;
    }
    let mut index = TextIndex::create(path, schema.config.text_index.clone())?;
    let mut batch: Vec<(DocId, String)> = Vec::with_capacity(BUILD_BATCH);
    for item in store.records() {
        let (iid, record) = item?;
        batch.push((iid, record.text));
        if batch.len() == BUILD_BATCH {
            add(&mut index, &batch)?;
            batch.clear();
        }
    }
    add(&mut index, &batch)?;
    index.commit()?;
    Ok(Box::new(Bm25 { index, pending: false }))
}

fn add(index: &mut TextIndex, batch: &[(DocId, String)]) -> Result<()> {
    let docs: Vec<(DocId, &str)> = batch.iter().map(|(i, t)| (*i, t.as_str())).collect();
    Ok(index.add(&docs)?)
}

/// BM25 reads the query's text as it is.
fn encode(_: &Models, _: &mut Query) -> Result<()> {
    Ok(())
}

struct Bm25 {
    index: TextIndex,
    /// Applied changes not committed yet.
    pending: bool,
}

impl RetrieverIndex for Bm25 {
    fn len(&self) -> usize {
        self.index.len()
    }

    fn apply(&mut self, puts: &[Put]) -> Result<()> {
        let docs: Vec<(DocId, &str)> = puts.iter().map(|p| (p.iid, p.record.text.as_str())).collect();
        self.index.add(&docs)?;
        self.pending = true;
        Ok(())
    }

    fn remove(&mut self, iids: &[DocId]) -> Result<()> {
        self.index.remove(iids);
        self.pending = true;
        Ok(())
    }

    fn catch_up(&mut self, store: &Store, touched: &[DocId]) -> Result<()> {
        for &iid in touched {
            match store.record(iid)? {
                Some(record) => self.index.add(&[(iid, &record.text)])?,
                None => self.index.remove(&[iid]),
            }
        }
        self.pending = true;
        self.commit()
    }

    fn pending(&self) -> bool {
        self.pending
    }

    fn commit(&mut self) -> Result<()> {
        if self.pending {
            self.index.commit()?;
            self.pending = false;
        }
        Ok(())
    }

    fn save(&self, _: &Path) -> Result<()> {
        Ok(()) // committed on every write
    }

    fn search(&self, query: &Query, k: usize, _: &SearchParams, allow: Option<&AllowSet>) -> Result<Vec<Hit>> {
        Ok(self.index.search(&query.text, k, allow)?)
    }
}
