"""What the pipelines share: loading a checkpoint for a task, the model's window, length-sorted padded batches."""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Iterator, Sequence
from importlib import import_module

import torch
import transformers

from ..models.loading import HUB_ARGUMENTS, read_config
from ..precision import resolve_dtype

# task -> model_type -> the head class that task needs; checkpoints saved from `also` classes load into it too
TASK_CLASSES = {
    "classify": {"big_bird": "BigBirdForSequenceClassification",
                 "bigbird_pegasus": "BigBirdPegasusForSequenceClassification"},
    "answer": {"big_bird": "BigBirdForQuestionAnswering"},
    "fill-mask": {"big_bird": "BigBirdForMaskedLM"},
    "summarize": {"bigbird_pegasus": "BigBirdPegasusForConditionalGeneration"},
}
ALSO_ACCEPTED = {"BigBirdForMaskedLM": {"BigBirdForPreTraining"}}
TASK_WORDS = {
    "classify": "a sequence-classification",
    "answer": "a question-answering",
    "fill-mask": "a masked-language-model",
    "summarize": "a summarization (conditional generation)",
}


class TruncationWarning(UserWarning):
    """A document was longer than the model's window and only its first `window` tokens were read."""

    def __init__(self, index: int, detail: str):
        super().__init__(f"document {index}: {detail}")
        self.index = index
        self.detail = detail


@dataclasses.dataclass
class Loaded:
    """A model in eval mode, its tokenizer, and the longest input (tokens) one forward call takes."""

    model: torch.nn.Module
    tokenizer: object
    window: int


def check_hub_kwargs(hub_kwargs: dict) -> None:
    """Refuse keyword arguments that are not `from_pretrained`'s Hub arguments (revision, token, ...)."""
    unknown = sorted(set(hub_kwargs) - set(HUB_ARGUMENTS))
    if unknown:
        raise TypeError(f"unexpected keyword arguments {unknown}: the Hub arguments are {', '.join(HUB_ARGUMENTS)}")


def torch_dtype(dtype, device=None) -> torch.dtype | None:
    """A torch dtype from a dtype or its name ("auto", "float32", "bfloat16", "float16": see
    `bigbird.precision.resolve_dtype`) for `device`; None (the checkpoint's dtype) stays None."""
    return None if dtype is None else resolve_dtype(dtype, device)



def load_tokenizer(name_or_path: str | os.PathLike, **hub_kwargs):
    """The checkpoint's tokenizer (`transformers.AutoTokenizer`), with an error saying how to add a missing one."""
    try:
        return transformers.AutoTokenizer.from_pretrained(name_or_path, **hub_kwargs)
    except (OSError, ValueError, TypeError) as error:
        raise ValueError(f"{os.fspath(name_or_path)} has no usable tokenizer ({error}): save one next to the model "
                         "with tokenizer.save_pretrained(), or pass tokenizer=...") from None


def _bigbird_class(name: str):
    return getattr(import_module("bigbird"), name)


def _task_class_name(task: str, model_type: str, source: str) -> str:
    classes = TASK_CLASSES[task]
    if model_type not in classes:
        families = " or ".join(repr(family) for family in classes)
        raise ValueError(f"{source} is a {model_type!r} model, but {TASK_WORDS[task]} pipeline runs on "
                         f"{families} checkpoints")
    return classes[model_type]


def _check_architecture(task: str, class_name: str, architectures: list[str], source: str) -> None:
    accepted = {class_name} | ALSO_ACCEPTED.get(class_name, set())
    if architectures and not accepted & set(architectures):
        raise ValueError(
            f"{source} is a {architectures[0]} checkpoint, not {TASK_WORDS[task]} checkpoint ({class_name}): "
            "pick a model trained for this task, or the pipeline for this checkpoint's task"
        )


def window_length(config, tokenizer, max_length: int | None) -> int:
    """The longest input one forward call takes: the model's positions (a whole number of blocks), the
    tokenizer's `model_max_length`, and `max_length` when given (which may not exceed the other two)."""
    positions = config.max_position_embeddings
    limit = min(positions - positions % config.block_size, tokenizer.model_max_length)
    if max_length is None:
        return limit
    if max_length < 8 or max_length > limit:
        raise ValueError(f"max_length must be between 8 and this model's window of {limit} tokens, not {max_length}")
    return max_length


