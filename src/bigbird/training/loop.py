"""`train(settings)`: fine-tune a BigBird / BigBird-Pegasus checkpoint for classification, extractive QA or
summarization, on one process or many under torchrun (DDP, or FSDP2 with `fsdp`).

AdamW (no weight decay on biases and LayerNorms) with a linear warm-up and a linear decay to zero, gradient
accumulation, gradient clipping, bf16 autocast (CPU and GPU) or fp16 autocast with a grad scaler (GPU),
evaluation at the end of each epoch, checkpoints with the best kept, `resume` from a checkpoint with the same
loss curve as an uninterrupted run, a progress bar on a terminal and `OUT/metrics.json` at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from importlib import import_module
from pathlib import Path

import torch

from . import run_state as checkpoints
from ..hub import resolve_file
from ..pipelines.loading import TASK_CLASSES, window_length
from ..tokenization_json import load_tokenizer
from .data import DataError, check_labels, collate, global_batches, label_set, read_records, tokenize
from .distributed import (Runtime, barrier, full_model_state, full_optimizer_state, load_optimizer_state,
                                   no_gradient_sync, setup, teardown, total, wrap)
from .evaluate import evaluate
from .metrics import PRIMARY

PIPELINE_TASK = {"classify": "classify", "qa": "answer", "summarize": "summarize"}
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclasses.dataclass
class TrainSettings:
    """What `bigbird train` runs; the CLI's options by the same names."""

    task: str
    model: str
    train: str
    out: str
    eval: str | None = None
    epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    max_length: int | None = None
    stride: int | None = None
    max_target_length: int = 128
    num_beams: int = 1
    labels: list[str] | None = None
    seed: int = 0
    precision: str = "fp32"
    gradient_checkpointing: bool = False
    fsdp: bool = False
    resume: str | None = None
    save_steps: int | None = None
    eval_batch_size: int | None = None
    device: str | None = None


def _check_settings(s: TrainSettings, runtime: Runtime) -> None:
    if s.task not in PIPELINE_TASK:
        raise ValueError(f"unknown task {s.task!r}: use one of {', '.join(PIPELINE_TASK)}")
    if s.precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {s.precision!r}")
    if s.precision == "fp16" and runtime.device.type != "cuda":
        raise ValueError("fp16 training needs a GPU (it uses a CUDA grad scaler): use --precision bf16 on a CPU")
    for name in ("epochs", "batch_size", "grad_accum"):
        if getattr(s, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(s, name)}")
    if s.max_steps is not None and s.max_steps < 1:
        raise ValueError(f"--max-steps must be at least 1, not {s.max_steps}")
    if not 0 <= s.warmup_ratio < 1:
        raise ValueError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")


def _model_config(source: str) -> dict:
    path = resolve_file(source, "config.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error})") from None


def _model_class(task: str, config: dict, source: str):
    classes = TASK_CLASSES[PIPELINE_TASK[task]]
    model_type = config.get("model_type")
    if model_type not in classes:
        raise ValueError(f"{source} is a {model_type!r} model; {task} trains {' or '.join(classes)} models")
    return getattr(import_module("bigbird"), classes[model_type])


def _labels(s: TrainSettings, config: dict, state: dict | None, train_records) -> list[str]:
    if state is not None:
        return state["labels"]
    if s.labels:
        return list(s.labels)
    named = [config["id2label"][key] for key in sorted(config.get("id2label") or {}, key=int)]
    if named and not all(label == f"LABEL_{i}" for i, label in enumerate(named)):
        return named  # a classifier already trained: keep its labels (and head)
    return label_set(train_records)


