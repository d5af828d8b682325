"""Block-sparse attention as pure functions over a `BlockPlan`.

Query blocks 0 and n-1 attend every key: one fused attention call. Each query block i in 1..n-2
attends three parts of the keys, each handled by one fused flash-attention call over all such rows:

- the global key blocks 0 and n-1, shared by every row (a key block listed m times in a row's softmax
  gets log(m) added to its scores, which is the same as entering it m times);
- the window i-1, i, i+1, read in place through an overlapping strided view of the keys (no copy);
- the remaining random blocks, gathered (none in eval mode, where every random block is block 0).

The three partial softmaxes are merged through their log-sum-exps. The backward pass runs the flash
backward kernel on each part against the merged output and log-sum-exp, which yields exactly the
gradients of the joint softmax. Nothing of size L x L is built unless the probabilities are asked for.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from .inputs import check_attention_inputs
from .layout import BlockPlan, OpTables

PADDING_PENALTY = -10000.0
# Middle query blocks are processed in chunks whose gathered keys (per part) take about this many bytes: small
# temporaries are recycled by malloc, while large ones are mapped afresh and page-faulted on every call.
CHUNK_BYTES = 8 << 20
EXTRA = 2  # index of the gathered random blocks among the middle rows' parts
_flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
_flash_backward = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward


def block_sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockPlan,
                           key_padding_mask: torch.Tensor | None = None, *, return_probs: bool = False):
    """BigBird attention of q over k, v following `plan`, with Transformers' numerics.

    q, k, v: (batch, heads, length, head_dim), length a multiple of the plan's block size.
    key_padding_mask: (batch, length), 1 (or True) for tokens, 0 for padding; padded keys get -10000
    added to their scores and padded query rows output exactly 0.
    Returns the output (batch, heads, length, head_dim), or `(output, probs)` with probs
    (batch, heads, length, length) when `return_probs` is True.
    """
    check_attention_inputs(q, k, v, plan, key_padding_mask)
    batch, heads, length, head_dim = q.shape
    bs = plan.block_size
    key_bias = None if key_padding_mask is None else (1 - key_padding_mask.to(q.dtype)) * PADDING_PENALTY

    q, k, v = (x.reshape(batch * heads, length, head_dim) for x in (q, k, v))
    parts = _Parts(plan, plan.tables(q.device), key_bias, batch, heads, q.dtype)
    global_mask = None if key_bias is None else key_bias.repeat_interleave(heads, 0)[:, None, None, :]
    query_mask = None if key_padding_mask is None else key_padding_mask.to(q.dtype).repeat_interleave(heads, 0)
    if not return_probs and q.device.type == "cpu":
        out = _CpuBlockSparse.apply(q, k, v, parts, global_mask, query_mask)
        return out.view(batch, heads, length, head_dim)

    global_q = torch.cat([q[:, :bs], q[:, -bs:]], dim=1)[:, None]
    if return_probs:
        global_out, global_probs = _attention_with_probs(global_q, k[:, None], v[:, None], global_mask)
        middle_out, middle_probs = _middle_with_probs(q, k, v, parts)
    else:
        global_out = F.scaled_dot_product_attention(global_q, k[:, None], v[:, None], attn_mask=global_mask)
        middle_out = _middle_concatenated(q, k, v, parts)
    out = torch.cat([global_out[:, 0, :bs], middle_out, global_out[:, 0, bs:]], dim=1)
    if query_mask is not None:
        out = out * query_mask[:, :, None]
    out = out.view(batch, heads, length, head_dim)
    if not return_probs:
        return out
    probs = _dense_probs(global_probs[:, 0], middle_probs, parts).view(batch, heads, length, length)
    return out, probs


class _Parts:
    """Keys, values and additive masks of the three parts of query blocks 1..n-2 (see the module doc).

    Tensors are laid out as (batch * heads, length, head_dim); each part's keys come back as
    (batch * heads, n-2 or 1, part_length, head_dim) and its mask as (batch * heads or 1, n-2 or 1, 1 or
    rows, part_length), the shapes the flash kernel takes next to queries (batch * heads, n-2, bs, d).
    """

    def __init__(self, plan: BlockPlan, tables: OpTables, key_bias, batch: int, heads: int, dtype):
        self.plan, self.tables, self.batch, self.heads = plan, tables, batch, heads
        self.bs, self.n = plan.block_size, plan.num_blocks
        self.key_bias = key_bias
        self.dtype = dtype
        self.has_extra = tables.extra_blocks.shape[-1] > 0

    def queries(self, q):
        return q[:, self.bs : -self.bs].unflatten(1, (self.n - 2, self.bs))

    def global_keys(self, x):
        """(batch * heads, 1, 2 * bs, d): key blocks 0 and n-1, shared by every middle row."""
        return torch.cat([x[:, : self.bs], x[:, -self.bs :]], dim=1)[:, None]

    def global_mask(self):
        """(batch * heads or 1, 1, rows, 2 * bs): log-multiplicity plus padding of the global keys.

        `rows` is 1 when every query row holds blocks 0 and n-1 equally often (always in eval mode),
        otherwise (n-2) * bs.
        """
        bs, n = self.bs, self.n
        counts = self.tables.global_counts
        if self.tables.uniform_global_counts:
            mask = torch.log(counts[0, 0].to(self.dtype)).repeat_interleave(bs).view(1, 1, 1, 1, 2 * bs)
        else:
            mask = torch.log(counts.to(self.dtype)).repeat_interleave(bs, dim=-1)
            mask = mask[:, :, None].expand(-1, -1, bs, -1).reshape(1, self.heads, 1, (n - 2) * bs, 2 * bs)
        if self.key_bias is not None:
            padding = torch.cat([self.key_bias[:, :bs], self.key_bias[:, -bs:]], dim=1)
            mask = mask + padding.view(self.batch, 1, 1, 1, 2 * bs)
        if mask.shape[:2] == (1, 1):
            return mask[0]
        return mask.expand(self.batch, self.heads, -1, -1, -1).reshape(self.batch * self.heads, 1, -1, 2 * bs)

    def window_keys(self, x):
        rows, width = x.stride(0), x.stride(1)
        return x.as_strided((x.shape[0], self.n - 2, 3 * self.bs, x.shape[2]),
                            (rows, self.bs * width, width, x.stride(2)))

    def window_mask(self):
        bs, n = self.bs, self.n
        device = self.tables.global_counts.device
        mask = torch.zeros(1, n - 2, 3 * bs, dtype=self.dtype, device=device)
        mask[:, 0, :bs] = float("-inf")
        mask[:, -1, 2 * bs :] = float("-inf")
        if self.key_bias is not None:
            mask = mask + self.key_bias.unfold(1, 3 * bs, bs)
            mask = mask.repeat_interleave(self.heads, 0)
        return mask[:, :, None]

    def extra_index(self, rows: slice = slice(None)):
        """(batch * heads, rows, r') indices of the extra random blocks of middle query blocks `rows` into the flat
        (batch * heads * n) blocks."""
        extra = self.tables.extra_blocks[:, rows].clamp(min=0)
        offsets = torch.arange(self.batch * self.heads, device=extra.device)[:, None, None] * self.n
        return extra.repeat(self.batch, 1, 1) + offsets

    def extra_keys(self, x, rows: slice = slice(None)):
        index = self.extra_index(rows)
        blocks = x.reshape(-1, self.bs * x.shape[-1]).index_select(0, index.flatten())
        return blocks.view(*index.shape[:2], index.shape[2] * self.bs, x.shape[-1])

    def extra_mask(self):
        extra = self.tables.extra_blocks
        mask = torch.zeros(extra.shape, dtype=self.dtype, device=extra.device).masked_fill(extra < 0, float("-inf"))
        mask = mask.repeat_interleave(self.bs, dim=-1)[None].expand(self.batch, -1, -1, -1)
        if self.key_bias is not None:
            blocks = self.key_bias.unflatten(1, (self.n, self.bs))
            mask = mask + blocks[torch.arange(self.batch, device=extra.device)[:, None, None, None],
                                 extra.clamp(min=0)[None]].flatten(-2)
        return mask.reshape(self.batch * self.heads, self.n - 2, 1, -1)

    def all(self, q, k, v):
        """(queries, [(keys, values, mask)]) of the parts, the extra blocks gathered for every row."""
        queries, parts = self.sources(q, k, v)
        if self.has_extra:
            parts[EXTRA] = self.rows(EXTRA, parts[EXTRA], slice(None))
        return queries, parts

    def sources(self, q, k, v):
        """As `all`, but the extra part as (k, v, mask): its blocks are gathered by `rows`, a chunk at a time."""
        parts = [
            (self.global_keys(k), self.global_keys(v), self.global_mask()),
            (self.window_keys(k), self.window_keys(v), self.window_mask()),
        ]
        if self.has_extra:
            parts.append((k, v, self.extra_mask()))
        return self.queries(q), parts

    def rows(self, index: int, part, rows: slice):
        """Part `index`'s keys, values and mask (from `sources`) for middle query blocks `rows`."""
        keys, values, mask = part
        if index == EXTRA:
            return self.extra_keys(keys, rows), self.extra_keys(values, rows), mask[:, rows]
        if keys.shape[1] > 1:
            keys, values = keys[:, rows], values[:, rows]
            mask = mask[:, rows] if mask.shape[1] > 1 else mask
        elif mask is not None and mask.shape[2] > 1:
            mask = mask[:, :, rows.start * self.bs : rows.stop * self.bs]
        return keys, values, mask

    def chunks(self, head_dim: int):
        """Slices of middle query blocks, each small enough that a part's keys take about CHUNK_BYTES."""
        row_bytes = self.batch * self.heads * 3 * self.bs * head_dim * self.dtype.itemsize
        step = max(1, CHUNK_BYTES // row_bytes)
        return [slice(start, min(start + step, self.n - 2)) for start in range(0, self.n - 2, step)]


def _run_part(q, k, v, mask):
    """Flash attention of the middle queries (BH, n-2, bs, d) over one part; global keys are shared by all rows."""
    if k.shape[1] == 1:
        out, lse = _flash(q.flatten(1, 2)[:, None], k, v, 0.0, False, attn_mask=mask)
        return out.view(q.shape), lse.view(q.shape[:3])
    return _flash(q, k, v, 0.0, False, attn_mask=mask)


def _merge(out_a, lse_a, out_b, lse_b, out=None):
    """Join two partial softmax attentions over disjoint keys: (BH, rows, bs, d) outputs, (BH, rows, bs) lse."""
    weight_a = torch.sigmoid(lse_a - lse_b)[..., None].to(out_b.dtype)
    return torch.lerp(out_b, out_a, weight_a, out=out), torch.logaddexp(lse_a, lse_b)


class _CpuBlockSparse(torch.autograd.Function):
    """All query rows on the CPU flash kernel, written into one output; the backward mirrors it part by part."""

    @staticmethod
    def forward(ctx, q, k, v, parts: _Parts, global_mask, query_mask):
        # The kernel reads any layout whose head_dim is contiguous, e.g. views into a fused q/k/v projection.
        q, k, v = (x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v))
        if parts.has_extra:  # random blocks are gathered as rows of a flat (blocks, bs * head_dim) view
            k, v = k.contiguous(), v.contiguous()
        if any(ctx.needs_input_grad[:3]):  # saved contiguous for the backward kernel; frees views' fused storage
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        bs = parts.bs
        out = torch.empty_like(q)
        global_q = torch.cat([q[:, :bs], q[:, -bs:]], dim=1)[:, None]
        global_out, global_lse = _flash(global_q, k[:, None], v[:, None], 0.0, False, attn_mask=global_mask)
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
        lse = torch.cat(lse_chunks, dim=1)
        if query_mask is not None:
            out.mul_(query_mask[:, :, None])
        ctx.parts = parts
        ctx.save_for_backward(q, k, v, out, lse, global_lse, global_mask, query_mask)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        q, k, v, out, lse, global_lse, global_mask, query_mask = ctx.saved_tensors
        parts = ctx.parts
        bs, n = parts.bs, parts.n
        if query_mask is not None:
            grad = grad * query_mask[:, :, None]
        grad = grad.contiguous()

        def rows_of_global(x):
            return torch.cat([x[:, :bs], x[:, -bs:]], dim=1)[:, None]

        dq_global, dk, dv = _flash_backward(rows_of_global(grad), rows_of_global(q), k[:, None], v[:, None],
                                            rows_of_global(out), global_lse, 0.0, False, attn_mask=global_mask)
        dk, dv = dk[:, 0], dv[:, 0]
        dq = torch.empty_like(q)
        dq[:, :bs], dq[:, -bs:] = dq_global[:, 0, :bs], dq_global[:, 0, bs:]

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
                        window_block = part_grad[:, :, shift * bs : (shift + 1) * bs]
                        blocks[:, rows.start + shift : rows.stop + shift] += window_block
        return dq, dk, dv, None, None, None


def _attention_with_probs(q, k, v, mask):
    """Softmax attention that also returns its probabilities: (..., q_len, d) -> output, (..., q_len, k_len)."""
    scores = q @ k.transpose(-1, -2) * (1 / math.sqrt(q.shape[-1]))
    if mask is not None:
        scores = scores + mask
    probs = scores.softmax(dim=-1)
    return probs @ v, probs


def _concatenate_parts(q, k, v, parts: _Parts):
    """Middle queries (BH, n-2, bs, d) with their parts' keys, values and masks joined along the key axis."""
    queries, part_list = parts.all(q, k, v)
    rows = queries.shape[1]
    keys = [pk.expand(-1, rows, -1, -1) for pk, _, _ in part_list]
    values = [pv.expand(-1, rows, -1, -1) for _, pv, _ in part_list]
    masks = [
        mask.reshape(mask.shape[0], rows, queries.shape[2], -1) if pk.shape[1] == 1 and mask.shape[2] > 1 else mask
        for pk, _, mask in part_list
    ]
    query_rows = max(mask.shape[2] for mask in masks)
    masks = [mask.expand(queries.shape[0], rows, query_rows, -1) for mask in masks]
    return queries, torch.cat(keys, 2), torch.cat(values, 2), torch.cat(masks, -1)


def _middle_concatenated(q, k, v, parts: _Parts):
    """Middle rows in one fused attention over the gathered parts: the path for devices without the CPU kernel."""
    return F.scaled_dot_product_attention(*_concatenate_parts(q, k, v, parts)).flatten(1, 2)


def _middle_with_probs(q, k, v, parts: _Parts):
    """Explicit middle rows: output (BH, (n-2) * bs, d) and probabilities (BH, n-2, bs, parts' key length)."""
    out, probs = _attention_with_probs(*_concatenate_parts(q, k, v, parts))
    return out.flatten(1, 2), probs


def _dense_probs(global_probs, middle_probs, parts: _Parts):
    """(batch * heads, L, L) probabilities: global rows as they are, middle rows scattered by key block."""
    bs, n = parts.bs, parts.n
    bh, rows = middle_probs.shape[:2]
    dense = middle_probs.new_zeros(bh, rows, bs, n, bs)
    blocks = middle_probs.unflatten(-1, (-1, bs))
    dense[:, :, :, 0] += blocks[:, :, :, 0]
    dense[:, :, :, n - 1] += blocks[:, :, :, 1]
    row = torch.arange(rows, device=dense.device)
    for shift in range(3):
        dense[:, row, :, row + shift] += blocks[:, :, :, 2 + shift].transpose(0, 1)
    if parts.has_extra:
        index = parts.extra_index() % n
        extra = blocks[:, :, :, 5:]
        dense.scatter_add_(3, index[:, :, None, :, None].expand_as(extra), extra)
    dense = dense.reshape(bh, rows * bs, n * bs)
    return torch.cat([global_probs[:, :bs], dense, global_probs[:, bs:]], dim=1)
