"""The sentence-transformers quickstart, section by section, with only the import changed
(and the two models no registry ships replaced by ours, as in examples/quickstart.rs)."""

import numpy as np


def test_sentence_transformer_quickstart(golden):
    from sieve import SentenceTransformer  # was: from sentence_transformers import SentenceTransformer

    # 1. Load a pretrained Sentence Transformer model
    model = SentenceTransformer("all-MiniLM-L6-v2")

    # The sentences to encode
    sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]

    # 2. Calculate embeddings by calling model.encode()
    embeddings = model.encode(sentences)
    print(embeddings.shape)
    # [3, 384]

    # 3. Calculate the embedding similarities
    similarities = model.similarity(embeddings, embeddings)
    print(similarities)
    # tensor([[1.0000, 0.6660, 0.1046],
    #         [0.6660, 1.0000, 0.1411],
    #         [0.1046, 0.1411, 1.0000]])

    assert embeddings.shape == (3, 384) and embeddings.dtype == np.float32
    assert isinstance(similarities, np.ndarray) and similarities.shape == (3, 3)
    assert [round(float(similarities[i, j]), 4) for i, j in [(0, 1), (0, 2), (1, 2)]] == [0.6660, 0.1046, 0.1411]
    reference = golden("all-MiniLM-L6-v2")
    np.testing.assert_allclose(embeddings, np.array(reference["embeddings"]), atol=1e-5)
    np.testing.assert_allclose(similarities, np.array(reference["similarity"]), atol=1e-5)


def test_cross_encoder_quickstart(golden):
    from sieve import CrossEncoder  # was: from sentence_transformers.cross_encoder import CrossEncoder

    # 1. Load a pre-trained CrossEncoder model
    model = CrossEncoder("sieve/stsb-minilm-l6-ce")  # was: cross-encoder/stsb-distilroberta-base

    # We want to compute the similarity between the query sentence...
    query = "A man is eating pasta."

    # ... and all sentences in the corpus
    corpus = [
        "A man is eating food.",
        "A man is eating a piece of bread.",
        "The girl is carrying a baby.",
        "A man is riding a horse.",
        "A woman is playing violin.",
        "Two men pushed carts through the woods.",
        "A man is riding a white horse on an enclosed ground.",
        "A monkey is playing drums.",
        "A cheetah is running behind its prey.",
    ]

    # 2. We rank all sentences in the corpus for the query
    ranks = model.rank(query, corpus)

    # Print the scores
    print("Query: ", query)
    for rank in ranks:
        print(f"{rank['score']:.2f}\t{corpus[rank['corpus_id']]}")

    # 3. Alternatively, you can also manually compute the score between two sentences
    sentence_combinations = [[query, sentence] for sentence in corpus]
    scores = model.predict(sentence_combinations)

    # Sort the scores in decreasing order to get the corpus indices
    ranked_indices = np.argsort(scores)[::-1]
    print("Scores:", scores)
    print("Indices:", ranked_indices)

    reference = golden("stsb-minilm-l6-ce")
    assert [r["corpus_id"] for r in ranks] == [r["corpus_id"] for r in reference["rank"]]
    np.testing.assert_allclose([r["score"] for r in ranks], [r["score"] for r in reference["rank"]], atol=1e-5)
    assert scores.shape == (9,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, reference["scores_sigmoid"], atol=1e-5)
    assert list(ranked_indices) == [r["corpus_id"] for r in reference["rank"]]


def test_sparse_encoder_quickstart(golden):
    from sieve import SparseEncoder  # was: from sentence_transformers import SparseEncoder

    # 1. Load a pretrained SparseEncoder model
    model = SparseEncoder("rasyosef/splade-tiny")  # was: naver/splade-cocondenser-ensembledistil

    # The sentences to encode
    sentences = [
        "The weather is lovely today.",
        "It's so sunny outside!",
        "He drove to the stadium.",
    ]

    # 2. Calculate sparse embeddings by calling model.encode()
    embeddings = model.encode(sentences)
    print(embeddings.shape)
    # [3, 30522] - sparse representation with vocabulary size dimensions

    # 3. Calculate the embedding similarities
    similarities = model.similarity(embeddings, embeddings)
    print(similarities)

    # 4. Check sparsity stats
    stats = SparseEncoder.sparsity(embeddings)
    print(f"Sparsity: {stats['sparsity_ratio']:.2%}")
    # Sparsity: 99.84%

    reference = golden("splade-tiny")
    assert embeddings.shape == (3, 30522)
    np.testing.assert_allclose(similarities, np.array(reference["similarity"]), rtol=1e-4, atol=1e-4)
    active = [s["active_dims"] for s in reference["per_sentence"]]
    assert abs(stats["active_dims"] - sum(active) / 3) < 1e-4
    assert abs(stats["sparsity_ratio"] - (1 - sum(active) / 3 / 30522)) < 1e-6
    assert stats["sparsity_ratio"] > 0.99
    # Which tokens fire, heaviest first, as the golden file lists them.
    top = model.decode(embeddings[0], top_k=10)
    expected = reference["per_sentence"][0]["top10"]
    assert [token for token, _ in top] == [token for token, _ in expected]
    np.testing.assert_allclose([w for _, w in top], [w for _, w in expected], atol=1e-4)
