"""Generation settings and token ids checked before `generate()` computes anything, with what is wrong and what to do.

Transformers' `generate()` runs the search; for some nonsense settings it fails deep inside (a float
`num_beams`, a token id outside the vocabulary, prompt ids of another tokenizer in a decoder-only model), only
warns (`min_length` above `max_length`) or says nothing (`top_p=2`). The settings checked are those of the call,
of an explicit `generation_config` and of the model's own `generation_config` (from generation_config.json).
"""

from __future__ import annotations

import torch

from .inputs import check_range

# setting -> the smallest value that makes sense
_COUNTS = {"num_beams": 1, "num_return_sequences": 1, "max_new_tokens": 1, "max_length": 1, "min_length": 0,
           "min_new_tokens": 0, "top_k": 0, "no_repeat_ngram_size": 0, "num_beam_groups": 1}
_TOKENS = ("decoder_start_token_id", "bos_token_id", "pad_token_id", "eos_token_id", "forced_bos_token_id",
           "forced_eos_token_id")
_FRACTIONS = ("top_p", "typical_p")  # in (0, 1]
_ID_INPUTS = ("input_ids", "decoder_input_ids")


def _check_count(name: str, value, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < _COUNTS[name]:
        raise ValueError(f"generate(): {name} must be a whole number >= {_COUNTS[name]}, got {value!r}{source}")


def _check_fraction(name: str, value, source: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(f"generate(): {name} must be a number in (0, 1] (1 turns it off), got {value!r}{source}")


def _check_token(name: str, value, vocab_size: int, source: str) -> None:
    values = value if isinstance(value, (list, tuple)) else [value]
    for token in values:
        if isinstance(token, torch.Tensor):
            token = token.tolist()
        if isinstance(token, list):
            _check_token(name, token, vocab_size, source)
        elif isinstance(token, bool) or not isinstance(token, int) or not 0 <= token < vocab_size:
            raise ValueError(f"generate(): {name} = {value!r}{source} is not a token id of this model's vocabulary "
                             f"[0, {vocab_size}): use ids from the model's tokenizer")


def _settings(model, generation_config, kwargs: dict) -> dict[str, tuple[object, str]]:
    """setting -> (value, where it comes from, as a phrase for messages), the call's settings first."""
    found = {}
    sources = [(kwargs, ""), (generation_config.to_diff_dict() if generation_config is not None else {},
                              " (from the generation_config argument)")]
    if getattr(model, "generation_config", None) is not None:
        sources.append((model.generation_config.to_diff_dict(),
                        " (from model.generation_config, which from_pretrained reads from generation_config.json)"))
    for values, source in sources:
        for name, value in values.items():
            if value is not None and name in (*_COUNTS, *_TOKENS, *_FRACTIONS) and name not in found:
                found[name] = (value, source)
    return found


def _check_lengths(settings: dict[str, tuple[object, str]]) -> None:
    """min_length against max_length (unless max_new_tokens, which overrides max_length, is set), and
    min_new_tokens against max_new_tokens."""
    pairs = [("min_new_tokens", "max_new_tokens")]
    if "max_new_tokens" not in settings:
        pairs.append(("min_length", "max_length"))
    for low_name, high_name in pairs:
        if low_name in settings and high_name in settings:
            (low, low_source), (high, high_source) = settings[low_name], settings[high_name]
            if low > high:
                raise ValueError(f"generate(): {low_name} = {low}{low_source} is larger than {high_name} = "
                                 f"{high}{high_source}: no output can satisfy both; lower {low_name} or raise "
                                 f"{high_name}")


def _check_ids(name: str, ids, vocab_size: int) -> None:
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"generate(): {name} must be a torch.Tensor of token ids, got {type(ids).__name__}: pass "
                        "the tokenizer's output with return_tensors=\"pt\"")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"generate(): {name} must be integer token ids (torch.long), got {ids.dtype}: pass the "
                        f"tokenizer's {name}, or {name}.long()")
    check_range(name, ids, vocab_size, "vocab_size",
                 "the tokenizer does not match the model: use the checkpoint's own tokenizer")


def check_generate_settings(model, generation_config, kwargs: dict, inputs=None) -> None:
    """Raise ValueError (TypeError for ids that are no tensor of integers) for a setting or token id input of a
    `generate(inputs, generation_config, **kwargs)` call that cannot work."""
    vocab_size = model.config.get_text_config().vocab_size
    settings = _settings(model, generation_config, kwargs)
    for name, (value, source) in settings.items():
        if name in _COUNTS:
            _check_count(name, value, source)
        elif name in _FRACTIONS:
            _check_fraction(name, value, source)
        else:
            _check_token(name, value, vocab_size, source)
    _check_lengths(settings)
    ids = {"input_ids": inputs} if inputs is not None and model.main_input_name == "input_ids" else {}
    ids.update({name: kwargs[name] for name in _ID_INPUTS if kwargs.get(name) is not None})
    for name, value in ids.items():
        _check_ids(name, value, vocab_size)
