"""The model, tokenizer and label set a `bigbird train` run starts from, checked before any weight is read."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from importlib import import_module

import torch

from ..pipelines.loading import TASK_CLASSES
from .data import label_set
from ..models.loading import quiet_transformers

PIPELINE_TASK = {"classify": "classify", "qa": "answer", "summarize": "summarize"}


def model_class(task: str, config: dict, source: str) -> type:
    """The bigbird class that trains `task` on a checkpoint of this config's model type."""
    classes = TASK_CLASSES[PIPELINE_TASK[task]]
    model_type = config.get("model_type")
    if model_type not in classes:
        raise ValueError(f"{source} is a {model_type!r} model; {task} trains {' or '.join(classes)} models")
    return getattr(import_module("bigbird"), classes[model_type])


def _head_labels(config: dict) -> list[str] | None:
    """The labels of the classification head a checkpoint already has (in id order), or None without one."""
    if not any(name.endswith("ForSequenceClassification") for name in config.get("architectures") or []):
        return None
    id2label = config.get("id2label") or {}
    return [id2label[key] for key in sorted(id2label, key=int)]


def _generic(labels: Sequence[str]) -> bool:
    return all(label == f"LABEL_{index}" for index, label in enumerate(labels))


def choose_labels(wanted: Sequence[str] | None, config: dict, source: str, records) -> list[str]:
    """The label set, in id order: `wanted` (--labels), else those of the checkpoint's trained classification
    head, else the training file's, sorted. A head for other labels, or for another number of them, is refused."""
    head = _head_labels(config)
    if head and not _generic(head):
        if wanted is None or list(wanted) == head:
            return head
        raise ValueError(f"--labels names {len(wanted)} labels ({', '.join(wanted)}), but {source} is a classifier "
                         f"trained for {len(head)} ({', '.join(head)}, in this order): leave out --labels to go on "
                         "training it, or start from a checkpoint without a classification head")
    labels = list(wanted) if wanted else label_set(records)
    if head and len(labels) != len(head):
        given = "--labels names" if wanted else "the training data has"
        raise ValueError(f"{source} has a classification head with {len(head)} outputs, but {given} {len(labels)} "
                         f"labels ({', '.join(labels)}): start from a checkpoint without a classification head, "
                         "or with one for as many labels")
    return labels


def load_model(cls: type, source: str, seed: int, **overrides) -> torch.nn.Module:
    """`cls.from_pretrained(source, **overrides)`, new weights drawn from `seed` (the same on every process);
    a warning names the weights the checkpoint does not have."""
    torch.manual_seed(seed)
    with quiet_transformers():
        model, info = cls.from_pretrained(source, output_loading_info=True, **overrides)
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        warnings.warn(f"{', '.join(missing)} newly initialised: {source} does not have them", UserWarning,
                      stacklevel=2)
    return model
