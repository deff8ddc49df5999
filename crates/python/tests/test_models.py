"""The model classes: sentence-transformers' arguments and return types, and the same numbers
as the Rust crates (through the `sieve` CLI of the same checkout)."""

import glob
import json
import os
import shutil
import sys

import numpy as np
import pytest

import sieve
from conftest import run_cli
from sieve import CrossEncoder, SentenceTransformer, SparseEncoder, util

TEXTS = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Vitamin D supplementation lowers the risk of fractures in older adults.",
]


@pytest.fixture(scope="module")
def dense():
    return SentenceTransformer("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def cross():
    return CrossEncoder("sieve/stsb-minilm-l6-ce")


@pytest.fixture(scope="module")
def splade():
    return SparseEncoder("rasyosef/splade-tiny")


def cli_lines(sieve_bin, tmp_path, *args):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(TEXTS) + "\n")
    return run_cli(sieve_bin, *args, "--input", texts)


def test_dense_equals_the_rust_encoder(dense, sieve_bin, tmp_path):
    lines = cli_lines(sieve_bin, tmp_path, "encode", "--model", "sentence-transformers/all-MiniLM-L6-v2")
    rust = np.array([json.loads(line)["embedding"] for line in lines.splitlines()], dtype=np.float32)
    np.testing.assert_allclose(dense.encode(TEXTS), rust, rtol=0, atol=1e-6)


def test_sparse_equals_the_rust_encoder(splade, sieve_bin, tmp_path):
    lines = cli_lines(sieve_bin, tmp_path, "encode", "--kind", "sparse", "--model", "rasyosef/splade-tiny")
    rust = np.zeros((len(TEXTS), 30522), dtype=np.float32)
    for row, line in enumerate(lines.splitlines()):
        entry = json.loads(line)
        rust[row, entry["indices"]] = entry["values"]
    ours = splade.encode(TEXTS).toarray()
    assert (ours != 0).sum() == (rust != 0).sum()
    np.testing.assert_allclose(ours, rust, rtol=0, atol=1e-6)


def test_cross_encoder_equals_the_rust_reranker(cross, sieve_bin, tmp_path):
    query = "Is vitamin D good for bones?"
    out = cli_lines(sieve_bin, tmp_path, "rank", "--model", "sieve/stsb-minilm-l6-ce", "--query", query, "--json")
    rust = {hit["corpus_id"]: hit["score"] for hit in json.loads(out)}
    scores = cross.predict([(query, text) for text in TEXTS])
    np.testing.assert_allclose(scores, [rust[i] for i in range(len(TEXTS))], rtol=0, atol=1e-6)


def test_encode_shapes_and_options(dense):
    one = dense.encode("A single sentence.")
    assert one.shape == (384,) and one.dtype == np.float32
    many = dense.encode(TEXTS, batch_size=2)
    np.testing.assert_allclose(many, dense.encode(TEXTS), atol=1e-6)
    as_list = dense.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(as_list, list) and len(as_list) == 4 and as_list[0].shape == (384,)
    assert dense.encode([]).shape == (0, 384)
    assert dense.get_sentence_embedding_dimension() == 384
    assert dense.max_seq_length == 256
    assert dense.similarity_fn_name == "cosine"
    short = dense.encode(TEXTS, truncate_dim=64, normalize_embeddings=True)
    assert short.shape == (4, 64)
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-6)
    assert SentenceTransformer("all-MiniLM-L6-v2", truncate_dim=128).encode(TEXTS).shape == (4, 128)
    # A literal prompt is prepended to the text, as in sentence-transformers.
    np.testing.assert_allclose(
        dense.encode(["today."], prompt="The weather is lovely "), dense.encode(["The weather is lovely today."]), atol=1e-6
    )
    # This model has no prompts: encode_query and encode_document are plain encodes.
    np.testing.assert_allclose(dense.encode_query(TEXTS), dense.encode(TEXTS), atol=0)
    pairwise = dense.similarity_pairwise(many[:2], many[1:3])
    matrix = dense.similarity(many, many)
    np.testing.assert_allclose(pairwise, [matrix[0, 1], matrix[1, 2]], atol=1e-6)


