"""GPU benchmark: bigbird-torch's Triton block-sparse attention vs compiled FlexAttention, dense SDPA and
Transformers' BigBird attention, then the bigbird-roberta-base model against Transformers', in one process.

    python benchmarks/bench_gpu.py                                   # the full grid
    python benchmarks/bench_gpu.py --dtypes bf16 --lengths 8192      # a subset
    python benchmarks/bench_gpu.py --skip-op --model-batches 1      # the model only

One attention layer: batch 1 and 8, 12 heads x 64, block 64, 3 random blocks, the eval plan (key block 0 listed
4 times), bf16 and fp32, forward and forward+backward, at 4k, 8k, 16k and 32k tokens. FlexAttention gets the same
block mask and a score_mod adding log(multiplicity), so all but dense SDPA compute the same function; "err vs
flex" is ||ours - flex|| / ||flex|| of the forward in that dtype. TFLOP/s are the op's nominal FLOPs (every
attended key block with its multiplicity, 4 * head_dim per query-key pair forward, 3.5x that forward+backward)
per second, for every implementation alike (dense SDPA does more work than that); "% peak" divides by the GPU's
dense bf16 datasheet peak (or a measured bf16 matmul where the GPU is not in the table). Times are medians of
CUDA-event timings after a warm-up; "peak GB" is the allocator's high-water mark above the inputs.

The model: bigbird-roberta-base's shape (12 layers, 768 wide, random weights), BigBirdForMaskedLM, forward (eval,
no grad) and training step (train mode, forward + backward of the MLM loss), as fp32 weights under bf16 autocast
and as bf16 weights (Transformers 5.23's block-sparse attention fails under autocast: its probabilities tensor
takes the bf16 context's dtype while autocast's softmax gives fp32, and `scatter_` refuses the mix).
Without CUDA the script says so and exits 0.
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
import sys
import time
from typing import Callable

import torch
import torch.nn.functional as F

from bench_attention import BLOCK, HEAD_DIM, HEADS, RANDOM, op_flops

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
BACKWARD_FACTOR = 3.5  # flash-attn's convention: the backward does 2.5x the forward's matmul work
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's datasheets, TFLOP/s; the first name found in the
# device name wins, so the more specific names come first.
BF16_PEAKS = {"GH200": 989.4, "H200": 989.4, "H100 PCIe": 756.0, "H100 NVL": 835.0, "H100": 989.4, "B200": 2250.0,
              "A100": 312.0, "L40S": 362.1, "L4": 121.0, "A10G": 70.0}


def median_ms(fn: Callable[[], object], budget_s: float = 2.0, most: int = 20) -> float:
    """Median milliseconds of `fn` on CUDA events: at least 3 runs, more while the budget lasts."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times, deadline = [], time.perf_counter() + budget_s
    while len(times) < 3 or (len(times) < most and time.perf_counter() < deadline):
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(median ms, peak GB above what was allocated before) of `fn`, after one warm-up call; timed runs for about
    `seconds`."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    fn()
    torch.cuda.synchronize()
    peak = (torch.cuda.max_memory_allocated() - before) / 2**30
    return median_ms(fn, seconds), peak


