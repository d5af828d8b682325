"""The block plan: which key blocks each query block attends, with multiplicity.

BigBird's ITC pattern on `n` blocks of `block_size` tokens:

- query blocks 0 and n-1 are global and attend every key block;
- query block 1 attends [0, 1, 2, n-1] and its random blocks;
- query block i in 2..n-3 attends [0, i-1, i, i+1, n-1] and its random blocks;
- query block n-2 attends [0, n-3, n-2, n-1] and its random blocks.

The random blocks come from one of three modes:

- `eval`: Transformers at inference, every random index is block 0 (so block 0 counts 1 + r times in the softmax);
- `train`: Transformers in training, drawn from a numpy `RandomState(seed)` (the layer index): lengths 1024, 3072
  and 4096 use the paper's old plan drawn for `max_seq_len` (max_position_embeddings) tokens, every other length
  the per-head plan;
- `paper`: Google's original code (google-research/bigbird), the same plan in training and at inference: lengths
  1024, 2048, 3072 and 4096 use the old plan drawn for 4096 tokens whatever `max_seq_len` is, every other length
  the per-head plan.

The old plan draws random blocks only among the first 1024 tokens and is cut to the sequence's rows
(see `random_plans`).

A plan is a key; its draw (numpy) is built once per key and cached, and `BlockPlan.tables` hands the op its
integer tensors on the device it asks for, built once per (plan, device).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np
import torch

from torch._subclasses.fake_tensor import unset_fake_temporarily

from .random_plans import legacy_random_blocks, per_head_random_blocks

Mode = Literal["eval", "train", "paper"]
MODES = ("eval", "train", "paper")
LEGACY_LENGTHS = (1024, 3072, 4096)  # Transformers' old-plan lengths (train mode)
PAPER_LEGACY_LENGTHS = (1024, 2048, 3072, 4096)  # the original code's old-plan lengths (paper mode)
PAPER_PLAN_LENGTH = 4096  # the original code's MAX_SEQ_LEN: its old plan is always drawn for 4096 tokens
MIN_BLOCKS = 5


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """The attention pattern of one layer for one padded length: a hashable key of Python ints and a string.

    `old_plan_length` is the number of tokens the old plan is drawn for (0: the per-head plan, or no draw in eval
    mode). `random_blocks` (heads, n - 2, r) int64 holds the random key blocks of query blocks 1..n-2 as the mode
    draws them (all zeros in eval mode). Query blocks 0 and n-1 attend every key block once; the fixed part of
    the other rows follows from the ITC pattern above. The numpy draw and the device tables are built on first
    use and cached, outside any traced code (the compiled op receives the key, never the tables).
    """

    seq_len: int
    block_size: int
    num_random_blocks: int
    num_heads: int
    seed: int
    mode: str
    old_plan_length: int

    @property
    def num_blocks(self) -> int:
        return self.seq_len // self.block_size

    @property
    def random_blocks(self) -> np.ndarray:
        return _random_blocks(self)

    def tables(self, device: torch.device | str) -> "OpTables":
        """The op's integer tables on `device`, built once per device."""
        return _device_tables(self, torch.device(device))

    def block_counts(self) -> np.ndarray:
        """Dense (heads, n, n) matrix: how often query block i's softmax holds key block j."""
        n = self.num_blocks
        lists = _attended_lists(n, self.random_blocks)
        dense = np.zeros((self.num_heads, n, n), dtype=np.int64)
        dense[:, 0, :] = 1
        dense[:, n - 1, :] = 1
        heads = np.arange(self.num_heads)[:, None, None]
        rows = np.arange(1, n - 1)[None, :, None]
        np.add.at(dense, (heads, rows, np.where(lists >= 0, lists, 0)), (lists >= 0).astype(np.int64))
        return dense


@dataclasses.dataclass(frozen=True)
class OpTables:
    """How the op splits the keys of query blocks 1..n-2 into three parts.

    Every such row attends the global key blocks 0 and n-1 (`global_counts` (heads, n-2, 2): how often
    each enters its softmax, random picks of 0 or n-1 folded in), its window i-1, i, i+1 (minus a
    global block already counted, on rows 1 and n-2), and `extra_blocks` (heads, n-2, r'): the other
    random blocks, -1 where a row has fewer than r'. `any_extra` (heads, n-2) says which rows have one.
    """

    global_counts: torch.Tensor
    extra_blocks: torch.Tensor
    any_extra: torch.Tensor
    uniform_global_counts: bool


@functools.lru_cache(maxsize=256)
def _device_tables(plan: BlockPlan, device: torch.device) -> OpTables:
    random, n = plan.random_blocks, plan.num_blocks
    is_global = (random == 0) | (random == n - 1)
    global_counts = 1 + np.stack([(random == 0).sum(-1), (random == n - 1).sum(-1)], axis=-1)
    kept = ~is_global
    order = np.argsort(~kept, axis=-1, kind="stable")
    width = int(kept.sum(-1).max()) if random.size else 0
    extra = np.take_along_axis(np.where(kept, random, -1), order, -1)[..., :width]
    # Cached tensors must be real, plain tensors even when the first call comes from a fake-tensor trace or
    # from inference mode (inference tensors cannot be saved for a later backward).
    with unset_fake_temporarily(), torch.inference_mode(False):
        return OpTables(
            global_counts=torch.tensor(global_counts, device=device),
            extra_blocks=torch.tensor(extra, device=device),
            any_extra=torch.tensor(kept.any(-1), device=device),
            uniform_global_counts=bool((global_counts == global_counts[:1, :1]).all()),
        )


