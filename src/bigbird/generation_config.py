"""Generation settings: a checkpoint's generation_config.json, Transformers' defaults, per-call overrides.

Priority as in Transformers: arguments of `generate()` > the checkpoint's generation_config.json (or,
without one, the special tokens of config.json) > Transformers' global defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from .hub import resolve_file

SPECIAL_TOKENS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id")


@dataclasses.dataclass
class GenerationConfig:
    """The generation settings this library implements (Transformers' names; None means "not set")."""

    max_length: int | None = None
    max_new_tokens: int | None = None
    min_length: int | None = None
    min_new_tokens: int | None = None
    do_sample: bool | None = None
    num_beams: int | None = None
    num_return_sequences: int | None = None
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None
    length_penalty: float | None = None
    early_stopping: bool | str | None = None
    no_repeat_ngram_size: int | None = None
    bad_words_ids: list[list[int]] | None = None
    forced_bos_token_id: int | None = None
    forced_eos_token_id: int | list[int] | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    decoder_start_token_id: int | None = None
    use_cache: bool | None = None
    output_scores: bool | None = None
    return_dict_in_generate: bool | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> GenerationConfig:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {key: value for key, value in values.items() if key in names}
        extra = {key: value for key, value in values.items() if key not in names}
        return cls(**known, extra=extra)

    @classmethod
    def from_model_config(cls, config) -> GenerationConfig:
        """The special tokens of a model config (what Transformers uses without generation_config.json)."""
        return cls(**{name: getattr(config, name, None) for name in SPECIAL_TOKENS})

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, config=None, **hub: Any) -> GenerationConfig:
        """Read generation_config.json from a checkpoint; without one, take the special tokens of `config`."""
        path = resolve_file(name_or_path, "generation_config.json", required=False, **hub)
        if path is None:
            return cls.from_model_config(config) if config is not None else cls()
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        values = {key: value for key, value in values.items() if value is not None}
        return {**self.extra, **values}

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / "generation_config.json").write_text(
            json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def merged(self, **overrides: Any) -> GenerationConfig:
        """A copy with `overrides` (the arguments of a `generate()` call) set, None unsetting; unknown names are an
        error."""
        names = {f.name for f in dataclasses.fields(self)} - {"extra"}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise TypeError(
                f"generate() got unsupported arguments {unknown}; the supported settings are {sorted(names)}"
            )
        return dataclasses.replace(self, **overrides)


DEFAULTS = dict(max_length=20, min_length=0, do_sample=False, num_beams=1, num_return_sequences=1, temperature=1.0,
                top_k=50, top_p=1.0, repetition_penalty=1.0, length_penalty=1.0, early_stopping=False,
                no_repeat_ngram_size=0, use_cache=True, output_scores=False, return_dict_in_generate=False)


@dataclasses.dataclass(frozen=True)
class ResolvedGeneration:
    """Every setting of one `generate()` call, lengths counted in tokens of the returned sequences (their prompt
    included; `min_new_tokens` as given, for the processor Transformers builds from it)."""

    max_length: int
    min_length: int
    min_new_tokens: int | None
    prompt_length: int
    do_sample: bool
    num_beams: int
    num_return_sequences: int
    temperature: float
    top_k: int
    top_p: float
    repetition_penalty: float
    length_penalty: float
    early_stopping: bool | str
    no_repeat_ngram_size: int
    bad_words_ids: list[list[int]] | None
    forced_bos_token_id: int | None
    forced_eos_token_id: list[int] | None
    eos_token_id: list[int] | None
    pad_token_id: int | None
    output_scores: bool
    return_dict_in_generate: bool


def resolve(base: GenerationConfig, overrides: dict[str, Any], *, prompt_length: int, max_positions: int,
            embedded_prompt: int = 0) -> ResolvedGeneration:
    """Combine the model's settings with a call's, check them, and turn max/min_new_tokens into lengths.

    embedded_prompt: the length of a decoder-only prompt given as inputs_embeds alone (prompt_length is then 0: the
    sequences hold only new tokens); as in Transformers, a max_length or min_length that is set counts these
    positions too, and they take decoder positions. Raises a ValueError naming the problem for contradictory or
    impossible settings.
    """
    # As in Transformers, an explicit None unsets a setting without a default (eos_token_id=None: no end token);
    # for a setting with a default it means that default.
    call = {key: value for key, value in overrides.items() if value is not None or key not in DEFAULTS}
    conflict = call.get("max_length") is not None and call.get("max_new_tokens") is not None
    if conflict and call["max_length"] != prompt_length + call["max_new_tokens"]:
        raise ValueError(
            f"max_length={call['max_length']} and max_new_tokens={call['max_new_tokens']} disagree (the prompt has "
            f"{prompt_length} token(s), so max_new_tokens={call['max_new_tokens']} means max_length="
            f"{prompt_length + call['max_new_tokens']}): pass only one of them"
        )
    settings = base.merged(**call)
    value = {name: getattr(settings, name) if getattr(settings, name) is not None else DEFAULTS.get(name)
             for name in [f.name for f in dataclasses.fields(settings)] if name != "extra"}

    if value["max_new_tokens"] is not None:
        max_length = prompt_length + value["max_new_tokens"]
    elif settings.max_length is None:
        max_length = min(DEFAULTS["max_length"] + prompt_length, max_positions)
    else:
        max_length = value["max_length"] - embedded_prompt
    min_length = prompt_length + value["min_new_tokens"] if value["min_new_tokens"] is not None \
        else max(value["min_length"] - embedded_prompt, 0)
    if max_length <= prompt_length:
        prompt = f"{embedded_prompt} embedded position(s)" if embedded_prompt else f"{prompt_length} token(s)"
        raise ValueError(
            f"max_length is {max_length + embedded_prompt} but the decoder prompt already has {prompt}: raise "
            "max_length, or better, set max_new_tokens"
        )
    if max_length + embedded_prompt > max_positions:
        embedded = f" after the {embedded_prompt} positions of inputs_embeds" if embedded_prompt else ""
        raise ValueError(
            f"max_length={max_length}{embedded} exceeds the decoder's {max_positions} positions "
            f"(max_position_embeddings): lower max_length or max_new_tokens"
        )
    num_beams, num_return = value["num_beams"], value["num_return_sequences"]
    if num_beams < 1 or num_return < 1:
        raise ValueError(f"num_beams ({num_beams}) and num_return_sequences ({num_return}) must be at least 1")
    if num_return > 1 and num_beams == 1 and not value["do_sample"]:
        raise ValueError(
            f"num_return_sequences={num_return} needs beam search (num_beams >= {num_return}) or sampling "
            "(do_sample=True): greedy search returns one sequence per input"
        )
    if num_beams > 1 and num_return > num_beams:
        raise ValueError(
            f"num_return_sequences ({num_return}) must not exceed num_beams ({num_beams}): raise num_beams"
        )
    if value["do_sample"] and not value["temperature"] > 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {value['temperature']}; for greedy decoding "
                         "set do_sample=False")
    if not 0 <= value["top_p"] <= 1:
        raise ValueError(f"top_p must be between 0 and 1, got {value['top_p']}")
    if value["top_k"] < 0 or value["no_repeat_ngram_size"] < 0 or not value["repetition_penalty"] > 0:
        raise ValueError("top_k and no_repeat_ngram_size must be >= 0 and repetition_penalty > 0, got "
                         f"{value['top_k']}, {value['no_repeat_ngram_size']} and {value['repetition_penalty']}")
    if value["early_stopping"] not in (True, False, "never"):
        raise ValueError(f"early_stopping must be True, False or 'never', got {value['early_stopping']!r}")
    bad = value["bad_words_ids"]
    if bad is not None and (not isinstance(bad, list) or not bad or
                            any(not isinstance(w, list) or not w or any(int(t) < 0 for t in w) for w in bad)):
        raise ValueError(f"bad_words_ids must be a non-empty list of non-empty lists of token ids, got {bad}")

    def as_list(token):
        return None if token is None else [token] if isinstance(token, int) else list(token)

    eos = as_list(value["eos_token_id"])
    pad = value["pad_token_id"] if value["pad_token_id"] is not None else (eos[0] if eos else None)
    return ResolvedGeneration(
        max_length=max_length, min_length=min_length, min_new_tokens=value["min_new_tokens"],
        prompt_length=prompt_length,
        do_sample=bool(value["do_sample"]), num_beams=num_beams, num_return_sequences=num_return,
        temperature=float(value["temperature"]), top_k=int(value["top_k"]), top_p=float(value["top_p"]),
        repetition_penalty=float(value["repetition_penalty"]), length_penalty=float(value["length_penalty"]),
        early_stopping=value["early_stopping"], no_repeat_ngram_size=int(value["no_repeat_ngram_size"]),
        bad_words_ids=bad, forced_bos_token_id=value["forced_bos_token_id"],
        forced_eos_token_id=as_list(value["forced_eos_token_id"]), eos_token_id=eos, pad_token_id=pad,
        output_scores=bool(value["output_scores"]), return_dict_in_generate=bool(value["return_dict_in_generate"]),
    )
