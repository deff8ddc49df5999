"""sentence-transformers side of `cargo bench --bench compare_st` (not meant to be run alone).

Reads the inputs the bench wrote (JSON: texts, pairs, docs), loads the three models once, then
answers one command per stdin line (`encode`, `predict`, `splade`) with the wall-clock seconds
of that run on stdout. Installs nothing; the hub cache must hold the models (scripts/fetch-models)
and HF_HUB_OFFLINE=1 is set here.
"""
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch  # noqa: E402
from sentence_transformers import CrossEncoder, SentenceTransformer, SparseEncoder  # noqa: E402

torch.set_num_threads(int(os.environ.get("SIEVE_BENCH_THREADS", os.cpu_count() or 1)))
inputs = json.load(open(sys.argv[1]))
texts, docs = inputs["texts"], inputs["docs"]
pairs = [tuple(p) for p in inputs["pairs"]]
batch_size = inputs["batch_size"]

bi = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", device="cpu")
ce = CrossEncoder("sieve/stsb-minilm-l6-ce", device="cpu")
splade = SparseEncoder("rasyosef/splade-tiny", device="cpu")
runs = {
    "encode": lambda: bi.encode(texts, batch_size=batch_size),
    "predict": lambda: ce.predict(pairs, batch_size=batch_size),
    "splade": lambda: splade.encode(docs, batch_size=batch_size),
}
print(f"ready torch {torch.__version__} threads {torch.get_num_threads()}", flush=True)
for line in sys.stdin:
    run = runs[line.strip()]
    with torch.inference_mode():
        start = time.perf_counter()
        run()
        print(f"{time.perf_counter() - start:.6f}", flush=True)
