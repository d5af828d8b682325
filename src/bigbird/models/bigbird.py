"""BigBird (the encoder family of `google/bigbird-roberta-base`): Transformers' modules and heads, our forward.

Parameter names, configs (`transformers.BigBirdConfig`), output classes and the eight task heads are
Transformers' own: each head class here is Transformers' class with our `BigBirdModel` under `bert`, so its
forward, losses and outputs are Transformers' code. What is ours is the base model's forward: per call it
decides whether block-sparse attention runs (only with `attention_type="block_sparse"`, an encoder, and an
input longer than (5 + 2r) * block_size tokens), pads the input to a block multiple and cuts the outputs back;
shorter inputs and decoders run full attention. An input never changes the model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndCrossAttentions
from transformers.models.big_bird import modeling_big_bird as hf
from transformers.utils import logging
from transformers.utils.generic import can_return_tuple

from .attention import AttentionMasks, BigBirdSelfAttention, full_attention_masks, sparse_call
from .checks.inputs import check_length, check_model_inputs
from .pretrained import BigBirdFamilyMixin, CheckedGenerateMixin

logger = logging.get_logger(__name__)


class BigBirdAttention(nn.Module):
    """`self` (query/key/value and the attention) and `output` (projection, dropout, residual, LayerNorm)."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.self = BigBirdSelfAttention(config, layer_idx)
        self.output = hf.BigBirdSelfOutput(config)

    def forward(self, hidden_states, masks: AttentionMasks, past_key_values=None, output_attentions=False):
        """hidden_states: (batch, length, hidden) -> (batch, length, hidden), probs or None."""
        context, probs = self.self(hidden_states, masks, past_key_values, output_attentions)
        return self.output(context, hidden_states), probs


class BigBirdLayer(GradientCheckpointingLayer):
    """Post-norm BERT layer: attention, then intermediate (dense + activation) and output (dense + LayerNorm)."""

    def __init__(self, config, layer_idx: int):
        super().__init__()
        self.attention = BigBirdAttention(config, layer_idx)
        self.intermediate = hf.BigBirdIntermediate(config)
        self.output = hf.BigBirdOutput(config)

    def forward(self, hidden_states, masks: AttentionMasks, past_key_values=None, output_attentions=False):
        """hidden_states: (batch, length, hidden) -> (batch, length, hidden), probs or None."""
        attended, probs = self.attention(hidden_states, masks, past_key_values, output_attentions)
        return self.output(self.intermediate(attended), attended), probs


class BigBirdEncoder(nn.Module):
    """The stack of layers (`layer.0`, `layer.1`, ... as in Transformers)."""

    def __init__(self, config):
        super().__init__()
        self.layer = nn.ModuleList(BigBirdLayer(config, i) for i in range(config.num_hidden_layers))

    def forward(self, hidden_states, masks: AttentionMasks, past_key_values=None, output_attentions=False,
                output_hidden_states=False):
        """hidden_states: (batch, length, hidden). Returns the last hidden states and, when asked, every layer's
        input and output (embeddings first) and attention probabilities."""
        all_hidden = [hidden_states] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        for layer in self.layer:
            hidden_states, probs = layer(hidden_states, masks, past_key_values=past_key_values,
                                         output_attentions=output_attentions)
            if output_hidden_states:
                all_hidden.append(hidden_states)
            if output_attentions:
                all_probs.append(probs)
        return hidden_states, all_hidden, all_probs


