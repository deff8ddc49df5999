"""Bad input raises the Python exception a Python user expects, with the Rust message."""

import numpy as np
import pytest

import sieve
from sieve import Collection, CrossEncoder, SentenceTransformer, SparseEncoder, util


def test_missing_models_and_collections(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-org/no-such-model"):
        SentenceTransformer("no-such-org/no-such-model")
    with pytest.raises(FileNotFoundError):
        CrossEncoder(str(tmp_path / "no-model-here"))
    with pytest.raises(FileNotFoundError, match="no collection"):
        Collection.open(tmp_path / "missing.sieve")
    (tmp_path / "not-a-collection").mkdir()
    (tmp_path / "not-a-collection" / "notes.txt").write_text("hello")
    with pytest.raises(sieve.SieveError, match="not a readable sieve collection"):
        Collection.open(tmp_path / "not-a-collection")


def test_bad_arguments():
    model = SentenceTransformer("all-MiniLM-L6-v2")
    with pytest.raises(TypeError, match=r"inputs\[1\] must be a str, not int"):
        model.encode(["fine", 3])
    with pytest.raises(ValueError, match="unknown precision"):
        model.encode(["x"], precision="float8")
    with pytest.raises(ValueError, match="prompt `query` not found"):
        model.encode(["x"], prompt_name="query")
    with pytest.raises(ValueError, match="unknown device"):
        SentenceTransformer("all-MiniLM-L6-v2", device="tpu")
    e = model.encode(["a", "b"])
    with pytest.raises(TypeError, match="must hold floats"):
        model.similarity(e, np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="must hold floats"):
        util.cos_sim(np.arange(4, dtype=np.int64), e)
    with pytest.raises(ValueError, match="dimension mismatch"):
        model.similarity(e, np.zeros((1, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="1-D or 2-D"):
        util.cos_sim(np.zeros((2, 2, 2), dtype=np.float32), e)
    with pytest.raises(ValueError, match="score_function"):
        util.semantic_search(e, e, score_function=len)
    with pytest.raises(ValueError, match="calibration"):
        util.quantize_embeddings(e[:1], "int8")
    cross = CrossEncoder("sieve/stsb-minilm-l6-ce")
    with pytest.raises(TypeError, match="pair"):
        cross.predict([("query", "doc"), ("only one",)])
    with pytest.raises(ValueError, match="unsupported activation_fn"):
        cross.predict([("q", "d")], activation_fn="relu")
    with pytest.raises(ValueError, match="prompts are not supported"):
        cross.predict([("q", "d")], prompt="query: ")
    with pytest.raises(ValueError, match="columns"):
        SparseEncoder("rasyosef/splade-tiny").similarity(np.ones((1, 3), dtype=np.float32), np.ones((1, 4), dtype=np.float32))


def test_collection_errors_keep_the_data(tmp_path):
    path = tmp_path / "c"
    notes = Collection.create(path, sparse=None, reranker=None)
    notes.add(["a"], ["A document about tides."], metadatas=[{"kind": "note"}])
    with pytest.raises(FileExistsError):
        Collection.create(path)
    with pytest.raises(ValueError, match="already exists"):
        notes.add(["a"], ["again"])
    with pytest.raises(ValueError, match="1 ids but 2 texts"):
        notes.add(["b"], ["one", "two"])
    with pytest.raises(TypeError, match=r"metadatas\[0\] must be a dict"):
        notes.add(["b"], ["one"], metadatas=["kind=note"])
    with pytest.raises(ValueError, match="invalid filter"):
        notes.search("tides", filter="kind = ")
    with pytest.raises(ValueError, match=r"filter at year\.\$gte: expected a number"):
        notes.search("tides", filter={"year": {"$gte": "2020"}})
    with pytest.raises(TypeError, match="filter must be"):
        notes.search("tides", filter=["kind"])
    with pytest.raises(ValueError, match="no sparse retriever"):
        notes.search("tides", mode="sparse")
    with pytest.raises(ValueError, match="mode must be"):
        notes.search("tides", mode="semantic")
    with pytest.raises(ValueError, match="fusion must be"):
        notes.search("tides", fusion="sum")
    with pytest.raises(ValueError, match="rerank weight must be a finite number >= 0"):
        notes.search("tides", rerank_weight=float("nan"))
    assert [h["id"] for h in notes.search("tides")] == ["a"]
    notes.close()
    notes.close()  # harmless
    with pytest.raises(ValueError, match="is closed"):
        notes.search("tides")
    with pytest.raises(ValueError, match="is closed"):
        len(notes)
    with Collection.open(path) as again:
        assert again.get("a")["metadata"] == {"kind": "note"}
