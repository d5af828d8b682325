"""`bigbird train` end to end on tiny models: resume with the same loss curve, the QA and summarization paths,
gradient checkpointing and bf16 autocast, and the models inside Transformers' Trainer and Accelerate."""

from __future__ import annotations

import json

import accelerate
import pytest
import torch
import transformers
from safetensors.torch import load_file

import bigbird
from bigbird.training.loop import TrainSettings, train
from training_fixtures import long_range_records, tiny_bigbird, tiny_pegasus, train_until_crash, write_jsonl

pytestmark = pytest.mark.filterwarnings("ignore:.*newly initialised:UserWarning")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_bigbird(tmp_path_factory.mktemp("tiny") / "model", positions=256, block_size=16, dropout=0.1)


def _settings(model_dir, tmp_path, out: str, **overrides) -> TrainSettings:
    train_file = tmp_path / "train.jsonl"
    if not train_file.exists():
        write_jsonl(train_file, long_range_records(16, 0, length=200, plant_from=100))
        write_jsonl(tmp_path / "eval.jsonl", long_range_records(8, 1, length=200, plant_from=100))
    values = dict(task="classify", model=str(model_dir), train=str(train_file), eval=str(tmp_path / "eval.jsonl"),
                  out=str(tmp_path / out), epochs=2, batch_size=4, lr=1e-3, warmup_ratio=0.25)
    values.update(overrides)
    return TrainSettings(**values)


def test_resume_after_a_crash_continues_the_same_loss_curve(model_dir, tmp_path):
    whole = train(_settings(model_dir, tmp_path, "whole", save_steps=2))
    assert whole["global_step"] == 8 and len(whole["loss_history"]) == 8

    train_until_crash(_settings(model_dir, tmp_path, "crashed", save_steps=2), steps=7)
    out = tmp_path / "crashed"
    assert (out / "checkpoint-6").is_dir() and not (out / "checkpoint-2").exists()

    resumed = train(_settings(model_dir, tmp_path, "crashed", save_steps=2, resume="last"))
    losses = [entry["loss"] for entry in whole["loss_history"]]
    assert [entry["loss"] for entry in resumed["loss_history"]] == pytest.approx(losses, abs=1e-6)
    assert len(set(losses)) > 4  # dropout and the data make every step's loss different
    first, second = load_file(tmp_path / "whole" / "model.safetensors"), load_file(out / "model.safetensors")
    for key, tensor in first.items():
        torch.testing.assert_close(second[key], tensor, atol=1e-6, rtol=0)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["evaluations"][-1]["metrics"].keys() == {"accuracy", "macro_f1"}
    assert metrics["best"]["metric"] == "accuracy"
    saved = json.loads((out / "config.json").read_text())
    assert saved["architectures"] == ["BigBirdForSequenceClassification"]
    assert sorted(saved["id2label"].values()) == ["alpha", "beta", "delta", "gamma"]


def test_gradient_checkpointing_and_accumulation_keep_the_losses(model_dir, tmp_path):
    common = dict(epochs=1, eval=None, warmup_ratio=0.0)
    plain = train(_settings(model_dir, tmp_path, "plain", **common, batch_size=4))
    checkpointed = train(_settings(model_dir, tmp_path, "ckpt", **common, batch_size=4, gradient_checkpointing=True))
    assert [e["loss"] for e in checkpointed["loss_history"]] == pytest.approx(
        [e["loss"] for e in plain["loss_history"]], abs=1e-5)
    accumulated = train(_settings(model_dir, tmp_path, "accum", **common, batch_size=2, grad_accum=2))
    assert accumulated["global_step"] == plain["global_step"] == 4


def test_bf16_autocast_on_cpu(model_dir, tmp_path):
    metrics = train(_settings(model_dir, tmp_path, "bf16", precision="bf16", max_steps=2, eval=None))
    assert metrics["precision"] == "bf16" and all(0 < e["loss"] < 10 for e in metrics["loss_history"])
    with pytest.raises(ValueError, match="fp16 training needs a GPU"):
        train(_settings(model_dir, tmp_path, "fp16", precision="fp16", device="cpu"))


