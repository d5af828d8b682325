"""`SentencePieceTokenizer`: the calling conventions of a Transformers tokenizer over a `tokenizers` Unigram model.

Subclasses say how the Rust pipeline is built (vocabulary, normalizer, special-token template); this class reads
the files, registers the special tokens, and implements `__call__`, `encode`, `decode`, `save_pretrained`, ...
"""

from __future__ import annotations

import json
import os
import shutil
from functools import partial
from pathlib import Path
from typing import Any

from tokenizers import AddedToken, Tokenizer

from .tokenization_files import (
    CONFIG_FILE,
    NAMED_SPECIAL_TOKENS,
    SPM_FILE,
    TOKENIZER_FILE,
    TokenizerSources,
    as_added_token,
    read_tokenizer_files,
    sources_from_files,
)
from .tokenization_inputs import batch_items, check_unicode, padding_and_truncation
from .tokenization_outputs import BatchEncoding
from .tokenization_padding import pad_encoded
from .tokenization_special import SpecialTokensMixin

VERY_LARGE_INTEGER = int(1e30)  # Transformers' "no limit" model_max_length
_COMMON_OPTIONS = {
    *NAMED_SPECIAL_TOKENS,
    "extra_special_tokens",
    "additional_special_tokens",
    "model_max_length",
    "padding_side",
    "truncation_side",
    "clean_up_tokenization_spaces",
    "model_input_names",
    "split_special_tokens",
}
_CLEANUPS = [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
             (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")]  # fmt: skip


def _to_python(ids: Any) -> Any:
    """Tensors, arrays and NumPy integers as Python lists and ints."""
    return ids.tolist() if hasattr(ids, "tolist") else ids


class SentencePieceTokenizer(SpecialTokensMixin):
    """Base of `BigBirdTokenizer` and `PegasusTokenizer`: a SentencePiece Unigram tokenizer on the Rust backend."""

    model_input_names = ["input_ids", "attention_mask"]
    class_options: frozenset[str] = frozenset()
    named_defaults: dict[str, str] = {}

    def __init__(self, vocab_file: str | os.PathLike | None = None, tokenizer_file: str | os.PathLike | None = None,
                 **options):  # fmt: skip
        """Build from a `spiece.model` (`vocab_file`) or a `tokenizer.json` (`tokenizer_file`), with config options."""
        self._setup(sources_from_files(tokenizer_file=tokenizer_file, vocab_file=vocab_file), options, "")

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        **options,
    ):
        """Load from a local directory or Hub id: tokenizer.json if present, else spiece.model, and the config.

        `options` override tokenizer_config.json entries (`model_max_length`, special tokens, `padding_side`, ...).
        """
        sources = read_tokenizer_files(
            name_or_path, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
        )
        tokenizer = cls.__new__(cls)
        tokenizer._setup(sources, options, str(name_or_path))
        return tokenizer

    # ----- construction (subclasses fill in the class-specific parts) -----

    def _read_class_options(self, config: dict[str, Any]) -> None:
        """Read the class's own tokenizer_config.json entries (`offset`, `add_prefix_space`, ...)."""

    def _named_special_tokens(self, config: dict[str, Any]) -> dict[str, str | AddedToken | None]:
        return {key: config.get(key, self.named_defaults.get(key)) for key in NAMED_SPECIAL_TOKENS}

    def _default_extra_special_tokens(self, config: dict[str, Any], sources: TokenizerSources) -> list:
        raise NotImplementedError

    def _build_backend(self, config: dict[str, Any], sources: TokenizerSources) -> Tokenizer:
        raise NotImplementedError

    def _post_processor(self):
        raise NotImplementedError

    def _class_config(self) -> dict[str, Any]:
        return {}

    def _setup(self, sources: TokenizerSources, options: dict[str, Any], name_or_path: str) -> None:
        unknown = sorted(set(options) - _COMMON_OPTIONS - self.class_options)
        if unknown:
            raise TypeError(f"{type(self).__name__} got unknown options {unknown}")
        config = {**sources.config, **{key: as_added_token(value) for key, value in options.items()}}
        if "additional_special_tokens" in options and "extra_special_tokens" not in options:
            config["extra_special_tokens"] = config.pop("additional_special_tokens")
        self.name_or_path = name_or_path
        self.vocab_file = str(sources.spm_path) if sources.spm_path is not None else None
        self.model_max_length = config.get("model_max_length") or VERY_LARGE_INTEGER
        self.padding_side = config.get("padding_side", "right")
        self.truncation_side = config.get("truncation_side", "right")
        for name in ("padding_side", "truncation_side"):
            if getattr(self, name) not in ("left", "right"):
                raise ValueError(f"{name} must be 'left' or 'right', not {getattr(self, name)!r}")
        self.clean_up_tokenization_spaces = bool(config.get("clean_up_tokenization_spaces", False))
        self.model_input_names = list(config.get("model_input_names", type(self).model_input_names))
        self.split_special_tokens = bool(config.get("split_special_tokens", False))

        self._read_class_options(config)
        self._named = self._named_special_tokens(config)
        if "extra_special_tokens" in config:
            self._extras = list(config["extra_special_tokens"] or [])
        else:
            self._extras = self._default_extra_special_tokens(config, sources)
        self._backend = self._build_backend(config, sources)
        self._register_special_tokens(sources.added_tokens_decoder)
        self._backend.post_processor = self._post_processor()
        self._backend.encode_special_tokens = self.split_special_tokens

    def _register_special_tokens(self, declared: dict[int, AddedToken]) -> None:
        """Add the files' added tokens, then the named and extra special tokens, in Transformers' order.

        Tokens already in the vocabulary keep their id; when a content is added twice the later flags win, as in
        the Rust backend. New contents get ids after the vocabulary, in order of first appearance.
        """
        pending: list[str | AddedToken] = [added for _, added in sorted(declared.items())]
        declared_contents = {str(added) for added in pending}
        for value in [*self._named.values(), *self._extras]:
            if value is not None and str(value) not in declared_contents and value not in pending:
                pending.append(value)
        named_contents = {str(value) for value in self._named.values() if value is not None}
        tokens = []
        for value in pending:
            if isinstance(value, str):
                value = AddedToken(value, special=True)
            elif not value.special and str(value) in named_contents:
                value.special = True
            tokens.append(value)
        if tokens:
            self._backend.add_tokens(tokens)

    # ----- vocabulary -----

    @property
    def backend_tokenizer(self) -> Tokenizer:
        """The `tokenizers.Tokenizer` doing the work."""
        return self._backend

    @property
    def vocab_size(self) -> int:
        """Size of the base vocabulary, without added tokens."""
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        """Token -> id for every token, added tokens included."""
        return self._backend.get_vocab(with_added_tokens=True)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        """How many special tokens the template adds to a single text (or a pair)."""
        return self._backend.num_special_tokens_to_add(pair)

    def convert_tokens_to_ids(self, tokens: str | list[str] | None) -> int | list[int] | None:
        """Id of a token (unknown tokens give `unk_token_id`), or the ids of a list of tokens."""
        if tokens is None:
            return None
        if isinstance(tokens, str):
            index = self._backend.token_to_id(tokens)
            return index if index is not None else self._token_id(self.unk_token)
        return [self.convert_tokens_to_ids(token) for token in tokens]

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        """Token of an id, or the tokens of a sequence of ids (special tokens dropped if `skip_special_tokens`)."""
        ids = _to_python(ids)
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._backend.id_to_token(int(index)) for index in ids if int(index) not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join tokens into text with the SentencePiece decoder (`▁` becomes a space)."""
        return self._backend.decoder.decode(list(tokens))

    # ----- encoding -----

    def __call__(
        self,
        text=None,
        text_pair=None,
        *,
        text_target=None,
        text_pair_target=None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        split_special_tokens: bool | None = None,
    ) -> BatchEncoding:
        """Tokenize a text, a pair (`text`, `text_pair`), or batches of them, as Transformers' tokenizers do.

        `text_target` (and `text_pair_target`) are tokenized the same way and returned as `labels` next to the
        inputs, or alone when no `text` is given.
        """
        if text is None and text_target is None:
            raise ValueError("pass `text` or `text_target` to tokenize")
        options = dict(
            add_special_tokens=add_special_tokens, padding=padding, truncation=truncation, max_length=max_length,
            stride=stride, is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side, return_tensors=return_tensors, return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask, return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask, return_offsets_mapping=return_offsets_mapping,
            return_length=return_length, split_special_tokens=split_special_tokens,
        )  # fmt: skip
        inputs = self._encode(text, text_pair, "text", **options) if text is not None else None
        if text_target is None:
            return inputs
        targets = self._encode(text_target, text_pair_target, "text_target", **options)
        if inputs is None:
            return targets
        inputs["labels"] = targets["input_ids"]
        return inputs

    def _encode(
        self,
        text,
        text_pair,
        argument: str,
        *,
        add_special_tokens,
        padding,
        truncation,
        max_length,
        stride,
        is_split_into_words,
        pad_to_multiple_of,
        padding_side,
        return_tensors,
        return_token_type_ids,
        return_attention_mask,
        return_overflowing_tokens,
        return_special_tokens_mask,
        return_offsets_mapping,
        return_length,
        split_special_tokens,
    ) -> BatchEncoding:
        items, is_batched = batch_items(text, text_pair, argument, is_split_into_words)
        pad, truncate, max_length = padding_and_truncation(
            padding, truncation, max_length, pad_to_multiple_of, self.model_max_length, self.pad_token_id
        )
        split = self.split_special_tokens if split_special_tokens is None else split_special_tokens
        settings = (pad, truncate, max_length, stride, pad_to_multiple_of, padding_side, split, add_special_tokens,
                    is_split_into_words)  # fmt: skip
        # Offsets cost the Rust side about 40% of a call. Without offsets or overflow windows the ids, masks and
        # types come from `encode_batch_fast`; its Encodings lack tokens and words, so the BatchEncoding gets
        # them from a full `encode_batch` of the same items if `.tokens()` / `.word_ids()` is ever asked for.
        fast = not (return_offsets_mapping or return_overflowing_tokens) and hasattr(self._backend, "encode_batch_fast")
        try:
            encodings = self._run_backend(items, settings, fast)
        except TypeError:
            check_unicode(items, argument, is_batched)
            raise

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        rows = []
        sample_of_row = []
        for sample, encoding in enumerate(encodings):
            windows = [encoding, *encoding.overflowing] if return_overflowing_tokens else [encoding]
            rows.extend(windows)
            sample_of_row.extend([sample] * len(windows))
        data: dict[str, Any] = {"input_ids": [row.ids for row in rows]}
        if return_token_type_ids:
            data["token_type_ids"] = [row.type_ids for row in rows]
        if return_attention_mask:
            data["attention_mask"] = [row.attention_mask for row in rows]
        if return_special_tokens_mask:
            data["special_tokens_mask"] = [row.special_tokens_mask for row in rows]
        if return_offsets_mapping:
            data["offset_mapping"] = [row.offsets for row in rows]
        if return_length:
            data["length"] = [len(row.ids) for row in rows]
        if return_overflowing_tokens:
            data["overflow_to_sample_mapping"] = sample_of_row
        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            data = {key: value[0] if value and isinstance(value[0], list) else value for key, value in data.items()}
        if not fast:
            return BatchEncoding(data, rows, tensor_type=return_tensors)
        return BatchEncoding(data, tensor_type=return_tensors, encode_again=partial(self._run_backend, items, settings))

    def _run_backend(self, items: list, settings: tuple, fast: bool = False) -> list:
        """Encode `items` with the call's settings: the Rust `encode_batch` (or `encode_batch_fast`)."""
        pad, truncate, max_length, stride, pad_to_multiple_of, padding_side, split, add_special, pretokenized = settings
        self._configure_backend(pad, truncate, max_length, stride, pad_to_multiple_of, padding_side)
        if self._backend.encode_special_tokens != split:
            self._backend.encode_special_tokens = split
        encode = self._backend.encode_batch_fast if fast else self._backend.encode_batch
        return encode(items, add_special_tokens=add_special, is_pretokenized=pretokenized)

    def _configure_backend(self, pad, truncate, max_length, stride, pad_to_multiple_of, padding_side) -> None:
        """Set (or clear) the Rust tokenizer's truncation and padding for this call."""
        if truncate is None:
            if self._backend.truncation is not None:
                self._backend.no_truncation()
        else:
            target = dict(max_length=max_length, stride=stride, strategy=truncate, direction=self.truncation_side)
            current = self._backend.truncation
            if current is None or any(current.get(key) != value for key, value in target.items()):
                self._backend.enable_truncation(**target)
        if pad is None:
            if self._backend.padding is not None:
                self._backend.no_padding()
        else:
            direction = padding_side or self.padding_side
            if direction not in ("left", "right"):
                raise ValueError(f"padding_side must be 'left' or 'right', not {direction!r}")
            target = dict(
                length=max_length if pad == "max_length" else None, direction=direction, pad_id=self.pad_token_id,
                pad_token=self.pad_token, pad_type_id=self.pad_token_type_id, pad_to_multiple_of=pad_to_multiple_of,
            )  # fmt: skip
            if self._backend.padding != target:
                self._backend.enable_padding(**target)

    def pad(
        self,
        encoded_inputs,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad tokenized inputs (a dict of id lists, a dict of batches, or a list of dicts) as Transformers does.

        `padding`: True / 'longest' (to the longest row), 'max_length' (to `max_length`, else `model_max_length`)
        or False; rows are rounded up to `pad_to_multiple_of`. Tensor or array inputs come back as the same kind
        unless `return_tensors` says otherwise. This is what `transformers.DataCollatorWithPadding` calls.
        """
        return pad_encoded(self, encoded_inputs, padding, max_length, pad_to_multiple_of, padding_side,
                           return_attention_mask, return_tensors)  # fmt: skip

    def encode(self, text, text_pair=None, add_special_tokens: bool = True, **kwargs) -> Any:
        """The `input_ids` of one text or pair (keyword arguments as for calling the tokenizer)."""
        return self(text, text_pair, add_special_tokens=add_special_tokens, **kwargs)["input_ids"]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs) -> list[str]:
        """The tokens of a text (or pair), without special tokens unless asked."""
        options = {**kwargs, "return_offsets_mapping": True}  # the full encoding, whose tokens are kept
        return self(text, pair, add_special_tokens=add_special_tokens, **options).tokens()

    # ----- decoding -----

    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None):
        """Text of a sequence of ids (a list of sequences gives a list of texts)."""
        token_ids = _to_python(token_ids)
        if isinstance(token_ids, (list, tuple)) and token_ids and isinstance(token_ids[0], (list, tuple)):
            return self.batch_decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        text = self._backend.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
        return self._clean_up(text, clean_up_tokenization_spaces)

    def batch_decode(
        self, sequences, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None
    ) -> list[str]:
        """Texts of a batch of id sequences (a list of lists, or a 2-D tensor or array)."""
        sequences = _to_python(sequences)
        if sequences and not isinstance(sequences[0], (list, tuple)):
            sequences = [_to_python(row) for row in sequences]  # a list of tensors or arrays
        # one Rust call per row: on this project's 2-core machines `decode_batch`'s thread pool was 10% slower
        decode = self._backend.decode
        texts = [decode(row, skip_special_tokens=skip_special_tokens) for row in sequences]
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return [self._clean_up(text, True) for text in texts] if clean_up_tokenization_spaces else texts

    def _clean_up(self, text: str, clean_up: bool | None) -> str:
        if clean_up if clean_up is not None else self.clean_up_tokenization_spaces:
            for before, after in _CLEANUPS:
                text = text.replace(before, after)
        return text

    # ----- saving -----

    def save_pretrained(self, save_directory: str | os.PathLike) -> tuple[str, ...]:
        """Write tokenizer.json, tokenizer_config.json (and spiece.model if loaded from one) for Transformers too."""
        directory = Path(save_directory)
        if directory.exists() and not directory.is_dir():
            raise NotADirectoryError(f"save_directory {directory} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        # padding and truncation are per-call state; not copying the backend keeps the scores exact
        self._backend.no_padding()
        self._backend.no_truncation()
        self._backend.save(str(directory / TOKENIZER_FILE))
        config = {
            "tokenizer_class": type(self).__name__,
            **{key: (None if value is None else str(value)) for key, value in self._named.items()},
            "extra_special_tokens": self.extra_special_tokens,
            "model_max_length": self.model_max_length,
            "padding_side": self.padding_side,
            "truncation_side": self.truncation_side,
            "clean_up_tokenization_spaces": self.clean_up_tokenization_spaces,
            "model_input_names": self.model_input_names,
            **self._class_config(),
        }
        with open(directory / CONFIG_FILE, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, ensure_ascii=False)
            handle.write("\n")
        written = [str(directory / TOKENIZER_FILE), str(directory / CONFIG_FILE)]
        if self.vocab_file is not None and Path(self.vocab_file).is_file():
            target = directory / SPM_FILE
            if not target.exists() or not os.path.samefile(self.vocab_file, target):
                shutil.copyfile(self.vocab_file, target)
            written.append(str(target))
        return tuple(written)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, special_tokens={self.special_tokens_map})"
        )
