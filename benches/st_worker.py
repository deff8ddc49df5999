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

# sieve's SIEVE_DEVICE picks the side of the comparison: the CPU, or PyTorch's GPU when sieve runs
# on one (wgpu or cuda) and torch sees it. SIEVE_DTYPE=f16 / bf16 loads the GPU models in that type.
requested = os.environ.get("SIEVE_DEVICE", "cpu").strip().lower() or "cpu"
if requested == "cpu" or not torch.cuda.is_available():
    device = "cpu"
else:
    device = requested if requested.startswith("cuda:") else "cuda"
dtype = {"f16": torch.float16, "bf16": torch.bfloat16}.get(os.environ.get("SIEVE_DTYPE", "").strip().lower())
kwargs = {"dtype": dtype} if dtype is not None and device != "cpu" else {}
bi = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2", device=device, model_kwargs=kwargs)
ce = CrossEncoder("sieve/stsb-minilm-l6-ce", device=device, model_kwargs=kwargs)
splade = SparseEncoder("rasyosef/splade-tiny", device=device, model_kwargs=kwargs)
runs = {
    "encode": lambda: bi.encode(texts, batch_size=batch_size),
    "predict": lambda: ce.predict(pairs, batch_size=batch_size),
    "splade": lambda: splade.encode(docs, batch_size=batch_size),
}
print(f"ready torch {torch.__version__} on {device} threads {torch.get_num_threads()}", flush=True)
for line in sys.stdin:
    run = runs[line.strip()]
    with torch.inference_mode():
        start = time.perf_counter()
        run()
        print(f"{time.perf_counter() - start:.6f}", flush=True)
