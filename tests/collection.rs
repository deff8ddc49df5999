//! The Collection as users hold it: create, write, read, search, reopen, bad input.
//! Most tests use the tiny fixture models (real model folders, random weights) for speed;
//! `real_models_*` use all-MiniLM-L6-v2, splade-tiny and the cross-encoder.

mod common;

use serde_json::json;
use sieve::engine::{Collection, CollectionConfig, Document, EngineError, Filter, Rerank, Retriever};
use sieve::{Device, EncoderError, LoadOptions};

fn tempdir(name: &str) -> common::ScratchDir {
    common::ScratchDir::new(&format!("collection-{name}"))
}

/// Dense + sparse + BM25 on the tiny fixtures, no reranker.
fn tiny() -> CollectionConfig {
    common::tiny_collection_config()
}

fn docs(range: std::ops::Range<usize>) -> Vec<Document> {
    range
        .map(|i| {
            let colour = ["red", "green", "blue"][i % 3];
            Document::new(
                format!("doc-{i}"),
                format!("document number {i} about topic {} and colour {colour}", i % 7),
            )
            .with_metadata(json!({"n": i, "topic": i % 7, "colour": colour}))
        })
        .collect()
}

#[test]
fn create_add_get_upsert_delete_and_reopen() {
    let dir = tempdir("crud");
    let c = Collection::create(&dir, tiny()).unwrap();
    let mut stages = Vec::new();
    let report = c.add_with_progress(docs(0..50), &mut |p| stages.push(p.stage)).unwrap();
    assert_eq!(report.added, 50);
    assert!(
        stages.contains(&"dense") && stages.contains(&"sparse") && stages.contains(&"store"),
        "{stages:?}"
    );
    assert_eq!(c.len(), 50);
    let doc = c.get("doc-7").unwrap().unwrap();
    assert_eq!(doc.metadata["n"], 7);
    assert!(doc.text.contains("number 7"));
    assert!(c.get("nope").unwrap().is_none());

    match c.add(docs(49..51)) {
        Err(EngineError::DuplicateId { id }) => assert_eq!(id, "doc-49"),
        other => panic!("expected DuplicateId, got {other:?}"),
    }
    assert_eq!(c.len(), 50, "a refused add writes nothing");
    assert!(matches!(
        c.add(vec![Document::new("x", "a"), Document::new("x", "b")]),
        Err(EngineError::RepeatedId { .. })
    ));

    let report = c
        .upsert(vec![
            Document::new("doc-7", "seven, rewritten"),
            Document::new("doc-50", "new"),
        ])
        .unwrap();
    assert_eq!((report.added, report.replaced), (1, 1));
    assert_eq!(c.get("doc-7").unwrap().unwrap().text, "seven, rewritten");
    assert_eq!(c.delete(&["doc-1", "doc-2", "missing", "doc-1"]).unwrap(), 2);
    assert_eq!(c.len(), 49);
    let info = c.info().unwrap();
    assert_eq!((info.dense, info.sparse, info.text), (Some(49), Some(49), Some(49)));
    drop(c);

    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.len(), 49);
    assert_eq!(c.config(), &tiny());
    assert!(c.get("doc-1").unwrap().is_none());
    assert_eq!(c.get("doc-7").unwrap().unwrap().text, "seven, rewritten");
    let info = c.info().unwrap();
    assert_eq!(
        (info.documents, info.dense, info.sparse, info.text),
        (49, Some(49), Some(49), Some(49))
    );
    let ids: Vec<String> = c.iter().map(|d| d.unwrap().id).collect();
    assert_eq!(ids.len(), 49);
    let hits = c.search("rewritten").bm25().run().unwrap();
    assert_eq!(hits[0].id, "doc-7");
}

#[test]
fn indexes_catch_up_when_their_saved_state_is_stale_or_missing() {
    let dir = tempdir("catchup");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..30)).unwrap();
    c.checkpoint().unwrap();
    c.add(docs(30..40)).unwrap();
    c.delete(&["doc-3"]).unwrap();
    // Simulate a crash: no checkpoint on drop.
    std::mem::forget(c);
    // forget() keeps the lock file open in this process; release it the way a dead process would.
    let (c, dir) = reopen_after_forget(&dir);
    let info = c.info().unwrap();
    assert!(info.sequence > 0);
    assert_eq!(
        (info.documents, info.dense, info.sparse, info.text),
        (39, Some(39), Some(39), Some(39))
    );
    assert_eq!(c.search("number 35").bm25().top_k(1).run().unwrap()[0].id, "doc-35");
    // The catch-up was saved at once: a crash now would not make the next open redo it.
    assert_eq!(
        ["dense", "sparse", "text"].map(|name| marker(&dir, name)),
        [info.sequence; 3]
    );
    drop(c);

    // Lose the saved dense and sparse indexes entirely: rebuilt from the store.
    std::fs::remove_dir_all(dir.join("indexes/dense")).unwrap();
    std::fs::write(dir.join("indexes/sparse/sparse.vectors"), b"garbage").ok();
    std::fs::remove_dir_all(dir.join("indexes/text")).unwrap();
    let c = Collection::open(&dir).unwrap();
    let info = c.info().unwrap();
    assert_eq!((info.dense, info.sparse, info.text), (Some(39), Some(39), Some(39)));
    assert!(c.search("doc").dense().run().unwrap().iter().all(|h| h.id != "doc-3"));
}

