"""PyTorch and ONNX Runtime side of `cargo bench --bench compare_st` (not meant to be run alone).

Reads the inputs the bench wrote (JSON: `batch_size`, `threads` and `workloads`, each a `kind`
(`dense`, `cross`, `sparse`), a hub `model` and its `texts` or `pairs`) and loads each model once
with sentence-transformers. Dense and cross workloads also get two ONNX Runtime sessions, f32 and
dynamic int8: the Hugging Face model inside is exported once with `torch.onnx.export` (inputs
`input_ids`, `attention_mask`, `token_type_ids`; output `last_hidden_state` or `logits`; dynamic
batch and sequence axes) and quantized with `quantize_dynamic(per_channel=True,
weight_type=QInt8)`, both cached in `SIEVE_BENCH_ONNX_DIR` (default `$TMPDIR/sieve-bench-onnx`).
ONNX Runtime's runs tokenize with the model's own tokenizer, batch in sentence-transformers' order
and pool / normalise / activate in NumPy as the model's modules say, so every backend times the
same end-to-end call.

The first line out is `ready {json}` (versions, threads, each workload's backends, notes) or
`missing PACKAGE...` when torch or sentence-transformers cannot be imported. Then one command per
stdin line, BACKEND being `torch`, `ort-f32` or `ort-int8`:

- `warmup WORKLOAD BACKEND N`: one untimed run; answers the first N outputs as JSON
- `run WORKLOAD BACKEND`: one timed run; answers its wall-clock seconds

Installs nothing; HF_HUB_OFFLINE=1 is set here, so the hub cache must hold the models
(scripts/fetch-models).
"""
import importlib
import json
import logging
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Answers go to the real stdout; anything a library prints goes to stderr.
answer, sys.stdout = sys.stdout, sys.stderr


def say(line):
    answer.write(line + "\n")
    answer.flush()


def importable(*names):
    """The PyPI names of the modules that cannot be imported."""
    missing = []
    for module, package in names:
        try:
            importlib.import_module(module)
        except Exception as e:  # a broken install counts as missing
            print(f"st_worker: cannot import {module}: {e}", file=sys.stderr)
            missing.append(package)
    return missing


missing = importable(("numpy", "numpy"), ("torch", "torch"), ("sentence_transformers", "sentence-transformers"))
if missing:
    say("missing " + " ".join(missing))
    sys.exit(0)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import sentence_transformers  # noqa: E402
from sentence_transformers import CrossEncoder, SentenceTransformer, SparseEncoder  # noqa: E402

inputs = json.load(open(sys.argv[1]))
batch_size = inputs["batch_size"]
threads = int(inputs.get("threads") or os.environ.get("SIEVE_BENCH_THREADS") or os.cpu_count() or 1)
torch.set_num_threads(threads)
notes = []

# sieve's SIEVE_DEVICE picks the side of the comparison: the CPU, or PyTorch's GPU when sieve runs
# on one (wgpu or cuda) and torch sees it. SIEVE_DTYPE=f16 / bf16 loads the GPU models in that type.
requested = os.environ.get("SIEVE_DEVICE", "cpu").strip().lower() or "cpu"
if requested == "cpu" or not torch.cuda.is_available():
    device = "cpu"
else:
    device = requested if requested.startswith("cuda:") else "cuda"
dtype = {"f16": torch.float16, "bf16": torch.bfloat16}.get(os.environ.get("SIEVE_DTYPE", "").strip().lower())
kwargs = {"dtype": dtype} if dtype is not None and device != "cpu" else {}

ort_missing = importable(("onnxruntime", "onnxruntime"), ("onnx", "onnx"))
if ort_missing:
    notes.append(f"ONNX Runtime skipped: {', '.join(ort_missing)} not installed")
elif device != "cpu":
    notes.append("ONNX Runtime skipped: the onnxruntime package runs on the CPU, PyTorch here on " + device)
use_ort = not ort_missing and device == "cpu"
if use_ort:
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

ONNX_INPUTS = ["input_ids", "attention_mask", "token_type_ids"]
onnx_dir = Path(os.environ.get("SIEVE_BENCH_ONNX_DIR") or Path(tempfile.gettempdir()) / "sieve-bench-onnx")


