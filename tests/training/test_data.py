"""Training data and metrics: file reading, bad input named by file and line before training, QA windows with
answer positions, length-grouped batches, and the evaluation metrics."""

from __future__ import annotations

import json

import pytest

from transformers import AutoTokenizer

from bigbird.cli.main import main
from bigbird.training.data import DataError, global_batches, read_records, tokenize
from bigbird.training.metrics import classification, question_answering, rouge
from training_fixtures import long_range_records, tiny_bigbird, tiny_classifier, write_jsonl, write_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_bigbird(tmp_path_factory.mktemp("tiny") / "model", positions=256, block_size=16)


def _train(args, capsys) -> tuple[int, str]:
    status = main(["train", *args])
    return status, capsys.readouterr().err


def test_csv_and_jsonl_records_with_line_numbers(tmp_path):
    csv_path = tmp_path / "data.csv"
    csv_path.write_text('text,label\n"first, with a comma",a\n"two\nlines",b\n\nlast,a\n', encoding="utf-8")
    records = read_records(csv_path, "classify")
    assert [(r.line, r.fields["text"], r.fields["label"]) for r in records] == [
        (2, "first, with a comma", "a"), (3, "two\nlines", "b"), (6, "last", "a")]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text('{"text": "x", "label": 1}\n\n{"text": "y", "label": 2}\n', encoding="utf-8")
    assert [(r.line, r.fields["label"]) for r in read_records(jsonl, "classify")] == [(1, "1"), (3, "2")]


@pytest.mark.parametrize("task, content, message", [
    ("classify", '{"text": "a b"}\n', "data.jsonl:1: missing column 'label'"),
    ("classify", '{"text": "a", "label": "x"}\n{"label": "x"}\n', "data.jsonl:2: missing column 'text'"),
    ("classify", "", "data.jsonl: empty: no records"),
    ("classify", '{"text": "a", "label": "x"}\nnot json\n', "data.jsonl:2: not valid JSON"),
    ("qa", '{"question": "who", "context": "w1 w2 w3", "answer": "w2", "answer_start": 6}\n',
     "data.jsonl:1: the answer 'w2' is not at character 6 of the context (the context has 'w3' there)"),
    ("qa", '{"question": "who", "context": "w1 w2", "answer": "w2", "answer_start": "x"}\n',
     "data.jsonl:1: 'answer_start' must be a character offset"),
    ("summarize", '{"document": "a b", "summary": ""}\n', "data.jsonl:1: 'summary' must be a non-empty text"),
])
def test_bad_records_are_named(tmp_path, task, content, message):
    path = tmp_path / "data.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        read_records(path, task)
    assert str(caught.value).startswith(f"{tmp_path}/{message}")


def test_csv_missing_column_and_unknown_format(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,labels\nhello,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.csv:2: missing column 'label'"):
        read_records(path, "classify")
    other = tmp_path / "d.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.txt: unknown format '\.txt'"):
        read_records(other, "classify")