/// `mem::forget` leaves the lock held by this process's open file, where a real crash would
/// have the OS release it: open a copy of the directory instead (files as the crash left them).
fn reopen_after_forget(dir: &std::path::Path) -> (Collection, common::ScratchDir) {
    let copy = dir.with_extension("copy");
    assert_ne!(copy, dir, "a copy of a copy would remove its source");
    let copy = common::ScratchDir::at(copy);
    copy_dir(dir, &copy);
    (Collection::open(&copy).unwrap(), copy)
}

use common::{copy_dir, snapshot_dir};

#[test]
fn filters_apply_inside_every_retriever() {
    let dir = tempdir("filters");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..300)).unwrap();
    let cases = [
        (Filter::eq("colour", "red"), 100),
        (Filter::is_in("topic", [1, 2]), 86),
        (Filter::range("n").gte(10.0).and(Filter::range("n").lt(25.0)), 15),
        (Filter::eq("colour", "blue").and(Filter::eq("topic", 3)), 14),
        (Filter::exists("n").and(Filter::eq("n", 299).not()), 299),
    ];
    for (filter, matching) in cases {
        for retriever in [Retriever::Dense, Retriever::Sparse, Retriever::Bm25] {
            let hits = c
                .search("document topic colour number")
                .retrievers(&[retriever])
                .filter(filter.clone())
                .top_k(12)
                .run()
                .unwrap();
            assert_eq!(hits.len(), 12.min(matching), "{retriever:?} {filter:?}");
            assert!(
                hits.iter().all(|h| filter.matches(&h.metadata)),
                "{retriever:?} returned a filtered-out document"
            );
        }
        let hybrid = c
            .search("document topic colour number")
            .filter(filter.clone())
            .top_k(12)
            .run()
            .unwrap();
        assert_eq!(hybrid.len(), 12.min(matching));
    }
}

/// A model that outputs infinity: its weights were written by hand or went bad in training. An
/// infinite sparse weight used to be stored, after which every rebuild of the sparse index
/// failed and the collection never opened again.
#[test]
fn a_model_that_outputs_infinity_is_refused_before_anything_is_written() {
    let models = tempdir("inf-models");
    let (dense, sparse) = (models.join("dense"), models.join("sparse"));
    copy_dir(&common::fixture("bert-st-mean-norm"), &dense);
    copy_dir(&common::fixture("bert-splade"), &sparse);
    common::fill_tensor(&sparse.join("model.safetensors"), "cls.predictions.bias", f32::INFINITY);
    let config = |sparse: &std::path::Path| CollectionConfig {
        sparse: Some(sparse.to_string_lossy().into_owned()),
        ..tiny()
    };
    let dir = tempdir("inf");
    let c = Collection::create(&dir, config(&sparse)).unwrap();
    let err = c
        .add(docs(0..3))
        .expect_err("an infinite sparse weight must be refused");
    assert!(
        matches!(&err, EngineError::NonFinite { model: "sparse", id } if id == "doc-0" || id == "doc-1" || id == "doc-2"),
        "{err:?}"
    );
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert_eq!(c.len(), 0, "nothing of the call is stored");
    assert!(c.get("doc-0").unwrap().is_none());
    drop(c);
    // The collection still opens (with its models as configured) and takes good documents.
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.len(), 0);
    drop(c);

    // The same for the dense model.
    common::fill_tensor(
        &dense.join("model.safetensors"),
        "embeddings.LayerNorm.weight",
        f32::INFINITY,
    );
    let dir = tempdir("inf-dense");
    let c = Collection::create(
        &dir,
        CollectionConfig {
            dense: Some(dense.to_string_lossy().into_owned()),
            ..tiny()
        },
    )
    .unwrap();
    let err = c
        .add(docs(0..3))
        .expect_err("a non-finite dense vector must be refused");
    assert!(matches!(&err, EngineError::NonFinite { model: "dense", .. }), "{err:?}");
    assert_eq!(c.len(), 0);
}

