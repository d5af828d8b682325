"""The block plan: which key blocks each query block attends, with multiplicity.

BigBird's ITC pattern on `n` blocks of `block_size` tokens:

- query blocks 0 and n-1 are global and attend every key block;
- query block 1 attends [0, 1, 2, n-1] and its random blocks;
- query block i in 2..n-3 attends [0, i-1, i, i+1, n-1] and its random blocks;
- query block n-2 attends [0, n-3, n-2, n-1] and its random blocks.

The random blocks follow Transformers exactly. In `eval` mode every random index is block 0 (so block 0
counts 1 + r times in the softmax). In `train` mode they are drawn from a numpy `RandomState(seed)`
(the layer index) the way Transformers draws them: lengths 1024, 3072 and 4096 use the original
paper plan, drawn for `max_seq_len` tokens with random blocks among the first 1024 tokens and cut
to the sequence's rows; every other length uses the per-head plan. `paper` mode draws the training
plan at inference too, as the original BigBird code does.

Everything here is plain data (numpy), built once per key and cached; `BlockPlan.tables` hands the
op its integer tensors on the device it asks for.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Literal

import numpy as np
import torch

Mode = Literal["eval", "train", "paper"]
MODES = ("eval", "train", "paper")
LEGACY_LENGTHS = (1024, 3072, 4096)
LEGACY_RANDOM_SPAN = 1024
MIN_BLOCKS = 5


@dataclasses.dataclass(frozen=True, eq=False)
class BlockPlan:
    """The attention pattern of one layer for one padded length.

    `random_blocks` (heads, n - 2, r) int64 holds the random key blocks of query blocks 1..n-2 exactly
    as Transformers draws them (all zeros in eval mode). Query blocks 0 and n-1 attend every key
    block once; the fixed part of the other rows follows from the ITC pattern above.
    """

    seq_len: int
    block_size: int
    num_random_blocks: int
    num_heads: int
    seed: int
    mode: str
    random_blocks: np.ndarray
    _device_tables: dict = dataclasses.field(default_factory=dict, repr=False)

    @property
    def num_blocks(self) -> int:
        return self.seq_len // self.block_size

    def tables(self, device: torch.device | str) -> "OpTables":
        """The op's integer tables on `device`, built once per device."""
        device = torch.device(device)
        if device not in self._device_tables:
            self._device_tables[device] = _op_tables(self.random_blocks, self.num_blocks, device)
        return self._device_tables[device]

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


