"""BigBird block-sparse attention as Triton kernels, forward and deterministic backward.

The work is cut into items of equal size: a tile of one block (`block_size` rows) and up to `W` listed
blocks, `W` being the longest key list of a middle query block. Each distinct (tile, block) pair is listed
once with the log of its multiplicity added to its scores, which is the same as entering it that many times
in the softmax (Transformers' eval plan lists block 0 r + 1 times). A longer list (the global query blocks
0 and n-1, which attend all keys) is split into several items whose partial results are merged by a small
reduction kernel, so no program runs much longer than the others.

The forward and dQ kernels read the forward schedule (query tile -> key blocks); dK/dV read the transposed
schedule (key tile -> query blocks attending it, the global ones included). No atomics: every gradient
tile is written by one program or summed from partials in a fixed order, so results are bitwise repeatable.

Forward and backward are the custom ops `bigbird::triton_block_sparse_attention` (fake + autograd) and its
`_backward`, which take the plan as its key (Python ints and a string): torch.compile(fullgraph=True) and
torch.export trace each as one node, and the schedules are looked up in a per-(plan, device) cache when the op
runs, outside any trace. Tested on CPU tensors under `TRITON_INTERPRET=1`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import numpy as np
import torch
import triton
from torch import Tensor

from . import triton_backward as bwd
from . import triton_forward as fwd
from .inputs import check_attention_inputs
from .layout import BlockPlan

PADDING_PENALTY = -10000.0
LOG2E = 1.4426950408889634
BLOCK_SIZES = (16, 32, 64, 128)
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MAX_HEAD_DIM = 256
INTERPRETED = not isinstance(fwd.attention_forward_kernel, triton.runtime.JITFunction)  # TRITON_INTERPRET=1


def triton_block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockPlan,
                                  key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
    """BigBird attention of q over k, v following `plan`, with Transformers' numerics, on Triton kernels.

    q, k, v: (batch, heads, length, head_dim) with length == plan.seq_len, fp32, bf16 or fp16, on a CUDA device
    (or CPU under TRITON_INTERPRET=1). key_padding_mask: (batch, length), 1 for tokens, 0 for padding: padded
    keys get -10000 added to their scores and padded query rows output exactly 0.
    Returns the output (batch, heads, length, head_dim) in the input dtype; differentiable in q, k and v.
    The kernels run inside the custom op `bigbird::triton_block_sparse_attention`, which torch.compile and
    torch.export trace as one node.
    """
    _check_inputs(q, k, v, plan, key_padding_mask)
    out, _ = triton_attention_op(q, k, v, key_padding_mask, plan.block_size, plan.num_random_blocks, plan.seed,
                                 plan.mode, plan.old_plan_length)
    return out


def _check_inputs(q, k, v, plan: BlockPlan, key_padding_mask) -> None:
    check_attention_inputs(q, k, v, plan, key_padding_mask)  # shapes, one dtype, one device
    if q.dtype not in DTYPES:
        raise ValueError(f"the Triton kernel takes q, k, v in {DTYPES}; got {q.dtype}: convert them with .to()")
    if q.device.type != "cuda" and not INTERPRETED:
        raise ValueError(f"the Triton kernel needs CUDA tensors (or TRITON_INTERPRET=1 on CPU); got {q.device}")
    if plan.block_size not in BLOCK_SIZES:
        raise ValueError(f"the Triton kernel takes block sizes {BLOCK_SIZES}; the plan has {plan.block_size}")
    if q.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"the Triton kernel takes head_dim up to {MAX_HEAD_DIM}; got {q.shape[-1]}")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """Work items of equal size over (head, tile) lists of blocks.

    info (N, 4) int32: head, tile block, number of slots, partial index (-1: the item writes its tile itself).
    slots (N, W) int32: listed blocks; log2m (N, W) fp32: log2 of their multiplicity.
    reductions (R, 4) int32: head, tile block, first partial, number of partials of each split tile.
    partials: how many partial tiles the split items write (a host int: launches need no sync).
    """

    info: torch.Tensor
    slots: torch.Tensor
    log2m: torch.Tensor
    reductions: torch.Tensor
    partials: int

    @property
    def width(self) -> int:
        return self.slots.shape[1]


@dataclasses.dataclass(frozen=True)
class Tables:
    forward: Schedule  # query tile -> key blocks
    transposed: Schedule  # key tile -> query blocks (the global query blocks included)
    block_size: int


@functools.lru_cache(maxsize=256)
def _tables(plan: BlockPlan, device: torch.device) -> Tables:
    """Both schedules of `plan` on `device`, built once per (plan, device)."""
    heads, rows, cols, counts = _attended_pairs(plan)
    # The longest middle row sets the item size; the global rows' lists (all n blocks) are cut to it.
    width = int(np.bincount(heads * plan.num_blocks + rows).reshape(plan.num_heads, -1)[:, 1:-1].max())
    return Tables(_schedule(heads, rows, cols, counts, width, device),
                  _schedule(heads, cols, rows, counts, width, device), plan.block_size)


def _attended_pairs(plan: BlockPlan):
    """Distinct (head, query block, key block) triples of the plan as flat arrays, with their multiplicity."""
    n, heads = plan.num_blocks, plan.num_heads
    middle = np.arange(1, n - 1)
    fixed = np.stack([np.zeros_like(middle), middle - 1, middle, middle + 1, np.full_like(middle, n - 1)], 1)
    fixed[0, 1] = fixed[-1, 3] = -1  # the windows of blocks 1 and n-2 reach the global blocks, already listed
    lists = np.concatenate([np.broadcast_to(fixed, (heads, n - 2, 5)), plan.random_blocks], axis=-1)
    head = np.broadcast_to(np.arange(heads)[:, None, None], lists.shape)
    row = np.broadcast_to(middle[None, :, None], lists.shape)
    listed = lists >= 0
    global_head = np.repeat(np.arange(heads), 2 * n)
    global_row = np.tile(np.repeat([0, n - 1], n), heads)
    global_col = np.tile(np.arange(n), 2 * heads)
    keys = np.concatenate([((head * n + row) * n + lists)[listed], (global_head * n + global_row) * n + global_col])
    unique, counts = np.unique(keys, return_counts=True)
    return unique // (n * n), unique // n % n, unique % n, counts


def _schedule(heads, tiles, slots, counts, width: int, device: torch.device) -> Schedule:
    """Cut each (head, tile)'s list of slots into items of at most `width` slots; split lists come first."""
    order = np.lexsort((slots, tiles, heads))
    heads, tiles, slots, log2m = heads[order], tiles[order], slots[order], np.log2(counts[order])
    starts = np.flatnonzero(np.r_[True, (heads[1:] != heads[:-1]) | (tiles[1:] != tiles[:-1])])
    lengths = np.diff(np.r_[starts, len(heads)])
    info, item_slots, item_log2m, reductions = [], [], [], []
    for start, length in sorted(zip(starts, lengths), key=lambda pair: pair[1] <= width):
        pieces = range(start, start + length, width)
        split = len(pieces) > 1
        if split:  # split items come first, so an item's partial index is its own index
            reductions.append((heads[start], tiles[start], len(info), len(pieces)))
        for piece in pieces:
            stop = min(piece + width, start + length)
            info.append((heads[start], tiles[start], stop - piece, len(info) if split else -1))
            item_slots.append(np.pad(slots[piece:stop], (0, width - (stop - piece))))
            item_log2m.append(np.pad(log2m[piece:stop], (0, width - (stop - piece))))
    reductions = np.array(reductions, dtype=np.int64).reshape(-1, 4)
    as_int = functools.partial(torch.tensor, dtype=torch.int32, device=device)
    return Schedule(as_int(np.array(info)), as_int(np.array(item_slots)),
                    torch.tensor(np.array(item_log2m), dtype=torch.float32, device=device), as_int(reductions),
                    partials=int(reductions[:, 3].sum()))