def _from_checkpoint(task: str, path, tokenizer, dtype, hub_kwargs: dict):
    values = read_config(path, **hub_kwargs)
    class_name = _task_class_name(task, values.get("model_type", ""), os.fspath(path))
    _check_architecture(task, class_name, values.get("architectures") or [], os.fspath(path))
    _check_castable(bool(values.get("quantization_config")), dtype, os.fspath(path))
    if tokenizer is None:
        tokenizer = load_tokenizer(path, **hub_kwargs)
    model = _bigbird_class(class_name).from_pretrained(path, dtype=dtype, **hub_kwargs)
    return model, tokenizer


def _check_castable(quantized: bool, dtype: torch.dtype | None, source: str) -> None:
    if quantized and dtype is not None:
        raise ValueError(f"{source} holds quantized weights, which cannot be cast to {dtype}: leave dtype (--dtype) "
                         "out to run it as saved")


def load(task: str, model, tokenizer=None, *, device=None, dtype=None, max_length: int | None = None,
         **hub_kwargs) -> Loaded:
    """The model (class chosen by `task` and the checkpoint's `model_type`) and tokenizer for a pipeline.

    `model` is a checkpoint directory or Hub id (its tokenizer is loaded from there unless given; `hub_kwargs`
    such as `revision` or `token` go to `from_pretrained`), or a loaded model, which then needs its `tokenizer`.
    A checkpoint saved for another task is refused with a message saying so. `device` and `dtype` (a torch
    dtype or its name; "auto": bfloat16 where the device computes it natively, else float32) move and cast the
    model; an unknown or unsupported dtype is refused before anything loads.
    """
    check_hub_kwargs(hub_kwargs)
    dtype = torch_dtype(dtype, device)
    if isinstance(model, (str, os.PathLike)):
        model, tokenizer = _from_checkpoint(task, model, tokenizer, dtype, hub_kwargs)
        dtype = None
    elif tokenizer is None:
        raise ValueError("a loaded model needs its tokenizer: pass tokenizer=...")
    elif not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise TypeError(f"model must be a checkpoint directory, a Hub id or a bigbird model, not {type(model)}")
    else:
        class_name = _task_class_name(task, model.config.model_type, type(model).__name__)
        if not isinstance(model, _bigbird_class(class_name)):
            raise ValueError(f"{task} needs a {class_name}, not a {type(model).__name__}")
        _check_castable(any(not p.is_floating_point() for p in model.parameters()), dtype, type(model).__name__)
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return Loaded(model.eval(), tokenizer, window_length(model.config, tokenizer, max_length))


def as_list(texts: str | Sequence[str], name: str) -> tuple[list[str], bool]:
    """`texts` as a list, and whether a single text was given; empty texts are refused by position."""
    single = isinstance(texts, str)
    texts = [texts] if single else list(texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{index}] is a {type(text).__name__}, not a str")
        if not text.strip():
            raise ValueError(f"{name}[{index}] is empty: there is nothing to read")
    return texts, single


def check_top_k(top_k: int) -> None:
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive int, not {top_k!r}")


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices of the rows, longest first, in groups of `batch_size`: rows of a batch have similar lengths."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, not {batch_size!r}")
    order = sorted(range(len(lengths)), key=lambda index: -lengths[index])
    for start in range(0, len(order), batch_size):
        yield order[start:start + batch_size]


def padded(rows: Sequence[Sequence[int]], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids` and `attention_mask`, both (len(rows), longest row), on `device`."""
    longest = max(len(row) for row in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), longest, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, :len(row)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def truncated(tokenizer, texts: list[str], window: int, verb: str) -> list[list[int]]:
    """Token ids of each text cut to `window` tokens (special tokens kept); a `TruncationWarning` per cut."""
    full = tokenizer(texts, verbose=False)["input_ids"]
    long = [index for index, ids in enumerate(full) if len(ids) > window]
    if long:
        cut = tokenizer([texts[index] for index in long], truncation=True, max_length=window)["input_ids"]
        for index, ids in zip(long, cut):
            warnings.warn(TruncationWarning(index, f"{len(full[index])} tokens, more than the model's window of "
                                                   f"{window}: {verb} from its first {window} tokens only"),
                          stacklevel=3)
            full[index] = ids
    return full
