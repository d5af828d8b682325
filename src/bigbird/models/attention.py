"""Self-attention shared by both families: query/key/value projections, then full or block-sparse attention.

The model decides once per forward call which attention every layer runs (`sparse_call`: block-sparse needs
an input longer than the fallback bound, and is padded to a block multiple) and builds one `AttentionMasks`
for all layers; the attention module holds only weights and its layer index (the seed of its random plan).

Full attention (`original_full`) follows Transformers' eager path: scores / sqrt(d), masked positions
set to `finfo(dtype).min`, softmax, attention dropout; a causal decoder keeps a (key, value) cache.
Block-sparse attention calls `bigbird.ops.block_sparse_attention` (no attention dropout there).
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from transformers.cache_utils import Cache

from ..ops.block_sparse import block_sparse_attention
from ..ops.layout import block_plan

ORIGINAL_FULL = "original_full"
BLOCK_SPARSE = "block_sparse"
ATTENTION_TYPES = (ORIGINAL_FULL, BLOCK_SPARSE)
RANDOM_PLANS = ("transformers", "paper")

def check_attention_type(value: str) -> str:
    if value not in ATTENTION_TYPES:
        raise ValueError(f"attention_type must be 'original_full' or 'block_sparse', got {value!r}")
    return value


def check_random_plan(value: str) -> str:
    if value not in RANDOM_PLANS:
        raise ValueError(
            f"random_plan must be 'transformers' (Transformers' plans: random blocks all 0 in eval mode, seeded "
            f"in training) or 'paper' (the original BigBird code's seeded plans, also at inference), got {value!r}"
        )
    return value


def sparse_attention_fits(length: int, block_size: int, num_random_blocks: int) -> bool:
    """Whether an unpadded input of `length` tokens runs block-sparse (Transformers' bound: > (5 + 2r) * bs)."""
    return length > (5 + 2 * num_random_blocks) * block_size


def sparse_call(config, length: int, past_length: int = 0) -> bool:
    """Whether a forward call over `length` new tokens runs block-sparse attention (decided per call)."""
    return (config.attention_type == BLOCK_SPARSE and not getattr(config, "is_decoder", False) and past_length == 0
            and sparse_attention_fits(length, config.block_size, config.num_random_blocks))


@dataclasses.dataclass(frozen=True)
class AttentionMasks:
    """What every layer's attention needs to know about one forward call.

    `sparse`: run block-sparse attention (the input is padded to a block multiple).
    `key_padding_mask`: (batch, key_length), 1 for tokens and 0 for padding, or None when nothing is masked.
    `additive_mask`: full attention only: (batch, 1, query_length or 1, key_length), 0 where attended and
    `finfo(dtype).min` where masked (padding, and future positions of a causal decoder), or None.
    """

    sparse: bool
    key_padding_mask: torch.Tensor | None = None
    additive_mask: torch.Tensor | None = None


def full_attention_masks(key_padding_mask: torch.Tensor | None, dtype: torch.dtype, *, query_length: int,
                         key_length: int, causal: bool = False, device: torch.device | None = None) -> AttentionMasks:
    """Masks for full attention. key_padding_mask: (batch, key_length), 1 = token, 0 = padding, or None.

    A causal decoder with `key_length - query_length` cached positions lets query i (at absolute position
    past + i) see keys 0..past + i.
    """
    if key_padding_mask is None and not causal:
        return AttentionMasks(sparse=False)
    allowed = torch.ones(1, 1, 1, key_length, dtype=torch.bool, device=device)
    if key_padding_mask is not None:
        allowed = key_padding_mask.bool()[:, None, None, :]
    if causal:
        keys = torch.arange(key_length, device=allowed.device)
        queries = torch.arange(key_length - query_length, key_length, device=allowed.device)
        allowed = allowed & (keys[None, :] <= queries[:, None])[None, None]
    additive = torch.zeros(allowed.shape, dtype=dtype, device=allowed.device)
    additive = additive.masked_fill(~allowed, torch.finfo(dtype).min)
    return AttentionMasks(sparse=False, key_padding_mask=key_padding_mask, additive_mask=additive)


class BigBirdSelfAttention(nn.Module):
    """The `query`, `key` and `value` projections of one layer and BigBird's two attention kinds.

    Which kind runs is decided per forward call by the model (see `AttentionMasks`); the module holds only
    weights and its layer index, the seed of its random plan. The block plan's mode comes from the config's
    `random_plan` ("transformers": Transformers' eval/train plans; "paper": the original BigBird code's seeded
    plan, in training and at inference alike).
    When the three projections are plain `nn.Linear`s they run as one fused product; wrapped ones (PEFT's
    LoRA layers, for instance) are called as modules, so what wraps them takes effect.
    """

    def __init__(self, config, layer_idx: int):
        super().__init__()
        hidden_size, heads = config.hidden_size, config.num_attention_heads  # checked by models.checks.config
        self.config = config
        self.num_attention_heads = heads
        self.attention_head_size = hidden_size // heads
        self.layer_idx = layer_idx
        self.query = nn.Linear(hidden_size, hidden_size, bias=config.use_bias)
        self.key = nn.Linear(hidden_size, hidden_size, bias=config.use_bias)
        self.value = nn.Linear(hidden_size, hidden_size, bias=config.use_bias)

    def forward(self, hidden_states: torch.Tensor, masks: AttentionMasks, past_key_values: Cache | None = None,
                output_attentions: bool = False):
        """hidden_states: (batch, length, hidden).

        Returns `(context, probs)`: context (batch, length, hidden) before the output projection; probs (batch,
        heads, length, key_length) when `output_attentions`, else None. A decoder's `past_key_values` (a
        Transformers `Cache`) is extended by this call's keys and values.
        """
        q, k, v = self._project_qkv(hidden_states)
        if masks.sparse:
            context, probs = self._block_sparse(q, k, v, masks, output_attentions)
        else:
            if past_key_values is not None:
                k, v = past_key_values.update(k, v, self.layer_idx)
            context, probs = self._full(q, k, v, masks, output_attentions)
        return context.transpose(1, 2).flatten(2), probs

    def plan_mode(self) -> str:
        """The block plan this layer uses now: Transformers' eval/train plans, or the original code's seeded plan."""
        if check_random_plan(getattr(self.config, "random_plan", "transformers")) == "paper":
            return "paper"
        return "train" if self.training else "eval"

    def _project_qkv(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v as (batch, heads, length, head_dim)."""
        projections = (self.query, self.key, self.value)
        if all(type(proj) is nn.Linear for proj in projections):
            weight = torch.cat([proj.weight for proj in projections])
            bias = None if self.query.bias is None else torch.cat([proj.bias for proj in projections])
            return _SplitHeads.apply(F.linear(hidden_states, weight, bias), self.num_attention_heads)
        shape = (*hidden_states.shape[:2], self.num_attention_heads, self.attention_head_size)
        return tuple(proj(hidden_states).view(shape).transpose(1, 2) for proj in projections)

    def _block_sparse(self, q, k, v, masks: AttentionMasks, output_attentions: bool):
        config = self.config
        plan = block_plan(q.shape[2], config.block_size, config.num_random_blocks, self.num_attention_heads,
                          seed=self.layer_idx, mode=self.plan_mode(), max_seq_len=config.max_position_embeddings)
        result = block_sparse_attention(q, k, v, plan, masks.key_padding_mask, return_probs=output_attentions)
        return result if output_attentions else (result, None)

    def _full(self, q, k, v, masks: AttentionMasks, output_attentions: bool):
        dropout = self.config.attention_probs_dropout_prob if self.training else 0.0
        if not output_attentions:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=masks.additive_mask, dropout_p=dropout), None
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.attention_head_size)
        if masks.additive_mask is not None:
            scores = scores + masks.additive_mask
        probs = scores.softmax(dim=-1)
        return F.dropout(probs, dropout, self.training) @ v, probs


class _SplitHeads(torch.autograd.Function):
    """(batch, length, 3 * hidden) -> q, k, v views (batch, heads, length, head_dim); the backward writes the three
    gradients into one buffer of the fused layout (autograd's own route stacks them, then copies the stack)."""

    @staticmethod
    def forward(ctx, qkv: torch.Tensor, heads: int):
        return qkv.unflatten(-1, (3, heads, -1)).permute(2, 0, 3, 1, 4).unbind(0)

    @staticmethod
    def backward(ctx, *grads):  # an unused output's gradient arrives as zeros (materialized by autograd)
        batch, heads, length, head_dim = grads[0].shape
        fused = grads[0].new_empty(batch, length, 3, heads, head_dim)
        for index, grad in enumerate(grads):
            fused[:, :, index].copy_(grad.transpose(1, 2))
        return fused.flatten(2), None
