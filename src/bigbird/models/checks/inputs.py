"""Checks of a forward call's inputs, raised before any compute with the problem and the fix.

Checks of shapes and dtypes run always; checks of values (ids within the vocabulary) read the tensors, so they
run in eager calls only (see `check_range`).
"""

from __future__ import annotations

import torch

ID_DTYPES = (torch.int64, torch.int32)


def check_model_inputs(config, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
                       attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None,
                       position_ids: torch.Tensor | None, past_length: int = 0,
                       dtype: torch.dtype | None = None) -> tuple[int, int]:
    """Validate the inputs of an encoder-style forward call against `config`; returns (batch, length).

    input_ids: (batch, length) or inputs_embeds: (batch, length, hidden_size); attention_mask:
    (batch, past_length + length); token_type_ids, position_ids: (batch, length) (position_ids may have batch 1).
    dtype: the model's floating dtype, which inputs_embeds must not widen.
    """
    for name, value in (("input_ids", input_ids), ("inputs_embeds", inputs_embeds),
                        ("attention_mask", attention_mask), ("token_type_ids", token_type_ids),
                        ("position_ids", position_ids)):
        _check_tensor(name, value)
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    if input_ids is not None:
        _check_ids(input_ids, config)
        batch, length = input_ids.shape
    else:
        _check_embeds(inputs_embeds, config, dtype)
        batch, length = inputs_embeds.shape[:2]
    if length == 0 or batch == 0:
        raise ValueError(f"the input is empty (batch, length) = ({batch}, {length}): pass at least one sequence of "
                         "at least one token")
    total = past_length + length
    if attention_mask is not None and tuple(attention_mask.shape) != (batch, total):
        raise ValueError(
            f"attention_mask must have shape (batch, {'past + ' if past_length else ''}length) = ({batch}, {total}), "
            f"got {tuple(attention_mask.shape)}: pass the tokenizer's attention_mask for the same batch, 1 for tokens "
            "and 0 for padding"
        )
    if token_type_ids is not None:
        if tuple(token_type_ids.shape) != (batch, length):
            raise ValueError(f"token_type_ids must have shape (batch, length) = ({batch}, {length}), "
                             f"got {tuple(token_type_ids.shape)}")
        check_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size",
                     "pass segment ids the model was trained with")
    if position_ids is not None:
        if position_ids.dim() != 2 or position_ids.shape[1] != length or position_ids.shape[0] not in (1, batch):
            raise ValueError(f"position_ids must have shape (batch, length) = ({batch}, {length}), "
                             f"got {tuple(position_ids.shape)}")
        check_range("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings",
                     "truncate the input or renumber the positions")
    return batch, length


def _check_tensor(name: str, value) -> None:
    if value is not None and not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}: pass a tensor, e.g. from the "
                        f"tokenizer with return_tensors=\"pt\", or torch.tensor([...])")


def _check_ids(input_ids: torch.Tensor, config) -> None:
    if input_ids.dtype not in ID_DTYPES:
        raise TypeError(f"input_ids must be integer token ids (torch.long), got {input_ids.dtype}: pass the "
                        f"tokenizer's input_ids, or input_ids.long() (embedded inputs go in inputs_embeds)")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}: add a batch "
                         "dimension with input_ids[None] for a single sequence")
    check_range("input_ids", input_ids, config.vocab_size, "vocab_size",
                 "the tokenizer does not match the model: use the checkpoint's own tokenizer")


def _check_embeds(inputs_embeds: torch.Tensor, config, dtype: torch.dtype | None) -> None:
    if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.hidden_size:
        raise ValueError(f"inputs_embeds must have shape (batch, length, {config.hidden_size}), "
                         f"got {tuple(inputs_embeds.shape)}")
    if not inputs_embeds.dtype.is_floating_point:
        raise TypeError(f"inputs_embeds must be floating point, got {inputs_embeds.dtype}: token ids go in input_ids")
    # A wider dtype would carry the forward out of the model's dtype, and its LayerNorms would fail on it.
    if dtype is not None and torch.promote_types(inputs_embeds.dtype, dtype) != dtype:
        raise TypeError(f"inputs_embeds is {inputs_embeds.dtype} but the model is {dtype}: cast them to the "
                        f"model's dtype with inputs_embeds.to({dtype})")


def check_range(name: str, values: torch.Tensor, limit: int, field: str, fix: str) -> None:
    """Raise when `values` leave [0, limit): in eager calls only, since reading values while torch.compile,
    torch.export or torch.jit trace would break the graph (or fail on tensors that have no values); on
    accelerators the device raises, so that eager calls do not wait for it either."""
    if values.numel() == 0 or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return
    if values.device.type != "cpu":
        torch._assert_async((values >= 0).all() & (values < limit).all(),
                            f"{name} holds a value outside [0, {limit}) ({field} = {limit}): {fix}")
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= limit:
        bad = low if low < 0 else high
        raise ValueError(f"{name} contains {bad}, outside [0, {limit}) ({field} = {limit}): {fix}")


def check_length(config, length: int, padded_length: int) -> None:
    """Raise when the (padded) input needs more positions than the model has."""
    if padded_length > config.max_position_embeddings:
        padded = f" (padded to {padded_length} for block-sparse attention)" if padded_length != length else ""
        longest = config.max_position_embeddings - config.max_position_embeddings % config.block_size
        raise ValueError(
            f"the input has {length} tokens{padded}, more than max_position_embeddings = "
            f"{config.max_position_embeddings}: truncate it (e.g. the tokenizer's truncation=True, "
            f"max_length={longest}) or split the document into windows"
        )
