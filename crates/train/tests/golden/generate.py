"""Golden values for sieve-train's gradient-parity tests (`crates/train/tests/parity.rs`).

For each loss, on the tiny random-weight fixtures in `../shared/fixtures/`, this records what
sentence-transformers 6.2 / PyTorch compute: the loss value, the gradients of a few named
parameters after one backward pass, and (for one case per model kind) the weights after three
AdamW steps with linear warmup, gradient clipping at 1.0 and weight decay on all but biases and
LayerNorm weights, as transformers' Trainer sets them up.

Dropout is off (the configs' dropout probabilities set to 0, in training mode): sieve trains
without dropout, and the comparison is of the arithmetic. Run from the repository root:

    python crates/train/tests/golden/generate.py ../shared/fixtures crates/train/tests/golden/train_golden.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import torch
from sentence_transformers import CrossEncoder, SentenceTransformer, SparseEncoder
from sentence_transformers.cross_encoder import losses as ce_losses
from sentence_transformers.sentence_transformer import losses as st_losses
from sentence_transformers.sparse_encoder import losses as sp_losses
from transformers import get_linear_schedule_with_warmup

SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "A man is eating food.",
    "A monkey is playing drums.",
    "The new movie is awesome.",
]
ANCHORS = SENTENCES[:3]
POSITIVES = ["It's so sunny outside!", "The weather is lovely today.", "A man is eating food."]
NEGATIVES = ["A monkey is playing drums.", "The new movie is awesome.", "He drove to the stadium."]
SCORED = (SENTENCES[:4], SENTENCES[2:6], [0.1, 0.9, 0.5, 0.3])
LABELS = [1.0, 0.0, 1.0, 0.0]
LIST_QUERIES = ["The weather is lovely today.", "He drove to the stadium."]
LIST_DOCS = [SENTENCES[1:5], SENTENCES[2:6]]
LIST_LABELS = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]
MATRYOSHKA_DIMS, MATRYOSHKA_WEIGHTS = [32, 16, 8], [1.0, 0.5, 0.25]
SPLADE_WEIGHTS = (0.3, 0.5)  # document, query regulariser weights

# AdamW as transformers' Trainer builds it, on a linear schedule of 10 steps, 2 of them warmup.
LR, WEIGHT_DECAY, WARMUP, TOTAL, STEPS = 1e-3, 0.01, 2, 10, 3


def named(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    """The Hugging Face model's parameters by checkpoint key."""
    if isinstance(model, CrossEncoder):
        return dict(model.model.named_parameters())
    return dict(model[0].auto_model.named_parameters())


def watched(params: dict[str, torch.nn.Parameter]) -> list[str]:
    """A few parameters from every part of the model: embeddings, first and last layer, head."""
    layers = sorted({int(k.split(".layer.")[1].split(".")[0]) for k in params if ".layer." in k})
    first, last = f".layer.{layers[0]}.", f".layer.{layers[-1]}."
    keep = []
    for key in params:
        if "embeddings.LayerNorm" in key:
            keep.append(key)
        elif first in key and ("attention.self.query" in key or "attention.q_lin" in key):
            keep.append(key)
        elif last in key and any(s in key for s in ("output.dense", "output.LayerNorm", "output_layer_norm", "ffn.lin2")) and "attention" not in key:
            keep.append(key)
        elif key.startswith(("classifier", "cls.", "pooler")):
            keep.append(key)
    return keep


def grads(model: torch.nn.Module) -> dict:
    params = named(model)
    out = {}
    for key in watched(params):
        grad = params[key].grad
        if grad is not None:
            out[key] = grad.flatten().tolist()
    word = next(k for k in params if k.endswith("word_embeddings.weight"))
    grad = params[word].grad
    rows = grad.abs().sum(dim=1).nonzero().flatten()[:4].tolist()
    out[word] = {"rows": rows, "values": grad[rows].flatten().tolist()}
    return out


def values(model: torch.nn.Module) -> dict:
    params = named(model)
    return {key: params[key].detach().flatten().tolist() for key in watched(params)}


def inputs_of(loss_name: str) -> dict:
    """The batch of a case, written into the golden file so the Rust test reads the same."""
    if loss_name in ("MultipleNegativesRankingLoss", "MatryoshkaLoss(MultipleNegativesRankingLoss)", "SpladeLoss"):
        return {"columns": [ANCHORS, POSITIVES, NEGATIVES]}
    if loss_name == "MultipleNegativesRankingLoss(pairs)":
        return {"columns": [ANCHORS, POSITIVES]}
    if loss_name in ("CoSENTLoss", "CosineSimilarityLoss"):
        return {"columns": [SCORED[0], SCORED[1]], "labels": SCORED[2]}
    if loss_name == "BinaryCrossEntropyLoss":
        return {"columns": [SCORED[0], SCORED[1]], "labels": LABELS}
    if loss_name.startswith("CrossEncoder MultipleNegativesRankingLoss"):
        return {"columns": [ANCHORS, POSITIVES, NEGATIVES]}
    if loss_name == "ListNetLoss":
        queries = [q for q, docs in zip(LIST_QUERIES, LIST_DOCS) for _ in docs]
        documents = [d for docs in LIST_DOCS for d in docs]
        labels = [l for ls in LIST_LABELS for l in ls]
        return {"columns": [queries, documents], "labels": labels, "groups": [len(d) for d in LIST_DOCS]}
    raise ValueError(loss_name)


