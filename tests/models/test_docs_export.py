"""Every ```python block of docs/export.md runs, with a tiny local checkpoint in place of the Hub's.

The code that runs is the document's own; only the quoted Hub id is replaced by the path of a tiny random
checkpoint of the same kind (tiny_checkpoints.py: 128 positions, block size 8, so the documents' inputs run
block-sparse attention). A quoted Hub id without a stand-in fails the test rather than reaching for the network.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tiny_checkpoints import checkpoints  # noqa: F401 (fixture)

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "export.md"
STAND_INS = {"google/bigbird-roberta-base": "fill-mask"}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = BLOCK.findall(DOCUMENT.read_text(encoding="utf-8"))
NEEDED = ("torch.compile(model, fullgraph=True)", "torch.export.export(", "torch.onnx.export(")


def test_the_document_shows_compile_export_and_onnx():
    assert len(BLOCKS) == len(NEEDED)
    for needed, block in zip(NEEDED, BLOCKS):
        assert needed in block


@pytest.mark.parametrize("code", BLOCKS, ids=["compile", "export", "onnx"][: len(BLOCKS)])
def test_snippet_runs(code, checkpoints, tmp_path, monkeypatch):
    for model_name, kind in STAND_INS.items():
        code = code.replace(f'"{model_name}"', repr(str(checkpoints[kind])))
    leftover = re.findall(r"""["'](google/[\w.-]+)["']""", code)
    assert not leftover, f"names Hub checkpoints without a tiny stand-in: {leftover}"
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOCUMENT), "exec"), {"__name__": "__example__"})
