"""The `bigbird` command: long-document classification, question answering, summarization, mask filling, and
the benchmarks. Run `bigbird --help` or `bigbird SUBCOMMAND --help`."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable

from tqdm import tqdm

from .bench import add_bench_parser
from .embed import EMBED_COMMANDS, add_commands as add_embed_commands
from .inputs import Document, read
from .train import add_train_parser

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

MAIN_HELP = """\
BigBird reads long documents (thousands of tokens) with block-sparse attention. Each subcommand loads a
checkpoint (directory or Hugging Face Hub id), reads documents from files, a directory, standard input or a
JSON-lines file, and writes one JSON line per document to standard output (or --output).

examples:
  bigbird classify --model ./my-classifier reviews/           # one JSON line per file
  bigbird qa --model google/bigbird-base-trivia-itc --question "Who wrote it?" book.txt
  bigbird summarize --model google/bigbird-pegasus-large-arxiv papers.jsonl -o summaries.jsonl
  echo "Paris is the [MASK] of France." | bigbird fill-mask --model google/bigbird-roberta-base
  bigbird bench                                                # attention and model benchmarks, quick

exit status: 0 when every document was processed, 1 when some (or all) could not be, 2 on a usage error.
Problems are reported on standard error, naming the file or record; the other documents are still written."""

INPUT_HELP = """\
inputs: files, directories (their files), "-" for standard input (the default). A file ending in .jsonl (or
any input with --jsonl) holds one JSON object per line: {"id": ..., %s}."""

TASKS = {
    "classify": dict(
        help="label documents with a sequence-classification checkpoint",
        record='"text": "..."',
        example="bigbird classify --model ./my-classifier --top-k 3 a.txt b.txt\n"
                '  {"id": "a.txt", "label": "positive", "score": 0.93, "labels": [...]}',
    ),
    "qa": dict(
        help="answer a question from each document (extractive, any length)",
        record='"question": "...", "context": "..."',
        example='bigbird qa --model google/bigbird-base-trivia-itc --question "Who wrote it?" book.txt\n'
                '  {"id": "book.txt", "answer": "...", "start": 1031, "end": 1045, "score": 0.61, "no_answer": false}',
    ),
    "summarize": dict(
        help="summarize documents with a BigBird-Pegasus checkpoint",
        record='"text": "..."',
        example="bigbird summarize --model google/bigbird-pegasus-large-arxiv --generate num_beams=2 paper.txt\n"
                '  {"id": "paper.txt", "summary": "..."}',
    ),
    "fill-mask": dict(
        help="predict the tokens behind [MASK] with a masked-language-model checkpoint",
        record='"text": "... [MASK] ..."',
        example='echo "Paris is the [MASK] of France." | bigbird fill-mask --model google/bigbird-roberta-base\n'
                '  {"id": "-", "masks": [[{"token": "capital", "token_id": 1234, "score": 0.4}, ...]]}',
    ),
}


def _setting(pair: str) -> tuple[str, object]:
    """KEY=VALUE as (key, value); the value is read as JSON when it parses (numbers, true, ...)."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _positive(text: str) -> int:
    value = int(text) if text.lstrip("-").isdigit() else None
    if value is None or value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number (0 or more), got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bigbird", description=MAIN_HELP,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")
    for name, spec in TASKS.items():
        sub = commands.add_parser(name, help=spec["help"], formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description=f"{spec['help'][0].upper()}{spec['help'][1:]}.\n\n"
                                              f"{INPUT_HELP % spec['record']}\n\nexample:\n  {spec['example']}")
        sub.add_argument("inputs", nargs="*", default=["-"], help="files, directories or - (default: -)")
        sub.add_argument("--model", "-m", required=True, help="checkpoint directory or Hugging Face Hub id")
        sub.add_argument("--output", "-o", help="write the JSON lines to this file instead of standard output")
        sub.add_argument("--jsonl", action="store_true", help="read every input as JSON lines")
        sub.add_argument("--batch-size", type=_positive, default=8 if name != "summarize" else 4,
                         help="documents (qa: windows) per forward pass (default: %(default)s)")
        sub.add_argument("--max-length", type=_positive,
                         help="tokens per window (default: the model's, e.g. 4096); longer documents are "
                              + ("read in overlapping windows" if name == "qa" else "truncated, with a warning"))
        sub.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
        sub.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], help="weights dtype (default: float32)")
        if name in ("classify", "fill-mask"):
            sub.add_argument("--top-k", type=_positive, default=1 if name == "classify" else 5,
                             help="how many labels / candidates to list (default: %(default)s)")
        if name == "qa":
            sub.add_argument("--question", "-q", help="the question for every document (JSON records may carry "
                                                      "their own)")
            sub.add_argument("--stride", type=_count, help="context tokens shared by neighbouring windows "
                                                        "(default: min(128, half a window's context))")
            sub.add_argument("--max-answer-length", type=_positive, default=30, help="in tokens (default: %(default)s)")
        if name == "summarize":
            sub.add_argument("--generate", nargs="+", default=[], metavar="KEY=VALUE", type=_setting,
                             help="override the checkpoint's generation settings, e.g. num_beams=2 max_new_tokens=128")
    add_bench_parser(commands)
    add_embed_commands(commands)
    add_train_parser(commands)
    return parser


def _prepare(command: str, args, document: Document) -> dict | str:
    """The pipeline's arguments for one document, or what is wrong with it."""
    fields = document.fields
    if command != "qa":
        text = fields.get("text")
        if text is None:
            return 'has no "text" field'
        return {"text": text} if text.strip() else "empty document: nothing to read"
    question, context = fields.get("question") or args.question, fields.get("context")
    if not question or not question.strip():
        return 'has no question: pass --question or give the record a "question" field'
    if context is None:
        return 'has no "context" field: a question needs a context to answer from'
    if not context.strip():
        return "a question without a context: the document is empty"
    return {"question": question, "context": context}


