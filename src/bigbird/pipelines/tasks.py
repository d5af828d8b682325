"""Pipelines over long documents: `classify`, `answer`, `summarize`, `fill_mask`.

Each takes a checkpoint directory or Hub id (or a loaded model with its tokenizer), one text or a list of
texts, and returns plain dicts; keyword arguments beyond the documented ones are `from_pretrained`'s Hub
arguments (`revision`, `token`, `cache_dir`, ...). Documents run in batches sorted by length, so that a batch
pads little; a document longer than the model's window is truncated to it with a `TruncationWarning`
(`answer` instead reads long contexts in overlapping windows). With `batch_size=1` a document's result does
not depend on the others: block-sparse attention is not padding-invariant, so a padded batch can shift scores
slightly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .generation import summary_settings
from .loading import (TruncationWarning, as_list, check_hub_kwargs, check_top_k, length_sorted_batches, load,
                      padded, truncated)
from .qa import answer

__all__ = ["classify", "answer", "summarize", "fill_mask", "TruncationWarning"]


def classify(texts: str | Sequence[str], model, tokenizer=None, *, top_k: int = 1, batch_size: int = 8,
             max_length: int | None = None, device=None, dtype=None, **hub_kwargs) -> dict | list[dict]:
    """Label each text with the checkpoint's `id2label`.

    `model`: a sequence-classification checkpoint directory or Hub id, or a loaded model (then pass its
    `tokenizer`). Scores are softmax probabilities (sigmoids for multi-label or single-output checkpoints).
    Returns per text `{"label": str, "score": float, "labels": [{"label", "score"}, ...]}`: the best label and
    the `top_k` best, best first; a list of them for a list of texts.
    """
    texts, single = as_list(texts, "texts")
    check_top_k(top_k)
    loaded = load("classify", model, tokenizer, device=device, dtype=dtype, max_length=max_length, **hub_kwargs)
    model, config = loaded.model, loaded.model.config
    names = getattr(config, "id2label", None) or {i: f"LABEL_{i}" for i in range(config.num_labels)}
    independent = config.problem_type == "multi_label_classification" or config.num_labels == 1
    ids = truncated(loaded.tokenizer, texts, loaded.window, "classified")
    results: list[dict] = [None] * len(texts)
    with torch.inference_mode():
        for rows in length_sorted_batches([len(row) for row in ids], batch_size):
            logits = model(**padded([ids[row] for row in rows], loaded.tokenizer.pad_token_id, model.device)).logits
            scores = logits.float().sigmoid() if independent else logits.float().softmax(-1)
            best = scores.topk(min(top_k, scores.shape[-1]), dim=-1)
            for i, row in enumerate(rows):
                labels = [{"label": names[int(index)], "score": float(score)}
                          for score, index in zip(best.values[i], best.indices[i])]
                results[row] = {**labels[0], "labels": labels}
    return results[0] if single else results


def summarize(texts: str | Sequence[str], model, tokenizer=None, *, batch_size: int = 4,
              max_length: int | None = None, device=None, dtype=None, generate_kwargs: dict | None = None,
              **hub_kwargs) -> dict | list[dict]:
    """Summarize each text with a BigBird-Pegasus generation checkpoint, through Transformers' `generate`.

    Decoding follows the checkpoint's generation_config.json (beams, lengths, ...); `generate_kwargs`
    (e.g. `{"num_beams": 2, "max_new_tokens": 64}`) override it, and are checked before the weights load: an
    unknown setting or a bad value is a ValueError. `max_length` limits the input tokens.
    Returns per text `{"summary": str}`; a list of them for a list of texts.
    """
    texts, single = as_list(texts, "texts")
    check_hub_kwargs(hub_kwargs)
    settings = summary_settings(generate_kwargs, model, **hub_kwargs)
    loaded = load("summarize", model, tokenizer, device=device, dtype=dtype, max_length=max_length, **hub_kwargs)
    model, tokenizer = loaded.model, loaded.tokenizer
    ids = truncated(tokenizer, texts, loaded.window, "summarized")
    results: list[dict] = [None] * len(texts)
    with torch.inference_mode():
        for rows in length_sorted_batches([len(row) for row in ids], batch_size):
            inputs = padded([ids[row] for row in rows], tokenizer.pad_token_id, model.device)
            generated = model.generate(**inputs, **settings)
            for row, summary in zip(rows, tokenizer.batch_decode(generated, skip_special_tokens=True)):
                results[row] = {"summary": summary.strip()}
    return results[0] if single else results


def fill_mask(texts: str | Sequence[str], model, tokenizer=None, *, top_k: int = 5, batch_size: int = 8,
              max_length: int | None = None, device=None, dtype=None, **hub_kwargs) -> dict | list[dict]:
    """Predict the tokens behind each mask token (`tokenizer.mask_token`, "[MASK]" for BigBird) of each text.

    `model`: a masked-language-model checkpoint (BigBirdForMaskedLM or BigBirdForPreTraining weights) or a
    loaded `BigBirdForMaskedLM` with its `tokenizer`. Returns per text `{"masks": [[{"token": str,
    "token_id": int, "score": float}, ...], ...]}`: for each mask in order, its `top_k` candidates, best first.
    """
    texts, single = as_list(texts, "texts")
    check_top_k(top_k)
    loaded = load("fill-mask", model, tokenizer, device=device, dtype=dtype, max_length=max_length, **hub_kwargs)
    model, tokenizer = loaded.model, loaded.tokenizer
    mask_id = tokenizer.mask_token_id
    ids = truncated(tokenizer, texts, loaded.window, "masks predicted")
    for index, row in enumerate(ids):
        if mask_id not in row:
            where = "in it" if tokenizer.mask_token not in texts[index] else "within the model's window"
            raise ValueError(f"texts[{index}] has no {tokenizer.mask_token} token {where} to fill")
    results: list[dict] = [None] * len(texts)
    with torch.inference_mode():
        for rows in length_sorted_batches([len(row) for row in ids], batch_size):
            inputs = padded([ids[row] for row in rows], tokenizer.pad_token_id, model.device)
            logits = model(**inputs).logits
            for i, row in enumerate(rows):
                positions = (inputs["input_ids"][i] == mask_id).nonzero().flatten()
                best = logits[i, positions].float().softmax(-1).topk(min(top_k, logits.shape[-1]), dim=-1)
                results[row] = {"masks": [
                    [{"token": tokenizer.decode([int(index)]).strip(), "token_id": int(index), "score": float(score)}
                     for score, index in zip(scores, indices)]
                    for scores, indices in zip(best.values, best.indices)
                ]}
    return results[0] if single else results