def test_precisions_match_quantize_embeddings(dense):
    floats = dense.encode(TEXTS)
    for precision, dtype, width in [("int8", np.int8, 384), ("uint8", np.uint8, 384), ("binary", np.int8, 48), ("ubinary", np.uint8, 48)]:
        quantized = dense.encode(TEXTS, precision=precision)
        assert quantized.dtype == dtype and quantized.shape == (4, width), precision
        np.testing.assert_array_equal(quantized, util.quantize_embeddings(floats, precision))
    ranges = np.stack([floats.min(axis=0), floats.max(axis=0)])
    np.testing.assert_array_equal(util.quantize_embeddings(floats, "int8", ranges=ranges), util.quantize_embeddings(floats, "int8"))
    np.testing.assert_array_equal(
        util.quantize_embeddings(floats[:1], "int8", calibration_embeddings=floats), util.quantize_embeddings(floats, "int8")[:1]
    )
    np.testing.assert_array_equal(np.unpackbits(dense.encode(TEXTS, precision="ubinary"), axis=1), (floats > 0).astype(np.uint8))


def test_util_helpers_agree_with_numpy(dense):
    e = dense.encode(TEXTS)
    np.testing.assert_allclose(util.cos_sim(e, e), e @ e.T, atol=1e-6)  # unit vectors
    raw = np.arange(12, dtype=np.float64).reshape(3, 4) - 5
    normed = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(util.cos_sim(raw, raw), normed @ normed.T, atol=1e-6)
    np.testing.assert_allclose(util.dot_score(raw, raw[0]), raw @ raw[:1].T, atol=1e-4)
    hits = util.semantic_search(e[:2], e, top_k=2)
    assert [[h["corpus_id"] for h in row] for row in hits] == [[0, 1], [1, 0]]
    assert abs(hits[0][1]["score"] - float(e[0] @ e[1])) < 1e-6
    by_dot = util.semantic_search(e[:1], e, top_k=4, score_function=util.dot_score)
    assert [h["corpus_id"] for h in by_dot[0]] == list(np.argsort(-(e @ e[0])))


def test_cross_encoder_options(cross, golden):
    reference = golden("stsb-minilm-l6-ce")
    pairs = [(reference["query"], text) for text in reference["corpus"]]
    np.testing.assert_allclose(cross.predict(pairs, activation_fn="identity"), reference["logits"], atol=1e-5)
    doubled = cross.predict(pairs, activation_fn=lambda logits: logits * 2)
    np.testing.assert_allclose(doubled, 2 * np.array(reference["logits"]), atol=2e-5)
    one = cross.predict(pairs[0])
    assert np.ndim(one) == 0 and abs(float(one) - reference["scores_sigmoid"][0]) < 1e-5
    assert cross.predict(pairs, apply_softmax=True).shape == (9,)  # one label: unchanged
    assert isinstance(cross.predict(pairs, convert_to_numpy=False), list)
    top = cross.rank(reference["query"], reference["corpus"], top_k=3, return_documents=True)
    assert top == [
        {"corpus_id": r["corpus_id"], "score": pytest.approx(r["score"], abs=1e-5), "text": r["text"]}
        for r in reference["rank_top3_with_documents"]
    ]
    assert cross.num_labels == 1 and cross.max_length == 128