/// Several creators of one path at once (threads here; the lock is a file lock, so threads
/// race as processes do): exactly one succeeds, whichever finishes first. The checks used to
/// run before the lock only, so a creator that loaded its models slowly could take the lock
/// after the winner had closed and write its schema over the winner's collection.
#[test]
fn concurrent_creates_of_one_path_make_one_collection() {
    for round in 0..3 {
        let dir = tempdir(&format!("race-{round}"));
        let barrier = std::sync::Barrier::new(4);
        let outcomes: Vec<Result<(), EngineError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|i| {
                    let (dir, barrier) = (&dir, &barrier);
                    scope.spawn(move || {
                        barrier.wait();
                        let c = Collection::create(dir, tiny())?;
                        c.add(vec![Document::new(
                            format!("winner-{i}"),
                            "the first creator's document",
                        )])?;
                        Ok(())
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let won = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(won, 1, "round {round}: {outcomes:?}");
        for outcome in &outcomes {
            if let Err(e) = outcome {
                assert!(
                    matches!(e, EngineError::AlreadyExists { .. } | EngineError::Locked { .. }),
                    "round {round}: {e:?}"
                );
            }
        }
        let c = Collection::open(&dir).unwrap();
        assert_eq!(c.len(), 1, "the winner's document is there");
    }
}

/// A panic inside a write (here the caller's progress callback, once the documents are stored
/// and indexed) used to leave poisoned locks that later writes reused, and `Drop` saved the
/// indexes while unwinding. Now writes are refused until a reopen; reads go on.
#[test]
fn after_a_panic_in_a_write_reads_go_on_and_writes_wait_for_a_reopen() {
    let dir = tempdir("panic");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..10)).unwrap();
    c.checkpoint().unwrap();
    let marker = std::fs::read_to_string(dir.join("indexes/dense.seq")).unwrap();
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.add_with_progress(docs(10..20), &mut |p| {
            if p.stage == "store" && p.done == p.total {
                panic!("the caller's callback panics");
            }
        })
    }));
    assert!(panicked.is_err());
    for result in [
        c.add(docs(20..21)).map(|_| ()),
        c.upsert(docs(0..1)).map(|_| ()),
        c.delete(&["doc-1"]).map(|_| ()),
        c.checkpoint(),
    ] {
        let err = result.expect_err("writes are refused after a panic");
        assert!(matches!(err, EngineError::Poisoned { .. }), "{err:?}");
        assert!(err.to_string().contains("reopen"), "{err}");
    }
    assert_eq!(c.len(), 20, "the panicking write was stored before the panic");
    assert_eq!(c.search("number 15").bm25().top_k(1).run().unwrap()[0].id, "doc-15");
    drop(c);
    let after = std::fs::read_to_string(dir.join("indexes/dense.seq")).unwrap();
    assert_eq!(after, marker, "drop saved nothing after the panic");

    // Reopened: the store is the truth, the indexes catch up, writes work again.
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.len(), 20);
    c.add(docs(20..21)).unwrap();
    assert_eq!(c.search("number 20").bm25().top_k(1).run().unwrap()[0].id, "doc-20");
}

/// A collection folder from someone else: `indexes/` (or an index inside it) is a link to a
/// folder outside. Rebuilding the text index used to delete through the link.
#[test]
fn links_in_a_collection_folder_never_lead_deletes_outside_it() {
    let dir = tempdir("symlinks");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..5)).unwrap();
    c.close().unwrap();
    let outside = tempdir("symlinks-outside");
    for victim in ["text", "dense", "sparse"] {
        std::fs::create_dir_all(outside.join(victim)).unwrap();
        std::fs::write(outside.join(victim).join("precious.txt"), "keep me").unwrap();
    }
    let check_outside = || {
        for victim in ["text", "dense", "sparse"] {
            let kept = std::fs::read_to_string(outside.join(victim).join("precious.txt"));
            assert_eq!(kept.ok().as_deref(), Some("keep me"), "{victim}");
            assert_eq!(
                std::fs::read_dir(outside.join(victim)).unwrap().count(),
                1,
                "{victim}: nothing written"
            );
        }
    };

    // The whole indexes folder.
    std::fs::rename(dir.join("indexes"), dir.join("indexes.old")).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join("indexes")).unwrap();
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.search("number 3").bm25().top_k(1).run().unwrap()[0].id, "doc-3");
    assert!(
        !std::fs::symlink_metadata(dir.join("indexes"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    c.close().unwrap();
    check_outside();

    // One index inside it.
    for victim in ["text", "dense", "sparse"] {
        std::fs::remove_dir_all(dir.join("indexes").join(victim)).unwrap();
        std::os::unix::fs::symlink(outside.join(victim), dir.join("indexes").join(victim)).unwrap();
    }
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.info().unwrap().text, Some(5));
    assert_eq!(c.search("number 4").dense().top_k(5).run().unwrap().len(), 5);
    c.close().unwrap();
    check_outside();
}

/// Model folders are stored as absolute paths, so opening from another working directory
/// loads the same models (a relative name used to resolve against the current directory).
#[test]
fn model_folders_are_stored_as_absolute_paths() {
    let dir = tempdir("model-paths");
    // The fixtures named the long way round.
    let roundabout = |name: &str| {
        let path = common::fixture(name).join("..").join(name);
        Some(path.to_str().unwrap().to_string())
    };
    let config = CollectionConfig {
        dense: roundabout("bert-st-mean-norm"),
        sparse: roundabout("bert-splade"),
        ..tiny()
    };
    let c = Collection::create(&dir, config.clone()).unwrap();
    let stored = c.config().clone();
    for (given, kept) in [(&config.dense, &stored.dense), (&config.sparse, &stored.sparse)] {
        let kept = kept.as_deref().unwrap();
        assert!(std::path::Path::new(kept).is_absolute(), "{kept}");
        assert_ne!(given.as_deref(), Some(kept));
        assert_eq!(
            std::fs::canonicalize(given.as_deref().unwrap()).unwrap(),
            std::path::Path::new(kept)
        );
    }
    drop(c);
    assert_eq!(Collection::open(&dir).unwrap().config().dense, stored.dense);
}

fn marker(dir: &std::path::Path, index: &str) -> u64 {
    let text = std::fs::read_to_string(dir.join(format!("indexes/{index}.seq"))).unwrap();
    text.trim().parse().unwrap()
}

/// An index that fails after the store has committed a write (here the BM25 folder vanishes
/// under the open collection, so tantivy cannot commit): the call used to return an error for
/// a durable write, every later write failed the same way, and the next checkpoint moved the
/// marker past the entries the index never got.
#[test]
fn an_index_failure_after_the_store_commit_leaves_the_write_durable_and_the_index_rebuilt() {
    let dir = tempdir("index-failure");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..5)).unwrap();
    c.checkpoint().unwrap();
    let text_marker = marker(&dir, "text");
    std::fs::remove_dir_all(dir.join("indexes/text")).unwrap();

    let report = c.add(docs(5..10)).expect("the store has it: the write succeeds");
    assert_eq!(report.added, 5);
    assert_eq!(report.stale, [Retriever::Bm25], "{report:?}");
    let report = c.upsert(docs(8..12)).expect("later writes go on");
    assert_eq!((report.added, report.replaced), (2, 2));
    assert_eq!(report.stale, [Retriever::Bm25]);
    assert_eq!(c.delete(&["doc-0"]).unwrap(), 1);
    assert_eq!(c.info().unwrap().stale, [Retriever::Bm25]);
    assert_eq!(c.get("doc-11").unwrap().unwrap().text, docs(11..12)[0].text);
    assert_eq!(c.search("number 11").dense().top_k(20).run().unwrap().len(), 11);
    c.checkpoint().unwrap();
    assert_eq!(
        marker(&dir, "text"),
        text_marker,
        "the stale index's marker did not move"
    );
    assert!(marker(&dir, "dense") > text_marker);
    drop(c);

    let c = Collection::open(&dir).unwrap();
    let info = c.info().unwrap();
    assert!(info.stale.is_empty(), "{info:?}");
    assert_eq!((info.documents, info.text), (11, Some(11)));
    assert_eq!(c.search("number 11").bm25().top_k(1).run().unwrap()[0].id, "doc-11");
    assert!(
        c.search("number 0")
            .bm25()
            .run()
            .unwrap()
            .iter()
            .all(|h| h.id != "doc-0")
    );
}

