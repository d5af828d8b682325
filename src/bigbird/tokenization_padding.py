"""`pad`: padding already-tokenized inputs, as Transformers' `tokenizer.pad` does (data collators call it).

The inputs are one encoding (a dict of id lists), a batch as a dict of lists of id lists, or a list of such dicts
(what a `DataLoader` hands a collate function). Only `input_ids`, `attention_mask`, `token_type_ids` and
`special_tokens_mask` are padded; other keys (`labels`, `offset_mapping`, ...) pass through unchanged. Unlike
Transformers, an `attention_mask` the inputs carry is padded even when `return_attention_mask=False`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .tokenization_inputs import padding_and_truncation
from .tokenization_outputs import BatchEncoding, is_tensor_or_array


def _as_dict_of_lists(encoded_inputs: Any) -> dict[str, Any]:
    if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
        keys = list(encoded_inputs[0].keys())
        try:
            return {key: [example[key] for example in encoded_inputs] for key in keys}
        except KeyError as error:
            raise ValueError(f"`encoded_inputs`: every example must have the keys of the first, {error} is missing")
    if isinstance(encoded_inputs, Mapping):
        return dict(encoded_inputs)
    raise TypeError(
        "`encoded_inputs` must be a dict of token id lists, a BatchEncoding, or a list of them, "
        f"not {type(encoded_inputs).__name__}"
    )


def _first_id(rows: Any) -> Any:
    """The first element of a sequence, looking into the first non-empty row of a batch."""
    first = rows[0]
    if isinstance(first, (list, tuple)):
        return next((row[0] for row in rows if len(row)), first)
    return first


def _to_lists(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_to_lists(item) for item in value]
    return value


def pad_encoded(
    tokenizer,
    encoded_inputs: Any,
    padding: bool | str,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    padding_side: str | None,
    return_attention_mask: bool | None,
    return_tensors: str | None,
) -> BatchEncoding:
    """Pad `encoded_inputs` with `tokenizer`'s pad token on its padding side; see `SentencePieceTokenizer.pad`."""
    data = _as_dict_of_lists(encoded_inputs)
    main = tokenizer.model_input_names[0]
    if main not in data:
        raise ValueError(f"`encoded_inputs` must include {main!r}; it has {list(data)}")
    if return_attention_mask is None:
        return_attention_mask = "attention_mask" in tokenizer.model_input_names
    if data[main] is None or len(data[main]) == 0:
        if return_attention_mask:
            data["attention_mask"] = []
        return BatchEncoding(data)

    first = _first_id(data[main])
    if is_tensor_or_array(first):
        if return_tensors is None:
            return_tensors = "np" if type(first).__module__ == "numpy" else "pt"
        data = {key: _to_lists(value) for key, value in data.items()}
    elif not isinstance(first, (int, list, tuple)):
        raise TypeError(f"`encoded_inputs[{main!r}]` must hold ints, lists, tensors or arrays, not {type(first)}")

    pad, _, max_length = padding_and_truncation(
        padding, None, max_length, pad_to_multiple_of, tokenizer.model_max_length, tokenizer.pad_token_id
    )
    side = padding_side or tokenizer.padding_side
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', not {side!r}")
    fills = {main: tokenizer.pad_token_id, "token_type_ids": tokenizer.pad_token_type_id, "special_tokens_mask": 1,
             "attention_mask": 0}  # fmt: skip
    rows = data[main]
    batched = isinstance(rows[0], (list, tuple))
    if return_attention_mask and "attention_mask" not in data:
        data["attention_mask"] = [[1] * len(row) for row in rows] if batched else [1] * len(rows)
    if pad is None:
        return BatchEncoding(data, tensor_type=return_tensors)

    if pad == "longest":
        max_length = max(len(row) for row in rows) if batched else len(rows)
    if pad_to_multiple_of and max_length % pad_to_multiple_of:
        max_length += pad_to_multiple_of - max_length % pad_to_multiple_of
    padded_keys = [key for key in fills if key in data]
    if batched:
        sizes = {key: len(value) for key, value in data.items()}
        if len(set(sizes.values())) > 1:
            raise ValueError(f"`encoded_inputs` has keys with different batch sizes: {sizes}")
        for key in padded_keys:
            data[key] = [_pad_row(row, max_length - len(row), fills[key], side) for row in data[key]]
    else:
        for key in padded_keys:
            data[key] = _pad_row(data[key], max_length - len(rows), fills[key], side)
    return BatchEncoding(data, tensor_type=return_tensors)


def _pad_row(row, missing: int, fill: int, side: str) -> list:
    if missing <= 0:
        return row
    return list(row) + [fill] * missing if side == "right" else [fill] * missing + list(row)
