//! Model-based test: random histories of add / upsert / delete / checkpoint / close / reopen /
//! crash / search, each step checked against an in-memory model of the documents that should
//! be there (a map from id to text). A crash here leaves the files as a dying process would (no
//! checkpoint, no index saved; see `crash`); with `Durability::Flush` every acknowledged write
//! must survive it. `tests/crash.rs` kills real processes. Runs on the tiny fixture models (dense + sparse + BM25).
//!
//! `SIEVE_HISTORY_CASES` sets the number of histories (default 48; `scripts/history` runs more).

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sieve::engine::{Collection, CollectionConfig, Document, Durability, EngineError};

#[derive(Debug, Clone)]
enum Op {
    /// Add these ids (those already stored make the whole call fail with DuplicateId).
    Add(Vec<u8>),
    Upsert(Vec<u8>),
    Delete(Vec<u8>),
    Checkpoint,
    /// Close and open again.
    Reopen,
    /// Die without closing, then open what is on disk.
    Crash,
    /// Look a document up by the word only its current version has.
    Search(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let ids = || proptest::collection::vec(0u8..24, 1..6);
    prop_oneof![
        4 => ids().prop_map(Op::Add),
        4 => ids().prop_map(Op::Upsert),
        3 => ids().prop_map(Op::Delete),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
        3 => (0u8..24).prop_map(Op::Search),
    ]
}

/// The text of version `version` of document `id`: one word unique to both.
fn text(id: u8, version: usize) -> String {
    format!(
        "note {id} revision {version} marker{}x{}",
        word(id),
        word(version as u8)
    )
}

/// Letters only, so the BM25 analyser keeps the marker as one token.
fn word(n: u8) -> String {
    format!("{}{}", (b'a' + n / 26) as char, (b'a' + n % 26) as char)
}

fn marker(id: u8, version: usize) -> String {
    format!("marker{}x{}", word(id), word(version as u8))
}

struct Harness {
    dir: PathBuf,
    collection: Option<Collection>,
}

impl Harness {
    fn c(&self) -> &Collection {
        self.collection.as_ref().expect("open")
    }
}

/// Ends `collection` the way a crash does as far as the files are concerned: no checkpoint,
/// no index saved. It is dropped while a thread unwinds, and a collection dropped during a
/// panic saves nothing; unlike `mem::forget` this also stops its background threads, so the
/// files stay as they are while the next open reads them.
fn crash(collection: Collection) {
    let dying = std::thread::spawn(move || {
        let _doomed = collection;
        std::panic::resume_unwind(Box::new("simulated crash"));
    });
    assert!(dying.join().is_err());
}

fn run_history(ops: &[Op], durability: Durability, case: usize) -> Result<(), TestCaseError> {
    // Removed after the case, failing or not: proptest prints the failing case's operations,
    // which replay it.
    let dir = common::ScratchDir::new(&format!("history-{case}"));
    let config = CollectionConfig {
        durability,
        ..common::tiny_collection_config()
    };
    let mut h = Harness {
        collection: Some(Collection::create(&dir, config).map_err(fail)?),
        dir: dir.to_path_buf(),
    };
    // The model: id -> version of its current text.
    let mut model: BTreeMap<u8, usize> = BTreeMap::new();
    let mut version = 0usize;
    for (step, op) in ops.iter().enumerate() {
        let at = format!("step {step} {op:?}");
        match op {
            Op::Add(ids) | Op::Upsert(ids) => {
                let mut unique = ids.clone();
                unique.sort_unstable();
                unique.dedup();
                version += 1;
                let docs: Vec<Document> = unique
                    .iter()
                    .map(|&id| Document::new(format!("d{id}"), text(id, version)))
                    .collect();
                let upsert = matches!(op, Op::Upsert(_));
                let result = if upsert { h.c().upsert(docs) } else { h.c().add(docs) };
                let clash = unique.iter().find(|id| model.contains_key(id));
                match (upsert, clash, result) {
                    (false, Some(id), Err(EngineError::DuplicateId { id: got })) => {
                        prop_assert_eq!(got, format!("d{id}"), "{}", at);
                    }
                    (_, None, Ok(report)) | (true, Some(_), Ok(report)) => {
                        let replaced = unique.iter().filter(|id| model.contains_key(id)).count();
                        prop_assert_eq!(
                            (report.added, report.replaced),
                            (unique.len() - replaced, replaced),
                            "{}",
                            at
                        );
                        prop_assert!(report.stale.is_empty(), "{}", at);
                        for id in &unique {
                            model.insert(*id, version);
                        }
                    }
                    (_, _, other) => prop_assert!(false, "{at}: unexpected {other:?}"),
                }
            }
            Op::Delete(ids) => {
                let names: Vec<String> = ids.iter().map(|id| format!("d{id}")).collect();
                let deleted = h.c().delete(&names).map_err(fail)?;
                let mut unique = ids.clone();
                unique.sort_unstable();
                unique.dedup();
                let expected = unique.iter().filter(|id| model.remove(id).is_some()).count();
                prop_assert_eq!(deleted, expected, "{}", at);
            }
            Op::Checkpoint => h.c().checkpoint().map_err(fail)?,
            Op::Reopen => {
                h.collection.take().expect("open").close().map_err(fail)?;
                h.collection = Some(Collection::open(&h.dir).map_err(fail)?);
            }
            Op::Crash if durability == Durability::Flush => {
                crash(h.collection.take().expect("open"));
                h.collection = Some(Collection::open(&h.dir).map_err(fail)?);
            }
            Op::Crash => {} // buffered writes may be lost in a crash: nothing to check
            Op::Search(id) => {
                let Some(&v) = model.get(id) else { continue };
                let hits = h.c().search(marker(*id, v)).bm25().top_k(3).run().map_err(fail)?;
                let want = format!("d{id}");
                prop_assert_eq!(hits.first().map(|h| h.id.as_str()), Some(want.as_str()), "{}", at);
                prop_assert_eq!(hits.len(), 1, "{}: only the current version has the word", at);
            }
        }
        check(h.c(), &model, &at)?;
    }
    drop(h.collection.take());
    Ok(())
}

/// Everything the model says is there, and nothing else, through every way of reading.
fn check(c: &Collection, model: &BTreeMap<u8, usize>, at: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(c.len(), model.len(), "{}", at);
    for id in 0u8..24 {
        let stored = c.get(&format!("d{id}")).map_err(fail)?;
        match model.get(&id) {
            Some(&v) => prop_assert_eq!(stored.map(|d| d.text), Some(text(id, v)), "{}: d{}", at, id),
            None => prop_assert!(stored.is_none(), "{at}: d{id} should be gone"),
        }
    }
    let info = c.info().map_err(fail)?;
    let n = Some(model.len());
    prop_assert_eq!((info.dense, info.sparse, info.text), (n, n, n), "{}", at);
    prop_assert!(info.stale.is_empty(), "{}", at);
    if !model.is_empty() {
        // Below the HNSW threshold the dense index is exact: top-all is every document.
        let mut ids: Vec<String> = c
            .search("note")
            .dense()
            .top_k(64)
            .run()
            .map_err(fail)?
            .into_iter()
            .map(|h| h.id)
            .collect();
        ids.sort();
        let mut want: Vec<String> = model.keys().map(|id| format!("d{id}")).collect();
        want.sort();
        prop_assert_eq!(ids, want, "{}", at);
    }
    Ok(())
}

fn fail(e: EngineError) -> TestCaseError {
    TestCaseError::fail(format!("{e:?}"))
}

fn cases() -> u32 {
    std::env::var("SIEVE_HISTORY_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

#[test]
fn random_histories_match_the_model() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        max_shrink_iters: 64,
        failure_persistence: None,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicUsize::new(0);
    let strategy = (
        proptest::collection::vec(op(), 4..28),
        prop_oneof![Just(Durability::Flush), Just(Durability::Buffered)],
    );
    runner
        .run(&strategy, |(ops, durability)| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            run_history(&ops, durability, n)
        })
        .unwrap();
}
