"""BigBird (the encoder family of `google/bigbird-roberta-base`): embeddings, post-norm layers, the eight classes.

Per forward call the base model decides whether block-sparse attention runs: only with
`attention_type="block_sparse"` and an input longer than (5 + 2r) * block_size tokens; the input is then
right-padded to a block multiple and the outputs are cut back to the input length. Shorter inputs run
full attention. The model itself is never changed by an input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .activations import get_activation
from .attention import (BLOCK_SPARSE, AttentionMasks, KVCache, SelfAttention, check_attention_type,
                        check_random_plan, full_attention_masks, sparse_attention_fits)
from .checkpoint import KeyTable
from .config import BigBirdConfig
from .generation import GenerationInputs, GenerationMixin, causal_prompt
from .generation_config import GenerationConfig
from .modeling_utils import PreTrainedModel
from .output_head import HalfCopyCache, OutputHead
from .outputs import (BaseModelOutputWithPoolingAndCrossAttentions, BigBirdForPreTrainingOutput,
                      BigBirdForQuestionAnsweringModelOutput, CausalLMOutputWithCrossAttentions, MaskedLMOutput,
                      MultipleChoiceModelOutput, SequenceClassifierOutput, TokenClassifierOutput)
from .validation import check_length, check_model_inputs

BIGBIRD_KEYS = KeyTable(
    base_prefix="bert",
    base=(
        ("embeddings.word", "embeddings.word_embeddings"),
        ("embeddings.position", "embeddings.position_embeddings"),
        ("embeddings.token_type", "embeddings.token_type_embeddings"),
        ("embeddings.norm", "embeddings.LayerNorm"),
        ("layers.{i}.attn.q_proj", "encoder.layer.{i}.attention.self.query"),
        ("layers.{i}.attn.k_proj", "encoder.layer.{i}.attention.self.key"),
        ("layers.{i}.attn.v_proj", "encoder.layer.{i}.attention.self.value"),
        ("layers.{i}.attn.out_proj", "encoder.layer.{i}.attention.output.dense"),
        ("layers.{i}.attn_norm", "encoder.layer.{i}.attention.output.LayerNorm"),
        ("layers.{i}.ffn_up", "encoder.layer.{i}.intermediate.dense"),
        ("layers.{i}.ffn_down", "encoder.layer.{i}.output.dense"),
        ("layers.{i}.ffn_norm", "encoder.layer.{i}.output.LayerNorm"),
        ("pooler", "pooler"),
    ),
    heads=(
        ("lm_head.dense", "cls.predictions.transform.dense"),
        ("lm_head.norm", "cls.predictions.transform.LayerNorm"),
        ("lm_head.decoder", "cls.predictions.decoder"),
        ("lm_head.bias", "cls.predictions.bias"),
        ("nsp_head", "cls.seq_relationship"),
        ("classifier", "classifier"),
        ("qa_head.ffn_up", "qa_classifier.intermediate.dense"),
        ("qa_head.ffn_down", "qa_classifier.output.dense"),
        ("qa_head.norm", "qa_classifier.output.LayerNorm"),
        ("qa_head.out", "qa_classifier.qa_outputs"),
    ),
    optional=("pooler",),
    aliases={"cls.predictions.decoder.bias": "cls.predictions.bias"},
)


class BigBirdEmbeddings(nn.Module):
    """word (* sqrt(hidden) if `rescale_embeddings`) + token type + absolute position, dropout, LayerNorm."""

    def __init__(self, config: BigBirdConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.scale = config.hidden_size**0.5 if config.rescale_embeddings else 1.0

    def forward(self, inputs_embeds: torch.Tensor, token_type_ids: torch.Tensor,
                position_ids: torch.Tensor) -> torch.Tensor:
        """inputs_embeds: (batch, length, hidden); token_type_ids, position_ids: (batch or 1, length)."""
        if self.scale != 1.0:
            inputs_embeds = inputs_embeds * self.scale
        embeddings = inputs_embeds + self.token_type(token_type_ids) + self.position(position_ids)
        return self.norm(self.dropout(embeddings))


class BigBirdLayer(nn.Module):
    """Post-norm BERT layer: x = norm(x + attention(x)); x = norm(x + ffn(x))."""

    def __init__(self, config: BigBirdConfig, layer_idx: int):
        super().__init__()
        self.attn = SelfAttention(
            config.hidden_size, config.num_attention_heads, layer_idx=layer_idx, block_size=config.block_size,
            num_random_blocks=config.num_random_blocks, max_seq_len=config.max_position_embeddings,
            dropout=config.attention_probs_dropout_prob, qkv_bias=config.use_bias,
        )
        self.attn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn_up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.act = get_activation(config.hidden_act)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, masks: AttentionMasks, past_key_value: KVCache | None = None,
                use_cache: bool = False, output_attentions: bool = False):
        """x: (batch, length, hidden). Returns (x, attention probs or None, (key, value) cache or None)."""
        attended, probs, present = self.attn(x, masks, past_key_value=past_key_value, use_cache=use_cache,
                                             output_attentions=output_attentions)
        x = self.attn_norm(x + self.dropout(attended))
        x = self.ffn_norm(x + self.dropout(self.ffn_down(self.act(self.ffn_up(x)))))
        return x, probs, present


class BigBirdPreTrainedModel(PreTrainedModel):
    """Shared by the BigBird classes: the config class, the key table, the switches of the base model."""

    config_class = BigBirdConfig
    key_table = BIGBIRD_KEYS

    def set_attention_type(self, value: str) -> None:
        """Switch every layer between "original_full" and "block_sparse" (the weights are shared by both)."""
        self.bert.set_attention_type(value)

    def set_random_plan(self, value: str) -> None:
        """"transformers" (default: Transformers' plans) or "paper" (the seeded random plan also at inference)."""
        self.bert.set_random_plan(value)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.bert.embeddings.word


class BigBirdModel(BigBirdPreTrainedModel):
    """Embeddings, the encoder layers and (optionally) the tanh pooler over token 0.

    With `is_decoder=True` (full attention only) the layers are causal and keep a key/value cache.
    """

    def __init__(self, config: BigBirdConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        if config.is_decoder and config.attention_type == BLOCK_SPARSE:
            raise ValueError(
                "block-sparse attention cannot be causal, so a decoder (is_decoder=True) needs full attention: "
                "pass attention_type='original_full' (e.g. from_pretrained(..., attention_type='original_full'))"
            )
        if config.add_cross_attention:
            raise ValueError(
                "cross-attention (add_cross_attention=True) is not supported by bigbird's BigBird classes: use "
                "BigBirdPegasus for encoder-decoder models, or set add_cross_attention=False"
            )
        self.attention_type = check_attention_type(config.attention_type)
        self.embeddings = BigBirdEmbeddings(config)
        self.layers = nn.ModuleList(BigBirdLayer(config, i) for i in range(config.num_hidden_layers))
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word

    def set_attention_type(self, value: str) -> None:
        value = check_attention_type(value)
        if self.config.is_decoder and value == BLOCK_SPARSE:
            raise ValueError("block-sparse attention cannot be causal: a decoder (is_decoder=True) keeps "
                             "attention_type='original_full'")
        self.attention_type = value

    def set_random_plan(self, value: str) -> None:
        value = check_random_plan(value)
        for layer in self.layers:
            layer.attn.random_plan = value

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: tuple[KVCache, ...] | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ):
        """input_ids: (batch, length) or inputs_embeds: (batch, length, hidden); attention_mask: (batch, past +
        length), 1 for tokens and 0 for padding; token_type_ids, position_ids: (batch, length).

        Returns `last_hidden_state` (batch, length, hidden), `pooler_output` (batch, hidden), the decoder's
        `past_key_values`, and per-layer `hidden_states` (embeddings first) / `attentions` (batch, heads, length,
        key_length) when asked for, all cut to the input length (Transformers leaves most of them padded to a
        block multiple); a tuple of the non-None fields when `return_dict=False`.
        """
        config = self.config
        past_length = 0 if not past_key_values else past_key_values[0][0].shape[2]
        batch, length = check_model_inputs(config, input_ids, inputs_embeds, attention_mask, token_type_ids,
                                           position_ids, past_length)
        use_cache = bool(config.is_decoder and (config.use_cache if use_cache is None else use_cache))
        device = input_ids.device if input_ids is not None else inputs_embeds.device
        sparse = (self.attention_type == BLOCK_SPARSE and past_length == 0
                  and sparse_attention_fits(length, config.block_size, config.num_random_blocks))

        if inputs_embeds is None:
            inputs_embeds = self.embeddings.word(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros(batch, length, dtype=torch.long, device=device)
        padding = (-length) % config.block_size if sparse else 0
        if position_ids is None:
            check_length(config, past_length + length, past_length + length + padding)
        if padding:
            pad_ids = torch.full((batch, padding), config.pad_token_id, dtype=torch.long, device=device)
            inputs_embeds = torch.cat([inputs_embeds, self.embeddings.word(pad_ids)], dim=1)
            token_type_ids = F.pad(token_type_ids, (0, padding), value=0)
            if position_ids is not None:
                position_ids = F.pad(position_ids, (0, padding), value=config.pad_token_id)
            if attention_mask is None:
                attention_mask = torch.ones(batch, length, dtype=torch.long, device=device)
            attention_mask = F.pad(attention_mask, (0, padding), value=0)
        if position_ids is None:
            position_ids = torch.arange(past_length, past_length + length + padding, device=device)[None]
        hidden = self.embeddings(inputs_embeds, token_type_ids, position_ids)

        if sparse:
            masks = AttentionMasks(sparse=True, key_padding_mask=attention_mask)
        else:
            masks = full_attention_masks(attention_mask, hidden.dtype, query_length=length,
                                         key_length=past_length + length, causal=config.is_decoder, device=device)

        all_hidden = [hidden] if output_hidden_states else None
        all_probs = [] if output_attentions else None
        presents = [] if use_cache else None
        for i, layer in enumerate(self.layers):
            past = past_key_values[i] if past_key_values else None
            if self.gradient_checkpointing and self.training:
                hidden, probs, present = checkpoint(layer, hidden, masks, past, use_cache, bool(output_attentions),
                                                    use_reentrant=False)
            else:
                hidden, probs, present = layer(hidden, masks, past, use_cache, bool(output_attentions))
            if output_hidden_states:
                all_hidden.append(hidden)
            if output_attentions:
                all_probs.append(probs)
            if use_cache:
                presents.append(present)

        pooled = torch.tanh(self.pooler(hidden[:, 0])) if self.pooler is not None else None
        output = BaseModelOutputWithPoolingAndCrossAttentions(
            last_hidden_state=hidden[:, :length],
            pooler_output=pooled,
            past_key_values=tuple(presents) if use_cache else None,
            hidden_states=tuple(h[:, :length] for h in all_hidden) if output_hidden_states else None,
            attentions=tuple(p[..., :length, : past_length + length] for p in all_probs) if output_attentions
            else None,
        )
        return output if return_dict is not False else output.to_tuple()


def _base_outputs(model: BigBirdPreTrainedModel, **kwargs) -> BaseModelOutputWithPoolingAndCrossAttentions:
    return model.bert(**kwargs, return_dict=True)


class BigBirdLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> vocabulary projection (tied to the word embeddings) + bias."""

    def __init__(self, config: BigBirdConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (..., hidden_size) -> logits (..., vocab_size)."""
        return self.decoder(self.norm(self.act(self.dense(hidden)))) + self.bias


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1).to(logits.device))


