//! Fault injection: the store fails its Nth write (`apply`) or its Nth `flush`, for every N a
//! fixed history reaches, and the collection must come through: a call whose batch was not
//! applied leaves no trace; a call whose flush failed is applied whole (reads see it) though
//! its durability was unknown when it returned; every later call works; and after a reopen the
//! store and every index hold exactly what the calls that were applied wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sieve_encoders::LoadOptions;

use crate::collection::Collection;
use crate::config::CollectionConfig;
use crate::document::Document;
use crate::error::{EngineError, Result};
use crate::storage::{Entries, SledStorage, Storage, WriteBatch};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Apply,
    Flush,
}

/// Which call of which kind fails (once); counts the calls.
struct Plan {
    kind: Kind,
    fail_at: usize,
    calls: AtomicUsize,
    armed: std::sync::atomic::AtomicBool,
}

impl Plan {
    fn hit(&self, kind: Kind) -> Result<()> {
        if kind != self.kind || !self.armed.load(Ordering::SeqCst) {
            return Ok(());
        }
        match self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.fail_at {
            true => Err(EngineError::io(
                "injected",
                std::io::Error::other(format!("injected {kind:?} fault")),
            )),
            false => Ok(()),
        }
    }
}

struct Faulty {
    inner: SledStorage,
    plan: Arc<Plan>,
}

impl Storage for Faulty {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.inner.get(key)
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Entries<'_> {
        self.inner.scan_prefix(prefix)
    }

    fn apply(&self, batch: WriteBatch) -> Result<()> {
        self.plan.hit(Kind::Apply)?;
        self.inner.apply(batch)
    }

    fn flush(&self) -> Result<()> {
        self.plan.hit(Kind::Flush)?;
        self.inner.flush()
    }
}

