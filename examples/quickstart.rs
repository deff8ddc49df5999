//! The sentence-transformers quickstart, section by section, in Rust.
//!
//! ```sh
//! scripts/fetch-models            # once: lays the models out in the Hugging Face cache
//! cargo run --release --example quickstart
//! ```
//!
//! The seed's cross-encoder (`cross-encoder/stsb-distilroberta-base`) and SPLADE model
//! (`naver/splade-cocondenser-ensembledistil`) are not available offline; the same steps run on
//! `sieve/stsb-minilm-l6-ce` and `rasyosef/splade-tiny`.
//!
//! The last section puts the three together in the embedded database: a `Collection` in a
//! directory, hybrid search (dense + SPLADE + BM25, fused) and the cross-encoder rerank stage.

use serde_json::json;
use sieve::{
    Collection, CollectionConfig, CrossEncoder, Document, Filter, RankOptions, SentenceTransformer, SparseEncoder,
};

fn print_matrix(m: &[Vec<f32>]) {
    for row in m {
        let cells: Vec<String> = row.iter().map(|x| format!("{x:8.4}")).collect();
        println!("  [{}]", cells.join(","));
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. SentenceTransformer: embeddings and their similarities.
    let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
    let sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ];
    let embeddings = model.encode(&sentences)?;
    println!("== SentenceTransformer: sentence-transformers/all-MiniLM-L6-v2");
    println!("shape: {:?}", embeddings.shape());
    let similarities = model.similarity(&embeddings, &embeddings)?;
    println!("{} similarity:", model.similarity_fn());
    print_matrix(&similarities);

    // 2. CrossEncoder: rank a corpus against a query, then the same with predict + argsort.
    let model = CrossEncoder::from_pretrained("sieve/stsb-minilm-l6-ce")?;
    let query = "A man is eating pasta.";
    let corpus = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.",
        "A monkey is playing drums.",
        "A cheetah is running behind its prey.",
    ];
    println!("\n== CrossEncoder: sieve/stsb-minilm-l6-ce");
    println!("Query: {query}");
    for hit in model.rank(query, &corpus, &RankOptions::default())? {
        println!("{:.2}\t{}", hit.score, corpus[hit.corpus_id]);
    }
    let pairs: Vec<(&str, &str)> = corpus.iter().map(|s| (query, *s)).collect();
    let scores = model.predict(&pairs)?;
    let mut ranked: Vec<usize> = (0..scores.len()).collect();
    ranked.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    println!(
        "Scores: {:?}",
        scores.iter().map(|s| format!("{s:.4}")).collect::<Vec<_>>()
    );
    println!("Indices: {ranked:?}");

    // 3. SparseEncoder: SPLADE vectors, their dot products, sparsity and top tokens.
    let model = SparseEncoder::from_pretrained("rasyosef/splade-tiny")?;
    let embeddings = model.encode(&sentences)?;
    println!("\n== SparseEncoder: rasyosef/splade-tiny");
    println!("shape: {:?}", embeddings.shape());
    println!("dot similarity:");
    print_matrix(&model.similarity(&embeddings, &embeddings));
    let stats = model.sparsity(&embeddings);
    println!("Sparsity: {:.2}%", stats.sparsity_ratio * 100.0);
    println!("Avg non-zero dimensions per embedding: {:.2}", stats.active_dims);
    for (i, sentence) in sentences.iter().enumerate() {
        let decoded: Vec<String> = model
            .decode(embeddings.row(i), 10)
            .iter()
            .map(|(t, w)| format!("({t}, {w:.4})"))
            .collect();
        println!("Sentence: {sentence}\nDecoded: [{}]", decoded.join(", "));
    }

    println!("\n== Collection: hybrid search + rerank, embedded");
    let dir = std::env::temp_dir().join(format!("sieve-quickstart-{}", std::process::id()));
    let config = CollectionConfig {
        reranker: Some("sieve/stsb-minilm-l6-ce".into()),
        ..CollectionConfig::default()
    };
    let collection = Collection::create(&dir, config)?;
    let docs = corpus.iter().enumerate().map(|(i, text)| {
        let kind = if text.contains("violin") || text.contains("drums") {
            "music"
        } else {
            "other"
        };
        Document::new(format!("s{i}"), *text).with_metadata(json!({ "kind": kind }))
    });
    collection.add(docs.collect())?;
    for hit in collection
        .search("Someone plays a musical instrument.")
        .top_k(3)
        .run()?
    {
        let first = hit.first_stage.rank;
        println!(
            "{:.4}\t{}\t(first stage #{first}, reranker {:.3})",
            hit.score,
            hit.text,
            hit.reranker.map_or(0.0, |r| r.score)
        );
    }
    let filtered = collection
        .search("A person eats")
        .filter(Filter::eq("kind", "other"))
        .top_k(2)
        .run()?;
    println!(
        "filtered to kind = other: {:?}",
        filtered.iter().map(|h| h.text.as_str()).collect::<Vec<_>>()
    );
    drop(collection);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
