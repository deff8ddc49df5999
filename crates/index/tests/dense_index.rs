//! Dense retrieval: HNSW against exact search on ann-benchmarks' random-xs-20; deletes, filters,
//! persistence and bad input. (HNSW on SciFact's all-MiniLM-L6-v2 vectors needs the encoder to
//! make them, so that check lives in the workspace's `tests/dense_index.rs`.)

mod common;

use common::ann;
use sieve_index::{AllowSet, DenseIndex, DocId, FlatIndex, HnswIndex, HnswParams, IndexError, Metric, SearchParams};

const K: usize = 10;

fn deterministic() -> HnswParams {
    HnswParams {
        parallel_insert: false,
        ..HnswParams::default()
    }
}

fn build<I: DenseIndex>(mut index: I, rows: &[Vec<f32>]) -> I {
    let points: Vec<(DocId, &[f32])> = rows
        .iter()
        .enumerate()
        .map(|(i, v)| (i as DocId, v.as_slice()))
        .collect();
    index.insert(&points).expect("insert");
    index
}

fn ids(index: &dyn DenseIndex, queries: &[Vec<f32>], k: usize, filter: Option<&AllowSet>) -> Vec<Vec<u32>> {
    queries
        .iter()
        .map(|q| {
            index
                .search(q, k, &SearchParams::default(), filter)
                .expect("search")
                .iter()
                .map(|h| h.id)
                .collect()
        })
        .collect()
}

fn tempdir(name: &str) -> common::ScratchDir {
    common::ScratchDir::new(&format!("dense-{name}"))
}

#[test]
fn random_xs_20_recall_at_defaults_euclidean_and_angular() {
    let train = ann::fvecs("train.fvecs");
    let test = ann::fvecs("test.fvecs");
    for (metric, truth_file) in [
        (Metric::Euclidean, "gt_euclidean_top100.ivecs"),
        (Metric::Cosine, "gt_angular_top100.ivecs"),
    ] {
        let truth = ann::ivecs(truth_file);
        let hnsw = build(HnswIndex::new(20, metric, deterministic()).unwrap(), &train);
        assert!(hnsw.has_graph());
        let recall = ann::recall_at(K, &ids(&hnsw, &test, K, None), &truth);
        // The exact index must reproduce the ground truth itself (this checks our reading of it).
        let flat = build(FlatIndex::new(20, metric), &train);
        let exact = ann::recall_at(K, &ids(&flat, &test, K, None), &truth);
        println!("{metric:?}: HNSW recall@10 {recall:.4}, flat {exact:.4}");
        assert!(
            exact > 0.999,
            "{metric:?}: flat search disagrees with the ground truth: {exact}"
        );
        assert!(recall >= 0.98, "{metric:?}: HNSW recall@10 {recall} < 0.98");
    }
}

#[test]
fn deleting_ten_percent_never_returns_deleted_ids_and_recall_holds() {
    let train = ann::fvecs("train.fvecs");
    let test = ann::fvecs("test.fvecs");
    let mut hnsw = build(HnswIndex::new(20, Metric::Euclidean, deterministic()).unwrap(), &train);
    let mut flat = build(FlatIndex::new(20, Metric::Euclidean), &train);
    let deleted: Vec<DocId> = (0..train.len() as DocId).filter(|i| i % 10 == 3).collect();
    assert_eq!(hnsw.remove(&deleted), deleted.len());
    assert_eq!(flat.remove(&deleted), deleted.len());
    assert_eq!(hnsw.len(), train.len() - deleted.len());
    assert!(hnsw.tombstones() > 0, "deletes are tombstones until compaction");

    let found = ids(&hnsw, &test, K, None);
    for hits in &found {
        assert_eq!(hits.len(), K);
        assert!(hits.iter().all(|id| id % 10 != 3), "a deleted id came back: {hits:?}");
    }
    let recall = ann::recall_at(K, &found, &ids(&flat, &test, K, None));
    println!("after deleting 10%: recall@10 {recall:.4}");
    assert!(recall >= 0.98, "recall after deletes {recall}");

    hnsw.compact();
    assert_eq!(hnsw.tombstones(), 0);
    let recall = ann::recall_at(K, &ids(&hnsw, &test, K, None), &ids(&flat, &test, K, None));
    assert!(recall >= 0.98, "recall after compaction {recall}");
}

