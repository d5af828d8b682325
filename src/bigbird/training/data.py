"""Training data for `bigbird train`: reading JSONL/CSV files, checking them, tokenizing, length-grouped batches.

Each task reads its own columns:

- classify: `text`, `label`
- qa: `question`, `context`, `answer`, `answer_start` (the answer's first character in the context; an empty
  answer means "no answer in this context")
- summarize: `document`, `summary`

Every problem is a `DataError` naming the file and line, raised before any training starts.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

COLUMNS = {
    "classify": ("text", "label"),
    "qa": ("question", "context", "answer", "answer_start"),
    "summarize": ("document", "summary"),
}
TEXT_COLUMNS = {"classify": ("text",), "qa": ("question", "context"), "summarize": ("document", "summary")}


class DataError(ValueError):
    """A data file that cannot be trained on; the message names the file (and line)."""


@dataclasses.dataclass
class Record:
    """One example as read: where it comes from (file, line) and its columns."""

    path: str
    line: int
    fields: dict

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclasses.dataclass
class Feature:
    """One model input: token ids, the example it comes from, and its target (by task: `label`; `start`, `end`
    token positions; `labels` summary ids). QA features also carry per token the character span in the context
    (None outside it)."""

    input_ids: list[int]
    example: int
    label: int | None = None
    start: int | None = None
    end: int | None = None
    labels: list[int] | None = None
    spans: list | None = None


def _rows(path: Path):
    """(line number, dict) for each record of a JSONL or CSV file."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as error:
                    raise DataError(f"{path}:{number}: not valid JSON ({error.msg})") from None
                if not isinstance(value, dict):
                    raise DataError(f"{path}:{number}: a record must be a JSON object, not {type(value).__name__}")
                yield number, value
    elif suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            header = next(reader, None)
            if header is None:
                return
            start = reader.line_num + 1
            for row in reader:
                if any(cell.strip() for cell in row):
                    if len(row) != len(header):
                        raise DataError(f"{path}:{start}: {len(row)} cells but the header names {len(header)} "
                                        f"columns ({', '.join(header)})")
                    yield start, dict(zip(header, row))
                start = reader.line_num + 1
    else:
        raise DataError(f"{path}: unknown format {suffix or '(no suffix)'!r}: use .jsonl (JSON lines) or .csv")


