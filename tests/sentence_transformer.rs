//! SentenceTransformer parity with sentence-transformers 6.2 (golden files in `../shared`).

mod common;

use std::sync::OnceLock;

use common::*;
use sieve::{EncodeOptions, SentenceTransformer, SimilarityFn};

const TOL: f32 = 1e-5;

fn minilm() -> &'static SentenceTransformer {
    static MODEL: OnceLock<SentenceTransformer> = OnceLock::new();
    MODEL.get_or_init(|| {
        SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
            .unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()))
    })
}

#[test]
fn minilm_quickstart_matches_sentence_transformers() {
    let g = golden("golden/all-MiniLM-L6-v2.json");
    let model = minilm();
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();

    let batch = model.tokenizer().encode(&texts).unwrap();
    let want_ids = unpadded(&g["input_ids"], &g["attention_mask"]);
    for (i, want) in want_ids.iter().enumerate() {
        assert_eq!(&batch.ids(i), want, "token ids of sentence {i}");
    }

    let embeddings = model.encode(&texts).unwrap();
    assert_eq!(embeddings.shape(), [3, 384]);
    assert_eq!(model.embedding_dim(), 384);
    assert_eq!(model.max_seq_length(), 256);
    assert_eq!(model.similarity_fn(), SimilarityFn::Cosine);
    assert_close(
        "embeddings",
        embeddings.as_slice(),
        &rows(&g["embeddings"]).concat(),
        TOL,
    );

    let sim = model.similarity(&embeddings, &embeddings).unwrap();
    assert_close("similarity", &sim.concat(), &rows(&g["similarity"]).concat(), TOL);
    // The seed's published figures, to four places.
    assert_eq!(
        format!("{:.4} {:.4} {:.4}", sim[0][1], sim[0][2], sim[1][2]),
        "0.6660 0.1046 0.1411"
    );
}

#[test]
fn minilm_long_documents_truncate_like_sentence_transformers() {
    let g = golden("golden/all-MiniLM-L6-v2.long-docs.json");
    let model = minilm();
    let texts = strs(&g["texts"]);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = model.tokenizer().encode(&texts).unwrap();
    for (i, want) in u32s(&g["token_counts_after_truncation"]).iter().enumerate() {
        assert_eq!(batch.ids(i).len(), *want as usize, "tokens after truncation, doc {i}");
    }
    let embeddings = model.encode(&texts).unwrap();
    assert_close(
        "long-doc embeddings",
        embeddings.as_slice(),
        &rows(&g["embeddings"]).concat(),
        TOL,
    );
}

/// A huge text (here 8 MB) is cut before tokenizing, not after: the same tokens and embedding
/// as its first few thousand words, without tokenizing megabytes it would drop.
#[test]
fn a_huge_text_gives_the_tokens_of_its_head() {
    let model = minilm();
    let g = golden("golden/all-MiniLM-L6-v2.long-docs.json");
    let text = strs(&g["texts"]).concat();
    let huge = text.repeat(8_000_000 / text.len() + 1);
    let head: String = huge.split(' ').take(4_000).collect::<Vec<_>>().join(" ");
    let tokens = model.tokenizer().encode(&[huge.as_str(), head.as_str()]).unwrap();
    assert_eq!(tokens.ids(0), tokens.ids(1));
    assert_eq!(
        tokens.ids(0).len(),
        model.max_seq_length(),
        "truncated to max_seq_length"
    );
    let embeddings = model.encode(&[huge.as_str(), head.as_str()]).unwrap();
    assert_close("huge text", embeddings.row(0), embeddings.row(1), 1e-6);
}

#[test]
fn batching_and_order_do_not_change_results() {
    let model = minilm();
    let texts = [
        "short",
        "a considerably longer sentence about the weather in spring",
        "mid length text",
    ];
    let together = model.encode(&texts).unwrap();
    let one_by_one = model
        .encode_with(
            &texts,
            &EncodeOptions {
                batch_size: 1,
                ..Default::default()
            },
        )
        .unwrap();
    assert_close("batch 3 vs batch 1", together.as_slice(), one_by_one.as_slice(), 1e-5);

    // Long documents: one batch of them is cut into groups of sequences that each run through
    // the whole stack as one task, where a batch of one runs layer by layer.
    let g = golden("golden/all-MiniLM-L6-v2.long-docs.json");
    let docs = strs(&g["texts"]);
    let docs: Vec<&str> = docs.iter().chain(&docs).map(String::as_str).collect();
    let single = EncodeOptions {
        batch_size: 1,
        ..Default::default()
    };
    let together = model.encode(&docs).unwrap();
    let one_by_one = model.encode_with(&docs, &single).unwrap();
    assert_close(
        "long documents, grouped vs one by one",
        together.as_slice(),
        one_by_one.as_slice(),
        1e-5,
    );
}

