"""BigBird-Pegasus: the encoder-decoder model and its heads, with Transformers' checkpoints and arguments.

`BigBirdPegasusModel` = shared token embedding -> encoder (block-sparse, see modeling_pegasus_encoder) ->
decoder (full attention with a key/value cache, see modeling_pegasus_decoder). The heads: a language
model (`lm_head` tied to the shared embedding, plus `final_logits_bias`), a sequence classifier (the
decoder state at the last end-of-sequence token), a span extractor, and a decoder-only causal LM.
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import KeyTable
from .config import BigBirdPegasusConfig
from .decoder_attention import DecoderCache, additive_mask
from .generation import GenerationInputs, GenerationMixin, causal_prompt, check_embeddings
from .generation_config import GenerationConfig
from .modeling_pegasus_decoder import PegasusDecoder, ScaledEmbedding
from .modeling_pegasus_encoder import PegasusEncoder, check_encoder_input
from .modeling_utils import PreTrainedModel
from .output_head import HalfCopyCache, OutputHead
from .outputs import (BaseModelOutput, CausalLMOutputWithCrossAttentions, Seq2SeqLMOutput, Seq2SeqModelOutput,
                      Seq2SeqQuestionAnsweringModelOutput, Seq2SeqSequenceClassifierOutput)

_ENCODER_ATTENTION = {"q_proj": "self.query", "k_proj": "self.key", "v_proj": "self.value", "out_proj": "output"}

PEGASUS_KEYS = KeyTable(
    base_prefix="model",
    base=(
        ("shared", "shared"),
        ("encoder.embed_tokens", "encoder.embed_tokens"),
        ("encoder.embed_positions", "encoder.embed_positions"),
        *((f"encoder.layers.{{i}}.self_attn.{ours}", f"encoder.layers.{{i}}.self_attn.{theirs}")
          for ours, theirs in _ENCODER_ATTENTION.items()),
        *((f"encoder.layers.{{i}}.{name}", f"encoder.layers.{{i}}.{name}")
          for name in ("self_attn_layer_norm", "final_layer_norm", "fc1", "fc2")),
        ("encoder.layernorm_embedding", "encoder.layernorm_embedding"),
        ("decoder.embed_tokens", "decoder.embed_tokens"),
        ("decoder.embed_positions", "decoder.embed_positions"),
        ("decoder.layers", "decoder.layers"),
        ("decoder.layernorm_embedding", "decoder.layernorm_embedding"),
    ),
    heads=(
        ("lm_head", "lm_head"),
        ("final_logits_bias", "final_logits_bias"),
        ("classification_head", "classification_head"),
        ("qa_outputs", "qa_outputs"),
    ),
    ignored=(),
)


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs for `labels` (batch, length): the start token, then labels[:, :-1] with -100 -> pad."""
    shifted = torch.cat([torch.full_like(labels[:, :1], decoder_start_token_id), labels[:, :-1]], dim=1)
    return shifted.masked_fill(shifted == -100, pad_token_id)


def decoder_start_token(config: BigBirdPegasusConfig, generation_config: GenerationConfig | None = None) -> int:
    """The decoder's first token (Transformers falls back to the beginning-of-sequence token)."""
    for source in (generation_config, config):
        if source is None:
            continue
        for name in ("decoder_start_token_id", "bos_token_id"):
            if getattr(source, name, None) is not None:
                return getattr(source, name)
    raise ValueError(
        "the config has neither decoder_start_token_id nor bos_token_id, so the decoder has no first token: set "
        "config.decoder_start_token_id (Pegasus checkpoints use the pad token, 0) or pass decoder_input_ids"
    )


class BigBirdPegasusPreTrainedModel(PreTrainedModel):
    config_class = BigBirdPegasusConfig
    key_table = PEGASUS_KEYS
    init_std_field = "init_std"