/// A tiny fixture model of `../shared/fixtures` by path.
pub(crate) fn fixture(name: &str) -> String {
    let shared = std::env::var_os("SIEVE_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let path = shared.join("fixtures").join(name);
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn config() -> CollectionConfig {
    CollectionConfig {
        dense: Some(fixture("bert-st-mean-norm")),
        sparse: Some(fixture("bert-splade")),
        text: true,
        reranker: None,
        ..CollectionConfig::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Add(std::ops::Range<u8>),
    Upsert(std::ops::Range<u8>),
    Delete(Vec<u8>),
    Checkpoint,
}

fn history() -> Vec<Op> {
    use Op::*;
    vec![
        Add(0..5),
        Upsert(3..7),
        Delete(vec![1, 5]),
        Checkpoint,
        Add(7..10),
        Delete(vec![0]),
        Upsert(8..9),
        Add(10..12),
        Checkpoint,
        Upsert(0..3),
        Delete(vec![10, 11, 2]),
    ]
}

fn text(id: u8, version: usize) -> String {
    format!("entry {id} version {version}")
}

/// Runs the history with `kind` failing at call `fail_at` (0: never); returns how many calls of
/// that kind it made.
fn run(kind: Kind, fail_at: usize, tag: &str) -> usize {
    let dir = std::env::temp_dir().join(format!("sieve-fault-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let plan = Arc::new(Plan {
        kind,
        fail_at,
        calls: AtomicUsize::new(0),
        armed: false.into(),
    });
    let wrap = |plan: &Arc<Plan>| {
        let plan = plan.clone();
        move |inner: SledStorage| -> Box<dyn Storage> {
            Box::new(Faulty {
                inner,
                plan: plan.clone(),
            })
        }
    };
    let c = Collection::create_on(&dir, config(), &LoadOptions::default(), &wrap(&plan)).unwrap();
    plan.armed.store(true, Ordering::SeqCst);
    let mut model: BTreeMap<u8, usize> = BTreeMap::new();
    let mut failures = 0;
    for (step, op) in history().into_iter().enumerate() {
        let at = format!("{kind:?} fault at call {fail_at}, step {step} {op:?}");
        let before = model.clone();
        let (result, after) = match &op {
            Op::Add(ids) | Op::Upsert(ids) => {
                let docs: Vec<Document> = ids
                    .clone()
                    .map(|id| Document::new(format!("e{id}"), text(id, step)))
                    .collect();
                let result = match op {
                    Op::Add(_) => c.add(docs).map(drop),
                    _ => c.upsert(docs).map(drop),
                };
                let mut after = model.clone();
                after.extend(ids.clone().map(|id| (id, step)));
                (result, after)
            }
            Op::Delete(ids) => {
                let names: Vec<String> = ids.iter().map(|id| format!("e{id}")).collect();
                let mut after = model.clone();
                for id in ids {
                    after.remove(id);
                }
                (c.delete(&names).map(drop), after)
            }
            Op::Checkpoint => (c.checkpoint(), model.clone()),
        };
        // What the collection now shows decides which world this is, and it must be one of the
        // two: nothing of the call, or all of it.
        let seen = snapshot(&c);
        match result {
            Ok(()) => assert_eq!(seen, after, "{at}: the call succeeded"),
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("injected"), "{at}: {e}");
                match kind {
                    Kind::Apply => assert_eq!(seen, before, "{at}: a batch that failed to apply leaves no trace"),
                    Kind::Flush => assert!(seen == before || seen == after, "{at}: half applied: {seen:?}"),
                }
            }
        }
        model = seen;
        consistent(&c, &model, &at);
    }
    assert!(failures <= 1, "one fault, at most one failed call");
    let calls = plan.calls.load(Ordering::SeqCst);
    drop(c);
    let c = Collection::open_inner(&dir, &|_| LoadOptions::default(), &|sled| Box::new(sled))
        .unwrap_or_else(|e| panic!("{kind:?} fault at call {fail_at}: the collection must reopen: {e}"));
    let at = format!("{kind:?} fault at call {fail_at}, after reopen");
    assert_eq!(snapshot(&c), model, "{at}");
    consistent(&c, &model, &at);
    drop(c);
    let _ = std::fs::remove_dir_all(&dir);
    calls
}

/// Id -> version, as the store shows it.
fn snapshot(c: &Collection) -> BTreeMap<u8, usize> {
    c.iter()
        .map(|doc| {
            let doc = doc.unwrap();
            let id: u8 = doc.id[1..].parse().unwrap();
            let version: usize = doc.text.rsplit(' ').next().unwrap().parse().unwrap();
            (id, version)
        })
        .collect()
}

/// Every index holds exactly the stored documents.
fn consistent(c: &Collection, model: &BTreeMap<u8, usize>, at: &str) {
    let info = c.info().unwrap();
    let n = Some(model.len());
    assert_eq!(
        (info.documents, info.dense, info.sparse, info.text),
        (model.len(), n, n, n),
        "{at}"
    );
    assert!(info.stale.is_empty(), "{at}: {:?}", info.stale);
    let mut want: Vec<String> = model.keys().map(|id| format!("e{id}")).collect();
    want.sort();
    for retriever in ["dense", "bm25"] {
        let search = c.search("entry version").top_k(100);
        let search = match retriever {
            "dense" => search.dense(),
            _ => search.bm25(),
        };
        let mut got: Vec<String> = search.run().unwrap().into_iter().map(|h| h.id).collect();
        got.sort();
        assert_eq!(got, want, "{at}: {retriever}");
    }
}

#[test]
fn every_store_fault_in_a_history_is_survived() {
    for kind in [Kind::Apply, Kind::Flush] {
        let calls = run(kind, 0, &format!("{kind:?}-none"));
        assert!(calls >= 10, "{kind:?}: the history makes {calls} calls");
        for fail_at in 1..=calls {
            run(kind, fail_at, &format!("{kind:?}-{fail_at}"));
        }
        eprintln!("{kind:?}: a fault at each of {calls} calls survived");
    }
}
