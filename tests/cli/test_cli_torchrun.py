"""`bigbird classify|qa|embed` under torchrun (issue 17): two gloo processes on the CPU write what one process
writes, byte for byte; a qa run killed as each process records its first batch, started again with the same
command, finishes the same file, its bad record reported once; a restart with other settings is refused.
docs/usage.md's torchrun commands run as written, with tiny checkpoints in place of the models."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import bigbird.pipelines
from bigbird.cli.main import main
from bigbird.cli.run_record import RunRecord
from bigbird.cli.sharding import assign
from tiny_checkpoints import checkpoints, made_up_text  # noqa: F401 (fixture)

DOC = Path(__file__).resolve().parents[2] / "docs" / "usage.md"
STAND_INS = {"./my-bigbird-classifier": "classify", "google/bigbird-roberta-base": "fill-mask"}
WORDS = [5, 40, 12, 90, 3, 60, 25, 70, 8, 33, 100, 2, 50]  # padded batches; some documents pass the window
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
KILLER = """\
import os
import signal

from bigbird.cli.main import main
from bigbird.cli.run_record import RunRecord

add = RunRecord.add


def add_then_die(self, rank, results):
    add(self, rank, results)
    os.kill(os.getpid(), signal.SIGKILL)


RunRecord.add = add_then_die
raise SystemExit(main())
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A folder like the documentation's: reviews/ with documents of many lengths."""
    root = tmp_path_factory.mktemp("torchrun")
    (root / "reviews").mkdir()
    for number, words in enumerate(WORDS):
        (root / "reviews" / f"{number:02d}.txt").write_text(made_up_text(words, seed=number), encoding="utf-8")
    return root


