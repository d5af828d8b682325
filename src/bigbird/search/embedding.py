"""Document embeddings and search: mean-pooled, unit-length vectors from a BigBird encoder.

Without a model argument, the default model is used (see `default_model`): all-MiniLM-L6-v2 warm-started to
4096 tokens.
"""

from __future__ import annotations

import dataclasses
import os
import re
import warnings
from collections.abc import Callable, Sequence

import torch

from ..models.loading import quiet_transformers, read_config
from ..pipelines.loading import (TruncationWarning, as_list, check_hub_kwargs, check_top_k, length_sorted_batches,
                                 load_tokenizer, padded, torch_dtype, truncated, window_length)
from .default_model import default_model

PASSAGE_WORDS = 100


@dataclasses.dataclass
class Embedder:
    """A BigBird encoder in eval mode, its tokenizer, and the longest input (tokens) it reads."""

    model: torch.nn.Module
    tokenizer: object
    window: int


def load_embedder(model: str | os.PathLike | None = None, *, device=None, dtype=None,
                  max_length: int | None = None, **hub_kwargs) -> Embedder:
    """The encoder of any BigBird checkpoint (a head checkpoint's head is left out), or the default model.

    `hub_kwargs` (`revision`, `token`, ...) go to `from_pretrained`.
    """
    import bigbird

    check_hub_kwargs(hub_kwargs)
    dtype = torch_dtype(dtype, device)
    path = default_model() if model is None else model
    _check_bigbird(path, hub_kwargs)
    tokenizer = load_tokenizer(path, **hub_kwargs)
    with quiet_transformers():
        encoder = bigbird.BigBirdModel.from_pretrained(path, dtype=dtype, **hub_kwargs)
    if device is not None:
        encoder = encoder.to(device)
    return Embedder(encoder.eval(), tokenizer, window_length(encoder.config, tokenizer, max_length))


def _check_bigbird(path, hub_kwargs: dict) -> None:
    found = read_config(path, **hub_kwargs).get("model_type")
    if found != "big_bird":
        hint = f": make one with `bigbird warm-start {path} --out DIR`" if found in ("bert", "roberta") else ""
        raise ValueError(f"{path} is a {found!r} checkpoint, not a BigBird ('big_bird') one{hint}")


def _as_embedder(model) -> Embedder:
    return model if isinstance(model, Embedder) else load_embedder(model)


@torch.no_grad()
def embed(texts: str | Sequence[str], model: Embedder | str | os.PathLike | None = None, *, batch_size: int = 4,
          max_length: int | None = None, on_batch: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Unit-length mean-pooled embeddings, (len(texts), hidden) float32 on the CPU (a single text: (hidden,)).

    Each text is read up to `max_length` tokens (default: the model's window, 4096 for the default model);
    a longer one is cut with a `TruncationWarning`. `model`: an `Embedder`, a checkpoint, or None (default).
    `on_batch(documents, tokens)` is called after each batch, e.g. to draw a progress bar.
    """
    embedder = _as_embedder(model)
    texts, single = as_list(texts, "texts")
    window = embedder.window if max_length is None else min(max_length, embedder.window)
    rows = truncated(embedder.tokenizer, texts, window, "embedded")
    device = next(embedder.model.parameters()).device
    out = torch.empty(len(texts), embedder.model.config.hidden_size)
    for batch in length_sorted_batches([len(row) for row in rows], batch_size):
        inputs = padded([rows[index] for index in batch], embedder.tokenizer.pad_token_id, device)
        hidden = embedder.model(**inputs).last_hidden_state.float()
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        out[batch] = torch.nn.functional.normalize(pooled, dim=-1).cpu()
        if on_batch is not None:
            on_batch(len(batch), sum(len(rows[index]) for index in batch))
    return out[0] if single else out


def passages(text: str, words: int = PASSAGE_WORDS) -> list[tuple[int, int]]:
    """(start, end) character spans of overlapping passages of `words` words (each starts half a passage on)."""
    spans = [match.span() for match in re.finditer(r"\S+", text)]
    step = max(words // 2, 1)
    starts = range(0, max(len(spans) - words, 0) + step, step)
    return [(spans[i][0], spans[min(i + words, len(spans)) - 1][1]) for i in starts if i < len(spans)]


def _query_vector(query: str, embedder: Embedder) -> torch.Tensor:
    """(hidden,): the query's embedding; a query longer than the window is cut with a warning that says so."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vector = embed(query, embedder)
    for record in caught:
        message = record.message
        warnings.warn(f"the query: {message.detail}" if isinstance(message, TruncationWarning) else message,
                      stacklevel=3)
    return vector


def _best_passage(document: str, question: torch.Tensor, embedder: Embedder) -> dict:
    spans = passages(document)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # the document's own warning has said it
        scores = embed([document[a:b] for a, b in spans], embedder, batch_size=16) @ question
    which = int(scores.argmax())
    start, end = spans[which]
    return {"passage": document[start:end], "passage_score": float(scores[which]), "start": start, "end": end}


def search(query: str, documents: Sequence[str], model: Embedder | str | os.PathLike | None = None, *,
           top_k: int = 5, batch_size: int = 4, document_embeddings: torch.Tensor | None = None,
           on_batch: Callable[[int, int], None] | None = None) -> list[dict]:
    """Rank `documents` by cosine similarity to `query`, best first; the `top_k` best, each as
    {"index", "score", "passage", "passage_score", "start", "end"}: the document's position in `documents`, its
    score, and its passage (about 100 words, at characters start:end) that matches the query best.

    `document_embeddings` (len(documents), hidden): reuse vectors from `embed` instead of computing them.
    `on_batch(documents, tokens)` is called after each batch of documents embedded.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty: give some words to search for")
    if not documents:
        raise ValueError("there are no documents to search")
    check_top_k(top_k)
    embedder = _as_embedder(model)
    vectors = document_embeddings if document_embeddings is not None \
        else embed(list(documents), embedder, batch_size=batch_size, on_batch=on_batch)
    question = _query_vector(query, embedder)
    scores = vectors @ question
    best = torch.argsort(scores, descending=True)[:top_k].tolist()
    return [{"index": index, "score": float(scores[index]), **_best_passage(documents[index], question, embedder)}
            for index in best]
