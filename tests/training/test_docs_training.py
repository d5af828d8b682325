"""docs/training.md runs as written, on a CPU, with a tiny checkpoint at ./bigbird-base and tiny data files: its
`bigbird train` commands (the first run, then `--resume` with nothing repeated) and its Trainer snippet. The
torchrun commands need GPUs and other machines; test_distributed.py runs the same command under torchrun with
two gloo processes. `pip install` is left out."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import torch
import transformers

import bigbird
from bigbird.cli.main import main
from training_fixtures import long_range_records, tiny_bigbird, write_jsonl

DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"

pytestmark = pytest.mark.filterwarnings("ignore:.*newly initialised:UserWarning")


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def _commands(block: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments dropped."""
    return [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A directory like the documentation's: ./bigbird-base, train.jsonl and dev.jsonl."""
    tiny_bigbird(tmp_path / "bigbird-base", positions=256, block_size=16)
    write_jsonl(tmp_path / "train.jsonl", long_range_records(8, 2, length=120, plant_from=40))
    write_jsonl(tmp_path / "dev.jsonl", long_range_records(4, 12, length=120, plant_from=40))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_train_commands_run_as_written(workspace):
    commands = [c for block in _blocks("bash") for c in _commands(block) if c[:2] == ["bigbird", "train"]]
    first, resume = commands[:2]
    assert first[-2:] == ["--precision", "bf16"]
    assert resume == ["bigbird", "train", "classify", "--out", "runs/cls", "--resume"]
    for command in (first, resume):
        assert main(command[1:]) == 0, command
    metrics = json.loads((workspace / "runs" / "cls" / "metrics.json").read_text())
    assert metrics["global_step"] == 3 and metrics["precision"] == "bf16"
    assert metrics["evaluations"][-1]["metrics"].keys() == {"accuracy", "macro_f1"}


def test_trainer_snippet_runs_on_a_cpu(workspace):
    (snippet,) = _blocks("python")
    exec(compile(snippet, str(DOC), "exec"), {})
    final = workspace / "runs" / "trainer" / "final"
    inputs = transformers.AutoTokenizer.from_pretrained(final)(["A long and glowing review"], return_tensors="pt")
    logits = []
    for library in (bigbird, transformers):
        model = library.BigBirdForSequenceClassification.from_pretrained(final).eval()
        assert model.config.id2label == {0: "neg", 1: "pos"}
        with torch.no_grad():
            logits.append(model(**inputs).logits)
    torch.testing.assert_close(logits[0], logits[1], atol=1e-5, rtol=0)