/// With buffered writes BM25 used to commit inside every write while the store's batch was
/// still in memory: after a crash it held documents the store never got. Now it commits only
/// after a store flush (a checkpoint, or a search or `info` that needs it).
#[test]
fn buffered_writes_never_put_bm25_ahead_of_the_store() {
    use sieve::engine::Durability;
    let dir = tempdir("buffered");
    let c = Collection::create(
        &dir,
        CollectionConfig {
            durability: Durability::Buffered,
            ..tiny()
        },
    )
    .unwrap();
    c.add(docs(0..5)).unwrap();
    c.checkpoint().unwrap();
    c.add(docs(5..10)).unwrap();
    c.delete(&["doc-1"]).unwrap();
    // What a crash right now would leave of BM25 on disk: the last checkpoint only.
    let committed = |tag: &str| {
        let copy = common::ScratchDir::at(dir.with_extension(tag));
        snapshot_dir(&dir.join("indexes/text"), &copy);
        let index = sieve::index::TextIndex::open(&copy).unwrap();
        let ids = |q: &str| index.search(q, 100, None).unwrap().len();
        (index.len(), ids("number"))
    };
    assert_eq!(committed("crash-1"), (5, 5), "nothing past the last store flush");
    // A search reads its own writes: the store is flushed, then BM25 commits.
    let hits = c.search("number 7").bm25().top_k(1).run().unwrap();
    assert_eq!(hits[0].id, "doc-7");
    assert_eq!(committed("crash-2"), (9, 9));
    drop(c);
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.info().unwrap().text, Some(9));
}

/// A `create` killed before it wrote the marker leaves a lock file and an empty store: neither
/// a collection nor a foreign folder. The next `create` takes it over; one whose store holds
/// documents is refused instead (that is damage, not an interrupted create).
#[test]
fn an_interrupted_create_is_taken_over_by_the_next() {
    let dir = tempdir("interrupted-create");
    Collection::create(&dir, tiny()).unwrap().close().unwrap();
    std::fs::remove_file(dir.join("SIEVE_COLLECTION")).unwrap();
    std::fs::remove_dir_all(dir.join("indexes")).unwrap();
    assert!(!Collection::exists(&dir));
    assert!(matches!(
        Collection::open(&dir),
        Err(EngineError::NotACollection { .. })
    ));
    let c = Collection::create(&dir, tiny()).unwrap();
    assert!(Collection::exists(&dir));
    c.add(docs(0..3)).unwrap();
    drop(c);
    assert_eq!(Collection::open(&dir).unwrap().len(), 3);

    std::fs::remove_file(dir.join("SIEVE_COLLECTION")).unwrap();
    let err = Collection::create(&dir, tiny()).expect_err("an indexes folder: not an interrupted create");
    assert!(matches!(err, EngineError::NotACollection { .. }), "{err:?}");
    std::fs::remove_dir_all(dir.join("indexes")).unwrap();
    let err = Collection::create(&dir, tiny()).expect_err("documents without a marker");
    assert!(err.to_string().contains("holds documents"), "{err}");
}