class BigBirdPegasusModel(BigBirdPegasusPreTrainedModel):
    """The encoder-decoder without a head."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__(config)
        self.shared = ScaledEmbedding(config)
        self.encoder = PegasusEncoder(config, self.shared)
        self.decoder = PegasusDecoder(config, self.shared)
        self.post_init()

    def get_input_embeddings(self) -> ScaledEmbedding:
        return self.shared

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: DecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> Seq2SeqModelOutput:
        """input_ids / attention_mask (batch, source_length): the encoder input; decoder_input_ids /
        decoder_attention_mask (batch, target_length), by default input_ids shifted right. `encoder_outputs`
        skips the encoder; `past_key_values` (a `DecoderCache`) continues a decoding.

        Returns `last_hidden_state` (batch, target_length, d_model), `encoder_last_hidden_state`
        (batch, source_length, d_model) and, with `use_cache` (default: config.use_cache), `past_key_values`.
        """
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("pass decoder_input_ids (or decoder_inputs_embeds), or input_ids to shift right")
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id,
                                                   decoder_start_token(self.config))
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids, attention_mask, inputs_embeds, output_attentions,
                                           output_hidden_states)
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        decoder_outputs = self.decoder(
            decoder_input_ids, decoder_attention_mask, encoder_outputs.last_hidden_state, attention_mask,
            past_key_values, decoder_inputs_embeds, use_cache, output_attentions, output_hidden_states,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            past_key_values=decoder_outputs.past_key_values,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


class BigBirdPegasusForConditionalGeneration(BigBirdPegasusPreTrainedModel, GenerationMixin):
    """Summarisation model: logits = decoder state @ shared embedding^T + final_logits_bias."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__(config)
        self.model = BigBirdPegasusModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size))
        self.generation_config = GenerationConfig.from_model_config(config)
        self._lm_head_half = HalfCopyCache()  # for greedy search, see output_head
        self.post_init()

    def get_input_embeddings(self) -> ScaledEmbedding:
        return self.model.shared

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if module is self:
            self.final_logits_bias.zero_()

    def get_encoder(self) -> PegasusEncoder:
        return self.model.encoder

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: DecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> Seq2SeqLMOutput:
        """As `BigBirdPegasusModel.forward`; `labels` (batch, target_length), -100 where ignored, give the
        cross-entropy `loss` and (unless given) decoder_input_ids = labels shifted right.
        Returns `logits` (batch, target_length, vocab)."""
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                       decoder_start_token(self.config))
        outputs = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
                             past_key_values, inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions,
                             output_hidden_states)
        logits = self.lm_head(outputs.last_hidden_state) + self.final_logits_bias
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1))
        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict else output.to_tuple()

    def _decoder_prompt(self, inputs: GenerationInputs,
                        generation_config: GenerationConfig) -> tuple[torch.Tensor, None]:
        """The decoder's first tokens (batch, prompt_length): the start token (the call's, else the model's), then
        decoder_input_ids if given. The encoder input is input_ids (batch, length) or inputs_embeds (batch, length,
        d_model), or its precomputed output encoder_hidden (batch, source_length, d_model) is given."""
        source = self._encoder_source(inputs)
        start = decoder_start_token(self.config, generation_config)
        first = torch.full((source.shape[0], 1), start, dtype=torch.long, device=source.device)
        decoder_input_ids = inputs.decoder_input_ids
        if decoder_input_ids is None:
            return first, None
        if bool((decoder_input_ids[:, 0] != start).all()):
            decoder_input_ids = torch.cat([first, decoder_input_ids], dim=1)
        return decoder_input_ids, None

    def _encoder_source(self, inputs: GenerationInputs) -> torch.Tensor:
        """The precomputed encoder output, else the encoder input, after checking them; a ValueError names the
        problem."""
        if inputs.input_ids is not None and inputs.inputs_embeds is not None:
            raise ValueError("generate() takes the encoder input as input_ids or as inputs_embeds, not both: pass "
                             "exactly one of them")
        if inputs.encoder_hidden is not None:
            self._check_encoder_hidden(inputs)
            return inputs.encoder_hidden
        if inputs.inputs_embeds is None:
            check_encoder_input(inputs.input_ids, inputs.attention_mask, self.config)
            return inputs.input_ids
        self._check_inputs_embeds(inputs.inputs_embeds, inputs.attention_mask)
        return inputs.inputs_embeds

    def _check_inputs_embeds(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor | None) -> None:
        """Raise a ValueError naming the problem when the encoder cannot take these embeddings."""
        width = self.config.d_model
        check_embeddings(inputs_embeds, "inputs_embeds", f"(batch, length, d_model={width})", width,
                         self.model.shared.weight.dtype)
        check_encoder_input(inputs_embeds[..., 0], attention_mask, self.config)

    def _check_encoder_hidden(self, inputs: GenerationInputs) -> None:
        """Raise a ValueError naming the problem unless encoder_hidden can stand for this model's encoder output on
        the call's batch (that of input_ids or inputs_embeds, when given too) with its attention_mask."""
        hidden, mask, width = inputs.encoder_hidden, inputs.attention_mask, self.config.d_model
        shape = f"(batch, source_length, d_model={width})"
        check_embeddings(hidden, "encoder_outputs.last_hidden_state", shape, width, self.model.shared.weight.dtype)
        if 0 in hidden.shape[:2]:
            raise ValueError(f"encoder_outputs.last_hidden_state must be a non-empty {shape}, got "
                             f"{tuple(hidden.shape)}: pass this model's encoder output of the inputs")
        if mask is not None and tuple(mask.shape) != tuple(hidden.shape[:2]):
            raise ValueError(f"attention_mask has shape {tuple(mask.shape)} but encoder_outputs.last_hidden_state "
                             f"covers (batch, source_length) = {tuple(hidden.shape[:2])}: pass the encoder input's "
                             "attention_mask")
        given = inputs.input_ids if inputs.input_ids is not None else inputs.inputs_embeds
        if given is not None and given.shape[0] != hidden.shape[0]:
            name = "input_ids" if inputs.input_ids is not None else "inputs_embeds"
            raise ValueError(f"{name} holds {given.shape[0]} input(s) but encoder_outputs {hidden.shape[0]}: pass the "
                             f"encoder output of these inputs, or encoder_outputs without {name}")

    def _decode_step(self, inputs: GenerationInputs, group: int, max_length: int) -> Seq2SeqDecodeStep:
        encoder_hidden = inputs.encoder_hidden
        if encoder_hidden is None:
            encoder_hidden = self.model.encoder(inputs.input_ids, inputs.attention_mask,
                                                inputs.inputs_embeds).last_hidden_state
        return Seq2SeqDecodeStep(self, encoder_hidden, inputs.attention_mask, group, max_length)


