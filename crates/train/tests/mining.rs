//! Hard-negative mining on a real collection (all-MiniLM-L6-v2 + BM25), and BEIR training
//! pairs from SciFact with its dev split held out.

mod common;

use std::path::PathBuf;

use sieve_engine::{Collection, CollectionConfig, Fusion, Retriever};
use sieve_train::TrainError;
use sieve_train::data::beir_pairs;
use sieve_train::mining::{Mined, MiningOptions, Sampling, mine_hard_negatives};

use common::DOCS;

/// The collection's folder (removed when dropped) and the collection.
fn collection(name: &str) -> (common::ScratchDir, Collection) {
    let dir = common::ScratchDir::new(&format!("train-mining-{name}"));
    let config = CollectionConfig {
        sparse: None,
        reranker: None,
        ..CollectionConfig::default()
    };
    let c = common::docs_collection(&dir, config).expect("models in the hub cache: run scripts/fetch-models");
    (dir, c)
}

fn query() -> Vec<(String, Vec<String>)> {
    vec![("why do the tides rise and fall".to_string(), vec!["tides".to_string()])]
}

#[test]
fn negatives_skip_positives_and_follow_the_range() {
    let (_dir, c) = collection("range");
    let dense = |range_min, num_negatives| MiningOptions {
        retriever: Some(Retriever::Dense),
        range_min,
        num_negatives,
        ..Default::default()
    };
    let all = &mine_hard_negatives(&c, &query(), &dense(0, 9)).unwrap()[0];
    let ids: Vec<&str> = all.negatives.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 9);
    assert!(!ids.contains(&"tides"));
    assert_eq!(ids[0], "spring-tides");
    assert!(all.negatives.windows(2).all(|w| w[0].1.score >= w[1].1.score));
    assert_eq!(
        all.negatives.iter().map(|(_, s)| s.rank).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    // range_min skips the first candidates; num_negatives keeps the best of the rest.
    let later = &mine_hard_negatives(&c, &query(), &dense(2, 3)).unwrap()[0];
    assert_eq!(later.negatives, all.negatives[2..5].to_vec());
    // max_score drops the candidates above it.
    let cap = all.negatives[3].1.score;
    let capped = MiningOptions {
        max_score: Some(cap),
        ..dense(0, 9)
    };
    let below = &mine_hard_negatives(&c, &query(), &capped).unwrap()[0];
    assert_eq!(below.negatives[0], all.negatives[3]);
    // The hybrid first stage (dense + BM25 fused) mines too.
    let hybrid = &mine_hard_negatives(&c, &query(), &MiningOptions::default()).unwrap()[0];
    assert_eq!(hybrid.negatives.len(), 3);
    assert!(hybrid.negatives.iter().all(|(id, _)| id != "tides"));
    // With reciprocal rank fusion, the negatives follow that search's ranking and scores.
    let rrf = Fusion::Rrf { k: 60.0 };
    let options = MiningOptions {
        fusion: Some(rrf),
        num_negatives: 5,
        ..Default::default()
    };
    let mined = &mine_hard_negatives(&c, &query(), &options).unwrap()[0];
    let ranked: Vec<(String, f32)> = c
        .search(query()[0].0.as_str())
        .hybrid()
        .fusion(rrf)
        .no_rerank()
        .top_k(20)
        .run()
        .unwrap()
        .into_iter()
        .filter(|hit| hit.id != "tides")
        .take(5)
        .map(|hit| (hit.id, hit.score))
        .collect();
    let got: Vec<(String, f32)> = mined.negatives.iter().map(|(id, s)| (id.clone(), s.score)).collect();
    assert_eq!(got, ranked);
    // Two retrievers: at most 1/61 from each (min-max fusion would give up to 2).
    assert!(got.iter().all(|(_, score)| *score <= 2.0 / 61.0), "{got:?}");
}