def _torchrun(folder: Path, command: list[str]) -> subprocess.CompletedProcess:
    """`command` run in `folder`, with this Python's scripts (bigbird, torchrun) first on the PATH."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               GLOO_SOCKET_IFNAME="lo")
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)


def _one_process(folder: Path, argv: list[str], monkeypatch) -> tuple[int, bytes]:
    """The exit status and output of `bigbird ARGV` in this process; the output file is removed."""
    monkeypatch.chdir(folder)
    status = main(argv)
    output = folder / argv[argv.index("-o") + 1]
    written = output.read_bytes()
    output.unlink()
    return status, written


def _documented_commands(checkpoints) -> list[list[str]]:
    section = DOC.read_text(encoding="utf-8").split("## Batch inference on many GPUs or machines")[1].split("\n## ")[0]
    commands = []
    for line in "".join(re.findall(r"```bash\n(.*?)```", section, flags=re.S)).splitlines():
        for name, task in STAND_INS.items():
            line = line.replace(name, str(checkpoints[task]))
        commands.append(shlex.split(line))
    return commands


def test_documented_commands_write_what_one_process_writes(checkpoints, workspace, monkeypatch):
    commands = _documented_commands(checkpoints)
    assert [command[command.index("bigbird") + 1] for command in commands] == ["classify", "embed"]
    for command in commands:
        argv = command[command.index("bigbird") + 1:]
        status, expected = _one_process(workspace, argv, monkeypatch)
        assert status == 0
        run = _torchrun(workspace, command)
        assert run.returncode == 0, run.stderr[-3000:]
        output = workspace / argv[argv.index("-o") + 1]
        assert output.read_bytes() == expected
        assert not Path(f"{output}.partial").exists()
        assert run.stderr.count("reviews/10.txt: 405 tokens, more than the model's window") == 1


def test_a_killed_run_started_again_finishes_the_same_file(checkpoints, workspace, monkeypatch):
    records = [{"id": f"q{number}", "question": "what is it?", "context": made_up_text(words, seed=number)}
               for number, words in enumerate(WORDS)]
    del records[4]["context"]
    (workspace / "questions.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    argv = ["qa", "--model", str(checkpoints["qa"]), "questions.jsonl", "--batch-size", "1", "--stride", "16",
            "-o", "answers.jsonl"]
    status, expected = _one_process(workspace, argv, monkeypatch)
    assert status == 1
    (workspace / "killer.py").write_text(KILLER, encoding="utf-8")
    killed = _torchrun(workspace, [*TORCHRUN, "killer.py", *argv])
    assert killed.returncode != 0 and not (workspace / "answers.jsonl").exists()
    assert 0 < len(RunRecord(str(workspace / "answers.jsonl"), {}).finished()) < len(WORDS) - 1
    resumed = _torchrun(workspace, [*TORCHRUN, "--no-python", "bigbird", *argv])
    assert resumed.returncode == 1
    assert (workspace / "answers.jsonl").read_bytes() == expected
    assert not (workspace / "answers.jsonl.partial").exists()
    assert resumed.stderr.count('error: q4: has no "context" field') == 1
    assert f"{len(WORDS) - 1} of {len(WORDS)} documents done, 1 failed" in resumed.stderr


def _as_torchrun(monkeypatch) -> None:
    """This process as torchrun's only process."""
    for name, value in {"WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)


def _stop_after(add):
    def add_then_stop(self, rank, results):
        add(self, rank, results)
        raise KeyboardInterrupt

    return add_then_stop


def test_a_restart_skips_what_is_done_and_refuses_other_settings(checkpoints, workspace, monkeypatch, capsys):
    argv = ["classify", "--model", str(checkpoints["classify"]), "reviews/", "--batch-size", "1", "-o", "one.jsonl"]
    _, expected = _one_process(workspace, argv, monkeypatch)
    _as_torchrun(monkeypatch)
    add = RunRecord.add
    monkeypatch.setattr(RunRecord, "add", _stop_after(add))
    assert main(argv) == 130
    monkeypatch.setattr(RunRecord, "add", add)
    record = workspace / "one.jsonl.partial"
    assert len(RunRecord("one.jsonl", {}).finished()) == 4 and not (workspace / "one.jsonl").exists()
    capsys.readouterr()

    assert main([*argv[:-4], "--batch-size", "2", "--top-k", "2", "-o", "one.jsonl"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size 2 (was 1); --top-k 2 (was 1); run that command again" in err
    assert f"delete {record.name} to start over" in err
    changed = workspace / "reviews" / "00.txt"
    original = changed.read_text()
    changed.write_text("other words")
    assert main(argv) == 2 and "an interrupted run that differs: the documents changed;" in capsys.readouterr().err
    changed.write_text(original)

    seen = []
    classify = bigbird.pipelines.classify
    monkeypatch.setattr(bigbird.pipelines, "classify", lambda texts, **kw: seen.extend(texts) or classify(texts, **kw))
    assert main(argv) == 0
    assert len(seen) == len(WORDS) - 4
    assert (workspace / "one.jsonl").read_bytes() == expected and not record.exists()


def test_under_torchrun_the_output_is_a_file_and_inputs_are_not_standard_input(checkpoints, workspace, monkeypatch,
                                                                                 capsys):
    _as_torchrun(monkeypatch)
    model = str(checkpoints["classify"])
    assert main(["classify", "-m", model, str(workspace / "reviews")]) == 2
    assert "under torchrun, name the output file with --output" in capsys.readouterr().err
    assert main(["embed", "-m", model, "-", "-o", str(workspace / "v.npy")]) == 2
    assert "standard input cannot be shared" in capsys.readouterr().err


def test_units_go_to_the_least_loaded_process_longest_first():
    assert assign([5, 1, 4, 3, 3], 2) == [0, 1, 1, 1, 0]
    assert assign([2, 2, 2], 4) == [0, 1, 2]


def test_a_line_cut_short_by_a_kill_is_dropped(tmp_path):
    record = RunRecord(str(tmp_path / "out.jsonl"), {"settings": {}, "documents": "x"})
    assert record.open() is None
    record.add(0, [(0, "first"), (1, "second")])
    record.close()
    with open(record.folder / "rank-0.jsonl", "a") as part:
        part.write('{"results": [[2, "thi')
    assert record.open() is None
    assert record.finished() == {0: "first", 1: "second"}
    record.add(0, [(2, "third")])
    record.close()
    assert record.finished() == {0: "first", 1: "second", 2: "third"}
