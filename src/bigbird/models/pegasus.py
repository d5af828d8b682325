"""BigBird-Pegasus: our block-sparse encoder under Transformers' decoder, heads and generation.

Parameter names, configs (`transformers.BigBirdPegasusConfig`), outputs, the decoder (with its `Cache`), the
task heads and `generate()` are Transformers' own: each class here is Transformers' class with our
`BigBirdPegasusEncoder` in `model.encoder`. The encoder decides per call whether block-sparse attention runs
(as `BigBirdModel` does), pads to a block multiple and cuts back; an input never changes the model.
`BigBirdPegasusForCausalLM` has no encoder: it is Transformers' class with bigbird's loading and generate checks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.cache_utils import EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.bigbird_pegasus import modeling_bigbird_pegasus as hf
from transformers.utils.generic import can_return_tuple

from .attention import AttentionMasks, BigBirdSelfAttention, full_attention_masks, sparse_call
from .checks.inputs import check_length, check_model_inputs
from .cross_attention import share_cross_attention, share_encoder_rows
from .pretrained import BigBirdFamilyMixin, CheckedGenerateMixin

class BigBirdPegasusEncoderAttention(nn.Module):
    """`self` (query/key/value and the attention) and the `output` projection."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.self = BigBirdSelfAttention(config, layer_idx)
        self.output = nn.Linear(config.d_model, config.d_model, bias=config.use_bias)

    def forward(self, hidden_states, masks: AttentionMasks, output_attentions=False):
        """hidden_states: (batch, length, d_model) -> (batch, length, d_model), probs or None."""
        context, probs = self.self(hidden_states, masks, output_attentions=output_attentions)
        return self.output(context), probs


class BigBirdPegasusEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm layer: x + attention(norm(x)), then x + fc2(act(fc1(norm(x)))) (no activation dropout)."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.dropout = config.dropout
        self.activation_fn = ACT2FN[config.activation_function]
        self.self_attn = BigBirdPegasusEncoderAttention(config, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.fc1 = nn.Linear(config.d_model, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model)

    def forward(self, hidden_states, masks: AttentionMasks, output_attentions=False):
        """hidden_states: (batch, length, d_model) -> (batch, length, d_model), probs or None."""
        attended, probs = self.self_attn(self.self_attn_layer_norm(hidden_states), masks, output_attentions)
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        inner = self.fc2(self.activation_fn(self.fc1(self.final_layer_norm(hidden_states))))
        return hidden_states + F.dropout(inner, self.dropout, self.training), probs


class BigBirdPegasusEncoder(BigBirdFamilyMixin, hf.BigBirdPegasusPreTrainedModel):
    """Token and learned position embeddings, the encoder layers, the final `layernorm_embedding`."""

    def __init__(self, config):
        super().__init__(config)
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_tokens = hf.BigBirdPegasusScaledWordEmbedding(config.vocab_size, config.d_model,
                                                                 config.pad_token_id, embed_scale=scale)
        self.embed_positions = hf.BigBirdPegasusLearnedPositionalEmbedding(config.max_position_embeddings,
                                                                           config.d_model)
        self.layers = nn.ModuleList(BigBirdPegasusEncoderLayer(config, i) for i in range(config.encoder_layers))
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.post_init()

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, inputs_embeds=None, output_attentions=None,
                output_hidden_states=None, **kwargs):
        """input_ids (batch, length) or inputs_embeds (batch, length, d_model); attention_mask (batch, length), 1 for
        tokens and 0 for padding. Returns `last_hidden_state` (batch, length, d_model); `hidden_states` (the
        input of every layer and the output) and `attentions` (batch, heads, length, length) when asked."""
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        batch, length = check_model_inputs(config, input_ids, inputs_embeds, attention_mask, None, None,
                                           dtype=self.embed_tokens.weight.dtype)
        sparse = sparse_call(config, length)
        padding = (-length) % config.block_size if sparse else 0
        check_length(config, length, length + padding)
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        positions = self.embed_positions(inputs_embeds.shape[:2]).to(inputs_embeds.device)
        hidden = F.dropout(inputs_embeds + positions, config.dropout, self.training)

        if sparse:
            if attention_mask is None:
                attention_mask = torch.ones(batch, length, dtype=torch.long, device=hidden.device)
            if padding:
                pad_ids = torch.full((batch, padding), config.pad_token_id, dtype=torch.long, device=hidden.device)
                hidden = torch.cat([hidden, self.embed_tokens(pad_ids)], dim=1)
                attention_mask = F.pad(attention_mask, (0, padding), value=0)
            masks = AttentionMasks(sparse=True, key_padding_mask=attention_mask)
        else:
            masks = full_attention_masks(attention_mask, hidden.dtype, query_length=length, key_length=length)

        all_hidden, all_probs = [], []
        for layer in self.layers:
            if output_hidden_states:
                all_hidden.append(hidden[:, :length])
            if self.training and config.encoder_layerdrop > 0 and torch.rand([]) < config.encoder_layerdrop:
                continue
            hidden, probs = layer(hidden, masks, output_attentions=output_attentions)
            if output_attentions:
                all_probs.append(probs[:, :, :length, :length])
        hidden = self.layernorm_embedding(hidden)[:, :length]
        if output_hidden_states:
            all_hidden.append(hidden)
        return BaseModelOutput(
            last_hidden_state=hidden,
            hidden_states=tuple(all_hidden) if output_hidden_states else None,
            attentions=tuple(all_probs) if output_attentions else None,
        )