#[test]
fn random_sampling_draws_from_the_candidates_in_rank_order() {
    let (_dir, c) = collection("sampling");
    let options = |sampling| MiningOptions {
        retriever: Some(Retriever::Dense),
        num_negatives: 3,
        sampling,
        ..Default::default()
    };
    let mine = |sampling| mine_hard_negatives(&c, &query(), &options(sampling)).unwrap().remove(0);
    let all = mine_hard_negatives(
        &c,
        &query(),
        &MiningOptions {
            num_negatives: 9,
            ..options(Sampling::Top)
        },
    )
    .unwrap()
    .remove(0);
    let draws: Vec<Mined> = (0..8).map(|seed| mine(Sampling::Random { seed })).collect();
    for drawn in &draws {
        assert_eq!(drawn.negatives.len(), 3);
        assert!(drawn.negatives.iter().all(|n| all.negatives.contains(n)), "{drawn:?}");
        assert!(drawn.negatives.windows(2).all(|w| w[0].1.rank < w[1].1.rank));
    }
    assert_eq!(
        mine(Sampling::Random { seed: 3 }),
        draws[3],
        "a seed draws the same negatives"
    );
    let top = mine(Sampling::Top);
    assert_eq!(top.negatives, all.negatives[..3]);
    assert!(
        draws.iter().any(|d| d.negatives != top.negatives),
        "eight draws of 3 among 9 all gave the top 3"
    );
}

#[test]
fn margins_compare_with_the_positives_similarity() {
    let (_dir, c) = collection("margin");
    let model = c.dense_model().unwrap();
    let (q, d) = ("why do the tides rise and fall", DOCS[0].1);
    let e = model.encode(&[q, d]).unwrap();
    let positive = model.similarity(&e, &e).unwrap()[0][1];
    let options = MiningOptions {
        retriever: Some(Retriever::Dense),
        absolute_margin: Some(0.2),
        num_negatives: 9,
        ..Default::default()
    };
    let mined = &mine_hard_negatives(&c, &query(), &options).unwrap()[0];
    assert!(!mined.negatives.is_empty());
    assert!(
        mined.negatives.iter().all(|(_, s)| s.score <= positive - 0.2 + 1e-6),
        "{positive} {mined:?}"
    );
    let unfiltered = MiningOptions {
        absolute_margin: None,
        ..options.clone()
    };
    let all = &mine_hard_negatives(&c, &query(), &unfiltered).unwrap()[0];
    let expected: Vec<_> = all
        .negatives
        .iter()
        .filter(|(_, s)| s.score <= positive - 0.2)
        .cloned()
        .collect();
    assert_eq!(mined.negatives, expected);
    let relative = MiningOptions {
        absolute_margin: None,
        relative_margin: Some(0.5),
        ..options.clone()
    };
    let mined = &mine_hard_negatives(&c, &query(), &relative).unwrap()[0];
    assert!(mined.negatives.iter().all(|(_, s)| s.score <= positive * 0.5 + 1e-6));

    let err = |options: MiningOptions, queries: Vec<(String, Vec<String>)>| {
        mine_hard_negatives(&c, &queries, &options).unwrap_err()
    };
    let hybrid_margin = MiningOptions {
        retriever: None,
        ..options.clone()
    };
    assert!(matches!(err(hybrid_margin, query()), TrainError::InvalidOption(m) if m.contains("Retriever::Dense")));
    let empty_range = MiningOptions {
        range_min: 5,
        range_max: 5,
        ..Default::default()
    };
    assert!(
        err(empty_range, query())
            .to_string()
            .contains("range_min (5) must be below range_max (5)")
    );
    let unknown = vec![("tides".to_string(), vec!["no-such-doc".to_string()])];
    assert!(
        err(options, unknown)
            .to_string()
            .contains("\"no-such-doc\" is not in the collection")
    );
}

#[test]
fn scifact_training_pairs_leave_the_dev_queries_out() {
    let shared = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let scifact = shared.join("data/scifact");
    let (train, dev) = (scifact.join("qrels/train.tsv"), scifact.join("qrels/dev.tsv"));
    let pairs = beir_pairs(&scifact, &train, Some(&dev)).unwrap();
    let dev_queries: std::collections::BTreeSet<String> = std::fs::read_to_string(&dev)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split('\t').next().unwrap().to_string())
        .collect();
    let judged: Vec<(String, String)> = std::fs::read_to_string(&train)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols[0].to_string(), cols[1].to_string())
        })
        .filter(|(q, _)| !dev_queries.contains(q))
        .collect();
    assert_eq!(dev_queries.len(), 161);
    assert!(pairs.queries.keys().all(|q| !dev_queries.contains(q)));
    assert_eq!(pairs.pairs().len(), judged.len());
    assert_eq!(pairs.queries().len(), pairs.queries.len());
    let (q, d) = &judged[0];
    assert!(pairs.positives[q].contains(d));
    assert!(
        pairs
            .pairs()
            .iter()
            .any(|p| p.anchor == pairs.queries[q] && p.positive == pairs.corpus[d])
    );
}
