"""Training targets checked before a head's forward computes anything, with what is wrong and what to do.

The heads' forwards (and losses) are Transformers'; given a label outside the classes they fail deep inside the
loss (`IndexError: Target 5 is out of bounds`), given labels of another batch with a shape error that names
neither. `checked_forward` wraps a head's forward with the checks of `label_check` while keeping its signature
(Trainer and PEFT read it). Shapes are checked always; values only in eager calls (see `inputs.check_range`).
"""

from __future__ import annotations

import functools
import inspect

import torch
from transformers.models.big_bird import modeling_big_bird as bb
from transformers.models.bigbird_pegasus import modeling_bigbird_pegasus as pg

from .inputs import check_range

IGNORE_INDEX = -100  # the label that CrossEntropyLoss leaves out
_SAME_BATCH = "pass the labels of the same batch as the inputs"
_CLASSES = "use class indices 0 .. num_labels - 1, or load the model with num_labels = the number of classes"


def _inputs_shape(inputs: dict) -> tuple[int, ...] | None:
    """(batch, length) of the token inputs ((batch, choices, length) for multiple choice), or None if unknown."""
    if isinstance(inputs.get("input_ids"), torch.Tensor):
        return tuple(inputs["input_ids"].shape)
    if isinstance(inputs.get("inputs_embeds"), torch.Tensor):
        return tuple(inputs["inputs_embeds"].shape[:-1])
    return None


def _ids(name: str, values, limit: int, field: str, fix: str, ignore: bool = True) -> torch.Tensor:
    """`values` as a checked tensor of integer class or token ids in [0, limit) (or IGNORE_INDEX, if `ignore`)."""
    if not isinstance(values, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(values).__name__}: pass torch.tensor([...])")
    if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
        raise TypeError(f"{name} must be integer ids (torch.long), got {values.dtype}: pass {name}.long()")
    if ignore:
        fix = f"{fix} ({IGNORE_INDEX} leaves an entry out of the loss)"
    check_range(name, values.masked_fill(values == IGNORE_INDEX, 0) if ignore else values, limit, field, fix)
    return values


def _one_per_sequence(name: str, values: torch.Tensor, shape) -> None:
    if shape is not None and values.reshape(-1).shape[0] != shape[0]:
        raise ValueError(f"{name} must hold one value per sequence, shape ({shape[0]},), got {tuple(values.shape)}: "
                         f"{_SAME_BATCH}")


def _same_shape(name: str, values: torch.Tensor, shape) -> None:
    if shape is not None and tuple(values.shape) != shape:
        raise ValueError(f"{name} must have the shape of the input ids (batch, length) = {shape}, got "
                         f"{tuple(values.shape)}: {_SAME_BATCH}")


def _token_labels(model, inputs: dict) -> None:
    """Masked and causal LMs: one token id (or IGNORE_INDEX) per input token."""
    if inputs.get("labels") is not None:
        vocab = model.config.vocab_size
        labels = _ids("labels", inputs["labels"], vocab, "vocab_size", "use token ids of the model's tokenizer")
        _same_shape("labels", labels, _inputs_shape(inputs))


def _pretraining_labels(model, inputs: dict) -> None:
    _token_labels(model, inputs)
    if inputs.get("next_sentence_label") is not None:
        label = _ids("next_sentence_label", inputs["next_sentence_label"], 2, "next-sentence classes",
                     "use 0 (the second sentence follows the first) or 1 (a random sentence)")
        _one_per_sequence("next_sentence_label", label, _inputs_shape(inputs))


def _summary_labels(model, inputs: dict) -> None:
    """Sequence-to-sequence: target token ids of any length, one row per input sequence."""
    if inputs.get("labels") is not None:
        labels = _ids("labels", inputs["labels"], model.config.vocab_size, "vocab_size",
                      "use token ids of the model's tokenizer")
        shape = _inputs_shape(inputs)
        if shape is not None and (labels.dim() != 2 or labels.shape[0] != shape[0]):
            raise ValueError(f"labels must have shape (batch, target length) with batch = {shape[0]}, got "
                             f"{tuple(labels.shape)}: {_SAME_BATCH}")


