"""`bigbird classify|qa|summarize|fill-mask`: the pipelines over documents from files, directories, standard
input or JSON lines, one JSON line out per document. `add_task_parsers(subparsers)` registers them; `run_task(args)`
runs one and returns the exit status."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable

from tqdm import tqdm

from . import sharding
from .inputs import Document, read
from .options import add_dtype_option, count, looks_like_setting, note_dtype, output_problem, positive, settings
from .report import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Reporter

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
                "  bigbird summarize -m ./pegasus --generate num_beams=4,max_new_tokens=256 --generate "
                "no_repeat_ngram_size=3 a.txt\n"
                '  {"id": "paper.txt", "summary": "..."}',
    ),
    "fill-mask": dict(
        help="predict the tokens behind [MASK] with a masked-language-model checkpoint",
        record='"text": "... [MASK] ..."',
        example='echo "Paris is the [MASK] of France." | bigbird fill-mask --model google/bigbird-roberta-base\n'
                '  {"id": "-", "masks": [[{"token": "capital", "token_id": 1234, "score": 0.4}, ...]]}',
    ),
}


def add_task_parsers(commands) -> None:
    """Add classify, qa, summarize and fill-mask to the `bigbird` parser's subparsers."""
    for name, spec in TASKS.items():
        sub = commands.add_parser(name, help=spec["help"], formatter_class=argparse.RawDescriptionHelpFormatter,
                                  description=f"{spec['help'][0].upper()}{spec['help'][1:]}.\n\n"
                                              f"{INPUT_HELP % spec['record']}\n\nexample:\n  {spec['example']}")
        sub.add_argument("inputs", nargs="*", default=["-"], help="files, directories or - (default: -)")
        sub.add_argument("--model", "-m", required=True, help="checkpoint directory or Hugging Face Hub id")
        sub.add_argument("--output", "-o", help="write the JSON lines to this file instead of standard output")
        sub.add_argument("--jsonl", action="store_true", help="read every input as JSON lines")
        sub.add_argument("--batch-size", type=positive, default=8 if name != "summarize" else 4,
                         help="documents (qa: windows) per forward pass (default: %(default)s)")
        sub.add_argument("--max-length", type=positive,
                         help="tokens per window (default: the model's, e.g. 4096); longer documents are "
                              + ("read in overlapping windows" if name == "qa" else "truncated, with a warning"))
        sub.add_argument("--device", help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
        add_dtype_option(sub)
        if name in ("classify", "fill-mask"):
            sub.add_argument("--top-k", type=positive, default=1 if name == "classify" else 5,
                             help="how many labels / candidates to list (default: %(default)s)")
        if name == "qa":
            sub.add_argument("--question", "-q", help="the question for every document (JSON records may carry "
                                                      "their own)")
            sub.add_argument("--stride", type=count, help="context tokens shared by neighbouring windows "
                                                        "(default: min(128, half a window's context))")
            sub.add_argument("--max-answer-length", type=positive, default=30, help="in tokens (default: %(default)s)")
        if name == "summarize":
            sub.add_argument("--generate", action="append", default=[], metavar="KEY=VALUE[,KEY=VALUE...]",
                             type=settings, help="override a generation setting of the checkpoint's "
                                                 "generation_config.json, e.g. num_beams=2; repeat the option or "
                                                 "join settings with commas: num_beams=2,max_new_tokens=128")


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
    """Load the model once; returns a function from a list of prepared documents to their results, and the
    warnings of loading. Generation settings are checked before the weights load."""
    from .. import pipelines
    from ..pipelines.generation import summary_settings
    from ..pipelines.loading import load

    task = "answer" if command == "qa" else command
    if command == "summarize":
        generate = summary_settings(dict(pair for group in args.generate for pair in group), args.model)
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
        return (lambda docs: pipelines.summarize([d["text"] for d in docs], generate_kwargs=generate,
                                                 **common)), caught
    return (lambda docs: pipelines.answer([d["question"] for d in docs], [d["context"] for d in docs],
                                          stride=args.stride, max_answer_length=args.max_answer_length,
                                          **common)), caught


def _run_chunk(run, chunk: list[tuple[int, Document, dict]], reporter: Reporter, write) -> None:
    """Run the pipeline on a chunk of (input index, document, its arguments); if it fails, document by document, so
    that only the bad ones are lost. `write(index, document, result)` takes each result."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            results = run([prepared for _, _, prepared in chunk])
    except Exception as error:
        if len(chunk) == 1:
            reporter.problem(chunk[0][1].id, describe(error))
        else:
            for item in chunk:
                _run_chunk(run, [item], reporter, write)
        return
    for record in caught:
        reporter.warning(record.message, [document.id for _, document, _ in chunk])
    for (index, document, _), result in zip(chunk, results):
        write(index, document, result)


def _chunks(ready: list, batch_size: int) -> list[list]:
    """The groups of documents that one pipeline call takes: four batches' worth, in input order."""
    size = 4 * batch_size
    return [ready[start:start + size] for start in range(0, len(ready), size)]


def _line(document: Document, result: dict) -> str:
    return json.dumps({"id": document.id, **result}, ensure_ascii=False)


def describe(error: Exception) -> str:
    """An error as a user reads it: the message of the errors we raise on purpose, else its type too."""
    return str(error) if isinstance(error, (ValueError, TypeError, OSError)) else f"{type(error).__name__}: {error}"


def _usage_problem(args) -> str | None:
    if args.command == "qa" and args.question is None and not args.jsonl \
            and not any(source.endswith(".jsonl") for source in args.inputs):
        return "pass --question, or JSON-lines records with a question and a context"
    if "-" in args.inputs and sys.stdin.isatty():
        return f"no input: name files or a directory, or pipe text in (see bigbird {args.command} --help)"
    given = [source for source in args.inputs if looks_like_setting(source)]
    if args.command == "summarize" and given:
        return (f"{given[0]} looks like a generation setting, not a file: give each setting its own --generate "
                "(--generate num_beams=2 --generate max_new_tokens=128), or join them with commas "
                "(--generate num_beams=2,max_new_tokens=128)")
    return None


def run_task(args) -> int:
    """Run classify, qa, summarize or fill-mask as parsed into `args`; returns the exit status."""
    if sharding.launched():
        return sharding.run(args, args.command, _usage_problem(args), _shard_documents)
    reporter = Reporter(args.command)
    problem = _usage_problem(args)
    if problem:
        reporter.error(problem)
        return EXIT_USAGE
    problem = output_problem(args.output)
    if problem:
        reporter.error(problem)
        return EXIT_FAILED
    output = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        return _run_documents(args, output, reporter)
    finally:
        if output is not sys.stdout:
            output.close()


def _load_pipeline(args, reporter: Reporter):
    """`_pipeline`'s function, its loading warnings given to `reporter`; None, reported, when it cannot load."""
    try:
        run, caught = _pipeline(args.command, args)
    except Exception as error:
        reporter.error(describe(error))
        return None
    note_dtype(reporter, args)
    for record in caught:
        reporter.warning(record.message)
    return run


def _run_documents(args, output, reporter: Reporter) -> int:
    run = _load_pipeline(args, reporter)
    if run is None:
        return EXIT_FAILED
    ready = _read_ready(args, reporter)
    if not ready:
        return EXIT_FAILED

    def write(index: int, document: Document, result: dict) -> None:
        output.write(_line(document, result) + "\n")
        reporter.done += 1

    with tqdm(total=len(ready), unit="doc", file=sys.stderr, disable=not sys.stderr.isatty()) as bar:
        for chunk in _chunks(ready, args.batch_size):
            _run_chunk(run, chunk, reporter, write)
            output.flush()
            bar.update(len(chunk))
    return _status(args.command, reporter.done, reporter.failed)


def _read_ready(args, reporter: Reporter) -> list[tuple[int, Document, dict]]:
    """(input index, document, its pipeline arguments) of every usable input; the others go to `reporter`."""
    ready = []
    for index, item in enumerate(read(args.inputs, args.jsonl, "context" if args.command == "qa" else "text")):
        prepared = _prepare(args.command, args, item) if isinstance(item, Document) else item.message
        if isinstance(prepared, str):
            reporter.problem(item.id, prepared)
        else:
            ready.append((index, item, prepared))
    if not ready and not reporter.failed:
        reporter.problem("input", "no documents found")
    return ready


def _status(command: str, done: int, failed: int) -> int:
    """The exit status, after a line counting the failures if there were any."""
    if failed:
        print(f"bigbird {command}: {done} of {done + failed} documents done, {failed} failed", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _shard_documents(args, processes: sharding.Processes, setup: Reporter) -> int:
    ready = _read_ready(args, setup)
    if processes.settle(setup, not ready):
        return EXIT_FAILED
    opened = sharding.open_record(processes, args, [[index, document.id, prepared]
                                                    for index, document, prepared in ready], setup)
    if opened is None:
        return EXIT_USAGE
    record, done = opened
    run = _load_pipeline(args, setup)
    if processes.settle(setup, run is None):
        return EXIT_FAILED

    by_index, reporter = {item[0]: item for item in ready}, Reporter(args.command)

    def compute(unit: list[int]) -> list[tuple[int, str]]:
        lines = []
        _run_chunk(run, [by_index[index] for index in unit], reporter,
                   lambda index, document, result: lines.append((index, _line(document, result))))
        return lines

    units = [[index for index, _, _ in chunk] for chunk in _chunks(ready, args.batch_size)]
    sharding.work(processes, record, units, done, compute,
                  lambda unit: sum(len(text) for index in unit for text in by_index[index][2].values()))
    failed = setup.failed + sum(processes.gather(reporter.failed))
    if processes.rank != 0:
        return EXIT_FAILED if failed else EXIT_OK
    results = record.finished()
    with open(args.output, "w", encoding="utf-8") as output:
        output.writelines(results[index] + "\n" for index in sorted(results))
    record.remove()
    return _status(args.command, len(results), failed)