def test_question_answering_windows_and_metrics(model_dir, tmp_path):
    records = []
    for index, record in enumerate(long_range_records(6, 3, length=300, plant_from=10)):
        context = record["text"]
        answer = context.split()[150 + index]
        start = len(" ".join(context.split()[:150 + index])) + 1
        records.append({"question": "what is the answer", "context": context, "answer": answer,
                        "answer_start": start})
    write_jsonl(tmp_path / "qa.jsonl", records)
    metrics = train(TrainSettings(task="qa", model=str(model_dir), train=str(tmp_path / "qa.jsonl"),
                                  eval=str(tmp_path / "qa.jsonl"), out=str(tmp_path / "qa"), epochs=1, batch_size=4,
                                  max_length=128, stride=32))
    assert metrics["train_features"] > metrics["train_examples"] == 6
    scores = metrics["evaluations"][-1]["metrics"]
    assert scores.keys() == {"exact_match", "f1"} and 0 <= scores["exact_match"] <= scores["f1"] <= 1
    assert bigbird.BigBirdForQuestionAnswering.from_pretrained(tmp_path / "qa") is not None


def test_summarization_with_rouge(tmp_path):
    model = tiny_pegasus(tmp_path / "pegasus")
    records = [{"document": r["text"], "summary": r["label"].replace("alpha", "w1 w2").replace("beta", "w3")
                .replace("gamma", "w4 w5").replace("delta", "w6")}
               for r in long_range_records(4, 5, length=160, plant_from=10)]
    write_jsonl(tmp_path / "sum.jsonl", records)
    metrics = train(TrainSettings(task="summarize", model=str(model), train=str(tmp_path / "sum.jsonl"),
                                  eval=str(tmp_path / "sum.jsonl"), out=str(tmp_path / "sum"), epochs=1,
                                  batch_size=2, max_target_length=8, lr=1e-3))
    scores = metrics["evaluations"][-1]["metrics"]
    assert scores.keys() == {"rouge1", "rouge2", "rougeL"} and all(0 <= v <= 1 for v in scores.values())
    assert metrics["global_step"] == 2


def _tiny_classifier() -> bigbird.BigBirdForSequenceClassification:
    config = bigbird.BigBirdConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=256, block_size=16,
                                   num_random_blocks=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    config.num_labels = 3
    return bigbird.BigBirdForSequenceClassification(config)


def _rows(count: int) -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 50, (count, 200), generator=generator)
    return [{"input_ids": row, "attention_mask": torch.ones_like(row), "labels": int(row[150]) % 3} for row in ids]


def test_transformers_trainer_runs_our_model(tmp_path):
    model = _tiny_classifier()
    before = model.classifier.out_proj.weight.detach().clone()
    args = transformers.TrainingArguments(output_dir=str(tmp_path / "trainer"), max_steps=3,
                                          per_device_train_batch_size=4, learning_rate=1e-3, report_to=[],
                                          save_strategy="no", logging_steps=1, use_cpu=True, disable_tqdm=True)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=_rows(12))
    result = trainer.train()
    assert result.global_step == 3 and result.training_loss > 0
    assert [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert model.bert.encoder.layer[0].attention is not None and model.training
    assert not torch.equal(before, model.classifier.out_proj.weight)


def test_accelerate_runs_our_model():
    model = _tiny_classifier().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    accelerator = accelerate.Accelerator(cpu=True)
    model, optimizer = accelerator.prepare(model, optimizer)
    rows = _rows(4)
    batch = {key: torch.stack([torch.as_tensor(row[key]) for row in rows]) for key in rows[0]}
    losses = []
    for _ in range(3):
        loss = model(**batch).loss
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
