"""Whole-model benchmark, bigbird-roberta-base shape: ours vs Transformers 5.23 in the same process.

Forward (eval, batch 1, block-sparse) at several lengths and a training step (forward + backward) at
4096, ours and Transformers run in turn (theirs, ours, theirs, ...) so that a drift in the machine's speed hits
both alike; prints a markdown table of median wall and process-CPU seconds, the speed-ups, peak extra memory
(resident set size high-water mark above the level before the call, from /proc/self/status) and the
fraction of the machine's fp32 matmul peak (measured at start) that the model's useful FLOPs reach.

    python benchmarks/bench_model.py                       # L = 1024 2048 4096 8192, training step at 4096
    python benchmarks/bench_model.py --lengths 4096 --repeats 5 --train-layers 2
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
import warnings

import torch
from interleaved import measure_interleaved

import bigbird
from bigbird.attention import sparse_attention_fits
from bigbird.ops.layout import block_plan


def matmul_peak_gflops() -> float:
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    times = []
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * 2048**3 / min(times) / 1e9


def forward_gflops(config, length: int, layers: int) -> float:
    """Useful FLOPs of a forward: the linear layers plus the attended (query, key) blocks (all pairs if full)."""
    h, i, heads = config.hidden_size, config.intermediate_size, config.num_attention_heads
    d, bs = h // heads, config.block_size
    linear = 2 * length * (4 * h * h + 2 * h * i)
    if sparse_attention_fits(length, bs, config.num_random_blocks):
        padded = length + (-length) % bs
        plan = block_plan(padded, bs, config.num_random_blocks, heads, mode="eval", max_seq_len=padded)
        pairs_per_head = (plan.block_counts() > 0).sum() / heads * bs * bs
    else:
        pairs_per_head = length * length
    attention = 4 * d * heads * pairs_per_head
    return layers * (linear + attention) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="*", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-length", type=int, default=4096)
    parser.add_argument("--train-layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import transformers

    torch.manual_seed(0)
    max_len = max(args.lengths + [args.train_length])
    shape = dict(max_position_embeddings=max_len)
    theirs = transformers.BigBirdModel(transformers.BigBirdConfig(**shape)).eval()
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_pretrained(directory)
        ours = bigbird.BigBirdModel.from_pretrained(directory)
    peak = matmul_peak_gflops()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, transformers {transformers.__version__}, fp32 matmul peak {peak:.0f} GFLOP/s")
    print()
    print("| run | L | Transformers wall s | ours wall s | speed-up | Transformers CPU s | ours CPU s | CPU speed-up |"
          " Transformers extra GB | ours extra GB | ours % of matmul peak | max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    for length in args.lengths:
        ids = torch.randint(5, 30000, (1, length), generator=torch.Generator().manual_seed(length))
        with torch.inference_mode():
            results = measure_interleaved({name: (lambda m=model: m(ids).last_hidden_state)
                                           for name, model in (("theirs", theirs), ("ours", ours))}, args.repeats)
        diff = (results["theirs"].result - results["ours"].result).abs().max().item()
        flops = forward_gflops(ours.config, length, ours.config.num_hidden_layers)
        row(f"forward, {ours.config.num_hidden_layers} layers", length, results, flops, peak, diff)

    del theirs, ours  # the training step runs in a process holding only its own two models
    if args.train_length:
        layers = args.train_layers
        config = dict(shape, num_hidden_layers=layers)
        torch.manual_seed(0)
        their_small = transformers.BigBirdModel(transformers.BigBirdConfig(**config)).train()
        with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            their_small.save_pretrained(directory)
            our_small = bigbird.BigBirdModel.from_pretrained(directory).train()
        ids = torch.randint(5, 30000, (1, args.train_length), generator=torch.Generator().manual_seed(1))
        def step(model):
            model.zero_grad(set_to_none=True)
            model(ids).last_hidden_state.square().mean().backward()

        results = measure_interleaved({name: (lambda m=model: step(m))
                                       for name, model in (("theirs", their_small), ("ours", our_small))}, args.repeats)
        flops = 3 * forward_gflops(our_small.config, args.train_length, layers)
        row(f"training step, {layers} layers", args.train_length, results, flops, peak, None)


def row(run: str, length: int, results: dict, gflops: float, peak: float, diff: float | None) -> None:
    (wall_theirs, cpu_theirs, mem_theirs, _), (wall_ours, cpu_ours, mem_ours, _) = results["theirs"], results["ours"]
    shown = "" if diff is None else f"{diff:.1e}"
    print(f"| {run} | {length} | {wall_theirs:.2f} | {wall_ours:.2f} | {wall_theirs / wall_ours:.2f}x | "
          f"{cpu_theirs:.2f} | {cpu_ours:.2f} | {cpu_theirs / cpu_ours:.2f}x | {mem_theirs:.2f} | {mem_ours:.2f} | "
          f"{100 * gflops / wall_ours / peak:.0f}% | {shown} |", flush=True)


if __name__ == "__main__":
    main()
