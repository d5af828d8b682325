"""One attention layer: bigbird-torch's block-sparse op vs Transformers' block-sparse module vs dense SDPA
vs compiled FlexAttention with the same block pattern, in one process, in float32 and bfloat16.

    python benchmarks/bench_attention.py            # L = 1024 ... 16384, forward and forward+backward
    python benchmarks/bench_attention.py --quick    # a small subset, well under a minute
    python benchmarks/bench_attention.py --lengths 4096 --dtypes float32 bfloat16 --no-flex

Shape: batch 1, 12 heads, head dim 64, block 64, 3 random blocks, eval-mode plan (Transformers'
default at inference); every implementation in each of --dtypes (compiled FlexAttention in float32 only), the
last column against our op in the first dtype. The first line records the CPU, its native bf16/fp16 flags and
the load. The implementations of one (length, pass) run in turn, each timed run after an untimed one
(interleaved.py), so that a drift in the machine's speed hits all alike; medians over repeats. Peak extra
memory is the resident-set high-water mark of the first (untimed) call above the level before it (after
returning freed heap memory to the system). FLOPs are the ones the op computes: every distinct attended key block
once (a block listed m times is computed once, with log(m) added to its scores), 4 * d flops per query-key pair
forward, three times that forward+backward; the fraction of peak divides the achieved rate by this machine's
matmul rate in the row's dtype, the median of 7 timed products in the run. (Counting a repeated block m times,
as an earlier version did, overstated the work 1.43x at 4096 and gave shares above 100%.)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from bigbird.ops import block_plan, block_sparse_attention
from interleaved import measure_interleaved
from machine import describe

HEADS, HEAD_DIM, BLOCK, RANDOM = 12, 64, 64, 3


def matmul_peak_gflops(dtype: torch.dtype = torch.float32) -> float:
    a, b = torch.randn(2048, 2048).to(dtype), torch.randn(2048, 2048).to(dtype)
    seconds = measure_interleaved({"matmul": lambda: a @ b}, 7)["matmul"].wall
    return 2 * 2048**3 / seconds / 1e9


def op_flops(length: int) -> float:
    pairs = (block_plan(length, BLOCK, RANDOM, HEADS).block_counts() > 0).sum() * BLOCK * BLOCK
    return 4 * HEAD_DIM * float(pairs)


def transformers_layer(length: int, dtype: torch.dtype):
    from transformers import BigBirdConfig, BigBirdModel
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

    config = BigBirdConfig(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS, block_size=BLOCK,
                           num_random_blocks=RANDOM, max_position_embeddings=max(4096, length))
    module = BigBirdBlockSparseAttention(config, seed=0).eval()
    ones = torch.ones(1, length, dtype=dtype)
    blocked, band, from_mask, to_mask = BigBirdModel.create_masks_for_block_sparse_attn(ones, BLOCK)

    def run(q, k, v):
        return module.bigbird_block_sparse_attention(
            q, k, v, band, from_mask, to_mask, blocked, blocked, HEADS, RANDOM, HEAD_DIM, BLOCK, BLOCK, 1,
            length, length, seed=0, plan_from_length=None, plan_num_rand_blocks=None)[0]

    return run


def flex_layer(length: int):
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    counts = torch.from_numpy(block_plan(length, BLOCK, RANDOM, HEADS).block_counts()).float()
    bias = torch.log(counts)
    compiled = torch.compile(flex_attention, dynamic=False)

    def mask_mod(b, h, q_idx, kv_idx):
        return counts[h, q_idx // BLOCK, kv_idx // BLOCK] > 0

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias[h, q_idx // BLOCK, kv_idx // BLOCK]

    block_mask = create_block_mask(mask_mod, 1, HEADS, length, length, device="cpu", BLOCK_SIZE=BLOCK)

    def run(q, k, v):
        return compiled(q, k, v, score_mod=score_mod, block_mask=block_mask)

    return run


def implementations(length: int, with_flex: bool, with_transformers: bool, dtypes: list[torch.dtype]):
    """{(name, dtype): fn(q, k, v)}, our op in the first dtype first."""
    plan = block_plan(length, BLOCK, RANDOM, HEADS)
    impls = {}
    for dtype in dtypes:
        impls[("bigbird-torch", dtype)] = lambda q, k, v: block_sparse_attention(q, k, v, plan)
        impls[("dense SDPA", dtype)] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
        if with_transformers:
            impls[("transformers", dtype)] = transformers_layer(length, dtype)
    if with_flex:
        try:
            run = flex_layer(length)
            q = torch.randn(1, HEADS, length, HEAD_DIM)
            with torch.no_grad():
                run(q, q, q)
            impls[("compiled flex", torch.float32)] = run
        except Exception as error:  # compilation needs a working C++ toolchain and inductor support on this CPU
            print(f"compiled FlexAttention skipped at L={length}: {type(error).__name__}: {str(error)[:200]}")
    return impls


def prepared(impl, length: int, backward: bool, dtype: torch.dtype):
    """A call of `impl` on fresh random q, k, v: forward (no grad), or forward and backward of their sum."""
    q, k, v = (torch.randn(1, HEADS, length, HEAD_DIM).to(dtype).requires_grad_(backward) for _ in range(3))
    if backward:
        def fn():
            impl(q, k, v).sum().backward()
            for x in (q, k, v):
                x.grad = None
    else:
        def fn():
            with torch.no_grad():
                impl(q, k, v)
    return fn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="L = 1024 and 4096, forward only, no FlexAttention")
    parser.add_argument("--lengths", type=int, nargs="*", help="override the lengths")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-flex", action="store_true", help="skip compiled FlexAttention")
    parser.add_argument("--transformers-limit", type=int, default=16384,
                        help="largest L to run Transformers at (its L x L tensors need ~13 GB at 16384)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"])
    args = parser.parse_args()
    dtypes = [getattr(torch, name) for name in args.dtypes]
    lengths = args.lengths or ([1024, 4096] if args.quick else [1024, 2048, 4096, 8192, 16384])
    passes = [False] if args.quick else [False, True]
    repeats = args.repeats or (3 if args.quick else 5)
    with_flex = not (args.quick or args.no_flex)

    peaks = {dtype: matmul_peak_gflops(dtype) for dtype in dtypes}
    print(f"machine: {describe()}")
    print("matmul peak measured: " + ", ".join(f"{str(dtype)[6:]} {peak:.0f} GFLOP/s" for dtype, peak in peaks.items()))
    print(f"batch 1, {HEADS} heads, head dim {HEAD_DIM}, block {BLOCK}, r = {RANDOM}, eval plan; median of {repeats}; "
          "% peak against the matmul peak of the row's dtype")
    header = (f"{'L':>6} {'pass':>8} {'implementation':>14} {'dtype':>8} {'seconds':>9} {'% peak':>7} {'extra MB':>9} "
              f"{'vs ours ' + args.dtypes[0]:>16}")
    print(header)
    print("-" * len(header))
    try:
        import transformers  # noqa: F401
        have_transformers = True
    except ImportError:
        have_transformers = False
        print("transformers is not installed: its column is skipped (pip install transformers==5.23.0)")
    for length in lengths:
        impls = implementations(length, with_flex, have_transformers, dtypes)
        for backward in passes:
            flops = op_flops(length) * (3 if backward else 1)
            calls = {}
            for (name, dtype), impl in impls.items():
                label = f"{length:>6} {'fwd+bwd' if backward else 'forward':>8} {name:>14} {str(dtype)[6:]:>8}"
                if name == "transformers" and (length > args.transformers_limit or (backward and length > 8192)):
                    print(f"{label}   skipped: its dense L x L probabilities (and their gradients) exceed this "
                          "machine's memory or the --transformers-limit")
                elif name == "compiled flex" and backward:
                    print(f"{label}   skipped: FlexAttention has no backward on CPU in torch {torch.__version__}")
                else:
                    calls[label, dtype] = prepared(impl, length, backward, dtype)
            results = measure_interleaved(calls, repeats)
            ours = next(iter(results.values())).wall
            for (label, dtype), measured in results.items():
                share = flops / measured.wall / 1e9 / peaks[dtype] * 100
                print(f"{label} {measured.wall:>9.4f} {share:>6.0f}% {measured.peak_gb * 1024:>9.0f} "
                      f"{measured.wall / ours:>15.2f}x", flush=True)


if __name__ == "__main__":
    main()