class Seq2SeqDecodeStep:
    """Decoding state of one `generate()` call of the encoder-decoder: cache plus encoder output and mask."""

    def __init__(self, model: BigBirdPegasusForConditionalGeneration, encoder_hidden: torch.Tensor,
                 attention_mask: torch.Tensor | None, group: int, max_length: int) -> None:
        self.model = model
        self.encoder_hidden = encoder_hidden
        self.cross_mask = None
        if attention_mask is not None:
            self.cross_mask = additive_mask(attention_mask.bool()[:, None, None, :], encoder_hidden.dtype)
        self.cache = DecoderCache(model.config.decoder_layers, capacity=max_length, group=group)
        self.head = OutputHead(model.lm_head.weight, model.final_logits_bias[0], model._lm_head_half)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.model.model.decoder.decode(tokens, self.encoder_hidden, self.cross_mask, self.cache)
        self.encoder_hidden = None  # the cache now holds the cross-attention keys and values
        return hidden[:, -1]

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder(rows)


class BigBirdPegasusClassificationHead(nn.Module):
    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(config.d_model, config.num_labels)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = torch.tanh(self.dense(self.dropout(hidden)))
        return self.out_proj(self.dropout(hidden))


class BigBirdPegasusForSequenceClassification(BigBirdPegasusPreTrainedModel):
    """Classifier on the decoder state at each input's last end-of-sequence token."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__(config)
        self.model = BigBirdPegasusModel(config)
        self.classification_head = BigBirdPegasusClassificationHead(config)
        self.post_init()

    def get_input_embeddings(self) -> ScaledEmbedding:
        return self.model.shared

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> Seq2SeqSequenceClassifierOutput:
        """input_ids (batch, length) must hold the same number (>= 1) of `eos_token_id` in every row; the decoder
        state at the last one is classified. Returns `logits` (batch, num_labels) and, with `labels`, the loss
        of `config.problem_type` (inferred as Transformers does when unset)."""
        if input_ids is None:
            raise ValueError("BigBirdPegasusForSequenceClassification needs input_ids: it finds the eos tokens there")
        eos = input_ids.eq(self.config.eos_token_id)
        counts = eos.sum(dim=1)
        if bool((counts == 0).any()) or bool((counts != counts[0]).any()):
            raise ValueError(
                f"every input must hold the same number (at least one) of eos tokens (id {self.config.eos_token_id});"
                f" found {counts.tolist()}: end each input with the eos token"
            )
        if labels is not None:
            use_cache = False
        outputs = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
                             None, inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions,
                             output_hidden_states)
        hidden = outputs.last_hidden_state
        if hidden.shape[1] != input_ids.shape[1]:
            raise ValueError(
                f"the decoder input has {hidden.shape[1]} tokens but input_ids has {input_ids.shape[1]}: the eos "
                "positions are read from input_ids, so leave decoder_input_ids unset (input_ids shifted right)"
            )
        sentence = hidden[eos].view(hidden.shape[0], -1, hidden.shape[-1])[:, -1]
        logits = self.classification_head(sentence)
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        output = Seq2SeqSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict else output.to_tuple()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config: BigBirdPegasusConfig) -> torch.Tensor:
    """Regression (MSE), single-label (cross-entropy) or multi-label (BCE) loss, as `problem_type` says."""
    problem = config.problem_type
    if problem is None:
        if config.num_labels == 1:
            problem = "regression"
        elif labels.dtype in (torch.long, torch.int):
            problem = "single_label_classification"
        else:
            problem = "multi_label_classification"
    if problem == "regression":
        return F.mse_loss(logits.squeeze(), labels.squeeze().to(logits.dtype)) if config.num_labels == 1 \
            else F.mse_loss(logits, labels.to(logits.dtype))
    if problem == "single_label_classification":
        return F.cross_entropy(logits.view(-1, config.num_labels), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


class BigBirdPegasusForQuestionAnswering(BigBirdPegasusPreTrainedModel):
    """Span extraction: start and end logits from the decoder states."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        config.num_labels = 2
        super().__init__(config)
        self.model = BigBirdPegasusModel(config)
        self.qa_outputs = nn.Linear(config.d_model, 2)
        self.post_init()

    def get_input_embeddings(self) -> ScaledEmbedding:
        return self.model.shared

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> Seq2SeqQuestionAnsweringModelOutput:
        """Returns `start_logits` and `end_logits` (batch, target_length); with start/end_positions (batch,) the
        loss (positions outside the input are ignored)."""
        if start_positions is not None and end_positions is not None:
            use_cache = False
        outputs = self.model(input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
                             None, inputs_embeds, decoder_inputs_embeds, use_cache, output_attentions,
                             output_hidden_states)
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).unbind(dim=-1)
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.shape[1]
            start = start_positions.view(-1).clamp(0, ignored)
            end = end_positions.view(-1).clamp(0, ignored)
            loss = (F.cross_entropy(start_logits, start, ignore_index=ignored)
                    + F.cross_entropy(end_logits, end, ignore_index=ignored)) / 2
        output = Seq2SeqQuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits.contiguous(),
            end_logits=end_logits.contiguous(),
            past_key_values=outputs.past_key_values,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )
        return output if return_dict else output.to_tuple()


