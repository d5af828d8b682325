"""`bigbird embed` under torchrun (see `sharding`): the batches that one process would run (documents sorted by
length, `--batch-size` at a time) shared out among the processes, and the same output written by process 0."""

from __future__ import annotations

import torch

from . import sharding
from .embed import _documents, _load, write_embeddings
from .report import EXIT_FAILED, EXIT_OK, EXIT_USAGE, Reporter


def run_sharded(args) -> int:
    """`bigbird embed` as parsed into `args`, in one of torchrun's processes; returns the exit status."""
    setup = Reporter("embed", hold=True)
    processes = sharding.start(args, setup, None)
    if isinstance(processes, int):
        return processes
    try:
        return _embed_shares(args, processes, setup)
    finally:
        processes.close()


def _embed_shares(args, processes: sharding.Processes, setup: Reporter) -> int:
    from ..pipelines.loading import length_sorted_batches
    from ..search import embed

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
