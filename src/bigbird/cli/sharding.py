"""Batch inference under torchrun: `torchrun --nproc_per_node N --no-python bigbird classify|qa|summarize|fill-mask|
embed ... -o OUT` shares the documents out among the processes and writes the OUT that one process would write.

The documents are cut into units that one process computes together too (the task commands' groups of
4 x --batch-size documents, embed's batches), so that each result comes from the same padded batch and the
output is the same byte for byte. The units go to the processes greedily, the longest first to the least loaded.
Each process runs on its own device (the GPU of its LOCAL_RANK when there are GPUs, else the CPU, whose cores the
processes of a machine share out) and records every unit it finishes in OUT.partial (see `run_record`); process 0
then writes OUT in input order. The processes exchange objects through a gloo group that waits as long as the
slowest process needs: if one dies, torchrun stops the others.
"""

from __future__ import annotations

import datetime
import heapq
import os
import sys
from collections.abc import Callable

import torch
import torch.distributed as dist
from tqdm import tqdm

from .options import output_problem
from .report import EXIT_FAILED, EXIT_USAGE, Reporter
from .run_record import RunRecord, identity

WAIT = datetime.timedelta(days=7)


def launched() -> bool:
    """Whether torchrun (or another launcher setting WORLD_SIZE) started this process."""
    return "WORLD_SIZE" in os.environ


