"""The database from Python: CRUD, search, filters in both syntaxes, the CLI on the same
directory both ways, threads."""

import json
import threading

import numpy as np
import pytest

from conftest import run_cli
from sieve import Collection, SentenceTransformer

DOCS = {
    "lamb": ("Lamb chops with rosemary and garlic, roasted for twenty minutes.", {"kind": "recipe", "year": 2021}),
    "soup": ("A tomato soup recipe with basil, ready in half an hour.", {"kind": "recipe", "year": 2024}),
    "tax": ("Quarterly tax filing deadlines for small businesses.", {"kind": "finance", "year": 2024}),
    "moon": ("Tides follow the moon's gravitational pull on the oceans.", {"kind": "science", "year": 2023}),
}


def fill(collection):
    ids = list(DOCS)
    return collection.add(ids, [DOCS[i][0] for i in ids], metadatas=[DOCS[i][1] for i in ids])


def test_crud_and_reopen(tmp_path):
    path = tmp_path / "notes.sieve"
    with Collection.create(path, reranker=None) as notes:
        assert fill(notes) == {"added": 4, "replaced": 0, "stale": []}
        assert len(notes) == 4
        assert notes.get("lamb") == {"id": "lamb", "text": DOCS["lamb"][0], "metadata": DOCS["lamb"][1]}
        assert notes.get(["tax", "missing"]) == [{"id": "tax", "text": DOCS["tax"][0], "metadata": DOCS["tax"][1]}, None]
        assert notes.upsert("tax", "Tax deadlines moved to May.", metadatas={"kind": "finance"})["replaced"] == 1
        assert notes.delete(["soup", "missing"]) == 1
        info = notes.info()
        assert info["documents"] == 3 and info["config"]["reranker"] is None
    assert notes.closed
    with Collection.open(path) as again:
        assert len(again) == 3
        assert again.get("tax")["text"] == "Tax deadlines moved to May."
        assert again.get("soup") is None


def test_search_modes_filters_and_rerank(tmp_path):
    with Collection.create(tmp_path / "c") as notes:
        fill(notes)
        hits = notes.search("what should I cook for dinner", top_k=2)
        assert {h["id"] for h in hits} == {"lamb", "soup"}
        hit = hits[0]
        assert set(hit) >= {"id", "score", "text", "metadata", "dense", "sparse", "bm25", "first_stage", "reranker"}
        assert hit["reranker"] is not None and hit["first_stage"]["rank"] >= 1
        for mode in ["dense", "sparse", "bm25"]:
            only = notes.search("why do tides happen", mode=mode, top_k=1, rerank=0)
            assert only[0]["id"] == "moon" and only[0][mode]["rank"] == 1 and only[0]["reranker"] is None
        as_expr = notes.search("food", filter="kind = recipe and year >= 2023", rerank=0)
        as_dict = notes.search("food", filter={"kind": "recipe", "year": {"$gte": 2023}}, rerank=0)
        assert [h["id"] for h in as_expr] == [h["id"] for h in as_dict] == ["soup"]
        either = notes.search("anything", filter={"$or": [{"kind": "finance"}, {"year": {"$lt": 2022}}]}, rerank=0)
        assert {h["id"] for h in either} == {"tax", "lamb"}
        assert {h["id"] for h in notes.search("x", filter={"kind": {"$nin": ["recipe", "finance"]}}, rerank=0)} == {"moon"}
        for fusion in ["rrf", "minmax", "dbsf"]:
            assert notes.search("tides and the moon", fusion=fusion, rerank=0)[0]["id"] == "moon"
        replaced = notes.search("tides and the moon", rerank=3, rerank_mode="replace")
        assert replaced[0]["reranker"]["rank"] == 1


def test_precomputed_embeddings(tmp_path):
    model = SentenceTransformer("all-MiniLM-L6-v2")
    texts = [DOCS[i][0] for i in DOCS]
    with Collection.create(tmp_path / "c", sparse=None, reranker=None) as notes:
        notes.add(list(DOCS), texts, embeddings=model.encode(texts))
        assert notes.search("why do tides happen", mode="dense", top_k=1)[0]["id"] == "moon"
        with pytest.raises(ValueError, match="dimensions"):
            notes.add(["bad"], ["text"], embeddings=np.zeros((1, 8), dtype=np.float32))


