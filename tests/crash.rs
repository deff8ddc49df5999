//! Crash safety: a child process writes in a loop and is killed with SIGKILL at random
//! points; after every kill the collection must reopen with every acknowledged write, no
//! half-visible document, and indexes that agree with the store.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use sieve::engine::{Collection, CollectionConfig, Document, Retriever};

const ROUNDS: u64 = 24;

fn config() -> CollectionConfig {
    common::tiny_collection_config()
}

/// The child: opens the collection and writes until killed, printing each acknowledged write.
#[test]
#[ignore = "helper process of crash_recovery_keeps_every_acknowledged_write; does nothing unless that test spawns it"]
fn crash_child() {
    let (Some(dir), Some(round)) = (
        std::env::var_os("SIEVE_CRASH_DIR"),
        std::env::var("SIEVE_CRASH_ROUND").ok(),
    ) else {
        return;
    };
    let c = Collection::open(PathBuf::from(dir)).expect("child opens the collection");
    let mut out = std::io::stdout().lock();
    for batch in 0.. {
        let docs: Vec<Document> = (0..3)
            .map(|j| {
                let id = format!("r{round}b{batch}d{j}");
                let text = format!("zq{round}x{batch}x{j} document {j} of batch {batch} in round {round}");
                Document::new(id, text).with_metadata(json!({"round": round, "batch": batch}))
            })
            .collect();
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        c.upsert(docs).expect("upsert");
        writeln!(out, "ACK ADD {}", ids.join(" ")).unwrap();
        if batch % 4 == 3 {
            let victim = format!("r{round}b{}d1", batch - 2);
            c.delete(&[&victim]).expect("delete");
            writeln!(out, "ACK DEL {victim}").unwrap();
        }
        if batch % 9 == 8 {
            c.checkpoint().expect("checkpoint");
        }
        out.flush().unwrap();
    }
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn crash_recovery_keeps_every_acknowledged_write() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Collection::create(&dir, config()).unwrap().close().unwrap();

    let mut rng = Lcg(20261128);
    // id -> expected to exist (true) or be gone (false), from acknowledged writes only.
    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("SIEVE_CRASH_DIR", &dir)
            .env("SIEVE_CRASH_ROUND", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader =
            std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
        std::thread::sleep(Duration::from_millis(300 + rng.next() % 1200));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        let mut acked: usize = 0;
        let mut last_was_add = false;
        for line in &lines {
            // The test harness may print "test crash_child ... " in front of the first line.
            let line = line.find("ACK ").map_or("", |at| &line[at..]);
            if let Some(ids) = line.strip_prefix("ACK ADD ") {
                ids.split(' ').for_each(|id| {
                    expected.insert(id.to_string(), true);
                });
                acked += 1;
                last_was_add = true;
            } else if let Some(id) = line.strip_prefix("ACK DEL ") {
                expected.insert(id.to_string(), false);
                last_was_add = false;
            }
        }
        // The batch after the last acknowledged one may or may not have landed.
        in_flight.clear();
        (0..3).for_each(|j| {
            in_flight.insert(format!("r{round}b{acked}d{j}"));
        });
        // So may the delete that follows every fourth batch.
        let last = acked.wrapping_sub(1);
        let delete_in_flight = (acked > 0 && last_was_add && last % 4 == 3).then(|| format!("r{round}b{}d1", last - 2));
        let stored = verify(&dir, &expected, &in_flight, delete_in_flight.as_deref(), round);
        if let Some(id) = &delete_in_flight {
            expected.insert(id.clone(), stored.contains(id));
        }
        // An unacknowledged batch that landed whole is now part of the expected state.
        for id in &in_flight {
            if stored.contains(id) {
                expected.insert(id.clone(), true);
            }
        }
    }
    let acknowledged = expected.values().filter(|&&v| v).count();
    println!("{ROUNDS} kills, {acknowledged} acknowledged documents alive");
    assert!(
        acknowledged > 50,
        "the child wrote too little to test anything ({acknowledged})"
    );
}

