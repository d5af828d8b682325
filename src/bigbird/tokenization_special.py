"""`SpecialTokensMixin`: the named special tokens (`pad_token`, `cls_token_id`, ...), the unnamed extra ones, and
adding tokens to the vocabulary, with Transformers' semantics.

The tokenizer keeps `_named` (name -> str or `AddedToken`), `_extras` (a list) and `_backend` (the Rust
tokenizer). As in Transformers, setting `tokenizer.pad_token = "[PAD]"` only names the token (its id is unk's until
it is in the vocabulary) and does not change the special-token template; `add_special_tokens` names and adds.
"""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken

from .tokenization_files import NAMED_SPECIAL_TOKENS


def _special(token: str | AddedToken) -> AddedToken:
    """A special token as Transformers adds it: a str becomes an unnormalized, unstripped `AddedToken`."""
    return AddedToken(token, normalized=False, special=True) if isinstance(token, str) else token


def _named_token(key: str, what: str) -> property:
    def get(self) -> str | None:
        value = self._named.get(key)
        return None if value is None else str(value)

    def set(self, value: str | AddedToken | None) -> None:
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise TypeError(f"{key} must be a str, an AddedToken or None, not {type(value).__name__}")
        self._named[key] = value

    return property(get, set, doc=f"{what}, or None. Setting it does not add it to the vocabulary "
                                  "(`add_special_tokens` does).")  # fmt: skip


def _named_token_id(key: str) -> property:
    def get(self) -> int | None:
        return self._token_id(self._named.get(key))

    def set(self, index: int | None) -> None:
        token = None if index is None else self._backend.id_to_token(int(index))
        if index is not None and token is None:
            raise ValueError(f"{key}_id {index} is not in the vocabulary (size {len(self)})")
        self._named[key] = token

    return property(get, set, doc=f"Id of `{key}` (settable to an id of the vocabulary).")


class SpecialTokensMixin:
    """Special-token attributes and `add_tokens` / `add_special_tokens` of `SentencePieceTokenizer`."""

    def _token_id(self, token) -> int | None:
        return None if token is None else self.convert_tokens_to_ids(str(token))

    bos_token = _named_token("bos_token", "Beginning-of-sequence token")
    eos_token = _named_token("eos_token", "End-of-sequence token")
    unk_token = _named_token("unk_token", "Unknown token")
    sep_token = _named_token("sep_token", "Separator token")
    pad_token = _named_token("pad_token", "Padding token")
    cls_token = _named_token("cls_token", "Classifier token")
    mask_token = _named_token("mask_token", "Mask token")
    bos_token_id = _named_token_id("bos_token")
    eos_token_id = _named_token_id("eos_token")
    unk_token_id = _named_token_id("unk_token")
    sep_token_id = _named_token_id("sep_token")
    pad_token_id = _named_token_id("pad_token")
    cls_token_id = _named_token_id("cls_token")
    mask_token_id = _named_token_id("mask_token")
    pad_token_type_id = 0

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set, e.g. `{'cls_token': '[CLS]', ...}`."""
        return {key: str(value) for key, value in self._named.items() if value is not None}

    @property
    def extra_special_tokens(self) -> list[str]:
        """Special tokens without a name (Pegasus' `<mask_1>`, `<unk_2>`, ...); settable to a list (or None)."""
        return [str(value) for value in self._extras]

    @extra_special_tokens.setter
    def extra_special_tokens(self, tokens) -> None:
        if tokens is not None and not isinstance(tokens, (list, tuple)):
            raise TypeError(f"extra_special_tokens must be a list of tokens, not {type(tokens).__name__}")
        self._extras = list(tokens or [])

    additional_special_tokens = extra_special_tokens

    def add_tokens(self, new_tokens, special_tokens: bool = False) -> int:
        """Add tokens (str or `AddedToken`, one or a list) that are not yet in the vocabulary; return how many.

        Added tokens are never split; `special_tokens=True` also makes them skippable in `decode`. Resize the
        model's embeddings to `len(tokenizer)` afterwards.
        """
        if not new_tokens:
            return 0
        tokens = list(new_tokens) if isinstance(new_tokens, (list, tuple)) else [new_tokens]
        for token in tokens:
            if not isinstance(token, (str, AddedToken)):
                raise TypeError(f"add_tokens takes str or AddedToken tokens, not {type(token).__name__}")
        if special_tokens:
            return self._backend.add_special_tokens(tokens)
        return self._backend.add_tokens(tokens)

    def add_special_tokens(self, special_tokens_dict: dict[str, Any], replace_extra_special_tokens: bool = True) -> int:
        """Set named special tokens (`{"pad_token": "[PAD]", ...}`) and `extra_special_tokens`, adding the new ones
        to the vocabulary; return how many were added. As in Transformers, new extra tokens replace the old list
        unless `replace_extra_special_tokens=False` (the old ones stay in the vocabulary either way).
        """
        special_tokens_dict = dict(special_tokens_dict or {})
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get("extra_special_tokens"):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        to_add = []
        for key, value in special_tokens_dict.items():
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in value):
                    raise TypeError("extra_special_tokens must be a list of str or AddedToken")
                new = [_special(token) for token in value if replace_extra_special_tokens or str(token) not in
                       self.extra_special_tokens]  # fmt: skip
                self._extras = new if replace_extra_special_tokens and new else self._extras + new
                to_add += new
            elif key in NAMED_SPECIAL_TOKENS:
                if not isinstance(value, (str, AddedToken)):
                    raise TypeError(f"{key} must be a str or an AddedToken, not {type(value).__name__}")
                self._named[key] = _special(value)
                to_add.append(self._named[key])
            else:
                raise ValueError(f"{key!r} is not a special token name; use one of {[*NAMED_SPECIAL_TOKENS]} "
                                 "or 'extra_special_tokens'")  # fmt: skip
        return self.add_tokens(to_add, special_tokens=True)

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        """Id -> `AddedToken` of every added (never split) token."""
        return self._backend.get_added_tokens_decoder()

    def get_added_vocab(self) -> dict[str, int]:
        """Token -> id of the added tokens."""
        return {str(token): index for index, token in sorted(self.added_tokens_decoder.items())}

    @property
    def all_special_tokens(self) -> list[str]:
        """Named then extra special tokens, each once."""
        return list(dict.fromkeys([*self.special_tokens_map.values(), *self.extra_special_tokens]))

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of `all_special_tokens`."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens: bool = False):
        """1 for each special token of an already formatted id sequence, 0 for the others (what
        `DataCollatorForLanguageModeling` asks for, with `already_has_special_tokens=True`)."""
        if not already_has_special_tokens or token_ids_1 is not None:
            raise ValueError(
                "get_special_tokens_mask needs one sequence that already has its special tokens (pass "
                "already_has_special_tokens=True); for new texts, call the tokenizer with "
                "return_special_tokens_mask=True"
            )
        special = set(self.all_special_ids)
        return [1 if int(index) in special else 0 for index in token_ids_0]