def test_python_collection_opens_in_the_cli(tmp_path, sieve_bin):
    path = tmp_path / "from-python.sieve"
    with Collection.create(path) as notes:
        fill(notes)
    out = run_cli(sieve_bin, "search", "--db", path, "why do tides happen", "--json", "--filter", "kind = science")
    hits = json.loads(out)
    assert [h["id"] for h in hits] == ["moon"] and hits[0]["metadata"] == DOCS["moon"][1]


def test_cli_collection_opens_in_python(tmp_path, sieve_bin):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\n\nTides follow the moon's gravitational pull.\n")
    (docs / "tax.md").write_text("# Taxes\n\nQuarterly tax filing deadlines.\n")
    path = tmp_path / "from-cli.sieve"
    run_cli(sieve_bin, "index", docs, "--db", path)
    with Collection.open(path) as notes:
        assert len(notes) == 2
        hits = notes.search("why do tides happen", top_k=1, filter={"path": "tides.md"})
        assert hits[0]["id"] == "tides.md#0" and hits[0]["metadata"]["title"] == "Tides"
        notes.add(["extra"], ["Added from Python."])
    assert json.loads(run_cli(sieve_bin, "info", "--db", path, "--json"))["documents"] == 3


def test_threads_search_while_one_adds(tmp_path):
    with Collection.create(tmp_path / "c", reranker=None) as notes:
        fill(notes)
        errors, counts = [], []

        def search():
            try:
                for _ in range(10):
                    counts.append(len(notes.search("tides and the moon", top_k=3)))
            except Exception as error:  # noqa: BLE001 - reported below
                errors.append(error)

        def add():
            try:
                for i in range(5):
                    notes.add([f"new-{i}-{j}" for j in range(4)], [f"Note {i}.{j} about the sea." for j in range(4)])
            except Exception as error:  # noqa: BLE001
                errors.append(error)

        threads = [threading.Thread(target=search) for _ in range(4)] + [threading.Thread(target=add)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(counts) == 40 and all(c == 3 for c in counts)
        assert len(notes) == 24


def test_encode_releases_the_gil():
    model = SentenceTransformer("all-MiniLM-L6-v2")
    texts = ["A sentence about the weather and the sea, long enough to take a moment."] * 256
    ticks, done, during = [0], threading.Event(), []

    def encode():
        before = ticks[0]
        model.encode(texts)
        during.append(ticks[0] - before)
        done.set()

    worker = threading.Thread(target=encode)
    worker.start()
    while not done.is_set():
        ticks[0] += 1
    worker.join()
    # Had the encode held the GIL, this thread could not have counted while it ran.
    assert during[0] > 1000


def test_sync_folder_indexes_only_what_changed(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "tides.md").write_text("# Tides\n\nTides follow the moon's gravitational pull.\n")
    (docs / "tax.md").write_text("# Taxes\n\nQuarterly tax filing deadlines.\n")
    with Collection.create(tmp_path / "c", reranker=None) as notes:
        report = notes.sync_folder(docs)
        assert report["files"]["new"] == 2 and report["documents"] == 2
        hit = notes.search("why do tides happen", top_k=1)[0]
        assert hit["id"] == "tides.md#0" and hit["metadata"]["path"] == "tides.md"
        (docs / "tax.md").write_text("# Taxes\n\nTaxes are now due in May.\n")
        (docs / "tides.md").unlink()
        again = notes.sync_folder([docs], glob="*.md")
        assert again["files"] == {"new": 0, "changed": 1, "unchanged": 0, "removed": 1, "skipped": 0}
        assert len(notes) == 1 and "May" in notes.get("tax.md#0")["text"]
        with pytest.raises(FileNotFoundError, match="missing"):
            notes.sync_folder(tmp_path / "missing")
        with pytest.raises(ValueError, match="no indexable files"):
            notes.sync_folder(docs, glob="*.rst")
        with pytest.raises(ValueError, match="invalid glob"):
            notes.sync_folder(docs, exclude=["[unclosed"])
        assert len(notes) == 1


def test_stored_vectors_are_what_the_encoders_give(tmp_path):
    from sieve import SparseEncoder

    text = DOCS["moon"][0]
    with Collection.create(tmp_path / "c", reranker=None) as notes:
        notes.add(["moon"], [text])
        stored = notes.vectors("moon")
        assert notes.vectors("missing") is None
    np.testing.assert_allclose(stored["dense"], SentenceTransformer("all-MiniLM-L6-v2").encode(text), atol=1e-6)
    sparse = SparseEncoder("rasyosef/splade-tiny").encode([text])
    assert stored["sparse"].shape == (1, 30522)
    np.testing.assert_allclose(stored["sparse"].toarray(), sparse.toarray(), atol=1e-6)
