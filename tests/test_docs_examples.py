"""Every command of the ```bash blocks of README.md, docs/usage.md and docs/warm_start.md runs here as written.

The commands run in a workspace that holds what they name (report.txt, papers.jsonl, reviews/, a.txt, b.txt,
train.jsonl, dev.jsonl, this repository's README.md and docs/, the local checkpoints ./my-bigbird-classifier,
./my-bert-classifier and ./bigbird-base), and differ from the text only where it cannot run offline or quickly:
- `bigbird ...` runs through the command's entry point; a Hub id is replaced by the path of a tiny checkpoint of
  the same kind (tiny_checkpoints.py), the default model of `search`/`embed` is a tiny warm-started BERT, and
  `bigbird bench` gets `--lengths 320 --layers 1 --repeats 1` appended (as written it takes minutes);
- `echo TEXT | bigbird ...` gives TEXT on standard input;
- `pip install` is not run: the distributions it names must be installed, the extras it names must exist;
- the test-suite command is not run from inside the suite: its pytest plugin and test directory must exist;
- `torchrun ... --no-python bigbird ...` needs several processes, GPUs or machines: its `bigbird` command must
  parse (tests/training/test_distributed.py runs `bigbird train` under torchrun with gloo).
docs/training.md is run by tests/training/test_docs_training.py; the ```python blocks by test_readme_examples.py.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import io
import json
import re
import shlex
import shutil
import sys
import tomllib
import warnings
from pathlib import Path

import pytest

from bigbird.cli import build_parser
from bigbird.cli.main import main
from bigbird.warm_start import warm_start
from tiny_checkpoints import checkpoints, made_up_text  # noqa: F401 (fixture)
from training_fixtures import long_range_records, tiny_bigbird, write_jsonl
from warm_start_sources import write_bert

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/usage.md", "docs/warm_start.md"]
STAND_INS = {"google/bigbird-roberta-base": "fill-mask", "google/bigbird-base-trivia-itc": "qa",
             "google/bigbird-pegasus-large-arxiv": "summarize"}
QUICK_BENCH = ["--lengths", "320", "--layers", "1", "--repeats", "1"]
SHELL = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    return [(f"{name}[bash {number}]", block) for name in DOCUMENTS
            for number, block in enumerate(SHELL.findall((ROOT / name).read_text(encoding="utf-8")), start=1)]


def _segments(block: str) -> list[list[list[str]]]:
    """The block's command lines, each as its `&&`-separated commands, each as its `|`-separated argument lists."""
    lines = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    return [[_split(command, "|") for command in _split(words, "&&")] for words in lines if words]


def _split(words: list[str], separator: str) -> list[list[str]]:
    parts = [[]]
    for word in words:
        parts.append([]) if word == separator else parts[-1].append(word)
    return parts


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, checkpoints):
    """A directory with the files and checkpoints the documented commands name, and a tiny default search model."""
    root = tmp_path_factory.mktemp("docs-workspace")
    shutil.copy(ROOT / "README.md", root)
    shutil.copytree(ROOT / "docs", root / "docs")
    (root / "report.txt").write_text("The company was founded in 1843 by Ada Lovelace in London. " * 150)
    write_jsonl(root / "papers.jsonl", [{"id": i, "text": made_up_text(300, seed=i)} for i in range(2)])
    (root / "reviews").mkdir()
    for name in ("a.txt", "b.txt", "reviews/first.txt", "reviews/second.txt"):
        (root / name).write_text(made_up_text(80, seed=len(name)))
    shutil.copytree(checkpoints["classify"], root / "my-bigbird-classifier")
    write_bert(root / "my-bert-classifier", "BertForSequenceClassification")
    tiny_bigbird(root / "bigbird-base", positions=256, block_size=16)
    write_jsonl(root / "train.jsonl", long_range_records(8, 2, length=120, plant_from=40))
    write_jsonl(root / "dev.jsonl", long_range_records(4, 12, length=120, plant_from=40))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm_start(write_bert(root / "minilm", "BertModel"), root / "default-model", max_length=256, block_size=16,
                   num_random_blocks=2)
    return root