class BigBirdPegasusModel(BigBirdFamilyMixin, hf.BigBirdPegasusModel):
    """The shared embedding, our encoder and Transformers' decoder (its cross-attention reads each encoder row once
    for all of that row's beams: `SharedCrossAttention`), with Transformers' forward."""

    def __init__(self, config):
        hf.BigBirdPegasusPreTrainedModel.__init__(self, config)
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.shared = hf.BigBirdPegasusScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id,
                                                           embed_scale=scale)
        self.encoder = BigBirdPegasusEncoder(config)
        self.decoder = hf.BigBirdPegasusDecoder(config)
        share_cross_attention(self.decoder)
        self.post_init()


class BigBirdPegasusForConditionalGeneration(BigBirdFamilyMixin, CheckedGenerateMixin,
                                             hf.BigBirdPegasusForConditionalGeneration):
    """Transformers' summarization head (tied `lm_head` + `final_logits_bias`) and `generate()` over our model."""

    def __init__(self, config):
        hf.BigBirdPegasusPreTrainedModel.__init__(self, config)
        self.model = BigBirdPegasusModel(config)
        self.final_logits_bias = nn.Buffer(torch.zeros((1, config.vocab_size)))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Transformers' expansion to `expand_size` sequences per input, but one encoder row per input (see
        `bigbird.models.cross_attention`)."""
        return share_encoder_rows(super()._expand_inputs_for_generation, expand_size, is_encoder_decoder, input_ids,
                                  model_kwargs)

    def _reorder_cache(self, past_key_values: EncoderDecoderCache, beam_idx: torch.Tensor) -> EncoderDecoderCache:
        """Beam search's reordering, of the decoder's self-attention cache only: the cross-attention cache holds one
        row per input, shared by all of its beams."""
        past_key_values.self_attention_cache.reorder_cache(beam_idx)
        return past_key_values


class BigBirdPegasusForSequenceClassification(BigBirdFamilyMixin, hf.BigBirdPegasusForSequenceClassification):
    """Transformers' classification head over the decoder's state at the last end-of-sequence token."""

    def __init__(self, config, **kwargs):
        hf.BigBirdPegasusPreTrainedModel.__init__(self, config, **kwargs)
        self.model = BigBirdPegasusModel(config)
        self.classification_head = hf.BigBirdPegasusClassificationHead(config.d_model, config.d_model,
                                                                       config.num_labels, config.classifier_dropout)
        self.post_init()


class BigBirdPegasusForQuestionAnswering(BigBirdFamilyMixin, hf.BigBirdPegasusForQuestionAnswering):
    """Transformers' span head over the decoder's states."""

    def __init__(self, config):
        hf.BigBirdPegasusPreTrainedModel.__init__(self, config)
        config.num_labels = 2
        self.num_labels = 2
        self.model = BigBirdPegasusModel(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class BigBirdPegasusForCausalLM(BigBirdFamilyMixin, CheckedGenerateMixin, hf.BigBirdPegasusForCausalLM):
    """Transformers' decoder-only language model, unchanged (no encoder, so no block-sparse attention)."""
