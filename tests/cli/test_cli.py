"""The `bigbird` command end to end on tiny checkpoints: inputs from files, directories, standard input and JSON
lines; results equal the pipelines'; bad input reported by name while the rest is written; exit statuses."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bigbird import answer, classify
from bigbird.cli import main
from tiny_checkpoints import WINDOW, checkpoints, made_up_text  # noqa: F401 (fixture)


def _run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, [json.loads(line) for line in out.splitlines()], err


def _stdin(monkeypatch, data: bytes):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_classify_reads_files_directories_and_json_lines(checkpoints, tmp_path, capsys):
    texts = {name: made_up_text(words, seed) for seed, (name, words) in enumerate([("a.txt", 5), ("b.txt", 9),
                                                                                    ("c.txt", 3), ("d.txt", 12)])}
    (tmp_path / "docs").mkdir()
    for name, text in texts.items():
        (tmp_path / ("docs" if name in ("c.txt", "d.txt") else "") / name).write_text(text, encoding="utf-8")
    (tmp_path / "docs" / ".hidden").write_text("not read")
    records = tmp_path / "more.jsonl"
    records.write_text(json.dumps({"id": 42, "text": "first record"}) + "\n\n" + json.dumps({"text": "second"}) + "\n")
    status, lines, _ = _run(capsys, "classify", "-m", checkpoints["classify"], tmp_path / "a.txt", tmp_path / "docs",
                            records, tmp_path / "b.txt", "--top-k", "2", "--batch-size", "2")
    assert status == 0
    ids = [str(tmp_path / "a.txt"), str(tmp_path / "docs" / "c.txt"), str(tmp_path / "docs" / "d.txt"), 42,
           f"{records}:3", str(tmp_path / "b.txt")]
    assert [line["id"] for line in lines] == ids
    sources = [texts["a.txt"], texts["c.txt"], texts["d.txt"], "first record", "second", texts["b.txt"]]
    for line, expected in zip(lines, classify(sources, checkpoints["classify"], top_k=2, batch_size=1)):
        assert line["label"] == expected["label"] and len(line["labels"]) == 2
        assert line["score"] == pytest.approx(expected["score"], abs=1e-5)


def test_bad_input_is_reported_by_name_and_the_rest_is_written(checkpoints, tmp_path, capsys):
    good, empty, latin = tmp_path / "good.txt", tmp_path / "empty.txt", tmp_path / "latin.txt"
    good.write_text("a fine document")
    empty.write_text("  \n")
    latin.write_bytes("caf\xe9 cr\xe8me".encode("latin-1"))
    status, lines, err = _run(capsys, "classify", "-m", checkpoints["classify"], tmp_path / "missing.txt", empty,
                              latin, good, "-o", tmp_path / "out.jsonl")
    assert status == 1 and lines == []
    assert [json.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == [str(good)]
    assert f"{tmp_path / 'missing.txt'}: no such file" in err
    assert f"{empty}: empty document" in err
    assert f"{latin}: not UTF-8 text (byte 0xe9 at offset 3)" in err
    assert "1 of 4 documents done, 3 failed" in err


def test_a_long_document_is_truncated_with_a_warning_naming_it(checkpoints, tmp_path, capsys):
    long = tmp_path / "long.txt"
    long.write_text(made_up_text(300))
    status, lines, err = _run(capsys, "classify", "-m", checkpoints["classify"], long)
    assert status == 0 and len(lines) == 1
    assert f"warning: {long}: " in err and f"more than the model's window of {WINDOW}" in err


def test_qa_json_lines_with_bad_records(checkpoints, tmp_path, capsys):
    context = made_up_text(150, seed=3)
    records = [
        {"id": "long", "question": "what is it?", "context": context},
        {"id": "no-context", "question": "what?"},
        {"id": "no-question", "context": "some context"},
        {"id": "question-too-long", "question": "word " * 200, "context": "some context"},
        {"id": "empty", "question": "what?", "context": " "},
        {"id": "short", "question": "who?", "context": "a short context"},
    ]
    path = tmp_path / "questions.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records) + "{not json\n")
    status, lines, err = _run(capsys, "qa", "-m", checkpoints["qa"], path, "--stride", "20", "--batch-size", "1")
    assert status == 1
    assert [line["id"] for line in lines] == ["long", "short"]
    expected = answer(["what is it?", "who?"], [context, "a short context"], checkpoints["qa"], stride=20,
                      batch_size=1)
    for line, result in zip(lines, expected):
        assert {key: value for key, value in line.items() if key != "id"} == {
            **result, "score": pytest.approx(result["score"], rel=1e-4)}
    assert context[lines[0]["start"]:lines[0]["end"]] == lines[0]["answer"]
    for name, message in [("no-context", 'has no "context" field'), ("no-question", "has no question"),
                          ("question-too-long", "a question of"),
                          ("empty", "a question without a context"), (f"{path}:7", "not valid JSON")]:
        assert f"error: {name}: {message}" in err
    assert "2 of 7 documents done, 5 failed" in err


def test_qa_on_text_needs_a_question_and_stdin_input(checkpoints, monkeypatch, capsys):
    status, lines, err = _run(capsys, "qa", "-m", checkpoints["qa"], "context.txt")
    assert status == 2 and "pass --question" in err
    _stdin(monkeypatch, b"The document on standard input.")
    status, lines, _ = _run(capsys, "qa", "-m", checkpoints["qa"], "-q", "which document?")
    assert status == 0 and lines[0]["id"] == "-"
    assert "The document on standard input."[lines[0]["start"]:lines[0]["end"]] == lines[0]["answer"]


def test_a_checkpoint_for_another_task_is_refused(checkpoints, capsys):
    status, lines, err = _run(capsys, "qa", "-m", checkpoints["classify"], "-q", "who?", "any.txt")
    assert status == 1 and lines == []
    assert "BigBirdForSequenceClassification checkpoint, not a question-answering checkpoint" in err
    status, _, err = _run(capsys, "classify", "-m", checkpoints["classify"] / "nowhere", "any.txt")
    assert status == 1 and "nowhere" in err


def test_unwritable_output_and_unknown_generation_settings(checkpoints, tmp_path, capsys):
    document = tmp_path / "a.txt"
    document.write_text("words")
    status, _, err = _run(capsys, "classify", "-m", checkpoints["classify"], document, "-o", tmp_path / "no" / "x")
    assert status == 1 and "cannot write" in err
    status, lines, err = _run(capsys, "summarize", "-m", checkpoints["summarize"], document, "--generate", "beams=2")
    assert status == 1 and lines == [] and "beams" in err


def test_summarize_and_fill_mask(checkpoints, monkeypatch, capsys):
    _stdin(monkeypatch, json.dumps({"id": "x", "text": made_up_text(6)}).encode() + b"\n")
    status, lines, _ = _run(capsys, "summarize", "-m", checkpoints["summarize"], "--jsonl", "--generate",
                            "max_new_tokens=2", "--generate", "num_beams=1")
    assert status == 0 and lines[0]["id"] == "x" and isinstance(lines[0]["summary"], str)
    _stdin(monkeypatch, "a [MASK] in the middle".encode())
    status, lines, _ = _run(capsys, "fill-mask", "-m", checkpoints["fill-mask"], "--top-k", "3")
    assert status == 0 and [len(candidates) for candidates in lines[0]["masks"]] == [3]
    _stdin(monkeypatch, b"no mask here")
    status, lines, err = _run(capsys, "fill-mask", "-m", checkpoints["fill-mask"])
    assert status == 1 and lines == [] and "error: -: texts[0] has no [MASK] token" in err


@pytest.mark.parametrize("command", ["classify", "qa", "summarize", "fill-mask", "embed", "search", "warm-start",
                                     "bench"])
def test_every_subcommand_says_what_it_does_with_an_example(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert "example" in capsys.readouterr().out


def test_bad_options_are_usage_errors(capsys):
    for argv in (["classify", "-m", "x", "--batch-size", "0"], ["qa", "-m", "x", "--stride", "-1"],
                 ["fill-mask", "-m", "x", "--top-k", "many"], ["summarize", "-m", "x", "--generate", "beams"],
                 ["classify", "a.txt"]):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2
    assert "--model" in capsys.readouterr().err


def test_a_progress_bar_on_a_terminal(checkpoints, tmp_path, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    document = tmp_path / "a.txt"
    document.write_text("a few words")
    assert main(["classify", "-m", str(checkpoints["classify"]), str(document)]) == 0
    assert "1/1" in terminal.getvalue() and "doc" in terminal.getvalue()


def test_no_subcommand_prints_the_overview_with_an_example_of_each_command(capsys):
    assert main([]) == 2
    examples = capsys.readouterr().out.split("examples:")[1]
    for command in ("classify", "qa", "summarize", "fill-mask", "search", "embed", "warm-start", "train", "bench"):
        assert f"bigbird {command} " in examples


def test_console_script_in_a_pipe(checkpoints, tmp_path):
    script = Path(sys.executable).parent / "bigbird"
    good = tmp_path / "good.txt"
    good.write_text("a fine document")
    run = subprocess.run([str(script), "classify", "-m", str(checkpoints["classify"]), str(good),
                          str(tmp_path / "missing.txt")], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert [json.loads(line)["id"] for line in run.stdout.splitlines()] == [str(good)]
    assert "missing.txt: no such file" in run.stderr
    assert "Traceback" not in run.stderr and "doc/s" not in run.stderr and "%|" not in run.stderr
