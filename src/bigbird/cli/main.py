"""The `bigbird` command: long-document classification, question answering, summarization and mask filling,
embeddings and search, warm-starting, fine-tuning and the benchmarks. Run `bigbird --help` or
`bigbird SUBCOMMAND --help`."""

from __future__ import annotations

import argparse
import os
import sys

from .bench import add_bench_parser
from .embed import add_commands as add_embed_commands
from .tasks import EXIT_OK, EXIT_USAGE, add_task_parsers, run_task
from .train import add_train_parser

MAIN_HELP = """\
BigBird reads long documents (thousands of tokens) with block-sparse attention. Each task subcommand loads a
checkpoint (directory or Hugging Face Hub id), reads documents from files, a directory, standard input or a
JSON-lines file, and writes one JSON line per document to standard output (or --output).

examples:
  bigbird classify --model ./my-classifier reviews/            # one JSON line per file
  bigbird qa --model google/bigbird-base-trivia-itc --question "Who wrote it?" book.txt
  bigbird summarize --model google/bigbird-pegasus-large-arxiv --generate num_beams=2 papers.jsonl
  echo "Paris is the [MASK] of France." | bigbird fill-mask --model google/bigbird-roberta-base
  bigbird search "how is attention made sparse" docs/ --top-k 3   # the default model is built on first use
  bigbird embed docs/ -o vectors.npy                            # one unit vector per document
  bigbird warm-start ./my-bert-classifier --out ./my-long-classifier --max-length 4096
  bigbird train classify --model ./bigbird-base --train train.jsonl --eval dev.jsonl --out runs/cls
  bigbird bench                                                 # ours vs Transformers on this machine

exit status: 0 when every document was processed, 1 when some (or all) could not be, 2 on a usage error.
Problems are reported on standard error, naming the file or record; the other documents are still written."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; each sets `args.run` except the four tasks (run by `run_task`)."""
    parser = argparse.ArgumentParser(prog="bigbird", description=MAIN_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    add_task_parsers(commands)
    add_embed_commands(commands)
    add_train_parser(commands)
    add_bench_parser(commands)
    return parser


def _quiet_loading() -> None:
    """No Transformers loading bars into a pipe or a file: only a terminal shows progress."""
    if not sys.stderr.isatty():
        from transformers.utils import logging

        logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bigbird` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _quiet_loading()
    try:
        return args.run(args) if hasattr(args, "run") else run_task(args)
    except KeyboardInterrupt:
        print(f"bigbird {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
