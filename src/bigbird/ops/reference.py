"""Dense masked attention built from a block plan: slow, obviously right, the block-sparse op's oracle."""

from __future__ import annotations

import math

import torch

from .inputs import check_attention_inputs
from .layout import BlockPlan

PADDING_PENALTY = -10000.0


def reference_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: BlockPlan,
                        key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention over the plan's key blocks, with an explicit (L x L) count matrix.

    q, k, v: (batch, heads, length, head_dim); key_padding_mask: (batch, length), 1 for tokens, 0 for padding.
    Each key enters query i's softmax as often as the plan lists its block for i's block; padded keys
    get -10000 added to their score; padded query rows output 0.
    Returns the output (batch, heads, length, head_dim) and the probabilities (batch, heads, length, length).
    """
    check_attention_inputs(q, k, v, plan, key_padding_mask)
    bs = plan.block_size
    counts = torch.from_numpy(plan.block_counts()).to(device=q.device, dtype=q.dtype)
    counts = counts.repeat_interleave(bs, dim=1).repeat_interleave(bs, dim=2)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if key_padding_mask is not None:
        scores = scores + (1 - key_padding_mask.to(q.dtype))[:, None, None, :] * PADDING_PENALTY
    top = scores.masked_fill(counts == 0, float("-inf")).amax(dim=-1, keepdim=True)
    weights = counts * torch.exp(scores - top)
    probs = weights / weights.sum(dim=-1, keepdim=True)
    out = probs @ v
    if key_padding_mask is not None:
        out = out * key_padding_mask.to(q.dtype)[:, None, :, None]
    return out, probs