def block_plan(
    seq_len: int,
    block_size: int,
    num_random_blocks: int,
    num_heads: int,
    seed: int = 0,
    mode: Mode = "eval",
    max_seq_len: int = 4096,
) -> BlockPlan:
    """The (cached) plan for a padded length `seq_len`, a multiple of `block_size`.

    `seed` is the layer index (Transformers and the original code seed layer i's plan with i); `max_seq_len` is
    the model's `max_position_embeddings`, which train mode draws the old plan of lengths 1024, 3072 and 4096
    for (paper mode always draws it for 4096 tokens, as the original code does). Arguments other than ints (or a
    mode other than "eval", "train", "paper") raise a TypeError or ValueError saying what to pass.
    """
    seq_len, block_size, num_random_blocks, num_heads, seed, max_seq_len = (
        _integer(name, value) for name, value in (
            ("seq_len", seq_len), ("block_size", block_size), ("num_random_blocks", num_random_blocks),
            ("num_heads", num_heads), ("seed", seed), ("max_seq_len", max_seq_len)))
    _check_plan_arguments(seq_len, block_size, num_random_blocks, num_heads, seed, mode, max_seq_len)
    key = (seq_len, block_size, num_random_blocks, num_heads, 0 if mode == "eval" else seed, mode,
           _old_plan_length(seq_len, mode, max_seq_len))
    if torch.compiler.is_compiling():  # the plan is a key: traced code builds it afresh and never draws
        return BlockPlan(*key)
    return _cached_plan(*key)


def _integer(name: str, value) -> int:
    """`value` as a Python int; a bool, float or string is refused rather than silently converted."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}: pass {name}=int(...)")
    return int(value)


def _old_plan_length(seq_len: int, mode: str, max_seq_len: int) -> int:
    """How many tokens the old plan is drawn for, or 0 where the per-head plan (or no draw) is used."""
    if mode == "train" and seq_len in LEGACY_LENGTHS:
        return max_seq_len
    if mode == "paper" and seq_len in PAPER_LEGACY_LENGTHS:
        return PAPER_PLAN_LENGTH
    return 0


def _check_plan_arguments(seq_len, block_size, num_random_blocks, num_heads, seed, mode, max_seq_len) -> None:
    if not isinstance(mode, str) or mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32) (numpy's RandomState seeds), got {seed}: pass the layer index")
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be at least 1 (the model's max_position_embeddings), got {max_seq_len}")
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    if num_random_blocks < 0:
        raise ValueError(f"num_random_blocks must be 0 or more, got {num_random_blocks}")
    if num_heads < 1:
        raise ValueError(f"num_heads must be at least 1, got {num_heads}")
    if seq_len % block_size:
        raise ValueError(
            f"sequence length {seq_len} is not a multiple of block_size {block_size}: pad the input to "
            f"{-(-seq_len // block_size) * block_size} tokens (the models do this for you)"
        )
    if seq_len // block_size < MIN_BLOCKS:
        raise ValueError(
            f"block-sparse attention needs at least {MIN_BLOCKS} blocks, but {seq_len} tokens make "
            f"{seq_len // block_size} blocks of {block_size}: use full attention for inputs this short"
        )
    if mode == "train" and seq_len in LEGACY_LENGTHS and max_seq_len < seq_len:
        raise ValueError(
            f"the random plan for length {seq_len} is drawn for max_seq_len (max_position_embeddings) tokens, "
            f"but max_seq_len is {max_seq_len}: pass the model's max_position_embeddings (at least {seq_len})"
        )


@functools.lru_cache(maxsize=256)
def _cached_plan(*key) -> BlockPlan:
    plan = BlockPlan(*key)
    _random_blocks(plan)  # drawn now, so that a plan that cannot be drawn fails here, not in the op
    return plan


@functools.lru_cache(maxsize=256)
def _random_blocks(plan: BlockPlan) -> np.ndarray:
    n, r, heads = plan.num_blocks, plan.num_random_blocks, plan.num_heads
    if plan.mode == "eval":
        random = np.zeros((heads, n - 2, r), dtype=np.int64)
    elif plan.old_plan_length:
        random = legacy_random_blocks(plan.old_plan_length // plan.block_size, n, plan.block_size, r, heads,
                                      np.random.RandomState(plan.seed))
    else:
        random = per_head_random_blocks(n, r, heads, np.random.RandomState(plan.seed))
    random.setflags(write=False)
    return random


def _attended_lists(n: int, random: np.ndarray) -> np.ndarray:
    """(heads, n-2, 5 + r) key blocks of query blocks 1..n-2 in softmax order, -1 where a row has fewer."""
    heads, rows, _ = random.shape
    fixed = np.full((rows, 5), -1, dtype=np.int64)
    middle = np.arange(2, n - 2)
    fixed[0, :4] = [0, 1, 2, n - 1]
    fixed[1:-1] = np.stack([np.zeros_like(middle), middle - 1, middle, middle + 1, np.full_like(middle, n - 1)], 1)
    fixed[-1, :4] = [0, n - 3, n - 2, n - 1]
    return np.concatenate([np.broadcast_to(fixed, (heads, rows, 5)), random], axis=-1)
