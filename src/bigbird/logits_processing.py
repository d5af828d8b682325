"""Next-token score processing during generation, with Transformers' rules and order.

Each processor maps (tokens so far (rows, length), scores (rows, vocab)) to new scores. The order is
Transformers': repetition penalty, no-repeat n-grams, bad words, minimum length (and minimum new tokens),
forced first/last token, the caller's own processors; then, when sampling, temperature, top-k and top-p.
As in Transformers, a caller's processor of a kind built here (recognised as Transformers' class of that
name) takes the built-in one's place instead of following it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

from .generation_config import ResolvedGeneration

Processor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
NEG_INF = float("-inf")
T = TypeVar("T")


def transformers_kind(item: object) -> str | None:
    """The class name of an instance of a Transformers class (such as "RepetitionPenaltyLogitsProcessor"), else
    None: a caller's processor or criterion of the kind `generate()` builds itself under that name."""
    module = type(item).__module__ or ""
    return type(item).__name__ if module == "transformers" or module.startswith("transformers.") else None


def merged_with_custom(defaults: Sequence[tuple[str, T]], custom: Sequence[T], what: str) -> list[T]:
    """Transformers' merge of the built-in (kind, item) pairs with a caller's items: the first caller's item of a
    built-in one's kind takes its place (with a warning), the other caller's items follow, in their order."""
    merged: list[T] = []
    for kind, default in defaults:
        replacement = next((item for item in custom if transformers_kind(item) == kind), None)
        if replacement is not None:
            warnings.warn(f"a custom {what} of type {kind} was passed to generate(), which also builds one from its "
                          f"settings: the custom {kind} takes its place (see its documentation for the settings "
                          "that build it)", UserWarning)
        merged.append(default if replacement is None else replacement)
    merged.extend(item for item in custom if all(item is not kept for kept in merged))
    return merged


def build_processors(settings: ResolvedGeneration, prompt_padding: torch.Tensor | None = None,
                     custom: Sequence[Processor] = ()) -> list[Processor]:
    """The processors a generation call applies, in order.

    prompt_padding: (rows,) number of left-padding tokens of each prompt, which the repetition penalty skips.
    custom: the caller's processors (`generate(logits_processor=...)`): one of Transformers' classes that
    `generate()` builds too (such as `RepetitionPenaltyLogitsProcessor`) replaces the built-in one, the others
    follow the built-in ones, before the sampling warpers, where Transformers puts them.
    """
    built: list[tuple[str, Processor]] = []
    if settings.repetition_penalty != 1.0:
        built.append(("RepetitionPenaltyLogitsProcessor",
                      repetition_penalty(settings.repetition_penalty, prompt_padding)))
    if settings.no_repeat_ngram_size > 0:
        built.append(("NoRepeatNGramLogitsProcessor", no_repeat_ngram(settings.no_repeat_ngram_size)))
    if settings.bad_words_ids is not None:
        words = [w for w in settings.bad_words_ids if not (len(w) == 1 and w[0] in (settings.eos_token_id or []))]
        built.append(("NoBadWordsLogitsProcessor", bad_words(words)))
    eos = settings.eos_token_id
    if eos is not None and settings.min_length > 0:
        built.append(("MinLengthLogitsProcessor", min_length(settings.min_length, eos)))
    if eos is not None and settings.min_new_tokens is not None and settings.min_new_tokens > 0:
        # The same rule as the one above (min_length counts min_new_tokens), in its own place to be replaced.
        built.append(("MinNewTokensLengthLogitsProcessor",
                      min_length(settings.prompt_length + settings.min_new_tokens, eos)))
    if settings.forced_bos_token_id is not None:
        built.append(("ForcedBOSTokenLogitsProcessor", force_token_at(1, [settings.forced_bos_token_id])))
    if settings.forced_eos_token_id is not None:
        built.append(("ForcedEOSTokenLogitsProcessor",
                      force_token_at(settings.max_length - 1, settings.forced_eos_token_id)))
    processors = merged_with_custom(built, custom, "logits processor")
    if settings.do_sample:
        keep = 1 if settings.num_beams == 1 else (len(eos) if eos else 1) + 1
        if settings.temperature != 1.0:
            processors.append(lambda ids, scores: scores / settings.temperature)
        if settings.top_k != 0:
            processors.append(top_k(max(settings.top_k, keep)))
        if settings.top_p < 1.0:
            processors.append(top_p(settings.top_p, keep))
    return processors