class DecoderWrapper(nn.Module):
    """Holds the causal LM's decoder under `model.decoder`, where Transformers' checkpoints have it."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        super().__init__()
        self.decoder = PegasusDecoder(config, ScaledEmbedding(config))


class BigBirdPegasusForCausalLM(BigBirdPegasusPreTrainedModel, GenerationMixin):
    """The decoder alone as a language model (optionally attending `encoder_hidden_states`)."""

    def __init__(self, config: BigBirdPegasusConfig) -> None:
        config.is_decoder = True
        config.is_encoder_decoder = False
        super().__init__(config)
        self.model = DecoderWrapper(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.generation_config = GenerationConfig.from_model_config(config)
        self._lm_head_half = HalfCopyCache()  # for greedy search, see output_head
        self.post_init()

    def get_input_embeddings(self) -> ScaledEmbedding:
        return self.model.decoder.embed_tokens

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def tie_weights(self) -> None:
        """Nothing to tie: Transformers' causal LM keeps `lm_head` separate from the token embedding."""

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: DecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = True,
    ) -> CausalLMOutputWithCrossAttentions:
        """input_ids (batch, new) after the `past_key_values` tokens; attention_mask (batch, past + new).
        `labels` (batch, new) are NOT shifted (labels[:, i] is the target of logits[:, i]), as in Transformers.
        Returns `logits` (batch, new, vocab)."""
        use_cache = self.config.use_cache if use_cache is None else use_cache
        outputs = self.model.decoder(input_ids, attention_mask, encoder_hidden_states, encoder_attention_mask,
                                     past_key_values, inputs_embeds, use_cache, output_attentions,
                                     output_hidden_states)
        logits = self.lm_head(outputs.last_hidden_state)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1))
        output = CausalLMOutputWithCrossAttentions(
            loss=loss,
            logits=logits,
            past_key_values=outputs.past_key_values,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            cross_attentions=outputs.cross_attentions,
        )
        return output if return_dict else output.to_tuple()

    def _decoder_prompt(self, inputs: GenerationInputs,
                        generation_config: GenerationConfig) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The sequences' prompt tokens (batch, length), (batch, 0) for a prompt given as inputs_embeds alone, and
        the number of left-padding positions of each row (batch,) when there is an attention_mask."""
        return causal_prompt(inputs, self.config.d_model, self.get_input_embeddings().weight.dtype)

    def _decode_step(self, inputs: GenerationInputs, group: int, max_length: int) -> CausalDecodeStep:
        attention_mask, prompt_embeds = inputs.repeated_rows(group)
        return CausalDecodeStep(self, attention_mask, max_length, prompt_embeds)


class CausalDecodeStep:
    """Decoding state of one `generate()` call of the causal LM: the cache and the growing attention mask.

    prompt_embeds (rows, length, d_model), when given, are the first call's input instead of its tokens.
    """

    def __init__(self, model: BigBirdPegasusForCausalLM, attention_mask: torch.Tensor | None, max_length: int,
                 prompt_embeds: torch.Tensor | None = None) -> None:
        self.model = model
        self.cache = DecoderCache(model.config.decoder_layers, capacity=max_length)
        self.attention_mask = attention_mask
        self.prompt_embeds = prompt_embeds
        self.head = OutputHead(model.lm_head.weight, None, model._lm_head_half)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.attention_mask is not None and self.cache.get_seq_length() > 0:
            self.attention_mask = F.pad(self.attention_mask, (0, tokens.shape[1]), value=1)
        decoder = self.model.model.decoder
        if self.prompt_embeds is None:
            return decoder.decode(tokens, None, None, self.cache, self.attention_mask)[:, -1]
        embeds, self.prompt_embeds = self.prompt_embeds, None
        return decoder(attention_mask=self.attention_mask, past_key_values=self.cache, inputs_embeds=embeds,
                       use_cache=True).last_hidden_state[:, -1]

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder(rows)
