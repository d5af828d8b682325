"""The `bigbird` command's options and errors (issue 17): --generate, a misspelt --model, binary inputs, and
`bigbird bench` from the installed package."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

import bigbird.pipelines.loading
from bigbird.cli import main
from tiny_checkpoints import checkpoints, made_up_text  # noqa: F401 (fixture)


def _run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, [json.loads(line) for line in out.splitlines()], err


@pytest.fixture
def no_loading(monkeypatch):
    """Loading weights fails the test: the error must come before."""
    def load(*args, **kwargs):
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(bigbird.pipelines.loading, "load", load)


@pytest.mark.parametrize("setting, message", [
    ("num_beams=two", "num_beams must be a whole number of at least 1, not 'two'"),
    ("num_beams=2.5", "num_beams must be a whole number of at least 1, not 2.5"),
    ("max_new_tokens=0", "max_new_tokens must be a whole number of at least 1, not 0"),
    ("min_length=30,max_length=10", "min_length=30 is more than max_length=10"),
    ("beams=2", "unknown generation settings ['beams']"),
    ("do_sample=yes", "do_sample must be true or false"),
])
def test_bad_generation_settings_fail_once_before_loading(checkpoints, tmp_path, capsys, no_loading, setting,
                                                          message):
    document = tmp_path / "paper.txt"
    document.write_text("words")
    status, lines, err = _run(capsys, "summarize", "-m", checkpoints["summarize"], "--generate", setting, document)
    assert status == 1 and lines == []
    assert err.count("error") == 1 and message in err


def test_generate_takes_one_setting_or_a_comma_list_and_never_a_file_name(checkpoints, tmp_path, capsys):
    paper = tmp_path / "paper.txt"
    paper.write_text(made_up_text(8))
    status, lines, _ = _run(capsys, "summarize", "-m", checkpoints["summarize"], "--generate", "num_beams=2", paper)
    assert status == 0 and [line["id"] for line in lines] == [str(paper)]
    status, lines, _ = _run(capsys, "summarize", "-m", checkpoints["summarize"], "--generate",
                            "num_beams=1,max_new_tokens=2", "--generate", "no_repeat_ngram_size=2", paper)
    assert status == 0 and [line["id"] for line in lines] == [str(paper)]
    status, lines, err = _run(capsys, "summarize", "-m", checkpoints["summarize"], "--generate", "num_beams=2",
                              "max_new_tokens=3", paper)
    assert status == 2 and lines == []
    assert "max_new_tokens=3 looks like a generation setting, not a file" in err and "--generate" in err


def test_a_misspelt_model_directory_says_so(checkpoints, tmp_path, capsys, monkeypatch):
    document = tmp_path / "a.txt"
    document.write_text("words")
    misspelt = tmp_path / "my-clasifier"
    status, _, err = _run(capsys, "classify", "-m", misspelt, document)
    assert status == 1 and f"no such directory: {misspelt}" in err
    monkeypatch.chdir(tmp_path)
    status, _, err = _run(capsys, "classify", "-m", "my-clasifier", document)
    assert status == 1 and "'my-clasifier' is neither a local directory nor a model in the local" in err
    status, _, err = _run(capsys, "summarize", "-m", misspelt, "--generate", "num_beams=2", document)
    assert status == 1 and f"no such directory: {misspelt}" in err


def test_binary_inputs_are_reported_as_not_text(checkpoints, tmp_path, capsys):
    archive = tmp_path / "docs.tar"
    with tarfile.open(archive, "w") as tar:
        data = b"a text inside an archive"
        info = tarfile.TarInfo("inside.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.7\n\xe2\xe3\xcf\xd3 binary")
    good = tmp_path / "good.txt"
    good.write_text("a fine document")
    status, lines, err = _run(capsys, "classify", "-m", checkpoints["classify"], archive, tmp_path / "scan.pdf", good)
    assert status == 1 and [line["id"] for line in lines] == [str(good)]
    assert f"{archive}: not text: a tar archive" in err
    assert "scan.pdf: not text: a PDF document" in err


def test_bench_runs_from_the_installed_package(capsys):
    assert main(["bench", "attention", "--lengths", "384", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| L | bigbird-torch s | dense SDPA s |" in out and "| 384 |" in out
    assert main(["bench", "model", "--lengths", "384", "--layers", "1", "--repeats", "1"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| 384 |"))
    assert float(row.strip("| ").split("|")[-1]) < 1e-4  # ours equals Transformers on the same weights


def test_bench_usage_errors(capsys):
    assert main(["bench", "nonsense"]) == 2
    assert "unknown benchmark 'nonsense'" in capsys.readouterr().err
    assert main(["bench", "--lengths", "100"]) == 2
    assert "multiples of 64 of at least 320" in capsys.readouterr().err
