"""`bigbird embed` and `bigbird search` (issue 17): option errors before any work, a progress bar on a terminal,
warnings as they happen, a clear error for a model that is not BigBird."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest

import bigbird.search
from bigbird.cli import main
from search_fixtures import tiny  # noqa: F401 (fixture)
from tiny_checkpoints import made_up_text


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def docs(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for seed, words in enumerate([120, 400, 60]):  # the second is longer than the 256-token window
        (folder / f"d{seed}.txt").write_text(made_up_text(words, seed))
    return folder


@pytest.mark.parametrize("argv", [["embed", "a.txt", "--batch-size", "0"], ["search", "q", "a.txt", "--top-k", "0"],
                                  ["search", "q", "a.txt", "--max-length", "-3"]])
def test_numbers_that_make_no_sense_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and "expected a positive whole number" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_fails_before_any_work(tiny, docs, tmp_path, monkeypatch, capsys):
    def load_embedder(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(bigbird.search, "load_embedder", load_embedder)
    for output, message in [(tmp_path / "missing-dir" / "v.npy", "no such directory"),
                            (docs, "it is a directory")]:
        assert main(["embed", str(docs), "--model", str(tiny[1]), "-o", str(output)]) == 1
        err = capsys.readouterr().err
        assert f"bigbird embed: error: cannot write {output}: {message}" in err and "was loaded" not in err


@pytest.mark.parametrize("command", ["embed", "search"])
def test_a_progress_bar_and_warnings_as_they_happen_on_a_terminal(tiny, docs, monkeypatch, capsys, command):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    argv = ["search", "some words"] if command == "search" else ["embed"]
    assert main([*argv, str(docs), "--model", str(tiny[1]), "--batch-size", "1"]) == 0
    err = terminal.getvalue()
    warning = f"bigbird {command}: warning: {docs / 'd1.txt'}: "
    assert warning in err and "more than the model's window of 256" in err
    assert "3/3" in err and "doc" in err and "tokens/s" in err
    assert err.index(warning) < err.rindex("3/3")  # printed while the documents were read, not after
    capsys.readouterr()


def test_no_bar_into_a_pipe(tiny, docs, capsys):
    assert main(["embed", str(docs), "--model", str(tiny[1])]) == 0
    err = capsys.readouterr().err
    assert "tokens/s" not in err and "%|" not in err
    assert err.count("warning:") == 1


def test_a_model_that_is_not_bigbird_or_not_there(tiny, docs, tmp_path, capsys):
    source, _ = tiny
    assert main(["search", "words", str(docs), "--model", str(source)]) == 1
    assert f"'bert' checkpoint, not a BigBird ('big_bird') one: make one with `bigbird warm-start {source}" \
        in capsys.readouterr().err
    assert main(["embed", str(docs), "--model", str(tmp_path / "nowhere")]) == 1
    assert f"no such directory: {tmp_path / 'nowhere'}" in capsys.readouterr().err


def test_binary_and_good_inputs_together(tiny, docs, tmp_path, capsys):
    (tmp_path / "data.bin").write_bytes(b"\x00\x01\x02binary")
    output = tmp_path / "v.npy"
    assert main(["embed", str(tmp_path / "data.bin"), str(docs), "--model", str(tiny[1]), "-o", str(output)]) == 1
    assert f"bigbird embed: error: {tmp_path / 'data.bin'}: not text: binary data" in capsys.readouterr().err
    assert np.load(output).shape == (3, 32)
