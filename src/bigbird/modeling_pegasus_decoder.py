"""The BigBird-Pegasus decoder: learned positions, pre-norm layers of causal self-attention, cross-attention
over the encoder output and a feed-forward block, and a final LayerNorm (named `layernorm_embedding`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .activations import get_activation
from .config import BigBirdPegasusConfig
from .decoder_attention import DecoderAttention, DecoderCache, LayerCache, additive_mask
from .outputs import BaseModelOutputWithPoolingAndCrossAttentions

class ScaledEmbedding(nn.Embedding):
    """Token embeddings (batch, length, d_model) times sqrt(d_model) when the config's `scale_embedding` is set, as
    Transformers' `get_input_embeddings()` returns them (so `inputs_embeds` built with it carry the scale)."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.embed_scale


class PegasusDecoderLayer(nn.Module):
    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__()
        d = config.d_model
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout
        self.activation = get_activation(config.activation_function)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = DecoderAttention(d, config.decoder_attention_heads, config.attention_dropout, config.use_bias)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = DecoderAttention(d, config.decoder_attention_heads, config.attention_dropout,
                                             config.use_bias)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, d)

    def forward(self, hidden: torch.Tensor, self_mask: torch.Tensor | None, encoder_hidden: torch.Tensor | None,
                cross_mask: torch.Tensor | None, cache: LayerCache | None, capacity: int, group: int,
                output_attentions: bool) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attended, self_probs = self.self_attn.self_attention(self.self_attn_layer_norm(hidden), self_mask, cache,
                                                             capacity, output_attentions)
        hidden = hidden + F.dropout(attended, self.dropout, self.training)

        cross_probs = None
        if encoder_hidden is not None or (cache is not None and cache.cross_keys is not None):
            attended, cross_probs = self.encoder_attn.cross_attention(
                self.encoder_attn_layer_norm(hidden), encoder_hidden, cross_mask, cache, group, output_attentions
            )
            hidden = hidden + F.dropout(attended, self.dropout, self.training)

        inner = self.activation(self.fc1(self.final_layer_norm(hidden)))
        inner = F.dropout(inner, self.activation_dropout, self.training)
        hidden = hidden + F.dropout(self.fc2(inner), self.dropout, self.training)
        return hidden, self_probs, cross_probs


class PegasusDecoder(nn.Module):
    """Decoder stack. `embed_tokens` is the shared embedding of the encoder-decoder models, or its own in the
    causal-LM model."""

    def __init__(self, config: BigBirdPegasusConfig, embed_tokens: ScaledEmbedding) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.d_model)
        self.layers = nn.ModuleList(PegasusDecoderLayer(config) for _ in range(config.decoder_layers))
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.gradient_checkpointing = False

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: DecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
    ) -> BaseModelOutputWithPoolingAndCrossAttentions:
        """input_ids (batch, new) or inputs_embeds (batch, new, d_model); attention_mask (batch, past + new) with 1
        for tokens, 0 for padding; encoder_hidden_states (batch // group, source, d_model) with
        encoder_attention_mask (batch // group, source), where `group` is the cache's (1 without a cache).

        Returns `last_hidden_state` (batch, new, d_model) and, with `use_cache`, `past_key_values` (a
        `DecoderCache` holding everything needed to decode the next token).
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of decoder input_ids and decoder inputs_embeds")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        batch, new = inputs_embeds.shape[:2]
        if use_cache and past_key_values is None:
            past_key_values = DecoderCache(len(self.layers))
        past = past_key_values.get_seq_length() if past_key_values is not None else 0
        if past + new > self.config.max_position_embeddings:
            raise ValueError(
                f"the decoder has {self.config.max_position_embeddings} positions (max_position_embeddings) but was "
                f"given {past + new} tokens: shorten the decoder input or the generation length"
            )
        group = past_key_values.group if past_key_values is not None else 1
        if encoder_hidden_states is not None and encoder_hidden_states.shape[0] * group != batch:
            raise ValueError(
                f"the decoder batch has {batch} rows but the encoder output has {encoder_hidden_states.shape[0]} "
                f"(x {group} beams): pass one encoder output per decoder row"
            )

        positions = torch.arange(past, past + new, device=inputs_embeds.device)
        hidden = F.dropout(inputs_embeds + self.embed_positions(positions), self.config.dropout, self.training)
        self_mask = self._self_attention_mask(attention_mask, batch, past, new, hidden)
        cross_mask = None
        if encoder_attention_mask is not None:
            cross_mask = additive_mask(encoder_attention_mask.bool()[:, None, None, :], hidden.dtype)

        all_hidden, self_attentions, cross_attentions = [], [], []
        for index, layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden.append(hidden)
            if self.training and self.config.decoder_layerdrop > 0 and torch.rand([]) < self.config.decoder_layerdrop:
                continue
            cache = past_key_values.layers[index] if past_key_values is not None else None
            capacity = past_key_values.capacity if past_key_values is not None else 0
            arguments = (hidden, self_mask, encoder_hidden_states, cross_mask, cache, capacity, group,
                         output_attentions)
            if self.gradient_checkpointing and self.training and cache is None:
                hidden, self_probs, cross_probs = checkpoint(layer, *arguments, use_reentrant=False)
            else:
                hidden, self_probs, cross_probs = layer(*arguments)
            self_attentions.append(self_probs)
            cross_attentions.append(cross_probs)
        hidden = self.layernorm_embedding(hidden)
        if output_hidden_states:
            all_hidden.append(hidden)
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=hidden,
            past_key_values=past_key_values if use_cache else None,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(self_attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions and encoder_hidden_states is not None
            else None,
        )

    def decode(self, input_ids: torch.Tensor, encoder_hidden: torch.Tensor | None, cross_mask: torch.Tensor | None,
               cache: DecoderCache, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """One generation step: input_ids (rows, new) after the cached tokens -> hidden states (rows, new, d_model).

        encoder_hidden (rows // cache.group, source, d_model) on the first step only (the cache keeps its keys
        and values); cross_mask additive (rows // cache.group, 1, 1, source) or None; attention_mask
        (rows, past + new) or None.
        """
        past, new = cache.get_seq_length(), input_ids.shape[1]
        positions = torch.arange(past, past + new, device=input_ids.device)
        hidden = self.embed_tokens(input_ids) + self.embed_positions(positions)
        self_mask = self._self_attention_mask(attention_mask, input_ids.shape[0], past, new, hidden)
        for layer, layer_cache in zip(self.layers, cache.layers):
            hidden, _, _ = layer(hidden, self_mask, encoder_hidden, cross_mask, layer_cache, cache.capacity,
                                 cache.group, False)
        return self.layernorm_embedding(hidden)

    @staticmethod
    def _self_attention_mask(attention_mask: torch.Tensor | None, batch: int, past: int, new: int,
                             hidden: torch.Tensor) -> torch.Tensor | None:
        """Additive (batch, 1, new, past + new) causal and padding mask, or None when every key is visible."""
        if attention_mask is not None and attention_mask.shape != (batch, past + new):
            raise ValueError(
                f"the decoder attention mask must have shape (batch, past + new) = ({batch}, {past + new}), "
                f"got {tuple(attention_mask.shape)}"
            )
        if new == 1 and attention_mask is None:
            return None
        keys = torch.arange(past + new, device=hidden.device)
        queries = torch.arange(past, past + new, device=hidden.device)
        allowed = (keys[None, :] <= queries[:, None])[None, None]
        if attention_mask is not None:
            allowed = allowed & attention_mask.bool()[:, None, None, :]
        return additive_mask(allowed.expand(batch, 1, new, past + new), hidden.dtype)