class Forward(torch.nn.Module):
    """The Hugging Face model with positional inputs and one named output, for the exporter."""

    def __init__(self, model, output):
        super().__init__()
        self.model, self.output = model, output

    def forward(self, input_ids, attention_mask, token_type_ids):
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
        return getattr(out, self.output)


def snapshot(model_id):
    """The cached snapshot's revision, so a changed checkpoint is exported again."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True)).name[:12]
    except Exception:
        return "local"


def export_onnx(st_model, model_id, output):
    """`model.onnx` (f32) and `model.int8.onnx` for one model, exported once and reused."""
    folder = onnx_dir / f"{model_id.replace('/', '--')}-{snapshot(model_id)}"
    folder.mkdir(parents=True, exist_ok=True)
    f32, int8 = folder / "model.onnx", folder / "model.int8.onnx"
    hf = st_model.model if isinstance(st_model, CrossEncoder) else st_model[0].auto_model
    if not f32.exists():
        print(f"st_worker: exporting {model_id} to {f32}", file=sys.stderr)
        tokens = st_model.tokenizer(["a sample", "a longer sample text"], padding=True, return_tensors="pt")
        sample = tuple(tokens[name] for name in ONNX_INPUTS)
        axes = {name: {0: "batch", 1: "sequence"} for name in ONNX_INPUTS + [output]}
        if output == "logits":
            axes[output] = {0: "batch"}
        # Eager attention exports the plain BERT graph; SDPA's adds NaN guards around the softmax
        # and ran no faster under ONNX Runtime.
        attention = hf.config._attn_implementation
        if hasattr(hf, "set_attn_implementation"):
            hf.set_attn_implementation("eager")
        tmp = folder / f"model.onnx.tmp{os.getpid()}"
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    Forward(hf, output).eval(),
                    sample,
                    str(tmp),
                    dynamo=False,
                    input_names=ONNX_INPUTS,
                    output_names=[output],
                    dynamic_axes=axes,
                    opset_version=17,
                )
        finally:
            if hasattr(hf, "set_attn_implementation"):
                hf.set_attn_implementation(attention)
        os.replace(tmp, f32)
    if not int8.exists():
        tmp = folder / f"model.int8.onnx.tmp{os.getpid()}"
        logging.getLogger().setLevel(logging.ERROR)  # quiet its advice to pre-process first
        quantize_dynamic(str(f32), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
        os.replace(tmp, int8)
    return f32, int8


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def in_length_order(items, length, run_batch):
    """sentence-transformers' batching: longest first, answers in input order."""
    order = np.argsort([-length(item) for item in items])
    out = [None] * len(items)
    for start in range(0, len(items), batch_size):
        idx = order[start : start + batch_size]
        for i, row in zip(idx, run_batch([items[i] for i in idx])):
            out[i] = row
    return np.stack(out) if out else np.zeros((0,))


def ort_dense(st_model, sess):
    """Transformer → Pooling (mean) → Normalize, as all-MiniLM-L6-v2's modules.json lists them."""
    names = [type(m).__name__ for m in st_model]
    pooling = st_model[1]
    mode = getattr(pooling, "pooling_mode", None) or pooling.get_pooling_mode_str()
    if names[:2] != ["Transformer", "Pooling"] or mode not in ("mean", ["mean"], ("mean",)):
        raise SystemExit(f"st_worker: ONNX Runtime pooling only covers Transformer → mean Pooling, not {names}")
    normalize = "Normalize" in names
    tokenizer, max_length = st_model.tokenizer, st_model.max_seq_length

    def run_batch(texts):
        tokens = tokenizer(texts, padding=True, truncation="longest_first", max_length=max_length, return_tensors="np")
        hidden = sess.run(["last_hidden_state"], {name: tokens[name] for name in ONNX_INPUTS})[0]
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        emb = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        if normalize:
            emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    return lambda texts: in_length_order(texts, len, run_batch)


