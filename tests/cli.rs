//! The `sieve` binary as a user runs it: index → search → re-index after a change and a
//! deletion; `encode` against the library; `eval` on a hand-made BEIR set against
//! hand-computed scores; and the one-line errors for bad paths, unreadable and non-UTF-8 files,
//! an empty folder, a malformed qrels line and a malformed filter.
//!
//! Every run loads the real default models from the local hub cache, so the document sets are
//! tiny and the number of runs small.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn tempdir(name: &str) -> common::ScratchDir {
    let dir = common::ScratchDir::new(&format!("cli-{name}"));
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn sieve(args: &[&str]) -> Output {
    sieve_with_stdin(args, None)
}

fn sieve_with_stdin(args: &[&str], stdin: Option<&str>) -> Output {
    sieve_with(args, stdin, &[])
}

fn sieve_with(args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sieve"));
    cmd.args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("SIEVE_DEVICE")
        .env_remove("SIEVE_DTYPE")
        .envs(env.iter().copied());
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("the sieve binary runs");
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a command that must succeed and returns its stdout.
fn ok(args: &[&str]) -> String {
    let out = sieve(args);
    assert!(out.status.success(), "sieve {args:?} failed: {}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    let stdout = ok(args);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("sieve {args:?}: not JSON ({e}): {stdout}"))
}

/// Runs a command that must fail; checks it printed exactly one `error:` line containing
/// every one of `needles`, and returns stderr.
fn fails(args: &[&str], needles: &[&str]) -> String {
    fails_with(args, &[], needles)
}

/// [`fails`] with environment variables set.
fn fails_with(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let out = sieve_with(args, None, env);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "sieve {args:?} should fail with status 1: {err}"
    );
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line expected: {err}");
    for needle in needles {
        assert!(errors[0].contains(needle), "{needle:?} not in {:?}", errors[0]);
    }
    err
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn paths(hits: &Value) -> Vec<String> {
    hits.as_array()
        .unwrap()
        .iter()
        .map(|h| h["metadata"]["path"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn index_search_change_and_delete() {
    let dir = tempdir("index");
    let docs = dir.join("docs");
    fs::create_dir_all(docs.join("sub")).unwrap();
    fs::create_dir_all(docs.join(".hidden")).unwrap();
    fs::write(
        docs.join("cooking.md"),
        "# Cooking\n\nLamb chops with rosemary and garlic, roasted in a hot oven.\n\n## Sides\n\nServe with roast potatoes.\n",
    )
    .unwrap();
    fs::write(
        docs.join("tax.txt"),
        "Quarterly tax filing deadlines fall in April, June and September.\n",
    )
    .unwrap();
    fs::write(
        docs.join("sub/rust.html"),
        "<html><head><title>Rust &amp; safety</title><script>var x = '<p>no</p>';</script></head>\
         <body><h1>Rust</h1><p>Rust is a systems programming language focused on memory safety.</p></body></html>",
    )
    .unwrap();
    fs::write(
        docs.join("guide.rst"),
        "Guide\n=====\n\nHow to tune the garden sprinkler timer.\n",
    )
    .unwrap();
    fs::write(docs.join(".hidden/secret.md"), "hidden").unwrap();
    // Long enough for several chunks: short paragraphs, then one paragraph longer than a chunk.
    let sentence = |i: usize| {
        format!(
            "Sentence {i} is about topic {} and the colour {}.",
            i % 7,
            ["red", "blue"][i % 2]
        )
    };
    let mut long = String::from("# Long\n\n");
    for p in 0..8 {
        long += &(0..6).map(|i| sentence(p * 6 + i)).collect::<Vec<_>>().join(" ");
        long += "\n\n";
    }
    long += &(100..160).map(sentence).collect::<Vec<_>>().join(" ");
    fs::write(docs.join("long.md"), &long).unwrap();
    fs::write(docs.join("image.png"), [0u8, 1, 2]).unwrap();
    let db = dir.join("db.sieve");
    let (db, docs_s) = (s(&db), s(&docs));

    let report = json(&["index", docs_s, "--db", db, "--json", "--quiet"]);
    assert_eq!(report["files"]["new"], 5, "{report}");
    assert_eq!(report["files"]["skipped"], 0);
    let written = report["chunks"]["written"].as_u64().unwrap();
    assert!(
        written >= 8,
        "cooking.md has two sections, long.md several chunks: {report}"
    );
    assert_eq!(report["documents"], written);

    let hits = json(&[
        "search",
        "--db",
        db,
        "lamb chops with rosemary",
        "--json",
        "-k",
        "3",
        "--quiet",
    ]);
    let first = &hits[0];
    assert_eq!(first["metadata"]["path"], "cooking.md", "{hits}");
    assert_eq!(first["metadata"]["title"], "Cooking");
    assert!(first["reranker"].is_object(), "reranked by default");
    // byte_start..byte_end is the chunk's place in the file.
    let file = fs::read_to_string(docs.join("cooking.md")).unwrap();
    let (start, end) = (
        first["metadata"]["byte_start"].as_u64().unwrap() as usize,
        first["metadata"]["byte_end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&file[start..end], first["text"].as_str().unwrap());

    let hits = json(&[
        "search",
        "--db",
        db,
        "programming language",
        "--filter",
        "path=sub/rust.html and chunk>=0",
        "--mode",
        "bm25",
        "--rerank",
        "0",
        "--json",
        "--quiet",
    ]);
    assert_eq!(paths(&hits), ["sub/rust.html"]);
    assert_eq!(hits[0]["metadata"]["title"], "Rust & safety");
    assert!(!hits[0]["text"].as_str().unwrap().contains("var x"), "script dropped");
    assert!(hits[0]["reranker"].is_null(), "--rerank 0 disables the rerank stage");

    let table = ok(&[
        "search",
        "--db",
        db,
        "sprinkler timer",
        "--quiet",
        "--rerank-mode",
        "replace",
    ]);
    let top = table.lines().next().unwrap_or_default();
    assert!(
        top.trim_start().starts_with("1 ") && top.contains("guide.rst:0"),
        "{table}"
    );

    let diverse = json(&[
        "search",
        "--db",
        db,
        "sprinkler timer",
        "--diversity",
        "0.5",
        "-k",
        "3",
        "--json",
        "--quiet",
    ]);
    assert_eq!(diverse.as_array().map(Vec::len), Some(3), "{diverse}");
    fails(
        &["search", "--db", db, "sprinkler timer", "--diversity", "2"],
        &["diversity must be within 0 and 1"],
    );

    // One file changes: only it is re-encoded.
    fs::write(docs.join("tax.txt"), "Quarterly tax filing deadlines moved to May.\n").unwrap();
    let report = json(&["index", docs_s, "--db", db, "--json", "--quiet"]);
    assert_eq!(report["files"]["changed"], 1, "{report}");
    assert_eq!(report["files"]["unchanged"], 4, "{report}");
    assert_eq!(report["files"]["new"], 0);
    assert_eq!(report["chunks"]["written"], 1, "only tax.txt's chunk: {report}");
    assert_eq!(report["documents"], written);

    // One file is deleted: its chunks go, and search no longer finds it.
    fs::remove_file(docs.join("cooking.md")).unwrap();
    let report = json(&["index", docs_s, "--db", db, "--json", "--quiet"]);
    assert_eq!(report["files"]["removed"], 1, "{report}");
    assert_eq!(report["files"]["unchanged"], 4, "{report}");
    assert_eq!(report["chunks"]["written"], 0);
    let deleted = report["chunks"]["deleted"].as_u64().unwrap();
    assert!(deleted >= 2, "{report}");
    let hits = json(&["search", "--db", db, "lamb chops with rosemary", "--json", "--quiet"]);
    assert!(!paths(&hits).contains(&"cooking.md".to_string()), "{hits}");
    assert!(!hits.as_array().unwrap().is_empty());

    let info = json(&["info", "--db", db, "--json", "--quiet"]);
    assert_eq!(info["documents"], written - deleted);
    assert_eq!(info["dense"], info["documents"]);
    assert_eq!(info["config"]["dense"], "sentence-transformers/all-MiniLM-L6-v2");

    // long.md's chunks: each fits the dense model untruncated, consecutive ones overlap, and
    // together they cover every sentence.
    let collection = sieve::engine::Collection::open(db).unwrap();
    let mut chunks: Vec<(u64, usize, usize, String)> = collection
        .iter()
        .map(Result::unwrap)
        .filter(|d| d.metadata["path"] == "long.md")
        .map(|d| {
            let m = &d.metadata;
            let n = m["chunk"].as_u64().unwrap();
            (
                n,
                m["byte_start"].as_u64().unwrap() as usize,
                m["byte_end"].as_u64().unwrap() as usize,
                d.text,
            )
        })
        .collect();
    drop(collection);
    chunks.sort();
    assert!(chunks.len() >= 4, "{} chunks", chunks.len());
    let model = sieve::SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2").unwrap();
    let tokenizer = model.tokenizer();
    for (i, (n, start, end, text)) in chunks.iter().enumerate() {
        assert_eq!(*n, i as u64);
        assert_eq!(&long[*start..*end], text);
        let tokens = tokenizer.token_offsets(text).unwrap().len() + 2; // and [CLS], [SEP]
        assert!(tokens <= model.max_seq_length(), "chunk {n} has {tokens} tokens");
        if i > 0 && !text.starts_with('#') {
            assert!(*start < chunks[i - 1].2, "chunk {n} overlaps the previous one");
        }
    }
    for i in (0..48).chain(100..160) {
        let needle = format!("Sentence {i} ");
        assert!(
            chunks.iter().any(|c| c.3.contains(&needle)),
            "{needle:?} is in no chunk"
        );
    }
}

#[test]
fn encode_matches_the_library() {
    let dir = tempdir("encode");
    let lines = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "",
        "He drove to the stadium.",
    ];
    let input = dir.join("texts.txt");
    fs::write(&input, lines.join("\n") + "\n").unwrap();
    let output = dir.join("dense.jsonl");
    let dense_model = "sentence-transformers/all-MiniLM-L6-v2";
    ok(&[
        "encode",
        "--model",
        dense_model,
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--quiet",
    ]);
    let expected = sieve::SentenceTransformer::from_pretrained(dense_model)
        .unwrap()
        .encode(&lines)
        .unwrap();
    let written = fs::read_to_string(&output).unwrap();
    assert_eq!(written.lines().count(), lines.len());
    for (i, line) in written.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let got: Vec<f64> = v["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(got.len(), 384);
        for (g, e) in got.iter().zip(expected.row(i)) {
            assert!((g - *e as f64).abs() < 1e-6, "line {i}: {g} vs {e}");
        }
    }

    let sparse_model = "rasyosef/splade-tiny";
    let stdin = lines.join("\n");
    let out = sieve_with_stdin(
        &[
            "encode",
            "--model",
            sparse_model,
            "--kind",
            "sparse",
            "--input",
            "-",
            "--quiet",
        ],
        Some(&stdin),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = sieve::SparseEncoder::from_pretrained(sparse_model)
        .unwrap()
        .encode(&lines)
        .unwrap();
    let written = String::from_utf8(out.stdout).unwrap();
    assert_eq!(written.lines().count(), lines.len());
    for (i, line) in written.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let indices: Vec<u64> = v["indices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        let values: Vec<f64> = v["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        let row = expected.row(i);
        assert_eq!(
            indices,
            row.indices.iter().map(|&x| x as u64).collect::<Vec<_>>(),
            "line {i}"
        );
        for (g, e) in values.iter().zip(&row.values) {
            assert!((g - *e as f64).abs() < 1e-6, "line {i}: {g} vs {e}");
        }
    }
}

#[test]
fn rank_orders_by_cross_encoder_score() {
    let dir = tempdir("rank");
    let docs = [
        "A man is eating food.",
        "A monkey is playing drums.",
        "A man is eating a piece of bread.",
    ];
    let input = dir.join("docs.txt");
    fs::write(&input, docs.join("\n")).unwrap();
    let model = "sieve/stsb-minilm-l6-ce";
    let query = "A man is eating pasta.";
    let hits = json(&[
        "rank",
        "--model",
        model,
        "--query",
        query,
        "--input",
        s(&input),
        "--top-k",
        "2",
        "--json",
    ]);
    let expected = sieve::CrossEncoder::from_pretrained(model)
        .unwrap()
        .rank(query, &docs, &sieve::RankOptions::default())
        .unwrap();
    let hits = hits.as_array().unwrap();
    assert_eq!(hits.len(), 2);
    for (i, (hit, want)) in hits.iter().zip(&expected).enumerate() {
        assert_eq!(hit["rank"], i + 1);
        assert_eq!(hit["corpus_id"], want.corpus_id);
        assert_eq!(hit["text"], docs[want.corpus_id]);
        assert!((hit["score"].as_f64().unwrap() - want.score as f64).abs() < 1e-6);
    }
}

#[test]
fn import_beir_and_eval_against_hand_computed_scores() {
    let dir = tempdir("eval");
    let beir = dir.join("beir");
    fs::create_dir_all(&beir).unwrap();
    fs::write(
        beir.join("corpus.jsonl"),
        [
            r#"{"_id": "d1", "title": "", "text": "apple banana cherry"}"#,
            r#"{"_id": "d2", "title": "", "text": "apple apple grape"}"#,
            r#"{"_id": "d3", "title": "", "text": "kiwi lemon mango"}"#,
            r#"{"_id": "d4", "title": "", "text": "banana banana split"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let queries = dir.join("queries.jsonl");
    fs::write(
        &queries,
        [
            r#"{"_id": "q1", "text": "grape"}"#,
            r#"{"_id": "q2", "text": "banana"}"#,
            r#"{"_id": "q3", "text": "not judged, not run"}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let qrels = dir.join("qrels.tsv");
    fs::write(
        &qrels,
        "query-id\tcorpus-id\tscore\nq1\td2\t2\nq1\td3\t1\nq2\td1\t2\nq2\td4\t0\n",
    )
    .unwrap();
    let db = dir.join("db.sieve");
    let db = s(&db);

    let report = json(&["import-beir", s(&beir), "--db", db, "--json", "--quiet"]);
    assert_eq!(
        (report["added"].as_u64(), report["documents"].as_u64()),
        (Some(4), Some(4)),
        "{report}"
    );
    // Running it again resumes: nothing is re-encoded.
    let report = json(&["import-beir", s(&beir), "--db", db, "--json", "--quiet"]);
    assert_eq!(
        (report["added"].as_u64(), report["unchanged"].as_u64()),
        (Some(0), Some(4)),
        "{report}"
    );

    let args = [
        "eval",
        "--db",
        db,
        "--queries",
        s(&queries),
        "--qrels",
        s(&qrels),
        "--mode",
        "bm25",
        "--rerank",
        "0",
        "--quiet",
    ];
    let scores = json(&[&args[..], &["--json"]].concat());
    // BM25 ranks q1 "grape": [d2] (only match); q2 "banana": [d4 (tf 2), d1 (tf 1)].
    // gain = grade, discount = log2(rank + 1).
    let ndcg_q1 = (2.0 / 2f64.log2()) / (2.0 / 2f64.log2() + 1.0 / 3f64.log2());
    let ndcg_q2 = (0.0 / 2f64.log2() + 2.0 / 3f64.log2()) / (2.0 / 2f64.log2());
    let expect = [
        ("ndcg@10", (ndcg_q1 + ndcg_q2) / 2.0),
        ("recall@100", (0.5 + 1.0) / 2.0),
        ("mrr@10", (1.0 + 0.5) / 2.0),
    ];
    for (key, value) in expect {
        let got = scores[key].as_f64().unwrap();
        assert!((got - value).abs() < 1e-9, "{key}: {got} vs {value} in {scores}");
    }
    assert_eq!(scores["queries"], 2, "only judged queries run");

    let table = ok(&args);
    assert!(
        table.contains("nDCG@10") && table.contains(&format!("{:.4}", (ndcg_q1 + ndcg_q2) / 2.0)),
        "{table}"
    );

    let bad = dir.join("bad-qrels.tsv");
    fs::write(&bad, "query-id\tcorpus-id\tscore\nq1\td2\t2\nq1 d3 high\n").unwrap();
    let bad_path = format!("{}:3", bad.display());
    fails(
        &[
            "eval",
            "--db",
            db,
            "--queries",
            s(&queries),
            "--qrels",
            s(&bad),
            "--quiet",
        ],
        &[&bad_path, "expected"],
    );
}

#[test]
fn bad_input_gives_one_clear_line() {
    let dir = tempdir("errors");
    let db = dir.join("db.sieve");
    let db = s(&db);

    let missing = dir.join("no-such-folder");
    fails(&["index", s(&missing), "--db", db], &["cannot index", "no-such-folder"]);
    assert!(!dir.join("db.sieve").exists(), "nothing is created for a bad path");

    let empty = dir.join("empty");
    fs::create_dir_all(&empty).unwrap();
    fs::write(empty.join("picture.png"), [1u8]).unwrap();
    fails(&["index", s(&empty), "--db", db], &["no indexable files", "empty"]);

    fails(
        &["search", "--db", db, "x", "--filter", "chunk >= and"],
        &["invalid --filter", "position 10", "expected a number after `>=`"],
    );
    fails(
        &["search", "--db", db, "x", "--filter", "(kind in (a, b)"],
        &["position 16", "expected `)`"],
    );
    // 60,000 nested parentheses aborted the process with a stack overflow (exit 134).
    let deep = format!("{}kind=a{}", "(".repeat(60_000), ")".repeat(60_000));
    fails(
        &["search", "--db", db, "x", "--filter", &deep],
        &["invalid --filter", "deeper than 64 levels"],
    );
    fails(&["search", "--db", db, "anything"], &["no collection at"]);
    fails(
        &["encode", "--model", "m", "--input", s(&dir.join("nope.txt"))],
        &["cannot read", "nope.txt"],
    );

    // Unreadable and non-UTF-8 files are skipped with a warning; the rest is indexed.
    let docs = dir.join("docs");
    fs::create_dir_all(&docs).unwrap();
    fs::write(docs.join("good.md"), "A readable note about gardening.").unwrap();
    fs::write(docs.join("latin1.txt"), b"caf\xe9 au lait").unwrap();
    let locked = docs.join("locked.txt");
    fs::write(&locked, "secret").unwrap();
    let locked_blocks_reads = {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        fs::read(&locked).is_err()
    };
    let out = sieve(&["index", s(&docs), "--db", db, "--json", "--quiet"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("warning: skipping") && l.contains("latin1.txt") && l.contains("not valid UTF-8")),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    if locked_blocks_reads {
        assert_eq!(report["files"]["new"], 1, "{report}");
        assert!(
            err.lines()
                .any(|l| l.starts_with("warning: skipping") && l.contains("locked.txt") && l.contains("cannot read")),
            "{err}"
        );
        assert_eq!(report["files"]["skipped"], 2, "{report}");
    } else {
        println!("running as root: chmod 000 does not block reads, the unreadable-file assert is skipped");
        assert_eq!(report["files"]["new"], 2, "{report}");
        assert_eq!(report["files"]["skipped"], 1, "{report}");
    }

    // Device and float type come from the environment, for collections as for `encode`.
    fails_with(
        &["search", "--db", db, "garden"],
        &[("SIEVE_DEVICE", "tpu")],
        &["SIEVE_DEVICE", "tpu"],
    );
    fails_with(
        &["search", "--db", db, "garden"],
        &[("SIEVE_DTYPE", "f8")],
        &["SIEVE_DTYPE", "f8"],
    );
    fails_with(
        &["search", "--db", db, "garden"],
        &[("SIEVE_DTYPE", "f16")],
        &["f16", "GPU"],
    );
    if cfg!(feature = "cuda") {
        println!("skipped the SIEVE_DEVICE=cuda check: this build has the cuda feature");
    } else {
        fails_with(
            &["search", "--db", db, "garden"],
            &[("SIEVE_DEVICE", "cuda")],
            &["cuda", "feature"],
        );
    }
    // The refused opens left the collection as it was.
    let hits = json(&["search", "--db", db, "gardening", "--json"]);
    assert!(hits.to_string().contains("good.md"), "{hits}");
}

#[test]
fn a_collection_built_in_int8_is_searched_in_int8() {
    let dir = tempdir("int8");
    let beir = dir.join("beir");
    fs::create_dir_all(&beir).unwrap();
    fs::write(
        beir.join("corpus.jsonl"),
        [
            r#"{"_id": "d1", "title": "", "text": "Mitochondria produce most of the cell's energy."}"#,
            r#"{"_id": "d2", "title": "", "text": "The stock market fell sharply on Monday."}"#,
            r#"{"_id": "d3", "title": "", "text": "Photosynthesis turns light into chemical energy in plants."}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let db = dir.join("db");
    let out = sieve_with(
        &["import-beir", s(&beir), "--db", s(&db), "-q"],
        None,
        &[("SIEVE_DTYPE", "int8")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info = json(&["info", "--db", s(&db), "--json"]);
    assert_eq!(info["dtype"], "int8", "{info}");
    assert!(ok(&["info", "--db", s(&db)]).contains("precision     int8"));
    // No SIEVE_DTYPE: the query is encoded in int8 like the documents.
    let hits = json(&[
        "search",
        "--db",
        s(&db),
        "--json",
        "--rerank",
        "0",
        "what powers a cell",
    ]);
    assert_eq!(hits[0]["id"], "d1", "{hits}");
    // Writing f32 vectors into it is refused, and says how to open it.
    fs::write(
        beir.join("corpus.jsonl"),
        r#"{"_id": "d4", "title": "", "text": "A new document."}"#,
    )
    .unwrap();
    fails_with(
        &["import-beir", s(&beir), "--db", s(&db)],
        &[("SIEVE_DTYPE", "f32")],
        &["int8", "f32"],
    );
}

/// A directory that cannot be read on a re-index (a dangling link where it was, or no read
/// permission) keeps what was indexed from it, with a warning; it used to count its files as
/// removed and delete their chunks. Also: output into a pipe its reader closed ends quietly.
#[test]
fn an_unreadable_directory_keeps_its_chunks_and_a_closed_pipe_ends_quietly() {
    let dir = tempdir("unreadable");
    let docs = dir.join("docs");
    fs::create_dir_all(docs.join("kept")).unwrap();
    fs::create_dir_all(docs.join("locked")).unwrap();
    fs::write(
        docs.join("top.md"),
        "Sourdough needs a lively starter and a long, cool rise.\n",
    )
    .unwrap();
    fs::write(
        docs.join("kept/a.md"),
        "Tide tables list the hours of high and low water.\n",
    )
    .unwrap();
    fs::write(
        docs.join("locked/b.md"),
        "Violin strings are tuned in perfect fifths.\n",
    )
    .unwrap();
    let db = dir.join("db.sieve");
    let (db, docs_s) = (s(&db), s(&docs));
    let report = json(&["index", docs_s, "--db", db, "--json", "--quiet"]);
    assert_eq!(report["files"]["new"], 3, "{report}");
    let documents = report["documents"].clone();

    // `kept/` becomes a link to nowhere (an unmounted drive, a moved folder).
    fs::rename(docs.join("kept"), dir.join("kept-moved")).unwrap();
    std::os::unix::fs::symlink(dir.join("nowhere"), docs.join("kept")).unwrap();
    // `locked/` loses its permissions (root reads it anyway: then that half is skipped).
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(docs.join("locked"), fs::Permissions::from_mode(0o000)).unwrap();
    let locked = fs::read_dir(docs.join("locked")).is_err();
    if !locked {
        eprintln!("skipped the permission half: this user (root?) reads a mode-000 directory");
    }

    let out = sieve(&["index", docs_s, "--db", db, "--json"]);
    fs::set_permissions(docs.join("locked"), fs::Permissions::from_mode(0o755)).unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["files"]["removed"], 0, "{report}");
    assert_eq!(report["chunks"]["deleted"], 0, "{report}");
    assert_eq!(report["documents"], documents, "{report}");
    let err = stderr(&out);
    assert!(err.contains("warning: cannot read") && err.contains("kept"), "{err}");
    assert!(err.contains("keeping what was indexed from it"), "{err}");
    if locked {
        assert!(err.contains("locked"), "{err}");
    }
    let hits = json(&["search", "--db", db, "tide tables", "--json", "--rerank", "0", "-q"]);
    assert_eq!(hits[0]["metadata"]["path"], "kept/a.md", "{hits}");

    // Once the folder is back and readable, nothing changed; once it is really gone, its
    // chunks go.
    fs::remove_file(docs.join("kept")).unwrap();
    fs::rename(dir.join("kept-moved"), docs.join("kept")).unwrap();
    let report = json(&["index", docs_s, "--db", db, "--json", "--quiet"]);
    assert_eq!(report["files"]["unchanged"], 3, "{report}");
    fs::remove_dir_all(docs.join("kept")).unwrap();
    let report = json(&["index", docs_s, "--db", db, "--json", "--quiet"]);
    assert_eq!(report["files"]["removed"], 1, "{report}");

    // `sieve search … | head`: the reader is gone before the results are printed.
    for args in [
        &["search", "--db", db, "sourdough", "--rerank", "0"][..],
        &["info", "--db", db][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sieve"))
            .args(args)
            .env("HF_HUB_OFFLINE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}

/// Starts `sieve ARGS`, SIGKILLs it after `after_ms`; whether it had finished by then.
fn run_then_kill(args: &[&str], after_ms: u64) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sieve"))
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(after_ms));
    let finished = child.try_wait().unwrap().is_some();
    child.kill().ok();
    child.wait().unwrap();
    finished
}

/// `sieve index` killed (SIGKILL) at random points, then run again to the end: the collection
/// opens every time and ends up exactly as one uninterrupted run makes it.
#[test]
fn a_killed_index_run_is_finished_by_the_next_one() {
    let dir = tempdir("killed-index");
    let docs = dir.join("docs");
    fs::create_dir_all(&docs).unwrap();
    for i in 0..240 {
        let body: String = (0..(3 + i % 5))
            .map(|p| {
                format!(
                    "Paragraph {p} of note {i}: topic {} with colour {}.\n\n",
                    i % 7,
                    ["red", "blue"][p % 2]
                )
            })
            .collect();
        fs::write(docs.join(format!("note-{i:03}.md")), format!("# Note {i}\n\n{body}")).unwrap();
    }
    let docs_s = s(&docs);
    let contents = |db: &Path| -> Vec<(String, String)> {
        let c = sieve::engine::Collection::open(db).unwrap();
        let mut all: Vec<(String, String)> = c.iter().map(|d| d.unwrap()).map(|d| (d.id, d.text)).collect();
        all.sort();
        let info = c.info().unwrap();
        let n = Some(all.len());
        assert_eq!((info.dense, info.sparse, info.text), (n, n, n), "{}", db.display());
        all
    };
    let clean = dir.join("clean.sieve");
    ok(&["index", docs_s, "--db", s(&clean), "-q"]);
    let want = contents(&clean);

    let db = dir.join("killed.sieve");
    for (round, after_ms) in [1_000u64, 2_500, 4_000].into_iter().enumerate() {
        let finished = run_then_kill(&["index", docs_s, "--db", s(&db), "-q"], after_ms);
        if db.join("SIEVE_COLLECTION").exists() {
            contents(&db); // opens, indexes agree with the store
        }
        if finished {
            eprintln!("round {round}: the run finished before the kill");
        }
    }
    ok(&["index", docs_s, "--db", s(&db), "-q"]);
    assert_eq!(contents(&db), want);
}

/// A file far larger than one tokenizing section (here ~2.6 MB of text in paragraphs, plus one
/// 1.2 MB paragraph without a blank line) is chunked section by section and written in batches:
/// every stored chunk is its byte range of the file, every word lands in a chunk, and the
/// chunks respect the budget. A BM25-only collection (words as tokens) keeps it quick.
#[test]
fn a_file_larger_than_a_section_is_chunked_in_pieces_and_written_in_batches() {
    use sieve::engine::{Collection, CollectionConfig};
    let dir = tempdir("big-file");
    let db = dir.join("db.sieve");
    let config = CollectionConfig {
        dense: None,
        sparse: None,
        reranker: None,
        ..CollectionConfig::default()
    };
    Collection::create(&db, config).unwrap().close().unwrap();
    let mut text = String::new();
    let mut word = 0;
    let mut words = |n: usize, text: &mut String| {
        for _ in 0..n {
            text.push_str(&format!("w{word} "));
            word += 1;
        }
    };
    for _ in 0..2_000 {
        words(150, &mut text);
        text.push_str("\n\n");
    }
    words(150_000, &mut text);
    let file = dir.join("big.txt");
    fs::write(&file, &text).unwrap();
    let total_words = word;
    assert!(text.len() > 3 << 20, "{} bytes", text.len());

    let report = json(&["index", s(&file), "--db", s(&db), "--json", "-q"]);
    assert_eq!(report["files"]["new"], 1, "{report}");
    let c = Collection::open(&db).unwrap();
    let mut chunks: Vec<(u64, usize, usize, String)> = c
        .iter()
        .map(|d| d.unwrap())
        .map(|d| {
            let m = &d.metadata;
            let range = (
                m["byte_start"].as_u64().unwrap() as usize,
                m["byte_end"].as_u64().unwrap() as usize,
            );
            (m["chunk"].as_u64().unwrap(), range.0, range.1, d.text)
        })
        .collect();
    chunks.sort();
    assert_eq!(chunks.len() as u64, report["chunks"]["written"].as_u64().unwrap());
    let mut seen = vec![false; total_words];
    for (i, (n, start, end, stored)) in chunks.iter().enumerate() {
        assert_eq!(*n, i as u64, "chunk numbers run 0..n");
        assert_eq!(&text[*start..*end], stored, "chunk {n} is its byte range of the file");
        let ws: Vec<&str> = stored.split_whitespace().collect();
        assert!(ws.len() <= 200, "chunk {n}: {} words", ws.len());
        for w in ws {
            seen[w[1..].parse::<usize>().unwrap()] = true;
        }
    }
    assert!(seen.iter().all(|&s| s), "every word is in some chunk");
    drop(c);

    // Unchanged on a second run; shrunk to one paragraph, the surplus chunks go.
    let report = json(&["index", s(&file), "--db", s(&db), "--json", "-q"]);
    assert_eq!(report["files"]["unchanged"], 1, "{report}");
    fs::write(&file, "one short paragraph\n").unwrap();
    let report = json(&["index", s(&file), "--db", s(&db), "--json", "-q"]);
    assert_eq!(
        (report["chunks"]["written"].as_u64(), report["documents"].as_u64()),
        (Some(1), Some(1)),
        "{report}"
    );
}

/// An mdBook-like folder: three chapters and `print.html`, the page that concatenates them.
/// `sieve index` reports the page; a search folds the page's copy of a passage into the
/// chapter's hit (so the top 3 holds three different passages, where `--keep-duplicates`
/// shows the same passage twice); `--exclude print.html` leaves the page out.
#[test]
fn an_all_chapters_page_is_reported_and_its_copies_fold_into_one_hit() {
    let dir = tempdir("print-page");
    let book = dir.join("book");
    fs::create_dir_all(&book).unwrap();
    let chapters = [
        (
            "ownership",
            "Ownership",
            "Every value in Rust has a single owner, the variable that holds it. When the owner goes out of scope the value is dropped and its memory is returned. Assigning a heap value to another variable moves it, and the first variable can no longer be used.",
        ),
        (
            "borrowing",
            "References and borrowing",
            "A reference lets code use a value without taking ownership of it. Any number of shared references may exist at once, or exactly one mutable reference, never both. The borrow checker enforces these rules at compile time, so data races cannot happen.",
        ),
        (
            "lifetimes",
            "Lifetimes",
            "Lifetimes name the regions of code in which a reference stays valid. The compiler infers most of them, and annotations are only needed when a function returns a reference derived from its arguments, so that callers know how long the result lives.",
        ),
    ];
    let page = |title: &str, body: &str| format!("<html><head><title>{title}</title></head><body>{body}</body></html>");
    let section = |title: &str, text: &str| format!("<h1>{title}</h1><p>{text}</p>");
    let mut all = String::new();
    for (file, title, text) in chapters {
        // Long enough for the duplicate report (which ignores files of a few dozen words).
        let notes: String = (0..60).map(|w| format!(" {file}note{w}")).collect();
        let text = format!("{text}</p><p>Notes:{notes}");
        fs::write(book.join(format!("{file}.html")), page(title, &section(title, &text))).unwrap();
        all.push_str(&section(title, &text));
    }
    fs::write(book.join("print.html"), page("The book", &all)).unwrap();
    let db = dir.join("db.sieve");
    let (db, book_s) = (s(&db), s(&book));

    let out = sieve(&["index", book_s, "--db", db, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dups = report["duplicate_files"].as_array().unwrap();
    assert_eq!(dups.len(), 1, "{report}");
    assert_eq!(dups[0]["path"], "print.html");
    assert_eq!(
        dups[0]["repeats"],
        serde_json::json!(["borrowing.html", "lifetimes.html", "ownership.html"])
    );
    assert!(stderr(&out).contains("--exclude 'print.html'"), "{}", stderr(&out));

    let query = "how many mutable references can exist at once";
    let top3 = |extra: &[&str]| {
        let mut args = vec!["search", "--db", db, query, "--json", "-k", "3", "-q"];
        args.extend_from_slice(extra);
        let hits = json(&args);
        let shown: Vec<String> = paths(&hits);
        eprintln!("{extra:?}: {shown:?}");
        hits
    };
    let kept = top3(&["--keep-duplicates"]);
    let kept_paths = paths(&kept);
    assert!(
        kept_paths.contains(&"borrowing.html".to_string()) && kept_paths.contains(&"print.html".to_string()),
        "without folding the passage shows twice: {kept_paths:?}"
    );
    let folded = top3(&[]);
    let folded_paths = paths(&folded);
    assert_eq!(folded_paths.len(), 3);
    // Three different passages: no hit repeats another.
    use sieve::engine::duplicates::Shingles;
    let texts: Vec<Shingles> = folded
        .as_array()
        .unwrap()
        .iter()
        .map(|h| Shingles::of(h["text"].as_str().unwrap()))
        .collect();
    for (i, a) in texts.iter().enumerate() {
        for b in &texts[i + 1..] {
            assert!(!a.is_near_duplicate(b), "two hits repeat one passage: {folded_paths:?}");
        }
    }
    let first = &folded[0];
    assert!(
        ["borrowing.html", "print.html"].contains(&first["metadata"]["path"].as_str().unwrap()),
        "{folded}"
    );
    assert_eq!(first["duplicates"].as_array().map(Vec::len), Some(1), "{folded}");
    // Text output shows where else the passage is.
    let text = ok(&["search", "--db", db, query, "-k", "3", "-q"]);
    assert!(text.contains("also in: "), "{text}");

    let report = json(&["index", book_s, "--db", db, "--json", "-q", "--exclude", "print.html"]);
    assert_eq!(report["files"]["removed"], 1, "{report}");
    assert_eq!(report["duplicate_files"], serde_json::json!([]), "{report}");
}

/// `sieve train` on a six-document BEIR folder with a tiny random model: a checkpoint and a dev
/// evaluation per epoch, the final model, `--resume` after the last checkpoint, and the errors.
#[cfg(feature = "train")]
#[test]
fn train_checkpoints_evaluates_and_resumes() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/bert-st-mean-norm");
    if !fixture.is_dir() {
        eprintln!(
            "skipped: {} not found (the shared fixtures sit beside the repository)",
            fixture.display()
        );
        return;
    }
    let dir = tempdir("train");
    let data = dir.join("beir");
    fs::create_dir_all(data.join("qrels")).unwrap();
    let texts = [
        (
            "What is the weather like?",
            "The weather is lovely today, so sunny outside.",
        ),
        ("Where did he drive?", "He drove his car to the stadium."),
        ("What is the man eating?", "A man is eating a piece of bread."),
        ("Who plays the drums?", "A monkey is playing drums."),
        ("How is the new movie?", "The new movie is awesome."),
        ("What does the woman play?", "A woman plays the violin."),
    ];
    let line = |id: usize, field: &str, text: &str| format!("{{\"_id\": \"{id}\", \"{field}\": \"{text}\"}}\n");
    let corpus: String = texts.iter().enumerate().map(|(i, (_, d))| line(i, "text", d)).collect();
    let queries: String = texts.iter().enumerate().map(|(i, (q, _))| line(i, "text", q)).collect();
    fs::write(data.join("corpus.jsonl"), corpus).unwrap();
    fs::write(data.join("queries.jsonl"), queries).unwrap();
    let qrels: String = (0..6).map(|i| format!("{i}\t{i}\t1\n")).collect();
    fs::write(
        data.join("qrels/train.tsv"),
        format!("query-id\tcorpus-id\tscore\n{qrels}"),
    )
    .unwrap();
    fs::write(
        data.join("qrels/dev.tsv"),
        "query-id\tcorpus-id\tscore\n4\t4\t1\n5\t5\t1\n",
    )
    .unwrap();
    let out_dir = dir.join("out");
    let (init, data_arg, dev, out_arg) = (
        fixture.to_str().unwrap(),
        data.to_str().unwrap(),
        data.join("qrels/dev.tsv"),
        out_dir.to_str().unwrap(),
    );
    let dev = dev.to_str().unwrap();
    let base = [
        "train",
        "dense",
        "--init",
        init,
        "--data",
        data_arg,
        "--dev-qrels",
        dev,
        "--out",
        out_arg,
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = sieve(&args);
        assert!(out.status.success(), "sieve {args:?} failed: {}", stderr(&out));
        (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
    };
    let (stdout, notes) = run(&["--epochs", "2"]);
    assert!(
        notes.contains("on 4 examples"),
        "the 2 dev queries are held out: {notes}"
    );
    assert!(
        notes.contains("step 1/4: epoch 1 loss"),
        "a step line where no bar is drawn: {notes}"
    );
    assert!(
        notes.contains("epoch 1: dev nDCG@10") && notes.contains("epoch 2: dev nDCG@10"),
        "{notes}"
    );
    assert!(stdout.contains("trained 4 steps"), "{stdout}");
    for file in [
        "checkpoint-1/model.safetensors",
        "checkpoint-1/optimizer.safetensors",
        "checkpoint-2/modules.json",
        "model.safetensors",
        "1_Pooling/config.json",
    ] {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let (stdout, notes) = run(&["--epochs", "3", "--resume"]);
    assert!(notes.contains("resuming after epoch 2"), "{notes}");
    assert!(notes.contains("with its optimizer state"), "{notes}");
    assert!(
        notes.contains("epoch 3: dev") && !notes.contains("epoch 1: dev"),
        "{notes}"
    );
    assert!(stdout.contains("trained 6 steps"), "{stdout}");
    assert!(out_dir.join("checkpoint-3/model.safetensors").is_file());
    assert!(
        !out_dir.join("optimizer.safetensors").exists(),
        "the final model folder holds no training state"
    );
    let baseline = ok(&[
        "train",
        "dense",
        "--init",
        init,
        "--data",
        data_arg,
        "--dev-qrels",
        dev,
        "--eval-only",
    ]);
    assert!(
        baseline.contains("dev nDCG@10") && baseline.contains("(2 queries)"),
        "{baseline}"
    );

    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().chain(extra).copied().collect() };
    fails(&with(&["--loss", "listnet"]), &["--loss", "listnet", "dense"]);
    fails(&with(&["--hard-negatives", "3"]), &["--hard-negatives needs --db"]);
}

/// `sieve reindex` killed (SIGKILL) at random points, then run again: the new collection opens
/// every time, its indexes agree with its store, and the last run completes it with every
/// document of the source.
#[test]
fn a_killed_reindex_is_finished_by_the_next_one() {
    use sieve::engine::{Collection, Document};
    let dir = tempdir("killed-reindex");
    let (src, dst) = (dir.join("src.sieve"), dir.join("dst.sieve"));
    let source = Collection::create(&src, common::tiny_collection_config()).unwrap();
    let docs: Vec<Document> = (0..600)
        .map(|i| {
            Document::new(
                format!("d{i}"),
                format!("note {i} on topic {} in colour {}", i % 7, i % 3),
            )
        })
        .collect();
    source.add(docs).unwrap();
    drop(source);
    let other = common::fixture("distilbert-st-cls");
    let args = ["reindex", "--db", s(&src), "--out", s(&dst), "--dense", s(&other), "-q"];
    let contents = |db: &Path| -> Vec<(String, String)> {
        let c = Collection::open(db).unwrap();
        let mut all: Vec<(String, String)> = c.iter().map(|d| d.unwrap()).map(|d| (d.id, d.text)).collect();
        all.sort();
        let info = c.info().unwrap();
        let n = Some(all.len());
        assert_eq!((info.dense, info.sparse, info.text), (n, n, n), "{}", db.display());
        all
    };
    for after_ms in [300u64, 800, 1_500] {
        run_then_kill(&args, after_ms);
        if dst.join("SIEVE_COLLECTION").exists() {
            contents(&dst);
        }
    }
    let stdout = ok(&args);
    assert!(stdout.contains("documents written"), "{stdout}");
    assert_eq!(contents(&dst), contents(&src));
    let info = Collection::open(&dst).unwrap().info().unwrap();
    assert_eq!(info.config.dense.as_deref(), Some(s(&other)));
    fails(&["reindex", "--db", s(&src), "--out", s(&src)], &["this collection"]);
}
