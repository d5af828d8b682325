"""`BatchEncoding`: what a tokenizer call returns, a dict that unpacks into a model with `**`."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np


def _is_torch_tensor(value: Any) -> bool:
    torch = sys.modules.get("torch")  # a tensor exists only if torch was imported: no import needed to check
    return torch is not None and isinstance(value, torch.Tensor)


def is_tensor_or_array(value: Any) -> bool:
    """Whether `value` is a `torch.Tensor` or a `numpy.ndarray` (or NumPy scalar)."""
    return isinstance(value, (np.ndarray, np.generic)) or _is_torch_tensor(value)


def _array(key: str, value: Any) -> np.ndarray:
    """`value` as an array: ints as int64, floats as they come, empty as int64 (Transformers' dtypes)."""
    try:
        array = np.asarray(value)
    except ValueError:
        array = None
    if array is None or array.dtype == object:
        raise ValueError(
            f"cannot make a tensor of {key!r}: its rows have different lengths; pass padding=True "
            "(and truncation=True for texts longer than max_length)"
        )
    if array.size == 0 or array.dtype.kind in "iu":
        array = array.astype(np.int64, copy=False)
    return array


class BatchEncoding(dict):
    """A dict of model inputs (`input_ids`, `attention_mask`, ...) with attribute access and the raw encodings.

    `model(**encoding)` passes its keys as keyword arguments. `encoding.tokens(i)`, `.word_ids(i)` and
    `.sequence_ids(i)` describe row `i`; `.to(device)` moves its tensors.
    """

    def __init__(self, data: dict[str, Any] | None = None, encodings=None, tensor_type: str | None = None,
                 encode_again=None):  # fmt: skip
        super().__init__(data or {})
        self._encodings = encodings
        self._encode_again = encode_again  # gives the encodings when they were not kept (see the tokenizer's call)
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type)

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"this BatchEncoding has no {name!r}: it holds {sorted(self)}") from None

    def __getstate__(self):
        return {"data": dict(self), "encodings": self.encodings}

    def __setstate__(self, state):
        self.update(state["data"])
        self._encodings = state["encodings"]
        self._encode_again = None

    @property
    def encodings(self):
        """The `tokenizers.Encoding` of each row, or None for an encoding built from plain lists.

        For a call that asked for neither offsets nor overflow windows they are made on first use, by one more
        Rust pass over the same inputs with the same options (and the tokenizer's vocabulary as it is then).
        """
        if self._encodings is None and self._encode_again is not None:
            self._encodings, self._encode_again = self._encode_again(), None
        return self._encodings

    def _encoding(self, batch_index: int):
        if not self.encodings:
            raise ValueError("this BatchEncoding was not produced by a tokenizer call: it has no token information")
        return self._encodings[batch_index]

    def tokens(self, batch_index: int = 0) -> list[str]:
        """The tokens of row `batch_index`, special and padding tokens included."""
        return self._encoding(batch_index).tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row `batch_index`, the index of the word it comes from (None for special tokens)."""
        return self._encoding(batch_index).word_ids

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        """For each token of row `batch_index`: 0 for the first text, 1 for the pair, None for special tokens."""
        return self._encoding(batch_index).sequence_ids

    def convert_to_tensors(self, tensor_type: str) -> BatchEncoding:
        """Turn the lists into `torch` ('pt') or `numpy` ('np') arrays, in place."""
        if tensor_type not in ("pt", "np"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, not {tensor_type!r}")
        for key, value in self.items():
            if tensor_type == "np" and isinstance(value, np.ndarray) or tensor_type == "pt" and _is_torch_tensor(value):
                continue
            array = value.numpy(force=True) if _is_torch_tensor(value) else _array(key, value)
            if tensor_type == "pt":
                import torch

                if array.dtype == np.float64 and isinstance(value, list):
                    array = array.astype(np.float32)  # as torch.tensor(python floats) in Transformers
                self[key] = torch.from_numpy(array)
            else:
                self[key] = array
        return self

    def to(self, device) -> BatchEncoding:
        """Move every tensor to `device` (a `torch.device` or its name) and return self."""
        for key, value in self.items():
            if _is_torch_tensor(value):
                self[key] = value.to(device)
        return self
