"""The CPU block-sparse op, registered as the custom op `bigbird::block_sparse_attention` (fake + autograd).

Query blocks 0 and n-1 attend every key: one flash-attention call. The middle query blocks attend the three
parts of `parts.Parts`, each on PyTorch's CPU flash kernel, merged through their log-sum-exps and written into
one output. The backward runs the flash backward kernel on each part against the merged output and log-sum-exp,
which yields exactly the gradients of the joint softmax.

The op takes the plan as its key (Python ints and a string), so traced graphs (torch.compile, torch.export)
hold no index tables: the real kernel looks the tables up in the plan's per-device cache, outside any trace.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .layout import BlockPlan
from .parts import EXTRA, Parts

PADDING_PENALTY = -10000.0
GROUP_ROWS = 32
_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


def cpu_block_sparse_attention(q: Tensor, k: Tensor, v: Tensor, plan: BlockPlan,
                               key_padding_mask: Tensor | None) -> Tensor:
    """The op on checked inputs: q, k, v (batch, heads, length, head_dim), mask (batch, length) -> output like q."""
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        # Saved for the backward as contiguous copies: views into a fused projection would keep it alive.
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    out, _, _ = block_sparse_op(q, k, v, key_padding_mask, plan.block_size, plan.num_random_blocks, plan.seed,
                                plan.mode, plan.old_plan_length)
    return out


def _setup(q: Tensor, key_padding_mask: Tensor | None, plan_key: tuple):
    """Parts of the (batch * heads)-flattened inputs, the global rows' additive mask and the query mask.

    Additive masks are float32 for every input dtype but float64 (the flash kernel adds them in float32), so
    that padding and log-multiplicities are not rounded to bfloat16 or float16."""
    batch, heads, length, _ = q.shape
    plan = BlockPlan(length, plan_key[0], plan_key[1], heads, *plan_key[2:])
    mask_dtype = _lse_dtype(q.dtype)
    key_bias = global_mask = query_mask = None
    if key_padding_mask is not None:
        key_bias = (1 - key_padding_mask.to(mask_dtype)) * PADDING_PENALTY
        global_mask = key_bias.repeat_interleave(heads, 0)[:, None, None, :]
        query_mask = key_padding_mask.to(q.dtype).repeat_interleave(heads, 0)
    parts = Parts(plan, plan.tables(q.device), key_bias, batch, heads, q.dtype, mask_dtype=mask_dtype)
    return parts, global_mask, query_mask


def _flat(x: Tensor) -> Tensor:
    """(batch, heads, length, d) -> (batch * heads, length, d), head_dim contiguous (what the kernel reads)."""
    x = x.reshape(-1, *x.shape[2:])
    return x if x.stride(-1) == 1 else x.contiguous()


def _global_rows(x: Tensor, bs: int) -> Tensor:
    return torch.cat([x[:, :bs], x[:, -bs:]], dim=1)[:, None]


@torch.library.custom_op("bigbird::block_sparse_attention", mutates_args=(), device_types="cpu")
def block_sparse_op(q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Optional[Tensor], block_size: int,
                    num_random_blocks: int, seed: int, mode: str, old_plan_length: int
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """q, k, v (batch, heads, length, head_dim) -> output (same shape), the middle rows' log-sum-exp
    (batch * heads, n-2, block_size) and the global rows' (batch * heads, 1, 2 * block_size)."""
    parts, global_mask, query_mask = _setup(q, key_padding_mask, (block_size, num_random_blocks, seed, mode,
                                                                  old_plan_length))
    shape, bs = q.shape, block_size
    q, k, v = _flat(q), _flat(k), _flat(v)
    if parts.has_extra:  # random blocks are gathered as rows of a flat (blocks, bs * head_dim) view
        k, v = k.contiguous(), v.contiguous()
    out = q.new_empty(q.shape)
    global_out, global_lse = _flash(_global_rows(q, bs), k[:, None], v[:, None], 0.0, False, attn_mask=global_mask)
    out[:, :bs], out[:, -bs:] = global_out[:, 0, :bs], global_out[:, 0, bs:]

    queries, part_list = parts.sources(q, k, v)
    middle = out[:, bs:-bs].unflatten(1, (parts.n - 2, bs))
    no_extra = ~parts.tables.any_extra.repeat(parts.batch, 1)[..., None]
    lse_chunks = []
    for rows in parts.chunks(q.shape[-1]):
        merged, lse = _run_part(queries[:, rows], *parts.rows(0, part_list[0], rows))
        for index, part in enumerate(part_list[1:], start=1):
            part_out, part_lse = _run_part(queries[:, rows], *parts.rows(index, part, rows))
            if index == EXTRA:
                part_lse = part_lse.masked_fill(no_extra[:, rows], float("-inf"))
            last = index == len(part_list) - 1
            merged, lse = _merge(part_out, part_lse, merged, lse, out=middle[:, rows] if last else None)
        lse_chunks.append(lse)
    if query_mask is not None:
        out.mul_(query_mask[:, :, None])
    return out.view(shape), torch.cat(lse_chunks, dim=1).contiguous(), global_lse.contiguous()