#[test]
fn bad_input_and_foreign_directories_give_typed_errors() {
    let dir = tempdir("bad");
    let c = Collection::create(&dir, tiny()).unwrap();
    assert!(matches!(c.search("   ").run(), Err(EngineError::InvalidInput(_))));
    assert!(matches!(
        c.search("x").rerank(5).run(),
        Err(EngineError::RetrieverMissing("reranker"))
    ));
    assert!(matches!(
        c.add(vec![Document::new("", "no id")]),
        Err(EngineError::InvalidInput(_))
    ));
    assert!(matches!(
        c.add(vec![Document::new("v", "t").with_dense(vec![1.0; 3])]),
        Err(EngineError::DimensionMismatch {
            expected: 32,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        c.add(vec![Document::new("v", "t").with_dense(vec![f32::NAN; 32])]),
        Err(EngineError::InvalidInput(_))
    ));
    assert!(
        c.search("anything").run().unwrap().is_empty(),
        "empty collection, empty result"
    );

    // A second open of the same collection is refused while the first holds it.
    assert!(matches!(Collection::open(&dir), Err(EngineError::Locked { .. })));
    assert!(matches!(
        Collection::create(&dir, tiny()),
        Err(EngineError::AlreadyExists { .. })
    ));
    drop(c);

    let foreign = tempdir("foreign");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "my precious notes").unwrap();
    assert!(matches!(
        Collection::open(&foreign),
        Err(EngineError::NotACollection { .. })
    ));
    assert!(matches!(
        Collection::create(&foreign, tiny()),
        Err(EngineError::NotACollection { .. })
    ));
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "my precious notes"
    );
    assert!(matches!(
        Collection::open(tempdir("missing")),
        Err(EngineError::NotACollection { .. })
    ));

    // A damaged store: garbage in every sled file.
    let damaged = tempdir("damaged");
    let c = Collection::create(&damaged, tiny()).unwrap();
    c.add(docs(0..5)).unwrap();
    drop(c);
    for entry in std::fs::read_dir(damaged.join("store")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::write(&path, vec![0xA5u8; 4096]).unwrap();
        }
    }
    let result = Collection::open(&damaged);
    assert!(result.is_err(), "opening a damaged store must fail");
}

#[test]
fn a_device_that_cannot_run_is_refused_and_the_collection_stays_usable() {
    if cfg!(feature = "cuda") {
        eprintln!("skipped: this build has the cuda feature, so Device::Cuda may be available");
        return;
    }
    let cuda = LoadOptions {
        device: Device::Cuda(0),
        ..LoadOptions::default()
    };
    // create: refused before anything is written.
    let fresh = tempdir("device-create");
    let err = Collection::create_with(&fresh, tiny(), &cuda).unwrap_err();
    assert!(
        matches!(err, EngineError::Encoder(EncoderError::DeviceUnavailable { .. })) && err.to_string().contains("cuda"),
        "{err}"
    );
    assert!(!fresh.exists(), "a refused create must leave no directory behind");

    // open: refused, the lock released, the data untouched.
    let dir = tempdir("device-open");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..10)).unwrap();
    c.close().unwrap();
    let err = Collection::open_with(&dir, &cuda).unwrap_err();
    assert!(err.to_string().contains("cuda"), "{err}");
    let c = Collection::open_with(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(c.len(), 10);
    assert_eq!(
        c.search("document number 3").bm25().top_k(1).run().unwrap()[0].id,
        "doc-3"
    );
}

#[test]
fn reopening_with_a_model_of_another_dimension_is_refused() {
    let dir = tempdir("dimension");
    let model = tempdir("dimension-model");
    copy_dir(&common::fixture("bert-st-mean-norm"), &model);
    let config = CollectionConfig {
        dense: Some(model.to_string_lossy().into_owned()),
        sparse: None,
        text: false,
        reranker: None,
        ..Default::default()
    };
    let c = Collection::create(&dir, config).unwrap();
    c.add(docs(0..3)).unwrap();
    drop(c);
    // The model folder now holds a model with 384-dimensional output.
    std::fs::remove_dir_all(&model).unwrap();
    let minilm = sieve::encoders::ModelFiles::hub(common::scifact::DENSE_MODEL)
        .unwrap_or_else(|e| panic!("{}: {e}", common::hub_hint()));
    copy_dir(minilm.required("config.json").unwrap().parent().unwrap(), &model);
    match Collection::open(&dir) {
        Err(EngineError::DimensionChanged {
            expected: 32,
            found: 384,
            ..
        }) => {}
        other => panic!("expected DimensionChanged, got {other:?}"),
    }
}

#[test]
fn a_huge_document_is_stored_whole_and_encoded_truncated() {
    let dir = tempdir("huge");
    let c = Collection::create(&dir, tiny()).unwrap();
    let mut text: String = (0..100_000).map(|i| format!("w{} ", i % 50)).collect();
    text.push_str("needle");
    c.add(vec![
        Document::new("big", text.clone()),
        Document::new("small", "w1 w2 w3"),
    ])
    .unwrap();
    assert_eq!(c.get("big").unwrap().unwrap().text, text);
    let hits = c.search("needle").bm25().run().unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].id, "big");
}

