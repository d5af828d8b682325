"""Every ```python block of README.md and docs/usage.md runs, against tiny local checkpoints.

The examples name real Hub checkpoints (and one local directory of a fine-tuned classifier), which cannot
be downloaded here. Before running a block, the test replaces each of those quoted names with the path of a
tiny random checkpoint of the same kind written by Transformers (see tiny_checkpoints.py): the code that runs is
the example's own, only the string naming the model differs. A quoted Hub name without a stand-in fails
the test rather than reaching for the network. The commands of the ```bash blocks run in test_docs_examples.py.
"""

from __future__ import annotations

import re
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