PlanKey = tuple  # (block_size, num_random_blocks, seed, mode, old_plan_length): a BlockPlan less its shape


@torch.library.custom_op("bigbird::triton_block_sparse_attention", mutates_args=())
def triton_attention_op(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor], block_size: int,
                        num_random_blocks: int, seed: int, mode: str, old_plan_length: int) -> tuple[Tensor, Tensor]:
    """q, k, v (batch, heads, length, head_dim) -> output (same shape, contiguous) and the base-2 log-sum-exp of
    every query row (batch, heads, length) fp32. The plan comes as its key: traced graphs hold no tables."""
    tables = _op_tables(q, (block_size, num_random_blocks, seed, mode, old_plan_length))
    return _forward(q, k, v, tables, *_mask_terms(key_padding_mask))


@triton_attention_op.register_fake
def _(q, k, v, key_padding_mask, block_size, num_random_blocks, seed, mode, old_plan_length):
    return q.new_empty(q.shape), q.new_empty(q.shape[:3], dtype=torch.float32)


@torch.library.custom_op("bigbird::triton_block_sparse_attention_backward", mutates_args=())
def triton_attention_backward_op(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                                 key_padding_mask: Optional[Tensor], block_size: int, num_random_blocks: int,
                                 seed: int, mode: str, old_plan_length: int) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv), each (batch, heads, length, head_dim) contiguous, of `triton_attention_op`'s output."""
    tables = _op_tables(q, (block_size, num_random_blocks, seed, mode, old_plan_length))
    return _backward(grad, q, k, v, out.contiguous(), lse, tables, *_mask_terms(key_padding_mask))