def apply(processors: list[Processor], ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    for processor in processors:
        scores = processor(ids, scores)
    return scores


def repetition_penalty(penalty: float, prompt_padding: torch.Tensor | None) -> Processor:
    """Scores of tokens already present are divided by `penalty` (multiplied when negative)."""

    def process(ids, scores):
        vocab = scores.shape[-1]
        if prompt_padding is not None:
            positions = torch.arange(ids.shape[1], device=ids.device)
            ids = ids.masked_fill(positions[None, :] < prompt_padding[:, None], vocab)
        widened = torch.cat([scores, scores.new_zeros(scores.shape[0], 1)], dim=1)
        seen = widened.gather(1, ids)
        seen = torch.where(seen < 0, seen * penalty, seen / penalty)
        return widened.scatter(1, ids, seen)[:, :vocab]

    return process


def no_repeat_ngram(n: int) -> Processor:
    """Ban every token that would complete an n-gram already present in the row."""

    def process(ids, scores):
        length = ids.shape[1]
        if length < n:
            return scores
        windows = ids.unfold(1, n, 1)  # (rows, length - n + 1, n)
        current = ids[:, length - n + 1:]  # the last n - 1 tokens
        repeats = (windows[:, :, : n - 1] == current[:, None, :]).all(dim=-1)
        vocab = scores.shape[-1]
        banned = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        banned.scatter_(1, torch.where(repeats, windows[:, :, -1].clamp(max=vocab), vocab), True)
        return scores.masked_fill(banned[:, :vocab], NEG_INF)

    return process


def bad_words(words: list[list[int]]) -> Processor:
    """Ban single-token words always, and the last token of a longer word when the row ends with its prefix."""

    def process(ids, scores):
        vocab = scores.shape[-1]
        too_large = sorted({t for w in words for t in w if t >= vocab})
        if too_large:
            raise ValueError(f"bad_words_ids holds token ids {too_large} beyond the vocabulary ({vocab} tokens)")
        banned = torch.zeros_like(scores, dtype=torch.bool)
        for word in words:
            prefix = word[:-1]
            if len(prefix) > ids.shape[1]:
                continue
            if prefix:
                hits = (ids[:, -len(prefix):] == torch.tensor(prefix, device=ids.device)).all(dim=-1)
                banned[:, word[-1]] |= hits
            else:
                banned[:, word[-1]] = True
        return scores.masked_fill(banned, NEG_INF)

    return process


def min_length(length: int, eos: list[int]) -> Processor:
    """Forbid end-of-sequence tokens while rows are shorter than `length` (prompt included)."""

    def process(ids, scores):
        if ids.shape[1] >= length:
            return scores
        scores = scores.clone()
        scores[:, eos] = NEG_INF
        return scores

    return process


def force_token_at(length: int, tokens: list[int]) -> Processor:
    """When rows have `length` tokens, allow only `tokens` (score 0, everything else -inf)."""

    def process(ids, scores):
        if ids.shape[1] != length:
            return scores
        forced = torch.full_like(scores, NEG_INF)
        forced[:, tokens] = 0
        return forced

    return process


def top_k(k: int) -> Processor:
    def process(ids, scores):
        threshold = torch.topk(scores, min(k, scores.shape[-1])).values[..., -1:]
        return scores.masked_fill(scores < threshold, NEG_INF)

    return process


def top_p(p: float, keep: int) -> Processor:
    """Keep the smallest set of top tokens whose probability reaches `p` (at least `keep` tokens)."""

    def process(ids, scores):
        ascending, order = torch.sort(scores, descending=False)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= 1 - p
        drop[..., -keep:] = False
        return scores.masked_fill(drop.scatter(1, order, drop), NEG_INF)

    return process