def _op_tables(random: np.ndarray, n: int, device: torch.device) -> OpTables:
    is_global = (random == 0) | (random == n - 1)
    global_counts = 1 + np.stack([(random == 0).sum(-1), (random == n - 1).sum(-1)], axis=-1)
    kept = ~is_global
    order = np.argsort(~kept, axis=-1, kind="stable")
    width = int(kept.sum(-1).max()) if random.size else 0
    extra = np.take_along_axis(np.where(kept, random, -1), order, -1)[..., :width]
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

    `seed` is the layer index (Transformers seeds layer i's plan with i); `max_seq_len` is the model's
    `max_position_embeddings`, which the legacy plan of lengths 1024, 3072 and 4096 is drawn for.
    """
    _check_plan_arguments(seq_len, block_size, num_random_blocks, num_heads, mode, max_seq_len)
    if mode == "eval":
        seed = 0
    legacy = seq_len in LEGACY_LENGTHS
    return _cached_plan(seq_len, block_size, num_random_blocks, num_heads, int(seed), mode,
                        max_seq_len if legacy and mode != "eval" else 0)


def _check_plan_arguments(seq_len, block_size, num_random_blocks, num_heads, mode, max_seq_len) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
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
    if mode != "eval" and seq_len in LEGACY_LENGTHS and max_seq_len < seq_len:
        raise ValueError(
            f"the random plan for length {seq_len} is drawn for max_seq_len (max_position_embeddings) tokens, "
            f"but max_seq_len is {max_seq_len}: pass the model's max_position_embeddings (at least {seq_len})"
        )


@functools.lru_cache(maxsize=256)
def _cached_plan(seq_len, block_size, num_random_blocks, num_heads, seed, mode, legacy_max_len) -> BlockPlan:
    n = seq_len // block_size
    if mode == "eval":
        random = np.zeros((num_heads, n - 2, num_random_blocks), dtype=np.int64)
    elif legacy_max_len:
        random = _legacy_random_blocks(legacy_max_len // block_size, n, block_size, num_random_blocks, num_heads,
                                       np.random.RandomState(seed))
    else:
        random = _per_head_random_blocks(n, num_random_blocks, num_heads, np.random.RandomState(seed))
    random.setflags(write=False)
    return BlockPlan(seq_len, block_size, num_random_blocks, num_heads, seed, mode, random)


def _attended_lists(n: int, random: np.ndarray) -> np.ndarray:
    """(heads, n-2, 5 + r) key blocks of query blocks 1..n-2 in softmax order, -1 where a row has fewer."""
    heads, rows, _ = random.shape
    fixed = np.full((rows, 5), -1, dtype=np.int64)
    middle = np.arange(2, n - 2)
    fixed[0, :4] = [0, 1, 2, n - 1]
    fixed[1:-1] = np.stack([np.zeros_like(middle), middle - 1, middle, middle + 1, np.full_like(middle, n - 1)], 1)
    fixed[-1, :4] = [0, n - 3, n - 2, n - 1]
    return np.concatenate([np.broadcast_to(fixed, (heads, rows, 5)), random], axis=-1)


def _fit_row(chosen: np.ndarray, r: int, where: str) -> np.ndarray:
    """A drawn row as Transformers stores it: r entries, or one entry broadcast to r."""
    if len(chosen) == r:
        return chosen
    if len(chosen) == 1:
        return np.repeat(chosen, r)
    raise ValueError(
        f"only {len(chosen)} key blocks are eligible as random blocks for {where}, but num_random_blocks is {r}: "
        "use fewer random blocks, a smaller block_size or a longer sequence"
    )


def _legacy_random_blocks(plan_blocks, n, block_size, r, num_heads, rng) -> np.ndarray:
    """The original paper plan: drawn for `plan_blocks` blocks (heads outer, rows inner), cut to n - 2 rows."""
    middle = np.arange(1, plan_blocks - 1, dtype=np.int32)
    last = plan_blocks - 1
    if LEGACY_RANDOM_SPAN > 2 * block_size:
        last = LEGACY_RANDOM_SPAN // block_size - 1
    out = np.zeros((num_heads, plan_blocks - 2, r), dtype=np.int64)
    for head in range(num_heads):
        for i in range(1, plan_blocks - 1):
            if i == 1:
                candidates = middle[2:last]
            elif i == 2:
                candidates = middle[3:last]
            elif i in (plan_blocks - 3, plan_blocks - 2):
                candidates = middle[:last]
            elif i - 2 > last:
                candidates = middle[:last]
            elif i + 1 == last:
                candidates = middle[: i - 2]
            else:
                candidates = np.concatenate((middle[: i - 2], middle[i + 1 : last]))
            out[head, i - 1] = _fit_row(rng.permutation(candidates)[:r], r, f"query block {i}")
    return out[:, : n - 2]


def _segments(n: int, r: int) -> tuple[list[int], list[int]]:
    """Where random blocks are drawn from: segment end blocks and random blocks drawn in each."""
    if 2 * r + 5 < n:
        return [2 * r + 5, n], [r, 0]
    if r + 5 < n:
        return [r + 5, n], [r // 2, r - r // 2]
    return [n], [r]


def _per_head_random_blocks(n: int, r: int, num_heads: int, rng) -> np.ndarray:
    """The per-head plan: each query row draws its random blocks segment by segment, heads innermost."""
    ends, per_segment = _segments(n, r)
    offsets = np.concatenate([[0], np.cumsum(per_segment)]).astype(int)
    out = np.zeros((num_heads, n, r), dtype=np.int64)

    def draw(rows, segment, to_start):
        k = per_segment[segment]
        for row in rows:
            for head in range(num_heads):
                chosen = _random_row(row, to_start, ends[segment], k, rng)
                out[head, row, offsets[segment] : offsets[segment + 1]] = _fit_row(chosen, k, f"query block {row}")

    for segment in range(len(ends)):
        if segment > 0:
            if per_segment[segment] > 0:
                draw(range(1, ends[segment - 1]), segment, ends[segment - 1])
            for earlier in range(segment):
                if per_segment[earlier] > 0:
                    draw(range(ends[segment - 1], ends[segment]), earlier, ends[earlier - 1] if earlier else 0)
        if per_segment[segment] > 0:
            start = ends[segment - 1] if segment else 1
            draw(range(start, ends[segment]), segment, ends[segment - 1] if segment else 0)
    return out[:, 1 : n - 1]


def _random_row(block: int, to_start: int, to_end: int, k: int, rng) -> np.ndarray:
    """Up to k blocks of [to_start, to_end) in a random order, skipping the window and the global blocks."""
    excluded = {block - 1, block, block + 1, 0, to_end - 1}
    if block == 1:
        excluded.add(to_end - 2)
    if block == to_end - 2:
        excluded.add(1)
    chosen = []
    for candidate in rng.permutation(np.arange(to_start, to_end, dtype=np.int32)):
        if candidate not in excluded:
            chosen.append(candidate)
        if len(chosen) == k:
            break
    return np.array(chosen, dtype=np.int64)
