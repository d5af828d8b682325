"""Checks of a forward call's inputs, raised before any compute with the problem and the fix."""

from __future__ import annotations

import torch


def check_model_inputs(config, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None,
                       attention_mask: torch.Tensor | None, token_type_ids: torch.Tensor | None,
                       position_ids: torch.Tensor | None, past_length: int = 0) -> tuple[int, int]:
    """Validate the inputs of an encoder-style forward call against `config`; returns (batch, length).

    input_ids: (batch, length) or inputs_embeds: (batch, length, hidden_size); attention_mask:
    (batch, past_length + length); token_type_ids, position_ids: (batch, length) (position_ids may have batch 1).
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("pass exactly one of input_ids and inputs_embeds")
    if input_ids is not None:
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must have shape (batch, length), got {tuple(input_ids.shape)}: add a batch "
                             "dimension with input_ids[None] for a single sequence")
        _check_range("input_ids", input_ids, config.vocab_size, "vocab_size",
                      "the tokenizer does not match the model: use the checkpoint's own tokenizer")
        batch, length = input_ids.shape
    else:
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != config.hidden_size:
            raise ValueError(f"inputs_embeds must have shape (batch, length, {config.hidden_size}), "
                             f"got {tuple(inputs_embeds.shape)}")
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
        _check_range("token_type_ids", token_type_ids, config.type_vocab_size, "type_vocab_size",
                     "pass segment ids the model was trained with")
    if position_ids is not None:
        if position_ids.dim() != 2 or position_ids.shape[1] != length or position_ids.shape[0] not in (1, batch):
            raise ValueError(f"position_ids must have shape (batch, length) = ({batch}, {length}), "
                             f"got {tuple(position_ids.shape)}")
        _check_range("position_ids", position_ids, config.max_position_embeddings, "max_position_embeddings",
                     "truncate the input or renumber the positions")
    return batch, length


def _check_range(name: str, values: torch.Tensor, limit: int, field: str, fix: str) -> None:
    if values.numel() == 0:
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