def test_sparse_options_and_fallback(splade, monkeypatch):
    embeddings = splade.encode(TEXTS)
    assert type(embeddings).__module__.startswith("scipy.sparse")
    capped = splade.encode(TEXTS, max_active_dims=8)
    assert capped.getnnz(axis=1).max() == 8
    decoded = splade.decode(embeddings, top_k=3)
    assert len(decoded) == 4 and len(decoded[0]) == 3 and decoded[0][0][0] == "today"
    assert splade.decode(embeddings[0], top_k=3) == decoded[0]
    assert splade.get_sentence_embedding_dimension() == 30522 and splade.similarity_fn_name == "dot"
    np.testing.assert_allclose(splade.encode(["today."], prompt="The weather is lovely ").toarray(), splade.encode([TEXTS[0]]).toarray())

    # Without SciPy: a SparseEmbeddings with the same CSR arrays, accepted back everywhere.
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)
    plain = splade.encode(TEXTS)
    assert isinstance(plain, sieve.SparseEmbeddings)
    assert plain.shape == (4, 30522) and len(plain) == 4 and plain.nnz == embeddings.nnz
    np.testing.assert_array_equal(plain.indptr, embeddings.indptr)
    np.testing.assert_array_equal(plain.indices, embeddings.indices)
    np.testing.assert_array_equal(plain.values, embeddings.data)
    np.testing.assert_array_equal(plain.toarray(), embeddings.toarray())
    np.testing.assert_allclose(splade.similarity(plain, plain), splade.similarity(embeddings, embeddings))
    assert splade.decode(plain[0], top_k=3) == decoded[0]
    assert SparseEncoder.sparsity(plain) == SparseEncoder.sparsity(embeddings)
    # A dense array works too.
    np.testing.assert_allclose(splade.similarity(plain.toarray(), plain), splade.similarity(plain, plain))


def test_role_prompts_follow_sentence_transformers(tmp_path):
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    snapshots = glob.glob(os.path.join(hub, "models--sentence-transformers--all-MiniLM-L6-v2", "snapshots", "*"))
    if not snapshots:
        pytest.skip(f"all-MiniLM-L6-v2 is not in the hub cache {hub} (run scripts/fetch-models)")
    folder = tmp_path / "minilm-with-prompts"
    shutil.copytree(snapshots[0], folder)
    (folder / "config_sentence_transformers.json").unlink()
    (folder / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "query: "}}))
    model = SentenceTransformer(str(folder))
    assert model.prompts == {"query": "query: "}
    text = ["how do tides work"]
    np.testing.assert_array_equal(model.encode_query(text), model.encode(text, prompt="query: "))
    np.testing.assert_array_equal(model.encode_query(text, prompt_name="query"), model.encode(text, prompt="query: "))
    # A prompt the caller chose wins, given by name or position.
    np.testing.assert_array_equal(model.encode_query(text, prompt=""), model.encode(text))
    np.testing.assert_array_equal(model.encode_query(text, None, "q: "), model.encode(text, prompt="q: "))
    np.testing.assert_array_equal(model.encode_query(text, batch_size=1), model.encode(text, prompt="query: "))
    # No "document" prompt: a plain encode.
    np.testing.assert_array_equal(model.encode_document(text), model.encode(text))


def test_paraphrase_mining_and_communities_agree_with_brute_force(dense):
    sentences = TEXTS + ["The weather is lovely today!", "It is sunny outside.", "He drove his car to the stadium."]
    e = dense.encode(sentences)
    sims = e @ e.T
    expected = sorted(((float(sims[i, j]), i, j) for i in range(len(e)) for j in range(i + 1, len(e))), key=lambda t: -t[0])
    mined = util.paraphrase_mining(dense, sentences, top_k=10)
    assert [(i, j) for _, i, j in mined] == [(i, j) for _, i, j in expected]
    np.testing.assert_allclose([s for s, _, _ in mined], [s for s, _, _ in expected], atol=1e-5)
    assert util.paraphrase_mining_embeddings(e, top_k=10, max_pairs=3) == mined[:3]
    communities = util.community_detection(e, threshold=0.8, min_community_size=2)
    for community in communities:
        centre = community[0]
        assert all(sims[centre, m] >= 0.8 - 1e-6 for m in community)
    assert {frozenset(c) for c in communities} >= {frozenset({0, 4})}
