"""Config values that cannot build a model, refused with the field, the value and what to do.

Transformers' configs check the types of their fields when they are made (`block_size="8"` is refused there),
not whether the values make sense: 0 attention heads fail deep inside, `num_hidden_layers=-1` builds a model
with no layers. `check_config` runs when a bigbird model is built (so in `from_pretrained` before any weight is
read); `check_config_file` runs the same checks on a config.json's values before Transformers reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from transformers.activations import ACT2FN

from ..attention import check_attention_type, check_random_plan

# field -> (smallest value, what it counts); per model type
_COUNTS = {
    "big_bird": {
        "vocab_size": (1, "the number of token ids"),
        "hidden_size": (1, "the width of the hidden states"),
        "num_hidden_layers": (1, "the number of layers"),
        "num_attention_heads": (1, "the number of attention heads"),
        "intermediate_size": (1, "the width of the feed-forward layers"),
        "max_position_embeddings": (1, "the longest input, in tokens"),
        "type_vocab_size": (1, "the number of token types"),
        "block_size": (1, "tokens per attention block"),
        "num_random_blocks": (0, "random key blocks per query block"),
    },
    "bigbird_pegasus": {
        "vocab_size": (1, "the number of token ids"),
        "d_model": (1, "the width of the hidden states"),
        "encoder_layers": (1, "the number of encoder layers"),
        "decoder_layers": (1, "the number of decoder layers"),
        "encoder_attention_heads": (1, "the number of encoder attention heads"),
        "decoder_attention_heads": (1, "the number of decoder attention heads"),
        "encoder_ffn_dim": (1, "the width of the encoder's feed-forward layers"),
        "decoder_ffn_dim": (1, "the width of the decoder's feed-forward layers"),
        "max_position_embeddings": (1, "the longest input, in tokens"),
        "block_size": (1, "tokens per attention block"),
        "num_random_blocks": (0, "random key blocks per query block"),
    },
}
# (width, heads) pairs where the heads must divide the width
_HEADS = {"big_bird": [("hidden_size", "num_attention_heads")],
          "bigbird_pegasus": [("d_model", "encoder_attention_heads"), ("d_model", "decoder_attention_heads")]}
_PROBABILITIES = {
    "big_bird": ("hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"),
    "bigbird_pegasus": ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout",
                        "encoder_layerdrop", "decoder_layerdrop"),
}
_ACTIVATIONS = {"big_bird": "hidden_act", "bigbird_pegasus": "activation_function"}


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _problems(model_type: str, get: Callable[[str], object]) -> list[tuple[str, str]]:
    """(field, what it must be) for every value `get(field)` returns that cannot work; None means unset."""
    found = []
    for field, (low, meaning) in _COUNTS[model_type].items():
        value = get(field)
        if value is not None and (not _whole(value) or value < low):
            found.append((field, f"a whole number >= {low}: {meaning}"))
    bad = {field for field, _ in found}
    for width, heads in _HEADS[model_type]:
        if not bad & {width, heads} and get(width) is not None and get(heads) is not None and get(width) % get(heads):
            found.append((heads, f"a divisor of {width} = {get(width)}: each head gets {width} / {heads} dimensions"))
    for field in _PROBABILITIES[model_type]:
        value = get(field)
        if value is not None and (not _number(value) or not 0 <= value <= 1):
            found.append((field, "a probability between 0 and 1"))
    activation = get(_ACTIVATIONS[model_type])
    if activation is not None and activation not in ACT2FN:
        found.append((_ACTIVATIONS[model_type], f"one of Transformers' activations ({', '.join(sorted(ACT2FN))})"))
    epsilon = get("layer_norm_eps")
    if epsilon is not None and (not _number(epsilon) or epsilon <= 0):
        found.append(("layer_norm_eps", "a number > 0"))
    vocab, pad = get("vocab_size"), get("pad_token_id")
    if "vocab_size" not in bad and vocab is not None and _whole(pad) and pad >= vocab:
        found.append(("pad_token_id", f"None or a token id below vocab_size = {vocab}"))
    labels = get("num_labels")
    if labels is not None and (not _whole(labels) or labels < 1):
        found.append(("num_labels", "a whole number >= 1: the number of classes"))
    return found


def _check_options(get: Callable[[str], object]) -> None:
    if get("attention_type") is not None:
        check_attention_type(get("attention_type"))
    if get("random_plan") is not None:
        check_random_plan(get("random_plan"))


def _raise(where: str, get: Callable[[str], object], problems: list[tuple[str, str]], fix: str) -> None:
    lines = [f"{field} = {get(field)!r} (it must be {rule})" for field, rule in problems]
    raise ValueError(f"{where} cannot build a model: " + "; ".join(lines) + f". {fix}")


def check_config(config) -> None:
    """Raise ValueError naming every field of a BigBirdConfig or BigBirdPegasusConfig that cannot build a model."""
    model_type = getattr(config, "model_type", None)
    if model_type not in _COUNTS:
        return

    def get(field: str):
        return getattr(config, field, None)

    problems = _problems(model_type, get)
    if problems:
        _raise(type(config).__name__, get, problems,
               "Fix it in config.json or in the arguments that made the config")
    _check_options(get)


def check_config_file(values: Mapping, path, overrides: Mapping) -> None:
    """check_config for the values of a config.json (at `path`), as `from_pretrained`'s keyword arguments
    (`overrides`; those that are not config fields are ignored) change them."""
    model_type = values.get("model_type")
    if model_type not in _COUNTS:
        return
    merged = {**values, **overrides}
    problems = _problems(model_type, merged.get)
    if problems:
        _raise(str(path), merged.get, problems,
               "Fix it in that file, or pass the right value to from_pretrained (e.g. "
               f"{problems[0][0]}=...)")
    _check_options(merged.get)
