"""Generation settings for `summarize`, checked once, before any weight is loaded or document read.

Transformers' `GenerationConfig.validate` checks combinations of settings but neither names nor types: a
misspelt setting would be passed on to the model as an input, and `num_beams=2.5` or `"two"` would fail deep
inside `generate`. These checks come first; the checkpoint's generation_config.json, updated with the
settings, then goes through `validate(strict=True)`.
"""

from __future__ import annotations

import copy
import inspect
import os

import transformers

from ..models.loading import config_path

# whole-number settings and their least value
WHOLE_NUMBERS = {"max_length": 1, "max_new_tokens": 1, "min_length": 0, "min_new_tokens": 0, "num_beams": 1,
                 "num_beam_groups": 1, "num_return_sequences": 1, "top_k": 0, "no_repeat_ngram_size": 0,
                 "encoder_no_repeat_ngram_size": 0}
REAL_NUMBERS = ("temperature", "top_p", "typical_p", "min_p", "repetition_penalty", "encoder_repetition_penalty",
                "length_penalty", "diversity_penalty", "epsilon_cutoff", "eta_cutoff", "max_time")
BOOLEANS = ("do_sample", "use_cache", "output_scores", "output_logits", "output_attentions", "output_hidden_states",
            "return_dict_in_generate", "remove_invalid_values", "renormalize_logits")


def _known_settings() -> set[str]:
    """GenerationConfig's fields and the other arguments of `generate` (logits_processor, streamer, ...)."""
    fields = {name for name in vars(transformers.GenerationConfig()) if not name.startswith("_")}
    arguments = set(inspect.signature(transformers.GenerationMixin.generate).parameters)
    return (fields - {"transformers_version"}) | (arguments - {"self", "inputs", "generation_config", "kwargs"})


def _check_type(key: str, value) -> None:
    if key in WHOLE_NUMBERS:
        least = WHOLE_NUMBERS[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"generation setting {key} must be a whole number of at least {least}, not {value!r}")
    elif key in REAL_NUMBERS and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"generation setting {key} must be a number, not {value!r}")
    elif key in BOOLEANS and not isinstance(value, bool):
        raise ValueError(f"generation setting {key} must be true or false, not {value!r}")


def _check_lengths(config: transformers.GenerationConfig) -> None:
    pairs = [("min_new_tokens", "max_new_tokens")]
    if config.max_new_tokens is None:
        pairs.append(("min_length", "max_length"))
    for low, high in pairs:
        least, most = getattr(config, low), getattr(config, high)
        if least is not None and most is not None and least > most:
            raise ValueError(f"generation settings: {low}={least} is more than {high}={most}")


def check_generate_kwargs(settings: dict, base: transformers.GenerationConfig) -> dict:
    """`settings` (keyword arguments for `generate`) when they are valid on top of the checkpoint's `base`
    generation config; otherwise a ValueError naming the setting and what it must be."""
    unknown = sorted(set(settings) - _known_settings())
    if unknown:
        raise ValueError(f"unknown generation settings {unknown}: use the names of transformers.GenerationConfig, "
                         "e.g. num_beams, max_new_tokens, min_length, no_repeat_ngram_size, do_sample, top_p")
    for key, value in settings.items():
        _check_type(key, value)
    merged = copy.deepcopy(base)
    merged.update(**settings)
    _check_lengths(merged)
    try:
        merged.validate(strict=True, user_set_attributes=set(settings))
    except ValueError as error:
        raise ValueError(f"invalid generation settings {settings}: {' '.join(str(error).split())}") from None
    return settings


def checkpoint_generation_config(name_or_path: str | os.PathLike, **hub_kwargs) -> transformers.GenerationConfig:
    """The checkpoint's generation_config.json (defaults when it has none); a missing checkpoint is an error."""
    config_path(name_or_path, **hub_kwargs)
    try:
        return transformers.GenerationConfig.from_pretrained(name_or_path, **hub_kwargs)
    except OSError:
        return transformers.GenerationConfig()


def summary_settings(generate_kwargs: dict | None, model, **hub_kwargs) -> dict:
    """`generate_kwargs` checked for `summarize` against the generation config of `model` (a checkpoint
    directory, a Hub id or a loaded model): valid settings, and one sequence per text."""
    settings = dict(generate_kwargs or {})
    if settings.get("num_return_sequences", 1) != 1 or settings.get("return_dict_in_generate"):
        raise ValueError("summarize returns one summary per text: call model.generate for several sequences")
    if isinstance(model, (str, os.PathLike)):
        base = checkpoint_generation_config(model, **hub_kwargs)
    else:
        base = getattr(model, "generation_config", None) or transformers.GenerationConfig()
    return check_generate_kwargs(settings, base)
