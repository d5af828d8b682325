"""The keys of middle query blocks 1..n-2 in three parts, each attended by one fused flash-attention call.

- the global key blocks 0 and n-1, shared by every row (a key block listed m times in a row's softmax gets log(m)
  added to its scores, which is the same as entering it m times);
- the window i-1, i, i+1, read in place through an overlapping strided view of the keys (no copy);
- the remaining random blocks, gathered (none in eval mode, where every random block is block 0).

The partial softmaxes are joined through their log-sum-exps (see `cpu_op`), or the parts are concatenated along
the key axis (see `block_sparse`).
"""

from __future__ import annotations

import torch

from .layout import BlockPlan, OpTables

# Middle query blocks are processed in chunks whose gathered keys (per part) take about this many bytes: small
# temporaries are recycled by malloc, while large ones are mapped afresh and page-faulted on every call.
CHUNK_BYTES = 8 << 20
EXTRA = 2  # index of the gathered random blocks among the middle rows' parts


class Parts:
    """Keys, values and additive masks of the three parts of query blocks 1..n-2 (see the module doc).

    Tensors are laid out as (batch * heads, length, head_dim); each part's keys come back as
    (batch * heads, n-2 or 1, part_length, head_dim) and its mask as (batch * heads or 1, n-2 or 1, 1 or
    rows, part_length), the shapes the flash kernel takes next to queries (batch * heads, n-2, bs, d).
    `dtype` is the keys' dtype, `mask_dtype` the masks' (default: `dtype`; the flash kernel also takes float32
    masks next to bfloat16 or float16 keys, which keeps log-multiplicities and padding exact).
    """

    def __init__(self, plan: BlockPlan, tables: OpTables, key_bias, batch: int, heads: int, dtype,
                 mask_dtype=None):
        self.tables, self.batch, self.heads = tables, batch, heads
        self.bs, self.n = plan.block_size, plan.num_blocks
        self.key_bias = key_bias
        self.dtype = dtype
        self.mask_dtype = dtype if mask_dtype is None else mask_dtype
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
            mask = torch.log(counts[0, 0].to(self.mask_dtype)).repeat_interleave(bs).view(1, 1, 1, 1, 2 * bs)
        else:
            mask = torch.log(counts.to(self.mask_dtype)).repeat_interleave(bs, dim=-1)
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
        mask = torch.zeros(1, n - 2, 3 * bs, dtype=self.mask_dtype, device=device)
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
        mask = torch.zeros(extra.shape, dtype=self.mask_dtype, device=extra.device).masked_fill(extra < 0, float("-inf"))
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
