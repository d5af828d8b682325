"""What a `bigbird train` run is told: `TrainSettings`, their checks, and the settings of a resumed run.

Every checkpoint saves the run's settings. A resumed run continues with them: options given again may change how
the run is carried out (evaluation, saving, device, precision, memory) but not what it computes (task, data,
labels, lengths, optimisation, seed); those must equal the saved ones, and every difference is named at once.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from . import run_state
from .run_state import ResumeError

TASKS = ("classify", "qa", "summarize")
PRECISIONS = ("fp32", "bf16", "fp16")
# settings that decide what a run computes: a resumed run must keep them to continue the same loss curve
FIXED = ("train", "labels", "max_length", "stride", "max_target_length", "epochs", "max_steps", "batch_size",
         "grad_accum", "lr", "weight_decay", "warmup_ratio", "max_grad_norm", "seed")
REQUIRED = ("model", "train", "out")


@dataclasses.dataclass
class TrainSettings:
    """What `bigbird train` runs; the CLI's options by the same names (`batch_size` is per process)."""

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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_settings(s: TrainSettings, device_type: str) -> None:
    """Refuse settings no run can use (ValueError naming the option)."""
    if s.task not in TASKS:
        raise ValueError(f"unknown task {s.task!r}: use one of {', '.join(TASKS)}")
    if s.precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, not {s.precision!r}")
    if s.precision == "fp16" and device_type != "cuda":
        raise ValueError("fp16 training needs a GPU (it uses a CUDA grad scaler): use --precision bf16 on a CPU")
    for name in ("epochs", "batch_size", "grad_accum"):
        if getattr(s, name) < 1:
            raise ValueError(f"{_flag(name)} must be at least 1, not {getattr(s, name)}")
    for name in ("max_steps", "save_steps", "eval_batch_size"):
        if getattr(s, name) is not None and getattr(s, name) < 1:
            raise ValueError(f"{_flag(name)} must be at least 1, not {getattr(s, name)}")
    if not 0 <= s.warmup_ratio < 1:
        raise ValueError(f"--warmup-ratio must be in [0, 1), not {s.warmup_ratio}")


def settings_from_flags(passed: dict) -> TrainSettings:
    """The settings of a run from the options a user gave (TrainSettings field names -> values, nothing for the
    options left out): a new run takes the defaults for the rest; with `resume`, `resume_settings`."""
    if passed.get("resume"):
        return resume_settings(passed["out"], passed)
    missing = [_flag(name) for name in REQUIRED if passed.get(name) is None]
    if missing:
        raise ValueError(f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required "
                         "(they may be left out only with --resume)")
    return TrainSettings(**passed)


def resume_settings(out: str | os.PathLike, passed: dict) -> TrainSettings:
    """The saved settings of the run under `out`, with the options in `passed` in their place.

    `passed["resume"]` names the checkpoint ("last" or absent: the latest under `out`). Options that would change
    what the run computes are refused by `train` (all at once) unless they equal the saved values.
    """
    resume = passed.get("resume") or "last"
    directory = run_state.resume_directory(Path(out), resume)
    saved = run_state.read_state(directory, passed.get("task")).get("settings", {})
    fields = {field.name for field in dataclasses.fields(TrainSettings)}
    values = {key: value for key, value in saved.items() if key in fields}
    values.update(passed, out=os.fspath(out), resume=resume)
    return TrainSettings(**values)


def _same(name: str, ours, theirs) -> bool:
    if name == "train":
        return Path(ours).resolve() == Path(theirs).resolve()
    return ours == theirs


def check_resumed(s: TrainSettings, state: dict, world: int, where: Path) -> TrainSettings:
    """`s` with the fixed settings it leaves unset (None) taken from a checkpoint's `state`; a ResumeError naming
    every fixed setting that differs (`batch_size` compared over all `world` processes)."""
    saved = state.get("settings", {})
    filled = {name: saved.get(name) for name in FIXED if getattr(s, name) is None and saved.get(name) is not None}
    s = dataclasses.replace(s, **filled)
    differences = []
    for name in FIXED:
        if name == "batch_size":
            theirs = saved.get("batch_size", 0) * state.get("world_size", 1)
            if s.batch_size * world != theirs:
                differences.append(f"--batch-size {s.batch_size} on {world} process(es), a global batch of "
                                   f"{s.batch_size * world} (it was {theirs})")
        elif name in saved and not _same(name, getattr(s, name), saved[name]):
            differences.append(f"{_flag(name)} {getattr(s, name)!r} (it was {saved[name]!r})")
    if differences:
        raise ResumeError(f"{where}: this checkpoint was trained with other settings: {'; '.join(differences)}. "
                          "Resume without these options, or with the values it was trained with")
    return s