def _optimizer(model: torch.nn.Module, s: TrainSettings) -> torch.optim.AdamW:
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.dim() < 2 else decay).append(param)
    return torch.optim.AdamW([{"params": decay, "weight_decay": s.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=s.lr)


def _schedule(optimizer, total_steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _autocast(precision: str, device: torch.device):
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def _grad_scaler(precision: str, runtime: Runtime):
    if precision != "fp16":
        return None
    if runtime.fsdp:
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler("cuda")
    return torch.amp.GradScaler("cuda")


class _Progress:
    """A tqdm bar with loss and throughput on the main process's terminal; plain lines otherwise."""

    def __init__(self, runtime: Runtime, total_steps: int, done: int):
        from tqdm import tqdm

        self.live = runtime.main and sys.stderr.isatty()
        self.main = runtime.main
        self.bar = tqdm(total=total_steps, initial=done, unit="step", file=sys.stderr, disable=not self.live,
                        dynamic_ncols=True)

    def step(self, loss: float, tokens_per_second: float) -> None:
        self.bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens_per_second:,.0f}", refresh=False)
        self.bar.update(1)

    def line(self, text: str) -> None:
        if self.live:
            self.bar.write(text, file=sys.stderr)
        elif self.main:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        self.bar.close()


class _Trainer:
    """One training run; `run()` returns the final metrics."""

    def __init__(self, s: TrainSettings, runtime: Runtime):
        self.s, self.runtime = s, runtime
        self.out = Path(s.out)
        _check_settings(s, runtime)
        self.train_records = read_records(s.train, s.task)
        self.eval_records = read_records(s.eval, s.task) if s.eval else None
        config = _model_config(s.model)
        self.model_class = _model_class(s.task, config, s.model)
        self.resume_from = None
        self.state = None
        if s.resume:
            self.resume_from = checkpoints.resume_directory(self.out, s.resume)
            self.state = checkpoints.read_state(self.resume_from, s.task, config)
            self._check_same_run(self.state)
        self.signature = checkpoints.signature(config)
        self.labels = None
        overrides = {}
        if s.task == "classify":
            self.labels = _labels(s, config, self.state, self.train_records)
            check_labels(self.train_records, self.labels)
            if self.eval_records:
                check_labels(self.eval_records, self.labels)
            overrides = dict(id2label=dict(enumerate(self.labels)),
                             label2id={label: i for i, label in enumerate(self.labels)})
        self.tokenizer = load_tokenizer(s.model, config.get("model_type", ""))
        torch.manual_seed(s.seed)  # the same new head on every process
        source = str(self.resume_from) if self.resume_from else s.model
        self.model = self.model_class.from_pretrained(source, **overrides)
        self.max_length = window_length(self.model.config, self.tokenizer, s.max_length)
        label2id = {label: i for i, label in enumerate(self.labels)} if self.labels else None
        features = dict(label2id=label2id, stride=s.stride, max_target_length=s.max_target_length)
        self.train_features = tokenize(s.task, self.train_records, self.tokenizer, self.max_length, **features)
        self.eval_features = tokenize(s.task, self.eval_records, self.tokenizer, self.max_length, **features) \
            if self.eval_records else None

    def _check_same_run(self, state: dict) -> None:
        settings = state.get("settings", {})
        for name, value in (("batch_size", self.s.batch_size * self.runtime.world), ("grad_accum", self.s.grad_accum),
                            ("seed", self.s.seed)):
            if settings.get(name) != value:
                raise checkpoints.ResumeError(
                    f"{self.resume_from / checkpoints.STATE_FILE}: it was trained with {name} {settings.get(name)} "
                    f"(over all processes), this run has {value}: resume with the same settings")

    # ----- the run -----

    def run(self) -> dict:
        s, runtime = self.s, self.runtime
        if s.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
        self.model.train()
        self.model = wrap(self.model, runtime)
        self.autocast = _autocast(s.precision, runtime.device)
        self.scaler = _grad_scaler(s.precision, runtime)
        lengths = [len(f.input_ids) for f in self.train_features]
        self.global_batch = s.batch_size * runtime.world
        self.batches_per_epoch = math.ceil(len(lengths) / self.global_batch)
        steps_per_epoch = math.ceil(self.batches_per_epoch / s.grad_accum)
        self.total_steps = steps_per_epoch * s.epochs if s.max_steps is None else s.max_steps
        self.optimizer = _optimizer(self.model, s)
        self.scheduler = _schedule(self.optimizer, self.total_steps, int(s.warmup_ratio * self.total_steps))
        progress = {"global_step": 0, "epoch": 0, "batches_done": 0, "log_history": [], "evaluations": [],
                    "best": None, "train_tokens": 0, "train_seconds": 0.0}
        if self.state is not None:
            progress.update({key: self.state[key] for key in progress})
            self._load_training_state()
        self.progress = progress
        bar = _Progress(runtime, self.total_steps, progress["global_step"])
        try:
            while progress["epoch"] < s.epochs and progress["global_step"] < self.total_steps:
                self._epoch(bar, lengths)
            if not progress["evaluations"] or progress["evaluations"][-1]["step"] != progress["global_step"]:
                self._evaluate(bar)
                self._save()
        finally:
            bar.close()
        return self._finish()

    def _epoch(self, bar: _Progress, lengths: list[int]) -> None:
        s, runtime, progress = self.s, self.runtime, self.progress
        batches = global_batches(lengths, self.global_batch, seed=s.seed, epoch=progress["epoch"])
        start = progress["batches_done"]
        for group_start in range(start, len(batches), s.grad_accum):
            group = batches[group_start:group_start + s.grad_accum]
            began = time.perf_counter()
            loss, tokens = self._step(group)
            progress["batches_done"] = group_start + len(group)
            progress["global_step"] += 1
            seconds = time.perf_counter() - began
            progress["train_tokens"] += tokens
            progress["train_seconds"] += seconds
            progress["log_history"].append({"step": progress["global_step"], "epoch": progress["epoch"],
                                            "loss": loss, "lr": self.scheduler.get_last_lr()[0]})
            bar.step(loss, tokens / max(seconds, 1e-9))
            if progress["batches_done"] < len(batches) and progress["global_step"] >= self.total_steps:
                return
            if s.save_steps and progress["global_step"] % s.save_steps == 0 \
                    and progress["batches_done"] < len(batches):
                self._save()
        progress["epoch"] += 1
        progress["batches_done"] = 0
        self._evaluate(bar)
        self._save()

    def _step(self, group: list[list[int]]) -> tuple[float, int]:
        """One optimizer step over the micro-batches of `group`; the mean loss and the tokens, over processes."""
        s, runtime = self.s, self.runtime
        losses, tokens = 0.0, 0
        for index, rows in enumerate(group):
            # every process pads to the whole global batch's longest row: the same inputs as one process
            longest = max(len(self.train_features[i].input_ids) for i in rows)
            mine = rows[runtime.rank * s.batch_size:(runtime.rank + 1) * s.batch_size]
            batch = {key: value.to(runtime.device) for key, value in
                     collate([self.train_features[i] for i in mine], s.task, self.tokenizer.pad_token_id,
                             longest).items()}
            last = index == len(group) - 1
            with (contextlib.nullcontext() if last else no_gradient_sync(self.model, runtime)):
                with self.autocast():
                    loss = self.model(**batch).loss / len(group)
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            losses += loss.item()
            tokens += int(batch["attention_mask"].sum())
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        if s.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, token_sum = total([losses, tokens], runtime)
        return loss_sum / runtime.world, int(token_sum)

    # ----- evaluation and checkpoints -----

    def _evaluate(self, bar: _Progress) -> None:
        progress = self.progress
        record = {"epoch": progress["epoch"], "step": progress["global_step"]}
        if self.eval_features:
            generate = dict(max_new_tokens=self.s.max_target_length, num_beams=self.s.num_beams)
            record["metrics"] = evaluate(
                self.s.task, self.model, self.eval_features, self.eval_records, tokenizer=self.tokenizer,
                num_labels=len(self.labels or []), batch_size=self.s.eval_batch_size or self.s.batch_size,
                runtime=self.runtime, autocast=self.autocast, generate=generate)
        since = progress["evaluations"][-1]["step"] if progress["evaluations"] else 0
        recent = [entry["loss"] for entry in progress["log_history"] if entry["step"] > since]
        if recent:
            record["train_loss"] = sum(recent) / len(recent)
        progress["evaluations"].append(record)
        shown = ", ".join(f"{key} {value:.4f}" for key, value in record.get("metrics", {}).items())
        rate = progress["train_tokens"] / max(progress["train_seconds"], 1e-9)
        bar.line(f"epoch {progress['epoch']} step {progress['global_step']}: train loss "
                 f"{record.get('train_loss', float('nan')):.4f}, {rate:,.0f} tokens/s"
                 + (f"; eval {shown}" if shown else ""))
        if "metrics" in record:
            name = PRIMARY[self.s.task]
            value = record["metrics"][name]
            if progress["best"] is None or value > progress["best"]["value"]:
                progress["best"] = {"checkpoint": f"{checkpoints.PREFIX}{progress['global_step']}", "metric": name,
                                    "value": value, "step": progress["global_step"]}

    def _save(self) -> None:
        """Write OUT/checkpoint-STEP (all processes take part; the main one writes the shared files)."""
        runtime, progress = self.runtime, self.progress
        directory = self.out / f"{checkpoints.PREFIX}{progress['global_step']}"
        weights = full_model_state(self.model) if runtime.fsdp else None
        optimizer = full_optimizer_state(self.model, self.optimizer)
        if runtime.main:
            directory.mkdir(parents=True, exist_ok=True)
            self._plain_model(weights).save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
            torch.save({"optimizer": optimizer, "scheduler": self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict() if self.scaler else None},
                       directory / checkpoints.TRAINING_FILE)
        barrier(runtime)
        torch.save(checkpoints.rng_state(runtime.device), directory / f"rng_state_{runtime.rank}.pt")
        barrier(runtime)
        if runtime.main:
            state = dict(progress, task=self.s.task, model=self.s.model, signature=self.signature,
                         labels=self.labels, world_size=runtime.world,
                         settings={"batch_size": self.global_batch, "grad_accum": self.s.grad_accum,
                                   "seed": self.s.seed, "lr": self.s.lr, "epochs": self.s.epochs,
                                   "max_length": self.max_length})
            checkpoints.write_state(directory, state)
            best = progress["best"]["checkpoint"] if progress["best"] else None
            checkpoints.prune(self.out, {best} if best else set())
        barrier(runtime)

    def _plain_model(self, weights: dict | None) -> torch.nn.Module:
        """A model object `save_pretrained` can write: the unwrapped one, or under FSDP one built from `weights`."""
        if weights is None:
            return self.model.module if hasattr(self.model, "module") else self.model
        with torch.device("meta"):
            plain = self.model_class(self.model.config)
        plain.load_state_dict(weights, assign=True)
        plain.tie_weights()
        return plain

    def _load_training_state(self) -> None:
        directory, runtime = self.resume_from, self.runtime
        saved = torch.load(directory / checkpoints.TRAINING_FILE, map_location="cpu", weights_only=False)
        load_optimizer_state(self.model, self.optimizer, saved["optimizer"])
        self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler and saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        rng = directory / f"rng_state_{runtime.rank}.pt"
        if rng.is_file():
            checkpoints.set_rng_state(torch.load(rng, weights_only=False), runtime.device)

    def _finish(self) -> dict:
        progress, runtime = self.progress, self.runtime
        metrics = {
            "task": self.s.task, "model": self.s.model, "world_size": runtime.world, "fsdp": runtime.fsdp,
            "precision": self.s.precision, "global_step": progress["global_step"], "epochs": progress["epoch"],
            "max_length": self.max_length, "train_examples": len(self.train_records),
            "train_features": len(self.train_features),
            "train_tokens_per_second": progress["train_tokens"] / max(progress["train_seconds"], 1e-9),
            "train_seconds": progress["train_seconds"], "best": progress["best"],
            "evaluations": progress["evaluations"], "loss_history": progress["log_history"],
        }
        if runtime.main:
            found = checkpoints.checkpoints(self.out)
            chosen = self.out / progress["best"]["checkpoint"] if progress["best"] else found[-1]
            checkpoints.publish(chosen, self.out)
            (self.out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
        barrier(runtime)
        return metrics


def train(settings: TrainSettings) -> dict:
    """Run the training `settings` describe; returns the metrics also written to OUT/metrics.json.

    Bad data, a bad --resume directory or bad settings raise `DataError`, `ResumeError` or `ValueError` before
    the first step.
    """
    runtime = setup(settings.device, settings.fsdp)
    try:
        return _Trainer(settings, runtime).run()
    finally:
        teardown(runtime)


__all__ = ["TrainSettings", "train", "DataError"]
