//! Semantic search over a small corpus with a bi-encoder: embed the corpus once, embed each
//! query, and keep the top-k corpus entries by the model's similarity — what
//! sentence-transformers' `util.semantic_search` does.
//!
//! ```sh
//! cargo run --release --example semantic_search
//! ```

use sieve::{Embeddings, SentenceTransformer};

/// One hit: the corpus entry's index and its similarity to the query.
#[derive(Debug, Clone, Copy)]
struct Hit {
    corpus_id: usize,
    score: f32,
}

/// For each query, the `top_k` most similar corpus entries, best first.
fn semantic_search(
    model: &SentenceTransformer,
    queries: &Embeddings,
    corpus: &Embeddings,
    top_k: usize,
) -> sieve::encoders::Result<Vec<Vec<Hit>>> {
    let scores = model.similarity(queries, corpus)?;
    Ok(scores
        .into_iter()
        .map(|row| {
            let mut hits: Vec<Hit> = row
                .into_iter()
                .enumerate()
                .map(|(corpus_id, score)| Hit { corpus_id, score })
                .collect();
            hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.corpus_id.cmp(&b.corpus_id)));
            hits.truncate(top_k);
            hits
        })
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")?;
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
    let queries = [
        "A man is eating pasta.",
        "Someone in a gorilla costume is playing a set of drums.",
        "A cheetah chases prey on across a field.",
    ];
    // Corpus entries are documents, queries are queries: the model's prompts (if it has any)
    // are applied accordingly.
    let corpus_embeddings = model.encode_document(&corpus)?;
    let query_embeddings = model.encode_query(&queries)?;
    let results = semantic_search(&model, &query_embeddings, &corpus_embeddings, 5)?;
    for (query, hits) in queries.iter().zip(results) {
        println!("\nQuery: {query}");
        println!(
            "Top 5 most similar sentences in corpus ({} similarity):",
            model.similarity_fn()
        );
        for hit in hits {
            println!("  {:.4}  {}", hit.score, corpus[hit.corpus_id]);
        }
    }
    Ok(())
}
