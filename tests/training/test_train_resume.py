"""Resuming a run from its saved settings (only the options given again override them, and those that would
change what the run computes are refused, all named at once), checkpoints that both libraries read, and
training warnings printed in the command's format."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
import torch
import transformers

import bigbird
from bigbird.cli.main import main
from bigbird.training import ResumeError, TrainSettings, resume_settings, settings_from_flags, train, warnings_as_lines
from training_fixtures import long_range_records, tiny_bigbird, train_until_crash, write_jsonl

@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run with non-default settings: (its settings, its metrics)."""
    root = tmp_path_factory.mktemp("resume")
    model = tiny_bigbird(root / "model", positions=256, block_size=16, dropout=0.1)
    write_jsonl(root / "train.jsonl", long_range_records(12, 0, length=200, plant_from=100))
    settings = TrainSettings(task="classify", model=str(model), train=str(root / "train.jsonl"), out=str(root / "out"),
                             epochs=2, batch_size=3, lr=2e-3, seed=5, warmup_ratio=0.0, save_steps=1,
                             labels=["alpha", "beta", "gamma", "delta"])
    return settings, train(settings)


def test_resume_takes_the_saved_settings(run, tmp_path):
    settings, whole = run
    out = tmp_path / "crashed"
    train_until_crash(TrainSettings(**dict(vars(settings), out=str(out))), steps=6)
    resumed = resume_settings(out, {"task": "classify", "resume": "last"})
    assert (resumed.batch_size, resumed.lr, resumed.seed, resumed.labels) == (3, 2e-3, 5, settings.labels)
    metrics = train(resumed)
    assert [e["loss"] for e in metrics["loss_history"]] == pytest.approx(
        [e["loss"] for e in whole["loss_history"]], abs=1e-6)


def test_changed_settings_are_refused_all_at_once(run):
    settings, whole = run
    flags = {"task": "classify", "resume": "last", "lr": 0.5, "seed": 7, "batch_size": 4, "eval_batch_size": 2,
             "warmup_ratio": 0.0}
    with pytest.raises(ResumeError) as caught:
        train(resume_settings(settings.out, flags))
    message = str(caught.value)
    assert "this checkpoint was trained with other settings: " in message
    assert "--lr 0.5 (it was 0.002)" in message and "--seed 7 (it was 5)" in message
    assert "--batch-size 4 on 1 process(es), a global batch of 4 (it was 3)" in message
    assert "eval-batch-size" not in message and "warmup" not in message
    again = train(resume_settings(settings.out, {"task": "classify", "eval_batch_size": 2, "seed": 5}))
    assert again["global_step"] == whole["global_step"]


def test_cli_resume_repeats_nothing_and_warnings_are_lines(tmp_path, capsys):
    model = tiny_bigbird(tmp_path / "model", positions=256, block_size=16)
    train_file = write_jsonl(tmp_path / "train.jsonl", long_range_records(8, 2, length=100, plant_from=10))
    out = str(tmp_path / "out")
    assert main(["train", "classify", "--model", str(model), "--train", str(train_file), "--out", out,
                 "--batch-size", "2", "--max-steps", "2", "--lr", "0.001"]) == 0
    err = capsys.readouterr().err
    assert ("bigbird train: warning: classifier.dense.bias, classifier.dense.weight, classifier.out_proj.bias, "
            f"classifier.out_proj.weight newly initialised: {model} does not have them") in err
    assert "UserWarning" not in err
    assert main(["train", "classify", "--out", out, "--resume", "--lr", "0.01", "--seed", "1",
                 "--eval-batch-size", "4"]) == 1
    assert "--lr 0.01 (it was 0.001); --seed 1 (it was 0). Resume without these options" in capsys.readouterr().err
    assert main(["train", "classify", "--out", out, "--resume", "--eval-batch-size", "4", "--lr", "0.001"]) == 0


def test_a_new_run_needs_model_and_train(tmp_path):
    with pytest.raises(ValueError, match="--model and --train are required"):
        settings_from_flags({"task": "classify", "out": str(tmp_path)})
    settings = settings_from_flags({"task": "qa", "model": "m", "train": "t.jsonl", "out": "o", "lr": 1e-4})
    assert (settings.lr, settings.batch_size) == (1e-4, 8)


def test_checkpoints_reload_in_both_libraries(run):
    settings, _ = run
    inputs = {"input_ids": torch.tensor([[2] + [6 + i % 30 for i in range(198)] + [3]])}
    logits = []
    for library in (bigbird, transformers):
        model = library.BigBirdForSequenceClassification.from_pretrained(settings.out).eval()
        with torch.no_grad():
            logits.append(model(**inputs).logits)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=0)
    assert transformers.AutoTokenizer.from_pretrained(settings.out)("w1 w2")["input_ids"] == [2, 7, 8, 3]
    out = Path(settings.out)
    last = out / f"checkpoint-{json.loads((out / 'metrics.json').read_text())['global_step']}"
    assert {"config.json", "model.safetensors", "tokenizer.json", "trainer_state.json", "optimizer.pt",
            "scheduler.pt", "rng_state_0.pth"} <= {path.name for path in last.iterdir()}


def test_warnings_are_printed_as_command_lines(capsys):
    logger = transformers.utils.logging.get_logger("transformers.test")
    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_warning()
    try:
        with warnings_as_lines("bigbird train"):
            warnings.warn("a Python warning", UserWarning)
            logger.warning("a Transformers warning")
            logger.info("not shown")
    finally:
        transformers.utils.logging.set_verbosity(level)
    err = capsys.readouterr().err
    assert err.splitlines() == ["bigbird train: warning: a Python warning",
                                "bigbird train: warning: a Transformers warning"]
    logging.getLogger("transformers.test").warning("after")
    assert "bigbird train" not in capsys.readouterr().err