def bf16_peak_tflops() -> tuple[float, str]:
    name = torch.cuda.get_device_name()
    for key, peak in BF16_PEAKS.items():
        if key in name:
            return peak, "datasheet"
    a, b = (torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    return 2 * 8192**3 / median_ms(lambda: a @ b) / 1e9, "measured 8192^3 matmul"


def ours(length: int, batch: int, dtype: torch.dtype):
    from bigbird.ops import block_plan, block_sparse_attention

    plan = block_plan(length, BLOCK, RANDOM, HEADS)
    return lambda q, k, v: block_sparse_attention(q, k, v, plan, backend="triton")


def flex(length: int, batch: int, dtype: torch.dtype, block: int = 128):
    """Compiled FlexAttention over the plan's mask, log(multiplicity) added to the scores.

    The block mask has `block`-token tiles: at 128 (FlexAttention's default) a tile holding part of the pattern
    is masked element by element, so the function is the same; 64 matches the pattern's tiles but needs kernel
    tiles of 64, which FlexAttention's default backward configurations for head_dim 64 on Hopper do not have.
    """
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from bigbird.ops import block_plan

    counts = torch.from_numpy(block_plan(length, BLOCK, RANDOM, HEADS).block_counts()).float().cuda()
    bias = counts.log()

    def mask_mod(b, h, q_idx, kv_idx):
        return counts[h, q_idx // BLOCK, kv_idx // BLOCK] > 0

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + bias[h, q_idx // BLOCK, kv_idx // BLOCK]

    block_mask = create_block_mask(mask_mod, None, HEADS, length, length, device="cuda", BLOCK_SIZE=block)
    options = {"BLOCK_M": block, "BLOCK_N": block} if block < 128 else None
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v: compiled(q, k, v, score_mod=score_mod, block_mask=block_mask, kernel_options=options)


def dense_sdpa(length: int, batch: int, dtype: torch.dtype):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def run(q, k, v):  # flash where the dtype allows (bf16), memory-efficient otherwise (fp32)
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            return F.scaled_dot_product_attention(q, k, v)

    return run


def transformers_attention(length: int, batch: int, dtype: torch.dtype):
    """Transformers' block-sparse attention itself (no projections), eval plan, no padding."""
    from transformers import BigBirdConfig, BigBirdModel
    from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention

    config = BigBirdConfig(hidden_size=HEADS * HEAD_DIM, num_attention_heads=HEADS, block_size=BLOCK,
                           num_random_blocks=RANDOM, max_position_embeddings=max(4096, length))
    module = BigBirdBlockSparseAttention(config, seed=0).eval().cuda()
    masks = BigBirdModel.create_masks_for_block_sparse_attn(torch.ones(batch, length, device="cuda"), BLOCK)
    blocked, band, from_mask, to_mask = (mask.to(dtype) for mask in masks)

    def run(q, k, v):  # Transformers returns (batch, length, heads, head_dim)
        return module.bigbird_block_sparse_attention(
            q, k, v, band, from_mask, to_mask, blocked, blocked, HEADS, RANDOM, HEAD_DIM, BLOCK, BLOCK, batch,
            length, length, seed=0, plan_from_length=None, plan_num_rand_blocks=None)[0].transpose(1, 2)

    return run


IMPLEMENTATIONS = {"bigbird-torch": ours, "compiled flex": flex, "dense SDPA": dense_sdpa,
                   "transformers": transformers_attention}


def op_cell(impl, shape: tuple, dtype: torch.dtype, backward: bool, seconds: float) -> tuple[float, float]:
    q, k, v = (torch.randn(shape, device="cuda", dtype=dtype, requires_grad=backward) for _ in range(3))
    if not backward:
        def fn():
            with torch.no_grad():
                return impl(q, k, v)
    else:
        upstream = torch.randn(shape, device="cuda", dtype=dtype)

        def fn():
            return torch.autograd.grad(impl(q, k, v), (q, k, v), upstream)
    return measure(fn, seconds)


def relative_error(a_impl, b_impl, shape: tuple, dtype: torch.dtype) -> float:
    q, k, v = (torch.randn(shape, device="cuda", dtype=dtype) for _ in range(3))
    with torch.no_grad():
        a, b = a_impl(q, k, v).float(), b_impl(q, k, v).float()
    return ((a - b).norm() / b.norm()).item()


def attempt(label: str, fn: Callable[[], object]):
    """fn's result, or None after printing why it failed (out of memory, a missing package, a compile error)."""
    try:
        return fn()
    except Exception as error:  # one failing cell must not end the run: the table says what happened
        reason = "out of memory" if isinstance(error, torch.cuda.OutOfMemoryError) else type(error).__name__
        print(f"| {label} | failed: {reason}: {str(error).splitlines()[0][:160] if str(error) else ''} |", flush=True)
        torch.cuda.empty_cache()
        return None


def op_grid(args, peak: float) -> None:
    implementations = {**IMPLEMENTATIONS, "compiled flex": functools.partial(flex, block=args.flex_block)}
    implementations = {name: implementations[name] for name in args.implementations}
    print(f"\n## One attention layer (FlexAttention block mask of {args.flex_block}-token tiles)\n")
    print("| L | batch | dtype | pass | implementation | ms | TFLOP/s | % bf16 peak | peak GB | time / ours | "
          "err vs flex |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for length in args.lengths:
        for batch in args.batches:
            for dtype_name in args.dtypes:
                op_config(length, batch, dtype_name, implementations, peak, args.seconds)


def op_config(length: int, batch: int, dtype_name: str, builders: dict, peak: float, seconds: float) -> None:
    dtype, shape = DTYPES[dtype_name], (batch, HEADS, length, HEAD_DIM)
    base = f"{length} | {batch} | {dtype_name}"
    impls = {name: attempt(f"{base} | | {name}", lambda build=build: build(length, batch, dtype))
             for name, build in builders.items()}
    impls = {name: impl for name, impl in impls.items() if impl is not None}
    error = ""
    if "bigbird-torch" in impls and "compiled flex" in impls:
        value = attempt(f"{base} | | error check", lambda: relative_error(impls["bigbird-torch"],
                                                                        impls["compiled flex"], shape, dtype))
        error = "" if value is None else f"{value:.1e}"
    for backward in (False, True):
        flops = op_flops(length) * batch * (BACKWARD_FACTOR if backward else 1)
        pass_name = "fwd+bwd" if backward else "forward"
        reference = None
        for name, impl in impls.items():
            label = f"{base} | {pass_name} | {name}"
            result = attempt(label, lambda: op_cell(impl, shape, dtype, backward, seconds))
            if result is None:
                continue
            ms, gb = result
            reference = reference or (ms if name == "bigbird-torch" else None)
            tflops = flops / ms / 1e9
            ratio = f"{ms / reference:.2f}x" if reference else ""
            print(f"| {label} | {ms:.3f} | {tflops:.1f} | {100 * tflops / peak:.1f}% | {gb:.2f} | {ratio} | "
                  f"{error if name == 'bigbird-torch' and not backward else ''} |", flush=True)
        torch.cuda.empty_cache()


def model_flops(config, length: int) -> float:
    """Nominal forward FLOPs of BigBirdForMaskedLM: linear layers, attended blocks (eval plan), the LM head."""
    h, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    linear = 2 * length * (4 * h * h + 2 * h * inner)
    head = 2 * length * (h * h + h * config.vocab_size)
    return layers * (linear + op_flops(length)) + head


def model_variants(length: int):
    """Transformers' and our BigBirdForMaskedLM with the same random weights (bigbird-roberta-base's shape), each
    as fp32 weights run under bf16 autocast and as bf16 weights: {(precision, name): (model, autocast)}."""
    import transformers

    import bigbird

    config = transformers.BigBirdConfig(max_position_embeddings=max(4096, length), hidden_dropout_prob=0.0,
                                        attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    theirs = transformers.BigBirdForMaskedLM(config)
    mine = bigbird.BigBirdForMaskedLM(config)
    mine.load_state_dict(theirs.state_dict())
    variants = {}
    for name, model in (("bigbird-torch", mine), ("transformers", theirs)):
        variants["autocast", name] = model.cuda(), True
        variants["bf16 weights", name] = copy.deepcopy(model).bfloat16(), False
    return config, variants


def model_step(model, ids: torch.Tensor, train: bool, autocast: bool):
    """One forward (eval, no grad) or training step (forward + backward of the MLM loss); returns the logits."""
    model.train(train)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast), torch.set_grad_enabled(train):
        out = model(input_ids=ids, labels=ids if train else None)
        if train:
            out.loss.backward()
            model.zero_grad(set_to_none=True)
    return out.logits


def model_grid(args, peak: float) -> None:
    print("\n## bigbird-roberta-base (BigBirdForMaskedLM, random weights)\n")
    print("| L | batch | step | precision | model | ms | TFLOP/s | % bf16 peak | peak GB | time / ours | "
          "max abs logit diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for length in args.model_lengths:
        built = attempt(f"{length} | | | | models", lambda: model_variants(length))
        if built is None:
            continue
        config, variants = built
        for batch in args.model_batches:
            ids = torch.randint(5, config.vocab_size, (batch, length), device="cuda")
            for precision in ("autocast", "bf16 weights"):
                pair = {name: variants[precision, name] for name in ("bigbird-torch", "transformers")}
                diff = logit_difference(pair, ids, f"{length} | {batch} | check | {precision}")
                for train in (False, True):
                    flops = model_flops(config, length) * batch * (3 if train else 1)
                    base = f"{length} | {batch} | {'train step' if train else 'forward'} | {precision}"
                    model_rows(pair, ids, train, (flops, peak, args.seconds), base, "" if train else diff)
        del variants, built
        torch.cuda.empty_cache()


def logit_difference(pair: dict, ids: torch.Tensor, base: str) -> str:
    """The largest difference between the two models' eval logits on `ids`, or "" if one fails."""
    logits = [attempt(f"{base} | {name}", lambda entry=entry: model_step(entry[0], ids, False, entry[1]))
              for name, entry in pair.items()]
    if any(value is None for value in logits):
        return ""
    return f"{(logits[0].float() - logits[1].float()).abs().max().item():.2e}"


def model_rows(pair: dict, ids, train: bool, scale: tuple, base: str, diff: str) -> None:
    """Time both models' step; scale: (nominal FLOPs, bf16 peak TFLOP/s, timing seconds)."""
    flops, peak, seconds = scale
    reference = None
    for name, (model, autocast) in pair.items():
        result = attempt(f"{base} | {name}",
                         lambda: measure(lambda: model_step(model, ids, train, autocast), seconds))
        if result is None:
            continue
        ms, gb = result
        reference = reference or (ms if name == "bigbird-torch" else None)
        tflops = flops / ms / 1e9
        ratio = f"{ms / reference:.2f}x" if reference else ""
        print(f"| {base} | {name} | {ms:.1f} | {tflops:.1f} | {100 * tflops / peak:.1f}% | {gb:.2f} | {ratio} | "
              f"{diff} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", type=int, nargs="+", default=[4096, 8192, 16384, 32768])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dtypes", nargs="+", choices=sorted(DTYPES), default=["bf16", "fp32"])
    parser.add_argument("--implementations", nargs="+", choices=list(IMPLEMENTATIONS), default=list(IMPLEMENTATIONS))
    parser.add_argument("--model-lengths", type=int, nargs="+", default=[4096])
    parser.add_argument("--model-batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--flex-block", type=int, choices=[64, 128], default=128,
                        help="FlexAttention's block-mask tile (see flex())")
    parser.add_argument("--seconds", type=float, default=2.0, help="time budget of each cell's timed runs (3 at least)")
    parser.add_argument("--skip-op", action="store_true", help="only the model")
    parser.add_argument("--skip-model", action="store_true", help="only the attention layer")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("bench_gpu.py needs a CUDA GPU and this machine has none (torch.cuda.is_available() is False): "
              "nothing to measure. The CPU benchmarks are bench_attention.py and bench_model.py.")
        return 0
    import transformers
    import triton

    peak, source = bf16_peak_tflops()
    print(f"GPU: {torch.cuda.get_device_name()}, dense bf16 peak {peak:.0f} TFLOP/s ({source}); torch "
          f"{torch.__version__}, triton {triton.__version__}, transformers {transformers.__version__}")
    if not args.skip_op:
        op_grid(args, peak)
    if not args.skip_model:
        model_grid(args, peak)
    return 0


if __name__ == "__main__":
    sys.exit(main())