def _pipeline(command: str, args) -> tuple[Callable[[list[dict]], list[dict]], list]:
    """Load the model once; returns a function from a list of prepared documents to their results."""
    from .. import pipelines
    from ..pipelines.loading import load

    task = "answer" if command == "qa" else command
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load(task, args.model, device=args.device, dtype=args.dtype, max_length=args.max_length)
    common = dict(model=loaded.model, tokenizer=loaded.tokenizer, batch_size=args.batch_size,
                  max_length=args.max_length)
    if command == "classify":
        return (lambda docs: pipelines.classify([d["text"] for d in docs], top_k=args.top_k, **common)), caught
    if command == "fill-mask":
        return (lambda docs: pipelines.fill_mask([d["text"] for d in docs], top_k=args.top_k, **common)), caught
    if command == "summarize":
        settings = dict(args.generate)
        loaded.model.generation_config.merged(**settings)  # unknown settings fail here, before any document
        return (lambda docs: pipelines.summarize([d["text"] for d in docs], generate_kwargs=settings,
                                                 **common)), caught
    return (lambda docs: pipelines.answer([d["question"] for d in docs], [d["context"] for d in docs],
                                          stride=args.stride, max_answer_length=args.max_answer_length,
                                          **common)), caught


class Reporter:
    """Problems and warnings on standard error (above a progress bar), naming the document; counts what worked."""

    def __init__(self, command: str):
        self.command = command
        self.done = 0
        self.failed = 0

    def problem(self, name, message: str) -> None:
        self.failed += 1
        tqdm.write(f"bigbird {self.command}: error: {name}: {message}", file=sys.stderr)

    def warning(self, message: str) -> None:
        tqdm.write(f"bigbird {self.command}: warning: {message}", file=sys.stderr)

    def warnings(self, caught, ids: list) -> None:
        from ..pipelines.loading import TruncationWarning

        for record in caught:
            warning = record.message
            if isinstance(warning, TruncationWarning):
                self.warning(f"{ids[warning.index]}: {warning.detail}")
            else:
                self.warning(str(warning))


def _run_chunk(run, chunk: list[tuple[Document, dict]], reporter: Reporter, write) -> None:
    """Run the pipeline on a chunk; if it fails, document by document, so that only the bad ones are lost."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = run([prepared for _, prepared in chunk])
    except Exception as error:
        if len(chunk) == 1:
            reporter.problem(chunk[0][0].id, _describe(error))
        else:
            for item in chunk:
                _run_chunk(run, [item], reporter, write)
        return
    reporter.warnings(caught, [document.id for document, _ in chunk])
    for (document, _), result in zip(chunk, results):
        write(document, result)


def _describe(error: Exception) -> str:
    return str(error) if isinstance(error, (ValueError, TypeError, FileNotFoundError)) \
        else f"{type(error).__name__}: {error}"


def run_task(args) -> int:
    if args.command == "qa" and args.question is None and not args.jsonl \
            and not any(source.endswith(".jsonl") for source in args.inputs):
        print("bigbird qa: error: pass --question, or JSON-lines records with a question and a context",
              file=sys.stderr)
        return EXIT_USAGE
    if "-" in args.inputs and sys.stdin.isatty():
        print(f"bigbird {args.command}: error: no input: name files or a directory, or pipe text in "
              f"(see bigbird {args.command} --help)", file=sys.stderr)
        return EXIT_USAGE
    try:
        output = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    except OSError as error:
        print(f"bigbird {args.command}: error: cannot write {args.output}: {error.strerror}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return _run_documents(args, output)
    finally:
        if output is not sys.stdout:
            output.close()


def _run_documents(args, output) -> int:
    reporter = Reporter(args.command)
    try:
        run, caught = _pipeline(args.command, args)
    except Exception as error:
        print(f"bigbird {args.command}: error: {_describe(error)}", file=sys.stderr)
        return EXIT_FAILED
    reporter.warnings(caught, [])

    ready: list[tuple[Document, dict]] = []
    for item in read(args.inputs, args.jsonl, "context" if args.command == "qa" else "text"):
        prepared = _prepare(args.command, args, item) if isinstance(item, Document) else item.message
        if isinstance(prepared, str):
            reporter.problem(item.id, prepared)
        else:
            ready.append((item, prepared))
    if not ready:
        if not reporter.failed:
            reporter.problem("input", "no documents found")
        return EXIT_FAILED

    def write(document: Document, result: dict) -> None:
        output.write(json.dumps({"id": document.id, **result}, ensure_ascii=False) + "\n")
        reporter.done += 1

    with tqdm(total=len(ready), unit="doc", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        chunk_size = 4 * args.batch_size
        for start in range(0, len(ready), chunk_size):
            chunk = ready[start:start + chunk_size]
            _run_chunk(run, chunk, reporter, write)
            output.flush()
            bar.update(len(chunk))
    if reporter.failed:
        total = reporter.done + reporter.failed
        print(f"bigbird {args.command}: {reporter.done} of {total} documents done, {reporter.failed} failed",
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `bigbird` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if args.command == "bench":
            return args.run(args, extra)
        if args.command in EMBED_COMMANDS or args.command == "train":
            return args.run(args)
        return run_task(args)
    except KeyboardInterrupt:
        print(f"bigbird {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (e.g. `| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