class BigBirdModel(BigBirdFamilyMixin, hf.BigBirdPreTrainedModel):
    """Embeddings, the encoder layers and (optionally) the tanh pooler over token 0.

    With `is_decoder=True` the layers are causal (full attention, whatever `attention_type` says) and extend a
    Transformers `Cache` given as `past_key_values`.
    """

    def __init__(self, config, add_pooling_layer: bool = True):
        super().__init__(config)
        if config.add_cross_attention:
            raise ValueError(
                "cross-attention (add_cross_attention=True) is not supported by bigbird's BigBird classes: use "
                "BigBirdPegasus for encoder-decoder models, or set add_cross_attention=False"
            )
        if config.is_decoder and config.attention_type == "block_sparse":
            logger.warning_once("block-sparse attention cannot be causal: this decoder (is_decoder=True) runs causal "
                                "full attention (Transformers would run non-causal block-sparse attention)")
        self.embeddings = hf.BigBirdEmbeddings(config)
        self.encoder = BigBirdEncoder(config)
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.activation = nn.Tanh() if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    @can_return_tuple
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, encoder_hidden_states=None, encoder_attention_mask=None, past_key_values=None,
                use_cache=None, output_attentions=None, output_hidden_states=None, **kwargs):
        """input_ids: (batch, length) or inputs_embeds: (batch, length, hidden); attention_mask: (batch, past +
        length), 1 for tokens and 0 for padding; token_type_ids, position_ids: (batch, length).

        Returns Transformers' `BaseModelOutputWithPoolingAndCrossAttentions`: `last_hidden_state` (batch, length,
        hidden), `pooler_output` (batch, hidden), a decoder's `past_key_values`, and per-layer `hidden_states`
        (embeddings first) / `attentions` (batch, heads, length, key_length) when asked for, all cut to the input
        length (Transformers leaves the last two padded to a block multiple).
        """
        config = self.config
        if encoder_hidden_states is not None:
            raise ValueError("BigBirdModel has no cross-attention: encoder_hidden_states cannot be used")
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        if not config.is_decoder:
            past_key_values = None
        elif past_key_values is None and (config.use_cache if use_cache is None else use_cache):
            past_key_values = hf.DynamicCache(config=config)
        past_length = 0 if past_key_values is None else past_key_values.get_seq_length()
        batch, length = check_model_inputs(config, input_ids, inputs_embeds, attention_mask, token_type_ids,
                                           position_ids, past_length,
                                           dtype=self.embeddings.word_embeddings.weight.dtype)
        sparse = sparse_call(config, length, past_length)
        padding = (-length) % config.block_size if sparse else 0
        if position_ids is None:
            check_length(config, past_length + length, past_length + length + padding)

        device = input_ids.device if input_ids is not None else inputs_embeds.device
        if inputs_embeds is None:
            inputs_embeds = self.embeddings.word_embeddings(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch, length, dtype=torch.long, device=device)
        if attention_mask is None and padding:
            attention_mask = torch.ones(batch, length, dtype=torch.long, device=device)
        if padding:
            pad_ids = torch.full((batch, padding), config.pad_token_id, dtype=torch.long, device=device)
            inputs_embeds = torch.cat([inputs_embeds, self.embeddings.word_embeddings(pad_ids)], dim=1)
            token_type_ids = F.pad(token_type_ids, (0, padding), value=0)
            attention_mask = F.pad(attention_mask, (0, padding), value=0)
            if position_ids is not None:
                position_ids = F.pad(position_ids, (0, padding), value=config.pad_token_id)
        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + length + padding, device=device)[None]
        hidden = self.embeddings(token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds)

        if sparse:
            masks = AttentionMasks(sparse=True, key_padding_mask=attention_mask)
        else:
            masks = full_attention_masks(attention_mask, hidden.dtype, query_length=length,
                                         key_length=past_length + length, causal=config.is_decoder, device=device)
        hidden, all_hidden, all_probs = self.encoder(hidden, masks, past_key_values, output_attentions,
                                                     output_hidden_states)
        pooled = self.activation(self.pooler(hidden[:, 0])) if self.pooler is not None else None
        return BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=hidden[:, :length],
            pooler_output=pooled,
            past_key_values=past_key_values,
            hidden_states=tuple(h[:, :length] for h in all_hidden) if output_hidden_states else None,
            attentions=tuple(p[..., :length, : past_length + length] for p in all_probs) if output_attentions
            else None,
        )


class BigBirdForPreTraining(BigBirdFamilyMixin, hf.BigBirdForPreTraining):
    """Transformers' masked-LM and next-sentence heads over our `BigBirdModel`."""

    def __init__(self, config):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        self.bert = BigBirdModel(config)
        self.cls = hf.BigBirdPreTrainingHeads(config)
        self.post_init()


class BigBirdForMaskedLM(BigBirdFamilyMixin, hf.BigBirdForMaskedLM):
    """Transformers' masked-language-model head over our `BigBirdModel`."""

    def __init__(self, config):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        self.bert = BigBirdModel(config)
        self.cls = hf.BigBirdOnlyMLMHead(config)
        self.post_init()


class BigBirdForCausalLM(BigBirdFamilyMixin, CheckedGenerateMixin, hf.BigBirdForCausalLM):
    """Transformers' language-model head and `generate()` over our `BigBirdModel`, always causal."""

    def __init__(self, config):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        if not config.is_decoder:
            logger.warning_once("BigBirdForCausalLM runs as a decoder: pass is_decoder=True in its config")
        self.bert = BigBirdModel(config)
        self.cls = hf.BigBirdOnlyMLMHead(config)
        self.post_init()


class BigBirdForSequenceClassification(BigBirdFamilyMixin, hf.BigBirdForSequenceClassification):
    """Transformers' classification head (dense, tanh, projection over token 0) over our `BigBirdModel`."""

    def __init__(self, config):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.bert = BigBirdModel(config)
        self.classifier = hf.BigBirdClassificationHead(config)
        self.post_init()


class BigBirdForMultipleChoice(BigBirdFamilyMixin, hf.BigBirdForMultipleChoice):
    """Transformers' multiple-choice head (one score per choice from the pooled output) over our `BigBirdModel`."""

    def __init__(self, config):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        self.bert = BigBirdModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()


class BigBirdForTokenClassification(BigBirdFamilyMixin, hf.BigBirdForTokenClassification):
    """Transformers' per-token classification head over our `BigBirdModel`."""

    def __init__(self, config):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.bert = BigBirdModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()


class BigBirdForQuestionAnswering(BigBirdFamilyMixin, hf.BigBirdForQuestionAnswering):
    """Transformers' span head (question tokens masked out of the start/end logits) over our `BigBirdModel`."""

    def __init__(self, config, add_pooling_layer: bool = False):
        hf.BigBirdPreTrainedModel.__init__(self, config)
        config.num_labels = 2
        self.num_labels = 2
        self.sep_token_id = config.sep_token_id
        self.bert = BigBirdModel(config, add_pooling_layer=add_pooling_layer)
        self.qa_classifier = hf.BigBirdForQuestionAnsweringHead(config)
        self.post_init()
