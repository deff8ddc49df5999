//! End-to-end retrieval quality on SciFact (train queries, `qrels/train.tsv`): every
//! retriever alone and fused, through the public Collection API. Corpus vectors come from the
//! shared test cache (encoded once with the same models the collection loads).

mod common;

use std::collections::HashMap;

use common::scifact;
use sieve::engine::{Collection, CollectionConfig, Document, Fusion, Retriever};
use sieve::index::HnswParams;

/// The collection's folder (removed when dropped) and the collection.
fn collection() -> (common::ScratchDir, Collection) {
    let data = scifact::data();
    let (dense, sparse) = (scifact::minilm(), scifact::splade());
    let dir = common::ScratchDir::new("quality");
    let config = CollectionConfig {
        dense: Some(scifact::DENSE_MODEL.into()),
        sparse: Some(scifact::SPARSE_MODEL.into()),
        text: true,
        reranker: None,
        // One graph for every run: the pinned figures below must not depend on thread timing.
        hnsw: HnswParams {
            parallel_insert: false,
            ..HnswParams::default()
        },
        ..CollectionConfig::default()
    };
    let c = Collection::create(&dir, config).unwrap_or_else(|e| panic!("{}: {e}", common::hub_hint()));
    let docs: Vec<Document> = data
        .corpus
        .iter()
        .enumerate()
        .map(|(i, d)| {
            Document::new(d.id.clone(), d.text.clone())
                .with_dense(dense.corpus[i].clone())
                .with_sparse(sparse.corpus[i].clone())
        })
        .collect();
    c.add(docs).unwrap();
    (dir, c)
}

struct Row {
    name: String,
    ndcg10: f64,
    recall100: f64,
}

fn evaluate(c: &Collection, name: &str, search: impl Fn(&str) -> Vec<String>) -> Row {
    let data = scifact::data();
    let qrels = &data.train_qrels;
    let judged = data.judged(qrels);
    let (mut ndcg, mut recall) = (0.0, 0.0);
    for &qi in &judged {
        let q = &data.queries[qi];
        let ranked = search(&q.text);
        let ranked: Vec<&str> = ranked.iter().map(String::as_str).collect();
        ndcg += scifact::ndcg_at(10, &ranked, &qrels[&q.id]);
        recall += scifact::recall_at(100, &ranked, &qrels[&q.id]);
    }
    let n = judged.len() as f64;
    let _ = c;
    Row {
        name: name.to_string(),
        ndcg10: ndcg / n,
        recall100: recall / n,
    }
}

/// nDCG@10 of the default search (no rerank) on SciFact train.
const PINNED_DEFAULT_NDCG10: f64 = 0.7408;

#[test]
fn scifact_train_hybrid_beats_every_single_retriever() {
    // `c` is dropped (closed) before its folder is removed.
    let (_dir, c) = collection();
    let c = &c;
    // The ids of a first-stage search's top 100.
    let top = |search: sieve::engine::Search| -> Vec<String> {
        search
            .no_rerank()
            .top_k(100)
            .run()
            .unwrap()
            .into_iter()
            .map(|h| h.id)
            .collect()
    };
    let run = |retrievers: &'static [Retriever], fusion: Fusion| {
        move |q: &str| -> Vec<String> { top(c.search(q).retrievers(retrievers).fusion(fusion)) }
    };
    let all: &'static [Retriever] = &[Retriever::Dense, Retriever::Sparse, Retriever::Bm25];
    let rrf = Fusion::Rrf { k: 60.0 };
    let rows = vec![
        evaluate(c, "dense (all-MiniLM-L6-v2)", run(&[Retriever::Dense], rrf)),
        evaluate(c, "sparse (splade-tiny)", run(&[Retriever::Sparse], rrf)),
        evaluate(c, "BM25", run(&[Retriever::Bm25], rrf)),
        evaluate(c, "hybrid RRF (k = 60)", run(all, rrf)),
        evaluate(c, "hybrid min-max", run(all, Fusion::MinMax)),
        evaluate(c, "hybrid DBSF", run(all, Fusion::Dbsf)),
        evaluate(c, "default search", |q: &str| top(c.search(q))),
    ];
    println!(
        "\nSciFact train ({} judged queries)\n| ranking | nDCG@10 | Recall@100 |\n|---|---|---|",
        scifact::data().judged(&scifact::data().train_qrels).len()
    );
    for r in &rows {
        println!("| {} | {:.4} | {:.4} |", r.name, r.ndcg10, r.recall100);
    }
    let by_name: HashMap<&str, &Row> = rows.iter().map(|r| (r.name.as_str(), r)).collect();
    let best_single = rows[..3].iter().map(|r| r.ndcg10).fold(0.0, f64::max);
    // The default (min-max, near-duplicates folded), pinned to the fourth decimal: a change of
    // fusion, normalisation or folding shows here.
    let default = by_name["default search"];
    assert!(
        (default.ndcg10 - PINNED_DEFAULT_NDCG10).abs() < 5e-5,
        "default search nDCG@10 {:.4}, pinned {PINNED_DEFAULT_NDCG10}",
        default.ndcg10
    );
    assert_eq!(
        format!("{:.4}", by_name["hybrid min-max"].ndcg10),
        format!("{:.4}", default.ndcg10)
    );
    assert!(
        by_name["hybrid RRF (k = 60)"].ndcg10 >= best_single,
        "hybrid RRF below the best single retriever"
    );
    // Sanity floors, well under the published figures, that catch a broken retriever.
    assert!(
        by_name["BM25"].ndcg10 > 0.6
            && by_name["dense (all-MiniLM-L6-v2)"].ndcg10 > 0.55
            && by_name["sparse (splade-tiny)"].ndcg10 > 0.55
    );
}
