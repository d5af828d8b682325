"""Every ```python block of README.md and docs/usage.md runs, against tiny local checkpoints.

The examples name real Hub checkpoints (and one local directory of a fine-tuned classifier), which cannot
be downloaded here. Before running a block, the test replaces each of those quoted names with the path of a
tiny random checkpoint of the same kind written by Transformers (see tiny_checkpoints.py): the code that runs is
the example's own, only the string naming the model differs. A quoted Hub name without a stand-in fails
the test rather than reaching for the network. The `bigbird ...` lines of the ```bash blocks are parsed
with the command's own parser, so that they cannot drift from its options.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tiny_checkpoints import checkpoints  # noqa: F401 (fixture)

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/usage.md", "docs/warm_start.md"]
STAND_INS = {
    "google/bigbird-roberta-base": "fill-mask",
    "google/bigbird-base-trivia-itc": "qa",
    "google/bigbird-pegasus-large-arxiv": "summarize",
    "./my-bigbird-classifier": "classify",
}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
SHELL = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for name in DOCUMENTS:
        for number, match in enumerate(BLOCK.finditer((ROOT / name).read_text(encoding="utf-8")), start=1):
            found.append((f"{name}[{number}]", match.group(1)))
    return found


def test_the_documents_have_python_examples():
    names = [name for name, _ in _blocks()]
    assert any(name.startswith("docs/usage.md") for name in names)
    code = "".join(block for _, block in _blocks())
    for needed in ("from bigbird import BigBirdTokenizer, BigBirdForSequenceClassification", "outputs.logits",
                   "answer(", "classify(", "summarize(", "fill_mask("):
        assert needed in code


@pytest.mark.parametrize("name, code", _blocks(), ids=[name for name, _ in _blocks()])
def test_example_runs(name, code, checkpoints, tmp_path, monkeypatch):
    for model_name, task in STAND_INS.items():
        code = code.replace(f'"{model_name}"', repr(str(checkpoints[task])))
    leftover = re.findall(r"""["'](google/[\w.-]+)["']""", code)
    assert not leftover, f"{name} names Hub checkpoints without a tiny stand-in: {leftover}"
    monkeypatch.chdir(tmp_path)
    exec(compile(code, name, "exec"), {"__name__": "__example__"})


def _command_lines() -> list[str]:
    """The `bigbird ...` commands of the documents' bash blocks (after a pipe, without the comment)."""
    found = []
    for name in DOCUMENTS:
        for block in SHELL.findall((ROOT / name).read_text(encoding="utf-8")):
            for line in block.splitlines():
                command = line.split("|")[-1].split("#")[0].strip()
                if command.startswith("bigbird "):
                    found.append(command)
    return found


def test_documented_commands_are_valid_command_lines():
    from bigbird.cli import build_parser

    commands = _command_lines()
    assert {command.split()[1] for command in commands} >= {"classify", "qa", "summarize", "fill-mask", "bench"}
    for command in commands:
        args, extra = build_parser().parse_known_args(shlex.split(command)[1:])
        assert not extra or args.command == "bench", f"{command!r}: unknown options {extra}"
