"""sentence-transformers' trainer on the examples `benches/train_speed.rs` writes, for its
side-by-side figure: one epoch of MultipleNegativesRankingLoss at the same batch size, maximum
length, learning rate, warmup and seed, dropout off on both sides (`train_speed.rs` sets `dropout: false`).

Prints one JSON line: {"examples_per_second", "seconds", "peak_rss_mib", "loss"}.

    python benches/train_st.py EXAMPLES.jsonl MODEL BATCH MAX_LEN LR THREADS
"""

from __future__ import annotations

import json
import sys
import tempfile
import time


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM; getrusage's ru_maxrss keeps the parent's
    figure across exec)."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    path, model_name, batch, max_len, lr, threads = sys.argv[1:7]
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    torch.set_num_threads(int(threads))
    rows = [json.loads(line) for line in open(path)]
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    dataset = Dataset.from_dict(columns)
    off = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    model = SentenceTransformer(model_name, device="cpu", config_kwargs=off)
    model.max_seq_length = int(max_len)
    loss = MultipleNegativesRankingLoss(model)
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out,
            num_train_epochs=1,
            per_device_train_batch_size=int(batch),
            learning_rate=float(lr),
            warmup_ratio=0.1,
            weight_decay=0.01,
            seed=42,
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            use_cpu=True,
            dataloader_drop_last=False,
        )
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
        started = time.perf_counter()
        result = trainer.train()
        seconds = time.perf_counter() - started
    peak = peak_rss_mib()
    print(
        json.dumps(
            {
                "examples_per_second": len(rows) / seconds,
                "seconds": seconds,
                "peak_rss_mib": peak,
                "loss": result.training_loss,
            }
        )
    )


if __name__ == "__main__":
    main()