def test_cli_refuses_bad_input_before_training(tmp_path, model_dir, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", long_range_records(4, 0, length=64, plant_from=10))
    bad_eval = write_jsonl(tmp_path / "eval.jsonl", [{"text": "w1 w2", "label": "alpha"},
                                                     {"text": "w1 w3", "label": "omega"}])
    out = tmp_path / "out"
    status, err = _train(["classify", "--model", str(model_dir), "--train", str(train), "--eval", str(bad_eval),
                          "--out", str(out), "--labels", "alpha,beta,gamma,delta"], capsys)
    assert status == 1
    assert f"{bad_eval}:2: label 'omega' is not in the label set (alpha, beta, gamma, delta)" in err
    assert not out.exists()
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    status, err = _train(["classify", "--model", str(model_dir), "--train", str(empty), "--out", str(out)], capsys)
    assert status == 1 and f"{empty}: empty: no records" in err and not out.exists()


def test_resume_from_another_model_is_refused(tmp_path, model_dir, capsys):
    train = write_jsonl(tmp_path / "train.jsonl", long_range_records(4, 0, length=64, plant_from=10))
    out = tmp_path / "out"
    common = ["classify", "--train", str(train), "--out", str(out), "--batch-size", "2", "--max-steps", "1"]
    assert _train([*common, "--model", str(model_dir)], capsys)[0] == 0
    other = tiny_bigbird(tmp_path / "other", hidden=48, positions=256, block_size=16)
    status, err = _train([*common, "--model", str(other), "--resume"], capsys)
    assert status == 1
    assert f"{out / 'checkpoint-1' / 'trainer_state.json'}: this checkpoint is of another model" in err
    assert "hidden_size 32 vs 48" in err
    status, err = _train([*common, "--model", str(model_dir), "--resume", str(tmp_path)], capsys)
    assert status == 1 and f"{tmp_path}: not a checkpoint of bigbird train" in err


def test_labels_other_than_a_trained_classifiers_are_refused(tmp_path, capsys):
    model = tiny_classifier(tmp_path / "classifier", ["negative", "neutral", "positive"])
    train = write_jsonl(tmp_path / "train.jsonl", [{"text": "w1 w2", "label": "neg"}, {"text": "w3", "label": "pos"}])
    out = tmp_path / "out"
    status, err = _train(["classify", "--model", str(model), "--train", str(train), "--out", str(out),
                          "--labels", "neg,pos"], capsys)
    assert status == 1 and not out.exists()
    assert (f"--labels names 2 labels (neg, pos), but {model} is a classifier trained for 3 (negative, neutral, "
            "positive, in this order): leave out --labels") in err
    status, err = _train(["classify", "--model", str(model), "--train", str(train), "--out", str(out)], capsys)
    assert status == 1 and f"{train}:1: label 'neg' is not in the label set (negative, neutral, positive)" in err


def test_qa_windows_point_at_the_answer(tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(write_tokenizer(tmp_path, model_max_length=64))
    context = " ".join(f"w{i % 20}" for i in range(150)) + " m2 w1 w2"
    start = context.index("m2")
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "where is the answer", "context": context,
                                                 "answer": "m2 w1", "answer_start": start}])
    features = tokenize("qa", read_records(path, "qa"), tokenizer, 32, stride=8)
    assert len(features) > 4
    hits = [f for f in features if f.start != 0]
    assert hits, "the last window holds the answer"
    for feature in hits:
        assert context[feature.spans[feature.start][0]:feature.spans[feature.end][1]] == "m2 w1"
    assert all(f.end == 0 for f in features if f.start == 0)


def test_length_grouped_batches():
    lengths = [10 * (i % 7) + 1 for i in range(45)]
    batches = global_batches(lengths, 8, seed=3, epoch=1, group=2)
    assert len(batches) == 6 and all(len(b) == 8 for b in batches)
    assert sorted({i for b in batches for i in b}) == list(range(45))
    assert batches == global_batches(lengths, 8, seed=3, epoch=1, group=2)
    assert batches != global_batches(lengths, 8, seed=3, epoch=2, group=2)
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches)
    unsorted = [list(range(s, s + 8)) for s in range(0, 40, 8)]
    assert spread < sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in unsorted)
    ordered = global_batches(lengths, 8, seed=0, epoch=0, shuffle=False)
    assert [len(b) for b in ordered] == [8] * 5 + [5]


def test_metrics():
    scores = classification([0, 0, 1, 2], [0, 1, 1, 2], num_labels=3)
    assert scores["accuracy"] == 0.75
    assert scores["macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    qa = question_answering(["The Eiffel tower!", "Paris", ""], ["eiffel tower", "in Paris France", ""])
    assert qa["exact_match"] == pytest.approx(2 / 3)
    assert qa["f1"] == pytest.approx((1 + 0.5 + 1) / 3)
    same = rouge(["the cats were sitting on the mat"], ["the cats were sitting on the mat"])
    assert same == {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    partial = rouge(["the cat sat"], ["the cat sat on the mat"])
    assert 0 < partial["rouge2"] < partial["rouge1"] < 1
    json.dumps(partial)
