"""Argument checks shared by the block-sparse op and its dense reference."""

from __future__ import annotations

import torch

from .layout import BlockPlan


def check_attention_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockPlan,
                           key_padding_mask: torch.Tensor | None) -> None:
    """Raise a ValueError naming the shapes when q, k, v, the plan and the mask do not fit together."""
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k and v must all have shape (batch, heads, length, head_dim); got {tuple(q.shape)}, "
            f"{tuple(k.shape)} and {tuple(v.shape)}"
        )
    batch, heads, length, _ = q.shape
    if length % plan.block_size:
        raise ValueError(
            f"length {length} is not a multiple of block_size {plan.block_size}: right-pad q, k, v to "
            f"{-(-length // plan.block_size) * plan.block_size} tokens and mark the padding in key_padding_mask"
        )
    if (length, heads) != (plan.seq_len, plan.num_heads):
        raise ValueError(
            f"the plan was built for length {plan.seq_len} and {plan.num_heads} heads, but q, k, v have length "
            f"{length} and {heads} heads: build it with block_plan({length}, {plan.block_size}, "
            f"{plan.num_random_blocks}, {heads}, ...)"
        )
    if key_padding_mask is not None and tuple(key_padding_mask.shape) != (batch, length):
        raise ValueError(
            f"key_padding_mask must have shape (batch, length) = ({batch}, {length}), "
            f"got {tuple(key_padding_mask.shape)}"
        )