@triton_attention_backward_op.register_fake
def _(grad, q, k, v, out, lse, key_padding_mask, block_size, num_random_blocks, seed, mode, old_plan_length):
    return q.new_empty(q.shape), q.new_empty(q.shape), q.new_empty(q.shape)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, key_padding_mask, *plan_key = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, key_padding_mask)
    ctx.plan_key = plan_key


def _backward_rule(ctx, grad, _lse_grad):
    q, k, v, out, lse, key_padding_mask = ctx.saved_tensors
    dq, dk, dv = triton_attention_backward_op(grad, q, k, v, out, lse, key_padding_mask, *ctx.plan_key)
    return dq, dk, dv, None, None, None, None, None, None


triton_attention_op.register_autograd(_backward_rule, setup_context=_setup_context)


def _op_tables(q: Tensor, plan_key: PlanKey) -> Tables:
    block_size, num_random_blocks, *rest = plan_key
    return _tables(BlockPlan(q.shape[2], block_size, num_random_blocks, q.shape[1], *rest), q.device)


def _mask_terms(key_padding_mask: Tensor | None) -> tuple[Tensor | None, Tensor | None]:
    """(batch, length) fp32 base-2 score bias of the keys (-10000 * log2(e) on padding) and query keep (1 or 0)."""
    if key_padding_mask is None:
        return None, None
    query_keep = key_padding_mask.to(torch.float32).contiguous()
    return (1 - query_keep) * (PADDING_PENALTY * LOG2E), query_keep


def _forward(q, k, v, tables: Tables, key_bias, query_keep) -> tuple[Tensor, Tensor]:
    """Attention items, then the merge of split tiles: output like q and base-2 lse (batch, heads, length)."""
    batch, heads, length, head_dim = q.shape
    launch = _Launch(q, tables, key_bias, query_keep)
    out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    lse = q.new_empty(batch, heads, length, dtype=torch.float32)
    schedule = tables.forward
    part_out, part_lse = launch.partials(schedule), launch.partials(schedule, tile=False)
    fwd.attention_forward_kernel[(len(schedule.info), batch)](
        q, k, v, out, lse, part_out, part_lse, launch.key_bias, launch.query_keep,
        schedule.info, schedule.slots, schedule.log2m, *q.stride(), *k.stride(), *v.stride(),
        heads, length, head_dim, schedule.partials, launch.scale2, W=schedule.width, **launch.options)
    if schedule.partials:
        fwd.reduce_forward_kernel[(len(schedule.reductions), batch)](
            out, lse, part_out, part_lse, launch.query_keep, schedule.reductions,
            heads, length, head_dim, schedule.partials, BS=launch.bs, BD=launch.bd, HAS_MASK=launch.has_mask)
    return out, lse