@block_sparse_op.register_fake
def _(q, k, v, key_padding_mask, block_size, num_random_blocks, seed, mode, old_plan_length):
    rows, lse_dtype = q.shape[0] * q.shape[1], _lse_dtype(q.dtype)
    return (q.new_empty(q.shape), q.new_empty((rows, q.shape[2] // block_size - 2, block_size), dtype=lse_dtype),
            q.new_empty((rows, 1, 2 * block_size), dtype=lse_dtype))


def _lse_dtype(dtype: torch.dtype) -> torch.dtype:
    """The flash kernel's accumulation (log-sum-exp, score) dtype: float32 for every input dtype but float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _run_part(q, k, v, mask):
    """Flash attention of the middle queries (BH, n-2, bs, d) over one part; global keys are shared by all rows."""
    if k.shape[1] == 1:
        out, lse = _flash(q.flatten(1, 2)[:, None], k, v, 0.0, False, attn_mask=mask)
        return out.view(q.shape), lse.view(q.shape[:3])
    groups = _query_groups(q)
    if groups == 1:
        return _flash(q, k, v, 0.0, False, attn_mask=mask)
    # Each block's rows as `groups` query heads sharing the block's keys (grouped-query attention).
    if mask is not None and mask.shape[1] > 1:
        mask = mask.repeat_interleave(groups, dim=1)
    out, lse = _flash(q.unflatten(2, (groups, -1)).flatten(1, 2), k, v, 0.0, False, attn_mask=mask)
    return out.view(q.shape), lse.reshape(q.shape[:3])  # the kernel's lse is laid out (BH, rows, heads)


def _query_groups(q: Tensor) -> int:
    """Into how many groups of GROUP_ROWS query rows a part call splits each block of q (BH, rows, bs, d).

    In bfloat16 and float16 the flash kernel repacks the keys of every (batch, head) pair for its matrix units
    when that pair has 64 query rows or more; the window part's overlapping key blocks (each in three windows)
    would be repacked three times. Split into groups of 32 rows, the blocks' keys are read in place instead
    (measured with AMX-BF16: the window part 1.4x faster on one thread, as fast on two). float32 and float64
    calls stay whole.
    """
    block = q.shape[2]
    if q.dtype not in (torch.bfloat16, torch.float16) or block < 2 * GROUP_ROWS or block % GROUP_ROWS:
        return 1
    return block // GROUP_ROWS


def _merge(out_a, lse_a, out_b, lse_b, out=None):
    """Join two partial softmax attentions over disjoint keys: (BH, rows, bs, d) outputs, (BH, rows, bs) lse."""
    weight_a = torch.sigmoid(lse_a - lse_b)[..., None].to(out_b.dtype)
    return torch.lerp(out_b, out_a, weight_a, out=out), torch.logaddexp(lse_a, lse_b)


@torch.library.custom_op("bigbird::block_sparse_attention_backward", mutates_args=(), device_types="cpu")
def block_sparse_backward_op(grad: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                             global_lse: Tensor, key_padding_mask: Optional[Tensor], block_size: int,
                             num_random_blocks: int, seed: int, mode: str, old_plan_length: int
                             ) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients (dq, dk, dv), each (batch, heads, length, head_dim), of `block_sparse_op`'s output."""
    parts, global_mask, query_mask = _setup(q, key_padding_mask, (block_size, num_random_blocks, seed, mode,
                                                                  old_plan_length))
    shape, bs = q.shape, block_size
    q, k, v, out = _flat(q).contiguous(), _flat(k).contiguous(), _flat(v).contiguous(), _flat(out)
    grad = _flat(grad)
    if query_mask is not None:
        grad = grad * query_mask[:, :, None]
    grad = grad.contiguous()
    dq_global, dk, dv = _flash_backward(_global_rows(grad, bs), _global_rows(q, bs), k[:, None], v[:, None],
                                        _global_rows(out, bs), global_lse, 0.0, False, attn_mask=global_mask)
    dk, dv = dk[:, 0], dv[:, 0]
    dq = torch.empty_like(q)
    dq[:, :bs], dq[:, -bs:] = dq_global[:, 0, :bs], dq_global[:, 0, bs:]
    _middle_backward(parts, grad, q, k, v, out, lse, dq, dk, dv)
    return dq.view(shape), dk.contiguous().view(shape), dv.contiguous().view(shape)


def _middle_backward(parts: Parts, grad, q, k, v, out, lse, dq, dk, dv) -> None:
    """Add the middle rows' gradients to dk, dv and write them into dq, all (batch * heads, length, d)."""
    bs, n = parts.bs, parts.n
    queries, part_list = parts.sources(q, k, v)
    grad_m, out_m, dq_middle = parts.queries(grad), parts.queries(out), parts.queries(dq)
    dk_blocks, dv_blocks = dk.view(-1, n, bs, k.shape[-1]), dv.view(-1, n, bs, v.shape[-1])

    # The global keys serve every middle row: one call over all of them.
    part_k, part_v, mask = part_list[0]
    dq_p, dk_p, dv_p = _flash_backward(grad_m.flatten(1, 2)[:, None], queries.flatten(1, 2)[:, None], part_k,
                                       part_v, out_m.flatten(1, 2)[:, None], lse.flatten(1)[:, None], 0.0, False,
                                       attn_mask=mask)
    dq_middle.copy_(dq_p.view(dq_middle.shape))
    for grads, part_grad in ((dk, dk_p), (dv, dv_p)):
        grads[:, :bs] += part_grad[:, 0, :bs]
        grads[:, -bs:] += part_grad[:, 0, bs:]

    for rows in parts.chunks(q.shape[-1]):
        for index, part in enumerate(part_list[1:], start=1):
            part_k, part_v, mask = parts.rows(index, part, rows)
            dq_p, dk_p, dv_p = _flash_backward(grad_m[:, rows], queries[:, rows], part_k, part_v, out_m[:, rows],
                                               lse[:, rows], 0.0, False, attn_mask=mask)
            dq_middle[:, rows] += dq_p
            if index == EXTRA:
                index_flat = parts.extra_index(rows).flatten()
                for blocks, part_grad in ((dk_blocks, dk_p), (dv_blocks, dv_p)):
                    blocks.view(-1, bs * k.shape[-1]).index_add_(0, index_flat,
                                                                 part_grad.reshape(index_flat.numel(), -1))
                continue
            for blocks, part_grad in ((dk_blocks, dk_p), (dv_blocks, dv_p)):
                for shift in range(3):  # middle row i attends key blocks i, i+1, i+2 (block i+1 is its own)
                    blocks[:, rows.start + shift : rows.stop + shift] += part_grad[:, :, shift * bs : (shift + 1) * bs]


@block_sparse_backward_op.register_fake
def _(grad, q, k, v, out, lse, global_lse, key_padding_mask, block_size, num_random_blocks, seed, mode,
      old_plan_length):
    return q.new_empty(q.shape), q.new_empty(q.shape), q.new_empty(q.shape)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, key_padding_mask, *plan_key = inputs
    out, lse, global_lse = output
    ctx.save_for_backward(q, k, v, out, lse, global_lse, key_padding_mask)
    ctx.plan_key = plan_key


def _backward(ctx, grad, _lse_grad, _global_lse_grad):
    """The backward op on the saved tensors; bfloat16 and float16 ones are taken to float32 for it.

    PyTorch's CPU flash backward has no matrix-unit path: in bf16 it multiplies every 32-row tile through a
    separate BLAS call, which is slower than its float32 kernel (measured with AMX-BF16, 2 threads: the op's
    forward and backward at 4096 tokens, 12 heads, 263 ms with a bf16 backward, 224 ms with this one, 245 ms in
    float32); the gradients come back in the inputs' dtype, more exact for the float32 accumulation.
    """
    q, k, v, out, lse, global_lse, key_padding_mask = ctx.saved_tensors
    dtype = q.dtype
    if dtype in (torch.bfloat16, torch.float16):
        grad, q, k, v, out = (x.float() for x in (grad, q, k, v, out))
    dq, dk, dv = block_sparse_backward_op(grad, q, k, v, out, lse, global_lse, key_padding_mask, *ctx.plan_key)
    return dq.to(dtype), dk.to(dtype), dv.to(dtype), None, None, None, None, None, None


block_sparse_op.register_autograd(_backward, setup_context=_setup_context)