def usage_problem(args) -> str | None:
    """What a command line cannot do under torchrun, or None."""
    if args.output is None:
        return ("under torchrun, name the output file with --output: the processes write it together and keep "
                "their progress next to it")
    if "-" in args.inputs:
        return "under torchrun, standard input cannot be shared by the processes: name files or directories"
    return None


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Processes:
    """This process among torchrun's: its `rank` among `world` processes, its `device`, and the objects it
    exchanges with the others."""

    def __init__(self, device: str | None):
        from ..training.distributed import setup

        self._runtime = setup(device, fsdp=False)
        self.rank, self.world, self.device = self._runtime.rank, self._runtime.world, self._runtime.device
        self._group = dist.new_group(backend="gloo", timeout=WAIT) if self.world > 1 else None
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if self.device.type == "cpu" and local > 1:  # torchrun gives each process 1 thread
            torch.set_num_threads(max(1, _cores() // local))

    def gather(self, value) -> list:
        """The `value` of every process, in rank order."""
        if self._group is None:
            return [value]
        out = [None] * self.world
        dist.all_gather_object(out, value, group=self._group)
        return out

    def broadcast(self, value):
        """Process 0's `value`, in every process."""
        if self._group is not None:
            box = [value]
            dist.broadcast_object_list(box, src=0, group=self._group)
            value = box[0]
        return value

    def settle(self, reporter: Reporter, failed: bool) -> bool:
        """Process 0 prints what every process's holding `reporter` held, each line once; whether any `failed`."""
        gathered = self.gather((reporter.held, failed))
        reporter.held = []
        if self.rank == 0:
            for line in dict.fromkeys(line for lines, _ in gathered for line in lines):
                tqdm.write(line, file=sys.stderr)
        return any(flag for _, flag in gathered)

    def close(self) -> None:
        from ..training.distributed import teardown

        teardown(self._runtime)


def _device_problem(device: str | None) -> str | None:
    """Why no process can run on `device` (None: the GPU of its LOCAL_RANK if any, else the CPU), or None."""
    try:
        chosen = None if device is None else torch.device(device)
    except RuntimeError as error:
        return f"--device {device}: {error}"
    if chosen is not None and chosen.type == "cuda" and not torch.cuda.is_available():
        return f"--device {device}: there is no CUDA GPU here"
    return None


def _gpu_problem(device: str | None) -> str | None:
    """Why this process has no GPU of its own, when it should have one, or None."""
    local_rank, gpus = int(os.environ.get("LOCAL_RANK", "0")), torch.cuda.device_count()
    if device in (None, "cuda") and 0 < gpus <= local_rank:
        return (f"process {local_rank} of this machine has no GPU of its own ({gpus} here): start at most {gpus} "
                "processes per machine (--nproc_per_node), or pass --device cpu")
    return None


def _join(device: str | None, reporter: Reporter) -> Processes | None:
    """This process among torchrun's, on `device`; None, reported, when it cannot run there."""
    shared = _device_problem(device)
    own = None if shared else _gpu_problem(device)
    if not shared and not own:
        return Processes(device)
    reporter.error(shared or own)
    if own or os.environ.get("RANK", "0") == "0":
        for line in reporter.held:
            tqdm.write(line, file=sys.stderr)
    return None


def run(args, command: str, problem: str | None, share: Callable[..., int]) -> int:
    """`bigbird COMMAND` in one of torchrun's processes: once `_start` has the processes, `share(args, processes,
    setup)` does this process's share (`setup`: the Reporter that held every line until then); returns the exit
    status."""
    setup = Reporter(command, hold=True)
    processes = _start(args, setup, problem)
    if isinstance(processes, int):
        return processes
    try:
        return share(args, processes, setup)
    finally:
        processes.close()


def _start(args, reporter: Reporter, problem: str | None) -> Processes | int:
    """This process among torchrun's, its device set in `args.device`, once the command line (`problem`: what
    the command finds wrong with it, or None) and the output are checked; else the exit status, the problem
    reported once by process 0 (so is every line `reporter`, holding, takes until the work starts)."""
    processes = _join(args.device, reporter)
    if processes is None:
        return EXIT_USAGE
    for problem, status in ((usage_problem(args) or problem, EXIT_USAGE), (output_problem(args.output), EXIT_FAILED)):
        if problem:
            reporter.error(problem)
        if processes.settle(reporter, problem is not None):
            processes.close()
            return status
    args.device = processes.device
    return processes


def _take_up(record: RunRecord) -> tuple[str | None, set[int]]:
    problem = record.open()
    return problem, set() if problem else set(record.finished())


def open_record(processes: Processes, args, documents, reporter: Reporter) -> tuple[RunRecord, set[int]] | None:
    """The progress record of this run (settings `args`, `documents` described as JSON) next to --output, and
    the input indices it has done; None, reported, when it cannot be used."""
    wanted = identity(args, documents)
    record = RunRecord(args.output, wanted)
    done: set[int] = set()
    if any(other != wanted for other in processes.gather(wanted)):
        problem = "the processes read different documents: give every machine the same inputs (a shared folder)"
    else:
        problem, done = processes.broadcast(_take_up(record) if processes.rank == 0 else None)
        if problem is None and not record.folder.is_dir():
            problem = f"{record.folder} is not on this machine: write the output to a folder every machine shares"
    if problem:
        reporter.error(problem)
    return None if processes.settle(reporter, problem is not None) else (record, done)


def assign(weights: list[float], world: int) -> list[int]:
    """The process of each unit: the heaviest unit first, each to the least loaded process (ties: lower rank)."""
    loads = [(0.0, rank) for rank in range(world)]
    owners = [0] * len(weights)
    for unit in sorted(range(len(weights)), key=lambda unit: -weights[unit]):
        load, rank = heapq.heappop(loads)
        owners[unit] = rank
        heapq.heappush(loads, (load + weights[unit], rank))
    return owners


def work(processes: Processes, record: RunRecord, units: list[list[int]], done: set[int],
         compute: Callable[[list[int]], list[tuple[int, object]]], weight: Callable[[list[int]], float]) -> None:
    """Compute this process's share of the units (lists of input indices) that are not `done`, in input order,
    recording the (index, result) pairs of each; `weight(unit)` is its cost, e.g. its characters."""
    todo = [left for left in ([index for index in unit if index not in done] for unit in units) if left]
    owners = assign([weight(unit) for unit in todo], processes.world)
    mine = [unit for unit, owner in zip(todo, owners) if owner == processes.rank]
    shown = processes.rank == 0 and sys.stderr.isatty()
    with tqdm(total=sum(map(len, mine)), unit="doc", file=sys.stderr, disable=not shown) as bar:
        try:
            for unit in mine:
                results = compute(unit)
                if results:
                    record.add(processes.rank, results)
                bar.update(len(unit))
        finally:
            record.close()
