"""Generation settings checked before `generate()` computes anything, with what is wrong and what to do.

Transformers' `generate()` runs the search; for some nonsense settings it fails deep inside (a float
`num_beams`, a token id outside the vocabulary) or only warns (`min_length` above `max_length`).
"""

from __future__ import annotations

import torch

# setting -> the smallest value that makes sense
_COUNTS = {"num_beams": 1, "num_return_sequences": 1, "max_new_tokens": 1, "max_length": 1, "min_length": 0,
           "min_new_tokens": 0, "top_k": 0, "no_repeat_ngram_size": 0, "num_beam_groups": 1}
_TOKENS = ("decoder_start_token_id", "bos_token_id", "pad_token_id", "eos_token_id", "forced_bos_token_id",
           "forced_eos_token_id")


def _check_count(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < _COUNTS[name]:
        raise ValueError(f"generate(): {name} must be a whole number >= {_COUNTS[name]}, got {value!r}")


def _check_token(name: str, value, vocab_size: int) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for token in values:
        if isinstance(token, torch.Tensor):
            token = token.tolist()
        if isinstance(token, list):
            _check_token(name, token, vocab_size)
        elif isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise ValueError(f"generate(): {name} = {value!r} is not a token id of this model's vocabulary "
                             f"[0, {vocab_size}): use ids from the model's tokenizer")


def check_generate_settings(model, generation_config, kwargs: dict) -> None:
    """Raise ValueError for a setting of `kwargs` (or of an explicit `generation_config`) that cannot work."""
    settings = dict(generation_config.to_diff_dict()) if generation_config is not None else {}
    settings.update({key: value for key, value in kwargs.items() if key in _COUNTS or key in _TOKENS})
    for name in _COUNTS:
        if settings.get(name) is not None:
            _check_count(name, settings[name])
    for name in _TOKENS:
        if settings.get(name) is not None:
            _check_token(name, settings[name], model.config.get_text_config().vocab_size)
    low = settings.get("min_length")
    high = settings.get("max_length")
    if low is not None and high is not None and low > high:
        raise ValueError(f"generate(): min_length = {low} is larger than max_length = {high}: no output can satisfy "
                         "both; lower min_length or raise max_length")
    low_new, high_new = settings.get("min_new_tokens"), settings.get("max_new_tokens")
    if low_new is not None and high_new is not None and low_new > high_new:
        raise ValueError(f"generate(): min_new_tokens = {low_new} is larger than max_new_tokens = {high_new}: "
                         "lower min_new_tokens or raise max_new_tokens")
