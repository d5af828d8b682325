"""`bigbird train classify|qa|summarize`: `add_train_parser(subparsers)` registers it on the main parser; the
parser's `run(args)` returns the exit status."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

EXIT_OK, EXIT_FAILED = 0, 1

DESCRIPTION = """\
Fine-tune a BigBird (classify, qa) or BigBird-Pegasus (classify, summarize) checkpoint on JSON-lines (.jsonl)
or CSV (.csv) files. Columns by task:
  classify   text, label
  qa         question, context, answer, answer_start (character offset of the answer in the context;
             an empty answer means the context holds none); long contexts are read in overlapping windows
  summarize  document, summary

Each epoch ends with an evaluation on --eval (accuracy and macro-F1; exact match and F1; ROUGE-1/2/L) and a
checkpoint OUT/checkpoint-STEP in the Transformers format; the latest and the best are kept, the best is
copied into OUT, and OUT/metrics.json holds the evaluations, the loss curve and the throughput.

The same command runs on many processes and machines under torchrun (DistributedDataParallel; --fsdp shards
the model with FSDP2); --batch-size is per process.

examples:
  bigbird train classify --model ./bigbird-base --train train.jsonl --eval dev.jsonl --out runs/cls
  bigbird train classify --out runs/cls --resume   # continue from the latest checkpoint, same settings
  torchrun --nproc_per_node 4 --no-python bigbird train qa --model ./bigbird-base \\
      --train trivia-train.jsonl --eval trivia-dev.jsonl --out runs/qa --precision bf16"""


def add_train_parser(commands) -> None:
    """Add `train` with its three tasks to the `bigbird` parser's subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    train = commands.add_parser("train", help="fine-tune a checkpoint on long documents (classify, qa, summarize)",
                                formatter_class=raw, description=DESCRIPTION)
    tasks = train.add_subparsers(dest="task", metavar="{classify,qa,summarize}", required=True)
    helps = {"classify": "sequence classification (text, label)",
             "qa": "extractive question answering (question, context, answer, answer_start)",
             "summarize": "summarization with BigBird-Pegasus (document, summary)"}
    for task, text in helps.items():
        # options left out are absent from the parsed arguments: --resume keeps the saved value of those
        sub = tasks.add_parser(task, help=text, formatter_class=raw, description=DESCRIPTION,
                               argument_default=argparse.SUPPRESS)
        _add_options(sub, task)
        sub.set_defaults(run=run)


def _defaults() -> dict:
    from ..training import TrainSettings

    return {field.name: field.default for field in dataclasses.fields(TrainSettings)}


def _add_options(sub, task: str) -> None:
    default = _defaults()
    sub.add_argument("--model", "-m", help="checkpoint directory or Hub id to start from (required unless --resume)")
    sub.add_argument("--train", help="training data (.jsonl or .csv) (required unless --resume)")
    sub.add_argument("--eval", help="evaluation data (.jsonl or .csv), evaluated after each epoch")
    sub.add_argument("--out", required=True, help="directory for checkpoints, the best model and metrics.json")
    sub.add_argument("--epochs", type=int, help=f"default: {default['epochs']}")
    sub.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    sub.add_argument("--batch-size", type=int, help=f"examples per process per micro-batch (default: "
                                                    f"{default['batch_size']})")
    sub.add_argument("--grad-accum", type=int, help=f"micro-batches per optimizer step (default: "
                                                    f"{default['grad_accum']})")
    sub.add_argument("--lr", type=float, help=f"peak learning rate of AdamW (default: {default['lr']})")
    sub.add_argument("--weight-decay", type=float, help=f"default: {default['weight_decay']}")
    sub.add_argument("--warmup-ratio", type=float, help="share of the steps with a linear warm-up; then a linear "
                                                        f"decay to 0 (default: {default['warmup_ratio']})")
    sub.add_argument("--max-grad-norm", type=float, help=f"clip gradients (0: no; default: "
                                                         f"{default['max_grad_norm']})")
    sub.add_argument("--max-length", type=int, help="tokens per input (default: the model's, e.g. 4096)")
    if task == "classify":
        sub.add_argument("--labels", help="comma-separated label set, in id order (default: the model's trained "
                                          "labels, else the training file's, sorted)")
    if task == "qa":
        sub.add_argument("--stride", type=int, help="context tokens shared by neighbouring windows (default: "
                                                    "min(128, half a window's context))")
    if task == "summarize":
        sub.add_argument("--max-target-length", type=int, help="summary tokens trained on and generated at "
                                                               f"evaluation (default: {default['max_target_length']})")
        sub.add_argument("--num-beams", type=int, help=f"beams at evaluation (default: {default['num_beams']})")
    sub.add_argument("--eval-batch-size", type=int, help="default: --batch-size")
    sub.add_argument("--seed", type=int, help=f"default: {default['seed']}")
    sub.add_argument("--precision", choices=["fp32", "bf16", "fp16"],
                     help="bf16: autocast (CPU or GPU); fp16: autocast with a grad scaler (GPU) (default: fp32)")
    sub.add_argument("--gradient-checkpointing", action="store_true",
                     help="recompute activations in the backward pass: less memory, more time")
    sub.add_argument("--fsdp", action="store_true", help="under torchrun, shard the model with FSDP2")
    sub.add_argument("--save-steps", type=int, help="also write a checkpoint every N steps (default: each epoch)")
    sub.add_argument("--resume", nargs="?", const="last", metavar="CHECKPOINT",
                     help="continue from a checkpoint (default: the latest under --out) with the run's saved "
                          "settings; options given again may change only how it goes on")
    sub.add_argument("--device", help="torch device (default: this process's GPU if any, else cpu)")


def run(args) -> int:
    from ..training import DataError, ResumeError, settings_from_flags, train, warnings_as_lines

    passed = {key: value for key, value in vars(args).items() if key in _defaults()}
    if isinstance(passed.get("labels"), str):
        passed["labels"] = [label.strip() for label in passed["labels"].split(",") if label.strip()]
    try:
        with warnings_as_lines("bigbird train"):
            metrics = train(settings_from_flags(passed))
    except (DataError, ResumeError, ValueError, FileNotFoundError, OSError) as error:
        print(f"bigbird train {args.task}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    summary = {"best": metrics["best"], "global_step": metrics["global_step"],
               "train_tokens_per_second": round(metrics["train_tokens_per_second"], 1),
               "metrics": f"{args.out}/metrics.json"}
    if metrics.get("evaluations") and "metrics" in metrics["evaluations"][-1]:
        summary["last_eval"] = metrics["evaluations"][-1]["metrics"]
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return EXIT_OK