#[test]
fn empty_inputs_and_huge_texts_are_handled() {
    let model = minilm();
    let none = model.encode(&[]).unwrap();
    assert_eq!(none.shape(), [0, 384]);
    let empty = model.encode(&[""]).unwrap();
    assert_eq!(empty.shape(), [1, 384]);
    assert!(empty.row(0).iter().all(|x| x.is_finite()));
    let huge = "word ".repeat(100_000);
    let e = model.encode(&[huge.as_str()]).unwrap();
    assert_eq!(e.shape(), [1, 384]);
    let norm: f32 = e.row(0).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "Normalize module applied: norm {norm}");
}

fn fixture_case(name: &str, pooling_is_cls: bool) {
    let g = golden(&format!("fixtures/{name}/golden.json"));
    let model = SentenceTransformer::load(fixture(name)).unwrap();
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batch = model.tokenizer().encode(&texts).unwrap();
    let want_ids = unpadded(&g["features"]["input_ids"], &g["features"]["attention_mask"]);
    for (i, want) in want_ids.iter().enumerate() {
        assert_eq!(&batch.ids(i), want, "{name}: token ids of sentence {i}");
    }
    let embeddings = model.encode(&texts).unwrap();
    assert_close(
        &format!("{name} embeddings"),
        embeddings.as_slice(),
        &rows(&g["sentence_embedding"]).concat(),
        TOL,
    );
    let sim = model.similarity(&embeddings, &embeddings).unwrap();
    assert_close(
        &format!("{name} similarity"),
        &sim.concat(),
        &rows(&g["similarity"]).concat(),
        TOL,
    );
    if pooling_is_cls {
        // CLS pooling returns the first token's hidden state unchanged.
        let first_tokens: Vec<f32> = g["token_embeddings_unpadded"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|t| f32s(&t[0]))
            .collect();
        assert_close(&format!("{name} CLS"), embeddings.as_slice(), &first_tokens, TOL);
    }
}

#[test]
fn bert_mean_pooling_normalize_fixture() {
    fixture_case("bert-st-mean-norm", false);
}

#[test]
fn distilbert_cls_pooling_fixture() {
    fixture_case("distilbert-st-cls", true);
}

/// The seed's exact call: a bare name resolves as sentence-transformers resolves it, under the
/// `sentence-transformers` organization, to the same model.
#[test]
fn a_bare_model_name_finds_the_sentence_transformers_model() {
    let short =
        SentenceTransformer::from_pretrained("all-MiniLM-L6-v2").unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()));
    let texts = ["The weather is lovely today.", "It's so sunny outside!"];
    let a = short.encode(&texts).unwrap();
    let b = minilm().encode(&texts).unwrap();
    assert_eq!(a.as_slice(), b.as_slice());
    // An original Transformers checkpoint keeps its bare name (not cached here: the error names it).
    let err = SentenceTransformer::from_pretrained("bert-base-uncased")
        .err()
        .expect("not in the cache");
    assert!(
        err.to_string().contains("bert-base-uncased") && !err.to_string().contains("sentence-transformers/bert"),
        "{err}"
    );
}

/// `truncate_dim` as sentence-transformers applies it: the model's `Normalize` runs on the full
/// vector, then the cut; `normalize_embeddings` scales the cut vector back to unit length.
#[test]
fn truncate_dim_cuts_after_the_model_and_normalizes_after_the_cut() {
    let g = golden("golden/all-MiniLM-L6-v2.json");
    let sentences = strs(&g["sentences"]);
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let full = rows(&g["embeddings"]);
    let model = SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
        .unwrap_or_else(|e| panic!("{e}\n{}", hub_hint()))
        .with_truncate_dim(Some(128))
        .unwrap();
    assert_eq!((model.embedding_dim(), model.truncate_dim()), (128, Some(128)));
    let cut = model.encode(&texts).unwrap();
    assert_eq!(cut.shape(), [3, 128]);
    let want: Vec<f32> = full.iter().flat_map(|row| row[..128].to_vec()).collect();
    assert_close("truncated", cut.as_slice(), &want, TOL);
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!(norm(cut.row(0)) < 0.9, "not re-normalised unless asked");

    let options = EncodeOptions {
        normalize_embeddings: true,
        truncate_dim: Some(64),
        ..EncodeOptions::default()
    };
    let unit = model.encode_with(&texts, &options).unwrap();
    assert_eq!(unit.shape(), [3, 64], "the per-call option wins");
    for (i, row) in unit.rows().enumerate() {
        let head = &full[i][..64];
        let want: Vec<f32> = head.iter().map(|x| x / norm(head)).collect();
        assert_close("normalized", row, &want, TOL);
    }
    for bad in [0, 385] {
        let err = minilm().encode_with(
            &texts,
            &EncodeOptions {
                truncate_dim: Some(bad),
                ..EncodeOptions::default()
            },
        );
        assert!(err.unwrap_err().to_string().contains("truncate_dim"), "{bad}");
    }
    assert!(
        SentenceTransformer::from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
            .unwrap()
            .with_truncate_dim(Some(0))
            .is_err()
    );
}