#[test]
fn filtered_search_returns_k_allowed_hits() {
    let train = ann::fvecs("train.fvecs");
    let test = &ann::fvecs("test.fvecs")[..200];
    let hnsw = build(HnswIndex::new(20, Metric::Cosine, deterministic()).unwrap(), &train);
    let flat = build(FlatIndex::new(20, Metric::Cosine), &train);
    // 30% (graph path), 2% (exact path below flat_threshold) and 15 documents.
    for modulus in [3u32, 50, 600] {
        let allow: AllowSet = (0..train.len() as u32).filter(|i| i % modulus == 1).collect();
        let found = ids(&hnsw, test, K, Some(&allow));
        for hits in &found {
            assert_eq!(hits.len(), K.min(allow.len() as usize), "filter 1/{modulus}");
            assert!(hits.iter().all(|id| allow.contains(*id)));
        }
        let recall = ann::recall_at(K, &found, &ids(&flat, test, K, Some(&allow)));
        println!("filter 1/{modulus}: recall@10 {recall:.4}");
        assert!(recall >= 0.95, "filtered recall {recall} at 1/{modulus}");
    }
    let nothing = AllowSet::new();
    assert!(
        hnsw.search(&test[0], K, &SearchParams::default(), Some(&nothing))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn save_then_load_gives_identical_results_and_survives_a_lost_graph() {
    let train = ann::fvecs("train.fvecs");
    let test = &ann::fvecs("test.fvecs")[..100];
    let mut hnsw = build(HnswIndex::new(20, Metric::Euclidean, deterministic()).unwrap(), &train);
    hnsw.remove(&[1, 2, 3]);
    let dir = tempdir("save");
    hnsw.save(&dir).unwrap();
    let before: Vec<_> = test
        .iter()
        .map(|q| hnsw.search(q, K, &SearchParams::default(), None).unwrap())
        .collect();

    let loaded = HnswIndex::load(&dir).unwrap();
    assert!(loaded.graph_loaded_from_dump());
    assert_eq!(loaded.len(), hnsw.len());
    let after: Vec<_> = test
        .iter()
        .map(|q| loaded.search(q, K, &SearchParams::default(), None).unwrap())
        .collect();
    assert_eq!(before, after, "reloaded index answers differently");

    // Saving again replaces the generation and leaves exactly one set of files.
    loaded.save(&dir).unwrap();
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with("vectors.")).count(),
        1,
        "{names:?}"
    );

    // A damaged graph dump is rebuilt from the saved vectors.
    let graph = names.iter().find(|n| n.ends_with(".hnsw.graph")).unwrap();
    let path = dir.join(graph);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let rebuilt = HnswIndex::load(&dir).unwrap();
    assert!(!rebuilt.graph_loaded_from_dump());
    let recall = ann::recall_at(K, &ids(&rebuilt, test, K, None), &ids(&hnsw, test, K, None));
    assert!(recall >= 0.98, "rebuilt graph recall {recall}");

    // A damaged vector file is an error, never a panic.
    let vectors = names.iter().find(|n| n.starts_with("vectors.")).unwrap();
    let path = dir.join(vectors);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    assert!(matches!(HnswIndex::load(&dir), Err(IndexError::Corrupt { .. })));
}

#[test]
fn loading_foreign_or_missing_files_is_an_error() {
    let dir = tempdir("foreign");
    assert!(matches!(HnswIndex::load(&dir), Err(IndexError::NotFound { .. })));
    assert!(matches!(FlatIndex::load(&dir), Err(IndexError::NotFound { .. })));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hnsw.manifest"),
        b"this is not an index at all, just some text",
    )
    .unwrap();
    std::fs::write(dir.join("flat.vectors"), [0u8; 3]).unwrap();
    assert!(matches!(HnswIndex::load(&dir), Err(IndexError::Corrupt { .. })));
    assert!(matches!(FlatIndex::load(&dir), Err(IndexError::Corrupt { .. })));
}