#[test]
fn collection_is_send_and_sync_and_serves_readers_while_writing() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Collection>();

    let dir = tempdir("threads");
    let c = std::sync::Arc::new(Collection::create(&dir, tiny()).unwrap());
    c.add(docs(0..100)).unwrap();
    let writer = {
        let c = c.clone();
        std::thread::spawn(move || {
            for round in 0..10 {
                c.add(docs(100 + round * 10..110 + round * 10)).unwrap();
                c.delete(&[format!("doc-{}", round * 3)]).unwrap();
            }
        })
    };
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let c = c.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let hits = c
                        .search(format!("document number {}", t * 20 + i))
                        .top_k(5)
                        .run()
                        .unwrap();
                    assert_eq!(hits.len(), 5);
                }
            })
        })
        .collect();
    writer.join().unwrap();
    readers.into_iter().for_each(|r| r.join().unwrap());
    assert_eq!(c.len(), 100 + 100 - 10);
}

/// Searches from rayon tasks (the pool the encoders' kernels and HNSW's parallel insert also
/// use) while a writer inserts into a graph big enough to insert in parallel, under a watchdog:
/// a reader blocked on the index lock must never starve the writer holding it of workers.
#[test]
fn rayon_searches_and_a_parallel_writer_never_deadlock() {
    use rayon::prelude::*;
    let dir = tempdir("rayon");
    let config = CollectionConfig {
        hnsw: sieve::index::HnswParams {
            flat_threshold: 16,
            ..Default::default()
        },
        ..tiny()
    };
    let c = std::sync::Arc::new(Collection::create(&dir, config).unwrap());
    c.add(docs(0..64)).unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    let worker = {
        let c = c.clone();
        std::thread::spawn(move || {
            let writer = {
                let c = c.clone();
                std::thread::spawn(move || {
                    for round in 0..12 {
                        let start = 64 + round * 48;
                        c.upsert(docs(start..start + 48)).unwrap();
                        c.delete(&[format!("doc-{}", round * 5)]).unwrap();
                    }
                })
            };
            (0..96).into_par_iter().for_each(|i| {
                let hits = c.search(format!("document number {i}")).top_k(5).run().unwrap();
                assert_eq!(hits.len(), 5);
            });
            writer.join().unwrap();
            done.send(()).unwrap();
        })
    };
    if finished.recv_timeout(std::time::Duration::from_secs(60)).is_err() {
        panic!("no progress in 60 s: searches and the writer deadlocked");
    }
    worker.join().unwrap();
    assert_eq!(c.len(), 64 + 12 * 48 - 12);
}

#[test]
fn search_hits_carry_every_retrievers_rank_and_score() {
    let dir = tempdir("hits");
    let c = Collection::create(&dir, tiny()).unwrap();
    c.add(docs(0..40)).unwrap();
    let rrf = sieve::engine::Fusion::Rrf { k: 60.0 };
    let hits = c
        .search("document number 12 topic 5")
        .fusion(rrf)
        .top_k(5)
        .run()
        .unwrap();
    assert_eq!(hits.len(), 5);
    for (i, h) in hits.iter().enumerate() {
        assert_eq!(h.first_stage.rank, i + 1);
        assert!(h.dense.is_some() || h.sparse.is_some() || h.bm25.is_some());
        assert!(h.reranker.is_none());
        let rrf: f32 = [h.dense, h.sparse, h.bm25]
            .iter()
            .flatten()
            .map(|s| 1.0 / (60.0 + s.rank as f32))
            .sum();
        assert!(
            (rrf - h.score).abs() < 1e-6,
            "fused score {} != hand RRF {rrf}",
            h.score
        );
    }
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    let single = c.search("document number 12").bm25().top_k(3).run().unwrap();
    assert!(
        single
            .iter()
            .all(|h| h.dense.is_none() && h.bm25.is_some() && h.score == h.bm25.unwrap().score)
    );
}

#[test]
fn real_models_find_the_semantic_match_and_rerank() {
    let dir = tempdir("real");
    let config = CollectionConfig {
        reranker: Some("sieve/stsb-minilm-l6-ce".into()),
        ..CollectionConfig::default()
    };
    let c = Collection::create(&dir, config).unwrap_or_else(|e| panic!("{}: {e}", common::hub_hint()));
    c.add(vec![
        Document::new("pasta", "A man is eating pasta.").with_metadata(json!({"kind": "food"})),
        Document::new("guitar", "A man is playing guitar.").with_metadata(json!({"kind": "music"})),
        Document::new("monkey", "A monkey is playing drums.").with_metadata(json!({"kind": "music"})),
        Document::new("cheetah", "A cheetah is running behind its prey.").with_metadata(json!({"kind": "animals"})),
    ])
    .unwrap();
    for retriever in [Retriever::Dense, Retriever::Sparse] {
        let hits = c
            .search("Someone is having a meal")
            .retrievers(&[retriever])
            .no_rerank()
            .top_k(1)
            .run()
            .unwrap();
        assert_eq!(hits[0].id, "pasta", "{retriever:?}");
    }
    let hits = c
        .search("a person plays an instrument")
        .rerank(4)
        .rerank_mode(Rerank::Replace)
        .run()
        .unwrap();
    assert!(hits[0].id == "guitar" || hits[0].id == "monkey", "{:?}", hits[0]);
    let reranked: Vec<_> = hits.iter().map(|h| h.reranker.unwrap()).collect();
    assert!(
        reranked.windows(2).all(|w| w[0].score >= w[1].score),
        "Replace orders by reranker score"
    );
    let hits = c
        .search("a person plays an instrument")
        .filter(Filter::eq("kind", "music"))
        .run()
        .unwrap();
    assert_eq!(hits.len(), 2);
}

