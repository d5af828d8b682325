"""Evaluation during `bigbird train`: predictions on the evaluation set, shared out over the processes, and the
task's metrics (see `metrics`)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch

from . import metrics as training_metrics
from .data import Feature, Record, collate, global_batches
from .distributed import Runtime, gather


def _predict(task: str, model, batch: dict, rows: Sequence[Feature], tokenizer, generate: dict) -> list:
    """One prediction per row: a label id, (first, last, span score, no-answer score), or a summary."""
    if task == "summarize":
        generator = model.module if hasattr(model, "module") else model
        sharded = hasattr(generator, "unshard")  # FSDP2: generate() runs outside forward(), gather the root's weights
        if sharded:
            generator.unshard()
        try:
            ids = generator.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **generate)
        finally:
            if sharded:
                generator.reshard()
        return tokenizer.batch_decode(ids.tolist(), skip_special_tokens=True)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask")}
    outputs = model(**inputs)
    if task == "classify":
        return outputs.logits.argmax(-1).tolist()
    from ..pipelines.qa import best_spans

    length = batch["input_ids"].shape[1]
    context = torch.tensor([[span is not None for span in row.spans] + [False] * (length - len(row.spans))
                            for row in rows], device=outputs.start_logits.device)
    found = best_spans(outputs.start_logits, outputs.end_logits, context, with_null=True, max_answer_length=30)
    return list(zip(*(value.tolist() for value in found)))


def evaluate(task: str, model, features: Sequence[Feature], records: Sequence[Record], *, tokenizer,
             num_labels: int, batch_size: int, runtime: Runtime, autocast=contextlib.nullcontext,
             generate: dict | None = None) -> dict:
    """The metrics of `model` on the evaluation features (every process computes the same numbers).

    `autocast` makes the mixed-precision context of a forward pass. Length-sorted batches are dealt out to the
    processes in turn (each gets as many, repeating the last, so that sharded models run in step), and the
    predictions are gathered.
    """
    batches = global_batches([len(f.input_ids) for f in features], batch_size, seed=0, epoch=0, shuffle=False)
    batches += [batches[-1]] * ((-len(batches)) % runtime.world)
    mine = {}
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast():
        for rows in batches[runtime.rank::runtime.world]:
            batch = {key: value.to(runtime.device) for key, value in
                     collate([features[i] for i in rows], task, tokenizer.pad_token_id).items()}
            predictions = _predict(task, model, batch, [features[i] for i in rows], tokenizer, generate or {})
            mine.update(zip(rows, predictions))
    model.train(was_training)
    predicted = {}
    for part in gather(mine, runtime):
        predicted.update(part)
    if task == "classify":
        return training_metrics.classification([predicted[i] for i in range(len(features))],
                                               [f.label for f in features], num_labels)
    if task == "summarize":
        return training_metrics.rouge([predicted[i] for i in range(len(features))],
                                      [records[f.example].fields["summary"] for f in features])
    return training_metrics.question_answering(_answers(features, records, predicted),
                                               [record.fields["answer"] for record in records])


def _answers(features: Sequence[Feature], records: Sequence[Record], predicted: dict) -> list[str]:
    """Per example the best span over its windows, or "" when the lowest no-answer score beats it."""
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for index, feature in enumerate(features):
        first, last, score, no_answer = predicted[index]
        example = feature.example
        null[example] = min(null.get(example, float("inf")), no_answer)
        if feature.spans[first] is not None and score > best.get(example, (float("-inf"), ""))[0]:
            context = records[example].fields["context"]
            best[example] = (score, context[feature.spans[first][0]:feature.spans[last][1]].strip())
    answers = []
    for example in range(len(records)):
        score, text = best.get(example, (float("-inf"), ""))
        answers.append("" if null.get(example, float("-inf")) > score else text)
    return answers
