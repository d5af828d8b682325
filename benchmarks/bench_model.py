"""Whole-model benchmark, bigbird-roberta-base shape: ours vs Transformers 5.23 in the same process, fp32 and bf16.

Forward (eval, batch 1, block-sparse) at several lengths and a training step (forward + backward) at 4096. Every
implementation runs in turn (one call of each, then again, ...) so that a drift in the machine's speed hits all
alike; prints a markdown table of median wall and process-CPU seconds, the speed-up over Transformers in fp32,
peak extra memory (resident set size high-water mark above the level before the call, from /proc/self/status),
the fraction of the machine's matmul peak (measured at start, in the row's dtype) that the model's useful FLOPs
reach, and the largest difference from Transformers' fp32 output. Implementations:

  Transformers fp32, Transformers bf16 (weights cast with .to(torch.bfloat16); its autocast raises),
  ours fp32, ours bf16 (weights cast), ours autocast (fp32 weights under torch.autocast("cpu", torch.bfloat16)),
  and on request (--only) ours bf16 compiled: the bf16 model under torch.compile with Inductor's freezing, forward
  rows only (compiled on the first, untimed call of each length).

    python benchmarks/bench_model.py                                   # 12 layers, L = 1024 2048 4096 8192, step at 4096
    python benchmarks/bench_model.py --layers 2 --lengths 4096 --repeats 5 --train-layers 2   # issue 16's targets

Our models compute `gelu_new` with Transformers' GELUTanh (one fused kernel) where Transformers' BigBird runs
NewGELUActivation (seven); the rows of benchmarks/README.md recorded before that change measured it with a
--tanh-gelu option that is gone.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
import warnings

import torch
import transformers
from interleaved import measure_interleaved
from machine import describe

import bigbird
from bigbird.models.attention import sparse_attention_fits
from bigbird.ops.layout import block_plan

IMPLEMENTATIONS = ("Transformers fp32", "Transformers bf16", "ours fp32", "ours bf16", "ours autocast",
                   "ours bf16 compiled")


def matmul_peak_gflops(dtype: torch.dtype) -> float:
    a, b = torch.randn(2048, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
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


class FrozenCompiled(torch.nn.Module):
    """`torch.compile(model)` run with Inductor's freezing: the weights become constants, packed for oneDNN, with
    biases and activations fused into the products (inference only)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.config = model.config
        self.compiled = torch.compile(model)

    def forward(self, ids):
        with torch._inductor.config.patch(freezing=True):
            return self.compiled(ids)


def models(layers: int, max_len: int, training: bool) -> dict[str, tuple[torch.nn.Module, bool]]:
    """{implementation: (model, autocast)} with one set of random weights, in train or eval mode."""
    torch.manual_seed(0)
    config = transformers.BigBirdConfig(max_position_embeddings=max_len, num_hidden_layers=layers)
    theirs = transformers.BigBirdModel(config).train(training)
    with tempfile.TemporaryDirectory() as directory, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.save_pretrained(directory)
        ours = bigbird.BigBirdModel.from_pretrained(directory).train(training)
    ours_bf16 = copy.deepcopy(ours).bfloat16()
    built = {"Transformers fp32": (theirs, False), "Transformers bf16": (copy.deepcopy(theirs).bfloat16(), False),
             "ours fp32": (ours, False), "ours bf16": (ours_bf16, False), "ours autocast": (ours, True)}
    if not training:
        built["ours bf16 compiled"] = (FrozenCompiled(ours_bf16), False)
    return built


def forward(model, autocast: bool, ids):
    with torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext():
        return model(ids).last_hidden_state


def step(model, autocast: bool, ids):
    model.zero_grad(set_to_none=True)
    forward(model, autocast, ids).float().square().mean().backward()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="*", default=[1024, 2048, 4096, 8192])
    parser.add_argument("--layers", type=int, default=12, help="encoder layers of the forward rows")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-length", type=int, default=4096, help="0: no training step")
    parser.add_argument("--train-layers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--only", nargs="+", choices=IMPLEMENTATIONS, default=list(IMPLEMENTATIONS[:-1]),
                        help="implementations to run (Transformers fp32 is always run: the speed-ups are against it)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = ["Transformers fp32"] + [name for name in args.only if name != "Transformers fp32"]
    peaks = {dtype: matmul_peak_gflops(dtype) for dtype in (torch.float32, torch.bfloat16)}
    print(f"machine: {describe()}; matmul peak {peaks[torch.float32]:.0f} GFLOP/s fp32, "
          f"{peaks[torch.bfloat16]:.0f} GFLOP/s bf16")
    print()
    print("| run | L | implementation | wall s | CPU s | speed-up (wall) | speed-up (CPU) | extra GB | % of matmul peak |"
          " max abs diff |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    if args.lengths:
        built = models(args.layers, max(args.lengths + [args.train_length]), False)
        for length in args.lengths:
            ids = torch.randint(5, 30000, (1, length), generator=torch.Generator().manual_seed(length))
            with torch.inference_mode():
                results = measure_interleaved({name: (lambda m=built[name]: forward(*m, ids)) for name in chosen},
                                              args.repeats)
            rows(f"forward, {args.layers} layers", length, results, forward_gflops(built["ours fp32"][0].config,
                                                                                   length, args.layers), peaks)
        del built  # the training step runs in a process holding only its own models
    if args.train_length:
        built = models(args.train_layers, args.train_length, True)
        ids = torch.randint(5, 30000, (1, args.train_length), generator=torch.Generator().manual_seed(1))
        results = measure_interleaved({name: (lambda m=built[name]: step(*m, ids)) for name in chosen if name in built},
                                      args.repeats)
        flops = 3 * forward_gflops(built["ours fp32"][0].config, args.train_length, args.train_layers)
        rows(f"training step, {args.train_layers} layers", args.train_length, results, flops, peaks)


def rows(run: str, length: int, results: dict, gflops: float, peaks: dict) -> None:
    base = results["Transformers fp32"]
    for name, measured in results.items():
        peak = peaks[torch.float32 if name.endswith("fp32") else torch.bfloat16]
        diff = "" if measured.result is None else f"{(measured.result.float() - base.result).abs().max().item():.1e}"
        print(f"| {run} | {length} | {name} | {measured.wall:.3f} | {measured.cpu:.2f} | {base.wall / measured.wall:.2f}x"
              f" | {base.cpu / measured.cpu:.2f}x | {measured.peak_gb:.2f} | {100 * gflops / measured.wall / peak:.0f}% |"
              f" {diff} |", flush=True)


if __name__ == "__main__":
    main()
