"""`bigbird bench`: how fast this library is on this machine, next to dense attention and Transformers.

Both benchmarks run in this process on random weights and inputs (nothing is downloaded), batch 1, in
--dtype (default float32; auto: bfloat16 where the CPU has native bf16 matrix units), and print markdown tables
of median seconds:
  attention  one block-sparse attention call (12 heads x 64, block 64, 3 random blocks, eval plan) against
             dense `scaled_dot_product_attention` on the same q, k, v;
  model      a bigbird-roberta-base-shaped encoder forward (768 wide, 12 heads, --layers layers), ours
             against Transformers' BigBirdModel with the same weights, the two run in turn so that a change
             in the machine's speed hits both alike.
The repository's benchmarks/ scripts give the fuller tables (memory, training steps) of benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch

from .options import add_dtype_option, positive

HEADS, HEAD_DIM, BLOCK, RANDOM = 12, 64, 64, 3
MIN_LENGTH = 5 * BLOCK  # the fewest blocks a block-sparse plan has
EXAMPLES = """\
examples:
  bigbird bench                                    # both, at 1024 and 4096 tokens (a few minutes)
  bigbird bench attention --lengths 2048 8192 --repeats 5
  bigbird bench model --lengths 4096 --layers 2"""


def add_bench_parser(commands) -> None:
    """Add `bench` to the `bigbird` parser's subparsers."""
    sub = commands.add_parser("bench", help="time block-sparse attention and the model against dense attention "
                                            "and Transformers on this machine",
                              description=f"{__doc__.split(chr(10), 1)[1].strip()}\n\n{EXAMPLES}",
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("which", nargs="*", metavar="{attention,model}", help="which benchmarks to run (default: both)")
    sub.add_argument("--lengths", type=positive, nargs="+", default=[1024, 4096],
                     help="sequence lengths, multiples of 64 of at least 320 (default: 1024 4096)")
    sub.add_argument("--repeats", type=positive, help="timed runs per cell after a warm-up (default: attention 3, "
                                                      "model 1)")
    sub.add_argument("--layers", type=positive, default=12, help="encoder layers of the model (default: 12)")
    add_dtype_option(sub, default="float32")
    sub.set_defaults(run=run_bench)


def _alternating(calls: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, float], dict]:
    """Median seconds per call over `repeats` rounds (a, b, a, b, ... after one untimed round), and what each
    call returned last."""
    results = {name: call() for name, call in calls.items()}
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            results[name] = call()
            seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in seconds.items()}, results


def attention_table(lengths: list[int], repeats: int, dtype: torch.dtype = torch.float32) -> list[str]:
    """Rows of the attention table: per length, our op and dense SDPA (median seconds) and the speed-up."""
    from ..ops import block_plan, block_sparse_attention

    rows = ["| L | bigbird-torch s | dense SDPA s | dense / ours |", "|---|---|---|---|"]
    for length in lengths:
        q, k, v = (torch.randn(1, HEADS, length, HEAD_DIM, dtype=dtype) for _ in range(3))
        plan = block_plan(length, BLOCK, RANDOM, HEADS, max_seq_len=max(4096, length))
        with torch.inference_mode():
            times, _ = _alternating({"ours": lambda: block_sparse_attention(q, k, v, plan),
                                     "dense": lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v)},
                                    repeats)
        speed_up = times["dense"] / times["ours"]
        rows.append(f"| {length} | {times['ours']:.4f} | {times['dense']:.4f} | {speed_up:.1f}x |")
    return rows


def model_table(lengths: list[int], repeats: int, layers: int, dtype: torch.dtype = torch.float32) -> list[str]:
    """Rows of the model table: per length, Transformers' and our forward (median seconds), the speed-up, and
    the largest difference between the two outputs."""
    import transformers

    import bigbird
    from ..models.loading import quiet_transformers

    config = transformers.BigBirdConfig(num_hidden_layers=layers, max_position_embeddings=max(4096, *lengths))
    torch.manual_seed(0)
    theirs = transformers.BigBirdModel(config).eval()
    ours = bigbird.BigBirdModel(config).eval()
    ours.load_state_dict(theirs.state_dict())
    theirs, ours = theirs.to(dtype), ours.to(dtype)
    rows = ["| L | Transformers s | bigbird-torch s | speed-up | max abs diff |", "|---|---|---|---|---|"]
    for length in lengths:
        ids = torch.randint(5, config.vocab_size, (1, length), generator=torch.Generator().manual_seed(length))
        theirs.set_attention_type("block_sparse")  # Transformers keeps full attention after one short input
        with torch.inference_mode(), quiet_transformers():
            times, out = _alternating({"theirs": lambda: theirs(ids).last_hidden_state,
                                       "ours": lambda: ours(ids).last_hidden_state}, repeats)
        diff = (out["theirs"].float() - out["ours"].float()).abs().max().item()
        rows.append(f"| {length} | {times['theirs']:.3f} | {times['ours']:.3f} | "
                    f"{times['theirs'] / times['ours']:.2f}x | {diff:.1e} |")
    return rows


def run_bench(args) -> int:
    """Print the chosen tables; returns the exit status."""
    import transformers

    from ..precision import cpu_support, describe_choice, resolve_dtype

    which = args.which or ["attention", "model"]
    problem = next((f"unknown benchmark {name!r}: choose attention or model" for name in which
                    if name not in ("attention", "model")), None)
    problem = problem or next((f"lengths must be multiples of {BLOCK} of at least {MIN_LENGTH}, not {length}"
                               for length in args.lengths if length % BLOCK or length < MIN_LENGTH), None)
    try:
        dtype = resolve_dtype(args.dtype)
    except ValueError as error:
        problem = problem or str(error)
    if problem:
        print(f"bigbird bench: error: {problem}", file=sys.stderr)
        return 2
    print(f"machine: {platform.processor() or platform.machine()} ({cpu_support().describe()}), "
          f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, transformers "
          f"{transformers.__version__}; {describe_choice(dtype, args.dtype)}, batch 1, medians\n", flush=True)
    if "attention" in which:
        print(f"one attention call, {HEADS} heads x {HEAD_DIM}, block {BLOCK}, r = {RANDOM}:")
        print("\n".join(attention_table(args.lengths, args.repeats or 3, dtype)) + "\n", flush=True)
    if "model" in which:
        print(f"encoder forward, bigbird-roberta-base shape, {args.layers} layers:")
        print("\n".join(model_table(args.lengths, args.repeats or 1, args.layers, dtype)) + "\n", flush=True)
    return 0
