//! Two-stage retrieval: a fast first stage (hybrid dense + SPLADE + BM25) retrieves 100
//! candidates, a cross-encoder rescores them, and the top 10 of each ranking are printed side
//! by side.
//!
//! ```sh
//! cargo run --release --example two_stage_retrieval                 # a small built-in corpus
//! cargo run --release --example two_stage_retrieval -- --scifact    # SciFact dev queries
//! ```
//!
//! With `--scifact` the collection is `target/scifact.sieve`, as built by `scifact_eval` (the
//! first run encodes 5,183 abstracts: minutes), and relevant documents are starred.

use std::collections::HashMap;
use std::path::PathBuf;

use sieve::engine::eval::{read_jsonl, read_qrels};
use sieve::engine::{Collection, CollectionConfig, Document, Rerank};

const CORPUS: &[&str] = &[
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "Chlorophyll absorbs mostly blue and red light and reflects green.",
    "Plants take in carbon dioxide through stomata on their leaves.",
    "The Calvin cycle fixes carbon dioxide into sugars in the chloroplast stroma.",
    "Solar panels convert sunlight into electricity with photovoltaic cells.",
    "Mitochondria produce ATP through oxidative phosphorylation.",
    "Fungi obtain nutrients by decomposing organic matter.",
    "Sunlight exposure helps the skin synthesise vitamin D.",
    "Light-dependent reactions split water and release oxygen.",
    "Green is the most common colour of garden furniture.",
    "Vaccines train the immune system to recognise a pathogen.",
    "Antibiotics do not work against viral infections.",
    "Insulin lowers blood glucose by helping cells absorb it.",
    "Type 2 diabetes is associated with insulin resistance.",
    "Regular exercise improves insulin sensitivity in muscle.",
    "Sugar-sweetened drinks raise the risk of type 2 diabetes.",
    "The pancreas contains beta cells that secrete insulin.",
    "Glucose is a simple sugar with six carbon atoms.",
    "Coffee consumption has been linked to a lower risk of type 2 diabetes.",
    "Blood pressure is measured in millimetres of mercury.",
];

/// Claims, as SciFact's queries are: the default reranker (`sieve/scifact-minilm-l6-reranker`)
/// was trained to find the evidence for a scientific claim.
const QUERIES: &[&str] = &[
    "Plants convert light energy into chemical energy.",
    "Sugary drinks increase the risk of type 2 diabetes.",
    "Antibiotics are effective against viruses.",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--scifact") {
        return scifact();
    }
    let dir = std::env::temp_dir().join(format!("sieve-two-stage-{}", std::process::id()));
    let collection = Collection::create(&dir, CollectionConfig::default())?;
    let docs = CORPUS
        .iter()
        .enumerate()
        .map(|(i, text)| Document::new(format!("d{i:02}"), *text));
    collection.add(docs.collect())?;
    for query in QUERIES {
        side_by_side(&collection, query, &HashMap::new())?;
    }
    drop(collection);
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn scifact() -> Result<(), Box<dyn std::error::Error>> {
    let shared = std::env::var_os("SIEVE_SHARED").map_or_else(|| PathBuf::from("../shared"), PathBuf::from);
    let data = shared.join("data/scifact");
    let dir = PathBuf::from("target/scifact.sieve");
    let collection = if dir.exists() {
        Collection::open(&dir)?
    } else {
        eprintln!("building {} (encodes the SciFact corpus once)", dir.display());
        let collection = Collection::create(&dir, CollectionConfig::default())?;
        let corpus = read_jsonl(&data.join("corpus.jsonl"))?;
        collection.add(corpus.into_iter().map(|(id, text)| Document::new(id, text)).collect())?;
        collection
    };
    let queries: HashMap<String, String> = read_jsonl(&data.join("queries.jsonl"))?.into_iter().collect();
    let qrels = read_qrels(&data.join("qrels/dev.tsv"))?;
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    for qid in ids.into_iter().take(3) {
        side_by_side(&collection, &queries[qid], &qrels[qid])?;
    }
    Ok(())
}

/// Prints the first stage's top 10 and the reranked top 10 of `query`; `*` marks documents
/// judged relevant.
fn side_by_side(
    collection: &Collection,
    query: &str,
    relevant: &HashMap<String, u32>,
) -> Result<(), Box<dyn std::error::Error>> {
    // Stage 1: hybrid retrieval, 100 candidates, no rerank.
    let first = collection.search(query).hybrid().no_rerank().top_k(100).run()?;
    // Stage 2: the cross-encoder rescores those 100; its order alone decides.
    let reranked = collection
        .search(query)
        .hybrid()
        .rerank(100)
        .rerank_mode(Rerank::Replace)
        .top_k(10)
        .run()?;
    let mark = |id: &str| {
        if relevant.get(id).is_some_and(|&g| g > 0) {
            "*"
        } else {
            " "
        }
    };
    let cut = |text: &str| text.chars().take(44).collect::<String>();
    println!("\nQuery: {query}");
    println!(
        "{:<4}{:<56}  {:<5}{:<56}",
        "#", "first stage (hybrid, RRF)", "was", "reranked (cross-encoder)"
    );
    for (i, hit) in reranked.iter().enumerate() {
        let left = first
            .get(i)
            .map(|h| format!("{}{:<9} {}", mark(&h.id), h.id, cut(&h.text)))
            .unwrap_or_default();
        let right = format!("{}{:<9} {}", mark(&hit.id), hit.id, cut(&hit.text));
        println!("{:<4}{left:<56}  #{:<4}{right}", i + 1, hit.first_stage.rank);
    }
    println!("({} candidates reranked)", first.len());
    Ok(())
}