def ort_cross(ce, sess):
    """Logits through the cross-encoder's activation (sigmoid for one label), as predict() does."""
    activation = type(ce.activation_fn).__name__
    if activation == "Sigmoid":
        act = lambda x: 1.0 / (1.0 + np.exp(-x))  # noqa: E731
    elif activation == "Identity":
        act = lambda x: x  # noqa: E731
    else:
        act = lambda x: ce.activation_fn(torch.from_numpy(x)).numpy()  # noqa: E731
    # sentence-transformers 6 renamed max_length to max_seq_length.
    max_length = ce.max_seq_length if hasattr(type(ce), "max_seq_length") else ce.max_length
    tokenizer, squeeze = ce.tokenizer, ce.num_labels == 1

    def run_batch(pairs):
        first, second = [p[0] for p in pairs], [p[1] for p in pairs]
        tokens = tokenizer(
            first, second, padding=True, truncation="longest_first", max_length=max_length, return_tensors="np"
        )
        scores = act(sess.run(["logits"], {name: tokens[name] for name in ONNX_INPUTS})[0])
        return scores[:, 0] if squeeze else scores

    return lambda pairs: in_length_order(pairs, lambda p: len(p[0]) + len(p[1]), run_batch)


def first_outputs(kind, out, n):
    """The first n outputs as JSON: embedding rows, scores, or sparse rows as [indices, values]."""
    if kind == "sparse":
        rows = []
        for i in range(min(n, out.shape[0] if torch.is_tensor(out) else len(out))):
            row = out[i]
            row = row.to_dense() if torch.is_tensor(row) and row.is_sparse else torch.as_tensor(row)
            idx = torch.nonzero(row, as_tuple=True)[0]
            rows.append([idx.tolist(), row[idx].float().tolist()])
        return rows
    out = out.float().cpu().numpy() if torch.is_tensor(out) else np.asarray(out, dtype=np.float32)
    return out[:n].tolist()


models = {}  # (class, model id) → loaded model, shared by workloads
runs = {}  # (workload, backend) → zero-argument callable
kinds = {}
backends = {}
for name, w in inputs["workloads"].items():
    kind, model_id = w["kind"], w["model"]
    items = w["texts"] if "texts" in w else [tuple(p) for p in w["pairs"]]
    cls = {"dense": SentenceTransformer, "cross": CrossEncoder, "sparse": SparseEncoder}[kind]
    if (cls, model_id) not in models:
        models[cls, model_id] = cls(model_id, device=device, model_kwargs=kwargs)
    model = models[cls, model_id]
    kinds[name] = kind
    if kind == "cross":
        runs[name, "torch"] = lambda m=model, x=items: m.predict(x, batch_size=batch_size)
    else:
        runs[name, "torch"] = lambda m=model, x=items: m.encode(x, batch_size=batch_size)
    backends[name] = ["torch"]
    if use_ort and kind in ("dense", "cross"):
        paths = export_onnx(model, model_id, "last_hidden_state" if kind == "dense" else "logits")
        for backend, path in zip(["ort-f32", "ort-int8"], paths):
            key = (model_id, backend)
            if key not in models:
                models[key] = (ort_dense if kind == "dense" else ort_cross)(model, session(path))
            runs[name, backend] = lambda f=models[key], x=items: f(x)
            backends[name].append(backend)

versions = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__}
if use_ort:
    versions["onnxruntime"] = ort.__version__
torch_dtype = {torch.float16: "f16", torch.bfloat16: "bf16"}.get(kwargs.get("dtype"), "f32")
ready = {
    "versions": versions,
    "device": device,
    "torch_dtype": torch_dtype,
    "threads": threads,
    "backends": backends,
    "notes": notes,
    "ort_missing": ort_missing,
}
say("ready " + json.dumps(ready))

for line in sys.stdin:
    command, name, backend, *rest = line.split()
    run = runs[name, backend]
    with torch.inference_mode():
        start = time.perf_counter()
        out = run()
        seconds = time.perf_counter() - start
    if command == "warmup":
        say(json.dumps(first_outputs(kinds[name], out, int(rest[0]))))
    else:
        say(f"{seconds:.6f}")
