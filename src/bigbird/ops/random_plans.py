"""The random key blocks of BigBird's plans, drawn with numpy's legacy `RandomState` as the original code draws them.

Two algorithms, both drawing from a local `RandomState(seed)` so numpy's global state is never touched:

- the paper's "old plan" (`legacy_random_blocks`): drawn for a plan of `plan_blocks` blocks, heads outer and
  query rows inner, random blocks only among the first `LEGACY_RANDOM_SPAN` tokens, then cut to the sequence;
- the per-head plan (`per_head_random_blocks`): query rows outer, heads inner, random blocks drawn segment by
  segment over the sequence itself.

Both return (heads, n - 2, r) int64: the random key blocks of query blocks 1..n-2.
"""

from __future__ import annotations

import numpy as np

LEGACY_RANDOM_SPAN = 1024


def legacy_random_blocks(plan_blocks: int, n: int, block_size: int, r: int, num_heads: int,
                         rng: np.random.RandomState) -> np.ndarray:
    """The old plan: drawn for `plan_blocks` blocks (heads outer, rows inner), cut to n - 2 rows."""
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


def per_head_random_blocks(n: int, r: int, num_heads: int, rng: np.random.RandomState) -> np.ndarray:
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


def _fit_row(chosen: np.ndarray, r: int, where: str) -> np.ndarray:
    """A drawn row as the original stores it: r entries, or one entry broadcast to r."""
    if len(chosen) == r:
        return chosen
    if len(chosen) == 1:
        return np.repeat(chosen, r)
    raise ValueError(
        f"only {len(chosen)} key blocks are eligible as random blocks for {where}, but num_random_blocks is {r}: "
        "use fewer random blocks, a smaller block_size or a longer sequence"
    )


def _segments(n: int, r: int) -> tuple[list[int], list[int]]:
    """Where random blocks are drawn from: segment end blocks and random blocks drawn in each."""
    if 2 * r + 5 < n:
        return [2 * r + 5, n], [r, 0]
    if r + 5 < n:
        return [r + 5, n], [r // 2, r - r // 2]
    return [n], [r]


def _random_row(block: int, to_start: int, to_end: int, k: int, rng: np.random.RandomState) -> np.ndarray:
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