def loss_of(model, loss_name: str, inputs: dict):
    """A closure computing the case's loss on its batch."""
    columns = inputs["columns"]
    features = lambda: [model.preprocess(c) for c in columns]  # noqa: E731
    if loss_name == "CrossEncoder MultipleNegativesRankingLoss(num_negatives=None)":
        # Every document of the other queries as a negative: no sampling, so no RNG to match.
        loss = ce_losses.MultipleNegativesRankingLoss(model, num_negatives=None)
        return lambda: loss(columns, None)
    if loss_name == "CrossEncoder MultipleNegativesRankingLoss(num_negatives=None, scale=1, Identity)":
        loss = ce_losses.MultipleNegativesRankingLoss(model, num_negatives=None, scale=1.0, activation_fn=torch.nn.Identity())
        return lambda: loss(columns, None)
    if loss_name.startswith("MultipleNegativesRankingLoss"):
        loss = st_losses.MultipleNegativesRankingLoss(model)
        return lambda: loss(features(), None)
    if loss_name == "CoSENTLoss":
        loss = st_losses.CoSENTLoss(model)
        return lambda: loss(features(), torch.tensor(inputs["labels"]))
    if loss_name == "CosineSimilarityLoss":
        loss = st_losses.CosineSimilarityLoss(model)
        return lambda: loss(features(), torch.tensor(inputs["labels"]))
    if loss_name == "MatryoshkaLoss(MultipleNegativesRankingLoss)":
        loss = st_losses.MatryoshkaLoss(model, st_losses.MultipleNegativesRankingLoss(model), MATRYOSHKA_DIMS, MATRYOSHKA_WEIGHTS)
        return lambda: loss(features(), None)
    if loss_name == "BinaryCrossEntropyLoss":
        loss = ce_losses.BinaryCrossEntropyLoss(model)
        return lambda: loss(columns, torch.tensor(inputs["labels"]))
    if loss_name == "ListNetLoss":
        loss = ce_losses.ListNetLoss(model)
        return lambda: loss([LIST_QUERIES, LIST_DOCS], [torch.tensor(l) for l in LIST_LABELS])
    if loss_name == "SpladeLoss":
        loss = sp_losses.SpladeLoss(
            model,
            sp_losses.SparseMultipleNegativesRankingLoss(model),
            document_regularizer_weight=SPLADE_WEIGHTS[0],
            query_regularizer_weight=SPLADE_WEIGHTS[1],
        )
        return lambda: sum(loss(features(), None).values())
    raise ValueError(loss_name)


CASES = [
    ("bert-st-mean-norm", SentenceTransformer, "MultipleNegativesRankingLoss", True),
    ("bert-st-mean-norm", SentenceTransformer, "CoSENTLoss", False),
    ("bert-st-mean-norm", SentenceTransformer, "CosineSimilarityLoss", False),
    ("bert-st-mean-norm", SentenceTransformer, "MatryoshkaLoss(MultipleNegativesRankingLoss)", False),
    ("distilbert-st-cls", SentenceTransformer, "MultipleNegativesRankingLoss(pairs)", False),
    ("roberta-ce", CrossEncoder, "BinaryCrossEntropyLoss", True),
    ("roberta-ce", CrossEncoder, "ListNetLoss", False),
    ("roberta-ce", CrossEncoder, "CrossEncoder MultipleNegativesRankingLoss(num_negatives=None)", False),
    ("roberta-ce", CrossEncoder, "CrossEncoder MultipleNegativesRankingLoss(num_negatives=None, scale=1, Identity)", False),
    ("bert-splade", SparseEncoder, "SpladeLoss", True),
]


def load(cls, path: Path):
    """The fixture in training mode with every dropout probability 0."""
    off = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}
    model = cls(str(path), device="cpu", config_kwargs=off)
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def main(fixtures: Path, out: Path) -> None:
    torch.manual_seed(0)
    cases = []
    for fixture, cls, loss_name, adamw in CASES:
        model = load(cls, fixtures / fixture)
        inputs = inputs_of(loss_name)
        compute = loss_of(model, loss_name, inputs)
        loss = compute()
        loss.backward()
        case = {"fixture": fixture, "loss": loss_name, **inputs, "value": loss.item(), "grads": grads(model)}
        if loss_name.startswith("Matryoshka"):
            case["dims"], case["weights"] = MATRYOSHKA_DIMS, MATRYOSHKA_WEIGHTS
        if loss_name == "SpladeLoss":
            case["regularizer_weights"] = list(SPLADE_WEIGHTS)
        if adamw:
            model = load(cls, fixtures / fixture)
            compute = loss_of(model, loss_name, inputs)
            params = named(model)
            no_decay = [p for k, p in params.items() if "bias" in k or "LayerNorm" in k]
            decay = [p for k, p in params.items() if not ("bias" in k or "LayerNorm" in k)]
            optimizer = torch.optim.AdamW(
                [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                lr=LR,
                betas=(0.9, 0.999),
                eps=1e-8,
            )
            schedule = get_linear_schedule_with_warmup(optimizer, WARMUP, TOTAL)
            losses = []
            for _ in range(STEPS):
                optimizer.zero_grad()
                loss = compute()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                losses.append(loss.item())
            case["adamw"] = {
                "lr": LR,
                "weight_decay": WEIGHT_DECAY,
                "warmup_steps": WARMUP,
                "total_steps": TOTAL,
                "steps": STEPS,
                "max_grad_norm": 1.0,
                "losses": losses,
                "weights": values(model),
            }
        cases.append(case)
        print(f"{fixture:20} {loss_name:45} {case['value']:.6f}")
    versions = {
        "sentence_transformers": __import__("sentence_transformers").__version__,
        "transformers": __import__("transformers").__version__,
        "torch": torch.__version__,
    }
    text = json.dumps({"versions": versions, "cases": cases}, separators=(",", ":"))
    # Nine significant digits are more than f32 holds; the file stays small.
    text = re.sub(r"-?\d+\.\d{9,}(e-?\d+)?", lambda m: f"{float(m.group(0)):.9g}", text)
    out.write_text(text)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