def _class_labels(model, inputs: dict) -> None:
    """Sequence classification, in each of Transformers' problem types (inferred from the labels as it does)."""
    labels, config, shape = inputs.get("labels"), model.config, _inputs_shape(inputs)
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels must be a torch.Tensor, got {type(labels).__name__}: pass torch.tensor([...])")
    problem = config.problem_type or ("regression" if config.num_labels == 1 else "single_label_classification"
                                      if labels.dtype in (torch.long, torch.int) else "multi_label_classification")
    if problem == "single_label_classification":
        _ids("labels", labels, config.num_labels, "num_labels", _CLASSES)
        _one_per_sequence("labels", labels, shape)
    elif shape is not None and (labels.dim() == 0 or labels.shape[0] != shape[0]
                                or labels.numel() != shape[0] * config.num_labels):
        per_row = "one value" if problem == "regression" else "one 0/1 column per class"
        raise ValueError(f"labels must hold {per_row} per sequence for {problem}, ({shape[0]}, {config.num_labels})"
                         f" values in all, got {tuple(labels.shape)}: {_SAME_BATCH}")


def _token_class_labels(model, inputs: dict) -> None:
    if inputs.get("labels") is not None:
        labels = _ids("labels", inputs["labels"], model.config.num_labels, "num_labels", _CLASSES)
        _same_shape("labels", labels, _inputs_shape(inputs))


def _choice_labels(model, inputs: dict) -> None:
    shape = _inputs_shape(inputs)
    if inputs.get("labels") is not None and shape is not None and len(shape) == 3:
        labels = _ids("labels", inputs["labels"], shape[1], "the number of choices", "use the index of a choice")
        _one_per_sequence("labels", labels, shape)


def _span_labels(model, inputs: dict) -> None:
    """Question answering: start and end positions come together, one of each per sequence (positions past the end
    are left out of the loss by design)."""
    given = [name for name in ("start_positions", "end_positions") if inputs.get(name) is not None]
    if len(given) == 1:
        raise ValueError(f"only {given[0]} was given: pass both start_positions and end_positions to compute the "
                         "loss, or neither")
    for name in given:
        values = _ids(name, inputs[name], torch.iinfo(torch.long).max, "positions", "use token positions",
                      ignore=False)
        _one_per_sequence(name, values, _inputs_shape(inputs))


_CHECKS = {
    bb.BigBirdForPreTraining: _pretraining_labels,
    bb.BigBirdForMaskedLM: _token_labels,
    bb.BigBirdForCausalLM: _token_labels,
    bb.BigBirdForSequenceClassification: _class_labels,
    bb.BigBirdForMultipleChoice: _choice_labels,
    bb.BigBirdForTokenClassification: _token_class_labels,
    bb.BigBirdForQuestionAnswering: _span_labels,
    pg.BigBirdPegasusForConditionalGeneration: _summary_labels,
    pg.BigBirdPegasusForSequenceClassification: _class_labels,
    pg.BigBirdPegasusForQuestionAnswering: _span_labels,
    pg.BigBirdPegasusForCausalLM: _token_labels,
}


def label_check(cls: type):
    """The check of `cls`'s training targets (a function of (model, named inputs)), or None for a class without."""
    return next((check for head, check in _CHECKS.items() if issubclass(cls, head)), None)


def checked_forward(forward, check):
    """`forward` that first runs `check(model, inputs by name)`; the same signature as `forward`."""
    names = list(inspect.signature(forward).parameters)[1:]

    @functools.wraps(forward)
    def forward_with_checks(self, *args, **kwargs):
        check(self, {**dict(zip(names, args)), **kwargs})
        return forward(self, *args, **kwargs)

    forward_with_checks.checks_labels = True
    return forward_with_checks