/// Checks the reopened collection; returns the stored ids.
fn verify(
    dir: &std::path::Path,
    expected: &BTreeMap<String, bool>,
    in_flight: &BTreeSet<String>,
    delete_in_flight: Option<&str>,
    round: u64,
) -> BTreeSet<String> {
    let c = Collection::open(dir).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
    for (id, &alive) in expected {
        let got = c.get(id).unwrap();
        if Some(id.as_str()) == delete_in_flight {
            continue;
        }
        assert_eq!(
            got.is_some(),
            alive,
            "round {round}: acknowledged {} of {id} lost",
            if alive { "add" } else { "delete" }
        );
    }
    let stored: Vec<Document> = c.iter().collect::<Result<_, _>>().unwrap();
    for doc in &stored {
        let known = expected.get(&doc.id).copied() == Some(true) || in_flight.contains(&doc.id);
        assert!(
            known,
            "round {round}: {} is visible but was never written (or its delete was lost)",
            doc.id
        );
        // Complete, not half-visible: text, metadata and both vectors.
        assert!(
            doc.text.starts_with("zq") && doc.metadata["batch"].is_u64(),
            "round {round}: {} is incomplete",
            doc.id
        );
        let vectors = c.vectors(&doc.id).unwrap().unwrap();
        assert!(
            vectors.dense.is_some() && vectors.sparse.is_some(),
            "round {round}: {} lacks a vector",
            doc.id
        );
    }
    let info = c.info().unwrap();
    assert_eq!(info.documents, stored.len());
    assert_eq!(
        (info.dense, info.sparse, info.text),
        (Some(stored.len()), Some(stored.len()), Some(stored.len())),
        "round {round}: an index disagrees with the store"
    );
    // Every retriever returns only stored documents, and BM25 finds each document's unique token.
    let ids: BTreeSet<&str> = stored.iter().map(|d| d.id.as_str()).collect();
    let all = [Retriever::Dense, Retriever::Sparse, Retriever::Bm25];
    for retrievers in [&all[0..1], &all[1..2], &all[2..3], &all[..]] {
        let hits = c
            .search("document batch round")
            .retrievers(retrievers)
            .top_k(50)
            .run()
            .unwrap();
        for hit in hits {
            let id = hit.id.as_str();
            assert!(
                ids.contains(id),
                "round {round}: {retrievers:?} returned {id} which is not stored"
            );
        }
    }
    for doc in stored.iter().rev().take(15) {
        let token = doc.text.split(' ').next().unwrap();
        let hits = c.search(token).bm25().top_k(1).run().unwrap();
        assert_eq!(
            hits.first().map(|h| h.id.as_str()),
            Some(doc.id.as_str()),
            "round {round}: BM25 lost {}",
            doc.id
        );
        // Its own text is its nearest neighbour (the tiny model may tie it with a near twin).
        let dense = c.search(&doc.text).dense().top_k(stored.len()).run().unwrap();
        let own = dense.iter().find(|h| h.id == doc.id);
        assert!(
            own.is_some_and(|h| h.score >= dense[0].score - 1e-5),
            "round {round}: dense search lost {}: {:?}",
            doc.id,
            dense.iter().take(5).map(|h| (&h.id, h.score)).collect::<Vec<_>>()
        );
    }
    stored.into_iter().map(|d| d.id).collect()
}

/// The child of `a_second_process_gets_a_clear_locked_error`: tries to open and reports.
#[test]
#[ignore = "helper process of a_second_process_gets_a_clear_locked_error; does nothing unless that test spawns it"]
fn locked_child() {
    let Some(dir) = std::env::var_os("SIEVE_LOCKED_DIR") else {
        return;
    };
    match Collection::open(PathBuf::from(dir)) {
        Ok(_) => println!("RESULT opened"),
        Err(e) => println!("RESULT {e}"),
    }
}

#[test]
fn a_second_process_gets_a_clear_locked_error() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("locked-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let held = Collection::create(&dir, config()).unwrap();
    let child = |dir: &PathBuf| {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "locked_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SIEVE_LOCKED_DIR", dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        stdout
            .find("RESULT ")
            .map(|at| stdout[at + 7..].lines().next().unwrap_or("").to_string())
            .unwrap_or(stdout)
    };
    let message = child(&dir);
    assert!(
        message.contains("is locked") && message.contains("another process"),
        "{message}"
    );
    drop(held);
    assert_eq!(child(&dir), "opened", "the lock is released when the holder closes");
}
