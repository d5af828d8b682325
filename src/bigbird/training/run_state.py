"""Checkpoints of `bigbird train`, laid out as Transformers' Trainer lays out its own: `OUT/checkpoint-STEP/` holds
the model in the Transformers format (config.json, model.safetensors, the tokenizer), `trainer_state.json`
(progress, loss history, evaluations, the run's settings), `optimizer.pt`, `scheduler.pt`, `scaler.pt` (fp16) and
one `rng_state_RANK.pth` per process. Only the latest and the best checkpoints are kept.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE, SCHEDULER_FILE, SCALER_FILE = "optimizer.pt", "scheduler.pt", "scaler.pt"
PREFIX = "checkpoint-"
# config fields that must agree between --model and a checkpoint it resumes from
SIGNATURE = ("model_type", "vocab_size", "hidden_size", "d_model", "num_hidden_layers", "encoder_layers",
             "decoder_layers", "num_attention_heads", "encoder_attention_heads", "intermediate_size",
             "encoder_ffn_dim", "max_position_embeddings", "block_size")
TRAINING_ONLY = (STATE_FILE, OPTIMIZER_FILE, SCHEDULER_FILE, SCALER_FILE)


class ResumeError(ValueError):
    """A --resume directory that this run cannot continue from; the message names it."""


def signature(config: dict) -> dict:
    """The fields of a config.json that identify the model's architecture."""
    return {key: config[key] for key in SIGNATURE if key in config}


def check_same_model(state_path: Path, checkpoint_config: dict, model: str, model_config: dict) -> None:
    """Refuse to resume a checkpoint with a --model of another architecture, naming the fields that differ."""
    theirs, ours = signature(checkpoint_config), signature(model_config)
    different = [key for key in sorted(set(theirs) | set(ours)) if theirs.get(key) != ours.get(key)]
    if different:
        details = ", ".join(f"{key} {theirs.get(key)!r} vs {ours.get(key)!r}" for key in different)
        raise ResumeError(f"{state_path}: this checkpoint is of another model than --model {model} ({details}): "
                          "resume without --model, or with the model it was trained from")


def checkpoints(out: Path) -> list[Path]:
    """The checkpoint directories under `out`, oldest (fewest steps) first."""
    found = [path for path in out.glob(f"{PREFIX}*") if re.fullmatch(rf"{PREFIX}\d+", path.name)
             and (path / STATE_FILE).is_file()]
    return sorted(found, key=lambda path: int(path.name[len(PREFIX):]))


def resume_directory(out: Path, resume: str) -> Path:
    """The checkpoint to resume from: `resume` itself, or with "last" the latest one under `out`."""
    if resume != "last":
        path = Path(resume)
        if not (path / STATE_FILE).is_file():
            raise ResumeError(f"{path}: not a checkpoint of bigbird train (no {STATE_FILE})")
        return path
    found = checkpoints(out)
    if not found:
        raise ResumeError(f"{out}: no checkpoint to resume from (no {PREFIX}STEP directory with {STATE_FILE})")
    return found[-1]


def read_state(directory: Path, task: str | None) -> dict:
    """The trainer state of a checkpoint, refused when it was written for another task or is incomplete."""
    path = directory / STATE_FILE
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ResumeError(f"{path}: cannot be read ({error})") from None
    if not isinstance(state, dict):
        raise ResumeError(f"{path}: damaged: it holds a JSON {type(state).__name__}, not the trainer's state")
    if task is not None and state.get("task") != task:
        raise ResumeError(f"{path}: this checkpoint was trained for {state.get('task')!r}, not {task!r}")
    for name in (OPTIMIZER_FILE, SCHEDULER_FILE):
        if not (directory / name).is_file():
            raise ResumeError(f"{directory}: {name} is missing: the checkpoint is incomplete")
    return state


def write_state(directory: Path, state: dict) -> None:
    (directory / STATE_FILE).write_text(json.dumps(state, indent=1) + "\n", encoding="utf-8")


def save_rng_state(directory: Path, rank: int, device: torch.device) -> None:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    torch.save(state, directory / f"rng_state_{rank}.pth")


def load_rng_state(directory: Path, rank: int, device: torch.device) -> None:
    """Restore this process's random state if the checkpoint has one for its rank (a run on more processes
    than the checkpoint's draws its extra processes' dropout afresh)."""
    path = directory / f"rng_state_{rank}.pth"
    if not path.is_file():
        return
    state = torch.load(path, weights_only=True)
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def prune(out: Path, keep: set[str]) -> None:
    """Delete the checkpoints under `out` other than the latest and those named in `keep`."""
    found = checkpoints(out)
    for path in found[:-1]:
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def publish(checkpoint: Path, out: Path) -> None:
    """Copy a checkpoint's model and tokenizer files into `out` (where `bigbird classify --model OUT` reads)."""
    for path in checkpoint.iterdir():
        if path.is_file() and path.name not in TRAINING_ONLY and not path.name.startswith("rng_state_"):
            shutil.copy2(path, out / path.name)