#[test]
fn flat_index_round_trips_through_disk() {
    let train = ann::fvecs("train.fvecs");
    let flat = build(FlatIndex::new(20, Metric::Dot), &train[..500]);
    let dir = tempdir("flat");
    flat.save(&dir).unwrap();
    let loaded = FlatIndex::load(&dir).unwrap();
    let q = &train[600];
    let p = SearchParams::default();
    assert_eq!(
        flat.search(q, 7, &p, None).unwrap(),
        loaded.search(q, 7, &p, None).unwrap()
    );
}

#[test]
fn bad_input_gives_typed_errors_and_empty_cases_give_empty_results() {
    let p = SearchParams::default();
    for index in [
        Box::new(HnswIndex::new(3, Metric::Cosine, HnswParams::default()).unwrap()) as Box<dyn DenseIndex>,
        Box::new(FlatIndex::new(3, Metric::Cosine)),
    ] {
        let mut index = index;
        assert!(
            index.search(&[1.0, 0.0, 0.0], 5, &p, None).unwrap().is_empty(),
            "empty index"
        );
        assert!(matches!(
            index.insert(&[(1, &[1.0, 2.0][..])]),
            Err(IndexError::DimensionMismatch { expected: 3, found: 2 })
        ));
        let err = index
            .insert(&[(1, &[1.0, 2.0, 3.0][..]), (2, &[1.0, f32::NAN, 3.0][..])])
            .unwrap_err();
        assert!(matches!(err, IndexError::NonFinite { position: 1, .. }), "{err}");
        assert!(index.is_empty(), "a rejected batch inserts nothing");
        index.insert(&[(1, &[1.0, 2.0, 3.0][..])]).unwrap();
        assert!(index.search(&[1.0, 0.0, 0.0], 0, &p, None).unwrap().is_empty(), "k = 0");
        assert!(matches!(
            index.search(&[1.0, 0.0], 1, &p, None),
            Err(IndexError::DimensionMismatch { .. })
        ));
        assert!(matches!(
            index.search(&[f32::INFINITY, 0.0, 0.0], 1, &p, None),
            Err(IndexError::NonFinite { .. })
        ));
    }
    assert!(matches!(
        HnswIndex::new(
            3,
            Metric::Cosine,
            HnswParams {
                m: 1000,
                ..Default::default()
            }
        ),
        Err(IndexError::InvalidParameter(_))
    ));
    assert!(matches!(
        HnswIndex::new(0, Metric::Cosine, HnswParams::default()),
        Err(IndexError::InvalidParameter(_))
    ));
    for (ef_construction, ef_search) in [(usize::MAX, 100), (200, usize::MAX), (200, 0)] {
        let params = HnswParams {
            ef_construction,
            ef_search,
            ..Default::default()
        };
        let err = HnswIndex::new(3, Metric::Cosine, params).expect_err("out of range");
        assert!(err.to_string().contains("ef_search must be in 1..=100000"), "{err}");
    }
}

/// A per-query ef far beyond the index (up to `usize::MAX`) panicked or aborted inside hnsw_rs;
/// it is bounded by the index size and gives the exact answer.
#[test]
fn an_unbounded_ef_search_is_clamped_to_the_index() {
    let rows = ann::fvecs("train.fvecs");
    let rows = &rows[..2_000];
    let params = HnswParams {
        flat_threshold: 0,
        ..deterministic()
    };
    let index = build(HnswIndex::new(rows[0].len(), Metric::Euclidean, params).unwrap(), rows);
    let exact = build(FlatIndex::new(rows[0].len(), Metric::Euclidean), rows);
    for ef in [rows.len() + 1, 1 << 40, usize::MAX] {
        let wide = SearchParams {
            ef_search: Some(ef),
            ..SearchParams::default()
        };
        for (k, query) in [(K, &rows[7]), (usize::MAX, &rows[8])] {
            let hits = index.search(query, k, &wide, None).expect("search");
            let want = exact.search(query, k, &SearchParams::default(), None).unwrap();
            assert_eq!(hits.len(), want.len().min(rows.len()));
            let ids = |h: &[sieve_index::Hit]| h.iter().take(K).map(|h| h.id).collect::<Vec<_>>();
            assert_eq!(ids(&hits), ids(&want), "ef {ef}, k {k}: the full-width search is exact");
        }
    }
}