#[test]
fn a_collection_remembers_the_precision_its_documents_were_encoded_in() {
    let dir = tempdir("precision");
    let int8 = LoadOptions {
        dtype: sieve::Dtype::Int8,
        ..LoadOptions::default()
    };
    let c = Collection::create_with(&dir, tiny(), &int8).unwrap();
    c.add(docs(0..10)).unwrap();
    let stored = c.vectors("doc-3").unwrap().unwrap().dense.unwrap();
    assert_eq!(c.info().unwrap().dtype, sieve::Dtype::Int8);
    c.close().unwrap();

    // A plain open loads the models in int8 again: a query for a stored text finds it with
    // the score of identical vectors.
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.info().unwrap().dtype, sieve::Dtype::Int8);
    let hits = c.search(&docs(3..4)[0].text).dense().top_k(10).run().unwrap();
    let hit = hits.iter().find(|h| h.id == "doc-3").expect("doc-3 among the hits");
    assert!(
        (hit.score - hits[0].score).abs() < 1e-6 && (hit.score - 1.0).abs() < 1e-5,
        "int8 query vs int8 document: {hits:?}"
    );
    assert_eq!(c.vectors("doc-3").unwrap().unwrap().dense.unwrap(), stored);
    c.close().unwrap();

    // Opened in f32 it still searches, but it will not mix f32 vectors into an int8 collection.
    let c = Collection::open_with(&dir, &LoadOptions::default()).unwrap();
    assert_eq!(
        c.search("document number 3").bm25().top_k(1).run().unwrap()[0].id,
        "doc-3"
    );
    let err = c.add(docs(10..11)).unwrap_err().to_string();
    assert!(err.contains("int8") && err.contains("f32"), "{err}");
    assert_eq!(c.len(), 10, "the refused write must store nothing");
}

/// MMR: five rewordings of one fact fill the plain top 5; with diversity they give way to the
/// other things the collection knows about the query's subject.
#[test]
fn real_models_diversity_stops_rewordings_from_filling_the_top_k() {
    let dir = tempdir("diversity");
    let config = CollectionConfig {
        sparse: None,
        reranker: None,
        ..CollectionConfig::default()
    };
    let c = Collection::create(&dir, config).unwrap_or_else(|e| panic!("{}: {e}", common::hub_hint()));
    let same = [
        "The Eiffel Tower stands in Paris.",
        "Paris is where the Eiffel Tower stands.",
        "The Eiffel tower is located in the city of Paris.",
        "In Paris you will find the Eiffel Tower.",
        "The Eiffel Tower is a landmark of Paris.",
    ];
    let other = [
        "The Louvre in Paris holds the Mona Lisa.",
        "The Seine flows through the centre of Paris.",
        "Paris has more than two million inhabitants.",
        "Croissants are sold in every bakery in Paris.",
        "The Paris metro opened in 1900.",
        "Mount Fuji is the highest mountain in Japan.",
    ];
    let docs = same
        .iter()
        .enumerate()
        .map(|(i, t)| Document::new(format!("same-{i}"), *t))
        .chain(
            other
                .iter()
                .enumerate()
                .map(|(i, t)| Document::new(format!("other-{i}"), *t)),
        );
    c.add(docs.collect()).unwrap();
    let rewordings = |hits: &[sieve::engine::SearchHit]| hits.iter().filter(|h| h.id.starts_with("same")).count();

    let plain = c.search("the Eiffel Tower in Paris").top_k(5).run().unwrap();
    assert_eq!(rewordings(&plain), 5, "{plain:#?}");
    let diverse = c
        .search("the Eiffel Tower in Paris")
        .top_k(5)
        .diversity(0.6)
        .run()
        .unwrap();
    assert!(
        diverse[0].id.starts_with("same"),
        "the most relevant hit comes first: {diverse:#?}"
    );
    assert!(rewordings(&diverse) <= 2, "{diverse:#?}");
    assert_eq!(diverse.len(), 5);
    // Diversity 0 is the plain ranking; out-of-range values and a collection without a dense
    // model are refused.
    let zero = c
        .search("the Eiffel Tower in Paris")
        .top_k(5)
        .diversity(0.0)
        .run()
        .unwrap();
    let ids = |hits: &[sieve::engine::SearchHit]| hits.iter().map(|h| h.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&zero), ids(&plain));
    let err = c.search("Paris").diversity(1.5).run().unwrap_err();
    assert!(matches!(err, EngineError::InvalidInput(_)), "{err}");
    drop(c);
    let bm25 = tempdir("diversity-bm25");
    let c = Collection::create(
        &bm25,
        CollectionConfig {
            dense: None,
            sparse: None,
            reranker: None,
            ..CollectionConfig::default()
        },
    )
    .unwrap();
    c.add(vec![Document::new("a", "Paris")]).unwrap();
    let err = c.search("Paris").diversity(0.5).run().unwrap_err();
    assert!(matches!(err, EngineError::RetrieverMissing("dense")), "{err}");
}

