"""Paper mode against an independent re-derivation of Google's original plan (google-research/bigbird,
bigbird/core/attention.py): the layer's seed is the layer index, the same plan serves training and inference,
lengths 1024, 2048, 3072 and 4096 take the old plan drawn for 4096 tokens, every other length the per-head plan.

The re-derivation below is written from a reading of the original's algorithm; it draws from a local legacy
`RandomState(seed)` in the original's order (numpy's global state is the same generator there).
"""

import itertools

import numpy as np
import pytest

from bigbird.ops import block_plan

ORIGINAL_MAX_SEQ_LEN = 4096
ORIGINAL_OLD_PLAN_LENGTHS = (1024, 2048, 3072, 4096)


def original_old_plan(blocks, block_size, r, rng):
    """(blocks - 2, r): random blocks of every middle row of a `blocks`-block plan, drawn among the first 1024
    tokens (all blocks when 1024 <= 2 * block_size)."""
    middle = np.arange(1, blocks - 1, dtype=np.int32)
    last = 1024 // block_size - 1 if 1024 > 2 * block_size else blocks - 1
    rows = np.zeros((blocks - 2, r), dtype=np.int32)
    for i in range(1, blocks - 1):
        if i <= 2:
            pool = middle[i + 1 : last]
        elif i >= blocks - 3 or i - 2 > last:
            pool = middle[:last]
        elif i + 1 == last:
            pool = middle[: i - 2]
        else:
            pool = np.concatenate((middle[: i - 2], middle[i + 1 : last]))
        rows[i - 1] = rng.permutation(pool)[:r]  # numpy broadcasting: one pick fills the row, too few raise
    return rows


def original_segments(n, r):
    """(end block, random blocks drawn there) of each segment of the per-head plan."""
    if 2 * r + 5 < n:
        return [(2 * r + 5, r), (n, 0)]
    if r + 5 < n:
        return [(r + 5, r // 2), (n, r - r // 2)]
    return [(n, r)]


def original_pick(row, low, high, k, rng):
    """Up to k blocks of [low, high) in a random order, none of row's window, the global blocks 0 and high - 1,
    nor (for rows 1 and high - 2) the block next to the far global block."""
    illegal = {row - 1, row, row + 1, 0, high - 1}
    if row == 1:
        illegal.add(high - 2)
    if row == high - 2:
        illegal.add(1)
    legal = [block for block in rng.permutation(np.arange(low, high, dtype=np.int32)) if block not in illegal]
    return np.array(legal[:k], dtype=np.int32)


def original_per_head_plan(n, r, heads, rng):
    segments = original_segments(n, r)
    ends = [end for end, _ in segments]
    counts = [count for _, count in segments]
    columns = np.cumsum([0] + counts)
    plan = np.zeros((heads, n, r), dtype=np.int32)

    def fill(rows, segment, low):
        for row in rows:
            for head in range(heads):
                plan[head, row, columns[segment] : columns[segment + 1]] = original_pick(
                    row, low, ends[segment], counts[segment], rng)

    for index in range(len(segments)):
        start = ends[index - 1] if index else 0
        if index and counts[index]:
            fill(range(1, start), index, start)
        for earlier in range(index if index else 0):
            if counts[earlier]:
                fill(range(start, ends[index]), earlier, ends[earlier - 1] if earlier else 0)
        if counts[index]:
            fill(range(max(start, 1), ends[index]), index, start)
    return plan[:, 1 : n - 1]


def original_random_blocks(length, block_size, r, heads, seed):
    """The original layer's rand_attn (heads, n - 2, r) for a padded length."""
    rng = np.random.RandomState(seed)
    n = length // block_size
    if length in ORIGINAL_OLD_PLAN_LENGTHS:
        blocks = ORIGINAL_MAX_SEQ_LEN // block_size
        return np.stack([original_old_plan(blocks, block_size, r, rng)[: n - 2] for _ in range(heads)])
    return original_per_head_plan(n, r, heads, rng)


LENGTHS = (1024, 2048, 3072, 4096, 768, 1536, 2112, 5120, 8192)
GRID = [
    (length, block_size, r)
    for length, block_size, r in itertools.product(LENGTHS, (16, 32, 64, 128, 256), (0, 1, 2, 3, 4))
    if length % block_size == 0 and length // block_size >= 5 and not (block_size == 16 and length > 4096)
]


def test_paper_plan_equals_the_original_over_the_grid():
    heads_cycle, seeds = itertools.cycle((1, 3, 12, 4)), itertools.cycle((0, 1, 7, 11, 23))
    compared = 0
    for length, block_size, r in GRID:
        heads, seed = next(heads_cycle), next(seeds)
        try:
            expected = original_random_blocks(length, block_size, r, heads, seed)
        except ValueError:  # the original cannot draw this plan (too few eligible blocks): neither can we
            with pytest.raises(ValueError, match="eligible as random blocks"):
                block_plan(length, block_size, r, heads, seed=seed, mode="paper")
            continue
        for max_seq_len in (2048, 4096, 8192):
            plan = block_plan(length, block_size, r, heads, seed=seed, mode="paper", max_seq_len=max_seq_len)
            np.testing.assert_array_equal(plan.random_blocks, expected,
                                          err_msg=f"{(length, block_size, r, heads, seed, max_seq_len)}")
        compared += 1
    assert compared > 0.9 * len(GRID)


@pytest.mark.parametrize("length", [1024, 2048, 3072, 4096])
def test_paper_old_plan_lengths_draw_among_the_first_1024_tokens(length):
    plan = block_plan(length, 64, 3, 4, seed=2, mode="paper", max_seq_len=8192)
    assert plan.random_blocks.max() < 1024 // 64
    assert (plan.random_blocks > 0).all()


def test_paper_mode_differs_from_transformers_where_the_original_does():
    # 2048 is an old-plan length of the original only; Transformers draws the per-head plan there
    paper, train = (block_plan(2048, 64, 3, 4, seed=5, mode=mode) for mode in ("paper", "train"))
    assert not np.array_equal(paper.random_blocks, train.random_blocks)
    # Transformers draws the old plan for max_position_embeddings tokens; the original always for 4096
    paper, train = (block_plan(3072, 64, 3, 4, seed=5, mode=mode, max_seq_len=8192) for mode in ("paper", "train"))
    assert not np.array_equal(paper.random_blocks, train.random_blocks)
    np.testing.assert_array_equal(paper.random_blocks,
                                  block_plan(3072, 64, 3, 4, seed=5, mode="train", max_seq_len=4096).random_blocks)
    # elsewhere both take the per-head plan with the same draws
    paper, train = (block_plan(2112, 64, 3, 4, seed=5, mode=mode) for mode in ("paper", "train"))
    np.testing.assert_array_equal(paper.random_blocks, train.random_blocks)


def test_paper_mode_accepts_any_max_seq_len_and_depends_on_the_seed():
    short = block_plan(4096, 64, 3, 2, seed=1, mode="paper", max_seq_len=512)
    np.testing.assert_array_equal(short.random_blocks, block_plan(4096, 64, 3, 2, seed=1, mode="paper").random_blocks)
    assert not np.array_equal(short.random_blocks, block_plan(4096, 64, 3, 2, seed=2, mode="paper").random_blocks)
