"""sentence-transformers on the same inputs as benches/encode.rs, for a side-by-side figure.

    python3 benches/st_baseline.py            # needs: pip install sentence-transformers
Prints texts/s and pairs/s (median of 5 runs). Installs nothing; uses the hub cache that
scripts/fetch-models fills (HF_HUB_OFFLINE=1 is set here).
"""
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from sentence_transformers import CrossEncoder, SentenceTransformer  # noqa: E402

torch.set_num_threads(os.cpu_count() or 1)
shared = Path(os.environ.get("SIEVE_SHARED", Path(__file__).resolve().parent.parent.parent / "shared"))


def jsonl(name):
    with open(shared / "data" / "scifact" / name) as f:
        return [json.loads(line) for line in f]


def first_words(text, n):
    return " ".join(text.split()[:n])


corpus, queries = jsonl("corpus.jsonl"), jsonl("queries.jsonl")
docs = [f"{d.get('title', '')} {d.get('text', '')}" for d in corpus]
texts = [first_words(d, 20) for d in docs[:2000]]
pairs = [(q["text"], first_words(d, 30)) for q, d in zip(queries[:500], docs[:500])]


def median_rate(fn, n, runs=5):
    fn()  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n / statistics.median(times)


bi = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
ce = CrossEncoder("sieve/stsb-minilm-l6-ce", device="cpu")
print(f"torch {torch.__version__}, threads {torch.get_num_threads()}", file=sys.stderr)
print(f"encode_2000_texts_minilm: {median_rate(lambda: bi.encode(texts, batch_size=32), len(texts)):.1f} texts/s")
print(f"predict_500_pairs_stsb_ce: {median_rate(lambda: ce.predict(pairs, batch_size=32), len(pairs)):.1f} pairs/s")
