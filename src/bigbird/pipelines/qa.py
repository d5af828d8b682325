"""Extractive question answering over contexts of any length.

The question and the context are packed into the model's window; a longer context is cut into overlapping
windows (`stride` tokens shared by neighbours). Each window scores every legal span (context tokens only,
start <= end, at most `max_answer_length` tokens) as p(start) * p(end) with the probabilities taken over the
window's context tokens and [CLS]; the best span over all windows wins, unless the no-answer score ([CLS] as
start and end, the lowest over the windows) is higher.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from .loading import as_list, length_sorted_batches, load, padded

DEFAULT_STRIDE = 128


@dataclasses.dataclass
class Window:
    """One model input: which document it reads, its token ids, and per token the character span in the
    context (None for question and special tokens)."""

    document: int
    ids: list[int]
    spans: list[tuple[int, int] | None]


def _pairs(question, context) -> tuple[list[str], list[str], bool]:
    single = isinstance(question, str)
    if isinstance(context, str) != single:
        raise ValueError("pass one question with one context, or a list of questions with a list of contexts")
    questions, _ = as_list(question, "question")
    if single and (context is None or not context.strip()):
        raise ValueError("the context is empty: a question needs a context to answer from")
    contexts, _ = as_list(context, "context")
    if len(questions) != len(contexts):
        raise ValueError(f"{len(questions)} questions but {len(contexts)} contexts: pass one context per question")
    return questions, contexts, single


def windows(tokenizer, questions: Sequence[str], contexts: Sequence[str], window: int,
            stride: int | None) -> list[Window]:
    """Every document's windows: [CLS] question [SEP] context piece [SEP], at most `window` tokens, neighbours
    sharing `stride` context tokens (default: min(128, half the room the question leaves))."""
    question_ids = tokenizer(list(questions), add_special_tokens=False, verbose=False)["input_ids"]
    question_lengths = [len(ids) for ids in question_ids]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    out = []
    for document, (question, context, length) in enumerate(zip(questions, contexts, question_lengths)):
        room = window - length - specials
        if room < 2:
            raise ValueError(f"a question of {length} tokens leaves no room for the context in the model's window "
                             f"of {window} tokens (question {document}): shorten it")
        overlap = min(DEFAULT_STRIDE, room // 2) if stride is None else stride
        if not 0 <= overlap < room:
            raise ValueError(f"stride must be at least 0 and less than the {room} context tokens a window of "
                             f"document {document} holds, not {stride}")
        encoding = tokenizer(question, context, truncation="only_second", max_length=window, stride=overlap,
                             return_overflowing_tokens=True, return_offsets_mapping=True)
        for row, ids in enumerate(encoding["input_ids"]):
            sequence_ids = encoding.sequence_ids(row)
            spans = [tuple(span) if part == 1 else None
                     for span, part in zip(encoding["offset_mapping"][row], sequence_ids)]
            out.append(Window(document, ids, spans))
    return out


def best_spans(start_logits: torch.Tensor, end_logits: torch.Tensor, context: torch.Tensor, with_null: bool,
               max_answer_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The best legal span of each row.

    start_logits, end_logits: (rows, length); context: (rows, length) bool, the tokens an answer may use.
    Returns start and end token indices (rows,), the span's log score (rows,) and the no-answer log score
    (rows,), -inf without `with_null`; probabilities are over the context tokens and, `with_null`, token 0.
    """
    allowed = context.clone()
    allowed[:, 0] |= with_null
    start = start_logits.float().masked_fill(~allowed, -math.inf).log_softmax(-1)
    end = end_logits.float().masked_fill(~allowed, -math.inf).log_softmax(-1)
    null = start[:, 0] + end[:, 0] if with_null else torch.full_like(start[:, 0], -math.inf)
    start, end = start.masked_fill(~context, -math.inf), end.masked_fill(~context, -math.inf)
    length = start.shape[1]
    widths = min(max_answer_length, length)
    scores = torch.full((start.shape[0], length, widths), -math.inf, device=start.device)
    for width in range(widths):
        scores[:, : length - width, width] = start[:, : length - width] + end[:, width:]
    best, index = scores.flatten(1).max(dim=-1)
    first = index // widths
    return first, first + index % widths, best, null


def _answer(context: str, window: Window, first: int, last: int, log_score: float) -> dict:
    begin, finish = window.spans[first][0], window.spans[last][1]
    while begin < finish and context[begin].isspace():
        begin += 1
    while finish > begin and context[finish - 1].isspace():
        finish -= 1
    return {"answer": context[begin:finish], "start": begin, "end": finish, "score": math.exp(log_score),
            "no_answer": False}


def answer(question: str | Sequence[str], context: str | Sequence[str], model, tokenizer=None, *,
           stride: int | None = None, max_answer_length: int = 30, batch_size: int = 8,
           max_length: int | None = None, device=None, dtype=None, **hub_kwargs) -> dict | list[dict]:
    """Answer each question from its context by extracting a span of the context.

    question, context: a str each, or lists of the same length. `model`: a question-answering checkpoint
    directory or Hub id, or a loaded `BigBirdForQuestionAnswering` (then pass its `tokenizer`). Contexts longer
    than the window (`max_length` tokens, default the model's) are read in windows overlapping by `stride`
    tokens; windows of all documents run in length-sorted batches of `batch_size`. Other keyword arguments are
    `from_pretrained`'s Hub arguments (`revision`, `token`, ...).

    Returns per question `{"answer": str, "start": int, "end": int, "score": float, "no_answer": bool}` where
    `context[start:end] == answer`; a no-answer result has answer "" and start = end = 0.
    """
    questions, contexts, single = _pairs(question, context)
    if max_answer_length < 1:
        raise ValueError(f"max_answer_length must be at least 1, not {max_answer_length}")
    loaded = load("answer", model, tokenizer, device=device, dtype=dtype, max_length=max_length, **hub_kwargs)
    model, tokenizer = loaded.model, loaded.tokenizer
    pieces = windows(tokenizer, questions, contexts, loaded.window, stride)
    with_null = tokenizer.cls_token_id is not None
    results: list[tuple[Window, int, int, float, float]] = [None] * len(pieces)
    with torch.inference_mode():
        for rows in length_sorted_batches([len(piece.ids) for piece in pieces], batch_size):
            inputs = padded([pieces[row].ids for row in rows], tokenizer.pad_token_id, model.device)
            outputs = model(**inputs)
            length = inputs["input_ids"].shape[1]
            context_mask = torch.tensor([[span is not None for span in pieces[row].spans]
                                         + [False] * (length - len(pieces[row].ids)) for row in rows],
                                        device=model.device)
            found = best_spans(outputs.start_logits, outputs.end_logits, context_mask, with_null, max_answer_length)
            for i, row in enumerate(rows):
                first, last, score, null = (value[i].item() for value in found)
                results[row] = (pieces[row], first, last, score, null)
    by_document: list[list[tuple[Window, int, int, float, float]]] = [[] for _ in contexts]
    for result in results:
        by_document[result[0].document].append(result)
    answers = []
    for text, mine in zip(contexts, by_document):
        best = max(mine, key=lambda result: result[3])
        null = min(result[4] for result in mine)
        if null > best[3]:
            answers.append({"answer": "", "start": 0, "end": 0, "score": math.exp(null), "no_answer": True})
        else:
            answers.append(_answer(text, *best[:4]))
    return answers[0] if single else answers
