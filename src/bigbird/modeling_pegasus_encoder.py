"""The BigBird-Pegasus encoder: scaled token embeddings plus learned positions, pre-norm layers of block-sparse
(or full) self-attention and a feed-forward block, and a final LayerNorm (named `layernorm_embedding`).

Whether the layers run block-sparse is decided per call (Transformers decides once and then keeps full
attention for good): block-sparse when `attention_type` is "block_sparse" and the input is longer than
(5 + 2r) * block_size tokens. Block-sparse inputs are right-padded to a multiple of the block size with
the padding token's embedding (no position added, as in Transformers) and cut back at the end.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .attention import AttentionMasks, SelfAttention, full_attention_masks, sparse_attention_fits
from .config import BigBirdPegasusConfig
from .activations import get_activation
from .modeling_pegasus_decoder import ScaledEmbedding
from .outputs import BaseModelOutput


class PegasusEncoderLayer(nn.Module):
    def __init__(self, config: BigBirdPegasusConfig, layer_idx: int) -> None:
        super().__init__()
        d = config.d_model
        self.dropout = config.dropout
        self.activation = get_activation(config.activation_function)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.self_attn = SelfAttention(
            d, config.encoder_attention_heads, layer_idx=layer_idx, block_size=config.block_size,
            num_random_blocks=config.num_random_blocks, max_seq_len=config.max_position_embeddings,
            dropout=config.attention_dropout, qkv_bias=config.use_bias, out_bias=config.use_bias,
        )
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, d)

    def forward(self, hidden: torch.Tensor, masks: AttentionMasks,
                output_attentions: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs, _ = self.self_attn(self.self_attn_layer_norm(hidden), masks,
                                            output_attentions=output_attentions)
        hidden = hidden + F.dropout(attended, self.dropout, self.training)
        # Transformers' Pegasus encoder layer has no activation dropout.
        inner = self.fc2(self.activation(self.fc1(self.final_layer_norm(hidden))))
        return hidden + F.dropout(inner, self.dropout, self.training), probs


class PegasusEncoder(nn.Module):
    """Encoder stack over the shared token embedding `embed_tokens`."""

    def __init__(self, config: BigBirdPegasusConfig, embed_tokens: ScaledEmbedding) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = embed_tokens
        self.embed_positions = nn.Embedding(config.max_position_embeddings, config.d_model)
        self.layers = nn.ModuleList(PegasusEncoderLayer(config, i) for i in range(config.encoder_layers))
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.gradient_checkpointing = False

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                inputs_embeds: torch.Tensor | None = None, output_attentions: bool = False,
                output_hidden_states: bool = False) -> BaseModelOutput:
        """input_ids (batch, length) or inputs_embeds (batch, length, d_model); attention_mask (batch, length), 1 for
        tokens and 0 for padding. Returns `last_hidden_state` (batch, length, d_model); `hidden_states` (the
        input of every layer and the output) and `attentions` (batch, heads, length, length) when asked."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids and inputs_embeds")
        if inputs_embeds is None:
            check_encoder_input(input_ids, attention_mask, self.config)
            inputs_embeds = self.embed_tokens(input_ids)
        else:
            check_encoder_input(inputs_embeds[..., 0], attention_mask, self.config)
        batch, length = inputs_embeds.shape[:2]
        positions = self.embed_positions(torch.arange(length, device=inputs_embeds.device))
        hidden = F.dropout(inputs_embeds + positions, self.config.dropout, self.training)

        sparse = self.config.attention_type == "block_sparse" and sparse_attention_fits(
            length, self.config.block_size, self.config.num_random_blocks)
        if sparse:
            hidden, attention_mask = self._pad_to_block_size(hidden, attention_mask)
            masks = AttentionMasks(sparse=True, key_padding_mask=attention_mask)
        else:
            masks = full_attention_masks(attention_mask, hidden.dtype, query_length=length, key_length=length)

        all_hidden, attentions = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden[:, :length])
            if self.training and self.config.encoder_layerdrop > 0 and torch.rand([]) < self.config.encoder_layerdrop:
                continue
            if self.gradient_checkpointing and self.training:
                hidden, probs = checkpoint(layer, hidden, masks, output_attentions, use_reentrant=False)
            else:
                hidden, probs = layer(hidden, masks, output_attentions)
            if output_attentions:
                attentions.append(probs[:, :, :length, :length])
        hidden = self.layernorm_embedding(hidden)[:, :length]
        if output_hidden_states:
            all_hidden.append(hidden)
        return BaseModelOutput(
            last_hidden_state=hidden,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )

    def _pad_to_block_size(self, hidden: torch.Tensor,
                           attention_mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        batch, length, _ = hidden.shape
        if attention_mask is None:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=hidden.device)
        padding = -length % self.config.block_size
        if padding == 0:
            return hidden, attention_mask
        pad_ids = torch.full((batch, padding), self.config.pad_token_id, dtype=torch.long, device=hidden.device)
        hidden = torch.cat([hidden, self.embed_tokens(pad_ids)], dim=1)
        return hidden, F.pad(attention_mask, (0, padding), value=0)


def check_encoder_input(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                        config: BigBirdPegasusConfig) -> None:
    """Raise a ValueError naming the problem when the encoder cannot take this input."""
    if input_ids.dim() != 2 or input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"the encoder input must be a non-empty batch of shape (batch, length), got {tuple(input_ids.shape)}"
        )
    if input_ids.shape[1] > config.max_position_embeddings:
        raise ValueError(
            f"the input has {input_ids.shape[1]} tokens but the model has {config.max_position_embeddings} positions "
            "(max_position_embeddings): truncate the input (e.g. the tokenizer's truncation=True, max_length="
            f"{config.max_position_embeddings})"
        )
    if attention_mask is not None and tuple(attention_mask.shape) != tuple(input_ids.shape):
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but the input has {tuple(input_ids.shape)}"
        )