class BigBirdForPreTraining(BigBirdPreTrainedModel):
    """Masked-LM and next-sentence heads; loss = MLM loss (+ NSP loss when `next_sentence_label` is given)."""

    def __init__(self, config: BigBirdConfig):
        super().__init__(config)
        self.bert = BigBirdModel(config)
        self.lm_head = BigBirdLMHead(config)
        self.nsp_head = nn.Linear(config.hidden_size, 2)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, next_sentence_label=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        """labels: (batch, length) token ids or -100; next_sentence_label: (batch,) in {0, 1}.
        Returns `prediction_logits` (batch, length, vocab) and `seq_relationship_logits` (batch, 2)."""
        base = _base_outputs(self, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds,
                             output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        prediction_logits = self.lm_head(base.last_hidden_state)
        seq_relationship_logits = self.nsp_head(base.pooler_output)
        loss = None
        if labels is not None:
            loss = _cross_entropy(prediction_logits, labels)
            if next_sentence_label is not None:
                loss = loss + _cross_entropy(seq_relationship_logits, next_sentence_label)
        output = BigBirdForPreTrainingOutput(loss, prediction_logits, seq_relationship_logits, base.hidden_states,
                                             base.attentions)
        return output if return_dict is not False else output.to_tuple()


class BigBirdForMaskedLM(BigBirdPreTrainedModel):
    """The masked-language-model head over every position."""

    def __init__(self, config: BigBirdConfig):
        super().__init__(config)
        self.bert = BigBirdModel(config)
        self.lm_head = BigBirdLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """labels: (batch, length) token ids, -100 where ignored. Returns `logits` (batch, length, vocab)."""
        base = _base_outputs(self, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds,
                             output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.lm_head(base.last_hidden_state)
        loss = _cross_entropy(logits, labels) if labels is not None else None
        output = MaskedLMOutput(loss, logits, base.hidden_states, base.attentions)
        return output if return_dict is not False else output.to_tuple()


class BigBirdForCausalLM(BigBirdPreTrainedModel, GenerationMixin):
    """Left-to-right language model (with `is_decoder=True` and full attention: causal, with a key/value cache).

    `generate()` is Transformers' (see `bigbird.generation`), with its defaults from generation_config.json.
    """

    def __init__(self, config: BigBirdConfig):
        super().__init__(config)
        self.bert = BigBirdModel(config)
        self.lm_head = BigBirdLMHead(config)
        self.generation_config = GenerationConfig.from_model_config(config)
        self._lm_head_half = HalfCopyCache()  # for greedy search, see output_head
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None, output_hidden_states=None,
                return_dict=None):
        """labels: (batch, length), compared with the logits of the previous position (shifted inside).
        Returns `logits` (batch, length, vocab) and `past_key_values` (per layer a (key, value) pair)."""
        base = _base_outputs(self, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds, past_key_values=past_key_values,
                             use_cache=use_cache, output_attentions=output_attentions,
                             output_hidden_states=output_hidden_states)
        logits = self.lm_head(base.last_hidden_state)
        loss = None
        if labels is not None:
            shifted = F.pad(labels.to(logits.device), (0, 1), value=-100)[:, 1:]
            loss = _cross_entropy(logits, shifted)
        output = CausalLMOutputWithCrossAttentions(loss, logits, base.past_key_values, base.hidden_states,
                                                   base.attentions)
        return output if return_dict is not False else output.to_tuple()

    def _decoder_prompt(self, inputs: GenerationInputs,
                        generation_config: GenerationConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sequences' prompt tokens (batch, length), (batch, 0) for a prompt given as inputs_embeds alone, and
        the number of left-padding positions of each row (batch,) when there is an attention_mask; refuses what
        cannot be generated from before any compute."""
        positions = self.config.max_position_embeddings
        if not self.config.is_decoder:
            raise ValueError("generate() needs a causal model, but config.is_decoder is False (every token would "
                             "see the tokens after it): load it with from_pretrained(..., is_decoder=True)")
        prompt, padding = causal_prompt(inputs, self.config.hidden_size, self.get_input_embeddings().weight.dtype)
        length = inputs.inputs_embeds.shape[1] if inputs.inputs_embeds is not None else prompt.shape[1]
        if length >= positions:
            raise ValueError(f"the prompt has {length} tokens but the model has {positions} positions "
                             f"(max_position_embeddings), leaving none to generate: keep at most the last "
                             f"{positions - 1} tokens of the prompt")
        return prompt, padding

    def _decode_step(self, inputs: GenerationInputs, group: int, max_length: int) -> BigBirdCausalDecodeStep:
        attention_mask, prompt_embeds = inputs.repeated_rows(group)
        return BigBirdCausalDecodeStep(self, attention_mask, prompt_embeds)


class BigBirdCausalDecodeStep:
    """Decoding state of one `generate()` call of BigBird's causal LM: the key/value cache, the growing attention
    mask and each row's last position.

    As in Transformers, the prompt's positions count each row's unmasked tokens (cumsum(mask) - 1, 0 at masked
    tokens) and every later token takes the row's last position + 1. The step returns the LM head's transformed
    hidden state (dense, activation, LayerNorm); `head` is its projection on the tied word embeddings plus bias.
    prompt_embeds (rows, length, hidden), when given, are the first call's input instead of its tokens.
    """

    def __init__(self, model: BigBirdForCausalLM, attention_mask: torch.Tensor | None,
                 prompt_embeds: torch.Tensor | None = None) -> None:
        self.model = model
        self.cache: tuple[KVCache, ...] | None = None
        self.attention_mask = attention_mask
        self.prompt_embeds = prompt_embeds
        self.last_position: torch.Tensor | None = None
        self.head = OutputHead(model.lm_head.decoder.weight, model.lm_head.bias, model._lm_head_half)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens (rows, new) -> the transformed hidden state (rows, hidden) of the last one."""
        embeds, self.prompt_embeds = self.prompt_embeds, None
        if self.cache is None:
            prompt_length = tokens.shape[1] if embeds is None else embeds.shape[1]
            positions = self._prompt_positions(tokens.shape[0], prompt_length, tokens.device)
        else:
            positions = self.last_position + torch.arange(1, tokens.shape[1] + 1, device=tokens.device)
            if self.attention_mask is not None:
                self.attention_mask = F.pad(self.attention_mask, (0, tokens.shape[1]), value=1)
        self.last_position = positions[:, -1:]
        outputs = self.model.bert(input_ids=tokens if embeds is None else None, inputs_embeds=embeds,
                                  attention_mask=self.attention_mask, position_ids=positions,
                                  past_key_values=self.cache, use_cache=True, return_dict=True)
        self.cache = outputs.past_key_values
        head = self.model.lm_head
        return head.norm(head.act(head.dense(outputs.last_hidden_state[:, -1])))

    def _prompt_positions(self, rows: int, length: int, device: torch.device) -> torch.Tensor:
        """(rows, length) positions of the prompt."""
        if self.attention_mask is None:
            return torch.arange(length, device=device).expand(rows, length)
        mask = self.attention_mask.long()
        return (mask.cumsum(dim=-1) - 1).masked_fill(mask == 0, 0)

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache = tuple((key[rows], value[rows]) for key, value in self.cache)
        self.last_position = self.last_position[rows]
        if self.attention_mask is not None:
            self.attention_mask = self.attention_mask[rows]


def _classification_loss(config: BigBirdConfig, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Regression (MSE), single-label (cross-entropy) or multi-label (BCE) loss, by `problem_type` or the labels."""
    num_labels = logits.shape[-1]
    problem = config.problem_type
    if problem is None:
        if num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    labels = labels.to(logits.device)
    if problem == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype))
        return F.mse_loss(logits, labels.to(logits.dtype))
    if problem == "single_label_classification":
        return _cross_entropy(logits, labels)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class BigBirdClassificationHead(nn.Module):
    """Token 0 -> dropout -> dense -> activation -> dropout -> out_proj."""

    def __init__(self, config: BigBirdConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.act = get_activation(config.hidden_act)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (batch, length, hidden) -> logits (batch, num_labels)."""
        x = self.act(self.dense(self.dropout(hidden[:, 0])))
        return self.out_proj(self.dropout(x))


class BigBirdForSequenceClassification(BigBirdPreTrainedModel):
    """Sequence classification or regression from token 0 (`num_labels`, `problem_type` in the config)."""

    def __init__(self, config: BigBirdConfig):
        super().__init__(config)
        self.bert = BigBirdModel(config)
        self.classifier = BigBirdClassificationHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """labels: (batch,) class ids, (batch,) or (batch, num_labels) floats. Returns `logits` (batch, num_labels)."""
        base = _base_outputs(self, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds,
                             output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.classifier(base.last_hidden_state)
        loss = _classification_loss(self.config, logits, labels) if labels is not None else None
        output = SequenceClassifierOutput(loss, logits, base.hidden_states, base.attentions)
        return output if return_dict is not False else output.to_tuple()


class BigBirdForMultipleChoice(BigBirdPreTrainedModel):
    """One score per choice from the pooled output; inputs are (batch, num_choices, length)."""

    def __init__(self, config: BigBirdConfig):
        super().__init__(config)
        self.bert = BigBirdModel(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """input_ids etc.: (batch, num_choices, length); labels: (batch,) the right choice.
        Returns `logits` (batch, num_choices)."""
        source = input_ids if input_ids is not None else inputs_embeds
        if source is None or source.dim() < 3:
            raise ValueError("BigBirdForMultipleChoice takes input_ids (batch, num_choices, length) or inputs_embeds "
                             "(batch, num_choices, length, hidden): stack the choices along dimension 1")
        num_choices = source.shape[1]

        def flat(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x.flatten(0, 1)

        base = _base_outputs(self, input_ids=flat(input_ids), attention_mask=flat(attention_mask),
                             token_type_ids=flat(token_type_ids), position_ids=flat(position_ids),
                             inputs_embeds=flat(inputs_embeds), output_attentions=output_attentions,
                             output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(base.pooler_output)).view(-1, num_choices)
        loss = _cross_entropy(logits, labels) if labels is not None else None
        output = MultipleChoiceModelOutput(loss, logits, base.hidden_states, base.attentions)
        return output if return_dict is not False else output.to_tuple()


class BigBirdForTokenClassification(BigBirdPreTrainedModel):
    """A label per token (`num_labels` in the config)."""

    def __init__(self, config: BigBirdConfig):
        super().__init__(config)
        self.bert = BigBirdModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None,
                labels=None, output_attentions=None, output_hidden_states=None, return_dict=None):
        """labels: (batch, length) label ids, -100 where ignored. Returns `logits` (batch, length, num_labels)."""
        base = _base_outputs(self, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds,
                             output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.classifier(self.dropout(base.last_hidden_state))
        loss = _cross_entropy(logits, labels) if labels is not None else None
        output = TokenClassifierOutput(loss, logits, base.hidden_states, base.attentions)
        return output if return_dict is not False else output.to_tuple()


class BigBirdQuestionAnsweringHead(nn.Module):
    """dropout -> BERT feed-forward block (post-norm, residual) -> start/end scores."""

    def __init__(self, config: BigBirdConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.ffn_up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = get_activation(config.hidden_act)
        self.ffn_down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.out = nn.Linear(config.hidden_size, 2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: (batch, length, hidden) -> (batch, length, 2) start and end scores."""
        x = self.dropout(hidden)
        x = self.norm(self.dropout(self.ffn_down(self.act(self.ffn_up(x)))) + hidden)
        return self.out(x)


class BigBirdForQuestionAnswering(BigBirdPreTrainedModel):
    """Answer-span scores; question tokens (after [CLS]) are kept out of the span with -1e6.

    `question_lengths` defaults to the position of the first `sep_token_id` + 1; token types then default to
    0 on the question and 1 on the context. The base model has no pooler unless `add_pooling_layer=True`.
    """

    def __init__(self, config: BigBirdConfig, add_pooling_layer: bool = False):
        super().__init__(config)
        self.bert = BigBirdModel(config, add_pooling_layer=add_pooling_layer)
        self.qa_head = BigBirdQuestionAnsweringHead(config)
        self.post_init()

    def forward(self, input_ids=None, attention_mask=None, question_lengths=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, start_positions=None, end_positions=None,
                output_attentions=None, output_hidden_states=None, return_dict=None):
        """question_lengths: (batch, 1) or (batch,); start_positions, end_positions: (batch,) token indices
        (clamped to the length, which is ignored). Returns `start_logits`, `end_logits` (batch, length)."""
        source = input_ids if input_ids is not None else inputs_embeds
        if question_lengths is None and input_ids is not None:
            question_lengths = (input_ids == self.config.sep_token_id).int().argmax(dim=-1) + 1
        question_mask = None
        if question_lengths is not None and source is not None:
            positions = torch.arange(source.shape[1], device=question_lengths.device)
            question_mask = (positions[None, :] < question_lengths.reshape(-1, 1)).long()
            if token_type_ids is None:
                token_type_ids = 1 - question_mask
            question_mask[:, 0] = 0
        base = _base_outputs(self, input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                             position_ids=position_ids, inputs_embeds=inputs_embeds,
                             output_attentions=output_attentions, output_hidden_states=output_hidden_states)
        logits = self.qa_head(base.last_hidden_state)
        if question_mask is not None:
            logits = logits - question_mask[:, :, None].to(logits.device) * 1e6
        start_logits, end_logits = logits.unbind(dim=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            starts = start_positions.reshape(-1).clamp(0, ignored).to(logits.device)
            ends = end_positions.reshape(-1).clamp(0, ignored).to(logits.device)
            loss = (F.cross_entropy(start_logits, starts, ignore_index=ignored)
                    + F.cross_entropy(end_logits, ends, ignore_index=ignored)) / 2
        output = BigBirdForQuestionAnsweringModelOutput(loss, start_logits.contiguous(), end_logits.contiguous(),
                                                        base.pooler_output, base.hidden_states, base.attentions)
        return output if return_dict is not False else output.to_tuple()