def read_records(path: str | Path, task: str) -> list[Record]:
    """The records of a data file, each checked for the task's columns (and QA answers against their offsets)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    records = []
    try:
        for number, fields in _rows(path):
            record = Record(str(path), number, fields)
            _check(record, task)
            records.append(record)
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not records:
        raise DataError(f"{path}: empty: no records (a {task} file needs the columns {', '.join(COLUMNS[task])})")
    return records


def _check(record: Record, task: str) -> None:
    fields = record.fields
    missing = [column for column in COLUMNS[task] if column not in fields or fields[column] is None]
    if missing:
        raise DataError(f"{record.where}: missing column {missing[0]!r} (a {task} record needs "
                        f"{', '.join(COLUMNS[task])})")
    for column in TEXT_COLUMNS[task]:
        if not isinstance(fields[column], str) or not fields[column].strip():
            raise DataError(f"{record.where}: {column!r} must be a non-empty text")
    if task == "classify":
        fields["label"] = str(fields["label"])
        if not fields["label"].strip():
            raise DataError(f"{record.where}: empty label")
    if task == "qa":
        answer, start = fields["answer"], fields["answer_start"]
        if not isinstance(answer, str):
            raise DataError(f"{record.where}: 'answer' must be a text, not {type(answer).__name__}")
        try:
            start = int(start)
        except (TypeError, ValueError):
            raise DataError(f"{record.where}: 'answer_start' must be a character offset (an integer), "
                            f"not {start!r}") from None
        fields["answer_start"] = start
        context = fields["context"]
        if answer and context[start:start + len(answer)] != answer or start < 0:
            found = context[max(start, 0):max(start, 0) + len(answer)]
            raise DataError(f"{record.where}: the answer {answer!r} is not at character {start} of the context "
                            f"(the context has {found!r} there)")


def label_set(records: Sequence[Record]) -> list[str]:
    """The labels of a classification training set, sorted."""
    return sorted({record.fields["label"] for record in records})


def check_labels(records: Sequence[Record], labels: Sequence[str]) -> None:
    """Refuse a record whose label is not one of `labels`, naming its file and line."""
    known = set(labels)
    for record in records:
        if record.fields["label"] not in known:
            raise DataError(f"{record.where}: label {record.fields['label']!r} is not in the label set "
                            f"({', '.join(labels)})")


def tokenize(task: str, records: Sequence[Record], tokenizer, max_length: int, *, label2id: dict | None = None,
             stride: int | None = None, max_target_length: int = 128) -> list[Feature]:
    """The model inputs of the records: documents cut to `max_length` tokens, QA contexts read in overlapping
    windows of `max_length` tokens (`stride` shared), summaries cut to `max_target_length`."""
    if task == "classify":
        ids = tokenizer([r.fields["text"] for r in records], truncation=True, max_length=max_length)["input_ids"]
        return [Feature(row, i, label=label2id[r.fields["label"]]) for i, (row, r) in enumerate(zip(ids, records))]
    if task == "summarize":
        ids = tokenizer([r.fields["document"] for r in records], truncation=True, max_length=max_length)["input_ids"]
        targets = tokenizer([r.fields["summary"] for r in records], truncation=True,
                            max_length=max_target_length)["input_ids"]
        return [Feature(row, i, labels=target) for i, (row, target) in enumerate(zip(ids, targets))]
    from ..pipelines.qa import windows

    try:
        pieces = windows(tokenizer, [r.fields["question"] for r in records], [r.fields["context"] for r in records],
                         max_length, stride)
    except ValueError as error:
        raise DataError(f"{records[0].path}: {error}") from None
    features = []
    for piece in pieces:
        fields = records[piece.document].fields
        start, end = _answer_tokens(piece.spans, fields["answer_start"], len(fields["answer"]))
        features.append(Feature(piece.ids, piece.document, start=start, end=end, spans=piece.spans))
    return features


def _answer_tokens(spans: list, first_char: int, length: int) -> tuple[int, int]:
    """Token positions of the answer's first and last characters in a window, or (0, 0) ([CLS]: no answer
    here) when the answer is empty or not wholly inside the window."""
    if length == 0:
        return 0, 0
    last_char = first_char + length - 1
    context = [(index, span) for index, span in enumerate(spans) if span is not None]
    if not context or context[0][1][0] > first_char or context[-1][1][1] <= last_char:
        return 0, 0
    start = next(index for index, span in context if span[1] > first_char)
    end = next(index for index, span in reversed(context) if span[0] <= last_char)
    return (start, end) if start <= end else (0, 0)


def global_batches(lengths: Sequence[int], size: int, *, seed: int, epoch: int, shuffle: bool = True,
                   group: int = 50) -> list[list[int]]:
    """Feature indices in batches of `size` with similar lengths (little padding).

    For training (`shuffle`) the order is drawn from (seed, epoch): shuffled, sorted by length within chunks of
    `group` batches, batches shuffled again; the last batch is filled up from the start so that every batch is
    whole (every process of a distributed run then gets the same number of rows). For evaluation the features
    are sorted by length and the last batch may be short.
    """
    if size < 1:
        raise ValueError(f"the batch size must be at least 1, not {size}")
    count = len(lengths)
    if not shuffle:
        order = sorted(range(count), key=lambda index: -lengths[index])
        return [order[start:start + size] for start in range(0, count, size)]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(count, generator=generator).tolist()
    needed = math.ceil(count / size) * size
    order += (order * math.ceil(needed / count))[: needed - count]
    chunk = size * group
    grouped = []
    for start in range(0, len(order), chunk):
        grouped += sorted(order[start:start + chunk], key=lambda index: -lengths[index])
    batches = [grouped[start:start + size] for start in range(0, len(grouped), size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def collate(features: Sequence[Feature], task: str, pad_id: int, length: int | None = None) -> dict:
    """Right-padded tensors for the model, to `length` tokens (default: the longest feature): `input_ids`,
    `attention_mask`, and the targets (`labels`; `start_positions`, `end_positions`)."""
    length = length or max(len(f.input_ids) for f in features)
    ids = torch.full((len(features), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(features), length, dtype=torch.long)
    for row, feature in enumerate(features):
        ids[row, :len(feature.input_ids)] = torch.tensor(feature.input_ids)
        mask[row, :len(feature.input_ids)] = 1
    batch = {"input_ids": ids, "attention_mask": mask}
    if task == "classify":
        batch["labels"] = torch.tensor([f.label for f in features], dtype=torch.long)
    elif task == "qa":
        batch["start_positions"] = torch.tensor([f.start for f in features], dtype=torch.long)
        batch["end_positions"] = torch.tensor([f.end for f in features], dtype=torch.long)
    else:
        longest = max(len(f.labels) for f in features)
        labels = torch.full((len(features), longest), -100, dtype=torch.long)
        for row, feature in enumerate(features):
            labels[row, :len(feature.labels)] = torch.tensor(feature.labels)
        batch["labels"] = labels
    return batch