/// A collection with `truncate_dim` stores the cut, unit-length vectors, keeps the setting
/// across a reopen, and searches with queries cut the same way.
#[test]
fn real_models_truncate_dim_is_a_collection_option() {
    let dir = tempdir("truncate-dim");
    let config = CollectionConfig {
        sparse: None,
        reranker: None,
        truncate_dim: Some(96),
        ..CollectionConfig::default()
    };
    let c = Collection::create(&dir, config).unwrap_or_else(|e| panic!("{}: {e}", common::hub_hint()));
    c.add(vec![
        Document::new("pasta", "A man is eating pasta."),
        Document::new("guitar", "A man is playing guitar."),
        Document::new("cheetah", "A cheetah is running behind its prey."),
    ])
    .unwrap();
    let v = c.vectors("pasta").unwrap().unwrap().dense.unwrap();
    assert_eq!(v.len(), 96);
    assert!((v.iter().map(|x| x * x).sum::<f32>().sqrt() - 1.0).abs() < 1e-5);
    assert_eq!(c.dense_model().map(|m| m.embedding_dim()), Some(96));
    let hits = c.search("Someone is having a meal").dense().run().unwrap();
    assert_eq!(hits[0].id, "pasta");
    drop(c);
    let c = Collection::open(&dir).unwrap();
    assert_eq!(c.config().truncate_dim, Some(96));
    assert_eq!(
        c.search("a fast animal hunting").dense().run().unwrap()[0].id,
        "cheetah"
    );
    drop(c);
    let too_wide = CollectionConfig {
        sparse: None,
        reranker: None,
        truncate_dim: Some(1000),
        ..CollectionConfig::default()
    };
    let err = Collection::create(tempdir("truncate-dim-bad"), too_wide).unwrap_err();
    assert!(err.to_string().contains("truncate_dim"), "{err}");
}

#[test]
fn a_rerank_weight_that_is_not_a_finite_non_negative_number_is_refused() {
    let dir = tempdir("rerank-weight");
    let bm25_only = CollectionConfig {
        dense: None,
        sparse: None,
        reranker: None,
        ..CollectionConfig::default()
    };
    let c = Collection::create(&dir, bm25_only).unwrap();
    c.add(vec![Document::new("a", "Tides follow the moon")]).unwrap();
    for weight in [f32::NAN, f32::INFINITY, -0.5] {
        let err = c
            .search("tides")
            .rerank_mode(Rerank::Fuse { weight })
            .run()
            .unwrap_err();
        assert!(
            matches!(&err, EngineError::InvalidInput(m) if m.contains("rerank weight must be a finite number >= 0")),
            "{weight}: {err}"
        );
    }
    let hits = c
        .search("tides")
        .rerank_mode(Rerank::Fuse { weight: 0.0 })
        .run()
        .unwrap();
    assert_eq!(hits[0].id, "a");
}

/// `reencode` into a new collection with another dense model: the new vectors are the new
/// model's, the unchanged sparse model's vectors are copied, the source is untouched, and a
/// second run (as after an interruption) skips what is there, writes what is missing and
/// removes what the source dropped.
#[test]
fn reencode_writes_a_new_collection_and_resumes() {
    let (src_dir, dst_dir) = (tempdir("reencode-src"), tempdir("reencode-dst"));
    let source = Collection::create(&src_dir, tiny()).unwrap();
    source.add(docs(0..40)).unwrap();
    let other = common::fixture("distilbert-st-cls").to_string_lossy().into_owned();
    let config = CollectionConfig {
        dense: Some(other.clone()),
        ..source.config().clone()
    };
    let mut calls = 0;
    let report = source.reencode(&dst_dir, config.clone(), &mut |_| calls += 1).unwrap();
    assert_eq!((report.written, report.skipped, report.removed), (40, 0, 0));
    assert!(calls >= 1);
    let target = Collection::open(&dst_dir).unwrap();
    assert_eq!(target.len(), 40);
    let model = sieve::SentenceTransformer::load(&other).unwrap();
    let doc = source.get("doc-7").unwrap().unwrap();
    let want = model.encode_document(&[doc.text.as_str()]).unwrap();
    let got = target.vectors("doc-7").unwrap().unwrap();
    let diff = want
        .row(0)
        .iter()
        .zip(got.dense.as_ref().unwrap())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff < 1e-5, "dense vector of the new model: {diff}");
    assert_eq!(
        got.sparse,
        source.vectors("doc-7").unwrap().unwrap().sparse,
        "the sparse vectors are copied"
    );
    assert_eq!(target.get("doc-7").unwrap().unwrap().metadata, doc.metadata);
    assert_eq!(source.config().dense, tiny().dense, "the source keeps its model");
    drop(target);

    // As after an interruption: part of the target missing, one source document gone.
    let target = Collection::open(&dst_dir).unwrap();
    target.delete(&["doc-1", "doc-2", "doc-3"]).unwrap();
    drop(target);
    source.delete(&["doc-39"]).unwrap();
    let report = source.reencode(&dst_dir, config.clone(), &mut |_| {}).unwrap();
    assert_eq!((report.written, report.skipped, report.removed), (3, 36, 1));
    assert_eq!(Collection::open(&dst_dir).unwrap().len(), 39);

    // Resuming with other models, or into the source itself, is refused.
    let err = source
        .reencode(&dst_dir, source.config().clone(), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("other models"), "{err}");
    let err = source.reencode(&src_dir, config, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("this collection"), "{err}");
}
