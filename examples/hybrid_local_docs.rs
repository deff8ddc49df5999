//! A collection over a folder of notes: one document per paragraph with its file and position
//! as metadata, then hybrid searches (dense + SPLADE + BM25, fused) with metadata filters.
//!
//! ```sh
//! cargo run --release --example hybrid_local_docs              # a few notes written to a temp folder
//! cargo run --release --example hybrid_local_docs -- ~/notes   # your own .md / .txt files
//! ```
//!
//! The `sieve index` command does the same for real use (chunking by the model's token limit,
//! HTML, re-indexing only changed files); this example shows the library calls underneath.

use std::path::{Path, PathBuf};

use serde_json::json;
use sieve::engine::{Collection, CollectionConfig, Document, Filter, Fusion, SearchHit};

/// Writes a few notes in two kinds, so the filters have something to choose between.
fn sample_notes(dir: &Path) -> std::io::Result<()> {
    let notes = [
        (
            "recipes/lamb.md",
            "Lamb chops with rosemary and garlic, seared then roasted for eight minutes.\n\n\
             Rest the meat before slicing; serve with roast potatoes.",
        ),
        (
            "recipes/soup.md",
            "A quick tomato soup: onions, canned tomatoes, stock, a pinch of sugar.\n\n\
             Blend until smooth and finish with cream.",
        ),
        (
            "finance/taxes.txt",
            "Quarterly tax filing deadlines are in April, June, September and January.\n\n\
             Keep receipts for deductible expenses for at least five years.",
        ),
        (
            "finance/budget.txt",
            "The monthly budget caps groceries at 400 and eating out at 150.\n\n\
             Savings go to the index fund on the first of each month.",
        ),
    ];
    for (path, text) in notes {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("notes live in folders"))?;
        std::fs::write(path, text)?;
    }
    Ok(())
}

/// `.md` and `.txt` files under `dir`, recursively.
fn files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(files(&path)?);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("md" | "txt")) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// One document per paragraph, with the file, its folder, its extension and the paragraph
/// number as metadata.
fn paragraphs(root: &Path, path: &Path) -> std::io::Result<Vec<Document>> {
    let text = std::fs::read_to_string(path)?;
    let rel = path
        .strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/");
    let folder = rel.split('/').next().unwrap_or_default().to_string();
    let kind = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_string();
    Ok(text
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .enumerate()
        .map(|(n, p)| {
            Document::new(format!("{rel}#{n}"), p).with_metadata(json!({
                "path": rel, "folder": folder, "kind": kind, "paragraph": n,
            }))
        })
        .collect())
}

fn show(title: &str, hits: &[SearchHit]) {
    println!("\n{title}");
    for hit in hits {
        let rank = |s: Option<sieve::engine::Scored>| s.map_or("-".to_string(), |s| s.rank.to_string());
        println!(
            "  {:.4}  {:<22} dense #{:<2} sparse #{:<2} bm25 #{:<2}  {}",
            hit.score,
            hit.id,
            rank(hit.dense),
            rank(hit.sparse),
            rank(hit.bm25),
            hit.text
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let scratch = std::env::temp_dir().join(format!("sieve-hybrid-docs-{}", std::process::id()));
    let root = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let notes = scratch.join("notes");
            sample_notes(&notes)?;
            notes
        }
    };
    // No reranker here: the example is about the first stage and its filters.
    let config = CollectionConfig {
        reranker: None,
        ..CollectionConfig::default()
    };
    let collection = Collection::create(scratch.join("db"), config)?;
    let mut docs = Vec::new();
    for file in files(&root)? {
        docs.extend(paragraphs(&root, &file)?);
    }
    println!("{} paragraphs from {}", docs.len(), root.display());
    collection.add(docs)?;

    let query = "what should I cook for dinner";
    show(
        &format!("hybrid (min-max fusion): {query:?}"),
        &collection.search(query).top_k(4).run()?,
    );
    show(
        "the same, fused by distribution (DBSF)",
        &collection.search(query).fusion(Fusion::Dbsf).top_k(4).run()?,
    );
    show(
        "hybrid, only first paragraphs of .txt files: \"money\"",
        &collection
            .search("money")
            .filter(Filter::eq("kind", "txt").and(Filter::range("paragraph").lt(1.0)))
            .top_k(4)
            .run()?,
    );
    show(
        "BM25 only, folder in (recipes): \"cream\"",
        &collection
            .search("cream")
            .bm25()
            .filter(Filter::is_in("folder", ["recipes"]))
            .run()?,
    );
    drop(collection);
    std::fs::remove_dir_all(&scratch)?;
    Ok(())
}
