"""What the Python binding adds to SentenceTransformer.encode: the same texts encoded by
`model.encode` from Python and by the Rust call alone (`sieve._sieve._encode_seconds`, on the
same model object, without the binding's conversions), alternated in one process.

    python crates/python/benches/binding_overhead.py [--rounds 7] [--corpus ../shared/data/scifact/corpus.jsonl]

Prints the median time of each and their ratio (the binding's overhead is ratio - 1).
"""

import argparse
import json
import statistics
import time
from pathlib import Path

from sieve import SentenceTransformer
from sieve._sieve import _encode_seconds

REPO = Path(__file__).resolve().parents[3]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared/data/scifact/corpus.jsonl")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()

    with args.corpus.open() as lines:
        docs = [json.loads(line) for _, line in zip(range(200), lines)]
    workloads = {
        "short (200 SciFact titles)": [d["title"] for d in docs],
        "documents (64 SciFact abstracts, 256 tokens)": [d["title"] + " " + d["text"] for d in docs[:64]],
    }
    model = SentenceTransformer(args.model)
    print(f"{'workload':<46} {'python s':>9} {'rust s':>9} {'python/rust':>12}")
    for name, texts in workloads.items():
        model.encode(texts[:8])  # warm-up
        python, rust = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            model.encode(texts)
            python.append(time.perf_counter() - start)
            rust.append(_encode_seconds(model, texts))
        p, r = statistics.median(python), statistics.median(rust)
        print(f"{name:<46} {p:>9.4f} {r:>9.4f} {p / r:>11.3f}x")


if __name__ == "__main__":
    main()
