"""BigBirdTokenizer and PegasusTokenizer: SentencePiece Unigram tokenizers that give Transformers' ids and texts.

Both read `tokenizer.json` when a checkpoint has one and otherwise convert `spiece.model`; the pipeline (normalizer,
Metaspace pre-tokenizer and decoder, special-token template) is the one Transformers 5.23 builds for the class.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram

from .tokenization_base import SentencePieceTokenizer
from .tokenization_files import TokenizerSources
from .tokenization_outputs import BatchEncoding
from .tokenization_spm import CONTROL, USER_DEFINED

__all__ = ["BigBirdTokenizer", "PegasusTokenizer", "BatchEncoding"]

SPIECE_UNDERLINE = "▁"


def _vocabulary(sources: TokenizerSources) -> list[tuple[str, float]]:
    if sources.spm is not None:
        return list(zip(sources.spm.pieces, sources.spm.scores))
    return sources.vocab_from_json()


def _index(vocab: list, entry: tuple[str, float], start: int = 0) -> int | None:
    try:
        return vocab.index(entry, start)
    except ValueError:
        return None


def _source_name(sources: TokenizerSources) -> str:
    return str(sources.spm_path or sources.tokenizer_json_path)


def _metaspace(prepend_scheme: str):
    return (
        pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme, split=True),
        decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme, split=True),
    )


class BigBirdTokenizer(SentencePieceTokenizer):
    """BigBird's tokenizer: `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` (token types 0 then 1), `[MASK]` eats the
    space on its left, runs of two or more spaces become one `▁` piece.

    Load with `BigBirdTokenizer.from_pretrained(dir_or_hub_id)`; options of tokenizer_config.json
    (`add_prefix_space`, `model_max_length`, special tokens, ...) can be overridden as keyword arguments.
    """

    class_options = frozenset({"add_prefix_space"})
    named_defaults = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "sep_token": "[SEP]",
        "pad_token": "<pad>",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }

    def _read_class_options(self, config: dict[str, Any]) -> None:
        self.add_prefix_space = bool(config.get("add_prefix_space", True))

    def _named_special_tokens(self, config: dict[str, Any]) -> dict[str, str | AddedToken | None]:
        named = super()._named_special_tokens(config)
        return {
            key: AddedToken(value, lstrip=key == "mask_token", rstrip=False) if isinstance(value, str) else value
            for key, value in named.items()
        }

    def _default_extra_special_tokens(self, config: dict[str, Any], sources: TokenizerSources) -> list:
        if sources.spm is None:
            return []
        spm = sources.spm
        return [
            AddedToken(piece, normalized=False, special=kind == CONTROL)
            for piece, kind in zip(spm.pieces, spm.types)
            if kind in (CONTROL, USER_DEFINED)
        ]

    def _build_backend(self, config: dict[str, Any], sources: TokenizerSources) -> Tokenizer:
        vocab = _vocabulary(sources)
        unk = self.unk_token
        if unk is None:
            raise ValueError("BigBirdTokenizer needs an unk_token")
        unk_id = _index(vocab, (unk, 0.0))
        if unk_id is None:
            raise ValueError(f"{_source_name(sources)} has no {unk!r} piece with score 0: BigBird needs one")
        backend = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
        backend.normalizer = normalizers.Sequence(
            [normalizers.Strip(left=False, right=False), normalizers.Replace(Regex(" {2,}"), SPIECE_UNDERLINE)]
        )
        backend.pre_tokenizer, backend.decoder = _metaspace("always" if self.add_prefix_space else "never")
        return backend

    def _post_processor(self):
        cls, sep = self.cls_token, self.sep_token
        if cls is None or sep is None:
            raise ValueError("BigBirdTokenizer needs a cls_token and a sep_token for its [CLS] A [SEP] template")
        return processors.TemplateProcessing(
            single=f"{cls}:0 $A:0 {sep}:0",
            pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
            special_tokens=[(cls, self.cls_token_id), (sep, self.sep_token_id)],
        )

    def _class_config(self) -> dict[str, Any]:
        return {"add_prefix_space": self.add_prefix_space}


class PegasusTokenizer(SentencePieceTokenizer):
    """Pegasus' tokenizer (BigBird-Pegasus checkpoints): `A </s>` and `A B </s>`, with `<mask_1>`, `<mask_2>` and
    `<unk_2>` ... `<unk_{offset-1}>` placed before the SentencePiece pieces, which are shifted by `offset`.

    Load with `PegasusTokenizer.from_pretrained(dir_or_hub_id)`; `offset` and `mask_token_sent` are read from
    tokenizer_config.json (defaults 103 and `<mask_1>`).
    """

    class_options = frozenset({"offset", "mask_token_sent"})
    named_defaults = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask_2>"}

    def _read_class_options(self, config: dict[str, Any]) -> None:
        self.offset = int(config.get("offset", 103))
        self.mask_token_sent = config.get("mask_token_sent", "<mask_1>")

    def _default_extra_special_tokens(self, config: dict[str, Any], sources: TokenizerSources) -> list:
        sent = [] if self.mask_token_sent is None else [self.mask_token_sent]
        return sent + [f"<unk_{i}>" for i in range(2, self.offset)]

    def _spm_vocabulary(self, config: dict[str, Any], sources: TokenizerSources) -> list[tuple[str, float]]:
        """Transformers' layout: pad, eos, the mask tokens, <unk_2>..<unk_{offset-1}>, then pieces 2.. of the file."""
        pieces = sources.spm.pieces
        pad, eos = str(config.get("pad_token", "<pad>")), str(config.get("eos_token", "</s>"))
        if len(pieces) < 3 or pieces[0] != pad or pieces[1] != eos:
            found = pieces[:2]
            raise ValueError(
                f"{sources.spm_path} does not have Pegasus' layout: pieces 0 and 1 must be {pad!r} and {eos!r}, "
                f"found {found}"
            )
        mask = str(config.get("mask_token", "<mask_1>"))
        mask_sent = str(config.get("mask_token_sent", "<mask_2>"))
        head = [(pad, 0.0), (eos, 0.0)]
        if mask != "None":
            head.append((mask, 0.0))
        if mask_sent not in ("None", mask):
            head.append((mask_sent, 0.0))
        head += [(f"<unk_{i}>", -100.0) for i in range(2, self.offset)]
        return head + list(zip(pieces[2:], sources.spm.scores[2:]))

    def _build_backend(self, config: dict[str, Any], sources: TokenizerSources) -> Tokenizer:
        vocab = self._spm_vocabulary(config, sources) if sources.spm is not None else sources.vocab_from_json()
        unk = self.unk_token
        unk_id = None if unk is None else _index(vocab, (unk, 0.0), 1)
        if unk_id is None:
            raise ValueError(f"{_source_name(sources)} has no {unk!r} piece with score 0: Pegasus needs one")
        backend = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
        charsmap = sources.precompiled_charsmap()
        if charsmap is not None:
            steps = [normalizers.Precompiled(charsmap), normalizers.Replace(Regex(" {2,}"), " ")]
        else:
            steps = [normalizers.Replace(Regex(r"\n"), " "), normalizers.Replace(Regex(" {2,}"), " ")]
        backend.normalizer = normalizers.Sequence(steps)
        backend.pre_tokenizer, backend.decoder = _metaspace("always")
        return backend

    def _post_processor(self):
        eos = self.eos_token
        if eos is None:
            raise ValueError("PegasusTokenizer needs an eos_token for its A </s> template")
        return processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A $B {eos}", special_tokens=[(eos, self.eos_token_id)]
        )

    def _class_config(self) -> dict[str, Any]:
        sent = self.mask_token_sent
        return {"offset": self.offset, "mask_token_sent": None if sent is None else str(sent)}
