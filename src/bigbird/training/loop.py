"""`train(settings)`: fine-tune a BigBird / BigBird-Pegasus checkpoint for classification, extractive QA or
summarization, on one process or many under torchrun (DDP, or FSDP2 with `fsdp`).

AdamW (no weight decay on biases and LayerNorms) with Transformers' linear warm-up and decay to zero, gradient
accumulation, gradient clipping, bf16 autocast (CPU and GPU) or fp16 autocast with a grad scaler (GPU),
evaluation at the end of each epoch, checkpoints written with `save_pretrained` with the best kept, `resume` from
a checkpoint with the same loss curve as an uninterrupted run, and `OUT/metrics.json` at the end.

The loop is ours, not `transformers.Trainer`'s: Trainer (through Accelerate) shards with FSDP only on GPUs, not
with FSDP2 over gloo on CPUs; its per-process data loaders pad each process's rows to their own longest, while a
block-sparse model's output depends on the padded length (every process here pads to the global batch's longest,
so that N processes compute what one does); and its evaluation has no place for QA answers chosen over windows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
from pathlib import Path

import torch
from transformers import get_linear_schedule_with_warmup
from transformers.trainer_pt_utils import get_parameter_names

from . import run_state
from ..models.loading import read_config
from ..pipelines.loading import load_tokenizer, window_length
from .data import check_labels, collate, global_batches, read_records, tokenize
from .distributed import (Runtime, barrier, full_model_state, full_optimizer_state, load_optimizer_state,
                          no_gradient_sync, setup, teardown, total, wrap)
from .evaluate import evaluate
from .loading import choose_labels, load_model, model_class
from .metrics import PRIMARY
from ..models.loading import quiet_transformers
from .report import Progress
from .settings import TrainSettings, check_resumed, check_settings


def _optimizer(model: torch.nn.Module, s: TrainSettings) -> torch.optim.AdamW:
    """AdamW grouped as Trainer groups it (no weight decay on biases and LayerNorm weights), as one fused kernel
    per step (on a CPU 4.6x faster than the default multi-tensor update for 28M float32 parameters)."""
    decay = set(get_parameter_names(model, [torch.nn.LayerNorm], ["bias"]))
    trained = [(name, param) for name, param in model.named_parameters() if param.requires_grad]
    return torch.optim.AdamW([{"params": [p for n, p in trained if n in decay], "weight_decay": s.weight_decay},
                              {"params": [p for n, p in trained if n not in decay], "weight_decay": 0.0}], lr=s.lr,
                             fused=True)


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


def _unwrapped(model: torch.nn.Module) -> torch.nn.Module:
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


class _Trainer:
    """One training run; `run()` returns the final metrics."""

    def __init__(self, s: TrainSettings, runtime: Runtime):
        self.runtime, self.out = runtime, Path(s.out)
        check_settings(s, runtime.device.type)
        self.resume_from, self.state = None, None
        if s.resume:
            s = self._resumed(s)
        self.train_records = read_records(s.train, s.task)
        self.eval_records = read_records(s.eval, s.task) if s.eval else None
        source = str(self.resume_from or s.model)
        config = read_config(source)
        cls = model_class(s.task, config, s.model)
        self.labels = choose_labels(s.labels, config, source, self.train_records) if s.task == "classify" else None
        label2id, overrides = None, {}
        if self.labels:
            for records in filter(None, (self.train_records, self.eval_records)):
                check_labels(records, self.labels)
            label2id = {label: i for i, label in enumerate(self.labels)}
            overrides = dict(id2label=dict(enumerate(self.labels)), label2id=label2id)
        self.tokenizer = load_tokenizer(source)
        self.model = load_model(cls, source, s.seed, **overrides)
        self.max_length = window_length(self.model.config, self.tokenizer, s.max_length)
        self.s = dataclasses.replace(s, labels=self.labels, max_length=self.max_length,
                                     train=os.path.abspath(s.train), eval=s.eval and os.path.abspath(s.eval))
        features = dict(label2id=label2id, stride=s.stride, max_target_length=s.max_target_length)
        self.train_features = tokenize(s.task, self.train_records, self.tokenizer, self.max_length, **features)
        self.eval_features = tokenize(s.task, self.eval_records, self.tokenizer, self.max_length, **features) \
            if self.eval_records else None

    def _resumed(self, s: TrainSettings) -> TrainSettings:
        """`s` completed from the checkpoint it resumes, which must be of the same model as a --model given."""
        self.resume_from = run_state.resume_directory(self.out, s.resume)
        self.state = run_state.read_state(self.resume_from, s.task)
        where = self.resume_from / run_state.STATE_FILE
        s = check_resumed(s, self.state, self.runtime.world, where)
        if s.model != self.state.get("settings", {}).get("model"):
            run_state.check_same_model(where, read_config(self.resume_from), s.model, read_config(s.model))
        return s

    # ----- the run -----

    def run(self) -> dict:
        s, runtime = self.s, self.runtime
        if s.gradient_checkpointing:
            self.model.activation_checkpointing_enable()
        self.model.train()
        self.model = wrap(self.model, runtime)
        self.autocast = _autocast(s.precision, runtime.device)
        self.scaler = _grad_scaler(s.precision, runtime)
        lengths = [len(f.input_ids) for f in self.train_features]
        self.global_batch = s.batch_size * runtime.world
        steps_per_epoch = math.ceil(math.ceil(len(lengths) / self.global_batch) / s.grad_accum)
        self.total_steps = steps_per_epoch * s.epochs if s.max_steps is None else s.max_steps
        self.optimizer = _optimizer(self.model, s)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(s.warmup_ratio * self.total_steps),
                                                         self.total_steps)
        progress = {"global_step": 0, "epoch": 0, "batches_done": 0, "log_history": [], "evaluations": [],
                    "best": None, "train_tokens": 0, "train_seconds": 0.0}
        if self.state is not None:
            progress.update({key: self.state[key] for key in progress})
            self._load_training_state()
        self.progress = progress
        bar = Progress(runtime.main, self.total_steps, progress["global_step"])
        try:
            while progress["epoch"] < s.epochs and progress["global_step"] < self.total_steps:
                self._epoch(bar, lengths)
            if not progress["evaluations"] or progress["evaluations"][-1]["step"] != progress["global_step"]:
                self._evaluate(bar)
                self._save()
        finally:
            bar.close()
        return self._finish()

    def _epoch(self, bar: Progress, lengths: list[int]) -> None:
        s, progress = self.s, self.progress
        batches = global_batches(lengths, self.global_batch, seed=s.seed, epoch=progress["epoch"])
        for group_start in range(progress["batches_done"], len(batches), s.grad_accum):
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

    def _evaluate(self, bar: Progress) -> None:
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
                progress["best"] = {"checkpoint": f"{run_state.PREFIX}{progress['global_step']}", "metric": name,
                                    "value": value, "step": progress["global_step"]}

    def _save(self) -> None:
        """Write OUT/checkpoint-STEP (all processes take part; the main one writes the shared files)."""
        runtime, progress = self.runtime, self.progress
        directory = self.out / f"{run_state.PREFIX}{progress['global_step']}"
        weights = full_model_state(self.model) if runtime.fsdp else None
        optimizer = full_optimizer_state(self.model, self.optimizer)
        if runtime.main:
            directory.mkdir(parents=True, exist_ok=True)
            with quiet_transformers():
                _unwrapped(self.model).save_pretrained(directory, state_dict=weights)
                self.tokenizer.save_pretrained(directory)
            torch.save(optimizer, directory / run_state.OPTIMIZER_FILE)
            torch.save(self.scheduler.state_dict(), directory / run_state.SCHEDULER_FILE)
            if self.scaler:
                torch.save(self.scaler.state_dict(), directory / run_state.SCALER_FILE)
        barrier(runtime)
        run_state.save_rng_state(directory, runtime.rank, runtime.device)
        barrier(runtime)
        if runtime.main:
            state = dict(progress, task=self.s.task, world_size=runtime.world, settings=dataclasses.asdict(self.s))
            run_state.write_state(directory, state)
            best = progress["best"]["checkpoint"] if progress["best"] else None
            run_state.prune(self.out, {best} if best else set())
        barrier(runtime)

    def _load_training_state(self) -> None:
        directory, runtime = self.resume_from, self.runtime
        optimizer = torch.load(directory / run_state.OPTIMIZER_FILE, map_location="cpu", weights_only=True)
        load_optimizer_state(self.model, self.optimizer, optimizer)
        self.scheduler.load_state_dict(torch.load(directory / run_state.SCHEDULER_FILE, weights_only=True))
        if self.scaler and (directory / run_state.SCALER_FILE).is_file():
            self.scaler.load_state_dict(torch.load(directory / run_state.SCALER_FILE, weights_only=True))
        run_state.load_rng_state(directory, runtime.rank, runtime.device)

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
            found = run_state.checkpoints(self.out)
            chosen = self.out / progress["best"]["checkpoint"] if progress["best"] else found[-1]
            run_state.publish(chosen, self.out)
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
