"""`PreTrainedTokenizerFast`: any tokenizer.json used as it is (WordPiece, byte-level BPE, ...), and
`load_tokenizer`, which picks the tokenizer class for a checkpoint.

Warm-started checkpoints (see `bigbird.warm_start`) keep their source's BERT or RoBERTa tokenizer; this class
gives it the same calling conventions as `BigBirdTokenizer`, so every pipeline runs on them.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tokenizers import Tokenizer

from .hub import resolve_file
from .tokenization_base import SentencePieceTokenizer
from .tokenization_files import TokenizerSources

SENTENCEPIECE_CLASSES = {"big_bird": "BigBirdTokenizer", "bigbird_pegasus": "PegasusTokenizer"}


class PreTrainedTokenizerFast(SentencePieceTokenizer):
    """A tokenizer.json's own pipeline (normalizer, pre-tokenizer, model, post-processor, decoder), unchanged.

    Load with `PreTrainedTokenizerFast.from_pretrained(dir_or_hub_id)`; the special tokens come from
    tokenizer_config.json / special_tokens_map.json as in Transformers.
    """

    def _default_extra_special_tokens(self, config: dict[str, Any], sources: TokenizerSources) -> list:
        return []

    def _build_backend(self, config: dict[str, Any], sources: TokenizerSources) -> Tokenizer:
        if sources.tokenizer_json is None:
            raise ValueError(f"{type(self).__name__} reads tokenizer.json files only")
        return Tokenizer.from_str(json.dumps(sources.tokenizer_json))

    def _post_processor(self):
        return self._backend.post_processor

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens into text with the tokenizer's own decoder."""
        return self._backend.decoder.decode(list(tokens))


def _tokenizer_json_type(name_or_path: str | os.PathLike) -> str | None:
    path = resolve_file(name_or_path, "tokenizer.json", required=False)
    if path is None:
        return None
    try:
        return (json.loads(path.read_text(encoding="utf-8")).get("model") or {}).get("type")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def load_tokenizer(name_or_path: str | os.PathLike, model_type: str, **options):
    """The tokenizer of a checkpoint: `BigBirdTokenizer` / `PegasusTokenizer` for SentencePiece (Unigram)
    vocabularies, `PreTrainedTokenizerFast` for any other tokenizer.json (e.g. a warm-started BERT's WordPiece)."""
    import bigbird

    json_type = _tokenizer_json_type(name_or_path)
    if json_type not in (None, "Unigram"):
        return PreTrainedTokenizerFast.from_pretrained(name_or_path, **options)
    return getattr(bigbird, SENTENCEPIECE_CLASSES[model_type]).from_pretrained(name_or_path, **options)