#[test]
fn dot_metric_on_unnormalised_vectors_matches_exact_search() {
    // Inner-product search is not a metric space; the graph must still rank well.
    let train: Vec<Vec<f32>> = ann::fvecs("train.fvecs")
        .into_iter()
        .map(|v| v.iter().map(|x| x * 0.1).collect())
        .collect();
    let test: Vec<Vec<f32>> = ann::fvecs("test.fvecs")[..200]
        .iter()
        .map(|v| v.iter().map(|x| x * 0.1).collect())
        .collect();
    let hnsw = build(HnswIndex::new(20, Metric::Dot, deterministic()).unwrap(), &train);
    let flat = build(FlatIndex::new(20, Metric::Dot), &train);
    let recall = ann::recall_at(K, &ids(&hnsw, &test, K, None), &ids(&flat, &test, K, None));
    println!("dot: recall@10 {recall:.4}");
    assert!(recall >= 0.9, "dot recall {recall}");
    let q = &test[0];
    let p = SearchParams::default();
    let (a, b) = (
        hnsw.search(q, 1, &p, None).unwrap(),
        flat.search(q, 1, &p, None).unwrap(),
    );
    assert_eq!(a[0].score, b[0].score, "scores are exact, not graph distances");
}

#[test]
fn upsert_replaces_the_vector() {
    let mut hnsw = HnswIndex::new(
        2,
        Metric::Cosine,
        HnswParams {
            flat_threshold: 0,
            ..deterministic()
        },
    )
    .unwrap();
    hnsw.insert(&[(1, &[1.0, 0.0][..]), (2, &[0.0, 1.0][..])]).unwrap();
    hnsw.insert(&[(1, &[0.0, 1.0][..])]).unwrap();
    assert_eq!(hnsw.len(), 2);
    let hits = hnsw.search(&[1.0, 0.0], 2, &SearchParams::default(), None).unwrap();
    assert_eq!(
        hits.iter().map(|h| (h.id, h.score)).collect::<Vec<_>>(),
        [(1, 0.0), (2, 0.0)]
    );
}

/// Re-indexing a changed folder upserts every chunk again: the replaced vectors are
/// tombstones, and used to pile up without bound (RAM and disk).
#[test]
fn repeated_upserts_keep_the_graph_bounded() {
    let rows = ann::fvecs("train.fvecs");
    let rows = &rows[..1_500];
    let mut index = build(
        HnswIndex::new(rows[0].len(), Metric::Euclidean, deterministic()).unwrap(),
        rows,
    );
    let mut worst = 0;
    for round in 0..6 {
        // The same ids with their vectors reversed: every document changes.
        let points: Vec<(DocId, &[f32])> = rows
            .iter()
            .rev()
            .enumerate()
            .map(|(i, v)| (i as DocId, v.as_slice()))
            .collect();
        index.insert(&points).unwrap();
        worst = worst.max(index.tombstones());
        assert_eq!(index.len(), rows.len(), "round {round}");
        assert!(
            index.tombstones() <= index.len(),
            "round {round}: {} tombstones",
            index.tombstones()
        );
    }
    assert!(worst > 0, "upserts leave tombstones until a compaction");
    let dir = tempdir("upserts");
    index.save(&dir).unwrap();
    let loaded = HnswIndex::load(&dir).unwrap();
    assert!(loaded.tombstones() <= loaded.len());
    // Still finds each vector under its new id.
    let hits = loaded.search(&rows[0], 1, &SearchParams::default(), None).unwrap();
    assert_eq!(hits[0].id, (rows.len() - 1) as DocId);
}