def _check_pip(args: list[str]) -> None:
    """`pip install ...` is not run; what it installs must be here (and an extra it names must exist)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for requirement in (word for word in args[2:] if not word.startswith("-")):
        if requirement.startswith("."):
            assert set(re.findall(r"\w+", requirement.partition("[")[2])) <= set(extras), requirement
        else:
            importlib.metadata.distribution(re.split(r"[=<>\[]", requirement)[0])


def _check_test_command(args: list[str]) -> None:
    """The suite is not run from inside itself: its pytest options must be known and its directory must exist."""
    args = [word for word in args if "=" not in word or word.startswith("-")]  # without environment settings
    assert args[:3] == ["python", "-m", "pytest"], args
    assert importlib.util.find_spec("xdist") is not None or "-n" not in args
    assert (ROOT / args[-1]).is_dir()


def _run_bigbird(args: list[str], stdin: str | None, workspace: Path, stand_ins: dict, capsys) -> None:
    args = [str(stand_ins.get(word, word)) for word in args]
    if args[1] == "bench":
        args += QUICK_BENCH
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        patch.setattr("bigbird.search.default_model", lambda report=None: workspace / "default-model")
        if stdin is not None:
            patch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        status = main(args[1:])
    out, err = capsys.readouterr()
    assert status == 0, f"{shlex.join(args)} exited with {status}: {err}"
    written = next((args[i + 1] for i, word in enumerate(args) if word in ("-o", "--output", "--out")), None)
    assert (workspace / written).exists() if written else out.strip(), f"{shlex.join(args)} wrote nothing"


def _bigbird_args(command: list[str]) -> list[str] | None:
    """The `bigbird ...` arguments of a command, also when torchrun starts it; None for other commands."""
    if command[0] == "torchrun":
        command = command[command.index("--no-python") + 1:]
    return command if command[0] == "bigbird" else None


def _run(pipeline: list[list[str]], workspace: Path, stand_ins: dict, capsys) -> None:
    """One command of a line: a `bigbird` command (after an `echo` that feeds it), pip, pytest or torchrun."""
    *feeders, command = pipeline
    assert all(feeder[0] == "echo" for feeder in feeders), pipeline
    stdin = " ".join(feeders[0][1:]) + "\n" if feeders else None
    if command[0] == "bigbird":
        _run_bigbird(command, stdin, workspace, stand_ins, capsys)
    elif command[0] == "torchrun":
        build_parser().parse_args(_bigbird_args(command)[1:])
    elif command[:2] == ["pip", "install"]:
        _check_pip(command)
    elif "pytest" in command:
        _check_test_command(command)
    else:
        pytest.fail(f"a documented command that no test runs: {shlex.join(command)}")


@pytest.mark.parametrize("name, block", _blocks(), ids=[name for name, _ in _blocks()])
def test_documented_commands_run(name, block, workspace, checkpoints, capsys):
    stand_ins = {hub_id: checkpoints[kind] for hub_id, kind in STAND_INS.items()}
    for line in _segments(block):
        for pipeline in line:
            _run(pipeline, workspace, stand_ins, capsys)


def test_every_document_has_commands_and_every_kind_of_command_is_run():
    assert {name for name, _ in _blocks()} >= {f"{document}[bash 1]" for document in DOCUMENTS}
    commands = [_bigbird_args(pipeline[-1]) for _, block in _blocks() for line in _segments(block) for pipeline in line]
    assert {args[1] for args in commands if args} >= {"classify", "qa", "summarize", "fill-mask", "search", "embed",
                                                      "warm-start", "bench", "train"}


def test_the_documented_qa_output_has_the_fields_qa_writes(workspace, checkpoints, capsys):
    usage = (ROOT / "docs" / "usage.md").read_text(encoding="utf-8")
    documented = json.loads(re.search(r"^```\n(\{.*\})\n```", usage, re.MULTILINE).group(1))
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(workspace)
        assert main(["qa", "--model", str(checkpoints["qa"]), "--question", "Who founded it?", "report.txt"]) == 0
    assert json.loads(capsys.readouterr().out).keys() == documented.keys()