def _backward(grad, q, k, v, out, lse, tables: Tables, key_bias, query_keep) -> tuple[Tensor, Tensor, Tensor]:
    """Delta, dQ items over the forward schedule and dK/dV items over the transposed one, then their sums."""
    batch, heads, length, head_dim = q.shape
    launch = _Launch(q, tables, key_bias, query_keep)
    sizes = (heads, length, head_dim)
    delta = torch.empty_like(lse)
    bwd.delta_kernel[(length // launch.bs, heads, batch)](
        out, grad, delta, *grad.stride(), *sizes, BS=launch.bs, BD=launch.bd)
    inputs = (q, k, v, grad, lse, delta)
    strides = (*q.stride(), *k.stride(), *v.stride(), *grad.stride())
    dq, dk, dv = (torch.empty(q.shape, dtype=q.dtype, device=q.device) for _ in range(3))

    schedule = tables.forward
    part_q = launch.partials(schedule)
    bwd.dq_kernel[(len(schedule.info), batch)](
        *inputs, dq, part_q, launch.key_bias, launch.query_keep, schedule.info, schedule.slots, schedule.log2m,
        *strides, *sizes, schedule.partials, launch.scale, launch.scale2, W=schedule.width, **launch.options)
    launch.sum_partials(dq, part_q, schedule)

    schedule = tables.transposed
    part_k, part_v = launch.partials(schedule), launch.partials(schedule)
    bwd.dkv_kernel[(len(schedule.info), batch)](
        *inputs, dk, dv, part_k, part_v, launch.key_bias, launch.query_keep,
        schedule.info, schedule.slots, schedule.log2m,
        *strides, *sizes, schedule.partials, launch.scale, launch.scale2, W=schedule.width, **launch.options)
    launch.sum_partials(dk, part_k, schedule)
    launch.sum_partials(dv, part_v, schedule)
    return dq, dk, dv


class _Launch:
    """Scalars, buffers and compile-time options shared by one call's kernel launches."""

    def __init__(self, q: torch.Tensor, tables: Tables, key_bias, query_keep):
        self.q, self.bs = q, tables.block_size
        self.bd = max(16, triton.next_power_of_2(q.shape[-1]))
        self.has_mask = key_bias is not None
        # Without a mask the kernels never read these pointers; any tensor will do.
        self.key_bias = key_bias if self.has_mask else q
        self.query_keep = query_keep if self.has_mask else q
        self.scale = 1 / math.sqrt(q.shape[-1])
        self.scale2 = self.scale * LOG2E
        tile_bytes = self.bs * self.bd * q.element_size()
        self.options = {
            "BS": self.bs, "BD": self.bd, "HAS_MASK": self.has_mask,
            "UPCAST": INTERPRETED and q.dtype == torch.bfloat16,
            "num_warps": 4 if self.bs <= 64 else 8,
            # two tiles are loaded per step; deeper pipelines of large tiles would overflow shared memory
            "num_stages": 3 if tile_bytes <= 16 << 10 else 2 if tile_bytes <= 32 << 10 else 1,
        }

    def partials(self, schedule: Schedule, tile: bool = True) -> torch.Tensor:
        """fp32 scratch for the split items: (batch, P, bs, bd) tiles, or (batch, P, bs) rows."""
        shape = (self.q.shape[0], max(schedule.partials, 1), self.bs) + ((self.bd,) if tile else ())
        return self.q.new_empty(shape, dtype=torch.float32)

    def sum_partials(self, out: torch.Tensor, part: torch.Tensor, schedule: Schedule) -> None:
        if schedule.partials:
            batch, heads, length, head_dim = out.shape
            bwd.sum_partials_kernel[(len(schedule.reductions), batch)](
                out, part, schedule.reductions, heads, length, head_dim, schedule.partials, BS=self.bs, BD=self.bd)
