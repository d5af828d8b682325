"""BigBird-Pegasus decoder attention (causal self-attention and cross-attention) and its key/value cache.

The decoder attends fully, with queries scaled by `head_dim ** -0.5`. During generation the cache keeps,
per layer, the self-attention keys/values of the tokens decoded so far (written into a preallocated
buffer, so a step copies one token, not the whole history) and the cross-attention keys/values of the
encoder output (projected once). Beams of one input share that input's cross-attention keys/values:
they are stored once per input, not once per beam, and never reordered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def additive_mask(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """0 where `allowed` is True and the dtype's most negative value elsewhere (as Transformers' eager masks)."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, torch.finfo(dtype).min)


class LayerCache:
    """One decoder layer's cache: self-attention keys/values that grow, cross-attention keys/values set once."""

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None  # (batch, heads, capacity, head_dim)
        self.values: torch.Tensor | None = None
        self.length = 0
        # Keys transposed, (batch // group, heads, head_dim, source_length), and values (batch // group, heads,
        # source_length, head_dim), both contiguous: a step reads them as two plain matrix products.
        self.cross_keys: torch.Tensor | None = None
        self.cross_values: torch.Tensor | None = None

    def append(self, keys: torch.Tensor, values: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Write `keys`/`values` (batch, heads, new, head_dim) after the cached ones; return all of them."""
        new = keys.shape[2]
        end = self.length + new
        if self.keys is None or end > self.keys.shape[2]:
            size = max(capacity, end, 2 * (self.keys.shape[2] if self.keys is not None else 0))
            grown_k = keys.new_empty(keys.shape[0], keys.shape[1], size, keys.shape[3])
            grown_v = torch.empty_like(grown_k)
            if self.keys is not None:
                grown_k[:, :, : self.length] = self.keys[:, :, : self.length]
                grown_v[:, :, : self.length] = self.values[:, :, : self.length]
            self.keys, self.values = grown_k, grown_v
        self.keys[:, :, self.length : end] = keys
        self.values[:, :, self.length : end] = values
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]


class DecoderCache:
    """The key/value cache of a whole decoder, passed as `past_key_values` and returned by each forward.

    `capacity` preallocates room for that many decoded tokens. `group` is the number of rows (beams) that
    share one input's cross-attention keys/values: row i of the decoder batch reads input i // group.
    """

    def __init__(self, num_layers: int, capacity: int = 0, group: int = 1) -> None:
        self.layers = [LayerCache() for _ in range(num_layers)]
        self.capacity = capacity
        self.group = group

    def get_seq_length(self) -> int:
        """Number of tokens already decoded (the position of the next one)."""
        return self.layers[0].length

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep the self-attention rows `rows` (batch,), e.g. the beams chosen at a beam-search step.

        Rows must stay within their input's group of beams; cross-attention keys/values are shared and stay.
        """
        for layer in self.layers:
            if layer.keys is not None:
                layer.keys[:, :, : layer.length] = layer.keys[rows, :, : layer.length]
                layer.values[:, :, : layer.length] = layer.values[rows, :, : layer.length]


class DecoderAttention(nn.Module):
    """Multi-head attention of the decoder: causal self-attention, or cross-attention over the encoder output."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                output_attentions: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        dropout = self.dropout if self.training else 0.0
        # SDPA's gradient differs from Transformers' eager one on fully masked (left-padding) rows.
        explicit = output_attentions or (mask is not None and torch.is_grad_enabled())
        if not explicit:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout,
                                                  scale=self.head_dim ** -0.5), None
        scores = (q @ k.transpose(-1, -2)) * self.head_dim ** -0.5
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        return F.dropout(probs, dropout, self.training) @ v, probs

    def _attend_cached(self, q: torch.Tensor, keys_t: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
                       output_attentions: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attention over cached cross-attention keys stored transposed (..., head_dim, source): with a few queries
        per head, two matrix products read the cache faster than the flash kernel does."""
        scores = (q @ keys_t) * self.head_dim ** -0.5
        if mask is not None:
            scores = scores + mask
        probs = scores.softmax(dim=-1)
        out = F.dropout(probs, self.dropout, self.training) @ v
        return out, probs if output_attentions else None

    def self_attention(self, hidden: torch.Tensor, mask: torch.Tensor | None, cache: LayerCache | None,
                       capacity: int = 0, output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden (batch, new, embed); mask additive (batch, 1, new, past + new) or None when every key is visible.

        With a cache the new keys/values are appended to it and the queries see the cached ones too.
        Returns (batch, new, embed) and, if asked, the probabilities (batch, heads, new, past + new).
        """
        q = self._heads(self.q_proj(hidden))
        k = self._heads(self.k_proj(hidden))
        v = self._heads(self.v_proj(hidden))
        if cache is not None:
            k, v = cache.append(k, v, capacity)
        out, probs = self._attend(q, k, v, mask, output_attentions)
        return self.out_proj(out.transpose(1, 2).flatten(2)), probs

    def cross_attention(self, hidden: torch.Tensor, encoder_hidden: torch.Tensor | None, mask: torch.Tensor | None,
                        cache: LayerCache | None, group: int = 1,
                        output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """hidden (batch, new, embed) attends `encoder_hidden` (batch // group, source, embed).

        mask: additive (batch // group, 1, 1, source) or None. Keys/values come from the cache when it has them
        (then `encoder_hidden` may be None) and are stored in it otherwise. Rows i*group..(i+1)*group-1 of
        `hidden` (the beams of input i) share input i's keys/values.
        """
        if cache is not None and cache.cross_keys is None:
            k = self._heads(self.k_proj(encoder_hidden))
            cache.cross_keys = k.transpose(-1, -2).contiguous()
            cache.cross_values = self._heads(self.v_proj(encoder_hidden)).contiguous()
        batch, new, _ = hidden.shape
        q = self._heads(self.q_proj(hidden))
        if group > 1:  # (inputs * group, heads, new, d) -> (inputs, heads, group * new, d)
            q = q.view(batch // group, group, self.num_heads, new, self.head_dim).transpose(1, 2)
            q = q.reshape(batch // group, self.num_heads, group * new, self.head_dim)
        if cache is None:
            k, v = self._heads(self.k_proj(encoder_hidden)), self._heads(self.v_proj(encoder_hidden))
            out, probs = self._attend(q, k, v, mask, output_attentions)
        else:
            out, probs = self._attend_cached(q, cache.cross_keys, cache.cross_values, mask, output_attentions)
        if group > 1:
            out = out.view(batch // group, self.num_heads, group, new, self.head_dim).transpose(1, 2)
            out = out.reshape(batch, self.num_heads, new, self.head_dim)
            if probs is not None:
                probs = probs.view(batch // group, self.num_heads, group, new, -1).transpose(1, 2)
                probs = probs.reshape(batch, self.num_heads, new, -1)
        return self.out_proj(out.transpose(1, 2).flatten(2)), probs
