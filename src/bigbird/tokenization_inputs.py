"""Checking what a tokenizer is called with: the texts, and the padding / truncation options."""

from __future__ import annotations

from typing import Any

LARGE_INTEGER = int(1e20)  # a model_max_length above this means "no limit"
PADDINGS = {
    True: "longest",
    "longest": "longest",
    "max_length": "max_length",
    False: None,
    None: None,
    "do_not_pad": None,
}
TRUNCATIONS = {
    True: "longest_first",
    "longest_first": "longest_first",
    "only_first": "only_first",
    "only_second": "only_second",
    False: None,
    None: None,
    "do_not_truncate": None,
}


def _text(value: Any, argument: str) -> str:
    """A text as str: bytes must be UTF-8 (lone surrogates in a str are found by `check_unicode` if they fail)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(f"`{argument}` holds bytes that are not valid UTF-8 ({error})") from None
    raise TypeError(f"`{argument}` must be a str (or a list of str), not {type(value).__name__}")


def check_unicode(items: list, argument: str, is_batched: bool) -> None:
    """Raise a ValueError naming the first text of `batch_items`' list that is not valid Unicode (a lone
    surrogate), if there is one. Called only when the Rust tokenizer rejected the batch, so that valid batches
    are not scanned twice."""
    pair_argument = argument.replace("text", "text_pair", 1)
    for index, item in enumerate(items):
        for part, name in zip(item if isinstance(item, tuple) else (item,), (argument, pair_argument)):
            for word in part if isinstance(part, list) else [part]:
                try:
                    word.encode("utf-8")
                except UnicodeEncodeError as error:
                    where = f"{name}[{index}]" if is_batched else name
                    raise ValueError(f"`{where}` is not valid Unicode text ({error})") from None


def _words(value: Any, argument: str) -> list[str]:
    if not isinstance(value, (list, tuple)):
        raise TypeError(
            f"`{argument}` must be a list of words when is_split_into_words=True, not {type(value).__name__}"
        )
    return [_text(word, argument) for word in value]


def batch_items(text: Any, text_pair: Any, argument: str, pretokenized: bool) -> tuple[list, bool]:
    """The inputs of one call as the backend's `encode_batch` list, and whether the call was batched.

    As in Transformers, an empty `text_pair` string counts as no pair for a single input.
    """
    one = _words if pretokenized else _text
    if pretokenized:
        is_batched = isinstance(text, (list, tuple)) and bool(text) and isinstance(text[0], (list, tuple))
    else:
        is_batched = isinstance(text, (list, tuple))
    pair_argument = argument.replace("text", "text_pair", 1)
    if not is_batched:
        first = one(text, argument)
        return ([(first, one(text_pair, pair_argument))] if text_pair else [first]), False
    if text_pair is None:
        return [one(item, f"{argument}[{index}]") for index, item in enumerate(text)], True
    if not isinstance(text_pair, (list, tuple)):
        raise TypeError(f"when `{argument}` is a batch, `{pair_argument}` must be a list of the same length")
    if len(text_pair) != len(text):
        raise ValueError(f"`{argument}` has {len(text)} items but `{pair_argument}` has {len(text_pair)}")
    return [
        (one(first, f"{argument}[{index}]"), one(second, f"{pair_argument}[{index}]"))
        for index, (first, second) in enumerate(zip(text, text_pair))
    ], True


def padding_and_truncation(
    padding: Any,
    truncation: Any,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    model_max_length: int,
    pad_token_id: int | None,
) -> tuple[str | None, str | None, int | None]:
    """Resolve (padding strategy, truncation strategy, max_length) the way Transformers does.

    `max_length` alone turns on 'longest_first' truncation; a missing `max_length` falls back to
    `model_max_length`, unless that is unlimited, in which case there is no truncation or max-length padding.
    """
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1):
        raise ValueError(f"max_length must be a positive int, not {max_length!r}")
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"
    try:
        pad = PADDINGS[padding]
    except (KeyError, TypeError):
        raise ValueError(
            f"padding must be True, False, 'longest', 'max_length' or 'do_not_pad', not {padding!r}"
        ) from None
    try:
        truncate = TRUNCATIONS[truncation]
    except (KeyError, TypeError):
        raise ValueError(
            f"truncation must be True, False, 'longest_first', 'only_first', 'only_second' or 'do_not_truncate', "
            f"not {truncation!r}"
        ) from None
    if max_length is None:
        if pad == "max_length":
            if model_max_length > LARGE_INTEGER:
                pad = None
            else:
                max_length = model_max_length
        if truncate is not None:
            if model_max_length > LARGE_INTEGER:
                truncate = None
            else:
                max_length = model_max_length
    if pad is not None and pad_token_id is None:
        raise ValueError("padding was asked for but this tokenizer has no pad_token")
    both = truncate is not None and pad is not None
    if both and pad_to_multiple_of is not None and max_length is not None and max_length % pad_to_multiple_of:
        raise ValueError(f"max_length ({max_length}) is not a multiple of pad_to_multiple_of ({pad_to_multiple_of})")
    return pad, truncate, max_length
