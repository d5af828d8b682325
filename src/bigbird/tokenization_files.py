"""Reading a tokenizer's files: tokenizer.json, spiece.model, tokenizer_config.json, special_tokens_map.json.

`read_tokenizer_files` turns them into one `TokenizerSources`: the settings of tokenizer_config.json (with the
special tokens of special_tokens_map.json merged in, and `{"__type": "AddedToken"}` dicts made `AddedToken`s),
the added tokens the files declare, and the vocabulary source (a parsed tokenizer.json or SentencePiece model).
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from .hub import resolve_file
from .tokenization_spm import SentencePieceModel, read_sentencepiece_model

TOKENIZER_FILE = "tokenizer.json"
SPM_FILE = "spiece.model"
CONFIG_FILE = "tokenizer_config.json"
SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"

NAMED_SPECIAL_TOKENS = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@dataclass
class TokenizerSources:
    """Everything read from a tokenizer's files, before a tokenizer class interprets it."""

    config: dict[str, Any] = field(default_factory=dict)
    added_tokens_decoder: dict[int, AddedToken] = field(default_factory=dict)
    tokenizer_json: dict[str, Any] | None = None
    tokenizer_json_path: Path | None = None
    spm: SentencePieceModel | None = None
    spm_path: Path | None = None

    def vocab_from_json(self) -> list[tuple[str, float]]:
        """The Unigram (piece, score) list of tokenizer.json; ValueError naming the file if it holds another model."""
        model = self.tokenizer_json.get("model") or {}
        vocab = model.get("vocab")
        if model.get("type") not in (None, "Unigram") or not isinstance(vocab, list) or not vocab:
            raise ValueError(
                f"{self.tokenizer_json_path} does not hold a SentencePiece Unigram vocabulary "
                f"(model type {model.get('type')!r}): it is not a BigBird or Pegasus tokenizer"
            )
        try:
            return [(str(piece), float(score)) for piece, score in vocab]
        except (TypeError, ValueError):
            raise ValueError(f"{self.tokenizer_json_path} has a malformed Unigram vocabulary") from None

    def precompiled_charsmap(self) -> bytes | None:
        """The SentencePiece normalization table: from spiece.model, or a `Precompiled` normalizer of tokenizer.json."""
        if self.spm is not None:
            return self.spm.precompiled_charsmap
        normalizer = (self.tokenizer_json or {}).get("normalizer") or {}
        steps = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
        for step in steps:
            if step.get("type") == "Precompiled" and step.get("precompiled_charsmap"):
                return base64.b64decode(step["precompiled_charsmap"])
        return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} should hold a JSON object, not {type(data).__name__}")
    return data


def as_added_token(value: Any) -> Any:
    """Turn serialized added tokens (`{"__type": "AddedToken", ...}` dicts, also inside lists) into `AddedToken`s."""
    if isinstance(value, dict) and value.get("__type") == "AddedToken":
        return AddedToken(**{key: item for key, item in value.items() if key != "__type"})
    if isinstance(value, list):
        return [as_added_token(item) for item in value]
    return value


def _added_token_from_dict(entry: dict[str, Any], source: Path) -> AddedToken:
    try:
        return AddedToken(**{key: value for key, value in entry.items() if key not in ("__type", "id")})
    except TypeError as error:
        raise ValueError(f"{source} has a malformed added token {entry!r}: {error}") from None


def read_tokenizer_files(
    name_or_path: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> TokenizerSources:
    """Read the tokenizer files of a local directory or Hub repository (tokenizer.json preferred over spiece.model)."""
    where = dict(revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, required=False)
    json_path = resolve_file(name_or_path, TOKENIZER_FILE, **where)
    spm_path = None if json_path is not None else resolve_file(name_or_path, SPM_FILE, **where)
    if json_path is None and spm_path is None:
        hint = "" if Path(name_or_path).is_dir() else " (or, for a Hub id, they are not in the local cache)"
        raise FileNotFoundError(
            f"{name_or_path} has neither {TOKENIZER_FILE} nor {SPM_FILE}{hint}: "
            "it is not a BigBird or Pegasus tokenizer"
        )
    config_path = resolve_file(name_or_path, CONFIG_FILE, **where)
    map_path = resolve_file(name_or_path, SPECIAL_TOKENS_MAP_FILE, **where)
    return sources_from_files(
        tokenizer_file=json_path, vocab_file=spm_path, config_file=config_path, special_tokens_map_file=map_path
    )


def sources_from_files(
    *,
    tokenizer_file: str | os.PathLike | None = None,
    vocab_file: str | os.PathLike | None = None,
    config_file: str | os.PathLike | None = None,
    special_tokens_map_file: str | os.PathLike | None = None,
) -> TokenizerSources:
    """Read the given files into `TokenizerSources`, the way Transformers merges them before building a tokenizer."""
    sources = TokenizerSources()
    if tokenizer_file is not None:
        sources.tokenizer_json_path = Path(tokenizer_file)
        sources.tokenizer_json = _read_json(sources.tokenizer_json_path)
    elif vocab_file is not None:
        sources.spm_path = Path(vocab_file)
        sources.spm = read_sentencepiece_model(sources.spm_path)
    else:
        raise ValueError("pass a tokenizer_file (tokenizer.json) or a vocab_file (spiece.model)")

    config = _read_json(Path(config_file)) if config_file is not None else {}
    for key in ("tokenizer_class", "init_inputs", "auto_map", "name_or_path", "vocab_file", "tokenizer_file"):
        config.pop(key, None)
    if "additional_special_tokens" in config and not config.get("extra_special_tokens"):
        config["extra_special_tokens"] = config.pop("additional_special_tokens")

    decoder: dict[int, AddedToken] = {}
    if "added_tokens_decoder" in config:
        for index, entry in config.pop("added_tokens_decoder").items():
            decoder[int(index)] = _added_token_from_dict(entry, Path(config_file))
    else:
        if special_tokens_map_file is not None:
            _merge_special_tokens_map(config, _read_json(Path(special_tokens_map_file)))
        for entry in (sources.tokenizer_json or {}).get("added_tokens", []):
            decoder[int(entry["id"])] = _added_token_from_dict(entry, sources.tokenizer_json_path)
    config = {key: as_added_token(value) for key, value in config.items()}

    by_content = {str(added): added for added in decoder.values()}
    for key in NAMED_SPECIAL_TOKENS:
        if config.get(key) is not None:
            config[key] = by_content.get(str(config[key]), config[key])
    sources.config = config
    sources.added_tokens_decoder = decoder
    return sources


def _merge_special_tokens_map(config: dict[str, Any], special_tokens_map: dict[str, Any]) -> None:
    """Legacy special_tokens_map.json: its named tokens override the config's; its extra tokens are appended."""
    for key, value in special_tokens_map.items():
        if key in ("additional_special_tokens", "extra_special_tokens") and isinstance(value, list):
            existing = list(config.get("extra_special_tokens") or [])
            for item in value:
                if isinstance(item, dict):
                    item = AddedToken(**{k: v for k, v in item.items() if k not in ("special", "__type")}, special=True)
                if item not in existing:
                    existing.append(item)
            config["extra_special_tokens"] = existing
        elif isinstance(value, dict):
            config[key] = AddedToken(**{k: v for k, v in value.items() if k not in ("special", "__type")}, special=True)
        else:
            config[key] = value
