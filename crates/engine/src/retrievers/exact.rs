//! A test-only fourth retriever: exact (brute-force) dense search over the bi-encoder's
//! embeddings, next to the HNSW one. It shows what a new retriever takes: this file and its
//! line in [`KINDS`](super::KINDS); `CollectionConfig::exact_scan` turns it on. Its index is
//! the dense retriever's over a [`FlatIndex`] instead of HNSW.

use std::path::Path;

use sieve_index::{DenseIndex, FlatIndex};

use super::dense::{Dense, encode};
use super::{Kind, RetrieverIndex};
use crate::error::{EngineError, Result};
use crate::store::{Schema, Store};

pub(crate) const KIND: Kind = Kind {
    name: "exact",
    file: "exact",
    configured: |schema| schema.config.exact_scan && schema.dense.is_some(),
    load,
    build,
    encode,
};

fn load(path: &Path, schema: &Schema) -> Option<Box<dyn RetrieverIndex>> {
    let (dim, metric) = schema.dense?;
    let index = FlatIndex::load(path).ok()?;
    (index.dim() == dim && index.metric() == metric).then(|| Box::new(Dense(index)) as Box<dyn RetrieverIndex>)
}

fn build(_: &Path, schema: &Schema, store: &Store) -> Result<Box<dyn RetrieverIndex>> {
    let (dim, metric) = schema.dense.ok_or(EngineError::RetrieverMissing("dense"))?;
    let mut index = FlatIndex::new(dim, metric);
    for item in store.dense_vectors() {
        let (iid, v) = item?;
        index.insert(&[(iid, &v)])?;
    }
    Ok(Box::new(Dense(index)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::fault_injection::fixture;
    use crate::{Collection, CollectionConfig, Document, Filter, Retriever, SearchHit};

    fn ids(hits: &[SearchHit]) -> Vec<&str> {
        hits.iter().map(|h| h.id.as_str()).collect()
    }

    /// The exact retriever gives what the dense one gives (HNSW is exact at this size), takes
    /// filters and writes, is saved and caught up like every other, and joins hybrid searches.
    #[test]
    fn a_fourth_retriever_works_everywhere_the_engine_iterates_retrievers() {
        let dir = std::env::temp_dir().join(format!("sieve-exact-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = CollectionConfig {
            dense: Some(fixture("bert-st-mean-norm")),
            sparse: None,
            reranker: None,
            exact_scan: true,
            ..CollectionConfig::default()
        };
        let docs = (0..60)
            .map(|i| {
                Document::new(format!("d{i}"), format!("note {i} on topic {}", i % 7)).with_metadata(json!({"n": i}))
            })
            .collect();
        let same_as_dense = |c: &Collection, query: &str| {
            let exact = c
                .search(query)
                .retriever_names(&["exact"])
                .keep_duplicates()
                .run()
                .unwrap();
            let dense = c.search(query).dense().keep_duplicates().run().unwrap();
            assert_eq!(ids(&exact), ids(&dense), "{query}");
            for (e, d) in exact.iter().zip(&dense) {
                assert!((e.score - d.score).abs() < 1e-6, "{query}: {} vs {}", e.score, d.score);
            }
            assert_eq!(exact.len(), 10);
        };
        {
            let c = Collection::create(&dir, config).unwrap();
            c.add(docs).unwrap();
            same_as_dense(&c, "topic 3");
            let filtered = c
                .search("topic 3")
                .retriever_names(&["exact"])
                .filter(Filter::range("n").lt(5.0))
                .run()
                .unwrap();
            assert_eq!(filtered.len(), 5);
            // Hybrid search fuses it with the others: with dense counted twice, the best fused
            // score (each list min-max scaled to [0, 1]) rises by at least 0.5.
            let hybrid = c.search("topic 3").run().unwrap();
            let two = c
                .search("topic 3")
                .retrievers(&[Retriever::Dense, Retriever::Bm25])
                .run()
                .unwrap();
            assert!(
                hybrid[0].score >= two[0].score + 0.5 - 1e-6,
                "{} vs {}",
                hybrid[0].score,
                two[0].score
            );
            c.delete(&["d0", "d1", "d2"]).unwrap();
            c.close().unwrap();
        }
        assert!(dir.join("indexes/exact.seq").is_file(), "saved beside the others");
        {
            // A write the saved index missed is caught up on open, from the store's log.
            let c = Collection::open(&dir).unwrap();
            c.upsert(vec![Document::new("d3", "an entirely new text")]).unwrap();
            same_as_dense(&c, "topic 3");
        }
        let c = Collection::open(&dir).unwrap();
        same_as_dense(&c, "an entirely new text");
        assert_eq!(
            c.search("note")
                .retriever_names(&["exact"])
                .top_k(100)
                .run()
                .unwrap()
                .len(),
            57
        );
        drop(c);
        std::fs::remove_dir_all(&dir).ok();
    }
}
