"""Model outputs: dataclasses with Transformers' attribute names that also index like tuples.

`output.logits`, `output["logits"]` and `output[0]` all work; as in Transformers, fields that are None
are skipped by tuple indexing, iteration and `to_tuple()` (so `output[0]` is the loss when a loss was
computed and the logits otherwise).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import torch

Tensor = torch.Tensor
Tensors = tuple[torch.Tensor, ...]


@dataclasses.dataclass
class ModelOutput:
    """Base of every output: attribute, key and tuple access over the fields that are not None."""

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(value for _, value in self.items())

    def keys(self) -> list[str]:
        return [name for name, _ in self.items()]

    def values(self) -> list[Any]:
        return [value for _, value in self.items()]

    def items(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name) is not None]

    def __getitem__(self, key: int | slice | str) -> Any:
        if isinstance(key, str):
            value = getattr(self, key, None) if key in {f.name for f in dataclasses.fields(self)} else None
            if value is None:
                raise KeyError(f"{type(self).__name__} has no (non-None) field {key!r}; it has {self.keys()}")
            return value
        return self.to_tuple()[key]

    def __contains__(self, key: str) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.to_tuple())

    def __len__(self) -> int:
        return len(self.to_tuple())


@dataclasses.dataclass
class BaseModelOutputWithPoolingAndCrossAttentions(ModelOutput):
    """`last_hidden_state` (batch, length, hidden); `pooler_output` (batch, hidden) when the model has a pooler;
    `past_key_values` the decoder's cache; `hidden_states` / `attentions` per layer when asked for."""

    last_hidden_state: Tensor | None = None
    pooler_output: Tensor | None = None
    past_key_values: Any = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None
    cross_attentions: Tensors | None = None


@dataclasses.dataclass
class BigBirdForPreTrainingOutput(ModelOutput):
    """`prediction_logits` (batch, length, vocab); `seq_relationship_logits` (batch, 2)."""

    loss: Tensor | None = None
    prediction_logits: Tensor | None = None
    seq_relationship_logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class MaskedLMOutput(ModelOutput):
    """`logits` (batch, length, vocab)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class CausalLMOutputWithCrossAttentions(ModelOutput):
    """`logits` (batch, length, vocab); `past_key_values` the cache to pass to the next step."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    past_key_values: Any = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None
    cross_attentions: Tensors | None = None


@dataclasses.dataclass
class SequenceClassifierOutput(ModelOutput):
    """`logits` (batch, num_labels)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class MultipleChoiceModelOutput(ModelOutput):
    """`logits` (batch, num_choices)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class TokenClassifierOutput(ModelOutput):
    """`logits` (batch, length, num_labels)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class BigBirdForQuestionAnsweringModelOutput(ModelOutput):
    """`start_logits`, `end_logits` (batch, length); `pooler_output` when the model has a pooler."""

    loss: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    pooler_output: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    """`start_logits`, `end_logits` (batch, length)."""

    loss: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class BaseModelOutput(ModelOutput):
    """An encoder's output: `last_hidden_state` (batch, length, hidden)."""

    last_hidden_state: Tensor | None = None
    hidden_states: Tensors | None = None
    attentions: Tensors | None = None


@dataclasses.dataclass
class Seq2SeqModelOutput(ModelOutput):
    """Encoder-decoder output: the decoder's `last_hidden_state` (batch, target_length, hidden) and the encoder's."""

    last_hidden_state: Tensor | None = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors | None = None
    decoder_attentions: Tensors | None = None
    cross_attentions: Tensors | None = None
    encoder_last_hidden_state: Tensor | None = None
    encoder_hidden_states: Tensors | None = None
    encoder_attentions: Tensors | None = None


@dataclasses.dataclass
class Seq2SeqLMOutput(ModelOutput):
    """Encoder-decoder language model output: `logits` (batch, target_length, vocab)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors | None = None
    decoder_attentions: Tensors | None = None
    cross_attentions: Tensors | None = None
    encoder_last_hidden_state: Tensor | None = None
    encoder_hidden_states: Tensors | None = None
    encoder_attentions: Tensors | None = None


@dataclasses.dataclass
class Seq2SeqSequenceClassifierOutput(ModelOutput):
    """Encoder-decoder classification output: `logits` (batch, num_labels)."""

    loss: Tensor | None = None
    logits: Tensor | None = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors | None = None
    decoder_attentions: Tensors | None = None
    cross_attentions: Tensors | None = None
    encoder_last_hidden_state: Tensor | None = None
    encoder_hidden_states: Tensors | None = None
    encoder_attentions: Tensors | None = None


@dataclasses.dataclass
class Seq2SeqQuestionAnsweringModelOutput(ModelOutput):
    """Encoder-decoder span output: `start_logits`, `end_logits` (batch, length)."""

    loss: Tensor | None = None
    start_logits: Tensor | None = None
    end_logits: Tensor | None = None
    past_key_values: Any = None
    decoder_hidden_states: Tensors | None = None
    decoder_attentions: Tensors | None = None
    cross_attentions: Tensors | None = None
    encoder_last_hidden_state: Tensor | None = None
    encoder_hidden_states: Tensors | None = None
    encoder_attentions: Tensors | None = None
