//! Crash safety: a child process writes in a loop and is killed with SIGKILL at random
//! points; after every kill the collection must reopen with every acknowledged write, no
//! half-visible document, and indexes that agree with the store.
//!
//! The rounds cycle through a matrix of what the child is doing when it dies: plain writes;
//! opening after its indexes were deleted (killed during the rebuild, or just after); opening
//! right after the previous kill (killed during the catch-up); a checkpoint after every batch
//! (killed while saving indexes and trimming the log). A second test does the same with
//! `Durability::Buffered`, where the last acknowledged writes may be lost but the store must
//! hold a prefix of the history and no index may be ahead of it.
//! `SIEVE_CRASH_ROUNDS` sets the rounds of each (default 24; `scripts/crash-matrix` runs 1,000).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;
use sieve::engine::{Collection, CollectionConfig, Document, Retriever};

fn rounds() -> u64 {
    std::env::var("SIEVE_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

fn config() -> CollectionConfig {
    common::tiny_collection_config()
}

/// What the child is doing when it is killed, by round.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    Writing,
    /// `indexes/` was deleted: the child's open rebuilds every index from the store.
    Rebuilding,
    /// Killed soon after it starts: during the open and its catch-up, or just after.
    Opening,
    /// A checkpoint after every batch.
    Checkpointing,
    /// Every batch replaces the same few documents, so the indexes' dead slots outnumber the
    /// live ones every few batches and they compact (checkpoints as in `Writing`).
    Compacting,
}

impl Phase {
    fn of(round: u64) -> Phase {
        [
            Phase::Writing,
            Phase::Rebuilding,
            Phase::Opening,
            Phase::Checkpointing,
            Phase::Compacting,
        ][(round % 5) as usize]
    }

    /// How long the child runs before the kill, in ms.
    fn life(self, rng: &mut Lcg) -> u64 {
        match self {
            Phase::Rebuilding | Phase::Opening => 20 + rng.next() % 600,
            _ => 300 + rng.next() % 1200,
        }
    }
}

/// Documents the `Compacting` phase keeps replacing: ids `c{slot}d{j}`.
const REUSED_SLOTS: u64 = 4;

/// The id of document `j` of `batch` in `round`: unique, or one of a few reused ids.
fn crash_id(round: u64, batch: u64, j: u64, reuse: bool) -> String {
    if reuse {
        format!("c{}d{j}", batch % REUSED_SLOTS)
    } else {
        format!("r{round}b{batch}d{j}")
    }
}

/// The child: opens the collection and writes until killed, printing each acknowledged write.
#[test]
#[ignore = "helper process of crash_recovery_keeps_every_acknowledged_write; does nothing unless that test spawns it"]
fn crash_child() {
    let (Some(dir), Some(round)) = (
        std::env::var_os("SIEVE_CRASH_DIR"),
        std::env::var("SIEVE_CRASH_ROUND")
            .ok()
            .and_then(|r| r.parse::<u64>().ok()),
    ) else {
        return;
    };
    let reuse = std::env::var_os("SIEVE_CRASH_REUSE").is_some();
    let c = Collection::open(PathBuf::from(dir)).expect("child opens the collection");
    let mut out = std::io::stdout().lock();
    for batch in 0.. {
        let docs: Vec<Document> = (0..3)
            .map(|j| {
                let id = crash_id(round, batch, j, reuse);
                let text = format!("zq{round}x{batch}x{j} document {j} of batch {batch} in round {round}");
                Document::new(id, text).with_metadata(json!({"round": round, "batch": batch}))
            })
            .collect();
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        c.upsert(docs).expect("upsert");
        writeln!(out, "ACK ADD {}", ids.join(" ")).unwrap();
        if batch % 4 == 3 {
            let victim = crash_id(round, batch - 2, 1, reuse);
            c.delete(&[&victim]).expect("delete");
            writeln!(out, "ACK DEL {victim}").unwrap();
        }
        let every = std::env::var("SIEVE_CRASH_CHECKPOINT_EVERY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(9);
        if batch % every == every - 1 {
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

/// Runs the child for `round` in `phase` and kills it; returns the lines it printed.
fn kill_child(dir: &std::path::Path, round: u64, phase: Phase, rng: &mut Lcg) -> Vec<String> {
    if phase == Phase::Rebuilding {
        std::fs::remove_dir_all(dir.join("indexes")).unwrap();
    }
    let every = if phase == Phase::Checkpointing { "1" } else { "9" };
    let mut command = Command::new(std::env::current_exe().unwrap());
    if phase == Phase::Compacting {
        command.env("SIEVE_CRASH_REUSE", "1");
    }
    let mut child = command
        .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("SIEVE_CRASH_DIR", dir)
        .env("SIEVE_CRASH_ROUND", round.to_string())
        .env("SIEVE_CRASH_CHECKPOINT_EVERY", every)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || BufReader::new(stdout).lines().map_while(Result::ok).collect::<Vec<_>>());
    std::thread::sleep(Duration::from_millis(phase.life(rng)));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap()
}

#[test]
fn crash_recovery_keeps_every_acknowledged_write() {
    // The compacting rounds get a collection of their own, which holds only the few documents
    // they keep replacing: dead slots then outnumber live ones within a few batches.
    let dirs = ["crash", "crash-compacting"].map(|name| {
        let dir = common::ScratchDir::new(name);
        Collection::create(&dir, config()).unwrap().close().unwrap();
        dir
    });

    let mut rng = Lcg(20261128);
    // Per collection, id -> expected to exist (true) or be gone (false), from acknowledged
    // writes only.
    let mut expectations: [BTreeMap<String, bool>; 2] = Default::default();
    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    let rounds = rounds();
    for round in 0..rounds {
        let phase = Phase::of(round);
        let reuse = phase == Phase::Compacting;
        let dir = &dirs[usize::from(reuse)];
        let expected = &mut expectations[usize::from(reuse)];
        let lines = kill_child(dir, round, phase, &mut rng);
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
            in_flight.insert(crash_id(round, acked as u64, j, reuse));
        });
        // So may the delete that follows every fourth batch.
        let last = acked.wrapping_sub(1);
        let delete_in_flight =
            (acked > 0 && last_was_add && last % 4 == 3).then(|| crash_id(round, last as u64 - 2, 1, reuse));
        let stored = verify(dir, expected, &in_flight, delete_in_flight.as_deref(), round);
        if let Some(id) = &delete_in_flight {
            expected.insert(id.clone(), stored.contains(id));
        }
        // An unacknowledged batch that landed whole is now part of the expected state. A reused
        // id it did not reach must still hold its acknowledged version (verify skipped it).
        for id in &in_flight {
            if stored.contains(id) {
                expected.insert(id.clone(), true);
            } else {
                assert!(
                    expected.get(id) != Some(&true) || delete_in_flight.as_deref() == Some(id.as_str()),
                    "round {round}: acknowledged add of {id} lost"
                );
            }
        }
    }
    let acknowledged = expectations.iter().flat_map(|e| e.values()).filter(|&&v| v).count();
    println!("{rounds} kills, {acknowledged} acknowledged documents alive");
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
        // An in-flight batch may have replaced a reused id, or brought a deleted one back.
        if Some(id.as_str()) == delete_in_flight || in_flight.contains(id) {
            continue;
        }
        assert_eq!(
            got.is_some(),
            alive,
            "round {round}: acknowledged {} of {id} lost",
            if alive { "add" } else { "delete" }
        );
    }
    let known = |id: &str| expected.get(id).copied() == Some(true) || in_flight.contains(id);
    consistent(&c, &known, round)
}

/// Checks that every stored document is one `known` accepts, complete (text, metadata, both
/// vectors), and found by every retriever, and that no index holds anything else; returns
/// the stored ids.
fn consistent(c: &Collection, known: &dyn Fn(&str) -> bool, round: u64) -> BTreeSet<String> {
    let stored: Vec<Document> = c.iter().collect::<Result<_, _>>().unwrap();
    for doc in &stored {
        assert!(
            known(&doc.id),
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
            .keep_duplicates()
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
        let dense = c
            .search(&doc.text)
            .dense()
            .keep_duplicates()
            .top_k(stored.len())
            .run()
            .unwrap();
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
    let dir = common::ScratchDir::new("locked");
    let held = Collection::create(&dir, config()).unwrap();
    let child = |dir: &std::path::Path| {
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

/// With `Durability::Buffered` a crash may lose the last acknowledged writes, but never
/// reorder them: the store holds a prefix of each child's history, nothing half-written, and
/// no index holds a document (or misses a deletion) the store does not.
#[test]
fn buffered_crashes_keep_a_prefix_and_no_index_runs_ahead() {
    let dir = common::ScratchDir::new("crash-buffered");
    let buffered = CollectionConfig {
        durability: sieve::engine::Durability::Buffered,
        ..config()
    };
    Collection::create(&dir, buffered).unwrap().close().unwrap();
    let mut rng = Lcg(20261201);
    let rounds = (rounds() / 2).max(4);
    let mut written: BTreeSet<String> = BTreeSet::new();
    for round in 0..rounds {
        // This oracle tracks unique ids: the compacting phase (reused ids) writes as `Writing`.
        let phase = match Phase::of(round) {
            Phase::Compacting => Phase::Writing,
            phase => phase,
        };
        let lines = kill_child(&dir, round, phase, &mut rng);
        let acked = lines.iter().filter(|l| l.contains("ACK ADD ")).count();
        // Everything the child may have written: its acknowledged batches and the next one.
        for batch in 0..=acked {
            for j in 0..3 {
                written.insert(format!("r{round}b{batch}d{j}"));
            }
        }
        let c = Collection::open(&dir).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let stored = consistent(&c, &|id: &str| written.contains(id), round);
        // A prefix: if batch b of this round is there, so is every batch before it (d0 and d2
        // are never deleted).
        let batches: BTreeSet<u64> = stored
            .iter()
            .filter_map(|id| id.strip_prefix(&format!("r{round}b")))
            .filter_map(|rest| rest.split('d').next()?.parse().ok())
            .collect();
        if let Some(&last) = batches.iter().next_back() {
            for b in 0..=last {
                for j in [0, 2] {
                    let id = format!("r{round}b{b}d{j}");
                    assert!(
                        stored.contains(&id),
                        "round {round} ({phase:?}): {id} lost but a later batch kept"
                    );
                }
            }
        }
    }
}

/// The child of `a_full_disk_fails_writes_cleanly_and_loses_nothing`: writes under a file-size
/// limit until writes fail a few times, printing what was acknowledged and what failed.
#[test]
#[ignore = "helper process of a_full_disk_fails_writes_cleanly_and_loses_nothing; does nothing unless that test spawns it"]
fn disk_full_child() {
    let (Some(dir), Some(tag)) = (std::env::var_os("SIEVE_FULL_DIR"), std::env::var("SIEVE_FULL_TAG").ok()) else {
        return;
    };
    let c = match Collection::open(PathBuf::from(dir)) {
        Ok(c) => c,
        Err(e) => {
            println!("OPENFAIL {e}");
            return;
        }
    };
    let mut out = std::io::stdout().lock();
    let mut failures = 0;
    for batch in 0..3000 {
        let docs: Vec<Document> = (0..8)
            .map(|j| {
                let id = format!("f{tag}b{batch}d{j}");
                let text = format!(
                    "zq{tag}x{batch}x{j} a document padded to take some room {}",
                    "pad ".repeat(40)
                );
                Document::new(id, text).with_metadata(json!({"batch": batch}))
            })
            .collect();
        let ids: Vec<String> = docs.iter().map(|d| d.id.clone()).collect();
        match c.upsert(docs) {
            Ok(report) if report.stale.is_empty() => writeln!(out, "ACK ADD {}", ids.join(" ")).unwrap(),
            Ok(_) => writeln!(out, "ACK STALE {}", ids.join(" ")).unwrap(),
            Err(e) => {
                writeln!(out, "ERR {} {e}", ids.join(" ")).unwrap();
                failures += 1;
            }
        }
        if batch % 10 == 9 && c.checkpoint().is_err() {
            failures += 1;
        }
        out.flush().unwrap();
        if failures >= 5 {
            break;
        }
    }
    writeln!(out, "DONE {failures}").unwrap();
}

/// What the writing children acknowledged and attempted, over the rounds of a full-disk test.
#[derive(Default)]
struct FullDiskLog {
    acknowledged: BTreeSet<String>,
    attempted: BTreeSet<String>,
    failed_somewhere: bool,
}

impl FullDiskLog {
    /// Runs `disk_full_child` on `dir` through `sh -c` with `prefix` before the `exec` (a
    /// `ulimit`, or nothing) and records its report.
    fn child(&mut self, dir: &std::path::Path, round: usize, prefix: &str) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{prefix} exec \"$0\" \"$@\""))
            .arg(std::env::current_exe().unwrap())
            .args([
                "disk_full_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SIEVE_FULL_DIR", dir)
            .env("SIEVE_FULL_TAG", round.to_string())
            .stderr(Stdio::null())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        for line in stdout.lines() {
            let line = line
                .find(|c: char| c.is_ascii_uppercase())
                .map_or(line, |at| &line[at..]);
            if let Some(ids) = line
                .strip_prefix("ACK ADD ")
                .or_else(|| line.strip_prefix("ACK STALE "))
            {
                self.acknowledged.extend(ids.split(' ').map(str::to_string));
                self.attempted.extend(ids.split(' ').map(str::to_string));
            } else if let Some(rest) = line.strip_prefix("ERR ") {
                if !self.failed_somewhere {
                    eprintln!(
                        "round {round}: first failure: {}",
                        rest.split(' ').skip(8).collect::<Vec<_>>().join(" ")
                    );
                }
                self.failed_somewhere = true;
                self.attempted.extend(rest.split(' ').take(8).map(str::to_string));
            }
        }
    }

    /// Reopens the collection and checks every acknowledged document and every index against
    /// the store.
    fn verify(&self, dir: &std::path::Path, round: usize, what: &str) {
        let c = Collection::open(dir).unwrap_or_else(|e| panic!("round {round}: reopen after {what} failed: {e}"));
        for id in &self.acknowledged {
            assert!(c.get(id).unwrap().is_some(), "round {round}: acknowledged {id} lost");
        }
        let attempted = &self.attempted;
        consistent(&c, &|id: &str| attempted.contains(id), round as u64);
    }

    fn check(&self, what: &str) {
        eprintln!(
            "{what}: {} documents acknowledged of {} attempted",
            self.acknowledged.len(),
            self.attempted.len()
        );
        assert!(
            self.failed_somewhere,
            "{what} never made a write fail: the test tested nothing"
        );
        assert!(
            self.acknowledged.len() > 50,
            "too few writes succeeded ({})",
            self.acknowledged.len()
        );
    }
}

/// Real write failures without root: the child runs under `ulimit -f` with SIGXFSZ ignored, so
/// every write past the limit fails with EFBIG. Every write is either acknowledged or fails;
/// after the child exits the collection reopens with every acknowledged document and indexes
/// that agree with the store.
#[test]
fn a_full_disk_fails_writes_cleanly_and_loses_nothing() {
    let dir = common::ScratchDir::new("disk-full");
    Collection::create(&dir, config()).unwrap().close().unwrap();
    let mut log = FullDiskLog::default();
    for (round, headroom_kib) in [64u64, 256, 1024, 4096].into_iter().enumerate() {
        // The limit is per file: the largest file now plus some headroom.
        let limit = largest_file(&dir) / 1024 + headroom_kib;
        log.child(&dir, round, &format!("trap '' XFSZ; ulimit -f {limit} &&"));
        log.verify(&dir, round, "EFBIG");
    }
    log.check("the file-size limit");
}

/// A real full file system (ENOSPC), where this process may mount one: the collection lives on
/// a tmpfs that each round remounts with a little more room than it uses, and the child writes
/// until writes fail. Same oracle as the EFBIG test; the reopen runs with room again. Skipped
/// (with the reason printed) where mounting is not allowed, i.e. without root.
#[test]
fn a_full_tmpfs_fails_writes_cleanly_and_loses_nothing() {
    let mnt = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("tmpfs-full-{}", std::process::id()));
    std::fs::create_dir_all(&mnt).unwrap();
    let mount = |options: &str| {
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&mnt)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !mount("size=64m") {
        eprintln!("skipped: cannot mount a tmpfs here (mounting needs root)");
        return;
    }
    /// Unmounts on the way out, even when an assertion fails.
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    let used_kib = || {
        let out = Command::new("df")
            .args(["-k", "--output=used"])
            .arg(&mnt)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .expect("df prints the used KiB")
    };
    let dir = mnt.join("collection");
    Collection::create(&dir, config()).unwrap().close().unwrap();
    let mut log = FullDiskLog::default();
    for (round, headroom_kib) in [256u64, 1024, 4096].into_iter().enumerate() {
        let size = used_kib() + headroom_kib;
        assert!(mount(&format!("remount,size={size}k")), "remount to {size} KiB");
        log.child(&dir, round, "");
        // The reopen and the checks get room back.
        assert!(mount("remount,size=64m"), "remount to 64 MiB");
        log.verify(&dir, round, "ENOSPC");
    }
    log.check("the full tmpfs");
}

fn largest_file(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => largest_file(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}
